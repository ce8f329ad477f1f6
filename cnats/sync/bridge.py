"""An async iterator of the asyncio API read on the loop and handed to threads: a blocking iterator.

A pump (one task, started from the thread that asked for the iterator) opens the source, then moves its items into
a ``queue.SimpleQueue``; it pauses once ``window`` items wait unread, so a slow reader holds back a consumer's pulls
instead of piling messages up. Opening happens before the blocking call returns, so its errors (a missing stream,
a bad option) are raised there, and nothing is missed between the call and the first read. Stopping the iterator
(``stop()``, ``close()``, leaving ``with``, or dropping it) stops the source the way the asyncio API stops it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import queue
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

from ..errors import NatsTimeoutError
from .delivery import END, End, check_timeout
from .runner import LoopRunner, check_blocking_allowed

__all__ = ["Pump", "SyncIterator"]

T = TypeVar("T")

Opener = Callable[[], Awaitable[AsyncIterator[Any]] | AsyncIterator[Any]]


async def _opened(open_source: Opener) -> AsyncIterator[Any]:
    source = open_source()
    if inspect.isawaitable(source):
        source = await source
    return source


async def stop_source(source: object) -> None:
    """Stop an asyncio iterator of cnats as its owner would: ``aclose()`` when it has one, else ``stop()``."""
    with contextlib.suppress(Exception):
        closer = getattr(source, "aclose", None)
        if closer is not None:
            await closer()
            return
        stopper = getattr(source, "stop", None)
        if stopper is not None:
            stopper()


class Pump:
    """The loop side: the source, its queue for the threads, and the pause when readers fall behind."""

    def __init__(self, runner: LoopRunner, window: int) -> None:
        self.runner = runner
        self.window = max(1, window)
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.source: AsyncIterator[Any] | None = None
        self.future: concurrent.futures.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None
        self._room_asked = False
        self.finished = False

    def start(self, open_source: Opener) -> None:
        """Open the source on the loop (blocking until it is open, raising what opening raised), then pump."""
        opened: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.future = self.runner.submit(self._run(open_source, opened))
        try:
            self.runner.wait(opened)
        except BaseException:
            self.future.cancel()
            raise

    async def _run(self, open_source: Opener, opened: concurrent.futures.Future[None]) -> None:
        try:
            source = self.source = await _opened(open_source)
        except BaseException as exc:  # noqa: BLE001 - raised in the thread that asked for the iterator
            opened.set_exception(exc)
            self.finished = True
            return
        opened.set_result(None)
        put = self.queue.put
        end: End = END
        try:
            async for item in source:
                put(item)
                if self.queue.qsize() >= self.window:
                    await self._wait_for_room()
        except asyncio.CancelledError:
            pass  # stopped by a reader: a normal end
        except Exception as exc:  # noqa: BLE001 - the readers get it, after what is queued
            end = End(exc)
        finally:
            await stop_source(source)
            self.finished = True
            put(end)

    async def _wait_for_room(self) -> None:
        room = self._room = asyncio.get_running_loop().create_future()
        self._room_asked = False
        try:
            if self.queue.qsize() >= self.window:  # a reader may have caught up meanwhile
                await room
        finally:
            self._room = None

    # -- the threads --------------------------------------------------------------------------------------------
    def take(self, timeout: float | None) -> Any:
        try:
            item = self.queue.get(timeout=timeout)
        except queue.Empty:
            raise NatsTimeoutError(f"nothing arrived within {timeout} s") from None
        if isinstance(item, End):
            self.queue.put(item)  # for every later reader
            return item
        if self._room is not None and not self._room_asked and self.queue.qsize() <= self.window // 2:
            self._room_asked = True
            self.runner.call_soon(_resolve, self._room)
        return item

    def stop(self) -> None:
        """Stop pumping (thread-safe): the source is stopped, readers get what is queued, then the end."""
        future = self.future
        if future is not None and not future.done():
            future.cancel()


def _resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


class SyncIterator(Generic[T]):
    """A blocking iterator over what an asyncio iterator of cnats yields (``for item in it``).

    It ends when its source ends, after ``stop()``/``close()``, when leaving ``with``, or when the connection closes;
    an error that ended the source is raised after the items already received. Dropping the iterator stops its source
    too, as leaving an ``async for`` early does.
    """

    def __init__(
        self,
        runner: LoopRunner,
        open_source: Opener,
        wrap: Callable[[Any], T] | None = None,
        *,
        window: int = 256,
    ) -> None:
        check_blocking_allowed()
        pump = self._pump = Pump(runner, window)
        self._wrap = wrap
        pump.start(open_source)
        self._finalizer = weakref.finalize(self, pump.stop)

    def __iter__(self) -> SyncIterator[T]:
        return self

    def __next__(self) -> T:
        try:
            return self.next(None)
        except _Ended as ended:
            if ended.error is not None:
                raise ended.error from None
            raise StopIteration from None

    def next(self, timeout: float | None = None) -> T:
        """The next item; ``NatsTimeoutError`` when none arrived within ``timeout`` seconds (None: wait for one).

        Raises:
            StopIteration: the iterator has ended (after every item was handed out).
            NatsTimeoutError: nothing arrived within ``timeout``.
            InvalidOptionError: ``timeout`` is negative, or this thread runs an event loop.
            NatsError: the error that ended the source (a fatal close, a deleted consumer...), after what was
                received before it.
        """
        check_timeout(timeout)
        check_blocking_allowed()
        item = self._pump.take(timeout)
        if isinstance(item, End):
            raise _Ended(item.error)
        return self._wrap(item) if self._wrap is not None else item

    def stop(self) -> None:
        """Stop now: no more items are asked for; what is already received is still handed out, then the end.

        Raises:
            Nothing: stopping twice, or after the end, does nothing.
        """
        self._pump.stop()

    def close(self) -> None:
        """Stop, and wait until the source behind it has stopped (its server consumer deleted, if it had one).

        Raises:
            InvalidOptionError: this thread runs an event loop.
        """
        check_blocking_allowed()
        pump = self._pump
        pump.stop()
        future = pump.future
        if future is not None:
            with contextlib.suppress(Exception, concurrent.futures.CancelledError):
                future.result()
        # cancelled before its cleanup finished: wait for the end marker, which comes after the cleanup
        while not pump.finished and pump.runner.is_running:
            with contextlib.suppress(NatsTimeoutError):
                item = pump.take(0.05)
                if isinstance(item, End):
                    break

    def __enter__(self) -> SyncIterator[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Ended(Exception):
    def __init__(self, error: BaseException | None) -> None:
        super().__init__()
        self.error = error
