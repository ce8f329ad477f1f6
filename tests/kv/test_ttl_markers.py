"""Per-key TTLs and limit markers (ADR-48, server 2.11+): ``views.kv(limit_marker_ttl=)``, ``kv.create(ttl=)``,
``kv.purge(ttl=)``, and the markers the server writes when a key expires, which every read sees as a PURGE (or DEL)
entry. Expiry runs on the server's clock: every wait polls its condition, with a bound.

The last part drives both protocol cores' watchers with marker messages (no server): they must build the same
entries, with the operation the markers' headers give."""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any, TypeVar

import pytest
from helpers.protocol import CORES, load_core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sync.support import loop_factory

import cnats.sync
from cnats.errors import InvalidOptionError, JetStreamApiError, StreamNotFoundError
from cnats.headers import Headers
from cnats.jetstream import (
    KV,
    DiscardPolicy,
    JetStreamClient,
    JetStreamManager,
    KvEntry,
    KvOperation,
    StorageType,
    StreamConfig,
)
from cnats.testing import NatsServer

T = TypeVar("T")
BOUND = 10.0  # seconds: how long a wait for the server's expiry may take at most


async def until(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str) -> T:
    """Poll ``probe()`` until ``done`` holds for its result (at most ``BOUND`` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while True:
        result = await probe()
        if done(result):
            return result
        if loop.time() > deadline:
            raise AssertionError(f"not within {BOUND} s: {what} (last: {result!r})")
        await asyncio.sleep(0.02)


async def next_entry(watcher: Any) -> KvEntry:
    entry: KvEntry = await asyncio.wait_for(anext(watcher), BOUND)
    return entry


async def listed(it: Any) -> list[Any]:
    async def collect() -> list[Any]:
        return [x async for x in it]

    return await asyncio.wait_for(collect(), BOUND)


async def stored_headers(jsm: JetStreamManager, kv: KV, revision: int) -> dict[str, list[str]]:
    stored = await jsm.streams.get_message(f"KV_{kv.bucket}", seq=revision)
    return stored.headers.to_dict() if stored.headers is not None else {}


async def markers_bucket(js: JetStreamClient, name: str = "ttl", **options: Any) -> KV:
    return await js.views.kv(name, history=5, storage=StorageType.MEMORY, limit_marker_ttl=1, **options)


# -- the bucket -------------------------------------------------------------------------------------------------------


async def test_limit_marker_ttl_sets_the_streams_ttl_fields_and_the_status(
    js: JetStreamClient, jsm: JetStreamManager
) -> None:
    kv = await js.views.kv("marked", limit_marker_ttl=5)
    config = (await jsm.streams.info("KV_marked")).config
    assert (config.allow_msg_ttl, config.subject_delete_marker_ttl) == (True, 5.0)
    assert (await kv.status()).limit_marker_ttl == 5.0
    bound = await js.views.kv("marked", bind_only=True)
    assert (await bound.status()).limit_marker_ttl == 5.0
    await js.views.kv("plain")
    statuses = {status.bucket: status async for status in jsm.streams.list_kvs()}
    assert statuses["marked"].limit_marker_ttl == 5.0 and statuses["plain"].limit_marker_ttl == 0.0
    plain = (await jsm.streams.info("KV_plain")).config
    assert not plain.allow_msg_ttl and plain.subject_delete_marker_ttl is None
    await js.views.kv("zero", limit_marker_ttl=0)  # 0: no markers, as None
    zero = (await jsm.streams.info("KV_zero")).config
    assert not zero.allow_msg_ttl and zero.subject_delete_marker_ttl is None


@pytest.mark.parametrize("bad", [-1, 0.5, "5", True, math.nan, math.inf, [5]])
async def test_a_bad_limit_marker_ttl_is_refused_before_anything_is_sent(
    js: JetStreamClient, jsm: JetStreamManager, bad: object
) -> None:
    with pytest.raises(InvalidOptionError, match="limit_marker_ttl"):
        await js.views.kv("refused", limit_marker_ttl=bad)  # type: ignore[arg-type]
    with pytest.raises(StreamNotFoundError):
        await jsm.streams.info("KV_refused")


# -- keys with a TTL ---------------------------------------------------------------------------------------------------


async def test_a_key_created_with_a_ttl_expires_into_a_purge_marker(js: JetStreamClient, jsm: JetStreamManager) -> None:
    kv = await markers_bucket(js)
    await kv.put("stays", "here")
    rev = await kv.create("session", "token", ttl=1)
    assert await stored_headers(jsm, kv, rev) == {
        "Nats-Expected-Last-Subject-Sequence": ["0"],
        "Nats-TTL": ["1"],
    }
    async with await kv.watch("session") as watcher:
        first = await next_entry(watcher)
        assert (first.revision, first.operation, first.value) == (rev, KvOperation.PUT, b"token")
        marker = await next_entry(watcher)  # written by the server when the TTL passed
    assert (marker.key, marker.operation, marker.value, marker.length) == ("session", KvOperation.PURGE, b"", 0)
    assert marker.revision > rev
    assert (await stored_headers(jsm, kv, marker.revision))["Nats-Marker-Reason"] == ["MaxAge"]
    # every read sees the marker as a purged key, while it lasts; then the key is gone without a trace
    seen: list[Any] = []

    async def latest() -> KvEntry | None:
        entry = await kv.get("session")
        seen.append(None if entry is None else entry.operation)
        return entry

    await until(latest, lambda entry: entry is None, "the marker expires")
    assert KvOperation.PURGE in seen and KvOperation.PUT not in seen
    assert await listed(await kv.keys()) == ["stays"]
    assert await kv.get("session") is None
    assert (await kv.status()).values == 1


async def test_get_history_and_keys_see_a_marker_as_a_purged_key(js: JetStreamClient, jsm: JetStreamManager) -> None:
    # a marker lasts as long as the bucket's limit_marker_ttl: 3 s here, so the reads below all see it
    kv = await js.views.kv("reads", history=5, storage=StorageType.MEMORY, limit_marker_ttl=3)
    rev = await kv.create("k", "v", ttl=1)
    # the server keeps a key at least as long as the bucket's markers: the TTL is stored lifted to 3
    assert (await stored_headers(jsm, kv, rev))["Nats-TTL"] == ["3"]
    marker = await until(
        lambda: kv.get("k"), lambda e: e is not None and e.operation is not KvOperation.PUT, "the key expires"
    )
    assert marker is not None and (marker.operation, marker.value) == (KvOperation.PURGE, b"")
    by_revision = await kv.get("k", revision=marker.revision)
    assert by_revision is not None and by_revision.operation is KvOperation.PURGE
    history = await listed(await kv.history("k"))
    assert [(e.revision, e.operation) for e in history] == [(marker.revision, KvOperation.PURGE)]
    assert await listed(await kv.keys()) == []
    # create() on a purged key takes the marker's revision as the one to replace, and keeps its TTL
    again = await kv.create("k", "new", ttl=5)
    assert await stored_headers(jsm, kv, again) == {
        "Nats-Expected-Last-Subject-Sequence": [str(marker.revision)],
        "Nats-TTL": ["5"],
    }
    entry = await kv.get("k")
    assert entry is not None and (entry.operation, entry.value) == (KvOperation.PUT, b"new")
    # purge_deletes removes a server marker as any other
    await kv.purge("k")
    assert (await kv.purge_deletes(older_than=0)).purged >= 1
    assert await kv.get("k") is None


async def test_the_buckets_maximum_age_leaves_markers_too(js: JetStreamClient) -> None:
    kv = await markers_bucket(js, "aged", ttl=1.0)
    rev = await kv.put("k", "v")  # no TTL of its own: the bucket's maximum age removes it
    async with await kv.watch() as watcher:
        assert (await next_entry(watcher)).revision == rev
        marker = await next_entry(watcher)
    assert (marker.key, marker.operation) == ("k", KvOperation.PURGE)


async def test_watch_ignore_deletes_skips_the_servers_markers(js: JetStreamClient) -> None:
    kv = await markers_bucket(js, "quiet")
    await kv.create("gone", "1", ttl=1)
    async with await kv.watch(ignore_deletes=True) as watcher:
        assert (await next_entry(watcher)).key == "gone"
        await until(lambda: kv.get("gone"), lambda e: e is None or e.operation is KvOperation.PURGE, "expiry")
        rev = await kv.put("next", "2")
        after = await next_entry(watcher)  # the marker in between is not handed out
    assert (after.key, after.revision) == ("next", rev)


# -- purge markers with a TTL ------------------------------------------------------------------------------------------


async def test_a_purge_marker_with_a_ttl_expires_and_leaves_nothing(js: JetStreamClient, jsm: JetStreamManager) -> None:
    kv = await markers_bucket(js, "purged")
    await kv.put("k", "1")
    await kv.put("k", "2")
    await kv.purge("k", ttl=1)
    marker = await kv.get("k")
    assert marker is not None and marker.operation is KvOperation.PURGE
    assert await stored_headers(jsm, kv, marker.revision) == {
        "KV-Operation": ["PURGE"],
        "Nats-Rollup": ["sub"],
        "Nats-TTL": ["1"],
    }
    assert [e.operation for e in await listed(await kv.history("k"))] == [KvOperation.PURGE]  # rolled up
    await until(lambda: kv.get("k"), lambda e: e is None, "the purge marker expires")
    state = (await jsm.streams.info("KV_purged")).state
    assert (state.messages, state.last_seq) == (0, marker.revision)  # no marker for the marker


async def test_a_wildcard_purge_gives_each_marker_the_ttl(js: JetStreamClient, jsm: JetStreamManager) -> None:
    kv = await markers_bucket(js, "wild")
    for key in ("a.1", "a.2", "b.1"):
        await kv.put(key, "v")
    await kv.purge("a.*", ttl=30)
    for key in ("a.1", "a.2"):
        marker = await kv.get(key)
        assert marker is not None and marker.operation is KvOperation.PURGE
        assert (await stored_headers(jsm, kv, marker.revision))["Nats-TTL"] == ["30"]
    assert await listed(await kv.keys()) == ["b.1"]


# -- validation and buckets without per-key TTLs -----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, -5, 0, 0.5, 1.5, "1", "1s", True, math.nan, math.inf, [1]])
async def test_a_bad_ttl_is_refused_before_anything_is_sent(js: JetStreamClient, bad: object) -> None:
    kv = await markers_bucket(js, "checked")
    await kv.put("kept", "v")
    with pytest.raises(InvalidOptionError, match="ttl must be a whole number of seconds, at least 1"):
        await kv.create("new", "v", ttl=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="ttl must be a whole number of seconds, at least 1"):
        await kv.purge("kept", ttl=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="ttl must be a whole number of seconds, at least 1"):
        await kv.purge("*", ttl=bad)  # type: ignore[arg-type]
    assert await kv.get("new") is None
    kept = await kv.get("kept")
    assert kept is not None and kept.operation is KvOperation.PUT
    assert (await kv.status()).values == 1


async def test_a_ttl_float_of_whole_seconds_is_sent_as_an_integer(js: JetStreamClient, jsm: JetStreamManager) -> None:
    kv = await markers_bucket(js, "floats")
    rev = await kv.create("k", "v", ttl=60.0)
    assert (await stored_headers(jsm, kv, rev))["Nats-TTL"] == ["60"]


async def test_a_ttl_on_a_bucket_without_per_key_ttls_is_refused_by_the_server(js: JetStreamClient) -> None:
    kv = await js.views.kv("nottl", storage=StorageType.MEMORY)
    await kv.put("k", "v")
    with pytest.raises(JetStreamApiError) as created:
        await kv.create("new", "v", ttl=1)
    with pytest.raises(JetStreamApiError) as purged:
        await kv.purge("k", ttl=1)
    for raised in (created.value, purged.value):
        assert (raised.err_code, raised.status) == (10166, 400)
        assert "per-message TTL is disabled" in str(raised)
    assert await kv.get("new") is None
    kept = await kv.get("k")
    assert kept is not None and kept.operation is KvOperation.PUT


async def test_create_without_a_ttl_on_a_marker_bucket_never_expires(js: JetStreamClient) -> None:
    kv = await markers_bucket(js, "forever")
    await kv.create("timed", "v", ttl=1)
    await kv.create("kept", "v")
    await until(lambda: kv.get("timed"), lambda e: e is None or e.operation is KvOperation.PURGE, "expiry")
    kept = await kv.get("kept")
    assert kept is not None and kept.operation is KvOperation.PUT


# -- both protocol cores map markers alike (no server) ----------------------------------------------------------------

PREFIX = "$KV.bucket."
CORE_MODULES = [load_core(name) for name in CORES]


@functools.cache
def entry_type(core: ModuleType) -> type:
    class Entry(core.KvEntryBase):  # type: ignore[name-defined,misc]
        __slots__ = ()

    return Entry


@functools.cache
def watch_type(core: ModuleType) -> type:
    """A watcher of ``core`` with kv.py's hook for messages with headers (recorded in ``calls``)."""
    from cnats import kv

    class Watch(core.KvWatchBase):  # type: ignore[name-defined,misc]
        calls: list[dict[str, list[str]]]

        def _marker(self, data: bytes, headers: Headers) -> tuple[Any, int]:
            self.calls.append(headers.to_dict())
            return kv.KvWatcher._marker(self, data, headers)  # type: ignore[arg-type]

        def _caught_up(self) -> None:
            pass

    return Watch


