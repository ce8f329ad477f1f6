"""``SyncKV``: a Key-Value bucket with blocking calls; watches, histories and key listings are blocking iterators."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from ..jetstream.api import PurgeResponse
from ..kv import KV, KvEntry, KvStatus
from .bridge import SyncIterator
from .context import Context
from .jobs import awaitable_from_thread

__all__ = ["SyncKV", "SyncKvWatcher"]

Value = bytes | bytearray | memoryview | str


class SyncKvWatcher(SyncIterator[KvEntry]):
    """The entries of a watch (live until stopped) or of a history (ends once caught up), as a blocking iterator.
    ``stop()``, ``close()`` or leaving ``with`` ends it and deletes its server consumer."""


class SyncKV:
    """A Key-Value bucket of a `SyncJetStream` (``js.views.kv(bucket)``): the operations of `cnats.kv.KV`, blocking."""

    def __init__(self, ctx: Context, kv: KV) -> None:
        self._ctx = ctx
        self._kv = kv

    @property
    def bucket(self) -> str:
        """The bucket's name."""
        return self._kv.bucket

    def __repr__(self) -> str:
        return f"<SyncKV {self.bucket!r}>"

    # -- writes -----------------------------------------------------------------------------------------------------
    def put(self, key: str, value: Value, *, previous_seq: int | None = None) -> int:
        """Write ``value`` under ``key``; the new revision (with ``previous_seq``, only if that is the key's latest).

        Raises:
            InvalidKeyError: ``key`` is not a valid key.
            WrongLastSequenceError: ``previous_seq`` is not the key's latest revision.
            BadPayloadError: ``value`` is not bytes, bytearray, memoryview or a UTF-8 encodable str.
            ConnectionClosedError: the connection is closed (also while waiting).
            NatsTimeoutError: no answer within the JetStream timeout.
            InvalidOptionError: this thread runs an event loop.
            NatsError: any other error of the asyncio `KV.put`.
        """
        return self._ctx.call(self._kv.put(key, value, previous_seq=previous_seq))

    def create(self, key: str, value: Value, *, ttl: float | None = None) -> int:
        """Write ``key`` only if it does not exist (a deleted or purged key does not); the new revision. ``ttl``: the
        key's own time to live in whole seconds, on a bucket made with ``limit_marker_ttl``.

        Raises:
            InvalidKeyError: ``key`` is not a valid key.
            WrongLastSequenceError: the key exists.
            ConnectionClosedError: the connection is closed (also while waiting).
            InvalidOptionError: ``ttl`` is not a whole number of seconds of at least 1, or this thread runs an event
                loop.
            NatsError: any other error of the asyncio `KV.create`.
        """
        return self._ctx.call(self._kv.create(key, value, ttl=ttl))

    def update(self, key: str, value: Value, version: int) -> int:
        """Write ``key`` only if its latest revision is ``version``; the new revision.

        Raises:
            InvalidOptionError: ``version`` is not positive, or this thread runs an event loop.
            InvalidKeyError: ``key`` is not a valid key.
            WrongLastSequenceError: ``version`` is not the key's latest revision.
            ConnectionClosedError: the connection is closed (also while waiting).
            NatsError: any other error of the asyncio `KV.update`.
        """
        return self._ctx.call(self._kv.update(key, value, version))

    def delete(self, key: str, *, previous_seq: int | None = None) -> None:
        """Write a DEL marker (history kept); a key with wildcards marks every matching key.

        Raises:
            InvalidKeyError: ``key`` is not a valid key (or key filter).
            WrongLastSequenceError: ``previous_seq`` is not the key's latest revision.
            ConnectionClosedError: the connection is closed (also while waiting).
            InvalidOptionError: this thread runs an event loop.
            NatsError: any other error of the asyncio `KV.delete`.
        """
        self._ctx.call(self._kv.delete(key, previous_seq=previous_seq))

    def purge(self, key: str, *, previous_seq: int | None = None, ttl: float | None = None) -> None:
        """Write a PURGE marker and remove the key's earlier revisions; a key with wildcards purges every match.
        ``ttl``: the marker's own time to live in whole seconds, on a bucket made with ``limit_marker_ttl``.

        Raises:
            InvalidKeyError: ``key`` is not a valid key (or key filter).
            WrongLastSequenceError: ``previous_seq`` is not the key's latest revision.
            ConnectionClosedError: the connection is closed (also while waiting).
            InvalidOptionError: ``ttl`` is not a whole number of seconds of at least 1, or this thread runs an event
                loop.
            NatsError: any other error of the asyncio `KV.purge`.
        """
        self._ctx.call(self._kv.purge(key, previous_seq=previous_seq, ttl=ttl))

    # -- reads ------------------------------------------------------------------------------------------------------
    def get(self, key: str, *, revision: int | None = None) -> KvEntry | None:
        """The key's latest entry, or the one at ``revision``; None when there is none (a DEL or PURGE marker is an
        entry: check its ``operation``).

        Raises:
            InvalidKeyError: ``key`` is not a valid key.
            ConnectionClosedError: the connection is closed (also while waiting).
            NatsTimeoutError: no answer within the JetStream timeout.
            InvalidOptionError: this thread runs an event loop.
            NatsError: any other error of the asyncio `KV.get`.
        """
        return self._ctx.call(self._kv.get(key, revision=revision))

    def watch(
        self,
        key: str | Sequence[str] = ">",
        *,
        include_history: bool = False,
        ignore_deletes: bool = False,
        headers_only: bool = False,
        updates_only: bool = False,
        resume_from_revision: int | None = None,
        on_initialized: Callable[[], object] | None = None,
    ) -> SyncKvWatcher:
        """The latest entry per key, then live updates (or all history first, or only updates), as a blocking
        iterator. ``on_initialized`` (a plain function) is called once the initial entries are received, on the
        connection's helper thread.

        Raises:
            InvalidOptionError: both ``include_history`` and ``updates_only`` are given, ``on_initialized`` is not
                callable, or this thread runs an event loop.
            InvalidKeyError: a key filter is not valid.
            StreamNotFoundError: the bucket does not exist.
            ConnectionClosedError: the connection is closed.
            NatsError: any other error of the asyncio `KV.watch` (while iterating: a fatal close).
        """
        initialized = None
        if on_initialized is not None:
            if not callable(on_initialized):
                from ..errors import InvalidOptionError

                raise InvalidOptionError("on_initialized must be callable")
            initialized = functools.partial(self._initialized, on_initialized)
        return SyncKvWatcher(
            self._ctx.runner,
            lambda: self._kv.watch(
                key,
                include_history=include_history,
                ignore_deletes=ignore_deletes,
                headers_only=headers_only,
                updates_only=updates_only,
                resume_from_revision=resume_from_revision,
                on_initialized=initialized,
            ),
        )

    def _initialized(self, fn: Callable[[], object]) -> Any:
        # on the loop: the user's function runs on the helper thread; the watch awaits it like a coroutine callback
        return awaitable_from_thread(self._ctx.helper(), lambda _: fn(), None)

    def history(self, key: str | Sequence[str] = ">", *, headers_only: bool = False) -> SyncKvWatcher:
        """Every retained entry (markers included) for the key(s), then the end, as a blocking iterator.

        Raises:
            InvalidKeyError: a key filter is not valid.
            StreamNotFoundError: the bucket does not exist.
            ConnectionClosedError: the connection is closed.
            InvalidOptionError: this thread runs an event loop.
            NatsError: any other error of the asyncio `KV.history`.
        """
        return SyncKvWatcher(self._ctx.runner, lambda: self._kv.history(key, headers_only=headers_only))

    def keys(self, filter: str | Sequence[str] = ">") -> SyncIterator[str]:
        """The keys whose latest entry is a PUT, as a blocking iterator that ends once they are all listed.

        Raises:
            InvalidKeyError: a key filter is not valid.
            StreamNotFoundError: the bucket does not exist.
            ConnectionClosedError: the connection is closed.
            InvalidOptionError: this thread runs an event loop.
            NatsError: any other error of the asyncio `KV.keys`.
        """
        return SyncIterator(self._ctx.runner, lambda: self._kv.keys(filter))

    def status(self) -> KvStatus:
        """The bucket's status (values, history, TTL, size...).

        Raises:
            StreamNotFoundError: the bucket does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            InvalidOptionError: this thread runs an event loop.
            NatsError: any other error of the asyncio `KV.status`.
        """
        return self._ctx.call(self._kv.status())

    def purge_deletes(self, *, older_than: float = 1800.0) -> PurgeResponse:
        """Remove DEL/PURGE markers; one younger than ``older_than`` seconds keeps itself (only).

        Raises:
            StreamNotFoundError: the bucket does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            InvalidOptionError: this thread runs an event loop.
            NatsError: any other error of the asyncio `KV.purge_deletes`.
        """
        response: PurgeResponse = self._ctx.call(self._kv.purge_deletes(older_than=older_than))
        return response

    def destroy(self) -> bool:
        """Delete the bucket with every key; True when the server reports success.

        Raises:
            StreamNotFoundError: the bucket does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            InvalidOptionError: this thread runs an event loop.
            NatsError: any other error of the asyncio `KV.destroy`.
        """
        return self._ctx.call(self._kv.destroy())

    def close(self) -> None:
        """Nothing to release (kept for parity with the asyncio `KV`).

        Raises:
            Nothing: it does nothing.
        """
