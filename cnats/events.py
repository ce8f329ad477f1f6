"""Connection status events and statistics: ``Status``, ``Events``, ``DebugEvents``, ``Stats``."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from .errors import NatsError

__all__ = [
    "DebugEvents",
    "Events",
    "PermissionContext",
    "ServersChanged",
    "Stats",
    "Status",
    "StatusHub",
]


class Events(str, Enum):
    """Status events of a connection (`nc.status()`): disconnect, reconnect, update (cluster change), errors."""

    DISCONNECT = "disconnect"
    RECONNECT = "reconnect"
    UPDATE = "update"
    LDM = "ldm"
    ERROR = "error"


class DebugEvents(str, Enum):
    """Diagnostic status events of a connection (`nc.status()`): reconnect attempts, ping timer, stale connection."""

    RECONNECTING = "reconnecting"
    PING_TIMER = "pingTimer"
    STALE_CONNECTION = "staleConnection"
    CLIENT_INITIATED_RECONNECT = "client initiated reconnect"


@dataclass(frozen=True)
class ServersChanged:
    """The data of an `Events.UPDATE` status: the server URLs added to and deleted from the pool."""

    added: list[str]
    deleted: list[str]


@dataclass(frozen=True)
class PermissionContext:
    """What a permissions violation was about: the operation (publish or subscription), its subject and queue."""

    operation: str  # "publish" | "subscription"
    subject: str
    queue: str | None = None


@dataclass(frozen=True)
class Status:
    """One status event of a connection, as `nc.status()` yields it: its type, data, and permission context."""

    type: Events | DebugEvents
    data: str | ServersChanged | int
    permission_context: PermissionContext | None = None
    error: NatsError | None = None


@dataclass(frozen=True)
class Stats:
    """Message and byte counters of a connection (`nc.stats()`), in and out, and the reconnect count."""

    in_bytes: int
    out_bytes: int
    in_msgs: int
    out_msgs: int


T = TypeVar("T")

logger = logging.getLogger("cnats")

LISTENER_LIMIT = 256  # events a status listener nobody reads keeps (the oldest are dropped)


class _StatusIterator(Generic[T]):
    """One listener: its own queue, so every iterator sees every event emitted after it was created."""

    def __init__(self, hub: StatusHub[T]) -> None:
        self._hub = hub
        self._queue: deque[T] = deque(maxlen=LISTENER_LIMIT)
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False

    def _put(self, status: T) -> None:
        self._queue.append(status)
        self._wake()

    def _end(self) -> None:
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> _StatusIterator[T]:
        return self

    async def __anext__(self) -> T:
        while not self._queue:
            if self._ended:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    async def __aenter__(self) -> _StatusIterator[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop listening: the iterator ends after what is already queued."""
        self._hub.remove(self)
        self._end()


class StatusHub(Generic[T]):
    """Fans status events out to every live listener; listeners see no replay of earlier events."""

    def __init__(self) -> None:
        # weak: an iterator its owner dropped without stop() stops receiving (and costing) at once. Made on the
        # first listen: most hubs (one per consumer) are never listened to, and a WeakSet is four tracked objects.
        self._listeners: weakref.WeakSet[_StatusIterator[T]] | None = None
        self._observers: list[Callable[[T], None]] = []
        self._closed = False

    def listen(self) -> AsyncIterator[T]:
        it: _StatusIterator[T] = _StatusIterator(self)
        if self._closed:
            it._end()
        else:
            if self._listeners is None:
                self._listeners = weakref.WeakSet()
            self._listeners.add(it)
        return it

    def remove(self, it: _StatusIterator[T]) -> None:
        if self._listeners is not None:
            self._listeners.discard(it)

    def observe(self, observer: Callable[[T], None]) -> None:
        """Call ``observer`` synchronously with every later event (for the library's own reactions, such as
        consumers re-pulling after a reconnect, which should not cost a task each)."""
        self._observers.append(observer)

    def unobserve(self, observer: Callable[[T], None]) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

    @property
    def active(self) -> bool:
        """Whether anyone listens or observes (an event nobody would see need not be built)."""
        return bool(self._observers) or bool(self._listeners)

    def emit(self, status: T) -> None:
        """Hand ``status`` to every listener and observer. Never raises: a failing observer is logged, and the
        connection's own bookkeeping (which emits) goes on."""
        if self._listeners:
            for it in self._listeners:
                it._put(status)
        for observer in tuple(self._observers):
            try:
                observer(status)
            except Exception:
                logger.exception("a status observer failed on %r", status)

    def close(self) -> None:
        self._closed = True
        self._observers.clear()
        listeners, self._listeners = list(self._listeners or ()), None
        for it in listeners:
            it._end()
