"""Request/reply through the blocking connection, and draining it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sync.support import eventually, sync_threads

import cnats
from cnats import RequestStrategy
from cnats.sync import SyncConnection, SyncMsg

pytestmark = pytest.mark.nats_server(jetstream=False)


def test_request_reply_with_a_callback_responder(snc: SyncConnection, connect: Callable[..., SyncConnection]) -> None:
    responder = connect()
    responder.subscribe("add", callback=lambda msg: msg.respond(b"%d" % sum(map(int, msg.data.split()))))
    responder.flush()
    reply = snc.request("add", b"1 2 3", timeout=2)
    assert isinstance(reply, SyncMsg)
    assert reply.data == b"6"
    assert reply.respond(b"nobody asked") is False  # a response has no reply subject


def test_requests_from_many_threads(snc: SyncConnection) -> None:
    snc.subscribe("echo", callback=lambda msg: msg.respond(msg.data, headers={"Seen": "1"}))
    results: list[bool] = []

    def ask(n: int) -> None:
        for i in range(50):
            reply = snc.request("echo", b"%d-%d" % (n, i), timeout=5)
            results.append(reply.data == b"%d-%d" % (n, i) and reply.headers is not None)

    askers = [threading.Thread(target=ask, args=(n,)) for n in range(6)]
    for a in askers:
        a.start()
    for a in askers:
        a.join()
    assert results == [True] * 300


def test_no_responders_and_timeout(snc: SyncConnection) -> None:
    with pytest.raises(cnats.NoRespondersError):
        snc.request("nobody.home", b"", timeout=2)
    snc.subscribe("silent")  # listens, never answers
    snc.flush()
    start = time.monotonic()
    with pytest.raises(cnats.NatsTimeoutError) as info:
        snc.request("silent", b"", timeout=0.2)
    assert isinstance(info.value, TimeoutError)
    assert 0.15 <= time.monotonic() - start < 2
    with pytest.raises(cnats.InvalidOptionError):
        snc.request("silent", b"", timeout=0)
    with pytest.raises(cnats.BadSubjectError):
        snc.request("bad subject", b"")


def test_request_no_mux_and_request_many(snc: SyncConnection) -> None:
    for n in range(3):
        snc.subscribe("many", callback=lambda msg, n=n: msg.respond(b"%d" % n))
    snc.flush()
    assert snc.request("many", b"", timeout=2, no_mux=True).data in (b"0", b"1", b"2")
    replies = snc.request_many("many", b"", strategy=RequestStrategy.COUNT, max_messages=3, max_wait=2)
    assert sorted(m.data for m in replies) == [b"0", b"1", b"2"]


def test_drain_lets_callbacks_handle_what_was_received_and_reply(
    snc: SyncConnection, connect: Callable[..., SyncConnection]
) -> None:
    asker = connect()
    handled: list[bytes] = []

    def slow_echo(msg: SyncMsg) -> None:
        time.sleep(0.01)
        handled.append(msg.data)
        msg.respond(msg.data)

    snc.subscribe("drain.echo", callback=slow_echo)
    snc.flush()
    inbox = asker.subscribe("drain.replies")
    for i in range(20):
        asker.publish("drain.echo", b"%d" % i, reply="drain.replies")
    asker.flush()
    eventually(lambda: len(handled) >= 1)
    snc.drain(timeout=10)
    assert snc.is_closed
    assert handled == [b"%d" % i for i in range(20)]
    assert sorted(int(inbox.next_msg(2).data) for _ in range(20)) == list(range(20))
    with pytest.raises(cnats.ConnectionClosedError):
        snc.drain()


def test_drain_timeout_closes_anyway(snc: SyncConnection) -> None:
    release = threading.Event()
    snc.subscribe("stuck", callback=lambda msg: release.wait(5))
    snc.publish("stuck", b"")
    snc.flush()
    with pytest.raises(cnats.DrainTimeoutError):
        snc.drain(timeout=0.2)
    assert snc.is_closed
    release.set()
    eventually(lambda: not sync_threads())


def test_subscription_drain(snc: SyncConnection) -> None:
    handled: list[bytes] = []
    sub = snc.subscribe("sub.drain", callback=lambda msg: (time.sleep(0.005), handled.append(msg.data)))
    for i in range(20):
        snc.publish("sub.drain", b"%d" % i)
    snc.flush()
    sub.drain(timeout=5)
    assert len(handled) == 20
    assert sub.is_closed
    with pytest.raises(cnats.SubscriptionClosedError):
        sub.drain()
    with pytest.raises(cnats.InvalidOptionError):
        snc.subscribe("x").drain(timeout=0)
