"""The lifecycle of Key-Value iterators on a real server: ``close()`` ends watchers and history iterators (after
what they hold; with the connection's error after a fatal close) and leaves no task behind; leaving ``keys()``,
``history()`` or ``watch()`` early (``break``, ``aclose()``, ``async with``, garbage collection) removes the
server's ordered consumer and stops the pulls; ``on_initialized`` may return a coroutine (awaited) or raise
(reported as a ``CALLBACK_ERROR`` status)."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from helpers.core import eventually

from cnats import CallbackError, Events, Msg, NatsConnection, connect
from cnats.errors import NatsError
from cnats.jetstream import KV, JetStreamClient, JetStreamManager, KvEntry
from cnats.nuid import nuid
from cnats.testing import NatsServer

TIMEOUT = 10.0
BUCKET = "lc"
STREAM = f"KV_{BUCKET}"

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


async def consumer_names(jsm: JetStreamManager, stream: str = STREAM) -> list[str]:
    return [info.name async for info in jsm.consumers.list(stream)]


async def no_consumers(jsm: JetStreamManager, what: str, stream: str = STREAM) -> None:
    """The stream's consumers are all gone within a few seconds (far below any inactive threshold)."""

    async def none_left() -> bool:
        return not await consumer_names(jsm, stream)

    await eventually(none_left, timeout=5.0, interval=0.02, what=what)


