"""The hand-off from any thread to the loop: publishes (and acks, responses, unsubscribes) in one FIFO.

A thread appends ``(fn, a, b)`` to a deque (atomic under the GIL) and wakes the loop only when no drain is pending
already, so a burst of publishes costs one ``call_soon_threadsafe``. The loop's drain calls ``fn(a, b)`` for each
item in order (for a plain publish, ``fn`` is the connection's own ``publish``): the order each thread put things
in is the order they reach the socket.

The backlog is bounded: a thread finding it crowded waits for the loop, and when the loop cannot write (the
connection's ``pending_bytes_limit`` is reached while disconnected or while the socket is backed up) the publish
raises ``OutboundBufferLimitError`` instead, as the asyncio publish does. Large payloads are also bounded in bytes.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import sys
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from itertools import repeat, starmap
from typing import Any

from ..errors import ConnectionClosedError, NatsTimeoutError, OutboundBufferLimitError
from .runner import LoopRunner

__all__ = ["BIG_PAYLOAD", "CROWDED", "Outbox"]

logger = logging.getLogger("cnats")

CROWDED = 16_384  # queued items past which a publishing thread waits for the loop to catch up
BIG_PAYLOAD = 1024  # payloads above this size are also counted in bytes (bounded by pending_bytes_limit)
_RETRY_FIRST = 0.001  # while the outbound buffer is full, the drain is retried after this, doubling up to _RETRY_MAX
_RETRY_MAX = 0.05
_WAIT_SLICE = 0.1  # a waiting thread looks at the connection's state at least this often
_ROUNDS = 4  # what producers add while a batch is written is taken in the same drain, this many times at most

Item = tuple[Callable[[Any, Any], object], Any, Any]


def _call(fn: Callable[[], object], _: object) -> None:
    fn()


if sys.version_info >= (3, 11):
    _apply = operator.call  # _apply(fn, a, b) is fn(a, b), in C
else:  # pragma: no cover - Python 3.10

    def _apply(fn: Callable[[Any, Any], object], a: Any, b: Any) -> object:
        return fn(a, b)


class Outbox:
    """One per blocking connection."""

    def __init__(self, runner: LoopRunner, publish: Callable[..., None], bytes_limit: int) -> None:
        self._runner = runner
        self._publish = publish
        self.items: deque[Item] = deque()
        self.waking = False  # a drain is scheduled or under way: an item appended now needs no wake-up
        self.stalled = False  # the outbound buffer was full at the last attempt
        self._retry_delay = _RETRY_FIRST
        self._retry_handle: asyncio.TimerHandle | None = None
        self._room = threading.Condition()
        self._waiters = 0
        self._big_bytes = 0
        self._bytes_limit = max(bytes_limit, 1)

    # -- any thread ---------------------------------------------------------------------------------------------
    def wake(self) -> None:
        """Schedule a drain (the caller saw ``waking`` False, just after appending)."""
        self.waking = True
        if not self._runner.call_soon(self.drain):
            self.waking = False
            raise ConnectionClosedError("connection closed")  # the loop is gone (closed, or a forked process)

    def push(self, fn: Callable[[Any, Any], object], a: Any, b: Any) -> None:
        """Queue ``fn(a, b)`` for the loop (what publish does inline, for the less frequent items)."""
        self.items.append((fn, a, b))
        if not self.waking:
            self.wake()
        elif len(self.items) >= CROWDED:
            self.wait_for_room()

    def push_call(self, fn: Callable[[], object]) -> None:
        """Queue ``fn()`` for the loop, in order with the publishes of this thread."""
        self.push(_call, fn, None)

    def push_big(self, subject: str, payload: bytes, reply: str | None, headers: Any) -> None:
        """A large payload: counted in bytes, so that what waits in the backlog stays bounded."""
        size = len(payload)
        with self._room:
            while self._big_bytes and self._big_bytes + size > self._bytes_limit and self._wait_locked():
                pass
            self._big_bytes += size
        self.push(self._publish_big, subject, (payload, reply, headers, size))

    def wait_for_room(self) -> None:
        """Wait until the loop has taken the backlog, or raise what the asyncio publish raises when it cannot."""
        with self._room:
            while len(self.items) >= CROWDED and self._wait_locked():
                pass

    def _wait_locked(self) -> bool:
        """Wait a while for the loop (holding ``_room``); False when waiting is pointless."""
        if self.stalled:
            raise OutboundBufferLimitError(
                "outbound buffer is full (pending_bytes_limit): flush() and retry, or wait for the reconnect"
            )
        if asyncio._get_running_loop() is not None or threading.current_thread() is self._runner.thread:
            # never block a thread that runs an event loop: tell it as the asyncio publish would
            raise OutboundBufferLimitError("the loop of this connection is behind: flush() and retry")
        if not self._runner.is_running:
            return False  # the connection is gone: what was queued is dropped with it
        self._waiters += 1
        try:
            self._room.wait(_WAIT_SLICE)
        finally:
            self._waiters -= 1
        return True

    # -- the loop -----------------------------------------------------------------------------------------------
    def drain(self) -> bool:
        """Carry out everything queued so far, in order (and what producers add meanwhile, a few rounds); False when
        the outbound buffer filled up first (the rest is retried shortly, and publishes raise until then)."""
        items = self.items
        for _ in range(_ROUNDS):
            if not self._run_batch(items):
                return False
            self.waking = False  # from here on, an item appended schedules a drain of its own
            if not items:
                return True
            self.waking = True  # taken in this round: no wake-up needed
        self._runner.loop.call_soon(self.drain)  # the producers keep up: the loop's own I/O goes first
        return True

    def _run_batch(self, items: deque[Item]) -> bool:
        # Taken and carried out by C loops (no Python frame per item): a list iterator knows where a failure was.
        batch = list(starmap(items.popleft, repeat((), len(items))))
        rest = iter(batch)
        failed: list[tuple[BaseException, Any, Any]] = []
        try:
            while True:
                try:
                    deque(starmap(_apply, rest), 0)
                    break
                except OutboundBufferLimitError:
                    unsent = [_current(batch, rest), *rest]
                    items.extendleft(reversed(unsent))  # first again, in their order
                    self._stall()
                    return False
                except Exception as exc:  # noqa: BLE001 - the caller has returned: nobody else can be told
                    fn, a, _ = _current(batch, rest)
                    failed.append((exc, fn, a))
        finally:
            if self._waiters:
                with self._room:
                    self._room.notify_all()
            if failed:
                _dropped(failed)
        if self.stalled:
            self.stalled = False
            self._retry_delay = _RETRY_FIRST
        return True

    def _stall(self) -> None:
        self.stalled = True
        self.waking = True  # the retry below takes over: producers need not wake the loop
        if self._retry_handle is None:
            delay = self._retry_delay
            self._retry_delay = min(delay * 2, _RETRY_MAX)
            self._retry_handle = self._runner.loop.call_later(delay, self._retry)

    def _retry(self) -> None:
        self._retry_handle = None
        self.drain()

    def _publish_big(self, subject: str, rest: tuple[bytes, str | None, Any, int]) -> None:
        payload, reply, headers, size = rest
        try:
            self._publish(subject, payload, reply=reply, headers=headers)
        except OutboundBufferLimitError:
            raise  # queued again: still counted
        except BaseException:
            self._release(size)
            raise
        self._release(size)

    def _release(self, size: int) -> None:
        with self._room:
            self._big_bytes -= size
            if self._waiters:
                self._room.notify_all()

    async def flush(self, flush: Callable[[float | None], Awaitable[None]], timeout: float | None) -> None:
        """Everything queued before this call reaches the buffer, then ``flush`` (the connection's round trip)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout

        def left() -> float | None:
            if deadline is None:
                return None
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NatsTimeoutError(f"flush timed out after {timeout} s")
            return remaining

        while not self.drain():  # the buffer is full: let the server take it, then go on
            await flush(left())
        await flush(left())

    def discard(self) -> int:
        """Drop what is still queued (the connection closed); how many items were dropped."""
        count = len(self.items)
        self.items.clear()
        with self._room:
            self._big_bytes = 0
            self._room.notify_all()
        return count


def _current(batch: list[Item], rest: Iterator[Item]) -> Item:
    """The item whose call just raised: the one the list iterator ``rest`` handed out last."""
    return batch[len(batch) - operator.length_hint(rest) - 1]


def _dropped(failed: list[tuple[BaseException, Any, Any]]) -> None:
    """One line per drain: a close racing a busy publisher must not flood the log."""
    exc, fn, a = failed[0]
    what = "an operation" if fn is _call else f"a publish to {a!r}"
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
    logger.warning("cnats.sync: %s queued from a thread failed on the loop%s: %r", what, more, exc)
