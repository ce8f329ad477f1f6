"""KV watchers against a real nats-server: initial state, include_history / updates_only /
ignore_deletes / headers_only / resume_from_revision, filters, on_initialized, delta, stop, surviving a server
restart without repeating or skipping an entry, and a long run of updates in order."""

from __future__ import annotations

import asyncio

import pytest

import cnats
from cnats.errors import InvalidKeyError, InvalidOptionError
from cnats.jetstream import KV, JetStreamClient, KvEntry, KvOperation, KvWatcher
from cnats.testing import NatsServer
from tests.helpers.core import eventually, stays

TIMEOUT = 10.0


@pytest.fixture
async def kv(js: JetStreamClient) -> KV:
    return await js.views.kv("b", history=10)


async def take(watcher: KvWatcher, n: int, timeout: float = TIMEOUT) -> list[KvEntry]:
    """The next ``n`` entries of ``watcher`` (AssertionError when they do not come in time)."""

    async def collect() -> list[KvEntry]:
        got: list[KvEntry] = []
        while len(got) < n:
            got.append(await watcher.__anext__())
        return got

    try:
        return await asyncio.wait_for(collect(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"fewer than {n} entries within {timeout} s") from None


async def nothing_more(watcher: KvWatcher, duration: float = 0.3) -> None:
    """No entry arrives during ``duration`` seconds."""
    try:
        entry = await asyncio.wait_for(watcher.__anext__(), duration)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected entry {entry!r}")


def summary(entries: list[KvEntry]) -> list[tuple[str, int, KvOperation, bytes]]:
    return [(e.key, e.revision, e.operation, e.value) for e in entries]


async def test_default_watch_latest_per_key_then_updates(kv: KV) -> None:
    await kv.put("a", b"1")
    await kv.put("b", b"1")
    await kv.put("a", b"2")
    await kv.put("c", b"1")
    await kv.delete("c")
    async with await kv.watch() as w:
        initial = await take(w, 3)
        assert summary(initial) == [
            ("b", 2, KvOperation.PUT, b"1"),
            ("a", 3, KvOperation.PUT, b"2"),
            ("c", 5, KvOperation.DEL, b""),
        ]
        assert [e.delta for e in initial] == [2, 1, 0]
        assert all(e.bucket == "b" for e in initial)
        await nothing_more(w, 0.2)
        await kv.put("d", b"x")
        await kv.purge("a")
        live = await take(w, 2)
        assert summary(live) == [("d", 6, KvOperation.PUT, b"x"), ("a", 7, KvOperation.PURGE, b"")]


async def test_include_history(kv: KV) -> None:
    await kv.put("a", b"1")
    await kv.put("a", b"2")
    await kv.put("b", b"3")
    await kv.delete("a")
    w = await kv.watch(include_history=True)
    got = await take(w, 4)
    assert [e.revision for e in got] == [1, 2, 3, 4]
    assert [e.delta for e in got] == [3, 2, 1, 0]
    assert got[3].operation == KvOperation.DEL
    await kv.put("a", b"5")
    assert summary(await take(w, 1)) == [("a", 5, KvOperation.PUT, b"5")]
    w.stop()


async def test_updates_only(kv: KV) -> None:
    await kv.put("a", b"old")
    called: list[int] = []
    w = await kv.watch(updates_only=True, on_initialized=lambda: called.append(1))
    assert called == [1]
    await nothing_more(w, 0.2)
    await kv.put("a", b"new")
    await kv.put("b", b"x")
    assert summary(await take(w, 2)) == [("a", 2, KvOperation.PUT, b"new"), ("b", 3, KvOperation.PUT, b"x")]
    w.stop()


async def test_include_history_and_updates_only_conflict(kv: KV) -> None:
    with pytest.raises(InvalidOptionError):
        await kv.watch(include_history=True, updates_only=True)


async def test_ignore_deletes(kv: KV) -> None:
    await kv.put("a", b"1")
    await kv.put("b", b"1")
    await kv.delete("b")
    await kv.put("c", b"1")
    await kv.purge("c")
    w = await kv.watch(ignore_deletes=True)
    assert summary(await take(w, 1)) == [("a", 1, KvOperation.PUT, b"1")]
    await kv.delete("a")
    await kv.purge("a")
    await kv.put("d", b"2")
    assert summary(await take(w, 1)) == [("d", 8, KvOperation.PUT, b"2")]
    await nothing_more(w, 0.2)
    w.stop()


async def test_ignore_deletes_with_history(kv: KV) -> None:
    await kv.put("a", b"1")
    await kv.delete("a")
    await kv.put("a", b"2")
    w = await kv.watch(include_history=True, ignore_deletes=True)
    assert [e.revision for e in await take(w, 2)] == [1, 3]
    await nothing_more(w, 0.2)
    w.stop()


async def test_headers_only(kv: KV) -> None:
    await kv.put("a", b"hello world")
    await kv.put("b", b"")
    w = await kv.watch(headers_only=True)
    got = await take(w, 2)
    assert [(e.key, e.value, e.length) for e in got] == [("a", b"", 11), ("b", b"", 0)]
    await kv.put("c", b"12345")
    (live,) = await take(w, 1)
    assert (live.key, live.value, live.length, live.revision) == ("c", b"", 5, 3)
    w.stop()


async def test_resume_from_revision(kv: KV) -> None:
    for i in range(1, 6):
        await kv.put("a" if i % 2 else "b", str(i))
    w = await kv.watch(resume_from_revision=3)
    got = await take(w, 3)
    assert [(e.revision, e.value) for e in got] == [(3, b"3"), (4, b"4"), (5, b"5")]
    assert got[-1].delta == 0
    await kv.put("z", b"6")
    assert [e.revision for e in await take(w, 1)] == [6]
    w.stop()


async def test_filters(kv: KV) -> None:
    for k in ("a.1", "a.2", "a.x.y", "b.1", "c"):
        await kv.put(k, k)
    w = await kv.watch("a.*")
    assert sorted(e.key for e in await take(w, 2)) == ["a.1", "a.2"]
    await kv.put("b.2", b"no")
    await kv.put("a.3", b"yes")
    assert [e.key for e in await take(w, 1)] == ["a.3"]
    w.stop()

    w2 = await kv.watch(["a.>", "c"])
    assert [e.key for e in await take(w2, 5)] == ["a.1", "a.2", "a.x.y", "c", "a.3"]
    await kv.put("b.3", b"no")
    await kv.put("c", b"again")
    assert [(e.key, e.value) for e in await take(w2, 1)] == [("c", b"again")]
    w2.stop()

    w3 = await kv.watch("c")
    assert [e.key for e in await take(w3, 1)] == ["c"]
    w3.stop()


@pytest.mark.parametrize("key", ["a..b", ".a", "a.", "a b", ""])
async def test_invalid_watch_filter(kv: KV, key: str) -> None:
    with pytest.raises(InvalidKeyError):
        await kv.watch(key)


async def test_on_initialized_after_initial_entries(kv: KV) -> None:
    await kv.put("a", b"1")
    await kv.put("b", b"1")
    await kv.put("c", b"1")
    called: list[int] = []
    w = await kv.watch(on_initialized=lambda: called.append(1))
    got = await take(w, 3)
    assert [e.delta for e in got] == [2, 1, 0]
    await eventually(lambda: called == [1], timeout=5, what="on_initialized called")
    await kv.put("d", b"1")
    await take(w, 1)
    await stays(lambda: called == [1], 0.1)
    w.stop()


async def test_on_initialized_once_with_many_initial_entries(kv: KV) -> None:
    for i in range(50):
        await kv.put(f"k{i}", b"v")
    seen: list[int] = []
    taken: list[KvEntry] = []
    w = await kv.watch(on_initialized=lambda: seen.append(len(taken)))
    while len(taken) < 50:
        taken.extend(await take(w, 1))
    await eventually(lambda: len(seen) == 1, timeout=5)
    # the callback ran once, after the last initial entry was queued (it may run before the reader took them)
    assert taken[-1].delta == 0
    w.stop()


async def test_on_initialized_empty_bucket(kv: KV) -> None:
    called: list[int] = []
    w = await kv.watch(on_initialized=lambda: called.append(1))
    assert called == [1]
    await kv.put("a", b"1")
    (entry,) = await take(w, 1)
    assert entry.revision == 1
    await stays(lambda: called == [1], 0.1)
    w.stop()


async def test_on_initialized_with_history_and_ignore_deletes(kv: KV) -> None:
    await kv.put("a", b"1")
    await kv.delete("a")
    called: list[int] = []
    w = await kv.watch(include_history=True, ignore_deletes=True, on_initialized=lambda: called.append(1))
    assert [e.revision for e in await take(w, 1)] == [1]
    await eventually(lambda: called == [1], timeout=5)
    w.stop()


async def test_stop_ends_iterator(kv: KV) -> None:
    await kv.put("a", b"1")
    w = await kv.watch()

    async def run() -> list[KvEntry]:
        return [e async for e in w]

    task = asyncio.create_task(run())
    await asyncio.sleep(0.1)
    w.stop()
    got = await asyncio.wait_for(task, TIMEOUT)
    assert [e.key for e in got] == ["a"]
    await kv.put("b", b"2")
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(w.__anext__(), 1)


async def test_async_with_stops(kv: KV) -> None:
    await kv.put("a", b"1")
    async with await kv.watch() as w:
        await take(w, 1)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(w.__anext__(), 1)


async def test_many_updates_arrive_in_order(kv: KV) -> None:
    w = await kv.watch(updates_only=True)
    n = 2000
    got: list[KvEntry] = []

    async def reader() -> None:
        while len(got) < n:
            got.append(await w.__anext__())

    task = asyncio.create_task(reader())
    for i in range(n):
        await kv.put(f"k.{i % 7}", str(i))
    await asyncio.wait_for(task, 20)
    assert [e.revision for e in got] == list(range(1, n + 1))
    assert [e.value for e in got] == [str(i).encode() for i in range(n)]
    w.stop()


async def test_watcher_survives_server_restart(nats_server: NatsServer) -> None:
    nc = await cnats.connect(nats_server.url, reconnect_time_wait=0.1, max_reconnect_attempts=-1)
    try:
        kv = await nc.jetstream().views.kv("r", history=10)
        for i in range(5):
            await kv.put(f"k{i % 2}", str(i))
        w = await kv.watch(include_history=True)
        got = await take(w, 5)

        await asyncio.to_thread(nats_server.restart)

        async def put_when_back(key: str, value: str) -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while True:
                try:
                    await kv.put(key, value)
                    return
                except cnats.errors.NatsError:
                    if loop.time() > deadline:
                        raise
                    await asyncio.sleep(0.1)

        for i in range(5, 10):
            await put_when_back(f"k{i % 2}", str(i))
        got += await take(w, 5, timeout=4)
        assert [e.revision for e in got] == list(range(1, 11))
        assert [e.value for e in got] == [str(i).encode() for i in range(10)]
        await nothing_more(w, 0.3)
        w.stop()
    finally:
        await nc.close()


async def test_updates_only_watcher_survives_restart_before_any_update(nats_server: NatsServer) -> None:
    nc = await cnats.connect(nats_server.url, reconnect_time_wait=0.1, max_reconnect_attempts=-1)
    try:
        kv = await nc.jetstream().views.kv("r", history=10)
        await kv.put("old", b"before the watch")
        w = await kv.watch(updates_only=True)
        await nothing_more(w, 0.1)

        await asyncio.to_thread(nats_server.restart)
        await eventually(lambda: not nc.is_closed and nc.info is not None, timeout=10)
        for i in range(3):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while True:
                try:
                    await kv.put(f"k{i}", str(i))
                    break
                except cnats.errors.NatsError:
                    if loop.time() > deadline:
                        raise
                    await asyncio.sleep(0.1)
        # the watcher re-creates its consumer on RECONNECT (not after ~10 s of missed heartbeats) and resumes
        # after revision 1
        got = await take(w, 3, timeout=4)
        assert [(e.key, e.revision) for e in got] == [("k0", 2), ("k1", 3), ("k2", 4)]
        w.stop()
    finally:
        await nc.close()


async def test_on_initialized_when_resuming_past_the_end(kv: KV) -> None:
    await kv.put("a", b"1")
    called: list[int] = []
    w = await kv.watch(resume_from_revision=2, on_initialized=lambda: called.append(1))
    assert called == [1]
    await kv.put("b", b"2")
    assert [e.revision for e in await take(w, 1)] == [2]
    w.stop()


async def test_a_watcher_reads_many_small_entries_ahead_but_few_large_ones(nc: cnats.NatsConnection) -> None:
    """A watcher's window is bounded by entries and by bytes: thousands of small entries come ahead of a reader that
    holds on, but of large values no more than a few MiB (at most a window unread and another on its way)."""
    js = nc.jetstream()
    jsm = await nc.jetstream_manager()

    async def server_side(bucket: str) -> tuple[int, int]:
        """What the server sent the bucket's one watcher, and how many of its pull requests are still open."""
        (consumer,) = [c async for c in jsm.consumers.list(f"KV_{bucket}")]
        return consumer.delivered.stream_seq, consumer.num_waiting

    async def sent_at_least(bucket: str, n: int) -> bool:
        return (await server_side(bucket))[0] >= n

    small = await js.views.kv("small", history=1)
    for i in range(6000):
        nc.publish(f"$KV.small.k{i}", b"v")
    await nc.flush()
    await eventually(lambda: _stored(small, 6000), what="every small entry stored")
    async with await small.watch() as watcher:
        await take(watcher, 1)
        await eventually(lambda: sent_at_least("small", 4096), what="thousands of entries ahead")

    large = await js.views.kv("large", history=1)
    value = b"x" * 512 * 1024
    for i in range(40):
        await large.put(f"k{i}", value)
    async with await large.watch() as watcher:
        await take(watcher, 1)

        async def settled() -> bool:
            sent, open_pulls = await server_side("large")
            return sent > 8 and open_pulls == 0  # a window came, and the pulls are used up: nothing more comes

        await eventually(settled, what="the reader a whole window behind")
        sent, _ = await server_side("large")
        assert sent <= 1 + 2 * 8  # 4 MiB a window: under 8 values each, 2 windows, and the one taken


async def _stored(kv: KV, n: int) -> bool:
    return (await kv.status()).values >= n


@pytest.mark.nats_server(config="max_payload: 8MB")
async def test_a_watcher_delivers_a_value_larger_than_its_byte_window(nc: cnats.NatsConnection) -> None:
    """A server may take values larger than the watcher's usual byte window (its `max_payload` raised): the window
    grows to fit the largest message the server may send, or such a value would never come."""
    kv = await nc.jetstream().views.kv("huge", history=1)
    value = b"v" * (5 * 1024 * 1024)
    await kv.put("big", value)
    await kv.put("small", b"s")
    async with await kv.watch() as watcher:
        entries = await take(watcher, 2)
    assert [(e.key, len(e.value)) for e in entries] == [("big", len(value)), ("small", 1)]