class ApiSpy:
    """A second connection that sees every pull request and every consumer creation on a stream, and a marker
    subject: ``settle(nc)`` returns once everything ``nc`` sent before has reached the spy."""

    def __init__(self, spy: NatsConnection, stream: str) -> None:
        self._spy = spy
        self.pulls: list[str] = []
        self.creates: list[str] = []
        self._markers: set[str] = set()
        self._prefix = f"lifecycle.marker.{nuid.next()}"
        spy.subscribe(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.>", callback=lambda m: self.pulls.append(m.subject))
        spy.subscribe(f"$JS.API.CONSUMER.CREATE.{stream}.>", callback=lambda m: self.creates.append(m.subject))
        spy.subscribe(f"{self._prefix}.*", callback=self._marker)

    def _marker(self, msg: Msg) -> None:
        self._markers.add(msg.subject)

    async def start(self) -> ApiSpy:
        await self._spy.flush()
        return self

    async def settle(self, nc: NatsConnection) -> tuple[int, int]:
        """(pulls, creations) seen once every message ``nc`` sent before this call has reached the spy."""
        subject = f"{self._prefix}.{nuid.next()}"
        nc.publish(subject, b"")
        await nc.flush()
        await eventually(lambda: subject in self._markers, what="the marker went through the server")
        return len(self.pulls), len(self.creates)


@pytest.fixture
async def kv(js: JetStreamClient) -> KV:
    return await js.views.kv(BUCKET, history=10)


@pytest.fixture
async def spy(nats_server: NatsServer) -> AsyncIterator[ApiSpy]:
    other = await connect(nats_server.url)
    try:
        yield await ApiSpy(other, STREAM).start()
    finally:
        await other.close()


async def fill(kv: KV, keys: int = 20, revisions: int = 1) -> None:
    for r in range(revisions):
        for i in range(keys):
            await kv.put(f"k{i}", str(r))


async def assert_stopped_for_good(nc: NatsConnection, kv: KV, jsm: JetStreamManager, spy: ApiSpy, what: str) -> None:
    """The iterator's server consumer is gone and, from a settle point on, nothing pulls or creates consumers on
    the stream even when there is something new to deliver."""
    await no_consumers(jsm, what)
    before = await spy.settle(nc)
    assert before[0] > 0, "the spy saw the iterator's pulls"
    await kv.put("k0", b"new")  # what a live iterator would be sent
    await kv.put("other", b"new")
    after = await spy.settle(nc)
    assert after == before, f"{what}: pulls/creations after the iterator was left: {spy.pulls[before[0] :]}"
    assert await consumer_names(jsm) == []


# -- close ends what iterates ---------------------------------------------------------------------------------


async def test_close_ends_a_watch_being_iterated(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    kv = await nc.jetstream().views.kv(BUCKET)
    await kv.put("a", b"1")
    watcher = await kv.watch()
    got: list[KvEntry] = []

    async def read() -> None:
        async for entry in watcher:
            got.append(entry)

    reader = asyncio.create_task(read())
    await eventually(lambda: len(got) == 1, what="the initial entry")
    await asyncio.wait_for(nc.close(), 5)
    await asyncio.wait_for(reader, 5)  # the async for exits, without an error after a user close
    assert cnats_tasks() == []
    assert [e.key for e in got] == ["a"]


async def test_close_ends_a_history_after_what_it_holds(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    kv = await nc.jetstream().views.kv(BUCKET, history=2)
    total = 400
    for i in range(total):  # more than one pull's worth (256): the history cannot be complete when close comes
        nc.publish(f"$KV.{BUCKET}.k{i}", b"v")
    await nc.flush()
    await eventually(lambda: _count(kv, total), what="every entry stored")
    history = await kv.history()
    first = asyncio.Event()
    gate = asyncio.Event()
    got: list[KvEntry] = []

    async def read() -> None:
        async for entry in history:
            got.append(entry)
            first.set()
            await gate.wait()

    reader = asyncio.create_task(read())
    await asyncio.wait_for(first.wait(), TIMEOUT)
    await asyncio.wait_for(nc.close(), 5)
    gate.set()
    await asyncio.wait_for(reader, 5)
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
    waiting = asyncio.create_task(watcher.__anext__())
    await asyncio.sleep(0)
    await asyncio.to_thread(nats_server.stop, 0)
    error = await asyncio.wait_for(asyncio.shield(nc.closed), 5)
    assert isinstance(error, NatsError)
    with pytest.raises(NatsError) as raised:
        await asyncio.wait_for(waiting, 5)
    assert raised.value is error
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


async def test_break_out_of_keys_removes_its_consumer_and_stops_pulling(
    nc: NatsConnection, kv: KV, jsm: JetStreamManager, spy: ApiSpy
) -> None:
    await fill(kv)
    seen = []
    async for key in await kv.keys():
        seen.append(key)
        break
    assert seen == ["k0"]
    await assert_stopped_for_good(nc, kv, jsm, spy, "keys() left by break")


async def test_break_out_of_history_removes_its_consumer_and_stops_pulling(
    nc: NatsConnection, kv: KV, jsm: JetStreamManager, spy: ApiSpy
) -> None:
    await fill(kv, keys=3, revisions=5)
    async for entry in await kv.history("k1"):
        assert entry.value == b"0"
        break
    await assert_stopped_for_good(nc, kv, jsm, spy, "history() left by break")


async def test_break_out_of_watch_removes_its_consumer_and_stops_pulling(
    nc: NatsConnection, kv: KV, jsm: JetStreamManager, spy: ApiSpy
) -> None:
    await fill(kv, keys=3)
    async for entry in await kv.watch():
        assert entry.key == "k0"
        break
    await assert_stopped_for_good(nc, kv, jsm, spy, "watch() left by break")


async def test_an_exception_out_of_a_watch_loop_stops_it(
    nc: NatsConnection, kv: KV, jsm: JetStreamManager, spy: ApiSpy
) -> None:
    await fill(kv, keys=3)

    async def fails() -> None:
        async for _ in await kv.watch():
            raise RuntimeError("user code failed")

    with pytest.raises(RuntimeError):
        await fails()
    await assert_stopped_for_good(nc, kv, jsm, spy, "watch() left by an exception")


@pytest.mark.parametrize("what", ["keys", "history", "watch"])
async def test_aclose_removes_the_consumer_before_it_returns(
    nc: NatsConnection, kv: KV, jsm: JetStreamManager, spy: ApiSpy, what: str
) -> None:
    await fill(kv)
    iterator: Any = await {"keys": kv.keys, "history": kv.history, "watch": kv.watch}[what]()
    await asyncio.wait_for(iterator.__anext__(), TIMEOUT)
    assert await consumer_names(jsm)
    await iterator.aclose()
    assert await consumer_names(jsm) == []
    rest = await asyncio.wait_for(_rest(iterator), 5)  # what it held is handed out, then it ends
    assert len(rest) < 20
    await iterator.aclose()  # idempotent
    await assert_stopped_for_good(nc, kv, jsm, spy, f"{what}() closed")


async def _rest(iterator: Any) -> list[Any]:
    return [item async for item in iterator]


@pytest.mark.parametrize("what", ["keys", "history", "watch"])
async def test_leaving_async_with_removes_the_consumer(
    nc: NatsConnection, kv: KV, jsm: JetStreamManager, spy: ApiSpy, what: str
) -> None:
    await fill(kv)
    make: Callable[[], Any] = {"keys": kv.keys, "history": kv.history, "watch": kv.watch}[what]
    async with await make() as iterator:
        await asyncio.wait_for(iterator.__anext__(), TIMEOUT)
    assert await consumer_names(jsm) == []
    await assert_stopped_for_good(nc, kv, jsm, spy, f"{what}() left by async with")


@pytest.mark.parametrize("what", ["keys", "history", "watch", "watch-on-initialized"])
async def test_a_dropped_iterator_is_collected_and_stops(
    nc: NatsConnection, kv: KV, jsm: JetStreamManager, spy: ApiSpy, what: str
) -> None:
    await fill(kv)
    calls: list[int] = []
    make: dict[str, Callable[[], Any]] = {
        "keys": kv.keys,
        "history": kv.history,
        "watch": kv.watch,
        "watch-on-initialized": lambda: kv.watch(on_initialized=lambda: calls.append(1)),
    }
    iterator: Any = await make[what]()
    await asyncio.wait_for(iterator.__anext__(), TIMEOUT)
    ref = weakref.ref(iterator)
    del iterator
    assert ref() is None, "nothing but the caller holds an iterator (no reference cycle)"
    gc.collect()
    await assert_stopped_for_good(nc, kv, jsm, spy, f"{what}() dropped")


async def test_a_complete_listing_removes_its_consumer(kv: KV, jsm: JetStreamManager) -> None:
    await fill(kv, keys=5, revisions=2)
    assert sorted([k async for k in await kv.keys()]) == sorted(f"k{i}" for i in range(5))
    assert len([e async for e in await kv.history()]) == 10
    await kv.delete("k1")
    await kv.purge_deletes(older_than=0)
    await no_consumers(jsm, "finished keys()/history()/purge_deletes() leave no consumer behind")


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
