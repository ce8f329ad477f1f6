"""cnats across a supercluster (clusters ``east`` and ``west`` joined by gateways, one JetStream meta group): a request
answered in the other cluster, a stream placed in the other cluster by name, and a mirror in the other cluster found
and read through ``Stream.best()``. The tests share the module's supercluster (the ``nats_supercluster`` fixture), so
each uses its own subjects and streams and stops no node; the failover test has its own (test_supercluster_failover)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from helpers.core import eventually

import cnats
from cnats import Msg, NatsConnection
from cnats.errors import JetStreamApiError, NoRespondersError
from cnats.jetstream import (
    AckPolicy,
    JetStreamClient,
    Placement,
    PublishExpect,
    StorageType,
    StreamSource,
)
from cnats.testing import NatsServer, NatsSupercluster

Connect = Callable[[NatsServer], Awaitable[NatsConnection]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """A connection to one cluster (any of its nodes), closed at teardown."""
    conns: list[NatsConnection] = []

    async def make(cluster: NatsServer) -> NatsConnection:
        conn = await cnats.connect(cluster.urls, timeout=5)
        conns.append(conn)
        return conn

    try:
        yield make
    finally:
        for conn in conns:
            await conn.close()


def server_of(nc: NatsConnection) -> str:
    assert nc.info is not None
    return nc.info.server_name


async def stream_reachable(js: JetStreamClient, subject: str, stream: str) -> None:
    """Wait until a publish to ``subject`` reaches ``stream``: its interest crosses the gateway a moment after the
    stream exists. The probe expects another stream, so the stream refuses it without storing it."""

    async def reachable() -> bool:
        try:
            await js.publish(subject, b"", expect=PublishExpect(stream_name=f"not-{stream}"))
        except NoRespondersError:
            return False
        except JetStreamApiError:
            return True
        raise AssertionError("the probe was stored")

    await eventually(reachable, timeout=10, interval=0.02, what=f"{subject} reaches {stream}")


async def consumer_reachable(nc: NatsConnection, stream: str, consumer: str) -> None:
    """Wait until a pull request for ``consumer`` (of an empty stream) reaches it: a pull that does not wait is then
    answered "no messages", and takes nothing."""

    async def reachable() -> bool:
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        try:
            answer = await nc.request(subject, b'{"batch":1,"no_wait":true}', timeout=2)
        except NoRespondersError:
            return False
        assert answer.headers is not None and answer.headers.code == 404, answer
        return True

    await eventually(reachable, timeout=10, interval=0.02, what=f"consumer {consumer} reachable")


async def test_request_answered_in_the_other_cluster(nats_supercluster: NatsSupercluster, connect: Connect) -> None:
    east, west = nats_supercluster.clusters["east"], nats_supercluster.clusters["west"]
    responder = await connect(east)
    responder.subscribe("where.echo", callback=lambda m: m.respond(server_of(responder).encode() + b":" + m.data))
    await responder.flush()
    requester = await connect(west)
    assert server_of(requester).startswith("west-") and server_of(responder).startswith("east-")

    # the subscription's interest reaches the other cluster over the gateway a moment later
    answer: list[Msg] = []

    async def answered() -> bool:
        try:
            answer.append(await requester.request("where.echo", b"hi", timeout=2))
        except NoRespondersError:
            return False
        return True

    await eventually(answered, timeout=10, interval=0.02, what="a responder in east answers west")
    assert answer[0].data == f"{server_of(responder)}:hi".encode()
    # once known, every request crosses
    for i in range(20):
        reply = await requester.request("where.echo", str(i).encode(), timeout=2)
        assert reply.data == f"{server_of(responder)}:{i}".encode()


async def test_stream_placed_in_the_other_cluster(nats_supercluster: NatsSupercluster, connect: Connect) -> None:
    nc = await connect(nats_supercluster.clusters["east"])
    jsm = await nc.jetstream_manager()
    info = await jsm.streams.add(
        name="IN_WEST",
        subjects=["inwest.>"],
        num_replicas=2,
        storage=StorageType.MEMORY,
        placement=Placement(cluster="west"),
    )
    assert info.cluster is not None and info.cluster.name == "west"
    peers = {info.cluster.leader, *(p.name for p in info.cluster.replicas or [])}
    assert peers == {"west-n1", "west-n2"}

    js = nc.jetstream()
    await stream_reachable(js, "inwest.probe", "IN_WEST")
    # consumed from the east client, through a durable consumer in west: its pull requests cross the gateway once
    # the consumer's interest has (a pull before that gets no responders)
    await jsm.consumers.add("IN_WEST", durable_name="eastern", ack_policy=AckPolicy.EXPLICIT)
    await consumer_reachable(nc, "IN_WEST", "eastern")
    for i in range(5):
        ack = await js.publish(f"inwest.{i}", str(i).encode())
        assert (ack.stream, ack.seq) == ("IN_WEST", i + 1)

    consumer = await js.consumers.get("IN_WEST", "eastern")
    got = [m async for m in await consumer.fetch(max_messages=5, expires=5)]
    assert [m.data for m in got] == [b"0", b"1", b"2", b"3", b"4"]
    for m in got:
        assert await m.ack_ack(timeout=5)

    async def all_acked() -> bool:
        return (await consumer.info()).num_ack_pending == 0

    await eventually(all_acked, timeout=10, interval=0.02, what="the consumer in west counts every ack")
    await jsm.streams.delete("IN_WEST")


async def test_mirror_in_the_other_cluster_is_the_best_stream(
    nats_supercluster: NatsSupercluster, connect: Connect
) -> None:
    east_nc = await connect(nats_supercluster.clusters["east"])
    west_nc = await connect(nats_supercluster.clusters["west"])
    jsm = await east_nc.jetstream_manager()
    await jsm.streams.add(name="ORDERS", subjects=["orders.>"], placement=Placement(cluster="east"))
    js = east_nc.jetstream()
    await stream_reachable(js, "orders.probe", "ORDERS")
    for i in range(3):
        await js.publish(f"orders.{i}", f"order {i}".encode())
    mirror = await jsm.streams.add(
        name="ORDERS_WEST", mirror=StreamSource(name="ORDERS"), placement=Placement(cluster="west")
    )
    assert mirror.cluster is not None and mirror.cluster.name == "west"

    west_js = west_nc.jetstream()
    orders_seen_from_west = await west_js.streams.get("ORDERS")

    async def mirrored() -> bool:
        alternates = await orders_seen_from_west.alternates()
        info = await (await west_js.streams.get("ORDERS_WEST")).info()
        return len(alternates) == 2 and info.state.messages == 3

    await eventually(mirrored, timeout=15, interval=0.05, what="the mirror listed as an alternate, caught up")

    # the server lists the alternates nearest the asking client first: from west, the mirror in west
    alternates = await orders_seen_from_west.alternates()
    assert [(a.name, a.cluster) for a in alternates] == [("ORDERS_WEST", "west"), ("ORDERS", "east")]
    best = await orders_seen_from_west.best()
    assert best.name == "ORDERS_WEST"
    assert [(await best.get_message(seq)).data for seq in (1, 2, 3)] == [b"order 0", b"order 1", b"order 2"]
    assert (await best.info()).config.mirror is not None

    # from east, the origin itself is the best
    orders_seen_from_east = await js.streams.get("ORDERS")
    assert (await orders_seen_from_east.best()).name == "ORDERS"
    await jsm.streams.delete("ORDERS_WEST")
    await jsm.streams.delete("ORDERS")
