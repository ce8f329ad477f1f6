"""Publishing from many threads and receiving: order per thread, callbacks on worker threads (never the loop's),
a slow callback delaying only its own subscription, bad input raised before anything is sent, limits."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable

import pytest
from sync.support import eventually, loop_idents

import cnats
from cnats import Headers
from cnats.sync import SyncConnection, SyncMsg
from cnats.testing import NatsServer

pytestmark = pytest.mark.nats_server(jetstream=False)


def test_publish_from_many_threads_keeps_each_threads_order(snc: SyncConnection) -> None:
    threads, per_thread = 8, 2_000
    sub = snc.subscribe("order.>", pending_msgs_limit=None, pending_bytes_limit=None)
    start = threading.Barrier(threads)

    def produce(n: int) -> None:
        start.wait()
        for i in range(per_thread):
            snc.publish(f"order.{n}", b"%d" % i)

    workers = [threading.Thread(target=produce, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    snc.flush()
    seen: dict[str, list[int]] = defaultdict(list)
    for _ in range(threads * per_thread):
        msg = sub.next_msg(5)
        seen[msg.subject].append(int(msg.data))
    assert sorted(seen) == [f"order.{n}" for n in range(threads)]
    for values in seen.values():
        assert values == list(range(per_thread))
    with pytest.raises(cnats.NatsTimeoutError):
        sub.next_msg(0.05)


def test_flush_covers_everything_queued_before_it(snc: SyncConnection, connect: object) -> None:
    other = connect()  # type: ignore[operator]
    sub = other.subscribe("flushed")
    other.flush()
    before = snc.stats().out_msgs
    for i in range(5_000):
        snc.publish("flushed", b"%d" % i)
    snc.flush(timeout=5)
    assert snc.stats().out_msgs - before == 5_000
    # the server has them all: the other connection receives every one
    assert [int(sub.next_msg(5).data) for _ in range(5_000)] == list(range(5_000))


def test_payload_kinds_headers_and_reply(snc: SyncConnection) -> None:
    sub = snc.subscribe("kinds")
    buffer = bytearray(b"original")
    snc.publish("kinds", buffer)
    buffer[:] = b"changed!"  # the publish took a copy: the caller may reuse its buffer at once
    snc.publish("kinds", memoryview(b"view"))
    snc.publish("kinds", "text é")
    snc.publish("kinds", b"h", headers={"K": "v", "Multi": ["1", "2"]}, reply="the.reply")
    hdrs = Headers()
    hdrs.append("X", "1")
    snc.publish("kinds", b"big" * 10_000, headers=hdrs)
    hdrs.append("X", "2")  # changing it afterwards changes nothing that was published
    got = [sub.next_msg(2) for _ in range(5)]
    assert [m.data for m in got[:3]] == [b"original", b"view", "text é".encode()]
    assert got[3].headers is not None and got[3].headers.values("Multi") == ["1", "2"] and got[3].reply == "the.reply"
    assert got[4].data == b"big" * 10_000
    assert got[4].headers is not None and got[4].headers.values("X") == ["1"]
    assert all(isinstance(m, SyncMsg) and isinstance(m, cnats.Msg) for m in got)


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        (("", b"x"), {}, cnats.BadSubjectError),
        (("has space", b"x"), {}, cnats.BadSubjectError),
        ((None, b"x"), {}, cnats.BadSubjectError),
        ((["list"], b"x"), {}, cnats.BadSubjectError),
        (("ok", 123), {}, cnats.BadPayloadError),
        (("ok", "\udc80"), {}, cnats.BadPayloadError),
        (("ok", b"x"), {"reply": "bad reply"}, cnats.BadSubjectError),
        (("ok", b"x"), {"headers": {"bad key": "v"}}, cnats.BadHeaderError),
        (("ok", b"x"), {"headers": {"K": "bad\r\nvalue"}}, cnats.BadHeaderError),
        (("ok", b"x"), {"headers": 42}, TypeError),
        (("ok", b"x" * (1024 * 1024 + 1)), {}, cnats.MaxPayloadExceededError),
    ],
)
def test_bad_input_raises_in_the_caller_before_anything_is_sent(
    snc: SyncConnection, args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception]
) -> None:
    sub = snc.subscribe(">")
    snc.flush()
    before = snc.stats().out_msgs
    with pytest.raises(error):
        snc.publish(*args, **kwargs)  # type: ignore[arg-type]
    snc.flush()
    assert snc.stats().out_msgs == before
    with pytest.raises(cnats.NatsTimeoutError):
        sub.next_msg(0.05)


def test_callbacks_run_on_a_worker_thread_one_at_a_time_in_order(snc: SyncConnection) -> None:
    loops = loop_idents()
    seen: list[tuple[int, int]] = []
    running = []

    def callback(msg: SyncMsg) -> None:
        running.append(1)
        assert len(running) == 1  # never two at once
        seen.append((threading.get_ident(), int(msg.data)))
        running.pop()

    sub = snc.subscribe("cb", callback=callback)
    for i in range(500):
        snc.publish("cb", b"%d" % i)
    eventually(lambda: len(seen) == 500)
    idents = {ident for ident, _ in seen}
    assert len(idents) == 1
    assert loops and idents.isdisjoint({*loops, threading.get_ident()})
    assert [n for _, n in seen] == list(range(500))
    with pytest.raises(RuntimeError):
        iter(sub)
    with pytest.raises(RuntimeError):
        sub.next_msg(0)


def test_a_slow_callback_does_not_delay_other_subscriptions_or_requests(snc: SyncConnection) -> None:
    release = threading.Event()
    slow_got: list[bytes] = []
    fast_got: list[bytes] = []

    def slow(msg: SyncMsg) -> None:
        release.wait(10)
        slow_got.append(msg.data)

    snc.subscribe("slow", callback=slow)
    snc.subscribe("fast", callback=lambda msg: fast_got.append(msg.data))
    snc.subscribe("echo", callback=lambda msg: msg.respond(msg.data))
    snc.publish("slow", b"1")
    snc.publish("slow", b"2")
    for i in range(100):
        snc.publish("fast", b"%d" % i)
    eventually(lambda: len(fast_got) == 100, what="the fast subscription is served while the slow one blocks")
    assert snc.request("echo", b"ping", timeout=2).data == b"ping"
    assert slow_got == []
    release.set()
    eventually(lambda: slow_got == [b"1", b"2"])


def test_next_msg_timeout_iterator_and_unsubscribe(snc: SyncConnection) -> None:
    sub = snc.subscribe("it")
    start = time.monotonic()
    with pytest.raises(cnats.NatsTimeoutError) as info:
        sub.next_msg(0.1)
    assert isinstance(info.value, TimeoutError)
    assert time.monotonic() - start >= 0.09
    with pytest.raises(cnats.InvalidOptionError):
        sub.next_msg(-1)
    for i in range(3):
        snc.publish("it", b"%d" % i)
    snc.flush()
    sub.unsubscribe()  # what was received is still handed out, then the iteration ends
    assert [m.data for m in sub] == [b"0", b"1", b"2"]
    assert sub.is_closed
    with pytest.raises(cnats.SubscriptionClosedError):
        sub.next_msg(0)


def test_several_threads_read_one_subscription(snc: SyncConnection) -> None:
    sub = snc.subscribe("shared")
    got: list[int] = []
    lock = threading.Lock()

    def read() -> None:
        for msg in sub:
            with lock:
                got.append(int(msg.data))

    readers = [threading.Thread(target=read) for _ in range(4)]
    for r in readers:
        r.start()
    for i in range(400):
        snc.publish("shared", b"%d" % i)
    eventually(lambda: len(got) == 400)
    sub.unsubscribe()
    for r in readers:
        r.join(5)
        assert not r.is_alive()
    assert sorted(got) == list(range(400))


def test_max_queue_groups_and_context_manager(snc: SyncConnection) -> None:
    limited = snc.subscribe("limited", max=2)
    members = [snc.subscribe("work", queue="q") for _ in range(2)]
    for i in range(4):
        snc.publish("limited", b"%d" % i)
    for i in range(10):
        snc.publish("work", b"%d" % i)
    snc.flush()
    assert [m.data for m in limited] == [b"0", b"1"]
    total = 0
    for member in members:
        while True:
            try:
                member.next_msg(0.05)
            except cnats.NatsTimeoutError:
                break
            total += 1
    assert total == 10
    with snc.subscribe("scoped") as scoped:
        snc.publish("scoped", b"x")
        assert scoped.next_msg(2).data == b"x"
    eventually(lambda: scoped.is_closed)


def test_slow_consumer_drops_beyond_the_pending_limit(snc: SyncConnection) -> None:
    statuses = snc.status()
    release = threading.Event()
    sub = snc.subscribe("sc", callback=lambda msg: release.wait(10), pending_msgs_limit=5)
    for i in range(50):
        snc.publish("sc", b"%d" % i)
    snc.flush()
    eventually(lambda: sub.received == 50)
    assert sub.dropped >= 40
    status = statuses.next(timeout=5)
    assert status.type is cnats.Events.ERROR and status.data == "SLOW_CONSUMER"
    assert isinstance(status.error, cnats.SlowConsumerError)
    release.set()
    eventually(lambda: sub.pending == 0)


def test_subscribe_checks_its_arguments(snc: SyncConnection) -> None:
    with pytest.raises(cnats.BadSubjectError):
        snc.subscribe("bad subject")
    with pytest.raises(cnats.InvalidOptionError):
        snc.subscribe("x", max=0)
    with pytest.raises(cnats.InvalidOptionError):
        snc.subscribe("x", pending_msgs_limit=-1)

    async def coroutine(msg: SyncMsg) -> None:
        pass

    with pytest.raises(cnats.InvalidOptionError):
        snc.subscribe("x", callback=coroutine)  # type: ignore[arg-type]


def test_a_full_outbound_buffer_raises_in_the_caller_and_loses_nothing(
    nats_server: NatsServer, connect: Callable[..., SyncConnection]
) -> None:
    nc = connect(pending_bytes_limit=64 * 1024, reconnect_time_wait=0.05, max_reconnect_attempts=-1)
    sub = nc.subscribe("offline", pending_msgs_limit=None, pending_bytes_limit=None)
    nc.flush()
    statuses = nc.status()
    nats_server.stop()
    while statuses.next(timeout=10).type is not cnats.Events.DISCONNECT:
        pass
    sent = 0
    with pytest.raises(cnats.OutboundBufferLimitError):
        for _ in range(10_000):
            nc.publish("offline", b"%06d" % sent + b"x" * 2_000)
            sent += 1
    assert 10 < sent < 200
    nats_server.start()
    nc.flush(timeout=10)
    assert [int(sub.next_msg(5).data[:6]) for _ in range(sent)] == list(range(sent))
