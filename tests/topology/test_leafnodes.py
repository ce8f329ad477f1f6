"""cnats on a leaf node using the hub's JetStream domain (``nc.jetstream(domain="hub")``): streams, Key-Value and the
object store in the hub, written and read from the leaf; a Key-Value mirror in the leaf's own domain of a hub bucket;
a service on the hub discovered and called from the leaf. The tests share the module's topology (the
``nats_leafnodes`` fixture: hub domain ``hub``, leaf domain ``leaf``), each with its own streams, buckets and subjects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from helpers.core import eventually

import cnats
from cnats import NatsConnection
from cnats.errors import (
    BucketNotFoundError,
    JetStreamApiError,
    NoRespondersError,
    StreamNotFoundError,
    WrongLastSequenceError,
)
from cnats.jetstream import (
    KV,
    AckPolicy,
    ExternalStream,
    JetStreamClient,
    KvOperation,
    PublishExpect,
    StreamSource,
)
from cnats.objectstore import ObjectStoreMeta
from cnats.services import ServiceMsg
from cnats.testing import NatsLeafnodes


@pytest.fixture
async def leaf_nc(nats_leafnodes: NatsLeafnodes) -> AsyncIterator[NatsConnection]:
    async with await cnats.connect(nats_leafnodes.leaf.url) as conn:
        yield conn


@pytest.fixture
async def hub_nc(nats_leafnodes: NatsLeafnodes) -> AsyncIterator[NatsConnection]:
    async with await cnats.connect(nats_leafnodes.hub.url) as conn:
        yield conn


@pytest.fixture
def hub_js(leaf_nc: NatsConnection) -> JetStreamClient:
    """The hub's JetStream, from the leaf."""
    return leaf_nc.jetstream(domain="hub")


async def value_of(kv: KV, key: str) -> bytes | None:
    entry = await kv.get(key)
    return entry.value if entry is not None and entry.operation is KvOperation.PUT else None


# ---------------------------------------------------------------------------------------------------- streams


async def test_stream_in_the_hub_from_the_leaf(leaf_nc: NatsConnection, hub_nc: NatsConnection) -> None:
    jsm = await leaf_nc.jetstream_manager(domain="hub")
    await jsm.streams.add(name="ORDERS", subjects=["orders.>"])
    assert (await (await hub_nc.jetstream_manager()).streams.info("ORDERS")).config.name == "ORDERS"
    with pytest.raises(StreamNotFoundError):
        await (await leaf_nc.jetstream_manager()).streams.info("ORDERS")  # not in the leaf's own domain

    js = leaf_nc.jetstream(domain="hub")

    # The stream's interest reaches the leaf a moment after it exists; the probe expects another stream, so the
    # stream refuses it without storing it.
    async def reachable() -> bool:
        try:
            await js.publish("orders.probe", b"", expect=PublishExpect(stream_name="not-ORDERS"))
        except NoRespondersError:
            return False
        except JetStreamApiError:
            return True
        raise AssertionError("the probe was stored")

    await eventually(reachable, timeout=10, interval=0.02, what="the hub's stream reachable from the leaf")
    for i in range(4):
        ack = await js.publish(f"orders.{i}", f"order {i}".encode())
        assert (ack.stream, ack.seq, ack.domain) == ("ORDERS", i + 1, "hub")

    await jsm.consumers.add("ORDERS", durable_name="leafy", ack_policy=AckPolicy.EXPLICIT)
    consumer = await js.consumers.get("ORDERS", "leafy")
    got = [m async for m in await consumer.fetch(max_messages=4, expires=5)]
    assert [m.data for m in got] == [b"order 0", b"order 1", b"order 2", b"order 3"]
    for m in got:
        assert await m.ack_ack(timeout=5)  # the acknowledgement crosses the leafnode connection too

    async def all_acked() -> bool:
        return (await consumer.info()).num_ack_pending == 0

    await eventually(all_acked, timeout=10, interval=0.02, what="the hub's consumer counts every ack")

    ordered = await js.consumers.get("ORDERS")
    messages = await ordered.consume(max_messages=10)
    seen = []
    async for m in messages:
        seen.append(m.data)
        if len(seen) == 4:
            break
    messages.stop()
    assert seen == [b"order 0", b"order 1", b"order 2", b"order 3"]
    await jsm.streams.delete("ORDERS")


