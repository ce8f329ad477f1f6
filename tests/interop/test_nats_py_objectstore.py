"""Object stores shared between cnats and nats-py on one real server: an object written by one client (several chunks,
a chunk size other than the default) is read by the other with its digest checked, its meta intact."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os

import nats.js.api as py_api
import nats.js.errors as py_errors
import pytest
from nats.aio.client import Client as NatsPyClient

from cnats import NatsConnection
from cnats.errors import DigestMismatchError
from cnats.jetstream import (
    JetStreamClient,
    JetStreamManager,
    ObjectResult,
    ObjectStoreMeta,
    ObjectStoreMetaOptions,
    StorageType,
)

TIMEOUT = 10.0


@pytest.fixture
def js(nc: NatsConnection) -> JetStreamClient:
    return nc.jetstream()


def digest_of(data: bytes) -> str:
    return "SHA-256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()


async def test_object_from_nats_py_read_by_cnats(py: NatsPyClient, js: JetStreamClient) -> None:
    pjs = py.jetstream()
    pstore = await pjs.create_object_store("shared", storage=py_api.StorageType.MEMORY, description="from py")
    data = os.urandom(5 * 50_000 + 123)
    meta = py_api.ObjectMeta(
        name="py object.bin",
        description="written by nats-py",
        headers={"Content-Type": ["application/octet-stream"]},
        options=py_api.ObjectMetaOptions(max_chunk_size=50_000),
    )
    await pstore.put("py object.bin", data, meta=meta)

    store = await js.views.os("shared")  # binds to the existing stream
    assert (await store.status()).description == "from py"
    info = await store.info("py object.bin")
    assert info is not None
    assert (info.name, info.bucket, info.size, info.chunks) == ("py object.bin", "shared", len(data), 6)
    assert info.description == "written by nats-py"
    assert info.digest == digest_of(data)
    assert info.options is not None and info.options.max_chunk_size == 50_000
    assert info.headers is not None and info.headers.get("Content-Type") == "application/octet-stream"
    result = await store.get("py object.bin")
    assert result is not None
    chunks = await asyncio.wait_for(_collect(result), TIMEOUT)
    assert [len(c) for c in chunks] == [50_000] * 5 + [123]
    assert b"".join(chunks) == data
    assert [i.name for i in await store.list()] == ["py object.bin"]


async def _collect(result: ObjectResult) -> list[bytes]:
    return [chunk async for chunk in result]


async def test_object_from_cnats_read_by_nats_py(py: NatsPyClient, js: JetStreamClient) -> None:
    store = await js.views.os("shared", storage=StorageType.MEMORY)
    data = os.urandom(4 * 70_000 + 1)
    meta = ObjectStoreMeta(
        name="cnats/object ✓",
        description="written by cnats",
        headers={"X-Origin": "cnats"},  # type: ignore[arg-type]
        metadata={"k": "v"},
        options=ObjectStoreMetaOptions(max_chunk_size=70_000),
    )
    info = await store.put(meta, io.BytesIO(data))
    assert info.chunks == 5

    pstore = await py.jetstream().object_store("shared")
    result = await pstore.get("cnats/object ✓")  # nats-py checks the digest too
    assert result.data == data
    pinfo = result.info
    assert (pinfo.name, pinfo.bucket, pinfo.nuid) == (info.name, "shared", info.nuid)
    assert (pinfo.size, pinfo.chunks, pinfo.digest) == (len(data), 5, digest_of(data))
    assert pinfo.description == "written by cnats"
    assert pinfo.headers == {"X-Origin": ["cnats"]}
    assert pinfo.options is not None and pinfo.options.max_chunk_size == 70_000

    # a link written by cnats is followed by nats-py; a delete by cnats is seen by nats-py
    await store.link("alias", info)
    assert (await pstore.get("alias")).data == data
    await store.delete("cnats/object ✓")
    with pytest.raises(py_errors.ObjectNotFoundError):
        await pstore.get_info("cnats/object ✓")
    deleted = await pstore.get_info("cnats/object ✓", show_deleted=True)
    assert (deleted.deleted, deleted.size, deleted.chunks) == (True, 0, 0)


async def test_nats_py_replaces_and_deletes_what_cnats_wrote(
    py: NatsPyClient, js: JetStreamClient, nc: NatsConnection
) -> None:
    store = await js.views.os("shared", storage=StorageType.MEMORY)
    await store.put(ObjectStoreMeta(name="doc", options=ObjectStoreMetaOptions(max_chunk_size=1000)), os.urandom(5000))
    pstore = await py.jetstream().object_store("shared")
    await pstore.put("doc", b"replaced by nats-py")
    assert await store.get_blob("doc") == b"replaced by nats-py"
    jsm: JetStreamManager = await nc.jetstream_manager()
    assert (await jsm.streams.info("OBJ_shared")).state.messages == 2  # the old chunks were purged by nats-py
    await pstore.delete("doc")
    info = await store.info("doc")
    assert info is not None and info.deleted is True
    assert await store.get("doc") is None


async def test_cnats_checks_the_digest_of_a_corrupted_nats_py_object(
    py: NatsPyClient, js: JetStreamClient, nc: NatsConnection
) -> None:
    pstore = await py.jetstream().create_object_store("shared", storage=py_api.StorageType.MEMORY)
    meta = py_api.ObjectMeta(name="o", options=py_api.ObjectMetaOptions(max_chunk_size=1000))
    await pstore.put("o", os.urandom(3000), meta=meta)
    jsm = await nc.jetstream_manager()
    await jsm.streams.delete_message("OBJ_shared", 2)  # the second chunk
    store = await js.views.os("shared")
    with pytest.raises(DigestMismatchError, match="got 2 of 3"):
        await asyncio.wait_for(store.get_blob("o"), TIMEOUT)
