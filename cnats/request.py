"""Request/reply helpers: the waiter of one response, the iterator of many, and the no-responders check."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import Protocol

from .errors import NatsTimeoutError, NoRespondersError
from .msg import Msg

__all__ = [
    "ReplyWaiter",
    "RequestDeadlines",
    "RequestManyIterator",
    "RequestStrategy",
    "ResponseWaiter",
    "check_no_responders",
    "is_no_responders",
]


class RequestStrategy(str, Enum):
    TIMER = "timer"
    COUNT = "count"
    JITTER_TIMER = "jitterTimer"
    SENTINEL_MSG = "sentinelMsg"


def is_no_responders(msg: Msg) -> bool:
    """The server's answer to a request nobody subscribed to: status 503 and no payload."""
    headers = msg.headers
    return headers is not None and headers.code == 503 and not msg.data


def check_no_responders(msg: Msg, subject: str) -> None:
    if is_no_responders(msg):
        raise NoRespondersError(f"no responders for {subject!r}")


class ResponseWaiter(Protocol):
    """What the inbox multiplexer routes a response to (a request, a request_many iterator, a JetStream ack)."""

    def deliver(self, msg: Msg) -> None: ...
    def fail(self, error: BaseException) -> None: ...


class ReplyWaiter:
    """Resolves one request's future with the first response routed to it by the inbox multiplexer."""

    __slots__ = ("future", "subject", "timeout")

    def __init__(self, future: asyncio.Future[Msg], subject: str = "", timeout: float = 0.0) -> None:
        self.future = future
        self.subject = subject
        self.timeout = timeout

    def deliver(self, msg: Msg) -> None:
        if not self.future.done():
            self.future.set_result(msg)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)

    def expire(self) -> None:
        if not self.future.done():
            self.future.set_exception(NatsTimeoutError(f"request to {self.subject!r} timed out after {self.timeout} s"))


class RequestDeadlines:
    """Request timeouts without a timer per request (a timer costs more than the rest of a request's bookkeeping).
    Requests made with the same timeout expire in the order they were made, so one FIFO and one timer per distinct
    timeout value suffice."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queues: dict[float, _TimeoutQueue] = {}

    def add(self, waiter: ReplyWaiter) -> None:
        queue = self._queues.get(waiter.timeout)
        if queue is None:
            queue = self._queues[waiter.timeout] = _TimeoutQueue(self, waiter.timeout)
        queue.add(waiter)

    def _drop(self, timeout: float) -> None:
        self._queues.pop(timeout, None)

    def close(self) -> None:
        queues, self._queues = self._queues, {}
        for queue in queues.values():
            queue.cancel()


class _TimeoutQueue:
    __slots__ = ("entries", "owner", "timeout", "timer")

    def __init__(self, owner: RequestDeadlines, timeout: float) -> None:
        self.owner = owner
        self.timeout = timeout
        self.entries: deque[tuple[float, ReplyWaiter]] = deque()
        self.timer: asyncio.TimerHandle | None = None

    def add(self, waiter: ReplyWaiter) -> None:
        entries = self.entries
        # answered requests leave from the front, so the queue stays about as long as what is in flight
        while entries and entries[0][1].future.done():
            entries.popleft()
        loop = self.owner._loop
        deadline = loop.time() + self.timeout
        entries.append((deadline, waiter))
        if self.timer is None:
            self.timer = loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self.timer = None
        loop = self.owner._loop
        now = loop.time()
        entries = self.entries
        while entries:
            deadline, waiter = entries[0]
            if deadline > now:
                self.timer = loop.call_at(deadline, self._fire)
                return
            entries.popleft()
            waiter.expire()
        self.owner._drop(self.timeout)  # nothing in flight with this timeout: forget it (timeouts may be many)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class RequestManyIterator:
    """The responses of ``request_many``; ``strategy`` decides when the iteration ends."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        strategy: RequestStrategy,
        max_wait: float,
        max_messages: int,
        jitter: float,
    ) -> None:
        self._loop = loop
        self._strategy = strategy
        self._max_wait = max_wait
        self._max_messages = max_messages
        self._jitter = jitter
        self._queue: deque[Msg] = deque()
        self._count = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.on_end: Callable[[], object] | None = None

    def start(self) -> None:
        self._timer = self._loop.call_later(self._max_wait, self.end, None)

    def deliver(self, msg: Msg) -> None:
        if self._done:
            return
        if self._count == 0 and is_no_responders(msg):
            self.end(NoRespondersError("no responders"))
            return
        self._count += 1
        self._queue.append(msg)
        self._wake()
        strategy = self._strategy
        if (strategy is RequestStrategy.COUNT and self._count >= self._max_messages) or (
            strategy is RequestStrategy.SENTINEL_MSG and not msg.data
        ):
            self.end(None)
        elif strategy is RequestStrategy.JITTER_TIMER:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_later(self._jitter, self.end, None)

    def fail(self, error: BaseException) -> None:
        self.end(error)

    def end(self, error: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        self._error = error
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.on_end is not None:
            self.on_end()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> RequestManyIterator:
        return self

    async def __anext__(self) -> Msg:
        while not self._queue:
            if self._done:
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                raise StopAsyncIteration
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    async def __aenter__(self) -> RequestManyIterator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.end(None)
