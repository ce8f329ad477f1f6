"""The ownership tree of a connection: everything built on it ends with it.

A connection owns one ``Scope``. Every object it hands out that holds a subscription, a timer or a task
(subscriptions, consumer iterators, watchers, readers, services, ``request_many`` and ``status()`` iterators) is
``adopt``-ed by the scope, and every background task cnats starts goes through ``Scope.spawn`` (held, named
``cnats:...``, its exception retrieved and logged). ``close()`` tells every child the connection ended, cancels the
tasks and awaits them; ``drain()`` first asks every child to drain, bounded by a timeout.

The rules a user can rely on are written in docs/lifecycle.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any, Protocol, TypeVar

from .protocol import untrack_while_live

__all__ = ["Owned", "Scope", "current_task"]

logger = logging.getLogger("cnats")

T = TypeVar("T")


class Owned(Protocol):
    """A child of a connection's scope."""

    def connection_closed(self, error: Exception | None) -> None:
        """The connection closed (``error`` is None after a user ``close()``/``drain()``): stop every timer and
        task, end the iterator after what it holds, resolve ``closed``. Synchronous, idempotent, never raises."""


class Drainable(Owned, Protocol):
    def drain_owned(self) -> Awaitable[object]:
        """Stop taking new work, hand out what is held, then end (awaited by ``NatsConnection.drain``)."""


class Scope:
    """One per connection: its children and its background tasks."""

    __slots__ = ("_children", "_closed", "_ended", "_loop", "_tasks", "_tracked")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # insertion-ordered; a dict rather than a set so that close() ends children in the order they were made
        self._children: dict[Owned, None] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tracked: set[asyncio.Future[Any]] = set()  # requests whose answer may leave something to clean up
        self._ended = False  # children ended by a user close that is settling (the connection is still up)
        self._closed = False

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def children(self) -> list[Owned]:
        return list(self._children)

    @property
    def tasks(self) -> set[asyncio.Task[Any]]:
        return set(self._tasks)

    # -- children ------------------------------------------------------------------------------------------------
    def adopt(self, child: Owned) -> None:
        """Own ``child``; after close it is told at once that the connection is gone."""
        if self._closed or self._ended:
            child.connection_closed(None)
            return
        self._children[child] = None
        # off the collector's lists (an insertion puts a dict back on them): the scope holds its children until they
        # end or the connection closes, so a full collection would only walk them; with 10,000 running consumers
        # that walk was a visible part of every full collection
        untrack_while_live(self._children)

    def release(self, child: Owned) -> None:
        """``child`` ended by itself: the scope forgets it (a no-op when it is not held)."""
        self._children.pop(child, None)

    # -- tasks ---------------------------------------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T] | None:
        """Start ``coro`` as a task the scope holds (named ``cnats:<name>``) and cancels at close. After close the
        coroutine is closed unstarted and None is returned: nothing starts on a closed connection."""
        if self._closed:
            coro.close()
            return None
        task = self._loop.create_task(coro, name=f"cnats:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            logger.error("background task %s failed", task.get_name(), exc_info=exc)

    def track(self, future: asyncio.Future[Any]) -> None:
        """A request in flight whose answer may need cleaning up after (a consumer being created for an owner that
        may end meanwhile): a user ``close()`` gives it a moment to arrive while the connection is still up."""
        if not future.done():
            self._tracked.add(future)
            future.add_done_callback(self._tracked.discard)

    # -- ending --------------------------------------------------------------------------------------------------
    def end_children(self) -> None:
        """First step of a user ``close()``, while the connection is still up: every child ends and every task is
        cancelled, but cleanup started from now on (deleting a consumer a cancelled request created anyway) may still
        run, until ``settle`` returns."""
        if self._ended or self._closed:
            return
        self._ended = True
        self._end_all(None)

    async def settle(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) for tracked requests and the cleanup they started."""
        loop = self._loop
        deadline = loop.time() + timeout
        current = current_task()
        while True:
            pending: set[asyncio.Future[Any]] = {t for t in self._tasks if t is not current and not t.done()}
            pending |= {f for f in self._tracked if not f.done()}
            remaining = deadline - loop.time()
            if not pending or remaining <= 0:
                return
            await asyncio.wait(pending, timeout=remaining)

    def close(self, error: Exception | None) -> None:
        """Synchronous part of closing: every child ends, every task is cancelled (awaited by ``wait_closed``)."""
        if self._closed:
            return
        self._closed = True
        self._end_all(error)

    def _end_all(self, error: Exception | None) -> None:
        children, self._children = list(self._children), {}
        for child in children:
            try:
                child.connection_closed(error)
            except Exception:  # one child's failure must not keep the others alive
                logger.exception("error while closing %r", child)
        current = current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()

    async def wait_closed(self) -> None:
        """Wait until every task the scope started has finished (except the caller's own)."""
        current = current_task()
        while True:
            pending = [t for t in self._tasks if t is not current and not t.done()]
            if not pending:
                return
            # tasks cancelled in turn may spawn nothing (the scope is closed), so this loop ends
            await asyncio.wait(pending)

    async def drain(self) -> None:
        """Ask every child that can drain to drain, concurrently; children that cannot are left for close()."""
        waits = []
        for child in list(self._children):
            drain = getattr(child, "drain_owned", None)
            if drain is not None:
                waits.append(drain())
        if waits:
            results = await asyncio.gather(*waits, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException) and not isinstance(result, Exception):
                    raise result
                if isinstance(result, Exception):
                    logger.debug("error while draining: %r", result)


def current_task() -> asyncio.Task[Any] | None:
    """The running task, or None (outside a task, or with no running loop: interpreter shutdown)."""
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None
