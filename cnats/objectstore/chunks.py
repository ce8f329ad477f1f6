"""Writing an object's data: any supported source cut into chunks of a fixed size, published pipelined while the
SHA-256 digest is computed. Memory stays bounded by one chunk being assembled plus the unacknowledged window."""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

from ..errors import BadPayloadError

if TYPE_CHECKING:
    from ..jetstream.api import PubAck
    from ..jetstream.client import JetStreamClient

__all__ = ["ChunkWriter", "ObjectData", "iter_chunks"]

ObjectData = bytes | bytearray | memoryview | str | AsyncIterable[bytes] | Iterable[bytes] | IO[bytes] | IO[Any] | None

_WINDOW_BYTES = 4 * 1024 * 1024  # unacknowledged chunk bytes in flight during a put


def _view(piece: object) -> memoryview:
    if isinstance(piece, (bytes, bytearray, memoryview)):
        try:
            return memoryview(piece).cast("B")
        except TypeError as exc:  # not C-contiguous
            raise BadPayloadError(f"object data must be contiguous: {exc}") from None
    raise BadPayloadError(f"object data must be bytes-like, not {type(piece).__name__}")


class _Splitter:
    """Cuts pieces of any size into chunks of exactly ``size`` bytes (the last may be shorter). Whole chunks
    inside a piece are handed out as views of it; only the bytes that straddle two pieces are copied."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._carry = bytearray()

    def feed(self, piece: memoryview) -> Iterator[memoryview | bytes]:
        size = self._size
        carry = self._carry
        if carry:
            need = size - len(carry)
            carry += piece[:need]
            if len(carry) < size:
                return
            yield bytes(carry)
            carry.clear()
            piece = piece[need:]
        n = len(piece)
        whole = n - n % size
        for offset in range(0, whole, size):
            yield piece[offset : offset + size]
        if whole < n:
            carry += piece[whole:]

    def tail(self) -> Iterator[bytes]:
        if self._carry:
            yield bytes(self._carry)
            self._carry.clear()


async def iter_chunks(data: ObjectData, size: int) -> AsyncGenerator[memoryview | bytes, None]:
    """The chunks of ``data``: bytes-like (a str is UTF-8 encoded), a binary file object read until EOF, a sync or
    async iterable of bytes-like pieces, or None (no data)."""
    if data is None:
        return
    if isinstance(data, str):
        data = data.encode()
    splitter = _Splitter(size)
    if isinstance(data, (bytes, bytearray, memoryview)):
        for chunk in splitter.feed(_view(data)):
            yield chunk
    elif hasattr(data, "read"):
        read = data.read
        while True:
            # A sync read: files and in-memory buffers answer at once; wrap a slow stream in an async iterable.
            piece = read(size)
            if not piece:
                break
            for chunk in splitter.feed(_view(piece)):
                yield chunk
    elif isinstance(data, AsyncIterable):
        async for piece in data:
            for chunk in splitter.feed(_view(piece)):
                yield chunk
    elif isinstance(data, Iterable):
        for piece in data:
            for chunk in splitter.feed(_view(piece)):
                yield chunk
    else:
        raise BadPayloadError(f"unsupported object data: {type(data).__name__}")
    for chunk in splitter.tail():
        yield chunk


class ChunkWriter:
    """Publishes the chunks of one object to ``subject`` with at most a window of unacknowledged chunks."""

    def __init__(self, js: JetStreamClient, subject: str, chunk_size: int, timeout: float | None) -> None:
        window_bytes = _WINDOW_BYTES
        limit = js.port.pending_bytes_limit
        if limit:
            window_bytes = min(window_bytes, limit // 2)  # the outbound buffer must hold the whole window
        self._window = max(1, window_bytes // chunk_size)
        self._js = js
        self._subject = subject
        self._timeout = timeout
        self._acks: deque[asyncio.Future[PubAck]] = deque()
        self._sha = hashlib.sha256()
        self.size = 0
        self.chunks = 0

    async def write(self, chunk: memoryview | bytes) -> None:
        acks = self._acks
        if len(acks) >= self._window:
            await acks.popleft()  # raises the first failed chunk's error
        self._sha.update(chunk)
        acks.append(await self._js.publish_async(self._subject, chunk, timeout=self._timeout))
        self.size += len(chunk)
        self.chunks += 1

    async def finish(self) -> bytes:
        """Wait for every chunk's acknowledgement; the SHA-256 of the data."""
        acks = self._acks
        while acks:
            await acks.popleft()
        return self._sha.digest()

    async def settle(self) -> None:
        """After a failure: wait until every chunk sent is stored or refused (each ack has a timeout), so that a
        purge that follows finds them all; their errors are not raised."""
        acks, self._acks = self._acks, deque()
        if acks:
            await asyncio.gather(*acks, return_exceptions=True)
