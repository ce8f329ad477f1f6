"""Key-Value buckets shared between cnats and nats-py on one real server: a bucket made and written by one client is
read and watched by the other with the same revisions, operations, keys and history."""

from __future__ import annotations

import asyncio
from typing import Any

import nats.js.errors as py_errors
import pytest
from nats.aio.client import Client as NatsPyClient

from cnats import NatsConnection
from cnats.errors import WrongLastSequenceError
from cnats.jetstream import KV, JetStreamClient, KvEntry, KvOperation, KvWatcher

TIMEOUT = 10.0


@pytest.fixture
def js(nc: NatsConnection) -> JetStreamClient:
    return nc.jetstream()


async def take(watcher: KvWatcher, n: int) -> list[KvEntry]:
    async def collect() -> list[KvEntry]:
        return [await watcher.__anext__() for _ in range(n)]

    return await asyncio.wait_for(collect(), TIMEOUT)


async def cnats_history(kv: KV, key: str = ">") -> list[tuple[str, int, str, bytes]]:
    async def collect() -> list[KvEntry]:
        return [e async for e in await kv.history(key)]

    got = await asyncio.wait_for(collect(), TIMEOUT)
    return [(e.key, e.revision, e.operation.value, e.value) for e in got]


async def cnats_keys(kv: KV) -> list[str]:
    async def collect() -> list[str]:
        return [k async for k in await kv.keys()]

    return sorted(await asyncio.wait_for(collect(), TIMEOUT))


async def py_keys(pkv: Any) -> list[str]:
    """nats-py's ``keys()``, asked again when it wrongly reports none. Its watcher reads the consumer's info after
    subscribing; on a busy machine the server has delivered everything by then while nats-py has not yet counted a
    delivery, so it signals "no more keys" first and ``keys()`` raises ``NoKeysError`` on a full bucket (a race in
    nats-py, not in what cnats wrote)."""
    for _ in range(3):
        try:
            keys: list[str] = await pkv.keys()
            return keys
        except py_errors.NoKeysError:
            continue
    return []


def py_op(op: object) -> str:
    """nats-py reports operation None for a plain PUT."""
    return "PUT" if op is None else str(op)


@pytest.mark.parametrize("direct", [False, True])
async def test_bucket_from_nats_py_read_by_cnats(py: NatsPyClient, js: JetStreamClient, direct: bool) -> None:
    pkv = await py.jetstream().create_key_value(bucket="b", history=5, direct=direct)
    assert await pkv.put("a", b"1") == 1
    assert await pkv.put("b", b"2") == 2
    assert await pkv.put("a", b"3") == 3
    await pkv.delete("b")  # 4
    assert await pkv.put("c", b"5") == 5
    assert await pkv.put("c", b"6") == 6
    await pkv.purge("c")  # 7
    assert await pkv.put("d.e", b"8") == 8

    kv = await js.views.kv("b")  # existing bucket used as is: history stays 5
    st = await kv.status()
    assert st.history == 5

    a = await kv.get("a")
    assert a is not None and (a.value, a.revision, a.operation) == (b"3", 3, KvOperation.PUT)
    old = await kv.get("a", revision=1)
    assert old is not None and old.value == b"1"
    b = await kv.get("b")
    assert b is not None and (b.revision, b.operation, b.value) == (4, KvOperation.DEL, b"")
    c = await kv.get("c")
    assert c is not None and (c.revision, c.operation) == (7, KvOperation.PURGE)
    assert await kv.get("c", revision=5) is None

    assert await cnats_keys(kv) == ["a", "d.e"]
    assert await cnats_history(kv) == [
        ("a", 1, "PUT", b"1"),
        ("b", 2, "PUT", b"2"),
        ("a", 3, "PUT", b"3"),
        ("b", 4, "DEL", b""),
        ("c", 7, "PURGE", b""),
        ("d.e", 8, "PUT", b"8"),
    ]

    # cnats writes on top of nats-py's markers and revisions
    assert await kv.create("b", b"again") == 9
    with pytest.raises(WrongLastSequenceError):
        await kv.update("a", b"x", 1)
    assert await kv.update("a", b"x", 3) == 10
    got = await pkv.get("a")
    assert got.value == b"x" and got.revision == 10


