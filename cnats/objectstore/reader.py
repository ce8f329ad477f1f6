"""Reading an object: its chunks in order through an ordered consumer, the digest checked after the last one.

The consumer pulls a bounded window of chunks, so memory stays bounded by that window whatever the object's size.
The last chunk is the one the server delivers with nothing pending; a missing chunk shows then as a short count.
Chunks that vanish while being read (a concurrent replace or delete purges them) leave the consumer with nothing
to deliver: a watchdog notices the stall and ends the read with an error instead of waiting forever.

A read is an ``OrderedRead`` (cnats.kv): closing the connection ends it (the chunks held are handed out, then the
iterator ends, or raises the connection's error after a fatal close) and cancels the watchdog; closing the result
(or leaving ``async with``, or dropping it) stops the pulls, cancels the watchdog and deletes the server consumer.
"""

from __future__ import annotations

import hashlib
import weakref
from typing import TYPE_CHECKING

from ..errors import (
    BucketNotFoundError,
    ConnectionClosedError,
    DigestMismatchError,
    NatsError,
    StreamNotFoundError,
)
from ..jetstream.api import DeliverPolicy
from ..jetstream.consumer import OrderedConsumerOptions
from ..jetstream.manager import ConsumerAPI
from ..kv import OrderedRead, open_ordered
from .model import ObjectInfo, digest_matches, format_digest

if TYPE_CHECKING:
    from ..jetstream.client import JetStreamClient

__all__ = ["ObjectResult"]

# chunk bytes of the pull window: at most this many wait unread and as many are on their way (4 MiB ahead in all)
_READ_WINDOW_BYTES = 2 * 1024 * 1024
_STALL_CHECK = 1.0  # seconds without a chunk before asking the server whether any are left
_INACTIVE_THRESHOLD = 30.0  # an abandoned read's server consumer goes away after this (if it could not be deleted)