@functools.cache
def jsmsg_type(core: ModuleType) -> type:
    class J(core.JsMsgBase):  # type: ignore[name-defined,misc]
        __slots__ = ()

    return J


def make_watch(core: ModuleType, *, ignore_deletes: bool) -> Any:
    watch = watch_type(core)()
    watch.calls = []
    watch._entry_type = entry_type(core)
    watch._bucket = "bucket"
    watch._prefix_len = len(PREFIX)
    watch._put = KvOperation.PUT
    watch._ignore_deletes = ignore_deletes
    watch._ends = False
    return watch


def delivered(core: ModuleType, key: str, data: bytes, sseq: int, headers: Headers | None) -> Any:
    msg = jsmsg_type(core)()
    reply = f"$JS.ACK.KV_bucket.watch.1.{sseq}.{sseq}.1700000000123456789.0"
    msg._init(PREFIX + key, data, reply, headers, 7, None, 5.0)
    return msg


def accepted(core: ModuleType, mapping: dict[str, str] | None, *, ignore_deletes: bool) -> tuple[Any, ...]:
    watch = make_watch(core, ignore_deletes=ignore_deletes)
    headers = None if mapping is None else Headers.from_dict(mapping)
    entry = watch._accept(delivered(core, "k", b"", 9, headers))
    if entry is None:
        return None, watch.calls
    return (entry.key, entry.value, entry.revision, entry.delta, entry.operation, entry.length), watch.calls


