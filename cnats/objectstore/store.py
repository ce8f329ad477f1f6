"""``ObjectStore``: a bucket of objects on the stream ``OBJ_<bucket>`` (ADR-20). An object is a meta entry on
``$O.<bucket>.M.<base64url(name)>`` (one per name, kept by rollup) and its chunks on ``$O.<bucket>.C.<nuid>``
(a fresh nuid per version, so a replaced version's chunks can be purged by subject)."""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ..errors import (
    BucketNotFoundError,
    InvalidOptionError,
    MessageNotFoundError,
    NatsError,
    NoRespondersError,
    ObjectExistsError,
    ObjectNotFoundError,
    StreamNotFoundError,
)
from ..jetstream.api import (
    DeliverPolicy,
    DiscardPolicy,
    Placement,
    PubAck,
    PubHeaders,
    PurgeResponse,
    StorageType,
    StoreCompression,
    StoredMsg,
    StreamConfig,
)
from ..jetstream.consumer import OrderedConsumerOptions
from ..jetstream.manager import DirectStreamAPI, StreamAPI
from ..kv import OrderedRead, existing_bucket, open_ordered
from ..msg import to_headers
from ..nuid import nuid
from .chunks import ChunkWriter, ObjectData, iter_chunks
from .model import (
    ObjectInfo,
    ObjectStoreLink,
    ObjectStoreMeta,
    ObjectStoreMetaOptions,
    ObjectStoreStatus,
    check_bucket,
    check_object_name,
    decode_info,
    encode_info,
    encode_name,
    format_digest,
    object_store_status,
)
from .reader import ObjectResult
from .watch import ObjectWatcher, info_from_jsmsg

if TYPE_CHECKING:
    from ..jetstream.client import JetStreamClient

__all__ = ["ObjectStore", "open_object_store"]

DEFAULT_CHUNK_SIZE = 128 * 1024
_ROLLUP = {"Nats-Rollup": "sub"}


def _not_found() -> BucketNotFoundError:
    return BucketNotFoundError("object store not found")


def _as_meta(meta: ObjectStoreMeta | str) -> ObjectStoreMeta:
    if isinstance(meta, str):
        meta = ObjectStoreMeta(name=meta)
    elif not isinstance(meta, ObjectStoreMeta):
        raise InvalidOptionError(f"meta must be an ObjectStoreMeta or a name, not {type(meta).__name__}")
    check_object_name(meta.name)
    return meta


