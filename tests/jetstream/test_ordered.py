"""The ordered consumer: every stream message once and in order, through consume() and repeated
fetch(), with its options, recovering from the deletion of its server consumer and from a server restart, and its
usage rules (fetch xor consume, no bind)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import pytest
from helpers.core import eventually

import cnats
from cnats import NatsConnection
from cnats.errors import InvalidOptionError, NatsError, StreamNotFoundError
from cnats.jetstream import (
    AckPolicy,
    Consumer,
    ConsumerEvents,
    ConsumerMessages,
    ConsumerStatus,
    DeliverPolicy,
    JetStreamClient,
    JetStreamManager,
    JsMsg,
    OrderedConsumerOptions,
)
from cnats.testing import NatsServer


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[NatsConnection]:
    conn = await cnats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    try:
        yield conn
    finally:
        await conn.close()


async def publish_n(js: JetStreamClient, n: int, subject: str = "s.x", start: int = 0) -> None:
    for i in range(start, start + n):
        await js.publish_async(subject, f"{i}")
    await asyncio.wait_for(js.publish_async_completed(), 10)


class Reader:
    """Reads a consume() iterator in the background, recording the payloads as ints."""

    def __init__(self, messages: ConsumerMessages, delay: float = 0.0) -> None:
        self.messages = messages
        self.delay = delay
        self.got: list[int] = []
        self.seqs: list[int] = []
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for msg in self.messages:
            self.got.append(int(msg.data))
            self.seqs.append(msg.seq)
            if self.delay:
                await asyncio.sleep(self.delay)

    async def wait_for(self, n: int, timeout: float = 10) -> None:
        await eventually(lambda: len(self.got) >= n, timeout=timeout, what=f"{n} messages (have {len(self.got)})")

    async def close(self) -> None:
        await asyncio.wait_for(self.messages.close(), 5)
        await asyncio.wait_for(self.task, 5)


async def test_consume_delivers_everything_in_order(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await publish_n(js, 300)
    oc = await js.consumers.get("S")
    assert isinstance(oc, Consumer)
    assert oc.name == ""  # no server consumer before the first use
    reader = Reader(await oc.consume(max_messages=50))
    assert oc.name != ""
    await publish_n(js, 300, start=300)
    await reader.wait_for(600)
    await asyncio.sleep(0.1)
    assert reader.got == list(range(600))
    assert reader.seqs == list(range(1, 601))
    await reader.close()


async def test_server_consumer_config(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await publish_n(js, 1)
    oc = await js.consumers.get("S", OrderedConsumerOptions(name_prefix="mine_"))
    msg = await oc.next(expires=5)
    assert msg is not None
    msg.ack()  # accepted and ignored
    assert oc.name.startswith("mine_")
    info = await oc.info()
    assert info.name == oc.name
    cfg = info.config
    assert cfg.ack_policy is AckPolicy.NONE
    assert cfg.mem_storage is True
    assert cfg.num_replicas in (None, 0, 1)
    assert cfg.max_deliver == 1
    assert cfg.inactive_threshold == 300.0
    assert cfg.durable_name is None
    assert [c.name async for c in jsm.consumers.list("S")] == [oc.name]


async def test_repeated_fetch_delivers_everything_in_order(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await publish_n(js, 95)
    oc = await js.consumers.get("S")
    got: list[int] = []
    for _ in range(20):
        messages = await oc.fetch(max_messages=10, expires=1)
        batch = [int(m.data) async for m in messages]
        got.extend(batch)
        if len(got) >= 95:
            break
    assert got == list(range(95))
    await publish_n(js, 5, start=95)
    batch = [int(m.data) async for m in await oc.fetch(max_messages=10, expires=1)]
    assert batch == [95, 96, 97, 98, 99]
    assert [m async for m in await oc.fetch(max_messages=10, expires=1)] == []


async def test_next_walks_the_stream(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await publish_n(js, 3)
    oc = await js.consumers.get("S")
    seqs = []
    for _ in range(3):
        msg = await oc.next(expires=2)
        assert msg is not None
        seqs.append(msg.seq)
    assert seqs == [1, 2, 3]
    assert await oc.next(expires=1) is None


async def test_filter_subjects_option(js: JetStreamClient, jsm: JetStreamManager) -> None:
    for i in range(10):
        await js.publish("s.a" if i % 2 == 0 else "s.b", f"{i}")
    await js.publish("s.c", b"c")
    oc = await js.consumers.get("S", OrderedConsumerOptions(filter_subjects="s.b"))
    got = [m.subject async for m in await oc.fetch(max_messages=5, expires=2)]
    assert got == ["s.b"] * 5
    many = await js.consumers.get("S", OrderedConsumerOptions(filter_subjects=["s.a", "s.c"]))
    msgs = [m async for m in await many.fetch(max_messages=6, expires=2)]
    assert [m.subject for m in msgs] == ["s.a"] * 5 + ["s.c"]
    assert [m.seq for m in msgs] == [1, 3, 5, 7, 9, 11]


async def test_deliver_policy_and_start_options(js: JetStreamClient, jsm: JetStreamManager) -> None:
    for i in range(10):
        await js.publish(f"s.{i % 3}", f"{i}")
    by_seq = await js.consumers.get(
        "S", OrderedConsumerOptions(deliver_policy=DeliverPolicy.START_SEQUENCE, opt_start_seq=7)
    )
    assert [m.seq async for m in await by_seq.fetch(max_messages=4, expires=2)] == [7, 8, 9, 10]
    last = await js.consumers.get("S", OrderedConsumerOptions(deliver_policy=DeliverPolicy.LAST))
    assert [m.seq async for m in await last.fetch(max_messages=1, expires=2)] == [10]
    per_subject = await js.consumers.get(
        "S", OrderedConsumerOptions(deliver_policy=DeliverPolicy.LAST_PER_SUBJECT, filter_subjects="s.>")
    )
    assert sorted([m.seq async for m in await per_subject.fetch(max_messages=3, expires=2)]) == [8, 9, 10]
    new = await js.consumers.get("S", OrderedConsumerOptions(deliver_policy=DeliverPolicy.NEW))
    reader = Reader(await new.consume())
    await asyncio.sleep(0.2)
    await js.publish("s.new", b"100")
    await reader.wait_for(1)
    assert reader.seqs == [11]
    await reader.close()
    start = datetime.now(timezone.utc)
    await asyncio.sleep(0.05)
    await js.publish("s.late", b"101")
    by_time = await js.consumers.get(
        "S", OrderedConsumerOptions(deliver_policy=DeliverPolicy.START_TIME, opt_start_time=start)
    )
    assert [m.seq async for m in await by_time.fetch(max_messages=1, expires=2)] == [12]
    assert (await by_time.info()).num_pending == 0


async def test_headers_only_option(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await js.publish("s.h", b"a big body", headers={"X-A": "1"})
    oc = await js.consumers.get("S", OrderedConsumerOptions(headers_only=True))
    msg = await oc.next(expires=2)
    assert msg is not None
    assert msg.data == b""
    assert msg.headers is not None and msg.headers.get("X-A") == "1"
    assert msg.headers.get("Nats-Msg-Size") == "10"


async def test_recovers_after_its_consumer_is_deleted(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await publish_n(js, 200)
    oc = await js.consumers.get("S")
    messages = await oc.consume(max_messages=20, expires=2, idle_heartbeat=1)
    events: list[ConsumerStatus] = []

    async def record() -> None:
        async for status in messages.status():
            events.append(status)

    recorder = asyncio.create_task(record())
    reader = Reader(messages)
    await reader.wait_for(50)
    first_name = oc.name
    assert await jsm.consumers.delete("S", first_name) is True
    publisher = asyncio.create_task(publish_n(js, 300, start=200))
    await reader.wait_for(500, timeout=15)
    await publisher
    await asyncio.sleep(0.2)
    assert reader.got == list(range(500))  # no duplicate, no gap
    assert oc.name != first_name
    assert any(e.type == ConsumerEvents.ORDERED_CONSUMER_RECREATED for e in events)
    assert [c.name async for c in jsm.consumers.list("S")] == [oc.name]
    await reader.close()
    await asyncio.wait_for(recorder, 2)


async def test_recovers_after_server_restart(nats_server: NatsServer) -> None:
    nc = await cnats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    try:
        jsm = await nc.jetstream_manager()
        await jsm.streams.add(name="F", subjects=["f.>"], storage="file")
        js = nc.jetstream(timeout=2)
        await publish_n(js, 100, subject="f.x")
        oc = await js.consumers.get("F")
        reader = Reader(await oc.consume(max_messages=20, expires=2, idle_heartbeat=1))
        await reader.wait_for(100)
        await asyncio.to_thread(nats_server.restart)

        async def published() -> bool:
            try:
                await publish_n(js, 100, subject="f.x", start=100)
            except NatsError:
                return False
            return True

        await eventually(published, timeout=15, interval=0.2)
        await reader.wait_for(200, timeout=20)
        await asyncio.sleep(0.2)
        assert reader.got == list(range(200))
        assert reader.seqs == list(range(1, 201))
        await reader.close()
    finally:
        await nc.close()


async def test_recovers_after_server_restart_mid_stream(nats_server: NatsServer) -> None:
    nc = await cnats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    try:
        jsm = await nc.jetstream_manager()
        await jsm.streams.add(name="F", subjects=["f.>"], storage="file")
        js = nc.jetstream(timeout=2)
        await publish_n(js, 400, subject="f.x")
        oc = await js.consumers.get("F")
        # a slow reader: the restart comes while pulls are outstanding and messages are still on their way
        reader = Reader(await oc.consume(max_messages=20, expires=2, idle_heartbeat=1), delay=0.002)
        await reader.wait_for(50)
        first_name = oc.name
        await asyncio.to_thread(nats_server.restart)

        async def published() -> bool:
            try:
                await publish_n(js, 100, subject="f.x", start=400)
            except NatsError:
                return False
            return True

        await eventually(published, timeout=15, interval=0.2)
        await reader.wait_for(500, timeout=20)
        await asyncio.sleep(0.2)
        assert reader.got == list(range(500))
        assert oc.name != first_name  # the ephemeral consumer did not survive the restart
        await reader.close()
    finally:
        await nc.close()


async def test_fetch_then_consume_and_vice_versa(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await publish_n(js, 2)
    fetcher = await js.consumers.get("S")
    assert [m.seq async for m in await fetcher.fetch(max_messages=1, expires=1)] == [1]
    with pytest.raises(InvalidOptionError) as err:
        await fetcher.consume()
    assert str(err.value) == "ordered consumer initialized as fetch"
    consumer = await js.consumers.get("S")
    messages = await consumer.consume()
    with pytest.raises(InvalidOptionError) as err2:
        await consumer.fetch()
    assert str(err2.value) == "ordered consumer initialized as consume"
    with pytest.raises(InvalidOptionError):
        await consumer.consume()  # one active consume at a time
    await messages.close()


async def test_bind_not_supported(js: JetStreamClient, jsm: JetStreamManager) -> None:
    oc = await js.consumers.get("S")
    with pytest.raises(InvalidOptionError):
        await oc.consume(bind=True)


async def test_missing_stream(js: JetStreamClient) -> None:
    with pytest.raises(StreamNotFoundError):
        await js.consumers.get("NOPE", OrderedConsumerOptions())


async def test_messages_are_jsmsgs_with_info(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await publish_n(js, 2)
    oc = await js.consumers.get("S")
    msgs: list[JsMsg] = [m async for m in await oc.fetch(max_messages=2, expires=1)]
    assert [m.info.stream_sequence for m in msgs] == [1, 2]
    assert [m.info.delivery_sequence for m in msgs] == [1, 2]
    assert all(m.info.consumer == oc.name and m.info.stream == "S" for m in msgs)
    assert [m.info.pending for m in msgs] == [1, 0]
