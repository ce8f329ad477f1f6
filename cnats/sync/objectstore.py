"""``SyncObjectStore``: an object store with blocking calls. A file or a generator given to ``put`` is read in the
calling thread (never on the loop); an object's chunks and a store's watch are blocking iterators."""

from __future__ import annotations

import contextlib
from typing import Any

from ..jetstream.api import PubAck, PurgeResponse
from ..objectstore import ObjectInfo, ObjectResult, ObjectStore, ObjectStoreMeta, ObjectStoreStatus
from .bridge import SyncIterator
from .context import Context
from .feed import ThreadFeed, is_fed, pieces_of
from .runner import check_blocking_allowed

__all__ = ["SyncObjectResult", "SyncObjectStore"]


class SyncObjectResult:
    """An object being read: its ``info``, then ``read()`` for the whole of it, or iterate it for its chunks (in
    order; the digest is checked after the last one)."""

    def __init__(self, ctx: Context, result: ObjectResult) -> None:
        self._ctx = ctx
        self._result = result
        self._chunks: SyncIterator[bytes] | None = None
        self.info: ObjectInfo = result.info
        """The object's info (name, size, digest...)."""

    def read(self) -> bytes:
        """The whole object (or what is left of it after partial iteration), digest verified.

        Raises:
            DigestMismatchError: chunks are missing, or the data does not match the recorded digest.
            ConnectionClosedError: the connection closed before the last chunk (or was closed already).
            InvalidOptionError: this thread runs an event loop.
            NatsError: any other error of the asyncio `ObjectResult.read`.
        """
        if self._chunks is not None:
            return b"".join(self._chunks)
        return self._ctx.call(self._result.read())

    def __iter__(self) -> SyncIterator[bytes]:
        if self._chunks is None:
            result = self._result
            self._chunks = SyncIterator(self._ctx.runner, lambda: result, window=8)
        return self._chunks

    def close(self) -> None:
        """Stop reading early (nothing is verified); also what leaving ``with`` does.

        Raises:
            InvalidOptionError: this thread runs an event loop.
        """
        check_blocking_allowed()
        if self._chunks is not None:
            self._chunks.close()
        elif self._ctx.runner.is_running:
            with contextlib.suppress(Exception):
                self._ctx.call(self._result.close())

    def __enter__(self) -> SyncObjectResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncObjectStore:
    """An object store of a `SyncJetStream` (``js.views.os(bucket)``): the operations of
    `cnats.objectstore.ObjectStore`, blocking."""

    def __init__(self, ctx: Context, store: ObjectStore) -> None:
        self._ctx = ctx
        self._store = store

    @property
    def bucket(self) -> str:
        """The store's name."""
        return self._store.bucket

    def __repr__(self) -> str:
        return f"<SyncObjectStore {self.bucket!r}>"

    def put(
        self,
        meta: ObjectStoreMeta | str,
        data: Any,
        *,
        timeout: float | None = None,
        previous_revision: int | None = None,
    ) -> ObjectInfo:
        """Store ``data`` (bytes-like, a str, a binary file object read until EOF, an iterable of bytes, or None)
        under ``meta`` (or a name). A file or an iterable is read in this thread while the chunks are sent.

        Raises:
            InvalidNameError: the object name is not valid.
            InvalidOptionError: ``meta`` is not valid, or this thread runs an event loop.
            BadPayloadError: ``data`` (or a piece of it) is not bytes-like.
            BucketNotFoundError: the store does not exist.
            WrongLastSequenceError: ``previous_revision`` is not the object's latest revision.
            JetStreamApiError: the store refused a chunk or the meta (it is full, or sealed...).
            ConnectionClosedError: the connection is closed (also while waiting).
            NatsTimeoutError: a chunk or the meta was not acknowledged in time.
            NatsError: any other error of the asyncio `ObjectStore.put`; what reading ``data`` raised, as it is.
        """
        check_blocking_allowed()
        if not is_fed(data):
            return self._ctx.call(self._store.put(meta, data, timeout=timeout, previous_revision=previous_revision))
        runner = self._ctx.runner
        feed = ThreadFeed(runner)
        future = runner.submit(self._store.put(meta, feed, timeout=timeout, previous_revision=previous_revision))
        future.add_done_callback(feed.abandon)
        try:
            for piece in pieces_of(data):
                if not feed.push(piece):
                    break  # the put ended early: its error is raised below
            else:
                feed.end()
        except Exception as exc:  # noqa: BLE001 - the put fails with it (its chunks are purged), then it is raised
            feed.fail(exc)
        except BaseException:
            future.cancel()
            raise
        return runner.wait(future)

    def put_blob(
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
            BadPayloadError: ``data`` is not bytes-like.
            BucketNotFoundError: the store does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            InvalidOptionError: this thread runs an event loop.
            NatsError: any other error of the asyncio `ObjectStore.put_blob`.
        """
        return self._ctx.call(self._store.put_blob(meta, data, timeout=timeout, previous_revision=previous_revision))

    def get(self, name: str) -> SyncObjectResult | None:
        """The object's info and data (``read()`` or iterate); None if it is missing or deleted. Links are followed.

        Raises:
            InvalidNameError: ``name`` is not a valid object name.
            InvalidOptionError: ``name`` is a link to a whole store, or this thread runs an event loop.
            BucketNotFoundError: the store does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            NatsError: any other error of the asyncio `ObjectStore.get`.
        """
        result = self._ctx.call(self._store.get(name))
        return SyncObjectResult(self._ctx, result) if result is not None else None

    def get_blob(self, name: str) -> bytes | None:
        """The whole object, digest verified; None if it is missing or deleted.

        Raises:
            InvalidNameError: ``name`` is not a valid object name.
            DigestMismatchError: chunks are missing, or the data does not match the recorded digest.
            BucketNotFoundError: the store does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            InvalidOptionError: this thread runs an event loop.
            NatsError: any other error of the asyncio `ObjectStore.get_blob`.
        """
        return self._ctx.call(self._store.get_blob(name))

    def info(self, name: str) -> ObjectInfo | None:
        """The object's latest meta (a deleted one has ``deleted=True``); None if it was never stored.

        Raises:
            InvalidNameError: ``name`` is not a valid object name.
            BucketNotFoundError: the store does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            InvalidOptionError: this thread runs an event loop.
            NatsError: any other error of the asyncio `ObjectStore.info`.
        """
        return self._ctx.call(self._store.info(name))

    def list(self) -> list[ObjectInfo]:
        """Every object that is not deleted (links included).

        Raises:
            BucketNotFoundError: the store does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            InvalidOptionError: this thread runs an event loop.
            NatsError: any other error of the asyncio `ObjectStore.list`.
        """
        return self._ctx.call(self._store.list())

    def delete(self, name: str) -> PurgeResponse:
        """Mark the object deleted and purge its chunks (an object never stored gives an unsuccessful response).

        Raises:
            InvalidNameError: ``name`` is not a valid object name.
            BucketNotFoundError: the store does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            InvalidOptionError: this thread runs an event loop.
            NatsError: any other error of the asyncio `ObjectStore.delete`.
        """
        return self._ctx.call(self._store.delete(name))

    def link(self, name: str, info: ObjectInfo) -> ObjectInfo:
        """A meta-only entry ``name`` that ``get`` follows to the object ``info`` describes.

        Raises:
            InvalidNameError: ``name`` is not a valid object name.
            InvalidOptionError: ``info`` describes a link, or this thread runs an event loop.
            ObjectNotFoundError: the object ``info`` describes is deleted.
            ObjectExistsError: an object named ``name`` exists in this store.
            NatsError: any other error of the asyncio `ObjectStore.link`.
        """
        return self._ctx.call(self._store.link(name, info))

    def link_store(self, name: str, store: SyncObjectStore | ObjectStore) -> ObjectInfo:
        """A meta-only entry ``name`` pointing at a whole store.

        Raises:
            InvalidNameError: ``name`` is not a valid object name.
            InvalidOptionError: ``store`` is not an object store, or this thread runs an event loop.
            ObjectExistsError: an object named ``name`` exists in this store.
            NatsError: any other error of the asyncio `ObjectStore.link_store`.
        """
        target = store._store if isinstance(store, SyncObjectStore) else store
        return self._ctx.call(self._store.link_store(name, target))

    def update(self, name: str, meta: ObjectStoreMeta) -> PubAck:
        """Replace the object's description, headers and metadata; a different ``meta.name`` renames it.

        Raises:
            InvalidNameError: ``name`` or ``meta.name`` is not a valid object name.
            ObjectNotFoundError: the object does not exist, or is deleted.
            ObjectExistsError: the new name is taken.
            InvalidOptionError: this thread runs an event loop.
            NatsError: any other error of the asyncio `ObjectStore.update`.
        """
        return self._ctx.call(self._store.update(name, meta))

    def watch(self, *, include_history: bool = False, ignore_deletes: bool = False) -> SyncIterator[ObjectInfo | None]:
        """Changes to the store's objects, as a blocking iterator: with ``include_history`` the current info of every
        object first; a None marks the end of that initial state (it comes first without ``include_history``).

        Raises:
            BucketNotFoundError: the store does not exist.
            ConnectionClosedError: the connection is closed.
            InvalidOptionError: this thread runs an event loop.
            NatsError: any other error of the asyncio `ObjectStore.watch`.
        """
        return SyncIterator(
            self._ctx.runner,
            lambda: self._store.watch(include_history=include_history, ignore_deletes=ignore_deletes),
        )

    def seal(self) -> ObjectStoreStatus:
        """Seal the store: no further writes.

        Raises:
            BucketNotFoundError: the store does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            InvalidOptionError: this thread runs an event loop.
            NatsError: any other error of the asyncio `ObjectStore.seal`.
        """
        return self._ctx.call(self._store.seal())

    def status(self) -> ObjectStoreStatus:
        """The store's status.

        Raises:
            BucketNotFoundError: the store does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            InvalidOptionError: this thread runs an event loop.
            NatsError: any other error of the asyncio `ObjectStore.status`.
        """
        return self._ctx.call(self._store.status())

    def destroy(self) -> bool:
        """Delete the store and every object in it; True when the server reports success.

        Raises:
            BucketNotFoundError: the store does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            InvalidOptionError: this thread runs an event loop.
            NatsError: any other error of the asyncio `ObjectStore.destroy`.
        """
        return self._ctx.call(self._store.destroy())
