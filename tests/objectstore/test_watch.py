"""``ObjectStore.watch``: the initial state, the ``None`` marker, live changes and deletes."""

from __future__ import annotations

import asyncio

import pytest

from cnats.errors import BucketNotFoundError
from cnats.jetstream import ObjectInfo, ObjectStore
from cnats.objectstore import ObjectWatcher

TIMEOUT = 10.0


async def take(watcher: ObjectWatcher) -> ObjectInfo | None:
    return await asyncio.wait_for(watcher.__anext__(), TIMEOUT)


async def test_include_history_gives_the_current_state_then_none_then_changes(store: ObjectStore) -> None:
    await store.put("a", b"1")
    await store.put("b", b"2")
    await store.put("a", b"11")
    async with await store.watch(include_history=True) as watcher:
        first, second = await take(watcher), await take(watcher)
        assert first is not None and second is not None
        assert {(first.name, first.size), (second.name, second.size)} == {("a", 2), ("b", 1)}
        assert await take(watcher) is None
        info = await store.put("c", b"333")
        change = await take(watcher)
        assert change == info
        await store.delete("b")
        deleted = await take(watcher)
        assert deleted is not None and (deleted.name, deleted.deleted) == ("b", True)


async def test_without_history_none_comes_first_then_only_changes(store: ObjectStore) -> None:
    await store.put("old", b"x")
    watcher = await store.watch()
    assert await take(watcher) is None
    info = await store.put("new", b"y")
    assert await take(watcher) == info
    watcher.stop()
    with pytest.raises(StopAsyncIteration):
        await take(watcher)


async def test_empty_store_with_history(store: ObjectStore) -> None:
    async with await store.watch(include_history=True) as watcher:
        assert await take(watcher) is None
        info = await store.put("first", b"x")
        assert await take(watcher) == info


async def test_ignore_deletes(store: ObjectStore) -> None:
    await store.put("live", b"x")
    await store.put("dead", b"x")
    await store.delete("dead")  # the last entry of the initial state is a delete: the marker must still come
    async with await store.watch(include_history=True, ignore_deletes=True) as watcher:
        live = await take(watcher)
        assert live is not None and live.name == "live"
        assert await take(watcher) is None
        await store.delete("live")
        info = await store.put("later", b"y")
        assert await take(watcher) == info


async def test_watch_of_a_missing_store(store: ObjectStore) -> None:
    await store.destroy()
    with pytest.raises(BucketNotFoundError):
        await store.watch()
    with pytest.raises(BucketNotFoundError):
        await store.list()
