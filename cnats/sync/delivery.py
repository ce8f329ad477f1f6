"""The messages of one core subscription, handed from the loop to the threads that take them.

On the loop, the asyncio subscription calls this object as a plain callback (inline, no task): it applies the
pending limits (a message over them is dropped and counted, as the asyncio subscription does) and puts the message
in a ``queue.SimpleQueue``. Threads take from that queue: a callback worker, or whoever iterates. The end (the
subscription closed, with or without an error) is a marker after the last message, left in place for every later
taker. The counters are written by one side each (received on the loop, taken under a lock), so no update is lost.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ..errors import InvalidOptionError, NatsTimeoutError, SlowConsumerError, SubscriptionClosedError
from ..msg import Msg

__all__ = ["END", "Delivery", "End"]

T = TypeVar("T")


class End:
    """The end of a queue of items: ``error`` is what ended it (None after a normal end)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


END = End(None)


def check_timeout(timeout: float | None) -> None:
    """``InvalidOptionError`` unless ``timeout`` is None or a number of seconds >= 0."""
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0):
        raise InvalidOptionError(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}")


class Delivery(Generic[T]):
    """Loop side: ``__call__(msg)``; thread side: ``take()``, ``items()``."""

    def __init__(
        self,
        subject: str,
        wrap: Callable[[Msg], T],
        msgs_limit: int | None,
        bytes_limit: int | None,
        report_slow: Callable[[SlowConsumerError], None],
    ) -> None:
        self._subject = subject
        self._report_slow = report_slow
        self.sid = 0
        self._wrap = wrap
        self._queue: queue.SimpleQueue[Msg | End] = queue.SimpleQueue()
        self._put = self._queue.put
        self._msgs_limit = msgs_limit
        self._bytes_limit = bytes_limit
        self._lock = threading.Lock()
        self.received_msgs = 0  # loop only
        self.received_bytes = 0
        self.taken_msgs = 0  # takers only, under _lock
        self.taken_bytes = 0
        self.dropped = 0
        self._slow_reported = False
        self.ended = False

    @property
    def pending(self) -> int:
        return self.received_msgs - self.taken_msgs

    @property
    def pending_bytes(self) -> int:
        return self.received_bytes - self.taken_bytes

    # -- the loop -----------------------------------------------------------------------------------------------
    def __call__(self, msg: Msg) -> None:
        size = len(msg.data)
        if (self._msgs_limit is not None and self.received_msgs - self.taken_msgs >= self._msgs_limit) or (
            self._bytes_limit is not None and self.received_bytes - self.taken_bytes + size > self._bytes_limit
        ):
            self._drop()
            return
        self._slow_reported = False
        self.received_msgs += 1
        self.received_bytes += size
        self._put(msg)

    def _drop(self) -> None:
        self.dropped += 1
        if not self._slow_reported:
            self._slow_reported = True  # once per episode, as the asyncio subscription reports it
            self._report_slow(
                SlowConsumerError(
                    f"slow consumer: subscription {self._subject!r} (sid {self.sid}) dropped a message",
                    sid=self.sid,
                    subject=self._subject,
                    pending_msgs=self.pending,
                    pending_bytes=self.pending_bytes,
                )
            )

    def end(self, error: BaseException | None) -> None:
        """No message comes after this (the subscription closed; ``error`` is what closed it, if anything)."""
        if not self.ended:
            self.ended = True
            self._put(End(error) if error is not None else END)

    # -- the threads --------------------------------------------------------------------------------------------
    def take(self, timeout: float | None = None) -> T | End:
        """The next message (wrapped), or the end marker; ``NatsTimeoutError`` after ``timeout`` seconds."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise NatsTimeoutError(f"no message on {self._subject!r} within {timeout} s") from None
        if isinstance(item, End):
            self._put(item)  # every later taker finds it too
            return item
        with self._lock:
            self.taken_msgs += 1
            self.taken_bytes += len(item.data)
        return self._wrap(item)

    def next_msg(self, timeout: float | None) -> T:
        """``take()`` for a reader: the end raises (``SubscriptionClosedError``, or what closed the subscription)."""
        item = self.take(timeout)
        if isinstance(item, End):
            if item.error is not None:
                raise item.error
            raise SubscriptionClosedError("subscription is closed")
        return item

    def items(self) -> Iterator[T]:
        """Every message until the end (what a callback worker iterates)."""
        take = self.take
        while True:
            item = take(None)
            if isinstance(item, End):
                return
            yield item