class ObjectStore:
    """A bucket of objects. Get one with ``await js.views.os(bucket, ...)``."""

    def __init__(self, js: JetStreamClient, bucket: str, *, direct: bool) -> None:
        self._js = js
        self._bucket = bucket
        self._stream = f"OBJ_{bucket}"
        self._direct = direct
        self._streams = StreamAPI(js)

    @property
    def bucket(self) -> str:
        return self._bucket

    def _meta_subject(self, name: str) -> str:
        return f"$O.{self._bucket}.M.{encode_name(name)}"

    def _chunk_subject(self, object_nuid: str) -> str:
        return f"$O.{self._bucket}.C.{object_nuid}"

    # -- reading meta -------------------------------------------------------------------------------------------
    async def _stored_meta(self, name: str) -> StoredMsg | None:
        subject = self._meta_subject(name)
        try:
            if self._direct:
                return await DirectStreamAPI(self._js).get_message(self._stream, last_by_subj=subject)
            return await self._streams.get_message(self._stream, last_by_subj=subject)
        except MessageNotFoundError:
            return None
        except (StreamNotFoundError, NoRespondersError):
            raise _not_found() from None

    async def info(self, name: str) -> ObjectInfo | None:
        """The object's latest meta (a deleted object has ``deleted=True``); None if it was never stored.

        Raises:
            InvalidNameError: ``name`` is not a valid object name.
            BucketNotFoundError: the store does not exist.
            BadJsonError: the object's stored meta is not valid.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        check_object_name(name)
        stored = await self._stored_meta(name)
        if stored is None:
            return None
        return decode_info(stored.data, stored.seq, stored.time)

    async def list(self) -> list[ObjectInfo]:
        """Every object that is not deleted (links included).

        Raises:
            BucketNotFoundError: the store does not exist.
            BadJsonError: an object's stored meta is not valid.
            JetStreamApiError: the server refused the consumer that reads the metas.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
            NatsError: the connection closed with an error (a fatal close) during the listing: that error.
        """
        read = await self._meta_consumer(DeliverPolicy.LAST_PER_SUBJECT)
        infos: list[ObjectInfo] = []
        try:
            created = read.consumer._info
            if created is not None and created.num_pending:
                async for msg in read.messages:
                    info = info_from_jsmsg(msg)
                    if not info.deleted:
                        infos.append(info)
                    if msg.info.pending == 0:
                        break
        finally:
            await read.aclose()  # the server consumer is deleted
        return infos

    async def _meta_consumer(self, deliver: DeliverPolicy) -> OrderedRead:
        """An ordered consumer of the meta entries (one per object), consuming."""
        options = OrderedConsumerOptions(filter_subjects=f"$O.{self._bucket}.M.>", deliver_policy=deliver)
        try:
            return await open_ordered(
                self._js, self._stream, options, max_messages=256, expires=10.0, idle_heartbeat=5.0
            )
        except StreamNotFoundError:
            raise _not_found() from None

    # -- objects --------------------------------------------------------------------------------------------------
    async def get(self, name: str) -> ObjectResult | None:
        """The object's info and chunks (an async iterator); None if it is missing or deleted. Links are followed.

        Reading the result raises what ``ObjectResult.read`` lists.

        Raises:
            InvalidNameError: ``name`` is not a valid object name.
            InvalidOptionError: ``name`` is a link to a whole store, or a link to a link.
            BucketNotFoundError: the store, or the store a link points into, does not exist.
            BadJsonError: the object's stored meta is not valid.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        info = await self.info(name)
        if info is None or info.deleted:
            return None
        if info.is_link:
            assert info.options is not None and info.options.link is not None
            link = info.options.link
            if not link.name:
                raise InvalidOptionError("link is a bucket")
            target = self if link.bucket == self._bucket else await bind_object_store(self._js, link.bucket)
            linked = await target.info(link.name)
            if linked is None or linked.deleted:
                return None
            if linked.is_link:
                raise InvalidOptionError("link to a link is not supported")
            return ObjectResult(self._js, target._stream, target._chunk_subject(linked.nuid), linked)
        return ObjectResult(self._js, self._stream, self._chunk_subject(info.nuid), info)

    async def get_blob(self, name: str) -> bytes | None:
        """The whole object, digest verified; None if it is missing or deleted. Links are followed.

        Raises:
            InvalidNameError: ``name`` is not a valid object name.
            InvalidOptionError: ``name`` is a link to a whole store, or a link to a link.
            BucketNotFoundError: the store, or the store a link points into, does not exist.
            BadJsonError: the object's stored meta is not valid.
            DigestMismatchError: chunks are missing, or the data does not match the recorded digest.
            JetStreamApiError: the server refused the consumer that reads the chunks.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
            NatsError: the connection closed with an error (a fatal close) during the read: that error.
        """
        result = await self.get(name)
        return None if result is None else await result.read()

    async def put(
        self,
        meta: ObjectStoreMeta | str,
        data: ObjectData,
        *,
        timeout: float | None = None,
        previous_revision: int | None = None,
    ) -> ObjectInfo:
        """Store ``data`` under ``meta.name``: chunks first (pipelined), then the meta entry, then the previous
        version's chunks are purged. On failure the new chunks are purged and the error is raised.

        ``data`` is bytes-like, a str (UTF-8 encoded), a binary file object (read until EOF), a sync or async
        iterable of bytes-like pieces, or None; what reading it raises is raised as it is.

        Raises:
            InvalidNameError: the object name is not valid.
            InvalidOptionError: ``meta`` is neither an ``ObjectStoreMeta`` nor a name, sets a link, has a
                negative ``max_chunk_size``, or ``previous_revision`` is not an int >= 0.
            BadPayloadError: ``data`` (or a piece of it) is not bytes-like, or is not contiguous.
            BadHeaderError: ``meta.headers`` holds a header that is not valid.
            BucketNotFoundError: the store does not exist.
            WrongLastSequenceError: ``previous_revision`` is not the object's latest revision.
            JetStreamApiError: the store refused a chunk or the meta (it is full, or sealed...).
            NoRespondersError: nothing stored a chunk (the store was deleted meanwhile).
            OutboundBufferLimitError: a chunk does not fit in the outbound buffer.
            NatsTimeoutError: a chunk or the meta was not acknowledged within ``timeout`` (by default the JetStream
                timeout).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
        """
        meta = _as_meta(meta)
        if meta.options is not None and meta.options.link is not None:
            raise InvalidOptionError("link cannot be set when putting the object in bucket")
        if previous_revision is not None and (not isinstance(previous_revision, int) or previous_revision < 0):
            raise InvalidOptionError("previous_revision must be an int >= 0")
        chunk_size = (meta.options.max_chunk_size if meta.options else None) or DEFAULT_CHUNK_SIZE
        if chunk_size <= 0:
            raise InvalidOptionError("max_chunk_size must be greater than 0")
        headers = to_headers(meta.headers)
        server = self._js._nc.info
        if server is not None and server.max_payload:
            chunk_size = min(chunk_size, server.max_payload)
        previous = await self.info(meta.name)
        object_nuid = nuid.next()
        chunk_subject = self._chunk_subject(object_nuid)
        writer = ChunkWriter(self._js, chunk_subject, chunk_size, timeout)
        try:
            async with contextlib.aclosing(iter_chunks(data, chunk_size)) as chunks:
                async for chunk in chunks:
                    await writer.write(chunk)
            digest = await writer.finish()
            info = ObjectInfo(
                name=meta.name,
                description=meta.description,
                headers=headers,
                options=ObjectStoreMetaOptions(max_chunk_size=chunk_size),
                metadata=dict(meta.metadata) if meta.metadata is not None else None,
                bucket=self._bucket,
                nuid=object_nuid,
                size=writer.size,
                chunks=writer.chunks,
                digest=format_digest(digest),
                mtime=datetime.now(timezone.utc),
                revision=0,
            )
            meta_headers = dict(_ROLLUP)
            if previous_revision is not None:
                meta_headers[PubHeaders.EXPECTED_LAST_SUBJECT_SEQ.value] = str(previous_revision)
            ack = await self._js.publish(
                self._meta_subject(meta.name), encode_info(info), headers=meta_headers, timeout=timeout
            )
        except BaseException:
            await writer.settle()
            with contextlib.suppress(NatsError):
                await self._streams.purge(self._stream, filter=chunk_subject)
            raise
        info.revision = ack.seq
        if previous is not None and previous.nuid and previous.chunks and not previous.deleted:
            await self._streams.purge(self._stream, filter=self._chunk_subject(previous.nuid))
        return info

    async def put_blob(
        self,
        meta: ObjectStoreMeta | str,
        data: bytes | None,
        *,
        timeout: float | None = None,
        previous_revision: int | None = None,
    ) -> ObjectInfo:
        """``put`` for data held in memory (None stores an empty object).

        Raises:
            InvalidNameError: the object name is not valid.
            InvalidOptionError: ``meta`` is neither an ``ObjectStoreMeta`` nor a name, sets a link, has a
                negative ``max_chunk_size``, or ``previous_revision`` is not an int >= 0.
            BadPayloadError: ``data`` is not bytes-like.
            BadHeaderError: ``meta.headers`` holds a header that is not valid.
            BucketNotFoundError: the store does not exist.
            WrongLastSequenceError: ``previous_revision`` is not the object's latest revision.
            JetStreamApiError: the store refused a chunk or the meta (it is full, or sealed...).
            NoRespondersError: nothing stored a chunk (the store was deleted meanwhile).
            OutboundBufferLimitError: a chunk does not fit in the outbound buffer.
            NatsTimeoutError: a chunk or the meta was not acknowledged within ``timeout`` (by default the JetStream
                timeout).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
        """
        return await self.put(meta, data, timeout=timeout, previous_revision=previous_revision)

    async def _publish_meta(self, info: ObjectInfo) -> PubAck:
        return await self._js.publish(self._meta_subject(info.name), encode_info(info), headers=_ROLLUP)

    async def delete(self, name: str) -> PurgeResponse:
        """Mark the object deleted (its meta stays, with no data) and purge its chunks. An object never stored gives an
        unsuccessful response.

        Raises:
            InvalidNameError: ``name`` is not a valid object name.
            BucketNotFoundError: the store does not exist.
            BadJsonError: the object's stored meta is not valid.
            JetStreamApiError: the store refused the new meta or the purge (it is sealed...).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        info = await self.info(name)
        if info is None:
            return PurgeResponse(success=False, purged=0)
        chunks = self._chunk_subject(info.nuid)
        info = dataclasses.replace(info, deleted=True, size=0, chunks=0, digest="", mtime=datetime.now(timezone.utc))
        await self._publish_meta(info)
        return await self._streams.purge(self._stream, filter=chunks)

    async def _check_free(self, name: str) -> None:
        current = await self.info(name)
        if current is not None and not current.deleted:
            raise ObjectExistsError("an object already exists with that name")

    async def _write_link(self, name: str, link: ObjectStoreLink) -> ObjectInfo:
        info = ObjectInfo(
            name=name,
            options=ObjectStoreMetaOptions(link=link),
            bucket=self._bucket,
            nuid=nuid.next(),
            size=0,
            chunks=0,
            digest="",
            mtime=datetime.now(timezone.utc),
            revision=0,
        )
        info.revision = (await self._publish_meta(info)).seq
        return info

    async def link(self, name: str, info: ObjectInfo) -> ObjectInfo:
        """A meta-only entry ``name`` that ``get`` follows to the object ``info`` describes (in any store).

        Raises:
            InvalidNameError: ``name`` is not a valid object name.
            InvalidOptionError: ``info`` is not an ``ObjectInfo``, or describes a link.
            ObjectNotFoundError: the object ``info`` describes is deleted.
            ObjectExistsError: an object named ``name`` exists in this store.
            BucketNotFoundError: the store does not exist.
            JetStreamApiError: the store refused the link's meta (it is sealed...).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        check_object_name(name)
        if not isinstance(info, ObjectInfo):
            raise InvalidOptionError("info must be an ObjectInfo")
        if info.deleted:
            raise ObjectNotFoundError("src object is deleted")
        if info.is_link:
            raise InvalidOptionError("src object is a link")
        await self._check_free(name)
        return await self._write_link(name, ObjectStoreLink(bucket=info.bucket, name=info.name))

    async def link_store(self, name: str, store: ObjectStore) -> ObjectInfo:
        """A meta-only entry ``name`` pointing at a whole store.

        Raises:
            InvalidNameError: ``name`` is not a valid object name.
            InvalidOptionError: ``store`` is not an ``ObjectStore``.
            ObjectExistsError: an object named ``name`` exists in this store.
            BucketNotFoundError: this store does not exist.
            JetStreamApiError: the store refused the link's meta (it is sealed...).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        check_object_name(name)
        if not isinstance(store, ObjectStore):
            raise InvalidOptionError("store must be an ObjectStore")
        await self._check_free(name)
        return await self._write_link(name, ObjectStoreLink(bucket=store.bucket))

    async def update(self, name: str, meta: ObjectStoreMeta) -> PubAck:
        """Replace the object's description, headers and metadata; a different ``meta.name`` renames it.

        Raises:
            InvalidNameError: ``name`` or ``meta.name`` is not a valid object name.
            InvalidOptionError: ``meta`` is not an ``ObjectStoreMeta``.
            ObjectNotFoundError: the object does not exist, or is deleted.
            ObjectExistsError: renaming, an object named ``meta.name`` exists.
            BadHeaderError: ``meta.headers`` holds a header that is not valid.
            BucketNotFoundError: the store does not exist.
            JetStreamApiError: the store refused the new meta (it is sealed...).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        check_object_name(name)
        if not isinstance(meta, ObjectStoreMeta):
            raise InvalidOptionError("meta must be an ObjectStoreMeta")
        check_object_name(meta.name)
        info = await self.info(name)
        if info is None:
            raise ObjectNotFoundError("object not found")
        if info.deleted:
            raise ObjectNotFoundError("cannot update meta for a deleted object")
        renamed = meta.name != name
        if renamed:
            await self._check_free(meta.name)
        updated = dataclasses.replace(
            info,
            name=meta.name,
            description=meta.description,
            headers=to_headers(meta.headers) or None,
            metadata=dict(meta.metadata) if meta.metadata is not None else None,
            mtime=datetime.now(timezone.utc),
        )
        ack = await self._publish_meta(updated)
        if renamed:
            await self._streams.purge(self._stream, filter=self._meta_subject(name))
        return ack

    async def watch(self, *, include_history: bool = False, ignore_deletes: bool = False) -> ObjectWatcher:
        """Changes to the store's objects. With ``include_history`` the current info of every object comes first;
        a ``None`` marks the end of that initial state (it comes first without ``include_history``).

        Raises:
            BucketNotFoundError: the store does not exist.
            JetStreamApiError: the server refused the consumer that reads the metas.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
            BadJsonError: while iterating, an object's stored meta is not valid.
            NatsError: while iterating, the connection closed with an error (a fatal close): that error.
        """
        deliver = DeliverPolicy.LAST_PER_SUBJECT if include_history else DeliverPolicy.NEW
        read = await self._meta_consumer(deliver)
        created = read.consumer._info
        initial = include_history and created is not None and created.num_pending > 0
        return ObjectWatcher(read, initial=initial, ignore_deletes=ignore_deletes)

    # -- the bucket ----------------------------------------------------------------------------------------------
    async def status(self) -> ObjectStoreStatus:
        """The store's status (description, TTL, storage, sealed, size...), from its stream's info.

        Raises:
            BucketNotFoundError: the store does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        try:
            info = await self._streams.info(self._stream)
        except StreamNotFoundError:
            raise _not_found() from None
        return object_store_status(self._bucket, info)

    async def seal(self) -> ObjectStoreStatus:
        """Make the store read-only (the stream's ``sealed``): writes fail from now on.

        Raises:
            BucketNotFoundError: the store does not exist.
            JetStreamApiError: the server refused the change.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        try:
            info = await self._streams.update(self._stream, sealed=True)
        except StreamNotFoundError:
            raise _not_found() from None
        return object_store_status(self._bucket, info)

    async def destroy(self) -> bool:
        """Delete the store and every object in it.

        Raises:
            BucketNotFoundError: the store does not exist.
            JetStreamApiError: the server refused the deletion.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        try:
            return await self._streams.delete(self._stream)
        except StreamNotFoundError:
            raise _not_found() from None

    def __repr__(self) -> str:
        return f"<ObjectStore {self._bucket!r}>"


async def bind_object_store(js: JetStreamClient, bucket: str) -> ObjectStore:
    """An existing store (``BucketNotFoundError`` if it does not exist)."""
    check_bucket(bucket)
    try:
        info = await StreamAPI(js).info(f"OBJ_{bucket}")
    except StreamNotFoundError:
        raise _not_found() from None
    return ObjectStore(js, bucket, direct=bool(info.config.allow_direct))


async def open_object_store(
    js: JetStreamClient,
    bucket: str,
    *,
    description: str | None = None,
    ttl: float = 0.0,
    storage: StorageType = StorageType.FILE,
    replicas: int = 1,
    max_bytes: int = -1,
    placement: Placement | None = None,
    metadata: dict[str, str] | None = None,
    compression: bool = False,
    bind_only: bool = False,
) -> ObjectStore:
    """Bind to the store, creating its stream with the ADR-20 configuration when it does not exist; with
    ``bind_only`` the store must exist: it is never created (a misspelt name raises instead).

    Raises:
        InvalidNameError: ``bucket`` is not a valid bucket name.
        InvalidOptionError: ``ttl`` is negative or ``replicas`` is less than 1.
        JetStreamApiError: the server refused to create the store's stream.
        ConnectionClosedError: the connection is closed (also while waiting).
        ConnectionDrainingError: the connection is draining.
        NatsTimeoutError: no answer within the JetStream timeout.
        JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        BucketNotFoundError: ``bind_only`` and the store does not exist.
    """
    check_bucket(bucket)
    if ttl < 0:
        raise InvalidOptionError("ttl must be >= 0")
    if replicas < 1:
        raise InvalidOptionError("replicas must be >= 1")
    streams = StreamAPI(js)
    name = f"OBJ_{bucket}"

    def config() -> StreamConfig:
        return StreamConfig(
            name=name,
            description=description,
            subjects=[f"$O.{bucket}.C.>", f"$O.{bucket}.M.>"],
            max_age=ttl,
            max_bytes=max_bytes,
            storage=storage,
            num_replicas=replicas,
            discard=DiscardPolicy.NEW,
            allow_rollup_hdrs=True,
            allow_direct=True,
            compression=StoreCompression.S2 if compression else StoreCompression.NONE,
            placement=placement,
            metadata=metadata,
        )

    if bind_only:
        info = await existing_bucket(streams, name, f"bucket not found: {bucket}")
    else:
        info = await streams._info_or_add(name, config)
    return ObjectStore(js, bucket, direct=bool(info.config.allow_direct))
