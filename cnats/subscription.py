"""``Subscription``: delivery of one sid's messages to a callback or an async iterator.

The parser calls the subscription's delivery function directly (``parser.subs[sid]``). A plain-function callback
runs right there, inside the read path. Coroutine callbacks and iterators get a queue: one ``MessageQueue`` per
subscription, drained by one task (coroutine callback) or by the iterating code, never a task per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from enum import Enum
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from .callbacks import Callback, discard_unawaited, is_async_callable
from .errors import (
    ConnectionClosedError,
    DrainTimeoutError,
    InvalidOptionError,
    NatsTimeoutError,
    SlowConsumerError,
    SubscriptionClosedError,
    SubscriptionDrainingError,
)
from .msg import Msg
from .protocol import MessageQueue, SubscriptionBase

if TYPE_CHECKING:
    from .port import Port

__all__ = ["MsgCallback", "PendingPolicy", "Subscription"]

logger = logging.getLogger("cnats")

MsgCallback = Callable[[Msg], Awaitable[None] | None]


class PendingPolicy(str, Enum):
    """What a subscription does when its queue is full: drop the message, or pause reading from the socket."""

    DROP = "drop"
    BLOCK = "block"


class _ErrorReport:
    """What a subscription's callback adapter calls when the callback raises: the connection's reporter with this
    subscription's subject and sid. Not the subscription itself: a cycle would leave its freeing to the collector."""

    __slots__ = ("report", "sid", "subject")

    def __init__(self, report: Callable[[BaseException, str, int], None], subject: str, sid: int) -> None:
        self.report = report
        self.subject = subject
        self.sid = sid

    def __call__(self, exc: BaseException, msg: Msg) -> None:
        self.report(exc, self.subject, self.sid)