class ObjectResult:
    """An object being read: ``info``, and an async iterator of its chunks (``bytes``) in order. The digest is
    checked after the last chunk (``DigestMismatchError`` on a mismatch or missing chunks)."""

    def __init__(self, js: JetStreamClient, stream: str, chunk_subject: str, info: ObjectInfo) -> None:
        self.info = info
        self._js = js
        self._port = js.port
        self._stream = stream
        self._subject = chunk_subject
        self._sha = hashlib.sha256()
        self._received = 0
        self._size = 0
        self._read: OrderedRead | None = None
        self._ended_read: OrderedRead | None = None  # stopped, its server consumer's deletion not yet awaited
        self._finished = False
        self._cut_by_close = False  # the connection closed before the last chunk
        self._error: BaseException | None = None
        self._seen_at_check = -1
        self._checking = False
        self._ref = weakref.ref(self)  # what the watchdog holds: it must not keep a dropped read alive

    def __del__(self) -> None:
        # dropped unfinished: the read stops
        read = getattr(self, "_read", None)
        if read is not None:
            read.view_collected(self)

    # -- iteration --------------------------------------------------------------------------------------------
    def __aiter__(self) -> ObjectResult:
        return self

    async def __anext__(self) -> bytes:
        read = self._read
        if read is None:
            if self._finished:
                await self._settle()
                self._raise_pending_error()
                raise StopAsyncIteration
            read = await self._start()
            if read is None:
                self._raise_pending_error()
                raise StopAsyncIteration
        try:
            msg = await read.messages.__anext__()
        except StopAsyncIteration:  # stopped early, or the connection closed: nothing to verify
            self._cut_by_close = self._port.scope.is_closed
            await self._finish()
            raise
        except Exception:  # what ended the read (a fatal close, missing chunks, a deleted store)
            await self._finish()
            raise
        data = msg.data
        self._received += 1
        self._size += len(data)
        self._sha.update(data)
        if msg.info.pending == 0:
            # the last chunk: nothing is awaited before it is returned (a cancelled call would lose it); the next
            # call waits for the server consumer's deletion, then ends (or raises what the verification found)
            self._end()
            self._error = self._verify()
        return data

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    async def read(self) -> bytes:
        """The whole object (or what is left of it after partial iteration), digest verified. A connection closed
        before the last chunk raises ``ConnectionClosedError`` (rather than return part of the object).

        Raises:
            DigestMismatchError: chunks are missing, or the data does not match the recorded digest.
            ConnectionClosedError: the connection closed before the last chunk (or was closed already).
            BucketNotFoundError: the store does not exist (any more).
            JetStreamApiError: the server refused the consumer that reads the chunks.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
            NatsError: the connection closed with an error (a fatal close): that error.
        """
        data = b"".join([chunk async for chunk in self])
        if self._cut_by_close:
            raise ConnectionClosedError("connection closed before the whole object was read")
        return data

    async def close(self) -> None:
        """Stop reading early (nothing is verified); also what leaving ``async with`` does. Returns once the server
        consumer is deleted.

        Raises:
            Nothing: a deletion that fails is given up (the consumer then ends by its inactive threshold).
        """
        await self._finish()

    async def __aenter__(self) -> ObjectResult:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the consumer ---------------------------------------------------------------------------------------
    async def _start(self) -> OrderedRead | None:
        info = self.info
        if info.chunks == 0 and info.size == 0:
            self._finished = True
            self._error = self._verify()
            return None
        if self._port.scope.is_closed:
            raise ConnectionClosedError()
        chunk_size = -(-info.size // info.chunks) if info.chunks else 128 * 1024
        window = max(2, _READ_WINDOW_BYTES // max(1, chunk_size))
        options = OrderedConsumerOptions(
            filter_subjects=self._subject,
            deliver_policy=DeliverPolicy.ALL,
            inactive_threshold=_INACTIVE_THRESHOLD,
        )
        try:
            read = await open_ordered(self._js, self._stream, options, max_messages=window, expires=30.0)
        except StreamNotFoundError:
            raise BucketNotFoundError("object store not found") from None
        self._read = read
        read.watch_over()  # a result dropped unfinished stops (__del__)
        created = read.consumer._info
        if created is not None and created.num_pending == 0:
            await self._finish()  # every chunk is gone: nothing will ever arrive
            self._error = self._verify()
            return None
        self._arm_watchdog()
        return read

    def _end(self) -> None:
        """Stop reading: the watchdog is cancelled, the server consumer deleted in the background."""
        if self._finished:
            return
        self._finished = True
        read, self._read = self._read, None
        if read is not None:
            read.stop()
            self._ended_read = read

    async def _settle(self) -> None:
        """Wait until the server consumer of a read that ended is deleted (or could not be)."""
        read, self._ended_read = self._ended_read, None
        if read is not None:
            await read.aclose()

    async def _finish(self) -> None:
        self._end()
        await self._settle()

    def _verify(self) -> DigestMismatchError | None:
        info = self.info
        if self._received != info.chunks or self._size != info.size:
            return DigestMismatchError(
                f"received a corrupt object, chunks are missing: got {self._received} of {info.chunks} chunks, "
                f"{self._size} of {info.size} bytes"
            )
        digest = self._sha.digest()
        if not digest_matches(info.digest, digest):
            return DigestMismatchError(
                f"received a corrupt object, digests do not match received: {info.digest} "
                f"calculated: {format_digest(digest)}"
            )
        return None

    # -- stall watchdog (a timer, not a task per chunk; it holds the result weakly) -----------------------------
    def _arm_watchdog(self) -> None:
        read = self._read
        if read is not None and not read.ended:
            read.timer = self._port.loop.call_later(_STALL_CHECK, _tick, self._ref)

    def _tick(self) -> None:
        read = self._read
        if read is None or read.ended:
            return
        read.timer = None
        stalled = self._received == self._seen_at_check and read.messages.pending == 0
        self._seen_at_check = self._received
        if stalled and not self._checking:
            self._checking = self._port.scope.spawn(self._check_stall(read), "object read stall check") is not None
        self._arm_watchdog()

    async def _check_stall(self, read: OrderedRead) -> None:
        """No chunk for a while: if the server has nothing left for us and all it sent has arrived, end the read."""
        try:
            consumer = read.consumer
            if read.ended or not consumer.name:
                return
            received = self._received
            try:
                state = await ConsumerAPI(self._js).info(self._stream, consumer.name)
            except StreamNotFoundError:
                read.stop(BucketNotFoundError("object store not found"))
                return
            except NatsError:
                return  # the ordered consumer may be between server consumers: look again at the next tick
            delivered_all = state.delivered.consumer_seq <= consumer._expected_cseq - 1
            if state.num_pending == 0 and delivered_all and received == self._received and not self._finished:
                info = self.info
                read.stop(
                    DigestMismatchError(
                        f"received a corrupt object, chunks are missing: got {self._received} of {info.chunks} "
                        f"chunks, {self._size} of {info.size} bytes"
                    )
                )
        finally:
            self._checking = False


def _tick(ref: weakref.ref[ObjectResult]) -> None:
    result = ref()
    if result is not None:
        result._tick()
