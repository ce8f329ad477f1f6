"""The lifecycle of object-store readers and watchers on a real server: ``close()`` ends a read or a watch being
iterated (after what it holds; with the connection's error after a fatal close) and leaves no task or timer behind;
a read or a watch closed early, left by ``break`` or dropped removes its server consumer, stops pulling and cancels
the read's stall watchdog."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from helpers.core import eventually

from cnats import Msg, NatsConnection, connect
from cnats.errors import ConnectionClosedError, NatsError
from cnats.jetstream import (
    JetStreamClient,
    JetStreamManager,
    ObjectInfo,
    ObjectResult,
    ObjectStore,
    ObjectStoreMeta,
    ObjectStoreMetaOptions,
    StorageType,
)
from cnats.nuid import nuid
from cnats.testing import NatsServer

TIMEOUT = 10.0
BUCKET = "lc"
STREAM = f"OBJ_{BUCKET}"
BIG = 8 * 1024 * 1024  # 512 chunks of 16 KiB: more than one read window (4 MiB)
CHUNK = 16 * 1024

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # a coroutine never awaited fails the test


@pytest.fixture(autouse=True)
def no_stray_task_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No "Task exception was never retrieved" and no failed cnats background task."""
    yield
    gc.collect()
    bad = [
        r.getMessage()
        for r in caplog.records
        if (r.name == "asyncio" and r.levelno >= logging.ERROR) or "background task" in r.getMessage()
    ]
    assert bad == []


def cnats_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("cnats") and not t.done()]


async def consumer_names(jsm: JetStreamManager) -> list[str]:
    return [info.name async for info in jsm.consumers.list(STREAM)]


async def no_consumers(jsm: JetStreamManager, what: str) -> None:
    async def none_left() -> bool:
        return not await consumer_names(jsm)

    await eventually(none_left, timeout=5.0, interval=0.02, what=what)


class ApiSpy:
    """A second connection that sees every pull request, consumer creation and consumer info request on the
    store's stream; ``settle(nc)`` returns once everything ``nc`` sent before has reached the spy."""

    def __init__(self, spy: NatsConnection) -> None:
        self._spy = spy
        self.requests: list[str] = []
        self._markers: set[str] = set()
        self._prefix = f"lifecycle.marker.{nuid.next()}"
        for api in ("MSG.NEXT", "CREATE", "INFO"):
            spy.subscribe(f"$JS.API.CONSUMER.{api}.{STREAM}.>", callback=lambda m: self.requests.append(m.subject))
        spy.subscribe(f"{self._prefix}.*", callback=self._marker)

    def _marker(self, msg: Msg) -> None:
        self._markers.add(msg.subject)

    async def start(self) -> ApiSpy:
        await self._spy.flush()
        return self

    async def settle(self, nc: NatsConnection) -> int:
        subject = f"{self._prefix}.{nuid.next()}"
        nc.publish(subject, b"")
        await nc.flush()
        await eventually(lambda: subject in self._markers, what="the marker went through the server")
        return len(self.requests)


@pytest.fixture
async def store(js: JetStreamClient) -> ObjectStore:
    return await js.views.os(BUCKET, storage=StorageType.MEMORY)


@pytest.fixture
async def spy(nats_server: NatsServer) -> AsyncIterator[ApiSpy]:
    other = await connect(nats_server.url)
    try:
        yield await ApiSpy(other).start()
    finally:
        await other.close()


async def put_big(store: ObjectStore, name: str = "big") -> bytes:
    data = os.urandom(BIG)
    await store.put(ObjectStoreMeta(name=name, options=ObjectStoreMetaOptions(max_chunk_size=CHUNK)), data)
    return data


