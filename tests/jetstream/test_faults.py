"""JetStream under faults and bad input: a server restart during consume() of a
durable consumer, fetch against a deleted stream or consumer, consume() with and without abort_on_missing_resource
when its consumer or stream goes away, API requests into a network that stopped answering (NatsTimeoutError), and
invalid names and configurations (InvalidNameError before any request, the server's JetStreamApiError with its
err_code). Every await that could hang is bounded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from helpers.core import eventually

import cnats
from cnats import NatsConnection
from cnats.errors import (
    ConsumerNotFoundError,
    InvalidNameError,
    InvalidOptionError,
    JetStreamApiError,
    JetStreamNotEnabledError,
    NatsError,
    NatsTimeoutError,
    NoRespondersError,
    StreamNotFoundError,
)
from cnats.jetstream import (
    AckPolicy,
    ConsumerEvents,
    ConsumerMessages,
    ConsumerStatus,
    JetStreamClient,
    JetStreamManager,
    JsMsg,
)
from cnats.testing import ChaosProxy, NatsServer


async def publish_n(js: JetStreamClient, n: int, subject: str = "s.x", start: int = 0) -> None:
    for i in range(start, start + n):
        await js.publish_async(subject, f"{i}")
    await asyncio.wait_for(js.publish_async_completed(), 10)


class StatusLog:
    """Collects the status events of a ConsumerMessages from now on."""

    def __init__(self, messages: ConsumerMessages) -> None:
        self.events: list[ConsumerStatus] = []
        self._it = messages.status()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for status in self._it:
            self.events.append(status)

    def has(self, kind: ConsumerEvents) -> bool:
        return any(e.type == kind for e in self.events)

    async def aclose(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


# -- a server restart -------------------------------------------------------------------------------------------------


@pytest.fixture
async def rnc(nats_server: NatsServer) -> AsyncIterator[NatsConnection]:
    """A connection that reconnects quickly and forever (for restarts)."""
    conn = await cnats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    try:
        yield conn
    finally:
        await conn.close()


async def test_durable_consume_resumes_after_server_restart(nats_server: NatsServer, rnc: NatsConnection) -> None:
    jsm = await rnc.jetstream_manager()
    await jsm.streams.add(name="F", subjects=["f.>"], storage="file")
    await jsm.consumers.add("F", durable_name="d", ack_policy=AckPolicy.EXPLICIT, ack_wait=2)
    js = rnc.jetstream(timeout=2)
    await publish_n(js, 100, subject="f.x")
    consumer = await js.consumers.get("F", "d")
    messages = await consumer.consume(max_messages=20, expires=2, idle_heartbeat=0.5)
    got: list[int] = []

    async def read() -> None:
        async for msg in messages:
            got.append(int(msg.data))
            msg.ack()
            await asyncio.sleep(0.002)  # slow enough that pulls are open when the server goes away

    reader = asyncio.create_task(read())
    await eventually(lambda: len(got) >= 30, timeout=10)
    await asyncio.to_thread(nats_server.restart)

    async def published(i: int) -> bool:
        try:
            await js.publish("f.x", f"{i}")
        except NatsError:
            return False
        return True

    for i in range(100, 150):
        await eventually(lambda i=i: published(i), timeout=15, interval=0.1, what=f"publish {i}")
    await eventually(lambda: set(got) >= set(range(150)), timeout=20, what="all 150 messages")
    assert not messages.closed.done()  # consume() kept going through the restart
    info = await jsm.consumers.info("F", "d")  # the durable (file storage) survived with its state
    assert info.delivered.stream_seq == 150

    async def all_acked() -> bool:
        return (await jsm.consumers.info("F", "d")).num_ack_pending == 0

    await eventually(all_acked, timeout=10, interval=0.1)
    await asyncio.wait_for(messages.close(), 5)
    await asyncio.wait_for(reader, 5)


# -- missing streams and consumers ----------------------------------------------------------------------------------


async def run_fetch(messages: ConsumerMessages, bound: float) -> tuple[list[JsMsg], BaseException | None, float]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    got: list[JsMsg] = []

    async def read() -> None:
        async for msg in messages:
            got.append(msg)

    error: BaseException | None = None
    try:
        await asyncio.wait_for(read(), bound)
    except (NatsError, asyncio.TimeoutError) as exc:
        error = exc
    return got, error, loop.time() - start


@pytest.mark.parametrize("deleted", ["stream", "consumer"])
async def test_fetch_after_the_stream_or_consumer_is_deleted(
    js: JetStreamClient, jsm: JetStreamManager, deleted: str
) -> None:
    """The pull finds no responder and the server answers 503: the fetch fails at once with NoRespondersError
    (not at the pull's expiry, not by missed heartbeats); next() is a fetch of one and fails the same way."""
    await jsm.consumers.add("S", durable_name="d", ack_policy=AckPolicy.EXPLICIT)
    await publish_n(js, 3)
    consumer = await js.consumers.get("S", "d")
    if deleted == "stream":
        await jsm.streams.delete("S")
    else:
        await jsm.consumers.delete("S", "d")
    messages = await asyncio.wait_for(consumer.fetch(max_messages=10, expires=10, idle_heartbeat=0.5), 5)
    got, error, took = await run_fetch(messages, bound=15)
    assert got == []
    assert isinstance(error, NoRespondersError), repr(error)
    assert took < 1
    assert isinstance(messages.closed.result(), NoRespondersError)
    with pytest.raises(NoRespondersError):
        await asyncio.wait_for(consumer.next(expires=1), 10)


async def test_consume_with_callback_aborts_when_consumer_deleted(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await jsm.consumers.add("S", durable_name="d", ack_policy=AckPolicy.EXPLICIT)
    consumer = await js.consumers.get("S", "d")
    got: list[int] = []
    messages = await consumer.consume(
        expires=2, idle_heartbeat=1, abort_on_missing_resource=True, callback=lambda m: got.append(m.seq)
    )
    await publish_n(js, 3)
    await eventually(lambda: got == [1, 2, 3])
    await jsm.consumers.delete("S", "d")
    error = await asyncio.wait_for(messages.closed, 10)
    assert isinstance(error, ConsumerNotFoundError)


async def test_consume_with_callback_keeps_going_when_consumer_deleted(
    js: JetStreamClient, jsm: JetStreamManager
) -> None:
    await jsm.consumers.add("S", durable_name="d", ack_policy=AckPolicy.EXPLICIT)
    consumer = await js.consumers.get("S", "d")
    got: list[int] = []

    async def on_msg(msg: JsMsg) -> None:
        got.append(int(msg.data))
        msg.ack()

    messages = await consumer.consume(expires=2, idle_heartbeat=0.5, callback=on_msg)
    log = StatusLog(messages)
    await publish_n(js, 3)
    await eventually(lambda: got == [0, 1, 2])
    await jsm.consumers.delete("S", "d")
    await eventually(lambda: log.has(ConsumerEvents.CONSUMER_DELETED), timeout=5, what="CONSUMER_DELETED")
    await eventually(lambda: log.has(ConsumerEvents.CONSUMER_NOT_FOUND), timeout=5, what="CONSUMER_NOT_FOUND")
    assert not messages.closed.done()
    # the consumer comes back (starting after what was already read): consuming resumes by itself
    await jsm.consumers.add(
        "S", durable_name="d", ack_policy=AckPolicy.EXPLICIT, deliver_policy="by_start_sequence", opt_start_seq=4
    )
    await publish_n(js, 2, start=3)
    await eventually(lambda: got == [0, 1, 2, 3, 4], timeout=10)
    await asyncio.wait_for(messages.close(), 5)
    await log.aclose()


async def test_consume_keeps_going_when_stream_deleted(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await jsm.consumers.add("S", durable_name="d", ack_policy=AckPolicy.EXPLICIT)
    consumer = await js.consumers.get("S", "d")
    messages = await consumer.consume(expires=2, idle_heartbeat=0.5)
    log = StatusLog(messages)
    await asyncio.sleep(0.1)
    await jsm.streams.delete("S")
    await eventually(lambda: log.has(ConsumerEvents.STREAM_NOT_FOUND), timeout=5, what="STREAM_NOT_FOUND")
    assert not messages.closed.done()
    await jsm.streams.add(name="S", subjects=["s.>"], storage="memory")
    await jsm.consumers.add("S", durable_name="d", ack_policy=AckPolicy.EXPLICIT)
    await publish_n(js, 1)
    msg = await asyncio.wait_for(messages.__anext__(), 10)
    assert msg.seq == 1
    await asyncio.wait_for(messages.close(), 5)
    await log.aclose()


# -- API requests into a silent network ---------------------------------------------------------------------------


async def test_api_request_timeout_when_the_network_is_silent(nats_server: NatsServer) -> None:
    async with ChaosProxy(nats_server.url) as proxy:
        nc = await cnats.connect(proxy.url, ping_interval=60)
        try:
            jsm = await asyncio.wait_for(nc.jetstream_manager(timeout=0.3), 5)
            await jsm.streams.add(name="S", subjects=["s.>"], storage="memory")
            js = nc.jetstream(timeout=0.3)
            proxy.blackhole()
            calls = [
                lambda: jsm.streams.info("S"),
                lambda: jsm.consumers.add("S", durable_name="d", ack_policy=AckPolicy.EXPLICIT),
                lambda: jsm.get_account_info(),
                lambda: nc.jetstream_manager(timeout=0.3),  # its account-info check
                lambda: js.consumers.get("S", "d"),
                lambda: js.subscribe("s.x", durable="p"),
                lambda: js.pull_subscribe("s.x", stream="S", durable="q"),
                lambda: js.publish("s.x", b"x"),
            ]
            for call in calls:
                start = time.monotonic()
                with pytest.raises(NatsTimeoutError) as err:
                    await asyncio.wait_for(call(), 5)
                assert isinstance(err.value, TimeoutError)
                assert 0.25 <= time.monotonic() - start < 2.5
            proxy.blackhole(False)
            info = await asyncio.wait_for(jsm.streams.info("S"), 5)  # the connection is fine again
            assert info.config.name == "S"
        finally:
            proxy.blackhole(False)
            await nc.close()


# -- bad input ------------------------------------------------------------------------------------------------------


async def test_invalid_names_in_legacy_subscriptions(js: JetStreamClient, jsm: JetStreamManager) -> None:
    for bad in ["a.b", "a b", "a*", "a>", "a/b", "a\\b", "a\tb"]:
        for call in (
            lambda n: js.subscribe("s.x", stream=n, durable="d"),
            lambda n: js.subscribe("s.x", durable=n),
            lambda n: js.subscribe("s.x", name=n),
            lambda n: js.pull_subscribe("s.x", stream=n, durable="d"),
            lambda n: js.pull_subscribe("s.x", durable=n),
            lambda n: js.subscribe("s.x", stream="S", durable=n, bind=True),
        ):
            with pytest.raises(InvalidNameError) as err:
                await asyncio.wait_for(call(bad), 5)
            assert isinstance(err.value, InvalidOptionError) and isinstance(err.value, ValueError)
            assert "cannot contain" in str(err.value)
    with pytest.raises(InvalidNameError):
        await asyncio.wait_for(js.pull_subscribe("s.x", stream="S", durable="", name="a.b"), 5)
    assert [c.name async for c in jsm.consumers.list("S")] == []  # nothing was created


async def test_server_rejects_conflicting_stream_configs(jsm: JetStreamManager) -> None:
    cases: list[tuple[dict[str, object], int, int]] = [
        ({"name": "O", "subjects": ["s.x"]}, 400, 10065),  # overlaps stream S
        ({"name": "S", "subjects": ["s.>"], "max_msgs": 5}, 400, 10058),  # same name, other config
        ({"name": "D", "subjects": ["d.>"], "duplicate_window": 100.0, "max_age": 10.0}, 500, 10052),
        ({"name": "A", "subjects": ["a.*", "a.b"]}, 500, 10052),  # overlapping subjects in one stream
        ({"name": "R", "subjects": ["r.>"], "num_replicas": 3}, 500, 10074),  # replicas without a cluster
    ]
    for fields, status, err_code in cases:
        with pytest.raises(JetStreamApiError) as err:
            await asyncio.wait_for(jsm.streams.add(**fields), 5)
        assert (err.value.status, err.value.err_code) == (status, err_code), fields
        assert err.value.code == str(status)
        assert str(err.value) == err.value.description and err.value.description
    assert [n async for n in jsm.streams.names()] == ["S"]


async def test_max_bytes_smaller_than_max_msg_size(jsm: JetStreamManager, js: JetStreamClient) -> None:
    """Server 2.15 accepts ``max_bytes`` < ``max_msg_size``; the conflict shows when publishing: a message over
    ``max_msg_size`` is refused (10054), one between the two is refused by a discard-new stream (503, 10077: an API
    status 503 maps to JetStreamNotEnabledError) and leaves a discard-old stream empty."""
    info = await jsm.streams.add(name="B", subjects=["b.>"], max_bytes=1000, max_msg_size=2000, discard="new")
    assert (info.config.max_bytes, info.config.max_msg_size) == (1000, 2000)
    assert (await asyncio.wait_for(js.publish("b.x", b"x" * 100), 5)).seq == 1
    with pytest.raises(JetStreamApiError) as err:
        await asyncio.wait_for(js.publish("b.x", b"x" * 2500), 5)
    assert (err.value.status, err.value.err_code) == (400, 10054)
    with pytest.raises(JetStreamApiError) as err:
        await asyncio.wait_for(js.publish("b.x", b"x" * 1500), 5)
    assert (err.value.status, err.value.err_code) == (503, 10077)
    assert isinstance(err.value, JetStreamNotEnabledError)
    assert (await jsm.streams.info("B")).state.messages == 1

    await jsm.streams.add(name="C", subjects=["c.>"], max_bytes=1000, max_msg_size=2000, discard="old")
    ack = await asyncio.wait_for(js.publish("c.x", b"x" * 1500), 5)
    assert ack.seq == 1
    assert (await jsm.streams.info("C")).state.messages == 0  # stored, and at once over max_bytes


async def test_server_rejects_bad_consumer_configs(jsm: JetStreamManager, js: JetStreamClient) -> None:
    await jsm.streams.add(name="W", subjects=["w.>"], retention="workqueue", storage="memory")
    await jsm.consumers.add("W", durable_name="w1", ack_policy=AckPolicy.EXPLICIT)
    cases: list[tuple[str, dict[str, object], int, int]] = [
        ("S", {"durable_name": "c1", "deliver_policy": "by_start_sequence"}, 400, 10094),
        ("S", {"durable_name": "c2", "deliver_policy": "by_start_time"}, 400, 10094),
        ("S", {"durable_name": "c3", "deliver_subject": "x.y", "max_waiting": 10}, 400, 10080),
        ("S", {"durable_name": "c4", "deliver_subject": "x.y", "flow_control": True}, 400, 10108),
        ("W", {"durable_name": "w2", "ack_policy": AckPolicy.EXPLICIT}, 400, 10099),
        ("W", {"durable_name": "w3", "ack_policy": AckPolicy.NONE}, 400, 10084),
    ]
    for stream, fields, status, err_code in cases:
        with pytest.raises(JetStreamApiError) as err:
            await asyncio.wait_for(jsm.consumers.add(stream, **fields), 5)
        assert (err.value.status, err.value.err_code) == (status, err_code), fields
    with pytest.raises(StreamNotFoundError) as nf:
        await asyncio.wait_for(jsm.consumers.add("MISSING", durable_name="x"), 5)
    assert (nf.value.status, nf.value.err_code) == (404, 10059)
    # the same server errors come through the legacy subscribe
    with pytest.raises(JetStreamApiError) as err:
        await asyncio.wait_for(js.subscribe("w.x", durable="w4"), 5)
    assert err.value.err_code == 10100  # filtered consumer not unique on workqueue stream
    with pytest.raises(JetStreamApiError) as err:
        await asyncio.wait_for(js.subscribe("s.x", durable="f", flow_control=True), 5)
    assert err.value.err_code == 10108
    assert [c.name async for c in jsm.consumers.list("S")] == []
