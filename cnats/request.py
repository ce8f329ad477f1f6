"""Request/reply helpers: the iterator of many responses and the no-responders check (a single request's
bookkeeping is the protocol core's ReplyMux)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import Protocol

from .errors import NoRespondersError
from .msg import Msg

__all__ = [
    "RequestManyIterator",
    "RequestStrategy",
    "ResponseWaiter",
    "check_no_responders",
    "is_no_responders",
]


class RequestStrategy(str, Enum):
    """How `request_many()` decides it has all replies: a timer, a count, a jittered timer, or an empty sentinel
    message.
    """

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

    def connection_closed(self, error: Exception | None) -> None:
        """The connection closed: what arrived is still handed out, then the iteration ends (with ``error`` after a
        fatal close)."""
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
