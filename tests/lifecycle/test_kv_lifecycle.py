"""The lifecycle of Key-Value iterators on a real server: ``close()`` ends watchers and history iterators (after
what they hold; with the connection's error after a fatal close) and leaves no task behind; leaving ``keys()``,
``history()`` or ``watch()`` early (``break``, ``aclose()``, ``async with``, garbage collection) removes the
server's ordered consumer and stops the pulls; ``on_initialized`` may return a coroutine (awaited) or raise
(reported as a ``CALLBACK_ERROR`` status)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from helpers.core import eventually
from helpers.lifecycle import ApiSpy, Reader, StoppedCheck, cnats_tasks, consumer_names, no_consumers, stop_during_anext

from cnats import CallbackError, Events, NatsConnection, connect
from cnats import kv as kv_module
from cnats.jetstream import KV, JetStreamClient, JetStreamManager, KvEntry
from cnats.testing import NatsServer

TIMEOUT = 10.0
BUCKET = "lc"
STREAM = f"KV_{BUCKET}"


@pytest.fixture
async def kv(js: JetStreamClient) -> KV:
    return await js.views.kv(BUCKET, history=10)


@pytest.fixture
async def spy(nc2: NatsConnection) -> ApiSpy:
    """Every pull request and every consumer creation on the bucket's stream."""
    return await ApiSpy(nc2, STREAM, ("MSG.NEXT", "CREATE")).start()


@pytest.fixture
def poke(kv: KV) -> Callable[[], Awaitable[None]]:
    """What a live iterator would be sent (for ``stopped_for_good``)."""

    async def put() -> None:
        await kv.put("k0", b"new")
        await kv.put("other", b"new")

    return put


async def fill(kv: KV, keys: int = 20, revisions: int = 1) -> None:
    for r in range(revisions):
        for i in range(keys):
            await kv.put(f"k{i}", str(r))


def iterate(kv: KV, what: str, *args: str) -> Awaitable[Any]:
    """``kv.keys()``, ``kv.history()`` or ``kv.watch()``."""
    method: Callable[..., Awaitable[Any]] = getattr(kv, what)
    return method(*args)


# -- close ends what iterates ---------------------------------------------------------------------------------


