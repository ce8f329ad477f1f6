"""The lifecycle of object-store readers and watchers on a real server: ``close()`` ends a read or a watch being
iterated (after what it holds; with the connection's error after a fatal close) and leaves no task or timer behind;
a read or a watch closed early, left by ``break`` or dropped removes its server consumer, stops pulling and cancels
the read's stall watchdog."""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Awaitable, Callable

import pytest
from helpers.core import eventually
from helpers.lifecycle import (
    ApiSpy,
    Reader,
    StoppedCheck,
    cnats_tasks,
    consumer_names,
    no_consumers,
    stop_during_anext,
    stop_server,
)

from cnats import NatsConnection, connect
from cnats.errors import ConnectionClosedError, NatsError
from cnats.jetstream import (
    JetStreamManager,
    ObjectInfo,
    ObjectResult,
    ObjectStore,
    ObjectStoreMeta,
    ObjectStoreMetaOptions,
    StorageType,
)
from cnats.testing import NatsServer

TIMEOUT = 10.0
BUCKET = "lc"
STREAM = f"OBJ_{BUCKET}"
BIG = 8 * 1024 * 1024  # 512 chunks of 16 KiB: more than a read holds ahead (4 MiB)
CHUNK = 16 * 1024


async def store_of(nc: NatsConnection) -> ObjectStore:
    return await nc.jetstream().views.os(BUCKET, storage=StorageType.MEMORY)


@pytest.fixture
async def store(nc: NatsConnection) -> ObjectStore:
    return await store_of(nc)


@pytest.fixture
async def spy(nc2: NatsConnection) -> ApiSpy:
    """Every pull request, consumer creation and consumer info request on the store's stream."""
    return await ApiSpy(nc2, STREAM, ("MSG.NEXT", "CREATE", "INFO")).start()


@pytest.fixture
def poke(store: ObjectStore) -> Callable[[], Awaitable[object]]:
    """Something new on the store's stream (for ``stopped_for_good``)."""
    return lambda: store.put("new", b"x")


async def put_big(store: ObjectStore, name: str = "big") -> bytes:
    data = os.urandom(BIG)
    await store.put(ObjectStoreMeta(name=name, options=ObjectStoreMetaOptions(max_chunk_size=CHUNK)), data)
    return data


async def big_read(store: ObjectStore) -> ObjectResult:
    """A read, not started yet, of a new object of ``BIG`` bytes."""
    await put_big(store)
    result = await store.get("big")
    assert result is not None
    return result


def watchdog_of(result: ObjectResult) -> asyncio.TimerHandle:
    read = result._read
    assert read is not None and read.timer is not None, "the stall watchdog is armed while reading"
    return read.timer


# -- reads ----------------------------------------------------------------------------------------------------


async def test_a_read_closed_early_removes_its_consumer_and_cancels_its_watchdog(
    store: ObjectStore, jsm: JetStreamManager, stopped_for_good: StoppedCheck
) -> None:
    result = await big_read(store)
    await asyncio.wait_for(result.__anext__(), TIMEOUT)
    watchdog = watchdog_of(result)
    await result.close()
    assert watchdog.cancelled()
    assert await consumer_names(jsm, STREAM) == []
    assert cnats_tasks() == []
    await stopped_for_good("a read closed early")


async def test_break_out_of_a_read_and_dropping_it_stops_it(store: ObjectStore, stopped_for_good: StoppedCheck) -> None:
    result = await big_read(store)
    async for chunk in result:
        assert len(chunk) == CHUNK
        break
    watchdog = watchdog_of(result)
    ref = weakref.ref(result)
    del result
    assert ref() is None, "neither the watchdog nor the consumer keeps a dropped read alive"
    await eventually(watchdog.cancelled, what="the dropped read's watchdog is cancelled")
    await stopped_for_good("a read dropped")