async def assert_stopped_for_good(
    nc: NatsConnection, store: ObjectStore, jsm: JetStreamManager, spy: ApiSpy, what: str
) -> None:
    """The server consumer is gone and, from a settle point on, nothing pulls, creates consumers or asks for their
    info on the store's stream, even when there is something new to deliver."""
    await no_consumers(jsm, what)
    before = await spy.settle(nc)
    assert before > 0, "the spy saw the pulls"
    await store.put("new", b"x")
    after = await spy.settle(nc)
    assert after == before, f"{what}: requests after it was left: {spy.requests[before:]}"
    assert await consumer_names(jsm) == []


def watchdog_of(result: ObjectResult) -> asyncio.TimerHandle:
    read = result._read
    assert read is not None and read.timer is not None, "the stall watchdog is armed while reading"
    return read.timer


# -- reads ----------------------------------------------------------------------------------------------------


async def test_a_read_closed_early_removes_its_consumer_and_cancels_its_watchdog(
    nc: NatsConnection, store: ObjectStore, jsm: JetStreamManager, spy: ApiSpy
) -> None:
    await put_big(store)
    result = await store.get("big")
    assert result is not None
    await asyncio.wait_for(result.__anext__(), TIMEOUT)
    watchdog = watchdog_of(result)
    await result.close()
    assert watchdog.cancelled()
    assert await consumer_names(jsm) == []
    assert cnats_tasks() == []
    await assert_stopped_for_good(nc, store, jsm, spy, "a read closed early")


async def test_break_out_of_a_read_and_dropping_it_stops_it(
    nc: NatsConnection, store: ObjectStore, jsm: JetStreamManager, spy: ApiSpy
) -> None:
    await put_big(store)
    result = await store.get("big")
    assert result is not None
    async for chunk in result:
        assert len(chunk) == CHUNK
        break
    watchdog = watchdog_of(result)
    ref = weakref.ref(result)
    del result
    assert ref() is None, "neither the watchdog nor the consumer keeps a dropped read alive"
    await eventually(watchdog.cancelled, what="the dropped read's watchdog is cancelled")
    await assert_stopped_for_good(nc, store, jsm, spy, "a read dropped")


