"""Mirrored and sourced buckets (ADR-8): a mirror holds the origin's subjects and sends writes to the origin; a
bucket with sources gets the other buckets' keys moved into its own subjects."""

from __future__ import annotations

import asyncio

import pytest
from helpers.core import eventually

from cnats import NatsConnection
from cnats.errors import InvalidOptionError
from cnats.jetstream import KV, JetStreamClient, KvEntry, KvOperation, StreamSource


async def value_of(kv: KV, key: str) -> bytes | None:
    entry = await kv.get(key)
    return entry.value if entry is not None and entry.operation is KvOperation.PUT else None


async def test_mirror_reads_the_origin_and_writes_to_it(js: JetStreamClient, nc: NatsConnection) -> None:
    origin = await js.views.kv("origin", history=3)
    await origin.put("a", b"1")
    await origin.put("b.c", b"2")
    mirror = await js.views.kv("replica", mirror=StreamSource(name="origin"))

    config = (await (await nc.jetstream_manager()).streams.info("KV_replica")).config
    assert config.mirror is not None and config.mirror.name == "KV_origin"  # the prefix is added
    assert config.mirror_direct is True and not config.subjects

    async def mirrored(key: str, value: bytes) -> bool:
        return await value_of(mirror, key) == value

    await eventually(lambda: mirrored("a", b"1"), timeout=10)
    await eventually(lambda: mirrored("b.c", b"2"), timeout=10)
    assert sorted([k async for k in await mirror.keys()]) == ["a", "b.c"]

    # A direct get on the origin may be answered by the mirror (mirror_direct), which can lag behind the origin
    # for a moment: what the write stored is polled for, not read once.
    async def in_origin(key: str, revision: int, operation: KvOperation, value: bytes) -> bool:
        entry = await origin.get(key)
        return entry is not None and (entry.revision, entry.operation, entry.value) == (revision, operation, value)

    revision = await mirror.put("a", b"3")  # goes to the origin, whose sequence is the revision
    await eventually(lambda: in_origin("a", revision, KvOperation.PUT, b"3"), timeout=10)
    await eventually(lambda: mirrored("a", b"3"), timeout=10)

    await mirror.delete("b.c")
    await eventually(lambda: in_origin("b.c", revision + 1, KvOperation.DEL, b""), timeout=10)


async def test_mirror_watch_sees_keys_without_the_origin_prefix(js: JetStreamClient) -> None:
    origin = await js.views.kv("wo")
    await origin.put("x", b"1")
    mirror = await js.views.kv("wm", mirror=StreamSource(name="KV_wo"))  # a stream name works too
    watcher = await mirror.watch()
    first: KvEntry = await asyncio.wait_for(watcher.__anext__(), 10)
    assert (first.bucket, first.key, first.value) == ("wm", "x", b"1")
    await origin.put("y", b"2")
    second = await asyncio.wait_for(watcher.__anext__(), 10)
    assert (second.key, second.value) == ("y", b"2")
    watcher.stop()


async def test_sources_move_keys_into_the_bucket(js: JetStreamClient, nc: NatsConnection) -> None:
    east = await js.views.kv("east")
    west = await js.views.kv("west")
    await east.put("e", b"from east")
    await west.put("w", b"from west")
    combined = await js.views.kv("all", sources=[StreamSource(name="east"), StreamSource(name="KV_west")])

    config = (await (await nc.jetstream_manager()).streams.info("KV_all")).config
    assert config.subjects == ["$KV.all.>"]
    assert config.sources is not None
    transforms = {s.name: [(t.src, t.dest) for t in s.subject_transforms or []] for s in config.sources}
    assert transforms == {
        "KV_east": [("$KV.east.>", "$KV.all.>")],
        "KV_west": [("$KV.west.>", "$KV.all.>")],
    }

    async def both() -> bool:
        return await value_of(combined, "e") == b"from east" and await value_of(combined, "w") == b"from west"

    await eventually(both, timeout=10)
    await combined.put("own", b"local")  # its own keys live beside the sourced ones
    assert sorted([k async for k in await combined.keys()]) == ["e", "own", "w"]


async def test_mirror_and_sources_together_are_refused(js: JetStreamClient) -> None:
    with pytest.raises(InvalidOptionError):
        await js.views.kv("both", mirror=StreamSource(name="a"), sources=[StreamSource(name="b")])


async def test_binding_an_existing_mirror_finds_its_origin(js: JetStreamClient) -> None:
    origin = await js.views.kv("o2")
    await origin.put("k", b"v")
    await js.views.kv("m2", mirror=StreamSource(name="o2"))
    bound = await js.views.kv("m2")  # an existing stream is used as is: its mirror config decides the subjects
    await eventually(lambda: value_of(bound, "k"), timeout=10)
    assert await value_of(bound, "k") == b"v"
