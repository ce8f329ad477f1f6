"""The object store as a bucket (ADR-20): the backing stream's configuration, bucket name
validation, status, seal, destroy and the store listing, against a real nats-server."""

from __future__ import annotations

import pytest

from cnats.errors import BucketNotFoundError, InvalidNameError, InvalidOptionError, JetStreamApiError
from cnats.jetstream import (
    DiscardPolicy,
    JetStreamClient,
    JetStreamManager,
    ObjectStore,
    ObjectStoreStatus,
    StorageType,
    StoreCompression,
)


async def test_stream_is_created_as_adr20_gives_it(js: JetStreamClient, jsm: JetStreamManager) -> None:
    store = await js.views.os(
        "cfg",
        description="pictures",
        ttl=3600.0,
        storage=StorageType.MEMORY,
        max_bytes=10_000_000,
        metadata={"team": "imaging"},
        compression=True,
    )
    assert store.bucket == "cfg"
    config = (await jsm.streams.info("OBJ_cfg")).config
    assert config.subjects == ["$O.cfg.C.>", "$O.cfg.M.>"]
    assert config.description == "pictures"
    assert config.max_age == 3600.0
    assert config.storage is StorageType.MEMORY
    assert config.max_bytes == 10_000_000
    assert config.discard is DiscardPolicy.NEW
    assert config.allow_direct is True
    assert config.allow_rollup_hdrs is True
    assert config.compression is StoreCompression.S2
    assert config.metadata is not None and config.metadata["team"] == "imaging"


async def test_existing_store_is_used_as_is(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await js.views.os("twice", description="first", storage=StorageType.MEMORY)
    again = await js.views.os("twice", description="second")
    assert again.bucket == "twice"
    assert (await jsm.streams.info("OBJ_twice")).config.description == "first"


@pytest.mark.parametrize("bucket", ["", "a.b", "a b", "a*", "a>", "ü"])
async def test_bad_bucket_names_are_refused_before_the_wire(
    js: JetStreamClient, jsm: JetStreamManager, bucket: str
) -> None:
    with pytest.raises(InvalidNameError, match="invalid bucket name"):
        await js.views.os(bucket)
    assert [name async for name in jsm.streams.names()] == []


async def test_bad_options(js: JetStreamClient) -> None:
    with pytest.raises(InvalidOptionError):
        await js.views.os("b", ttl=-1.0)
    with pytest.raises(InvalidOptionError):
        await js.views.os("b", replicas=0)


async def test_a_stream_the_server_refuses_raises_its_error(js: JetStreamClient) -> None:
    with pytest.raises(JetStreamApiError) as err:
        await js.views.os("replicated", replicas=3)  # a single server cannot hold three replicas
    assert not isinstance(err.value, BucketNotFoundError)
    assert err.value.code != "404"


async def test_status(store: ObjectStore) -> None:
    await store.put("a", b"x" * 1000)
    status = await store.status()
    assert isinstance(status, ObjectStoreStatus)
    assert status.bucket == "b"
    assert status.backing_store == "JetStream"
    assert status.storage is StorageType.MEMORY
    assert status.replicas == 1
    assert status.ttl == 0.0
    assert status.sealed is False
    assert status.compression is False
    assert status.size == status.stream_info.state.bytes > 1000
    assert status.stream_info.config.name == "OBJ_b"


async def test_seal_makes_the_store_read_only(store: ObjectStore) -> None:
    await store.put("kept", b"data")
    status = await store.seal()
    assert status.sealed is True
    assert (await store.status()).sealed is True
    with pytest.raises(JetStreamApiError):
        await store.put("new", b"more")
    assert await store.get_blob("kept") == b"data"


async def test_bind_only_never_creates_a_store(js: JetStreamClient, jsm: JetStreamManager) -> None:
    with pytest.raises(BucketNotFoundError, match="bucket not found: nope"):
        await js.views.os("nope", bind_only=True)
    assert [name async for name in jsm.streams.names()] == []
    await js.views.os("there")
    bound = await js.views.os("there", bind_only=True)
    await bound.put("a", b"x")
    assert await bound.get_blob("a") == b"x"


async def test_destroy(store: ObjectStore, jsm: JetStreamManager) -> None:
    await store.put("a", b"x")
    assert await store.destroy() is True
    assert [name async for name in jsm.streams.names()] == []
    with pytest.raises(BucketNotFoundError, match="object store not found"):
        await store.status()
    with pytest.raises(BucketNotFoundError, match="object store not found"):
        await store.seal()
    with pytest.raises(BucketNotFoundError):
        await store.info("a")
    with pytest.raises(BucketNotFoundError):
        await store.destroy()


async def test_list_object_stores(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await js.views.os("one", storage=StorageType.MEMORY)
    await js.views.os("two", storage=StorageType.MEMORY, description="second")
    await js.views.kv("not_a_store", storage=StorageType.MEMORY)
    statuses = {s.bucket: s async for s in jsm.streams.list_object_stores()}
    assert set(statuses) == {"one", "two"}
    assert statuses["two"].description == "second"
    assert all(isinstance(s, ObjectStoreStatus) for s in statuses.values())