async def test_close_ends_a_read_being_iterated(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    result = await big_read(await store_of(nc))
    reader = Reader(result, hold_at=1)
    await eventually(lambda: len(reader.got) == 1, timeout=TIMEOUT, what="the first chunk")
    watchdog = watchdog_of(result)
    await asyncio.wait_for(nc.close(), 5)
    assert watchdog.cancelled()
    assert cnats_tasks() == []
    got = await reader.ended()  # what was held is handed out, then the iterator ends
    assert reader.error is None
    assert 1 <= len(got) < BIG // CHUNK
    assert cnats_tasks() == []


async def test_read_of_a_connection_closed_meanwhile_raises_instead_of_truncating(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    result = await big_read(await store_of(nc))
    await asyncio.wait_for(result.__anext__(), TIMEOUT)
    reading = asyncio.create_task(result.read())
    await asyncio.sleep(0)
    await nc.close()
    with pytest.raises(ConnectionClosedError):
        await asyncio.wait_for(reading, 5)


async def test_a_fatal_close_ends_a_read_with_the_connections_error(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, reconnect=False)
    result = await big_read(await store_of(nc))
    await asyncio.wait_for(result.__anext__(), TIMEOUT)
    error = await stop_server(nats_server, nc)
    with pytest.raises(NatsError) as raised:
        await asyncio.wait_for(result.read(), 5)
    assert raised.value is error
    await nc.close()
    assert cnats_tasks() == []


async def test_a_read_never_started_on_a_closed_connection_makes_no_request(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    store = await store_of(nc)
    await store.put("small", b"data")
    result = await store.get("small")
    assert result is not None
    await nc.close()
    with pytest.raises(ConnectionClosedError):
        await asyncio.wait_for(result.__anext__(), 5)
    await result.close()
    assert cnats_tasks() == []


async def test_a_complete_read_leaves_no_consumer_task_or_timer(store: ObjectStore, jsm: JetStreamManager) -> None:
    data = await put_big(store)
    result = await store.get("big")
    assert result is not None
    assert await asyncio.wait_for(result.read(), TIMEOUT) == data
    assert result._read is None or result._read.timer is None
    assert await consumer_names(jsm, STREAM) == []
    assert cnats_tasks() == []


async def test_a_cancelled_anext_loses_no_chunk(store: ObjectStore, jsm: JetStreamManager) -> None:
    """Every call is given one turn of the loop, then cancelled if it has not finished: a call cancelled while
    waiting (for a chunk, or for the server consumer's deletion after the last one) loses nothing."""
    data = os.urandom(64 * 1000)
    await store.put(ObjectStoreMeta(name="small", options=ObjectStoreMetaOptions(max_chunk_size=1000)), data)
    result = await store.get("small")
    assert result is not None
    chunks = [await asyncio.wait_for(result.__anext__(), TIMEOUT)]  # started: the window of chunks is pulled
    cancelled = 0
    while True:
        call = asyncio.ensure_future(result.__anext__())
        await asyncio.sleep(0)
        if not call.done():
            call.cancel()
        try:
            chunks.append(await call)
        except asyncio.CancelledError:
            cancelled += 1
            assert cancelled < 10_000
        except StopAsyncIteration:
            break
    assert b"".join(chunks) == data  # nothing lost, and the digest was checked (no DigestMismatchError)
    assert cancelled >= 1  # (at least the call that waited for the consumer's deletion)
    await no_consumers(jsm, STREAM, "the read's consumer")


# -- watches --------------------------------------------------------------------------------------------------


async def test_close_ends_a_watch_being_iterated(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    store = await store_of(nc)
    reader: Reader[ObjectInfo | None] = Reader(await store.watch())
    await store.put("a", b"1")
    await eventually(lambda: len(reader.got) == 2, what="the marker and the change")
    await asyncio.wait_for(nc.close(), 5)
    got = await reader.ended()
    assert reader.error is None
    assert got[0] is None and got[1] is not None and got[1].name == "a"
    assert cnats_tasks() == []


async def test_a_fatal_close_ends_a_watch_with_the_connections_error(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, reconnect=False)
    store = await store_of(nc)
    watcher = await store.watch()
    assert await asyncio.wait_for(watcher.__anext__(), TIMEOUT) is None
    await stop_during_anext(nats_server, nc, watcher)
    await nc.close()
    assert cnats_tasks() == []


async def test_break_out_of_a_watch_removes_its_consumer_and_stops_pulling(
    store: ObjectStore, stopped_for_good: StoppedCheck
) -> None:
    await store.put("a", b"1")
    await store.put("b", b"2")
    async for info in await store.watch(include_history=True):
        assert info is not None and info.name == "a"
        break
    await stopped_for_good("watch() left by break")


async def test_aclose_and_async_with_remove_a_watchs_consumer(
    store: ObjectStore, jsm: JetStreamManager, stopped_for_good: StoppedCheck
) -> None:
    await store.put("a", b"1")
    watcher = await store.watch(include_history=True)
    assert await asyncio.wait_for(watcher.__anext__(), TIMEOUT) is not None
    await watcher.aclose()
    assert await consumer_names(jsm, STREAM) == []
    async with await store.watch() as other:
        assert await asyncio.wait_for(other.__anext__(), TIMEOUT) is None
        assert await consumer_names(jsm, STREAM)
    assert await consumer_names(jsm, STREAM) == []
    await stopped_for_good("watch() closed")


async def test_a_dropped_watch_is_collected_and_stops(store: ObjectStore, stopped_for_good: StoppedCheck) -> None:
    await store.put("a", b"1")
    watcher = await store.watch(include_history=True)
    assert await asyncio.wait_for(watcher.__anext__(), TIMEOUT) is not None
    ref = weakref.ref(watcher)
    del watcher
    assert ref() is None
    await stopped_for_good("watch() dropped")


async def test_list_leaves_no_consumer(store: ObjectStore, jsm: JetStreamManager) -> None:
    await store.put("a", b"1")
    await store.put("b", b"2")
    assert sorted(i.name for i in await store.list()) == ["a", "b"]
    assert await consumer_names(jsm, STREAM) == []
