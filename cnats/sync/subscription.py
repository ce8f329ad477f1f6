"""``SyncSubscription``: a core subscription read by threads, or delivered to a callback on a thread of its own."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from typing import Any

from ..errors import ConnectionClosedError, DrainTimeoutError, InvalidOptionError
from ..subscription import Subscription
from .context import Context
from .delivery import Delivery, End, check_timeout
from .messages import SyncMsg
from .runner import check_blocking_allowed
from .worker import CallbackWorker

__all__ = ["SyncSubscription"]


class SyncSubscription:
    """A subscription of a `SyncConnection`. Without a callback it is a blocking iterator of `SyncMsg`
    (``for msg in sub``, ``sub.next_msg(timeout)``), and several threads may read it (each message goes to one). With
    a callback, each message is passed to it on a worker thread owned by the subscription, one at a time and in
    order; other subscriptions and requests are not delayed by a slow callback."""

    def __init__(self, ctx: Context, subject: str, delivery: Delivery[SyncMsg], callback: Callable[[Any], Any] | None):
        self._ctx = ctx
        self._delivery = delivery
        self._callback = callback
        self._sub: Subscription | None = None
        self._worker: CallbackWorker[SyncMsg] | None = None
        if callback is not None:
            self._worker = CallbackWorker(
                f"cnats-sync callback {subject}",
                delivery.items(),
                callback,
                self._report,
                on_exit=functools.partial(ctx.disown, self),
            )

    def _report(self, exc: BaseException, msg: SyncMsg) -> None:
        self._ctx.report_callback_error(exc, msg.subject, msg.sid)

    def _attach(self, sub: Subscription) -> None:
        """The asyncio subscription is made: the callback thread starts (and is known to drain and close)."""
        self._sub = sub
        self._delivery.sid = sub.sid
        if self._worker is not None:
            self._ctx.own(self)
            self._worker.start()

    @property
    def _async(self) -> Subscription:
        assert self._sub is not None
        return self._sub

    # -- what it is -------------------------------------------------------------------------------------------------
    @property
    def subject(self) -> str:
        """The subject subscribed to (wildcards as given)."""
        return self._async.subject

    @property
    def queue(self) -> str | None:
        """The queue group, or None."""
        return self._async.queue

    @property
    def sid(self) -> int:
        """The subscription id on its connection."""
        return self._async.sid

    @property
    def max(self) -> int | None:
        """The message count after which the subscription closes itself, or None."""
        return self._async.max

    @property
    def received(self) -> int:
        """Messages delivered by the server (those dropped by the pending limits included)."""
        return self._async.received

    @property
    def pending(self) -> int:
        """Messages received and not yet taken by a reader or the callback."""
        return self._delivery.pending

    @property
    def pending_bytes(self) -> int:
        """Payload bytes of the pending messages."""
        return self._delivery.pending_bytes

    @property
    def dropped(self) -> int:
        """Messages dropped because the pending limits were reached (a reader or callback too slow)."""
        return self._delivery.dropped

    @property
    def is_closed(self) -> bool:
        """Whether the subscription is closed (messages already received may still be waiting to be read)."""
        return self._async.is_closed

    def __repr__(self) -> str:
        return f"<SyncSubscription subject={self.subject!r} sid={self.sid}>"

    # -- reading ----------------------------------------------------------------------------------------------------
    def __iter__(self) -> SyncSubscription:
        if self._callback is not None:
            raise RuntimeError("a subscription with a callback cannot be iterated")
        return self

    def __next__(self) -> SyncMsg:
        if self._callback is not None:
            raise RuntimeError("a subscription with a callback cannot be iterated")
        check_blocking_allowed()
        item = self._delivery.take(None)
        if isinstance(item, End):
            if item.error is not None:
                raise item.error
            raise StopIteration
        return item

    def next_msg(self, timeout: float | None = None) -> SyncMsg:
        """The next message; waits at most ``timeout`` seconds (None: until one arrives).

        Raises:
            NatsTimeoutError: no message within ``timeout`` seconds.
            SubscriptionClosedError: the subscription is closed and every message was handed out.
            NatsError: the subscription was closed by an error (a fatal connection close, a drain timeout): that
                error, once every held message was handed out.
            RuntimeError: the subscription has a callback.
            InvalidOptionError: ``timeout`` is negative, or this thread runs an event loop.
        """
        if self._callback is not None:
            raise RuntimeError("next_msg() cannot be used on a subscription with a callback")
        check_timeout(timeout)
        check_blocking_allowed()
        return self._delivery.next_msg(timeout)

    # -- ending -----------------------------------------------------------------------------------------------------
    def unsubscribe(self, max: int | None = None) -> None:
        """Close now (what is already received is still handed out), or once ``received`` reaches ``max``. Queued
        with the publishes of the calling thread; a no-op once closed.

        Raises:
            Nothing: it never raises.
        """
        with contextlib.suppress(ConnectionClosedError):  # the subscription ended with its connection
            self._ctx.submit(functools.partial(self._async.unsubscribe, max))

    def drain(self, timeout: float | None = 30.0) -> None:
        """Stop interest, let every message already received be handed out (with a callback: wait until the callback
        has handled them), then close. Past ``timeout`` seconds it is closed anyway and ``DrainTimeoutError`` is
        raised; None waits without limit.

        Raises:
            ConnectionClosedError: the connection is closed.
            SubscriptionClosedError: the subscription is closed.
            SubscriptionDrainingError: the subscription is already draining.
            InvalidOptionError: ``timeout`` is not a positive number or None, or this thread runs an event loop.
            DrainTimeoutError: the drain did not finish within ``timeout``; the subscription was closed anyway.
        """
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
            raise InvalidOptionError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        start = time.monotonic()
        self._ctx.call(self._async.drain(timeout))
        worker = self._worker
        if worker is None or worker.is_current:
            return
        left = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
        if not worker.join(left):
            worker.drop_rest()
            raise DrainTimeoutError(f"draining subscription {self.subject!r} took longer than {timeout} s")

    def __enter__(self) -> SyncSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unsubscribe()

    # -- Owned (the connection's drain and close) -------------------------------------------------------------------
    async def _stop_feeding(self) -> None:
        sub = self._sub
        if sub is not None and not (sub.is_closed or sub.is_draining):
            await sub.drain(None)

    def _wait_callbacks(self, timeout: float | None) -> bool:
        return self._worker is None or self._worker.join(timeout)

    def _drop_callbacks(self) -> None:
        if self._worker is not None:
            self._worker.drop_rest()

    def _join_callbacks(self, timeout: float | None) -> None:
        if self._worker is not None:
            self._worker.join(timeout)
