"""Objects (ADR-20) against a real nats-server: put from every kind of source, chunked reads with
the digest checked, replacement, delete, info, list, update, links, names and the errors users see."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cnats.errors import (
    BadPayloadError,
    BucketNotFoundError,
    DigestMismatchError,
    InvalidNameError,
    InvalidOptionError,
    JetStreamApiError,
    ObjectExistsError,
    ObjectNotFoundError,
    WrongLastSequenceError,
)
from cnats.headers import Headers
from cnats.jetstream import (
    JetStreamClient,
    JetStreamManager,
    ObjectInfo,
    ObjectResult,
    ObjectStore,
    ObjectStoreLink,
    ObjectStoreMeta,
    ObjectStoreMetaOptions,
    PurgeResponse,
    StorageType,
)

TIMEOUT = 10.0
CHUNK = 128 * 1024


def digest_of(data: bytes) -> str:
    return "SHA-256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()


def meta(name: str, chunk: int) -> ObjectStoreMeta:
    return ObjectStoreMeta(name=name, options=ObjectStoreMetaOptions(max_chunk_size=chunk))


async def messages_in(jsm: JetStreamManager, bucket: str = "b") -> int:
    return (await jsm.streams.info(f"OBJ_{bucket}")).state.messages


async def chunks_of(result: ObjectResult) -> list[bytes]:
    return await asyncio.wait_for(_collect(result), TIMEOUT)


async def _collect(result: ObjectResult) -> list[bytes]:
    return [chunk async for chunk in result]


# -- put and get ------------------------------------------------------------------------------------------------
async def test_put_bytes_and_get_chunks(store: ObjectStore, jsm: JetStreamManager) -> None:
    data = os.urandom(3 * CHUNK + 1000)
    info = await store.put(ObjectStoreMeta(name="photo", description="a photo"), data)
    assert isinstance(info, ObjectInfo)
    assert (info.name, info.bucket, info.description) == ("photo", "b", "a photo")
    assert (info.size, info.chunks) == (len(data), 4)
    assert info.digest == digest_of(data)
    assert info.options is not None and info.options.max_chunk_size == CHUNK
    assert info.deleted is False and info.is_link is False
    assert info.mtime.tzinfo is not None
    assert info.revision == (await jsm.streams.info("OBJ_b")).state.last_seq  # the meta entry is written last

    result = await store.get("photo")
    assert result is not None
    assert result.info == await store.info("photo")
    chunks = await chunks_of(result)
    assert [len(c) for c in chunks] == [CHUNK, CHUNK, CHUNK, 1000]
    assert all(isinstance(c, bytes) for c in chunks)
    assert b"".join(chunks) == data
    assert (await jsm.streams.info("OBJ_b")).state.consumer_count == 0  # the read's consumer is gone


async def test_put_from_a_binary_file(store: ObjectStore, tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK + 5)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    with path.open("rb") as f:
        info = await store.put("file", f)
    assert (info.size, info.chunks) == (len(data), 3)
    assert await store.get_blob("file") == data

    info = await store.put("buffer", io.BytesIO(data))
    assert info.digest == digest_of(data)
    assert await store.get_blob("buffer") == data


async def test_put_from_an_async_iterable_of_any_piece_sizes(store: ObjectStore) -> None:
    pieces = [os.urandom(n) for n in (10, 5000, 3 * 1000 + 7, 0, 1000, 1)]
    data = b"".join(pieces)

    async def produce() -> AsyncIterator[bytes]:
        for piece in pieces:
            await asyncio.sleep(0)
            yield piece

    info = await store.put(meta("streamed", 1000), produce())
    assert (info.size, info.chunks) == (len(data), -(-len(data) // 1000))
    result = await store.get("streamed")
    assert result is not None
    chunks = await chunks_of(result)
    assert all(len(c) == 1000 for c in chunks[:-1])
    assert b"".join(chunks) == data


async def test_put_from_a_producer_that_reuses_its_buffer(store: ObjectStore) -> None:
    pieces = [os.urandom(64 * 1024) for _ in range(24)]

    async def produce() -> AsyncIterator[bytearray]:
        buffer = bytearray(64 * 1024)
        for piece in pieces:
            buffer[:] = piece  # refilled in place, as a readinto() loop does
            yield buffer

    info = await store.put(meta("reused", 64 * 1024), produce())  # type: ignore[arg-type]
    assert info.digest == digest_of(b"".join(pieces))
    assert await store.get_blob("reused") == b"".join(pieces)


async def test_put_from_a_sync_iterable(store: ObjectStore) -> None:
    def produce() -> Iterator[bytes]:
        yield b"hello "
        yield bytearray(b"object ")
        yield memoryview(b"store")

    info = await store.put("sync", produce())
    assert info.size == len(b"hello object store")
    assert await store.get_blob("sync") == b"hello object store"


async def test_put_blob_and_other_payloads(store: ObjectStore) -> None:
    await store.put_blob("blob", b"\x00\x01\x02")
    assert await store.get_blob("blob") == b"\x00\x01\x02"
    await store.put("text", "héllo")  # a str is UTF-8 encoded
    assert await store.get_blob("text") == "héllo".encode()
    await store.put("view", memoryview(bytearray(b"abcdef"))[1:4])
    assert await store.get_blob("view") == b"bcd"


async def test_empty_object(store: ObjectStore) -> None:
    info = await store.put("empty", None)
    assert (info.size, info.chunks, info.digest) == (0, 0, digest_of(b""))
    result = await store.get("empty")
    assert result is not None
    assert await chunks_of(result) == []
    assert await store.get_blob("empty") == b""
    assert (await store.put_blob("empty2", b"")).chunks == 0


@pytest.mark.parametrize("data", [12345, [1, 2, 3], object()])
async def test_unsupported_data_is_refused(store: ObjectStore, jsm: JetStreamManager, data: object) -> None:
    with pytest.raises(BadPayloadError):
        await store.put("bad", data)  # type: ignore[arg-type]
    assert await store.info("bad") is None
    assert await messages_in(jsm) == 0


async def test_replacing_an_object_purges_the_old_chunks(store: ObjectStore, jsm: JetStreamManager) -> None:
    first = await store.put(meta("doc", 1000), os.urandom(10_000))
    assert await messages_in(jsm) == 11
    second_data = os.urandom(3000)
    second = await store.put(meta("doc", 1000), second_data)
    assert second.nuid != first.nuid and second.revision > first.revision
    assert await messages_in(jsm) == 4  # three new chunks and the meta entry
    assert await store.get_blob("doc") == second_data


async def test_chunk_size_is_clamped_to_max_payload(js: JetStreamClient) -> None:
    max_payload = js._nc.info.max_payload if js._nc.info else 0
    store = await js.views.os("clamp", storage=StorageType.MEMORY)
    data = os.urandom(max_payload + 10)
    info = await store.put(meta("big", 4 * max_payload), data)
    assert info.options is not None and info.options.max_chunk_size == max_payload
    assert info.chunks == 2
    assert await store.get_blob("big") == data


@pytest.mark.nats_server(jetstream=True, config="max_payload: 4096")
async def test_chunk_size_follows_a_small_server_max_payload(store: ObjectStore) -> None:
    data = os.urandom(10_000)
    info = await store.put("small", data)
    assert (info.chunks, info.options.max_chunk_size if info.options else None) == (3, 4096)
    assert await store.get_blob("small") == data


async def test_bad_chunk_size(store: ObjectStore) -> None:
    with pytest.raises(InvalidOptionError):
        await store.put(meta("x", -5), b"data")


async def test_previous_revision(store: ObjectStore, jsm: JetStreamManager) -> None:
    created = await store.put("cas", b"one", previous_revision=0)  # 0: only if it does not exist
    with pytest.raises(WrongLastSequenceError):
        await store.put("cas", os.urandom(5000), previous_revision=0)
    assert await messages_in(jsm) == 2  # the refused version's chunks were purged
    updated = await store.put("cas", b"two", previous_revision=created.revision)
    assert await store.get_blob("cas") == b"two"
    with pytest.raises(WrongLastSequenceError):
        await store.put("cas", b"three", previous_revision=created.revision)
    assert (await store.info("cas")) == updated
    with pytest.raises(InvalidOptionError):
        await store.put("cas", b"x", previous_revision=-1)


async def test_a_failed_put_purges_its_chunks(js: JetStreamClient, jsm: JetStreamManager) -> None:
    store = await js.views.os("small", storage=StorageType.MEMORY, max_bytes=200_000)
    with pytest.raises(JetStreamApiError):
        await store.put(meta("too_big", 10_000), os.urandom(1_000_000))
    assert await messages_in(jsm, "small") == 0
    assert await store.info("too_big") is None
    await store.put("fits", b"ok")  # the store is usable again
    assert await store.get_blob("fits") == b"ok"


async def test_a_failing_producer_leaves_no_chunks(store: ObjectStore, jsm: JetStreamManager) -> None:
    async def produce() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield os.urandom(5000)
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError, match="the source broke"):
        await store.put(meta("broken", 1000), produce())
    assert await messages_in(jsm) == 0
    assert await store.info("broken") is None


async def test_a_cancelled_put_leaves_no_chunks(store: ObjectStore, jsm: JetStreamManager) -> None:
    sent = asyncio.Event()

    async def produce() -> AsyncIterator[bytes]:
        yield os.urandom(5000)
        sent.set()
        await asyncio.Event().wait()  # a source that never ends
        yield b""

    task = asyncio.create_task(store.put(meta("never", 1000), produce()))
    await asyncio.wait_for(sent.wait(), TIMEOUT)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, TIMEOUT)
    assert await messages_in(jsm) == 0


async def test_link_in_put_meta_is_refused(store: ObjectStore) -> None:
    bad = ObjectStoreMeta(name="x", options=ObjectStoreMetaOptions(link=ObjectStoreLink(bucket="b", name="y")))
    with pytest.raises(InvalidOptionError, match="link cannot be set when putting the object in bucket"):
        await store.put(bad, b"data")


async def test_headers_and_metadata(store: ObjectStore) -> None:
    m = ObjectStoreMeta(name="h", headers={"Content-Type": "image/png", "X-Tag": ["a", "b"]}, metadata={"k": "v"})  # type: ignore[arg-type]
    await store.put(m, b"png")
    info = await store.info("h")
    assert info is not None
    assert isinstance(info.headers, Headers)
    assert info.headers.get("Content-Type") == "image/png"
    assert info.headers.values("X-Tag") == ["a", "b"]
    assert info.metadata == {"k": "v"}


# -- names ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a b", "dir/file.txt", "*", ">", "..", "ünï cödé ✓", "x" * 300, "$O.b.M.x"])
async def test_any_string_is_a_name(store: ObjectStore, jsm: JetStreamManager, name: str) -> None:
    await store.put(name, name.encode())
    assert await store.get_blob(name) == name.encode()
    subject = "$O.b.M." + base64.urlsafe_b64encode(name.encode()).decode()
    stored = await jsm.streams.get_message("OBJ_b", last_by_subj=subject)
    assert stored.json()["name"] == name
    assert [info.name for info in await store.list()] == [name]


async def test_empty_and_non_string_names(store: ObjectStore) -> None:
    info = await store.put("real", b"x")
    for call in (
        lambda: store.put("", b"x"),
        lambda: store.put(ObjectStoreMeta(name=""), b"x"),
        lambda: store.get(""),
        lambda: store.get_blob(""),
        lambda: store.info(""),
        lambda: store.delete(""),
        lambda: store.update("", ObjectStoreMeta(name="x")),
        lambda: store.update("real", ObjectStoreMeta(name="")),
        lambda: store.link("", info),
        lambda: store.link_store("", store),
    ):
        with pytest.raises(InvalidNameError, match="name cannot be empty"):
            await call()
    with pytest.raises(InvalidNameError):
        await store.info(123)  # type: ignore[arg-type]
    with pytest.raises(InvalidNameError, match="not valid UTF-8"):
        await store.put("lone \udc80 surrogate", b"x")


# -- info, list, delete -------------------------------------------------------------------------------------------
async def test_missing_objects(store: ObjectStore) -> None:
    assert await store.get("nope") is None
    assert await store.get_blob("nope") is None
    assert await store.info("nope") is None
    assert await store.list() == []
    assert await store.delete("nope") == PurgeResponse(success=False, purged=0)


async def test_delete(store: ObjectStore, jsm: JetStreamManager) -> None:
    await store.put(meta("gone", 1000), os.urandom(5000))
    await store.put("stays", b"x")
    response = await store.delete("gone")
    assert response == PurgeResponse(success=True, purged=5)
    info = await store.info("gone")
    assert info is not None
    assert (info.deleted, info.size, info.chunks, info.digest) == (True, 0, 0, "")
    assert await store.get("gone") is None
    assert await store.get_blob("gone") is None
    assert [i.name for i in await store.list()] == ["stays"]
    assert await messages_in(jsm) == 3  # two meta entries and the chunk of "stays"


async def test_list(store: ObjectStore) -> None:
    for name in ("a", "b", "c"):
        await store.put(name, name.encode())
    await store.put("b", b"replaced")
    await store.delete("c")
    infos = await store.list()
    assert sorted(i.name for i in infos) == ["a", "b"]
    assert {i.name: i.size for i in infos} == {"a": 1, "b": 8}
    assert all(i.revision > 0 for i in infos)


# -- update -------------------------------------------------------------------------------------------------------
async def test_update_meta(store: ObjectStore) -> None:
    original = await store.put(ObjectStoreMeta(name="o", description="old", metadata={"a": "1"}), b"data")
    ack = await store.update("o", ObjectStoreMeta(name="o", description="new", headers={"H": "v"}))  # type: ignore[arg-type]
    info = await store.info("o")
    assert info is not None
    assert ack.seq == info.revision
    assert (info.description, info.metadata) == ("new", None)
    assert info.headers is not None and info.headers.get("H") == "v"
    assert (info.nuid, info.digest, info.size) == (original.nuid, original.digest, original.size)
    assert await store.get_blob("o") == b"data"


async def test_update_renames(store: ObjectStore, jsm: JetStreamManager) -> None:
    await store.put("old", b"data")
    await store.update("old", ObjectStoreMeta(name="new"))
    assert await store.info("old") is None  # the old meta entry is purged
    assert await store.get_blob("new") == b"data"
    assert await messages_in(jsm) == 2


async def test_update_errors(store: ObjectStore) -> None:
    await store.put("a", b"1")
    await store.put("b", b"2")
    with pytest.raises(ObjectNotFoundError, match="object not found"):
        await store.update("missing", ObjectStoreMeta(name="missing"))
    with pytest.raises(ObjectExistsError, match="an object already exists with that name"):
        await store.update("a", ObjectStoreMeta(name="b"))
    await store.delete("b")
    with pytest.raises(ObjectNotFoundError, match="cannot update meta for a deleted object"):
        await store.update("b", ObjectStoreMeta(name="b"))
    await store.update("a", ObjectStoreMeta(name="b"))  # a deleted name can be taken
    assert await store.get_blob("b") == b"1"


# -- links --------------------------------------------------------------------------------------------------------
async def test_link_to_an_object(store: ObjectStore) -> None:
    data = os.urandom(CHUNK + 1)
    target = await store.put("target", data)
    link = await store.link("alias", target)
    assert link.is_link and link.options is not None
    assert link.options.link == ObjectStoreLink(bucket="b", name="target")
    assert (link.name, link.size, link.chunks) == ("alias", 0, 0)
    assert await store.info("alias") == link
    result = await store.get("alias")
    assert result is not None and result.info.name == "target"  # followed
    assert b"".join(await chunks_of(result)) == data
    assert sorted(i.name for i in await store.list()) == ["alias", "target"]


async def test_link_across_stores(js: JetStreamClient, store: ObjectStore) -> None:
    other = await js.views.os("other", storage=StorageType.MEMORY)
    target = await other.put("there", b"far away")
    await store.link("here", target)
    assert await store.get_blob("here") == b"far away"
    await other.delete("there")
    assert await store.get("here") is None  # the link dangles


async def test_link_errors(store: ObjectStore) -> None:
    target = await store.put("target", b"x")
    link = await store.link("alias", target)
    with pytest.raises(InvalidOptionError, match="src object is a link"):
        await store.link("alias2", link)
    with pytest.raises(ObjectExistsError, match="an object already exists with that name"):
        await store.link("target", target)
    await store.delete("target")
    deleted = await store.info("target")
    assert deleted is not None
    with pytest.raises(ObjectNotFoundError, match="src object is deleted"):
        await store.link("alias3", deleted)


async def test_link_to_a_store(js: JetStreamClient, store: ObjectStore) -> None:
    other = await js.views.os("other", storage=StorageType.MEMORY)
    link = await store.link_store("dir", other)
    assert link.is_link and link.options is not None
    assert link.options.link == ObjectStoreLink(bucket="other", name=None)
    with pytest.raises(InvalidOptionError, match="link is a bucket"):
        await store.get("dir")
    with pytest.raises(ObjectExistsError):
        await store.link_store("dir", other)


# -- corrupt or vanishing data --------------------------------------------------------------------------------------
async def test_digest_mismatch(store: ObjectStore, js: JetStreamClient) -> None:
    data = os.urandom(3000)
    info = await store.put(meta("bad", 1000), data)
    wrong = digest_of(b"something else")
    streams = (await js.jetstream_manager()).streams
    stored = await streams.get_message("OBJ_b", last_by_subj=f"$O.b.M.{base64.urlsafe_b64encode(b'bad').decode()}")
    body = stored.json()
    body["digest"] = wrong  # the meta entry now records a digest the chunks do not have
    await js.publish(stored.subject, json.dumps(body).encode(), headers={"Nats-Rollup": "sub"})
    result = await store.get("bad")
    assert result is not None and result.info.digest == wrong
    received = []
    with pytest.raises(DigestMismatchError, match="digests do not match") as err:
        async for chunk in result:
            received.append(chunk)
    assert b"".join(received) == data  # every chunk was yielded; the check comes after the last
    assert info.digest in str(err.value)
    with pytest.raises(DigestMismatchError):
        await store.get_blob("bad")


async def test_a_missing_chunk_is_reported(store: ObjectStore, jsm: JetStreamManager) -> None:
    info = await store.put(meta("holey", 1000), os.urandom(5000))
    first_chunk_seq = info.revision - info.chunks
    await jsm.streams.delete_message("OBJ_b", first_chunk_seq + 2)
    with pytest.raises(DigestMismatchError, match="chunks are missing: got 4 of 5"):
        await asyncio.wait_for(store.get_blob("holey"), TIMEOUT)


async def test_all_chunks_missing_is_reported_at_once(store: ObjectStore, jsm: JetStreamManager) -> None:
    info = await store.put(meta("empty_shell", 1000), os.urandom(5000))
    await jsm.streams.purge("OBJ_b", filter=f"$O.b.C.{info.nuid}")
    result = await store.get("empty_shell")
    assert result is not None
    with pytest.raises(DigestMismatchError, match="got 0 of 5"):
        await asyncio.wait_for(result.__anext__(), TIMEOUT)
    assert (await jsm.streams.info("OBJ_b")).state.consumer_count == 0


async def test_chunks_purged_while_reading_end_the_read(store: ObjectStore, jsm: JetStreamManager) -> None:
    info = await store.put(meta("racy", 16 * 1024), os.urandom(8 * 1024 * 1024))  # 512 chunks, more than a window
    result = await store.get("racy")
    assert result is not None
    await asyncio.wait_for(result.__anext__(), TIMEOUT)
    await jsm.streams.purge("OBJ_b", filter=f"$O.b.C.{info.nuid}")
    with pytest.raises(DigestMismatchError, match="chunks are missing"):
        await asyncio.wait_for(_collect(result), TIMEOUT)


async def test_stopping_a_read_early(store: ObjectStore, jsm: JetStreamManager) -> None:
    await store.put(meta("long", 1000), os.urandom(100_000))
    result = await store.get("long")
    assert result is not None
    async with result:
        first = await asyncio.wait_for(result.__anext__(), TIMEOUT)
        assert len(first) == 1000
    assert await chunks_of(result) == []  # closed: the iterator ends, nothing verified
    assert (await jsm.streams.info("OBJ_b")).state.consumer_count == 0


async def test_objects_of_a_destroyed_store(store: ObjectStore) -> None:
    await store.put("a", b"x")
    result = await store.get("a")
    await store.destroy()
    assert result is not None
    with pytest.raises(BucketNotFoundError, match="object store not found"):
        await asyncio.wait_for(result.read(), TIMEOUT)