# ---------------------------------------------------------------------------------------------------- Key-Value


async def test_kv_writes_and_reads_through_the_domain(hub_js: JetStreamClient, hub_nc: NatsConnection) -> None:
    kv = await hub_js.views.kv("SETTINGS", history=5)
    assert await kv.put("color", b"red") == 1
    assert await kv.create("size", b"m") == 2
    with pytest.raises(WrongLastSequenceError):
        await kv.create("size", b"l")  # exists
    assert await kv.update("size", b"l", 2) == 3
    with pytest.raises(WrongLastSequenceError):
        await kv.update("size", b"xl", 2)  # stale
    assert await kv.put("color", b"blue", previous_seq=1) == 4
    await kv.put("tmp.a", b"1")
    await kv.put("tmp.b", b"2")
    await kv.delete("color")
    await kv.purge("size")
    await kv.delete("tmp.*")  # wildcards: every matching key, listed through a consumer first
    assert await kv.create("color", b"green") == 11  # over a delete marker (revision 7)

    # read back on the leaf (direct gets, consumers) and in the hub itself
    entry = await kv.get("color")
    assert entry is not None and (entry.value, entry.revision) == (b"green", 11)
    assert (await kv.get("size")).operation is KvOperation.PURGE  # type: ignore[union-attr]
    assert (await kv.get("color", revision=1)).value == b"red"  # type: ignore[union-attr]
    assert [k async for k in await kv.keys()] == ["color"]
    history = [(e.key, e.operation.value) async for e in await kv.history("color")]
    assert history == [("color", "PUT"), ("color", "PUT"), ("color", "DEL"), ("color", "PUT")]
    status = await kv.status()
    assert status.values == 9 and status.history == 5  # color 4, size 1 (purged), tmp.a 2, tmp.b 2
    watcher = await kv.watch("tmp.*", include_history=True)
    async with watcher:
        ops = [(e.key, e.operation.value) for e in [await watcher.__anext__() for _ in range(4)]]
    assert sorted(ops) == [("tmp.a", "DEL"), ("tmp.a", "PUT"), ("tmp.b", "DEL"), ("tmp.b", "PUT")]
    assert (await kv.purge_deletes(older_than=0)).purged == 5  # the markers of size, tmp.a, tmp.b and before

    in_hub = await hub_nc.jetstream().views.kv("SETTINGS", bind_only=True)
    assert await value_of(in_hub, "color") == b"green"
    assert await kv.destroy()
    with pytest.raises(StreamNotFoundError):
        await kv.status()


async def test_kv_write_prefix_is_computed_once_per_bucket(leaf_nc: NatsConnection) -> None:
    # the default API prefix keeps the stream's own subjects; another one is put in front of them
    assert leaf_nc.jetstream().write_prefix == ""
    assert leaf_nc.jetstream(api_prefix="$JS.API.").write_prefix == ""
    assert leaf_nc.jetstream(domain="hub").write_prefix == "$JS.hub.API."
    assert leaf_nc.jetstream(api_prefix="$JS.other.API").write_prefix == "$JS.other.API."
    plain = await leaf_nc.jetstream().views.kv("p")  # made in the leaf's domain, and in the hub's
    in_hub = await leaf_nc.jetstream(domain="hub").views.kv("p")
    assert plain._write_subject("k") == "$KV.p.k" and plain._subject("k") == "$KV.p.k"
    assert in_hub._write_subject("k") == "$JS.hub.API.$KV.p.k" and in_hub._subject("k") == "$KV.p.k"