async def test_close_ends_a_read_being_iterated(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    store = await nc.jetstream().views.os(BUCKET, storage=StorageType.MEMORY)
    await put_big(store)
    result = await store.get("big")
    assert result is not None
    first = asyncio.Event()
    gate = asyncio.Event()
    got: list[bytes] = []

    async def read() -> None:
        async for chunk in result:
            got.append(chunk)
            first.set()
            await gate.wait()

    reader = asyncio.create_task(read())
    await asyncio.wait_for(first.wait(), TIMEOUT)
    watchdog = watchdog_of(result)
    await asyncio.wait_for(nc.close(), 5)
    assert watchdog.cancelled()
    assert cnats_tasks() == []
    gate.set()
    await asyncio.wait_for(reader, 5)  # what was held is handed out, then the iterator ends
    assert 1 <= len(got) < BIG // CHUNK
    assert cnats_tasks() == []


async def test_read_of_a_connection_closed_meanwhile_raises_instead_of_truncating(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    store = await nc.jetstream().views.os(BUCKET, storage=StorageType.MEMORY)
    await put_big(store)
    result = await store.get("big")
    assert result is not None
    await asyncio.wait_for(result.__anext__(), TIMEOUT)
    reading = asyncio.create_task(result.read())
    await asyncio.sleep(0)
    await nc.close()
    with pytest.raises(ConnectionClosedError):
        await asyncio.wait_for(reading, 5)


async def test_a_fatal_close_ends_a_read_with_the_connections_error(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, reconnect=False)
    store = await nc.jetstream().views.os(BUCKET, storage=StorageType.MEMORY)
    await put_big(store)
    result = await store.get("big")
    assert result is not None
    await asyncio.wait_for(result.__anext__(), TIMEOUT)
    await asyncio.to_thread(nats_server.stop, 0)
    error = await asyncio.wait_for(asyncio.shield(nc.closed), 5)
    assert isinstance(error, NatsError)
    with pytest.raises(NatsError) as raised:
        await asyncio.wait_for(result.read(), 5)
    assert raised.value is error
    await nc.close()
    assert cnats_tasks() == []


async def test_a_read_never_started_on_a_closed_connection_makes_no_request(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    store = await nc.jetstream().views.os(BUCKET, storage=StorageType.MEMORY)
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
    assert await consumer_names(jsm) == []
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
    await no_consumers(jsm, "the read's consumer")


# -- watches --------------------------------------------------------------------------------------------------


async def test_close_ends_a_watch_being_iterated(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    store = await nc.jetstream().views.os(BUCKET, storage=StorageType.MEMORY)
    watcher = await store.watch()
    got: list[ObjectInfo | None] = []

    async def read() -> None:
        async for info in watcher:
            got.append(info)

    reader = asyncio.create_task(read())
    await store.put("a", b"1")
    await eventually(lambda: len(got) == 2, what="the marker and the change")
    await asyncio.wait_for(nc.close(), 5)
    await asyncio.wait_for(reader, 5)
    assert got[0] is None and got[1] is not None and got[1].name == "a"
    assert cnats_tasks() == []


async def test_a_fatal_close_ends_a_watch_with_the_connections_error(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, reconnect=False)
    store = await nc.jetstream().views.os(BUCKET, storage=StorageType.MEMORY)
    watcher = await store.watch()
    assert await asyncio.wait_for(watcher.__anext__(), TIMEOUT) is None
    waiting = asyncio.create_task(watcher.__anext__())
    await asyncio.sleep(0)
    await asyncio.to_thread(nats_server.stop, 0)
    error = await asyncio.wait_for(asyncio.shield(nc.closed), 5)
    with pytest.raises(NatsError) as raised:
        await asyncio.wait_for(waiting, 5)
    assert raised.value is error
    await nc.close()
    assert cnats_tasks() == []


async def test_break_out_of_a_watch_removes_its_consumer_and_stops_pulling(
    nc: NatsConnection, store: ObjectStore, jsm: JetStreamManager, spy: ApiSpy
) -> None:
    await store.put("a", b"1")
    await store.put("b", b"2")
    async for info in await store.watch(include_history=True):
        assert info is not None and info.name == "a"
        break
    await assert_stopped_for_good(nc, store, jsm, spy, "watch() left by break")


async def test_aclose_and_async_with_remove_a_watchs_consumer(
    nc: NatsConnection, store: ObjectStore, jsm: JetStreamManager, spy: ApiSpy
) -> None:
    await store.put("a", b"1")
    watcher = await store.watch(include_history=True)
    assert await asyncio.wait_for(watcher.__anext__(), TIMEOUT) is not None
    await watcher.aclose()
    assert await consumer_names(jsm) == []
    async with await store.watch() as other:
        assert await asyncio.wait_for(other.__anext__(), TIMEOUT) is None
        assert await consumer_names(jsm)
    assert await consumer_names(jsm) == []
    await assert_stopped_for_good(nc, store, jsm, spy, "watch() closed")


async def test_a_dropped_watch_is_collected_and_stops(
    nc: NatsConnection, store: ObjectStore, jsm: JetStreamManager, spy: ApiSpy
) -> None:
    await store.put("a", b"1")
    watcher = await store.watch(include_history=True)
    assert await asyncio.wait_for(watcher.__anext__(), TIMEOUT) is not None
    ref = weakref.ref(watcher)
    del watcher
    assert ref() is None
    await assert_stopped_for_good(nc, store, jsm, spy, "watch() dropped")


async def test_list_leaves_no_consumer(store: ObjectStore, jsm: JetStreamManager) -> None:
    await store.put("a", b"1")
    await store.put("b", b"2")
    assert sorted(i.name for i in await store.list()) == ["a", "b"]
    assert await consumer_names(jsm) == []