async def test_close_ends_a_watch_being_iterated(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    kv = await nc.jetstream().views.kv(BUCKET)
    await kv.put("a", b"1")
    reader = Reader(await kv.watch())
    await eventually(lambda: len(reader.got) == 1, what="the initial entry")
    await asyncio.wait_for(nc.close(), 5)
    await reader.ended()  # the async for exits, without an error after a user close
    assert reader.error is None
    assert cnats_tasks() == []
    assert [e.key for e in reader.got] == ["a"]


async def test_close_ends_a_history_after_what_it_holds(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    kv = await nc.jetstream().views.kv(BUCKET, history=2)
    total = 2 * kv_module._WATCH_WINDOW + 400
    # more than a reader that stopped can be sent (a window queued, a window on its way): the history cannot be
    # complete when close comes
    for i in range(total):
        nc.publish(f"$KV.{BUCKET}.k{i}", b"v")
    await nc.flush()
    await eventually(lambda: _count(kv, total), what="every entry stored")
    reader: Reader[KvEntry] = Reader(await kv.history(), hold_at=1)
    await eventually(lambda: len(reader.got) == 1, timeout=TIMEOUT, what="the first entry")
    await asyncio.wait_for(nc.close(), 5)
    got = await reader.ended()
    assert reader.error is None
    assert 1 <= len(got) < total  # what was held was handed out, then the iterator ended
    assert [e.key for e in got] == [f"k{i}" for i in range(len(got))]
    assert cnats_tasks() == []


async def _count(kv: KV, n: int) -> bool:
    return (await kv.status()).values >= n


async def test_a_fatal_close_ends_a_watch_with_the_connections_error(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, reconnect=False)
    kv = await nc.jetstream().views.kv(BUCKET)
    await kv.put("a", b"1")
    watcher = await kv.watch()
    await asyncio.wait_for(watcher.__anext__(), TIMEOUT)
    await stop_during_anext(nats_server, nc, watcher)
    with pytest.raises(StopAsyncIteration):  # the error is raised once; then the iterator is simply over
        await asyncio.wait_for(watcher.__anext__(), 5)
    await nc.close()
    assert cnats_tasks() == []


async def test_a_watcher_of_a_closed_connection_ends_at_once(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    kv = await nc.jetstream().views.kv(BUCKET)
    watcher = await kv.watch(updates_only=True)
    keys = await kv.keys()
    await nc.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(watcher.__anext__(), 5)
    assert [k async for k in keys] == []
    await watcher.aclose()  # no API call, no error
    assert cnats_tasks() == []


# -- leaving early --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("what", "args", "filled", "first"),
    [
        pytest.param("keys", (), {}, "k0", id="keys"),
        pytest.param("history", ("k1",), {"keys": 3, "revisions": 5}, ("k1", b"0"), id="history"),
        pytest.param("watch", (), {"keys": 3}, ("k0", b"0"), id="watch"),
    ],
)
async def test_break_out_removes_its_consumer_and_stops_pulling(
    kv: KV, stopped_for_good: StoppedCheck, what: str, args: tuple[str, ...], filled: dict[str, int], first: object
) -> None:
    await fill(kv, **filled)
    seen = []
    async for item in await iterate(kv, what, *args):
        seen.append(item if what == "keys" else (item.key, item.value))
        break
    assert seen == [first]
    await stopped_for_good(f"{what}() left by break")


async def test_an_exception_out_of_a_watch_loop_stops_it(kv: KV, stopped_for_good: StoppedCheck) -> None:
    await fill(kv, keys=3)

    async def fails() -> None:
        async for _ in await kv.watch():
            raise RuntimeError("user code failed")

    with pytest.raises(RuntimeError):
        await fails()
    await stopped_for_good("watch() left by an exception")


@pytest.mark.parametrize("what", ["keys", "history", "watch"])
async def test_aclose_removes_the_consumer_before_it_returns(
    kv: KV, jsm: JetStreamManager, stopped_for_good: StoppedCheck, what: str
) -> None:
    await fill(kv)
    iterator = await iterate(kv, what)
    await asyncio.wait_for(iterator.__anext__(), TIMEOUT)
    assert await consumer_names(jsm, STREAM)
    await iterator.aclose()
    assert await consumer_names(jsm, STREAM) == []
    rest = await asyncio.wait_for(_rest(iterator), 5)  # what it held is handed out, then it ends
    assert len(rest) < 20
    await iterator.aclose()  # idempotent
    await stopped_for_good(f"{what}() closed")


async def _rest(iterator: Any) -> list[Any]:
    return [item async for item in iterator]


@pytest.mark.parametrize("what", ["keys", "history", "watch"])
async def test_leaving_async_with_removes_the_consumer(
    kv: KV, jsm: JetStreamManager, stopped_for_good: StoppedCheck, what: str
) -> None:
    await fill(kv)
    async with await iterate(kv, what) as iterator:
        await asyncio.wait_for(iterator.__anext__(), TIMEOUT)
    assert await consumer_names(jsm, STREAM) == []
    await stopped_for_good(f"{what}() left by async with")


@pytest.mark.parametrize("what", ["keys", "history", "watch", "watch-on-initialized"])
async def test_a_dropped_iterator_is_collected_and_stops(kv: KV, stopped_for_good: StoppedCheck, what: str) -> None:
    await fill(kv)
    calls: list[int] = []
    if what == "watch-on-initialized":
        iterator: Any = await kv.watch(on_initialized=lambda: calls.append(1))
    else:
        iterator = await iterate(kv, what)
    await asyncio.wait_for(iterator.__anext__(), TIMEOUT)
    ref = weakref.ref(iterator)
    del iterator
    assert ref() is None, "nothing but the caller holds an iterator (no reference cycle)"
    gc.collect()
    await stopped_for_good(f"{what}() dropped")


async def test_a_complete_listing_removes_its_consumer(kv: KV, jsm: JetStreamManager) -> None:
    await fill(kv, keys=5, revisions=2)
    assert sorted([k async for k in await kv.keys()]) == sorted(f"k{i}" for i in range(5))
    assert len([e async for e in await kv.history()]) == 10
    await kv.delete("k1")
    await kv.purge_deletes(older_than=0)
    await no_consumers(jsm, STREAM, "finished keys()/history()/purge_deletes() leave no consumer behind")


# -- on_initialized -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("empty", [True, False], ids=["empty", "with-entries"])
@pytest.mark.parametrize("kind", ["plain", "async def", "lambda"])
async def test_on_initialized_of_every_shape_is_called_and_awaited(kv: KV, kind: str, empty: bool) -> None:
    called: list[str] = []
    finished: list[str] = []

    def plain() -> None:
        called.append("plain")
        finished.append("plain")

    async def coroutine_fn() -> None:
        called.append("coroutine")
        await asyncio.sleep(0)
        finished.append("coroutine")

    callback: Any = {"plain": plain, "async def": coroutine_fn, "lambda": lambda: coroutine_fn()}[kind]
    if not empty:
        await fill(kv, keys=3)
    async with await kv.watch(on_initialized=callback) as watcher:
        if not empty:
            assert [e.key for e in [await asyncio.wait_for(watcher.__anext__(), TIMEOUT) for _ in range(3)]] == [
                "k0",
                "k1",
                "k2",
            ]
        await eventually(lambda: len(finished) == 1, what="the callback ran to its end")
    assert len(called) == 1


async def test_a_raising_on_initialized_is_reported_and_the_watch_goes_on(nc: NatsConnection, kv: KV) -> None:
    boom = ValueError("boom")

    async def fails() -> None:
        raise boom

    await fill(kv, keys=2)
    statuses = nc.status()
    async with await kv.watch("k1", on_initialized=lambda: fails()) as watcher:
        assert (await asyncio.wait_for(watcher.__anext__(), TIMEOUT)).key == "k1"
        status = await asyncio.wait_for(anext(statuses), 5)
        assert status.type == Events.ERROR
        assert isinstance(status.error, CallbackError)
        assert status.error.__cause__ is boom
        assert status.error.subject == f"$KV.{BUCKET}.k1"
        await kv.put("k1", b"after")
        assert (await asyncio.wait_for(watcher.__anext__(), TIMEOUT)).value == b"after"


async def test_an_on_initialized_coroutine_pending_at_close_is_cancelled(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    kv = await nc.jetstream().views.kv(BUCKET)
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    watcher = await kv.watch(on_initialized=lambda: forever())
    await asyncio.wait_for(started.wait(), 5)
    assert cnats_tasks()
    await asyncio.wait_for(nc.close(), 5)
    assert cnats_tasks() == []
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(watcher.__anext__(), 5)


async def test_a_cancelled_anext_of_a_watch_loses_no_entry(kv: KV) -> None:
    """A task started on ``anext(watcher)`` and cancelled before it ran (the entry already taken from the queue),
    or while it waited for one, leaves every entry to the next call, in order."""
    await fill(kv, keys=5)
    watcher = await kv.watch(include_history=True)
    seen: list[str] = []
    cancelled = 0
    while len(seen) < 5:
        call = asyncio.ensure_future(anext(watcher))
        if cancelled % 2 == 0:
            call.cancel()  # before its first step
        else:
            await asyncio.sleep(0)
            if not call.done():
                call.cancel()
        try:
            entry = await call
        except asyncio.CancelledError:
            cancelled += 1
            assert cancelled < 10_000
            continue
        seen.append(entry.key)
    assert seen == [f"k{i}" for i in range(5)] and cancelled >= 1
    await kv.put("k9", b"live")
    assert (await asyncio.wait_for(anext(watcher), TIMEOUT)).key == "k9"
    await watcher.aclose()