async def test_kv_mirror_in_the_leaf_domain(leaf_nc: NatsConnection, hub_nc: NatsConnection) -> None:
    origin = await hub_nc.jetstream().views.kv("CATALOG", history=3)
    await origin.put("apple", b"1")
    await origin.put("pear", b"2")

    # a bucket of the leaf's own JetStream, mirroring the hub's bucket through the hub domain's API
    mirror = await leaf_nc.jetstream().views.kv(
        "CATALOG_LOCAL", mirror=StreamSource(name="CATALOG", external=ExternalStream(api="$JS.hub.API"))
    )
    config = (await (await leaf_nc.jetstream_manager()).streams.info("KV_CATALOG_LOCAL")).config
    assert config.mirror is not None and config.mirror.external is not None
    assert config.mirror.external.api == "$JS.hub.API"

    async def mirrored(key: str, value: bytes) -> bool:
        return await value_of(mirror, key) == value

    await eventually(lambda: mirrored("apple", b"1"), timeout=10, interval=0.02, what="apple mirrored to the leaf")
    await eventually(lambda: mirrored("pear", b"2"), timeout=10, interval=0.02, what="pear mirrored to the leaf")
    assert sorted([k async for k in await mirror.keys()]) == ["apple", "pear"]

    # a write through the mirror goes to the origin in the hub (its external API), then comes back mirrored
    revision = await mirror.put("apple", b"3")

    async def in_origin() -> bool:
        entry = await origin.get("apple")
        return entry is not None and (entry.revision, entry.value) == (revision, b"3")

    await eventually(in_origin, timeout=10, interval=0.02, what="the write stored in the hub's bucket")
    await eventually(lambda: mirrored("apple", b"3"), timeout=10, interval=0.02, what="the write mirrored back")
    await origin.put("plum", b"4")
    await eventually(lambda: mirrored("plum", b"4"), timeout=10, interval=0.02, what="a later write mirrored")
    await mirror.destroy()
    await origin.destroy()


# ---------------------------------------------------------------------------------------------------- object store


async def test_object_store_through_the_domain(hub_js: JetStreamClient, hub_nc: NatsConnection) -> None:
    store = await hub_js.views.os("FILES")
    data = bytes(range(256)) * 1000  # several chunks
    info = await store.put(ObjectStoreMeta(name="blob.bin", description="bytes"), data)
    assert info.size == len(data) and info.chunks == 2
    small = await store.put("small.txt", b"hello", previous_revision=0)
    assert await store.get_blob("blob.bin") == data
    assert await store.get_blob("small.txt") == b"hello"
    assert sorted(i.name for i in await store.list()) == ["blob.bin", "small.txt"]

    replaced = await store.put("small.txt", b"hello again", previous_revision=small.revision)
    assert await store.get_blob("small.txt") == b"hello again" and replaced.revision > small.revision
    await store.link("alias", replaced)
    assert await store.get_blob("alias") == b"hello again"
    await store.update("blob.bin", ObjectStoreMeta(name="renamed.bin", description="moved"))
    assert await store.info("blob.bin") is None
    assert (await store.info("renamed.bin")).description == "moved"  # type: ignore[union-attr]
    deleted = await store.delete("renamed.bin")
    assert deleted.success and deleted.purged == 2
    assert await store.get_blob("renamed.bin") is None

    watcher = await store.watch(include_history=True, ignore_deletes=True)
    async with watcher:
        names = []
        while (info_or_end := await watcher.__anext__()) is not None:
            names.append(info_or_end.name)
    assert sorted(names) == ["alias", "small.txt"]

    # the objects are in the hub's store
    in_hub = await hub_nc.jetstream().views.os("FILES")
    assert await in_hub.get_blob("small.txt") == b"hello again"
    assert (await store.status()).size > 0
    assert await store.destroy()
    with pytest.raises(BucketNotFoundError):
        await store.status()


# ---------------------------------------------------------------------------------------------------- services


async def test_service_in_the_hub_discovered_and_called_from_the_leaf(
    leaf_nc: NatsConnection, hub_nc: NatsConnection
) -> None:
    async def hello(msg: ServiceMsg) -> None:
        msg.respond(b"hello " + msg.data)

    service = await hub_nc.services.add("greeter", "1.2.3", description="says hello")
    service.add_endpoint("hello", hello, subject="greet.hello")
    try:
        client = leaf_nc.services.client(max_wait=2)

        async def discovered() -> bool:
            try:
                return [p.id async for p in await client.ping("greeter")] == [service.id]
            except NoRespondersError:
                return False  # the service's subscriptions have not reached the leaf yet

        await eventually(discovered, timeout=10, interval=0.05, what="the hub's service answers PING from the leaf")
        (info,) = [i async for i in await client.info("greeter")]
        assert (info.name, info.version, info.description) == ("greeter", "1.2.3", "says hello")
        assert [(e.name, e.subject) for e in info.endpoints] == [("hello", "greet.hello")]

        reply = await leaf_nc.request("greet.hello", b"leaf", timeout=5)
        assert reply.data == b"hello leaf"
        (stats,) = [s async for s in await client.stats("greeter", service.id)]
        assert stats.endpoints[0].num_requests == 1
    finally:
        await service.stop()
