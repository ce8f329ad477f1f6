"""JetStream through the blocking connection: publishing (acknowledged and pipelined into futures), the manager,
consumers read with next/fetch/consume, acknowledgements sent from worker threads."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest
from sync.support import eventually, loop_factory, loop_idents

import cnats
import cnats.sync
from cnats.jetstream import AckPolicy, ConsumerConfig, PubAck, StorageType
from cnats.sync import SyncConnection, SyncJetStream, SyncJsMsg
from cnats.testing import NatsServer


@pytest.fixture
def js(snc: SyncConnection) -> SyncJetStream:
    jsm = snc.jetstream_manager()
    jsm.streams.add(name="S", subjects=["s.>"], storage=StorageType.MEMORY)
    return snc.jetstream()


def _durable(snc: SyncConnection, name: str = "d", **config: object) -> None:
    snc.jetstream_manager().consumers.add(
        "S", ConsumerConfig(durable_name=name, ack_policy=AckPolicy.EXPLICIT, ack_wait=30.0, **config)
    )


def test_publish_and_errors(js: SyncJetStream) -> None:
    ack = js.publish("s.one", b"1", msg_id="m1")
    assert isinstance(ack, PubAck) and ack.stream == "S" and ack.seq == 1
    assert js.publish("s.one", b"1", msg_id="m1").duplicate
    with pytest.raises(cnats.NoRespondersError):
        js.publish("nostream.here", b"")
    with pytest.raises(cnats.InvalidOptionError):
        js.publish("s.one", b"", timeout=0)


def test_publish_async_futures_from_threads(js: SyncJetStream, snc: SyncConnection) -> None:
    futures: list[concurrent.futures.Future[PubAck]] = []
    lock = threading.Lock()

    def produce(n: int) -> None:
        for i in range(200):
            future = js.publish_async(f"s.t{n}", b"%d" % i)
            with lock:
                futures.append(future)

    producers = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
    for p in producers:
        p.start()
    for p in producers:
        p.join()
    js.publish_async_completed(timeout=10)
    assert js.publish_async_pending == 0
    seqs = sorted(f.result(0).seq for f in futures)
    assert seqs == list(range(1, 801))
    info = snc.jetstream_manager().streams.info("S")
    assert info.state.messages == 800
    failed = js.publish_async("nostream.here", b"")
    with pytest.raises(cnats.NoRespondersError):
        failed.result(5)


def test_publish_async_bad_input_raises_before_sending(js: SyncJetStream, snc: SyncConnection) -> None:
    with pytest.raises(cnats.BadSubjectError):
        js.publish_async("bad subject", b"")
    with pytest.raises(cnats.BadPayloadError):
        js.publish_async("s.x", 42)  # type: ignore[arg-type]
    with pytest.raises(cnats.InvalidOptionError):
        js.publish_async("s.x", b"", timeout=-1)
    assert snc.jetstream_manager().streams.info("S").state.messages == 0


def test_publish_async_waits_for_room_at_most_the_stall_wait(snc: SyncConnection) -> None:
    js = snc.jetstream(publish_async_max_pending=1, publish_async_stall_wait=0.3)
    snc.subscribe("silent.>")  # takes the publishes and never acknowledges them
    snc.flush()
    first = js.publish_async("silent.a", b"1", timeout=10)
    snc.flush()
    sent = snc.stats().out_msgs
    started = time.monotonic()
    with pytest.raises(cnats.NatsTimeoutError, match=r"publish_async waited 0\.3 s for room"):
        js.publish_async("silent.b", b"2")
    assert 0.25 < time.monotonic() - started < 3
    snc.flush()
    assert snc.stats().out_msgs == sent and js.publish_async_pending == 1  # nothing more was sent
    assert not first.done()
    with pytest.raises(cnats.InvalidOptionError, match="publish_async_stall_wait"):
        snc.jetstream(publish_async_stall_wait=0)


def test_consumer_next_and_fetch_with_acks(js: SyncJetStream, snc: SyncConnection) -> None:
    for i in range(5):
        js.publish("s.f", b"%d" % i)
    _durable(snc)
    consumer = js.consumers.get("S", "d")
    assert consumer.name == "d" and consumer.stream == "S"
    first = consumer.next(expires=2)
    assert isinstance(first, SyncJsMsg) and first.data == b"0" and first.seq == 1
    first.ack()
    batch = consumer.fetch(max_messages=4, expires=5)
    msgs = list(batch)
    assert [m.data for m in msgs] == [b"1", b"2", b"3", b"4"]
    for m in msgs:
        m.ack()
    assert msgs[0].info.stream == "S" and msgs[0].info.consumer == "d"
    eventually(lambda: consumer.info().num_ack_pending == 0)
    assert consumer.next(expires=1) is None


def test_consume_with_a_callback_acks_from_the_worker_thread(js: SyncJetStream, snc: SyncConnection) -> None:
    _durable(snc)
    consumer = js.consumers.get("S", "d")
    loops = loop_idents()
    seen: list[tuple[bytes, int]] = []

    def handle(msg: SyncJsMsg) -> None:
        seen.append((msg.data, threading.get_ident()))
        if msg.data == b"2" and not msg.redelivered:
            msg.nak()  # redelivered, then acked
        else:
            msg.ack()

    messages = consumer.consume(callback=handle, max_messages=10)
    for i in range(5):
        js.publish_async("s.c", b"%d" % i)
    js.publish_async_completed(5)
    eventually(lambda: len(seen) >= 6, what="five messages and one redelivery")
    assert loops and {ident for _, ident in seen}.isdisjoint({*loops, threading.get_ident()})
    eventually(lambda: consumer.info().num_ack_pending == 0 and consumer.info().num_pending == 0)
    with pytest.raises(RuntimeError):
        iter(messages)
    messages.stop()


def test_consume_iterator_ordered_consumer_and_ack_ack(js: SyncJetStream) -> None:
    for i in range(3):
        js.publish("s.o", b"%d" % i)
    ordered = js.consumers.get("S")
    with ordered.consume(max_messages=2) as messages:
        got = [next(messages).data for _ in range(3)]
    assert got == [b"0", b"1", b"2"]
    assert messages.received >= 3


def test_ack_ack_and_term(js: SyncJetStream, snc: SyncConnection) -> None:
    js.publish("s.a", b"a")
    js.publish("s.a", b"b")
    _durable(snc)
    consumer = js.consumers.get("S", "d")
    msg = consumer.next(expires=2)
    assert msg is not None
    assert msg.ack_ack(timeout=2) is True
    assert msg.ack_ack(timeout=2) is False  # already acknowledged
    second = consumer.next(expires=2)
    assert second is not None
    second.term("not wanted")
    with pytest.raises(cnats.InvalidOptionError):
        second.term(42)  # type: ignore[arg-type]
    with pytest.raises(cnats.InvalidOptionError):
        second.nak("soon")  # type: ignore[arg-type]
    eventually(lambda: consumer.info().num_ack_pending == 0)


def test_consumer_errors_are_raised_at_the_call(js: SyncJetStream) -> None:
    with pytest.raises(cnats.ConsumerNotFoundError):
        js.consumers.get("S", "missing")
    with pytest.raises(cnats.StreamNotFoundError):
        js.consumers.get("NOSTREAM")
    ordered = js.consumers.get("S")
    with pytest.raises(cnats.InvalidOptionError):
        ordered.fetch(max_messages=1, max_bytes=10)


def test_manager_listing_is_a_blocking_iterator(js: SyncJetStream, snc: SyncConnection) -> None:
    jsm = snc.jetstream_manager()
    names = list(jsm.streams.names())
    assert names == ["S"]
    stream = jsm.streams.get("S")
    assert stream.info().config.name == "S"
    with pytest.raises(cnats.StreamNotFoundError):
        jsm.streams.info("NOPE")


def test_drain_lets_a_consume_callback_ack_what_it_received(
    js: SyncJetStream, snc: SyncConnection, nats_server: NatsServer
) -> None:
    _durable(snc)
    for i in range(20):
        js.publish_async("s.d", b"%d" % i)
    js.publish_async_completed(5)
    handled: list[bytes] = []

    def handle(msg: SyncJsMsg) -> None:
        handled.append(msg.data)
        msg.ack()

    js.consumers.get("S", "d").consume(callback=handle, max_messages=50)
    eventually(lambda: len(handled) >= 1)
    snc.drain(timeout=10)
    assert snc.is_closed
    with cnats.sync.connect(nats_server.url, loop_factory=loop_factory()) as other:  # the acks all arrived
        info = other.jetstream_manager().consumers.info("S", "d")
        assert info.num_ack_pending == 0
        assert info.num_pending == 20 - len(handled)


def test_priority_group_pulls_through_the_blocking_client(js: SyncJetStream, snc: SyncConnection) -> None:
    from cnats.jetstream import PriorityPolicy

    _durable(snc, "grouped", priority_groups=["g"], priority_policy=PriorityPolicy.PINNED_CLIENT)
    for i in range(3):
        js.publish("s.g", b"%d" % i)
    consumer = js.consumers.get("S", "grouped")
    msg = consumer.next(group="g", expires=2)
    assert msg is not None and msg.headers is not None and msg.headers.get("Nats-Pin-Id")
    msg.ack()
    assert [m.data for m in consumer.fetch(max_messages=2, expires=2, group="g")] == [b"1", b"2"]
    with pytest.raises(cnats.JetStreamApiError):
        consumer.next(expires=1)  # a pinned-client consumer refuses a pull without its group
    with pytest.raises(cnats.InvalidOptionError):
        consumer.next(priority=1)  # the group options need a group
    snc.jetstream_manager().consumers.unpin("S", "grouped", "g")