def model(mapping: dict[str, str] | None) -> KvOperation:
    """What ADR-8 and ADR-48 say a message records (written apart from kv.py, for the comparison)."""
    if mapping is None:
        return KvOperation.PUT
    if mapping.get("KV-Operation"):
        return {"DEL": KvOperation.DEL, "PURGE": KvOperation.PURGE}.get(mapping["KV-Operation"], KvOperation.PUT)
    reasons = {"MaxAge": KvOperation.PURGE, "Purge": KvOperation.PURGE, "Remove": KvOperation.DEL}
    return reasons.get(mapping.get("Nats-Marker-Reason", ""), KvOperation.PUT)


@pytest.mark.parametrize("core", CORE_MODULES, ids=CORES)
@pytest.mark.parametrize(
    ("mapping", "operation"),
    [
        ({"Nats-Marker-Reason": "MaxAge", "Nats-TTL": "1s", "Nats-Rollup": "sub"}, KvOperation.PURGE),
        ({"Nats-Marker-Reason": "Purge", "Nats-TTL": "1s"}, KvOperation.PURGE),
        ({"Nats-Marker-Reason": "Remove", "Nats-TTL": "1s"}, KvOperation.DEL),
        ({"Nats-Marker-Reason": "Unknown"}, KvOperation.PUT),
        ({"KV-Operation": "PURGE", "Nats-Rollup": "sub", "Nats-TTL": "1"}, KvOperation.PURGE),  # purge(ttl=)
        ({"KV-Operation": "DEL", "Nats-Marker-Reason": "MaxAge"}, KvOperation.DEL),  # the client's header first
        ({"Nats-TTL": "1", "Nats-Expected-Last-Subject-Sequence": "0"}, KvOperation.PUT),  # create(ttl=)
    ],
)
def test_a_watchers_entry_for_a_marker(core: ModuleType, mapping: dict[str, str], operation: KvOperation) -> None:
    (shown, calls) = accepted(core, mapping, ignore_deletes=False)
    assert shown == ("k", b"", 9, 0, operation, 0)
    assert calls == [Headers.from_dict(mapping).to_dict()]  # type: ignore[union-attr]
    skipped, _ = accepted(core, mapping, ignore_deletes=True)
    assert (skipped is None) is (operation is not KvOperation.PUT)