class Subscription(SubscriptionBase):
    """A subscription; also an async iterator of its messages when created without a callback.

    Per-message delivery is inherited from the protocol core's ``SubscriptionBase`` (compiled when the extension is
    built): the parser hands each message of this sid straight to it.
    """

    # Slots, no __dict__, and the ``closed`` future made only when asked for: a connection may hold hundreds of
    # thousands of subscriptions, and every object the garbage collector tracks is walked by each full collection.
    __slots__ = (
        "__weakref__",
        "_closed",
        "_closing",
        "_done",
        "_draining",
        "_error",
        "_policy",
        "_queue_group",
        "_sid",
        "_subject",
        "_task",
    )

    def __init__(
        self,
        port: Port,
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
        self._port = port
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
        loop = port.loop
        self._done = False  # closed (``closed`` resolves, or is made resolved)
        self._closed: asyncio.Future[Exception | None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._queue: deque[Msg] | None
        if callback is not None and not is_async_callable(callback):
            if self._policy is PendingPolicy.BLOCK:
                raise InvalidOptionError("on_full=BLOCK needs a coroutine callback or an iterator")
            self._queue = None
        else:
            self._queue = MessageQueue()
            if callback is not None:
                self._start_callback_task(None)
        if timeout is not None:
            self._timer = loop.call_later(timeout, self._on_timeout)

    # -- public properties ------------------------------------------------------------------------------------------
    @property
    def subject(self) -> str:
        """The subject subscribed to (wildcards as given)."""
        return self._subject

    @property
    def queue(self) -> str | None:
        """The queue group, or None."""
        return self._queue_group

    @property
    def sid(self) -> int:
        """The subscription id on this connection."""
        return self._sid

    @property
    def max(self) -> int | None:
        """The message count after which the subscription closes itself (``unsubscribe(max)``), or None."""
        return self._max

    @property
    def pending(self) -> int:
        """Messages received and not yet handed out."""
        return len(self._queue) if self._queue is not None else 0

    @property
    def pending_bytes(self) -> int:
        """Payload bytes of the pending messages."""
        return self._pending_bytes

    @property
    def is_closed(self) -> bool:
        """Whether the subscription is closed."""
        return self._done

    @property
    def is_draining(self) -> bool:
        """Whether the subscription is draining (and not closed yet)."""
        return self._draining and not self._done

    @property
    def closed(self) -> asyncio.Future[Exception | None]:
        """Resolves when the subscription has closed: with None, or with the error that closed it."""
        closed = self._closed
        if closed is None:
            closed = self._closed = self._port.loop.create_future()
            if self._done:
                closed.set_result(self._close_result())
        return closed

    def _close_result(self) -> Exception | None:
        err = self._error
        return err if isinstance(err, Exception) else None

    def __repr__(self) -> str:
        q = f" queue={self._queue_group!r}" if self._queue_group else ""
        return f"<Subscription sid={self._sid} subject={self._subject!r}{q} received={self.received}>"

    # -- delivery: SubscriptionBase.__call__ (in the protocol core) is the parser's sink; these are its rare paths
    def _callback_failed(self, exc: BaseException, msg: Msg) -> None:
        self._port.report_callback_error(exc, self._subject, self._sid)

    def _callback_returned(self, pending: Awaitable[Any], msg: Msg) -> None:
        """A plain-looking callback returned an awaitable (a lambda or partial over a coroutine function): it is
        awaited, and from now on this subscription queues its messages for one task, in order."""
        if not inspect.isawaitable(pending):
            return  # a plain callback that returned some value
        if not self._closing:
            self._queue = MessageQueue()
        self._start_callback_task(pending)

    def _start_callback_task(self, pending: Awaitable[Any] | None) -> None:
        self._task = self._port.scope.spawn(self._run_coroutine_callback(pending), f"callback {self._subject}")
        if self._task is None:  # the connection is closed: nothing will ever be delivered
            discard_unawaited(pending)
            self._queue_done()
        elif pending is not None:
            # cancelled before its first step (the connection closed at once): the awaitable was never awaited
            self._task.add_done_callback(lambda task: discard_unawaited(pending) if task.cancelled() else None)

    def _give_back(self, msg: Msg) -> None:
        """A message handed out by ``__anext__`` was never taken (its task was cancelled first): it is next again."""
        queue = self._queue
        assert queue is not None
        queue.appendleft(msg)
        self._pending_bytes += len(msg.data)
        self.processed -= 1
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

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
        self._port.report_slow_consumer(err)

    def _took(self, msg: Msg) -> None:
        """Bookkeeping after a queued message was handed out."""
        self._pending_bytes -= len(msg.data)
        self.processed += 1
        if self._blocking:
            self._unblock_if_room()

    def _unblock_if_room(self) -> None:
        if self._has_room():
            self._blocking = False
            self._port.unblock_reading(self)

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
                waiter = self._waiter = self._port.loop.create_future()
            # shield: a waiting task that is cancelled must not cancel the future the others wait on
            if timeout is None:
                await asyncio.shield(waiter)
            else:
                await asyncio.wait_for(asyncio.shield(waiter), timeout)
        msg = queue.popleft()
        self._took(msg)
        return msg

    async def _run_coroutine_callback(self, pending: Awaitable[Any] | None) -> None:
        # made here, not with the subscription: a plain callback never needs it (one object fewer per subscription)
        report = _ErrorReport(self._port.report_callback_error, self._subject, self._sid)
        adapter: Callback[Msg] = Callback(self._callback, report)
        if pending is not None:
            await adapter.call(None, pending)  # type: ignore[arg-type]
        queue = self._queue
        if queue is None:  # switched while closing: nothing more will come
            self._queue_done()
            return
        # the adapter's call, inlined: no coroutine frame of its own per message
        fn = adapter.fn
        on_error = adapter.on_error
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
                result = fn(msg)
                if result.__class__ is CoroutineType or (result is not None and inspect.isawaitable(result)):
                    await result
            except Exception as exc:  # noqa: BLE001 - reported; the subscription goes on
                on_error(exc, msg)
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
        subscription is closed and nothing is left.

        Raises:
            NatsTimeoutError: no message within ``timeout`` seconds.
            SubscriptionClosedError: the subscription is closed and every message was handed out.
            NatsError: the subscription was closed by an error (a fatal connection close, a drain timeout): that
                error, once every held message was handed out.
            RuntimeError: the subscription has a callback.
        """
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
        """Close now, or once ``received`` reaches ``max``. A no-op on a closed subscription.

        Raises:
            Nothing: it never raises.
        """
        if self._done or self._closing:
            return
        if max is not None and max > 0:
            self._max = max
            if self.received >= max:
                self._finish(None, send_unsub=True)
            else:
                self._port.send_unsubscribe(self._sid, max)
            return
        self._finish(None, send_unsub=True)

    async def drain(self, timeout: float | None = 30.0) -> None:
        """Stop interest (UNSUB), deliver every message already received, then close. When that takes longer than
        ``timeout`` seconds the subscription is closed anyway (what is queued is dropped) and ``DrainTimeoutError``
        is raised; ``None`` waits without limit.

        Raises:
            ConnectionClosedError: the connection is closed.
            SubscriptionClosedError: the subscription is closed.
            SubscriptionDrainingError: the subscription is already draining.
            InvalidOptionError: ``timeout`` is not a positive number or None.
            DrainTimeoutError: the drain did not finish within ``timeout``; the subscription was closed anyway.
        """
        if self._port.scope.is_closed:
            raise ConnectionClosedError()
        if self._done:
            raise SubscriptionClosedError("subscription is closed")
        if self._draining:
            raise SubscriptionDrainingError("subscription is already draining")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
            raise InvalidOptionError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        self._draining = True
        self._port.send_unsubscribe(self._sid, None)
        if timeout is None:
            await self._drain()
            return
        try:
            await asyncio.wait_for(self._drain(), timeout)
        except asyncio.TimeoutError:
            err = DrainTimeoutError(f"draining subscription {self._subject!r} took longer than {timeout} s")
            self._error = err
            self._abandon(err)
            raise err from None

    def drain_owned(self) -> Awaitable[None]:
        """The connection's drain (unbounded here: the connection bounds the whole).

        Raises:
            Nothing: the errors of the drain are the connection's to handle.
        """
        return self.drain(None) if not (self._draining or self._done) else self._wait_closed()

    async def _wait_closed(self) -> None:
        await asyncio.shield(self.closed)

    async def _drain(self) -> None:
        # Every message sent before the UNSUB has arrived once the PONG does. A closing connection ends the drain
        # below anyway, so its error is not ours to raise.
        with contextlib.suppress(Exception):
            await self._port.flush()
        self._finish(None, wait_queue=True)
        await asyncio.shield(self.closed)

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
        self._port.forget_subscription(self, send_unsub=send_unsub)
        self._wake()
        if self._blocking:
            self._blocking = False
            self._port.unblock_reading(self)
        # A callback task or an iterator with queued messages resolves `closed` when it reaches the end.
        if not wait_queue or (self._task is None and not self._queue):
            self._queue_done()

    def _queue_done(self) -> None:
        if not self._done:
            self._done = True
            closed = self._closed
            if closed is not None and not closed.done():
                closed.set_result(self._close_result())

    def _abandon(self, error: BaseException | None = None) -> None:
        """End now, dropping what is queued (a refused subscription, a drain that timed out)."""
        if self._queue is not None:
            self._queue.clear()
            self._pending_bytes = 0
        self._finish(error)
        self._queue_done()

    def connection_closed(self, error: Exception | None) -> None:
        """The connection closed: an iterator still hands out what it holds, then ends (raising ``error`` after a
        fatal close); a callback's queue is dropped (its task is cancelled by the connection).

        Raises:
            Nothing: it only ends the subscription.
        """
        if self._callback is not None and self._queue is not None:
            self._queue.clear()
            self._pending_bytes = 0
        self._finish(error)
        self._queue_done()
