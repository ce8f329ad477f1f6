"""JetStream on a 3-node cluster (R3 streams): stream info shows the replicas, publish and consume,
a durable pull consumer and an ordered consumer keep delivering after the node the client is connected to is killed,
and pipelined publishes across a stream-leader change all resolve with unique acknowledged sequences."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest
from helpers.core import eventually

import cnats
from cnats import NatsConnection
from cnats.errors import JetStreamApiError, NatsError, NoRespondersError
from cnats.jetstream import (
    AckPolicy,
    ConsumerMessages,
    JetStreamClient,
    JetStreamManager,
    PubAck,
    PublishExpect,
)
from cnats.testing import NatsServer

NODES = {"n1", "n2", "n3"}


@pytest.fixture
def cluster(nats_server_factory: Callable[..., NatsServer]) -> NatsServer:
    return nats_server_factory(jetstream=True, cluster=3)


@pytest.fixture
async def nc(cluster: NatsServer) -> AsyncIterator[NatsConnection]:
    conn = await cnats.connect(cluster.urls, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def jsm(nc: NatsConnection) -> JetStreamManager:
    manager = await nc.jetstream_manager(timeout=3)
    await manager.streams.add(name="R", subjects=["r.>"], num_replicas=3)

    # The stream exists once its leader says so; the node this client talks to may learn of its subjects a moment
    # later (a publish then gets 503). Probe with a publish the server refuses without storing it.
    async def reachable() -> bool:
        try:
            await nc.jetstream(timeout=2).publish("r.probe", b"", expect=PublishExpect(stream_name="not-R"))
        except NoRespondersError:
            return False
        except JetStreamApiError:
            return True
        raise AssertionError("the probe was stored")

    await eventually(reachable, timeout=10, interval=0.05, what="stream R reachable")
    return manager


@pytest.fixture
def js(nc: NatsConnection, jsm: JetStreamManager) -> JetStreamClient:
    return nc.jetstream(timeout=2)


def node_index(name: str | None) -> int:
    """``NatsServer`` names cluster nodes n1..nN; their index for stop()/restart() is the number - 1."""
    assert name is not None and re.fullmatch(r"n[123]", name), name
    return int(name[1:]) - 1


async def publish_with_retry(js: JetStreamClient, start: int, n: int, timeout: float = 15) -> None:
    """Publish payloads ``start`` .. ``start + n - 1`` one by one, retrying each until it is acknowledged."""
    for i in range(start, start + n):

        async def published(i: int = i) -> bool:
            try:
                await js.publish("r.x", f"{i}")
            except NatsError:
                return False
            return True

        await eventually(published, timeout=timeout, interval=0.05, what=f"publish {i}")


class Reader:
    """Reads a consume() iterator in the background, acking each message and recording its payload as an int."""

    def __init__(self, messages: ConsumerMessages, ack: bool = True) -> None:
        self.messages = messages
        self.ack = ack
        self.got: list[int] = []
        self.redelivered = 0
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for msg in self.messages:
            self.got.append(int(msg.data))
            self.redelivered += msg.redelivered
            if self.ack:
                msg.ack()
            await asyncio.sleep(0.001)  # a reader that takes a little time: the kill comes while pulls are open

    async def close(self) -> None:
        await asyncio.wait_for(self.messages.close(), 5)
        await asyncio.wait_for(self.task, 5)


async def test_r3_stream_info_publish_and_consume(jsm: JetStreamManager, js: JetStreamClient) -> None:
    info = await jsm.streams.info("R")
    assert info.config.num_replicas == 3
    assert info.cluster is not None
    assert info.cluster.name == "cnats-test"
    assert info.cluster.leader in NODES
    assert info.cluster.replicas is not None
    assert {p.name for p in info.cluster.replicas} | {info.cluster.leader} == NODES
    assert len(info.cluster.replicas) == 2

    acks = [await js.publish("r.x", f"{i}") for i in range(50)]
    assert [a.seq for a in acks] == list(range(1, 51))
    assert all(a.stream == "R" for a in acks)

    async def replicas_current() -> bool:
        replicas = (await jsm.streams.info("R")).cluster.replicas  # type: ignore[union-attr]
        return bool(replicas) and all(p.current and not p.offline for p in replicas)

    await eventually(replicas_current, timeout=5, interval=0.05, what="replicas current")
    assert (await jsm.streams.info("R")).state.messages == 50

    consumer_info = await jsm.consumers.add("R", durable_name="d", ack_policy=AckPolicy.EXPLICIT)
    assert consumer_info.cluster is not None and consumer_info.cluster.leader in NODES
    consumer = await js.consumers.get("R", "d")
    got: list[int] = []
    messages = await consumer.fetch(max_messages=50, expires=5)

    async def read() -> None:
        async for msg in messages:
            got.append(int(msg.data))
            await msg.ack_ack()

    await asyncio.wait_for(read(), 10)
    assert got == list(range(50))
    assert (await jsm.consumers.info("R", "d")).num_ack_pending == 0


async def test_durable_consume_survives_killing_the_connected_node(
    cluster: NatsServer, nc: NatsConnection, jsm: JetStreamManager, js: JetStreamClient
) -> None:
    await jsm.consumers.add("R", durable_name="d", ack_policy=AckPolicy.EXPLICIT, ack_wait=2)
    await publish_with_retry(js, 0, 200)
    consumer = await js.consumers.get("R", "d")
    reader = Reader(await consumer.consume(max_messages=20, expires=2, idle_heartbeat=0.5))
    await eventually(lambda: len(reader.got) >= 50, timeout=10)
    killed = nc.info.server_name
    await asyncio.to_thread(cluster.stop, node_index(killed))
    await publish_with_retry(js, 200, 200)
    assert nc.info.server_name in NODES - {killed}  # reconnected to a surviving node
    # acks may be lost in the switch (then those messages come again after ack_wait), but every message arrives
    await eventually(lambda: set(reader.got) >= set(range(400)), timeout=20, what="all 400 messages")
    counts = Counter(reader.got)
    assert set(counts) == set(range(400))
    assert reader.redelivered >= len(reader.got) - 400  # every second delivery says it is a redelivery
    assert not reader.messages.closed.done()  # it is still consuming
    await reader.close()


async def test_ordered_consumer_survives_killing_the_connected_node(
    cluster: NatsServer, nc: NatsConnection, jsm: JetStreamManager, js: JetStreamClient
) -> None:
    await publish_with_retry(js, 0, 200)
    ordered = await js.consumers.get("R")
    reader = Reader(await ordered.consume(max_messages=20, expires=2, idle_heartbeat=0.5), ack=False)
    await eventually(lambda: len(reader.got) >= 50, timeout=10)
    killed = nc.info.server_name
    await asyncio.to_thread(cluster.stop, node_index(killed))
    await publish_with_retry(js, 200, 200)
    await eventually(lambda: len(reader.got) >= 400, timeout=20, what="400 messages")
    await asyncio.sleep(0.2)
    assert reader.got == list(range(400))  # exactly once, in order
    assert reader.redelivered == 0
    await reader.close()


async def test_publish_async_across_stream_leader_change(
    cluster: NatsServer, nc: NatsConnection, jsm: JetStreamManager, js: JetStreamClient
) -> None:
    leader = (await jsm.streams.info("R")).cluster.leader  # type: ignore[union-attr]
    futures: list[asyncio.Future[PubAck]] = []
    kill: asyncio.Future[None] | None = None
    for i in range(2000):
        futures.append(await js.publish_async("r.x", f"{i}"))
        if i == 500:
            kill = asyncio.ensure_future(asyncio.to_thread(cluster.stop, node_index(leader)))
        if i % 10 == 0:
            await asyncio.sleep(0.005)  # spread the publishes over the leader change
    assert kill is not None
    await asyncio.wait_for(kill, 10)
    _, pending = await asyncio.wait(futures, timeout=15)
    assert not pending  # every future resolved: none hangs
    acks: list[PubAck] = []
    for future in futures:
        error = future.exception()
        if error is None:
            acks.append(future.result())
        else:
            assert isinstance(error, NatsError), repr(error)
    assert len(acks) >= 400  # the ones before the kill at least
    seqs = [a.seq for a in acks]
    assert len(set(seqs)) == len(seqs)  # no sequence acknowledged twice
    assert all(a.stream == "R" and not a.duplicate for a in acks)
    assert js.publish_async_pending == 0

    async def new_leader() -> bool:
        try:
            info = await jsm.streams.info("R")
        except NatsError:
            return False
        return info.cluster is not None and info.cluster.leader in NODES - {leader}

    await eventually(new_leader, timeout=10, interval=0.1, what="a new stream leader")
    info = await jsm.streams.info("R")
    assert info.state.messages >= len(acks)  # everything acknowledged is stored
    assert max(seqs) <= info.state.last_seq
    await publish_with_retry(js, 2000, 1)  # and the stream takes publishes again