@pytest.mark.parametrize("core", CORE_MODULES, ids=CORES)
def test_a_put_without_headers_never_reaches_the_marker_hook(core: ModuleType) -> None:
    shown, calls = accepted(core, None, ignore_deletes=False)
    assert shown == ("k", b"", 9, 0, KvOperation.PUT, 0) and calls == []


marker_headers = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "KV-Operation": st.sampled_from(["DEL", "PURGE", "PUT", "del", "x"]),
            "Nats-Marker-Reason": st.sampled_from(["MaxAge", "Purge", "Remove", "maxage", "Other"]),
            "Nats-TTL": st.sampled_from(["1", "1s", "never"]),
            "Nats-Rollup": st.just("sub"),
            "Nats-Msg-Size": st.sampled_from(["0", "17"]),
        },
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(marker_headers, st.booleans())
def test_both_cores_give_a_marker_the_same_entry(mapping: dict[str, str] | None, ignore_deletes: bool) -> None:
    results = [accepted(core, mapping, ignore_deletes=ignore_deletes) for core in CORE_MODULES]
    assert results[0] == results[1]
    shown, _ = results[0]
    operation = model(mapping)
    if ignore_deletes and operation is not KvOperation.PUT:
        assert shown is None
    else:
        assert shown is not None and shown[4] is operation


