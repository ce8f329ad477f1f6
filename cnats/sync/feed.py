"""Data read in the calling thread, handed to the loop as an async iterator: what an object-store ``put`` of a file
or of a generator reads from, without running the caller's reads (disk, network, a generator's work) on the loop.

At most ``depth`` pieces wait on the loop side; the reading thread waits for room, and stops as soon as the put has
ended on the loop (it failed early, say).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from .delivery import END, End
from .runner import LoopRunner

__all__ = ["ThreadFeed", "pieces_of"]

PIECE = 128 * 1024  # what one read of a file asks for (the object store's default chunk size)


def pieces_of(data: Any) -> Iterator[Any]:
    """The pieces of a binary file object (read until EOF) or of an iterable of bytes."""
    read = getattr(data, "read", None)
    if read is not None:
        while True:
            piece = read(PIECE)
            if not piece:
                return
            yield piece
    else:
        yield from data


def is_fed(data: object) -> bool:
    """True for what must be read in the calling thread: a file object or a (sync) iterable that is not bytes-like."""
    if data is None or isinstance(data, (bytes, bytearray, memoryview, str)):
        return False
    if hasattr(data, "__aiter__"):
        return False  # an async iterable is read on the loop, as the asyncio API reads it
    return hasattr(data, "read") or isinstance(data, Iterable)


class ThreadFeed:
    """The thread side: ``push(piece)``, ``end()``, ``fail(error)``; the loop side: ``async for piece in feed``."""

    def __init__(self, runner: LoopRunner, depth: int = 4) -> None:
        self._runner = runner
        self._room = threading.Semaphore(depth)
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._abandoned = False

    # -- the thread ---------------------------------------------------------------------------------------------
    def push(self, piece: Any) -> bool:
        """Hand ``piece`` over (waiting for room); False when the reader on the loop has gone (stop reading)."""
        self._room.acquire()
        if self._abandoned:
            self._room.release()
            return False
        self._runner.call_soon(self._queue.put_nowait, piece)
        return True

    def end(self) -> None:
        self._runner.call_soon(self._queue.put_nowait, END)

    def fail(self, error: BaseException) -> None:
        self._runner.call_soon(self._queue.put_nowait, End(error))

    def abandon(self, *_: object) -> None:
        """The reader has gone (its put ended): a waiting ``push`` returns False."""
        self._abandoned = True
        self._room.release()

    # -- the loop -----------------------------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[Any]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[Any]:
        while True:
            item = await self._queue.get()
            self._room.release()
            if isinstance(item, End):
                if item.error is not None:
                    raise item.error
                return
            yield item
