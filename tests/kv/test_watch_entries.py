"""The entries a watcher builds in the protocol core (KvWatchBase), against a real nats-server: every field is what
a read of the same revision gives, for values, markers and headers-only listings alike."""

from __future__ import annotations

import asyncio
import gc

import pytest

from cnats.jetstream import KV, JetStreamClient, KvEntry, KvOperation
from cnats.protocol import USES_CYTHON

TIMEOUT = 10.0


@pytest.fixture
async def kv(js: JetStreamClient) -> KV:
    kv = await js.views.kv("entries", history=5)
    await kv.put("a", b"1")
    await kv.put("b.c", b"22")
    await kv.delete("a")
    await kv.put("d", b"x" * 300)
    await kv.put("b.c", b"333")
    await kv.purge("b.c")  # its earlier revisions go
    await kv.put("e", b"")
    return kv


async def test_watched_entries_are_the_entries_read_by_revision(kv: KV) -> None:
    async with await kv.history() as watcher:
        watched = [entry async for entry in watcher]
    assert [(e.key, e.revision, e.operation) for e in watched] == [
        ("a", 1, KvOperation.PUT),
        ("a", 3, KvOperation.DEL),
        ("d", 4, KvOperation.PUT),
        ("b.c", 6, KvOperation.PURGE),
        ("e", 7, KvOperation.PUT),
    ]
    assert [e.delta for e in watched] == [4, 3, 2, 1, 0]
    for entry in watched:
        assert type(entry) is KvEntry
        if USES_CYTHON:
            assert not gc.is_tracked(entry)  # built in bulk, part of no cycle
        read = await kv.get(entry.key, revision=entry.revision)
        assert read is not None
        assert (entry.bucket, entry.key, entry.value, entry.revision, entry.operation, entry.length) == (
            read.bucket,
            read.key,
            read.value,
            read.revision,
            read.operation,
            read.length,
        )
        assert abs((entry.created - read.created).total_seconds()) < 1e-3
        assert repr(entry) == repr(read)


async def test_a_headers_only_listing_has_the_lengths_of_the_values(kv: KV) -> None:
    async with await kv.history(headers_only=True) as watcher:
        listed = [(e.key, e.value, e.length, e.operation) async for e in watcher]
    assert listed == [
        ("a", b"", 1, KvOperation.PUT),
        ("a", b"", 0, KvOperation.DEL),
        ("d", b"", 300, KvOperation.PUT),
        ("b.c", b"", 0, KvOperation.PURGE),
        ("e", b"", 0, KvOperation.PUT),
    ]


async def test_ignore_deletes_hands_out_values_only(kv: KV) -> None:
    watcher = await kv.watch(include_history=True, ignore_deletes=True)
    async with watcher:
        seen = [(await asyncio.wait_for(watcher.__anext__(), TIMEOUT)).key for _ in range(3)]
        await kv.delete("d")
        await kv.put("f", b"live")
        assert (await asyncio.wait_for(watcher.__anext__(), TIMEOUT)).key == "f"  # the live DEL is skipped too
    assert seen == ["a", "d", "e"]