# -- the blocking client -----------------------------------------------------------------------------------------------


def test_the_blocking_kv_passes_the_ttls_through(nats_server: NatsServer) -> None:
    conn = cnats.sync.connect(nats_server.url, loop_factory=loop_factory())
    try:
        jsm = conn.jetstream_manager()
        jsm.streams.add(  # a marker bucket's stream, as views.kv(limit_marker_ttl=1) makes it
            StreamConfig(
                name="KV_blocking",
                subjects=["$KV.blocking.>"],
                max_msgs_per_subject=5,
                discard=DiscardPolicy.NEW,
                allow_rollup_hdrs=True,
                deny_delete=True,
                allow_direct=True,
                allow_msg_ttl=True,
                subject_delete_marker_ttl=1.0,
                storage=StorageType.MEMORY,
            )
        )
        kv = conn.jetstream().views.kv("blocking", bind_only=True)
        assert kv.status().limit_marker_ttl == 1.0
        rev = kv.create("k", "v", ttl=60)
        assert jsm.streams.get_message("KV_blocking", seq=rev).headers.to_dict()["Nats-TTL"] == ["60"]
        kv.purge("k", ttl=30)
        marker = kv.get("k")
        assert marker is not None and marker.operation is KvOperation.PURGE
        assert jsm.streams.get_message("KV_blocking", seq=marker.revision).headers.to_dict()["Nats-TTL"] == ["30"]
        with pytest.raises(InvalidOptionError, match="ttl must be"):
            kv.create("other", "v", ttl=0)
        with pytest.raises(InvalidOptionError, match="ttl must be"):
            kv.purge("k", ttl=-1)
    finally:
        conn.close()
