"""The blocking connection itself: connecting, state, stats, status events, the running-loop rule, closing (no
thread left behind, also at interpreter exit)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable

import pytest
from helpers.core import closed_port
from sync.support import eventually, loop_factory, sync_threads

import cnats
import cnats.sync
from cnats import DebugEvents, Events
from cnats.sync import SyncConnection
from cnats.testing import NatsServer

pytestmark = pytest.mark.nats_server(jetstream=False)


def test_connect_context_manager_info_and_close(nats_server: NatsServer) -> None:
    with cnats.sync.connect(nats_server.url, name="sync-test", loop_factory=loop_factory()) as nc:
        assert isinstance(nc, SyncConnection)
        assert not nc.is_closed
        assert nc.info is not None and nc.info.version
        assert nc.server.startswith("127.0.0.1:")
        threads = sync_threads()
        assert [t.name for t in threads] == ["cnats-sync loop"]
        assert threads[0].daemon
    assert nc.is_closed
    assert nc.info is None
    assert not sync_threads()
    nc.close()  # idempotent


def test_connect_errors_are_the_asyncio_classes_and_leave_no_thread() -> None:
    with pytest.raises(cnats.NatsConnectionRefusedError):
        cnats.sync.connect(f"127.0.0.1:{closed_port()}", loop_factory=loop_factory())
    with pytest.raises(cnats.InvalidOptionError):
        cnats.sync.connect("nats://127.0.0.1:4222", port=4222, loop_factory=loop_factory())
    with pytest.raises(TypeError):
        cnats.sync.connect("nats://127.0.0.1:4222", no_such_option=True)
    assert not sync_threads()


async def test_blocking_calls_inside_a_running_loop_raise_invalid_option(nats_server: NatsServer) -> None:
    with pytest.raises(cnats.InvalidOptionError, match="asyncio API"):
        cnats.sync.connect(nats_server.url)
    # a connection made on another thread: its blocking methods refuse this thread too (they would stall its loop)
    nc = await asyncio.to_thread(cnats.sync.connect, nats_server.url, loop_factory=loop_factory())
    try:
        with pytest.raises(cnats.InvalidOptionError, match="asyncio API"):
            nc.request("x", b"", timeout=1)
        with pytest.raises(cnats.InvalidOptionError):
            nc.flush()
        with pytest.raises(cnats.InvalidOptionError):
            nc.subscribe("x")
        with pytest.raises(cnats.InvalidOptionError):
            nc.close()
        nc.publish("x", b"publishing never waits: allowed")
        # the way out: the blocking call on a worker thread
        sub = await asyncio.to_thread(nc.subscribe, "x")
        await asyncio.to_thread(nc.publish, "x", b"hello")
        msg = await asyncio.to_thread(sub.next_msg, 2)
        assert msg.data in (b"publishing never waits: allowed", b"hello")
    finally:
        await asyncio.to_thread(nc.close)


def test_stats_count_what_this_thread_published(snc: SyncConnection) -> None:
    before = snc.stats()
    for _ in range(10):
        snc.publish("stats.x", b"12345")
    after = snc.stats()
    assert after.out_msgs - before.out_msgs == 10
    assert after.out_bytes - before.out_bytes == 50


def test_status_iterator_reports_events_and_ends_at_close(snc: SyncConnection) -> None:
    statuses = snc.status()
    failing = snc.subscribe("status.x", callback=lambda msg: 1 / 0)
    snc.publish("status.x", b"boom")
    status = statuses.next(timeout=5)
    assert status.type is Events.ERROR
    assert status.data == "CALLBACK_ERROR"
    assert isinstance(status.error, cnats.CallbackError)
    assert isinstance(status.error.__cause__, ZeroDivisionError)
    assert failing.received == 1
    with pytest.raises(cnats.NatsTimeoutError):
        statuses.next(timeout=0.05)
    snc.close()
    assert list(statuses) == []


def test_status_iterator_sees_a_reconnect(nats_server: NatsServer, connect: Callable[..., SyncConnection]) -> None:
    nc = connect(reconnect_time_wait=0.05)
    statuses = nc.status()
    nats_server.restart()
    seen = []
    for status in statuses:
        seen.append(status.type)
        if status.type is Events.RECONNECT:
            break
    assert Events.DISCONNECT in seen and DebugEvents.RECONNECTING in seen
    nc.flush(timeout=5)


def test_close_leaves_no_thread_with_callbacks_consumers_and_services(nats_server: NatsServer) -> None:
    before = set(threading.enumerate())
    nc = cnats.sync.connect(nats_server.url, loop_factory=loop_factory())
    nc.subscribe("a", callback=lambda msg: None)
    nc.subscribe("b", callback=lambda msg: time.sleep(0.05))
    nc.subscribe("c")
    service = nc.services.add("closing", "1.0.0")
    service.add_endpoint("e", lambda msg: msg.respond(b"ok"))
    assert nc.request("e", b"", timeout=2).data == b"ok"
    nc.status()
    for _ in range(3):
        nc.publish("b", b"slow")
    nc.flush()
    assert len(sync_threads()) >= 4
    nc.close()
    assert set(threading.enumerate()) <= before
    assert not sync_threads()


def test_close_from_inside_a_callback(snc: SyncConnection) -> None:
    closed = threading.Event()

    def close_it(msg: cnats.Msg) -> None:
        snc.close()
        closed.set()

    snc.subscribe("close.me", callback=close_it)
    snc.publish("close.me", b"")
    assert closed.wait(5)
    eventually(lambda: not sync_threads())
    assert snc.is_closed
    with pytest.raises(cnats.ConnectionClosedError):
        snc.publish("x", b"")
    with pytest.raises(cnats.ConnectionClosedError):
        snc.request("x", b"")


def test_operations_after_close_raise_connection_closed(snc: SyncConnection) -> None:
    sub = snc.subscribe("after.close")
    snc.close()
    for call in (
        lambda: snc.publish("x", b""),
        lambda: snc.request("x", b"", timeout=1),
        lambda: snc.flush(),
        lambda: snc.subscribe("x"),
        lambda: snc.drain(),
        lambda: snc.status(),
    ):
        with pytest.raises(cnats.ConnectionClosedError):
            call()
    with pytest.raises(cnats.SubscriptionClosedError):
        sub.next_msg(1)
    assert list(sub) == []


def test_interpreter_exit_without_close_is_prompt(nats_server: NatsServer) -> None:
    script = textwrap.dedent(
        f"""
        import atexit, threading, time

        def left() -> None:  # registered first: runs after cnats.sync's own exit handler
            names = [t.name for t in threading.enumerate() if t.name.startswith("cnats-sync")]
            print("left:", names, flush=True)

        atexit.register(left)
        import cnats.sync
        nc = cnats.sync.connect({nats_server.url!r})
        nc.subscribe("exit.a", callback=lambda msg: time.sleep(0.01))
        sub = nc.subscribe("exit.b")
        nc.publish("exit.a", b"x")
        nc.flush()
        assert nc.request is not None
        print("connected", len(threading.enumerate()), flush=True)
        """
    )
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("connected")
    assert "left: []" in done.stdout
    assert "Traceback" not in done.stderr
    assert time.monotonic() - start < 10


def test_a_fatal_close_ends_readers_with_its_error_and_every_thread(
    nats_server: NatsServer, connect: Callable[..., SyncConnection]
) -> None:
    nc = connect(reconnect=False)
    sub = nc.subscribe("fatal")
    nc.subscribe("fatal.cb", callback=lambda msg: None)
    kv_like_helper = nc.services.add("fatal", "1.0.0", stats_handler=lambda info: None)
    kv_like_helper.add_endpoint("e", lambda msg: msg.respond(b""))
    assert list(nc.services.client(max_wait=1).stats("fatal"))  # the helper thread is running now
    nats_server.stop()
    with pytest.raises(cnats.NatsError):
        sub.next_msg(timeout=10)
    eventually(lambda: nc.is_closed and not sync_threads(), what="no thread left after a fatal close")
    with pytest.raises(cnats.ConnectionClosedError):
        nc.publish("x", b"")
    nc.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_is_told_to_connect_again(nats_server: NatsServer) -> None:
    script = textwrap.dedent(
        f"""
        import os, warnings
        import cnats, cnats.sync
        warnings.simplefilter("ignore", DeprecationWarning)  # fork of a threaded process: what this test is about
        nc = cnats.sync.connect({nats_server.url!r})
        pid = os.fork()
        if pid == 0:
            code = 0
            for call in (lambda: nc.request("x", b"", timeout=1), lambda: nc.publish("x", b""), nc.flush):
                try:
                    call()
                    code = 1
                except cnats.ConnectionClosedError as err:
                    code = code if "fork" in str(err) or "closed" in str(err) else 2
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status), flush=True)
        nc.publish("still.fine", b"")
        nc.flush()
        nc.close()
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "child 0" in done.stdout
