"""Reading an object: its chunks in order through an ordered consumer, the digest checked after the last one.

The consumer pulls a bounded window of chunks, so memory stays bounded by that window whatever the object's size.
The last chunk is the one the server delivers with nothing pending; a missing chunk shows then as a short count.
Chunks that vanish while being read (a concurrent replace or delete purges them) leave the consumer with nothing
to deliver: a watchdog notices the stall and ends the read with an error instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from typing import TYPE_CHECKING

from ..errors import BucketNotFoundError, DigestMismatchError, NatsError, StreamNotFoundError
from ..jetstream.api import DeliverPolicy
from ..jetstream.consumer import ConsumerMessages, OrderedConsumer, OrderedConsumerOptions
from .model import ObjectInfo, digest_matches, format_digest

if TYPE_CHECKING:
    from ..jetstream.client import JetStreamClient

__all__ = ["ObjectResult"]

_READ_WINDOW_BYTES = 4 * 1024 * 1024  # chunk bytes pulled ahead of the reader
_STALL_CHECK = 1.0  # seconds without a chunk before asking the server whether any are left
_INACTIVE_THRESHOLD = 30.0  # an abandoned read's server consumer goes away after this


class ObjectResult:
    """An object being read: ``info``, and an async iterator of its chunks (``bytes``) in order. The digest is
    checked after the last chunk (``DigestMismatchError`` on a mismatch or missing chunks)."""

    def __init__(self, js: JetStreamClient, stream: str, chunk_subject: str, info: ObjectInfo) -> None:
        self.info = info
        self._js = js
        self._stream = stream
        self._subject = chunk_subject
        self._sha = hashlib.sha256()
        self._received = 0
        self._size = 0
        self._consumer: OrderedConsumer | None = None
        self._messages: ConsumerMessages | None = None
        self._finished = False
        self._error: BaseException | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._seen_at_check = -1
        self._checking = False

    # -- iteration --------------------------------------------------------------------------------------------
    def __aiter__(self) -> ObjectResult:
        return self

    async def __anext__(self) -> bytes:
        messages = self._messages
        if messages is None:
            if self._finished:
                self._raise_pending_error()
                raise StopAsyncIteration
            messages = await self._start()
            if messages is None:
                self._raise_pending_error()
                raise StopAsyncIteration
        try:
            msg = await messages.__anext__()
        except StopAsyncIteration:
            await self._finish()  # stopped early (close()), nothing to verify
            raise
        except BaseException:
            await self._finish()
            raise
        data = msg.data
        self._received += 1
        self._size += len(data)
        self._sha.update(data)
        if msg.info.pending == 0:
            await self._finish()
            self._error = self._verify()
        return data

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    async def read(self) -> bytes:
        """The whole object (or what is left of it after partial iteration), digest verified."""
        return b"".join([chunk async for chunk in self])

    async def close(self) -> None:
        """Stop reading early (nothing is verified); also what leaving ``async with`` does."""
        if not self._finished:
            if self._messages is not None:
                self._messages.stop()
            await self._finish()

    async def __aenter__(self) -> ObjectResult:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the consumer ---------------------------------------------------------------------------------------
    async def _start(self) -> ConsumerMessages | None:
        info = self.info
        if info.chunks == 0 and info.size == 0:
            self._finished = True
            self._error = self._verify()
            return None
        chunk_size = -(-info.size // info.chunks) if info.chunks else 128 * 1024
        window = max(2, _READ_WINDOW_BYTES // max(1, chunk_size))
        options = OrderedConsumerOptions(
            filter_subjects=self._subject,
            deliver_policy=DeliverPolicy.ALL,
            inactive_threshold=_INACTIVE_THRESHOLD,
        )
        consumer = OrderedConsumer(self._js, self._stream, options)
        try:
            messages = await consumer.consume(max_messages=window, expires=30.0)
        except StreamNotFoundError:
            raise BucketNotFoundError("object store not found") from None
        self._consumer = consumer
        self._messages = messages
        created = consumer._info
        if created is not None and created.num_pending == 0:
            await self._finish()  # every chunk is gone: nothing will ever arrive
            self._error = self._verify()
            return None
        self._arm_watchdog()
        return messages

    async def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        messages, self._messages = self._messages, None
        if messages is not None:
            messages.stop()
        consumer, self._consumer = self._consumer, None
        if consumer is not None and consumer.name:
            with contextlib.suppress(NatsError):  # gone already: its inactive threshold removes it anyway
                await consumer.delete()

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

    # -- stall watchdog (a timer, not a task per chunk) ---------------------------------------------------------
    def _arm_watchdog(self) -> None:
        self._watchdog = self._js._nc._loop.call_later(_STALL_CHECK, self._tick)

    def _tick(self) -> None:
        self._watchdog = None
        messages = self._messages
        if self._finished or messages is None:
            return
        stalled = self._received == self._seen_at_check and messages.pending == 0
        self._seen_at_check = self._received
        if stalled and not self._checking:
            self._checking = True
            self._js._nc._loop.create_task(self._check_stall(messages))
        self._arm_watchdog()

    async def _check_stall(self, messages: ConsumerMessages) -> None:
        """No chunk for a while: if the server has nothing left for us and all it sent has arrived, end the read."""
        from ..jetstream.manager import ConsumerAPI

        try:
            consumer = self._consumer
            if consumer is None or not consumer.name:
                return
            received = self._received
            try:
                state = await ConsumerAPI(self._js).info(self._stream, consumer.name)
            except StreamNotFoundError:
                messages.stop(BucketNotFoundError("object store not found"))
                return
            except NatsError:
                return  # the ordered consumer may be between server consumers: look again at the next tick
            delivered_all = state.delivered.consumer_seq <= consumer._expected_cseq - 1
            if state.num_pending == 0 and delivered_all and received == self._received and not self._finished:
                info = self.info
                messages.stop(
                    DigestMismatchError(
                        f"received a corrupt object, chunks are missing: got {self._received} of {info.chunks} "
                        f"chunks, {self._size} of {info.size} bytes"
                    )
                )
        finally:
            self._checking = False
