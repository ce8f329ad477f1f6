"""Key-Value store (ADR-8) against a real nats-server: the backing stream's configuration, writes
and their revisions, compare-and-set, delete/purge markers, keys, history, status, purge_deletes and key
validation."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest

import cnats
from cnats.errors import (
    BucketNotFoundError,
    InvalidKeyError,
    InvalidNameError,
    InvalidOptionError,
    StreamNotFoundError,
    WrongLastSequenceError,
)
from cnats.jetstream import (
    KV,
    DiscardPolicy,
    JetStreamClient,
    JetStreamManager,
    KvEntry,
    KvOperation,
    KvStatus,
    StorageType,
    StoreCompression,
)
from cnats.testing import NatsServer

TIMEOUT = 10.0


@pytest.fixture
async def kv(js: JetStreamClient) -> KV:
    return await js.views.kv("b", history=5)


async def entries(it: object) -> list[KvEntry]:
    async def collect() -> list[KvEntry]:
        return [e async for e in it]  # type: ignore[attr-defined]

    return await asyncio.wait_for(collect(), TIMEOUT)


async def keys_of(kv: KV, filter: str | list[str] = ">") -> list[str]:
    async def collect() -> list[str]:
        return [k async for k in await kv.keys(filter)]

    return await asyncio.wait_for(collect(), TIMEOUT)


async def history_of(kv: KV, key: str | list[str] = ">") -> list[tuple[str, int, KvOperation, bytes]]:
    got = await entries(await kv.history(key))
    return [(e.key, e.revision, e.operation, e.value) for e in got]


# -- creation -------------------------------------------------------------------------------------------------------
async def test_backing_stream_has_adr8_config(js: JetStreamClient, jsm: JetStreamManager) -> None:
    kv = await js.views.kv("b", history=5, description="my bucket")
    assert kv.bucket == "b"
    cfg = (await jsm.streams.info("KV_b")).config
    assert cfg.name == "KV_b"
    assert cfg.subjects == ["$KV.b.>"]
    assert cfg.max_msgs_per_subject == 5
    assert cfg.discard == DiscardPolicy.NEW
    assert cfg.allow_rollup_hdrs is True
    assert cfg.deny_delete is True
    assert not cfg.deny_purge
    assert cfg.allow_direct is True
    assert cfg.duplicate_window == 120.0
    assert not cfg.max_age
    assert cfg.num_replicas == 1
    assert cfg.storage == StorageType.FILE
    assert cfg.description == "my bucket"
    assert cfg.compression in (None, StoreCompression.NONE)


async def test_ttl_compression_storage_and_limits(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await js.views.kv(
        "t",
        ttl=60.0,
        compression=True,
        storage=StorageType.MEMORY,
        max_bytes=1 << 20,
        max_value_size=1024,
        replicas=1,
    )
    cfg = (await jsm.streams.info("KV_t")).config
    assert cfg.max_age == 60.0
    assert cfg.duplicate_window == 60.0  # min(ttl, 120)
    assert cfg.compression == StoreCompression.S2
    assert cfg.storage == StorageType.MEMORY
    assert cfg.max_bytes == 1 << 20
    assert cfg.max_msg_size == 1024
    assert cfg.num_replicas == 1


async def test_existing_bucket_is_used_as_is(js: JetStreamClient, jsm: JetStreamManager) -> None:
    kv = await js.views.kv("b", history=3)
    rev = await kv.put("k", b"v")
    again = await js.views.kv("b", history=10, ttl=30.0, description="other")
    cfg = (await jsm.streams.info("KV_b")).config
    assert cfg.max_msgs_per_subject == 3
    assert not cfg.max_age
    assert not cfg.description
    entry = await again.get("k")
    assert entry is not None and entry.revision == rev and entry.value == b"v"


async def test_bind_only_never_creates_a_bucket(js: JetStreamClient, jsm: JetStreamManager) -> None:
    with pytest.raises(BucketNotFoundError, match="bucket not found: nope"):
        await js.views.kv("nope", bind_only=True)
    with pytest.raises(StreamNotFoundError):
        await jsm.streams.info("KV_nope")
    # binding to an existing bucket works for reads and writes
    await js.views.kv("b")
    bound = await js.views.kv("b", bind_only=True)
    rev = await bound.put("k", "x")
    got = await bound.get("k")
    assert got is not None and got.revision == rev and got.value == b"x"


@pytest.mark.parametrize("name", ["a.b", "a b", "", "a*", "a>"])
async def test_bad_bucket_names(js: JetStreamClient, name: str) -> None:
    with pytest.raises(InvalidNameError) as exc:
        await js.views.kv(name)
    assert str(exc.value) == f"invalid bucket name: {name}"


async def test_history_over_64_is_rejected(js: JetStreamClient, jsm: JetStreamManager) -> None:
    with pytest.raises(InvalidOptionError):
        await js.views.kv("h", history=65)
    with pytest.raises(StreamNotFoundError):
        await jsm.streams.info("KV_h")
    kv = await js.views.kv("h", history=64)
    assert (await kv.status()).history == 64


# -- put / get -----------------------------------------------------------------------------------------------------
async def test_put_get_revisions_are_stream_sequences(kv: KV) -> None:
    assert await kv.put("a", b"1") == 1
    assert await kv.put("b", "two") == 2
    assert await kv.put("a", bytearray(b"3")) == 3
    assert await kv.put("c", memoryview(b"4")) == 4

    a = await kv.get("a")
    assert a is not None
    assert (a.bucket, a.key, a.value, a.revision, a.operation, a.delta) == ("b", "a", b"3", 3, KvOperation.PUT, 0)
    assert a.length == 1
    b = await kv.get("b")
    assert b is not None and b.value == b"two" and b.string() == "two" and b.revision == 2

    old = await kv.get("a", revision=1)
    assert old is not None and old.value == b"1" and old.revision == 1 and old.key == "a"
    assert await kv.get("a", revision=2) is None  # revision 2 belongs to "b"
    assert await kv.get("missing") is None


async def test_get_of_missing_revision_is_none(kv: KV) -> None:
    await kv.put("a", b"1")
    assert await kv.get("a", revision=99) is None


async def test_entry_json_string_created_length(kv: KV) -> None:
    before = datetime.now(timezone.utc)
    await kv.put("j", json.dumps({"x": [1, 2]}))
    entry = await kv.get("j")
    assert entry is not None
    assert entry.json() == {"x": [1, 2]}
    assert entry.string() == '{"x": [1, 2]}'
    assert entry.length == len(entry.value)
    assert entry.created.tzinfo is not None
    assert before - timedelta(seconds=5) <= entry.created <= datetime.now(timezone.utc) + timedelta(seconds=5)
    await kv.put("u", "héllo")
    u = await kv.get("u")
    assert u is not None and u.value == "héllo".encode() and u.string() == "héllo" and u.length == 6


async def test_create(kv: KV) -> None:
    rev = await kv.create("k", b"v1")
    with pytest.raises(WrongLastSequenceError):
        await kv.create("k", b"v2")
    entry = await kv.get("k")
    assert entry is not None and entry.value == b"v1" and entry.revision == rev

    await kv.delete("k")
    rev2 = await kv.create("k", b"after-del")
    got = await kv.get("k")
    assert got is not None and got.value == b"after-del" and got.revision == rev2 and got.operation == KvOperation.PUT

    await kv.purge("k")
    rev3 = await kv.create("k", b"after-purge")
    got = await kv.get("k")
    assert got is not None and got.value == b"after-purge" and got.revision == rev3


async def test_update_compare_and_set(kv: KV) -> None:
    r1 = await kv.put("k", b"1")
    r2 = await kv.update("k", b"2", r1)
    assert r2 > r1
    with pytest.raises(WrongLastSequenceError):
        await kv.update("k", b"3", r1)
    with pytest.raises(InvalidOptionError) as exc:
        await kv.update("k", b"3", 0)
    assert str(exc.value) == "version must be greater than 0"
    with pytest.raises(InvalidOptionError):
        await kv.update("k", b"3", -1)
    entry = await kv.get("k")
    assert entry is not None and entry.value == b"2" and entry.revision == r2


async def test_put_previous_seq(kv: KV) -> None:
    r1 = await kv.put("k", b"1")
    await kv.put("other", b"x")
    r2 = await kv.put("k", b"2", previous_seq=r1)
    with pytest.raises(WrongLastSequenceError):
        await kv.put("k", b"3", previous_seq=r1)
    with pytest.raises(WrongLastSequenceError):
        await kv.delete("k", previous_seq=r1)
    await kv.delete("k", previous_seq=r2)
    entry = await kv.get("k")
    assert entry is not None and entry.operation == KvOperation.DEL


async def test_delete_leaves_marker_and_keeps_history(kv: KV) -> None:
    await kv.put("k", b"1")
    await kv.put("k", b"2")
    await kv.delete("k")
    entry = await kv.get("k")
    assert entry is not None
    assert entry.operation == KvOperation.DEL
    assert entry.value == b""
    assert entry.revision == 3
    assert await history_of(kv, "k") == [
        ("k", 1, KvOperation.PUT, b"1"),
        ("k", 2, KvOperation.PUT, b"2"),
        ("k", 3, KvOperation.DEL, b""),
    ]
    marker = await kv.get("k", revision=3)
    assert marker is not None and marker.operation == KvOperation.DEL


async def test_purge_leaves_only_marker(kv: KV) -> None:
    await kv.put("k", b"1")
    await kv.put("k", b"2")
    await kv.put("other", b"o")
    await kv.purge("k")
    entry = await kv.get("k")
    assert entry is not None and entry.operation == KvOperation.PURGE and entry.value == b""
    assert await history_of(kv, "k") == [("k", 4, KvOperation.PURGE, b"")]
    assert await kv.get("k", revision=1) is None
    other = await kv.get("other")
    assert other is not None and other.value == b"o"


async def test_wildcard_delete_and_purge(kv: KV) -> None:
    for k in ("a.1", "a.2", "a.x.y", "b.1"):
        await kv.put(k, k)
    await kv.delete("a.*")
    for k in ("a.1", "a.2"):
        e = await kv.get(k)
        assert e is not None and e.operation == KvOperation.DEL
    assert sorted(await keys_of(kv)) == ["a.x.y", "b.1"]

    await kv.put("b.2", b"x")
    await kv.put("b.2", b"y")
    await kv.purge("b.>")
    for k in ("b.1", "b.2"):
        e = await kv.get(k)
        assert e is not None and e.operation == KvOperation.PURGE
    assert [h[2] for h in await history_of(kv, "b.2")] == [KvOperation.PURGE]
    assert await keys_of(kv) == ["a.x.y"]


async def test_keys_lists_live_keys_with_filters(kv: KV) -> None:
    for k in ("a.1", "a.2", "a.b.c", "b.1", "c"):
        await kv.put(k, b"v")
    await kv.put("a.1", b"again")
    await kv.put("gone", b"v")
    await kv.delete("gone")
    await kv.put("purged", b"v")
    await kv.purge("purged")

    assert sorted(await keys_of(kv)) == ["a.1", "a.2", "a.b.c", "b.1", "c"]
    assert sorted(await keys_of(kv, "a.*")) == ["a.1", "a.2"]
    assert sorted(await keys_of(kv, "a.>")) == ["a.1", "a.2", "a.b.c"]
    assert sorted(await keys_of(kv, ["a.*", "c"])) == ["a.1", "a.2", "c"]
    assert await keys_of(kv, "zzz") == []


async def test_keys_when_last_entry_is_a_marker(kv: KV) -> None:
    await kv.put("a", b"v")
    await kv.put("z", b"v")
    await kv.delete("z")
    assert await keys_of(kv) == ["a"]


async def test_empty_bucket_keys_and_history_end(kv: KV) -> None:
    assert await keys_of(kv) == []
    assert await history_of(kv) == []
    assert await history_of(kv, "some.key") == []


async def test_history_bounded_by_history_setting(kv: KV) -> None:
    for i in range(8):
        await kv.put("k", str(i))
    await kv.put("x", b"x")
    hist = await history_of(kv, "k")
    assert [h[3] for h in hist] == [b"3", b"4", b"5", b"6", b"7"]
    assert [h[1] for h in hist] == [4, 5, 6, 7, 8]
    everything = await history_of(kv)
    assert [h[1] for h in everything] == [4, 5, 6, 7, 8, 9]
    both = await history_of(kv, ["k", "x"])
    assert [h[1] for h in both] == [4, 5, 6, 7, 8, 9]
    heads = await entries(await kv.history("k", headers_only=True))
    assert [e.value for e in heads] == [b""] * 5
    assert [e.length for e in heads] == [1] * 5


async def test_history_default_of_one(js: JetStreamClient) -> None:
    kv = await js.views.kv("one")
    await kv.put("k", b"1")
    await kv.put("k", b"2")
    assert await history_of(kv, "k") == [("k", 2, KvOperation.PUT, b"2")]
    # discard NEW with max_msgs_per_subject: writes keep working past the limit (the oldest goes)
    assert await kv.put("k", b"3") == 3


async def test_status(js: JetStreamClient) -> None:
    kv = await js.views.kv(
        "st", history=7, ttl=90.0, storage=StorageType.MEMORY, compression=True, description="d", max_value_size=100
    )
    await kv.put("a", b"1")
    await kv.put("a", b"2")
    await kv.put("b", b"3")
    st = await kv.status()
    assert isinstance(st, KvStatus)
    assert st.bucket == "st"
    assert st.values == 3
    assert st.history == 7
    assert st.ttl == 90.0
    assert st.storage == StorageType.MEMORY
    assert st.replicas == 1
    assert st.size > 0
    assert st.compression is True
    assert st.description == "d"
    assert st.max_value_size == 100
    assert st.max_bytes == -1
    assert st.bucket_location == ""
    assert st.stream_info.config.name == "KV_st"

    plain = await (await js.views.kv("plain")).status()
    assert plain.compression is False and plain.ttl == 0.0 and plain.history == 1 and plain.values == 0
    assert plain.storage == StorageType.FILE


async def test_purge_deletes(kv: KV, jsm: JetStreamManager) -> None:
    await kv.put("a", b"1")
    await kv.put("a", b"2")
    await kv.delete("a")
    await kv.put("b", b"1")
    await kv.purge("b")
    await kv.put("c", b"live")

    # fresh markers (younger than the default 30 min) keep only the marker itself
    await asyncio.wait_for(kv.purge_deletes(), TIMEOUT)
    assert [(h[0], h[2]) for h in await history_of(kv)] == [
        ("a", KvOperation.DEL),
        ("b", KvOperation.PURGE),
        ("c", KvOperation.PUT),
    ]

    resp = await asyncio.wait_for(kv.purge_deletes(older_than=0), TIMEOUT)
    assert resp.purged == 2
    assert [(h[0], h[2]) for h in await history_of(kv)] == [("c", KvOperation.PUT)]
    assert await kv.get("a") is None
    assert await kv.get("b") is None
    assert (await jsm.streams.info("KV_b")).state.messages == 1


async def test_destroy(kv: KV, jsm: JetStreamManager) -> None:
    await kv.put("a", b"1")
    assert await kv.destroy() is True
    with pytest.raises(StreamNotFoundError):
        await jsm.streams.info("KV_b")


@pytest.mark.parametrize("key", ["a..b", ".a", "a.", "a b", "a*", "a.>", ">", "", "a\tb", "ключ"])
async def test_invalid_keys_rejected_before_any_request(nats_server: NatsServer, key: str) -> None:
    nc = await cnats.connect(nats_server.url)
    try:
        kv = await nc.jetstream().views.kv("b")
        before = nc.stats().out_msgs
        for op in (kv.put(key, b"v"), kv.create(key, b"v"), kv.update(key, b"v", 1), kv.get(key)):
            with pytest.raises(InvalidKeyError) as exc:
                await op
            assert str(exc.value) == f"invalid key: {key}"
        assert nc.stats().out_msgs == before
    finally:
        await nc.close()


@pytest.mark.parametrize("key", ["a..b", ".a", "a.", "a b", "a.>.b", ""])
async def test_invalid_filters_rejected(kv: KV, key: str) -> None:
    with pytest.raises(InvalidKeyError):
        await kv.keys(key)
    with pytest.raises(InvalidKeyError):
        await kv.history(key)
    with pytest.raises(InvalidKeyError):
        await kv.delete(key)


async def test_valid_key_characters(kv: KV) -> None:
    key = "A-z_0/9=x.y"
    rev = await kv.put(key, b"v")
    got = await kv.get(key)
    assert got is not None and got.key == key and got.revision == rev
    assert await keys_of(kv) == [key]


async def test_close_is_a_noop(kv: KV) -> None:
    await kv.put("a", b"1")
    await kv.close()
    assert (await kv.get("a")) is not None


async def test_keys_when_every_key_is_deleted(kv: KV) -> None:
    await kv.put("a", b"v")
    await kv.put("b", b"v")
    await kv.delete("a")
    await kv.purge("b")
    assert await keys_of(kv) == []


async def test_a_refused_bucket_reports_the_servers_reason(js: JetStreamClient) -> None:
    with pytest.raises(cnats.JetStreamApiError) as caught:
        await js.views.kv("three", replicas=3)  # one server cannot hold three replicas
    assert not isinstance(caught.value, StreamNotFoundError)
    assert "replicas" in str(caught.value).lower() or caught.value.err_code, caught.value
