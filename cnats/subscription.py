"""``Subscription``: delivery of one sid's messages to a callback or an async iterator (API.md section 2).

The parser calls the subscription's delivery function directly (``parser.subs[sid]``). A plain-function callback
runs right there, inside the read path. Coroutine callbacks and iterators get a queue: one deque per subscription,
drained by one task (coroutine callback) or by the iterating code, never a task per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import TYPE_CHECKING, Any

from .errors import (
    ConnectionClosedError,
    InvalidOptionError,
    NatsTimeoutError,
    SlowConsumerError,
    SubscriptionClosedError,
    SubscriptionDrainingError,
)
from .msg import Msg
from .protocol import SubscriptionBase

if TYPE_CHECKING:
    from .connection import NatsConnection

__all__ = ["MsgCallback", "PendingPolicy", "Subscription"]

logger = logging.getLogger("cnats")

MsgCallback = Callable[[Msg], Awaitable[None] | None]


class PendingPolicy(str, Enum):
    """What a subscription does when its queue is full: drop the message, or pause reading from the socket."""

    DROP = "drop"
    BLOCK = "block"


def is_coroutine_callback(callback: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
        getattr(callback, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


class Subscription(SubscriptionBase):
    """A subscription; also an async iterator of its messages when created without a callback.

    Per-message delivery is inherited from the protocol core's ``SubscriptionBase`` (compiled when the extension is
    built): the parser hands each message of this sid straight to it.
    """

    def __init__(
        self,
        conn: NatsConnection,
        sid: int,
        subject: str,
        *,
        queue: str | None = None,
        callback: MsgCallback | None = None,
        max: int | None = None,
        timeout: float | None = None,
        pending_msgs_limit: int | None = None,
        pending_bytes_limit: int | None = None,
        on_full: PendingPolicy = PendingPolicy.DROP,
    ) -> None:
        self._conn = conn
        self._sid = sid
        self._subject = subject
        self._queue_group = queue
        self._callback = callback
        self._max = max
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self._pending_bytes = 0
        self._msgs_limit = pending_msgs_limit
        self._bytes_limit = pending_bytes_limit
        self._policy = PendingPolicy(on_full)
        self._block_policy = self._policy is PendingPolicy.BLOCK
        self._slow_reported = False
        self._blocking = False
        self._draining = False
        self._closing = False  # no new messages; what is queued is still delivered
        self._error: BaseException | None = None
        loop = conn._loop
        self._closed: asyncio.Future[Exception | None] = loop.create_future()
        self._waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._queue: deque[Msg] | None
        if callback is not None and not is_coroutine_callback(callback):
            if self._policy is PendingPolicy.BLOCK:
                raise InvalidOptionError("on_full=BLOCK needs a coroutine callback or an iterator")
            self._queue = None
        else:
            self._queue = deque()
            if callback is not None:
                self._task = loop.create_task(self._run_coroutine_callback(callback))
        if timeout is not None:
            self._timer = loop.call_later(timeout, self._on_timeout)

    # -- public properties ------------------------------------------------------------------------------------------
    @property
    def subject(self) -> str:
        return self._subject

    @property
    def queue(self) -> str | None:
        return self._queue_group

    @property
    def sid(self) -> int:
        return self._sid

    @property
    def max(self) -> int | None:
        return self._max

    @property
    def pending(self) -> int:
        return len(self._queue) if self._queue is not None else 0

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @property
    def is_closed(self) -> bool:
        return self._closed.done()

    @property
    def is_draining(self) -> bool:
        return self._draining and not self._closed.done()

    @property
    def closed(self) -> asyncio.Future[Exception | None]:
        return self._closed

    def __repr__(self) -> str:
        q = f" queue={self._queue_group!r}" if self._queue_group else ""
        return f"<Subscription sid={self._sid} subject={self._subject!r}{q} received={self.received}>"

    # -- delivery: SubscriptionBase.__call__ (in the protocol core) is the parser's sink; these are its rare paths
    def _callback_failed(self) -> None:
        logger.exception("exception in the callback of subscription %r", self._subject)

    def _drop(self) -> None:
        self.dropped += 1
        if self._slow_reported:
            return
        self._slow_reported = True
        err = SlowConsumerError(
            f"slow consumer: subscription {self._subject!r} (sid {self._sid}) dropped a message",
            sid=self._sid,
            subject=self._subject,
            pending_msgs=self.pending,
            pending_bytes=self._pending_bytes,
        )
        self._conn._report_slow_consumer(err)

    def _took(self, msg: Msg) -> None:
        """Bookkeeping after a queued message was handed out."""
        self._pending_bytes -= len(msg.data)
        self.processed += 1
        if self._blocking:
            self._unblock_if_room()

    def _unblock_if_room(self) -> None:
        if self._has_room():
            self._blocking = False
            self._conn._unblock_reading(self)

    def _has_room(self) -> bool:
        assert self._queue is not None
        return (self._msgs_limit is None or len(self._queue) < self._msgs_limit) and (
            self._bytes_limit is None or self._pending_bytes < self._bytes_limit
        )

    # -- consuming ------------------------------------------------------------------------------------------
    async def _next(self, timeout: float | None = None) -> Msg | None:
        """The next queued message; None when the subscription is closed and its queue empty."""
        queue = self._queue
        assert queue is not None
        while not queue:
            if self._closing:
                return None
            # One future shared by every task waiting on this subscription: a message (or the end) wakes them
            # all; whoever finds the queue empty again waits on a fresh one.
            waiter = self._waiter
            if waiter is None or waiter.done():
                waiter = self._waiter = self._conn._loop.create_future()
            # shield: a waiting task that is cancelled must not cancel the future the others wait on
            if timeout is None:
                await asyncio.shield(waiter)
            else:
                await asyncio.wait_for(asyncio.shield(waiter), timeout)
        msg = queue.popleft()
        self._took(msg)
        return msg

    async def _run_coroutine_callback(self, callback: MsgCallback) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            msg: Msg | None
            if queue:  # the common case under load: no extra coroutine frame per message
                msg = queue.popleft()
                self._took(msg)
            else:
                msg = await self._next()
            if msg is None:
                break
            try:
                await callback(msg)  # type: ignore[misc]
            except Exception:
                logger.exception("exception in the callback of subscription %r", self._subject)
        self._queue_done()

    def __aiter__(self) -> Subscription:
        if self._callback is not None:
            raise RuntimeError("a subscription with a callback cannot be iterated")
        return self

    # __anext__ comes from SubscriptionBase (compiled): a queued message is handed out without a coroutine
    if TYPE_CHECKING:

        def __anext__(self) -> Awaitable[Msg]: ...

    async def _anext_slow(self) -> Msg:
        if self._callback is not None:
            raise RuntimeError("a subscription with a callback cannot be iterated")
        msg = await self._next()
        if msg is None:
            self._queue_done()
            if self._error is not None:
                raise self._error
            raise StopAsyncIteration
        return msg

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.unsubscribe()

    async def next_msg(self, timeout: float | None = None) -> Msg:
        """The next message; ``NatsTimeoutError`` after ``timeout`` seconds, ``SubscriptionClosedError`` when the
        subscription is closed and nothing is left."""
        if self._callback is not None:
            raise RuntimeError("next_msg() cannot be used on a subscription with a callback")
        try:
            msg = await self._next(timeout)
        except asyncio.TimeoutError:
            raise NatsTimeoutError(f"no message on {self._subject!r} within {timeout} s") from None
        if msg is None:
            self._queue_done()
            if self._error is not None:
                raise self._error
            raise SubscriptionClosedError("subscription is closed")
        return msg

    # -- ending ------------------------------------------------------------------------------------------
    def unsubscribe(self, max: int | None = None) -> None:
        """Close now, or once ``received`` reaches ``max``. A no-op on a closed subscription; never raises."""
        if self._closed.done() or self._closing:
            return
        if max is not None and max > 0:
            self._max = max
            if self.received >= max:
                self._finish(None, send_unsub=True)
            else:
                self._conn._send_unsubscribe(self._sid, max)
            return
        self._finish(None, send_unsub=True)

    async def drain(self) -> None:
        """Stop interest (UNSUB), deliver every message already received, then close."""
        if self._conn.is_closed:
            raise ConnectionClosedError()
        if self._closed.done():
            raise SubscriptionClosedError("subscription is closed")
        if self._draining:
            raise SubscriptionDrainingError("subscription is already draining")
        self._draining = True
        self._conn._send_unsubscribe(self._sid, None)
        # Every message sent before the UNSUB has arrived once the PONG does. A closing connection ends the drain
        # below anyway, so its error is not ours to raise.
        with contextlib.suppress(Exception):
            await self._conn.flush()
        self._finish(None, wait_queue=True)
        await asyncio.shield(self._closed)

    def _on_timeout(self) -> None:
        self._timer = None
        if self.received == 0:
            self._finish(NatsTimeoutError(f"subscription {self._subject!r} timed out"), send_unsub=True)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _finish(self, error: BaseException | None, *, send_unsub: bool = False, wait_queue: bool = False) -> None:
        """Stop receiving. Queued messages are still handed out; ``closed`` resolves now, or with ``wait_queue``
        (drain) once the queue has been consumed."""
        if self._closing:
            return
        self._closing = True
        self._error = error
        self._cancel_timer()
        self._conn._forget_subscription(self, send_unsub=send_unsub)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._blocking:
            self._blocking = False
            self._conn._unblock_reading(self)
        # A callback task or an iterator with queued messages resolves `closed` when it reaches the end.
        if not wait_queue or (self._task is None and not self._queue):
            self._queue_done()

    def _queue_done(self) -> None:
        if not self._closed.done():
            err = self._error
            self._closed.set_result(err if isinstance(err, Exception) else None)

    def _abandon(self, error: BaseException | None = None) -> None:
        """The connection closed: end now, dropping what is queued."""
        if self._queue is not None:
            self._queue.clear()
            self._pending_bytes = 0
        self._finish(error)
        self._queue_done()