async def test_bucket_from_cnats_read_by_nats_py(py: NatsPyClient, js: JetStreamClient) -> None:
    kv = await js.views.kv("b", history=5)
    await kv.put("a", b"1")
    await kv.put("b", b"2")
    await kv.put("a", b"3")
    await kv.delete("b")
    await kv.put("c", b"5")
    await kv.purge("c")
    await kv.put("d.e", b"7")

    pkv = await py.jetstream().key_value("b")
    st = await pkv.status()
    assert st.history == 5
    a = await pkv.get("a")
    assert (a.key, a.value, a.revision) == ("a", b"3", 3)
    assert (await pkv.get("a", revision=1)).value == b"1"
    with pytest.raises(py_errors.KeyNotFoundError):
        await pkv.get("b")
    with pytest.raises(py_errors.KeyNotFoundError):
        await pkv.get("c")

    assert sorted(await py_keys(pkv)) == await cnats_keys(kv) == ["a", "d.e"]
    py_hist = [(e.key, e.revision, py_op(e.operation), e.value or b"") for e in await pkv.history("a")]
    assert py_hist == await cnats_history(kv, "a")
    py_hist_b = [(e.key, e.revision, py_op(e.operation), e.value or b"") for e in await pkv.history("b")]
    assert py_hist_b == await cnats_history(kv, "b") == [("b", 2, "PUT", b"2"), ("b", 4, "DEL", b"")]

    # nats-py writes are seen by cnats, and its create works over cnats' DEL marker
    rev = await pkv.create("b", b"from-py")
    got = await kv.get("b")
    assert got is not None and (got.value, got.revision, got.operation) == (b"from-py", rev, KvOperation.PUT)


async def test_nats_py_watches_cnats_bucket(py: NatsPyClient, js: JetStreamClient) -> None:
    kv = await js.views.kv("b", history=5)
    await kv.put("a", b"1")
    await kv.put("b", b"2")
    await kv.put("a", b"3")

    pkv = await py.jetstream().key_value("b")
    watcher = await pkv.watchall()
    initial = []
    while True:
        entry = await watcher.updates(timeout=TIMEOUT)
        if entry is None:
            break
        initial.append((entry.key, entry.revision, entry.value))
    assert initial == [("b", 2, b"2"), ("a", 3, b"3")]

    key_watcher = await pkv.watch("a")
    first = await key_watcher.updates(timeout=TIMEOUT)
    assert (first.key, first.revision) == ("a", 3)
    assert await key_watcher.updates(timeout=TIMEOUT) is None

    await kv.put("c", b"4")
    await kv.delete("a")
    await kv.purge("b")
    live = [await watcher.updates(timeout=TIMEOUT) for _ in range(3)]
    assert [(e.key, e.revision, py_op(e.operation)) for e in live] == [
        ("c", 4, "PUT"),
        ("a", 5, "DEL"),
        ("b", 6, "PURGE"),
    ]
    only_a = await key_watcher.updates(timeout=TIMEOUT)
    assert (only_a.key, only_a.revision, py_op(only_a.operation)) == ("a", 5, "DEL")
    await watcher.stop()
    await key_watcher.stop()


async def test_cnats_watches_nats_py_writes(py: NatsPyClient, js: JetStreamClient) -> None:
    pkv = await py.jetstream().create_key_value(bucket="w", history=5)
    await pkv.put("x", b"0")
    kv = await js.views.kv("w")
    called: list[int] = []
    w = await kv.watch(include_history=True, on_initialized=lambda: called.append(1))
    assert [(e.key, e.revision, e.value) for e in await take(w, 1)] == [("x", 1, b"0")]
    await pkv.put("y", b"1")
    await pkv.delete("x")
    await pkv.purge("y")
    live = await take(w, 3)
    assert [(e.key, e.revision, e.operation) for e in live] == [
        ("y", 2, KvOperation.PUT),
        ("x", 3, KvOperation.DEL),
        ("y", 4, KvOperation.PURGE),
    ]
    assert called == [1]
    w.stop()
