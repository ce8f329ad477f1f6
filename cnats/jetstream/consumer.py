"""Pull consumers: ``Consumer.next``, ``fetch`` and ``consume``, and the ordered consumer.

A ``ConsumerMessages`` owns one inbox subscription whose plain callback receives everything the server sends for
its pull requests: messages (queued for the iterator or handed to the callback) and status messages (100 idle
heartbeat, 404/408 the pull ended, 409 the pull or the consumer had a problem), which are never yielded. ``consume``
keeps pulls outstanding: it asks for more when what is still expected falls under the thresholds.

Lifecycle: the machinery (``_Puller``) is owned by the connection's scope: ``nc.close()`` ends it (the iterator
hands out what it holds, then ends), ``nc.drain()`` drains it, and every background task (a callback's, a recovery)
is started through the scope. The ``ConsumerMessages`` the user holds is a thin front that nothing else references,
so that dropping it unread stops the pulling.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from ..callbacks import FAILED, Callback, discard_unawaited
from ..errors import (
    ConnectionClosedError,
    ConsumerNotFoundError,
    InvalidOptionError,
    JetStreamApiError,
    JetStreamIdleHeartbeatError,
    NatsError,
    NoRespondersError,
    StreamNotFoundError,
)
from ..events import Events, Status, StatusHub
from ..headers import Headers
from ..lifecycle import current_task
from ..nuid import nuid
from ..protocol import MessageQueue, MessagesBase, OrderedCursor, PullerBase, hide_owned, reveal
from .api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy, PriorityPolicy, ReplayPolicy
from .apis import ConsumerAPI, StreamAPI, check_group
from .context import JetStreamContext, check_name
from .jsmsg import JsMsg
from .model import JsonModel, seconds_to_ns

if TYPE_CHECKING:
    from ..subscription import Subscription

__all__ = [
    "Consumer",
    "ConsumerDebugEvents",
    "ConsumerEvents",
    "ConsumerMessages",
    "ConsumerStatus",
    "Consumers",
    "OrderedConsumerOptions",
]

logger = logging.getLogger("cnats")


# what a puller keeps to itself, besides builtin containers (see hide_owned)
_PRIVATE_PARTS = (MessageQueue, StatusHub, weakref.WeakSet, asyncio.Future)
_RECREATE_RETRY = 0.5  # seconds between attempts to recreate an ordered consumer's server consumer


class ConsumerEvents(str, Enum):
    """Status events of a consumer's messages (`messages.status()`): missed heartbeats, consumer or stream gone, ordered
    consumer recreated.
    """

    HEARTBEATS_MISSED = "heartbeats_missed"
    CONSUMER_NOT_FOUND = "consumer_not_found"
    STREAM_NOT_FOUND = "stream_not_found"
    CONSUMER_DELETED = "consumer_deleted"
    ORDERED_CONSUMER_RECREATED = "ordered_consumer_recreated"
    NO_RESPONDERS = "no_responders"


class ConsumerDebugEvents(str, Enum):
    """Diagnostic status events of a consumer's messages: discarded and reset pulls, next requests."""

    DEBUG_EVENT = "debug"
    DISCARD = "discard"
    RESET = "reset"
    NEXT = "next"


@dataclass(frozen=True)
class ConsumerStatus:
    """One status event of a consumer's messages: its type and data."""

    type: ConsumerEvents | ConsumerDebugEvents
    data: Any


@dataclass(kw_only=True)
class OrderedConsumerOptions:
    """Options of an ordered consumer (`js.consumers.get(stream)` without a name): filters, delivery start, replay."""

    name_prefix: str | None = None
    filter_subjects: str | list[str] | None = None
    deliver_policy: DeliverPolicy | None = None
    opt_start_seq: int | None = None
    opt_start_time: datetime | None = None
    replay_policy: ReplayPolicy | None = None
    inactive_threshold: float | None = None
    headers_only: bool | None = None


JsCallback = Callable[[JsMsg], Awaitable[None] | None]

# A fetch whose pull nothing took asks again this many times, 50, 100 and 200 ms later, before it fails with
# NoRespondersError: a consumer just made (by this client or another) is not known at once on every server.
_UNANSWERED_RETRIES = 3
_UNANSWERED_FIRST_DELAY = 0.05


# A consume whose next message is larger than its max_bytes (status 409 "Message Size Exceeds MaxBytes" to a pull
# for the whole window that used none of it) gets the same answer to every pull until that message is gone: it asks
# again 50 ms later, then twice as long each time, at most a second apart (and never further apart than its idle
# heartbeat, which would count the wait as a miss). A pull that used some of its bytes, or that asked for less than
# the whole window, is answered so in the normal course of a consume by bytes: the next pull asks for more at once.
_OVERSIZE_FIRST_DELAY = 0.05
_OVERSIZE_MAX_DELAY = 1.0

# A fetch whose pull lost its pin (status 423) pulls again for what is left of its time, unless less than this is.
_MIN_REPULL_TIME = 0.5


@dataclass(frozen=True)
class _PullGroup:
    """The priority-group fields of a puller's pulls (server 2.11+), and whether its consumer pins a client."""

    group: str
    min_pending: int | None
    min_ack_pending: int | None
    priority: int | None
    pinned: bool

    def tail(self) -> bytes:
        """The group's fields as the end of a pull request's JSON (``,"group":...``)."""
        fields: dict[str, Any] = {"group": self.group}
        if self.min_pending is not None:
            fields["min_pending"] = self.min_pending
        if self.min_ack_pending is not None:
            fields["min_ack_pending"] = self.min_ack_pending
        if self.priority is not None:
            fields["priority"] = self.priority
        return b"," + json.dumps(fields, separators=(",", ":")).encode()[1:-1]


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidOptionError(f"{what} must be a positive integer, got {value!r}")
    return value


def _pull_group(
    group: str | None, min_pending: int | None, min_ack_pending: int | None, priority: int | None, pinned: bool
) -> _PullGroup:
    """The checked priority-group options of a pull."""
    if group is None:
        raise InvalidOptionError("min_pending, min_ack_pending and priority need a priority group (group=...)")
    check_group(group)
    if min_pending is not None:
        _count(min_pending, "min_pending")
    if min_ack_pending is not None:
        _count(min_ack_pending, "min_ack_pending")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9):
        raise InvalidOptionError(f"priority must be an integer from 0 to 9, got {priority!r}")
    return _PullGroup(group, min_pending, min_ack_pending, priority, pinned)


def _pull_options(
    max_messages: int | None, max_bytes: int | None, expires: float, idle_heartbeat: float | None
) -> tuple[int, int | None, float, float]:
    if max_messages is not None and max_bytes is not None:
        raise InvalidOptionError("only specify one of max_messages or max_bytes")
    if expires < 1.0:
        raise InvalidOptionError("expires should be at least 1 second")
    msgs = max_messages if max_messages is not None else 100
    if msgs <= 0:
        raise InvalidOptionError("max_messages must be greater than 0")
    if max_bytes is not None and max_bytes <= 0:
        raise InvalidOptionError("max_bytes must be greater than 0")
    heartbeat = idle_heartbeat if idle_heartbeat is not None else min(expires / 2, 30.0)
    return msgs, max_bytes, expires, heartbeat


class _Puller(PullerBase):
    """The machinery behind a ``ConsumerMessages``: the inbox subscription, the pulls, the timers, the recovery task
    and the queue. The per-message part (building the ``JsMsg``, the pull accounting, the ordered check, queueing)
    is ``PullerBase``, in the protocol core; it calls back the methods here for what is rare.

    The connection's scope owns it (and the subscription's sink, its timers and its tasks reference it), while the
    user holds the ``ConsumerMessages`` in front of it, which nothing here references: an iterator its owner drops
    (``break`` out of ``async for``, an exception, garbage collection) is collected, and its finalizer stops this.
    """

    def __init__(
        self,
        consumer: Consumer,
        *,
        continuous: bool,
        max_messages: int,
        max_bytes: int | None,
        expires: float,
        idle_heartbeat: float,
        threshold_messages: int | None = None,
        threshold_bytes: int | None = None,
        callback: JsCallback | None = None,
        abort_on_missing_resource: bool = False,
    ) -> None:
        ctx = consumer._ctx
        port = ctx.port
        if port.scope.is_closed:
            raise ConnectionClosedError()
        self._consumer = consumer
        self._port = port
        self._nc = ctx._nc  # what a JsMsg acknowledges through (public API)
        self._loop = port.loop
        self._continuous = continuous
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._expires = expires
        self._heartbeat = idle_heartbeat
        # what every pull request of this puller ends with (after its batch and max_bytes)
        self._tail = b',"expires":%d' % seconds_to_ns(expires)
        if idle_heartbeat:
            self._tail += b',"idle_heartbeat":%d' % seconds_to_ns(idle_heartbeat)
        self._next_for: str | None = None  # the consumer name _next_subject was built for
        self._next_subject = ""
        self._threshold_messages = (
            threshold_messages if threshold_messages is not None else max(1, int(max_messages * 0.75))
        )
        self._threshold_bytes = (
            threshold_bytes if threshold_bytes is not None else (int(max_bytes * 0.75) if max_bytes else 0)
        )
        self._jsmsg_type = JsMsg
        self._adapter: Callback[JsMsg] | None = None
        # A callback known to be asynchronous (or a plain one that returned an awaitable) is fed through the queue
        # by one task; a plain one runs inline on the read path.
        self._queue_callbacks = False
        if callback is not None:
            self._adapter = Callback(callback, self._callback_failed)
            self._queue_callbacks = self._adapter.is_async
        self._abort_on_missing = abort_on_missing_resource
        self.received = 0
        self.processed = 0
        self._pending_msgs = 0  # messages still expected from the outstanding pulls
        self._pending_bytes = 0
        self._queue: deque[JsMsg] = MessageQueue()  # a deque in the pure core; same methods compiled
        self._queued_bytes = 0
        self._last_size = 0
        self._on_arrival: Callable[[JsMsg], None] | None = None  # a hook for the views (KV on_initialized)
        self._waiter: asyncio.Future[None] | None = None
        self._live = True  # pulling, watching heartbeats and recovering (False once draining or ended)
        self._refilling = continuous  # _refill may pull (continuous and live): one check per message
        self._done = False  # nothing more is received; the iterator ends after what is queued
        self._draining = False
        self._error: BaseException | None = None
        self._closed: asyncio.Future[Exception | None] = self._loop.create_future()
        self._status: StatusHub[ConsumerStatus] = StatusHub()
        self._context = contextvars.copy_context()  # what its recoveries start in (the heartbeat clock's is not)
        self._activity = 0  # bumped per arrival and per pull (PullerBase); the connection's heartbeat clock compares it
        self._hb_seen = self._hb_misses = 0  # the heartbeat clock's (cnats/heartbeats.py)
        self._hb_since = 0.0
        self._hb_watched = False
        self._js_timeout = ctx.options.timeout
        # only an ordered consumer may refuse a delivery: a gap, or one from a server consumer it replaced
        self._cursor = consumer._cursor if isinstance(consumer, OrderedConsumer) else None
        self._expiry_timer: asyncio.TimerHandle | None = None
        self._retry_timer: asyncio.TimerHandle | None = None
        self._unanswered = 0  # a fetch's pulls that nothing took (no responders) so far
        self._oversize_timer: asyncio.TimerHandle | None = None  # the wait after a message too large for max_bytes
        self._oversize_delay = 0.0
        self._oversize_received = -1  # ``received`` at the last such answer: the wait grows while it is unchanged
        self._task: asyncio.Task[None] | None = None  # the callback task
        self._recovery: asyncio.Task[None] | None = None
        self._recover_again = False
        self._sub: Subscription = port.subscribe(port.new_inbox(), None, self)  # PullerBase.__call__
        if self._queue_callbacks:
            self._start_callback_task(None)
        # the connection's heartbeat clock watches its heartbeats and tells it of disconnects and reconnects
        port.heartbeats.join(self)
        port.scope.adopt(self)
        self._front_watched = False  # an iterator the user holds: stop when it is collected unread
        self._hidden: list[object] = []

    def _front_made(self, front: ConsumerMessages) -> None:
        """``front`` is what the user holds: when it is collected unread (its finalizer calls ``_front_collected``;
        a weak reference would be one more object for every full collection to walk), stop. Then a consume, which
        runs for long and is held by the scope until it ends, hides what only it references from the collector:
        every full collection would walk it (10,000 consumers are a few hundred thousand objects). Given back at the
        end."""
        self._front_watched = self._adapter is None
        if self._continuous and self._live:
            # (the puller is listed by the connection's scope and heartbeat clock until it stops)
            hidden = hide_owned((self, self._context), _PRIVATE_PARTS)
            # extended in place (assigning a list would put the hidden instance dict back on the collector's lists),
            # and only now (a reference to _hidden held meanwhile would have kept it from being hidden)
            self._hidden.extend(hidden)
            if self._front_watched:
                # (an iterator references only this pull; one given a callback is left alone: the callback may lead
                # back to it)
                self._hide_front(front)
            # the Consumer the user holds (a dozen references for each full collection to follow; before Python
            # 3.11 its attribute dictionary too): this pull references it, and the connection holds this pull until
            # it ends, so no collection could free it meanwhile. Given back with the rest (by whichever of its pulls
            # hid it; another one running meanwhile finds it hidden already).
            self._hidden.extend(hide_owned((self._consumer,), ()))

    def _front_collected(self) -> None:
        """The front was collected unread: stop, on the loop (a collection may happen anywhere, even in the middle
        of the connection's own bookkeeping, or on another thread)."""
        self._front_gone()
        if self._done or not self._front_watched:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs any more
            self._loop.call_soon_threadsafe(self._dropped)

    def _name(self) -> str:
        return f"{self._consumer.stream}/{self._consumer.name}"

    def _arrival_hook(self) -> Callable[[JsMsg], None] | None:
        return self._on_arrival

    def _set_arrival_hook(self, hook: Callable[[JsMsg], None] | None) -> None:
        self._on_arrival = hook

    # -- pulling ------------------------------------------------------------------------------------------------
    def _pull(self, batch: int, max_bytes: int | None) -> None:
        # A continuous consume pulls every few hundred messages: the request is formatted from its fixed tail, and
        # the subject is built again only when an ordered consumer has moved to a new server consumer.
        by_bytes = b"" if max_bytes is None else b',"max_bytes":%d' % max_bytes
        request = b'{"batch":%d%s%s}' % (batch, by_bytes, self._tail)
        consumer = self._consumer
        if consumer.name != self._next_for:
            self._next_for = consumer.name
            self._next_subject = f"{consumer._ctx.api_prefix}.CONSUMER.MSG.NEXT.{consumer.stream}.{consumer.name}"
        self._nc.publish(self._next_subject, request, reply=self._sub.subject)
        if self._continuous:
            # a refill is the server's credit: sent now, not when the reader next yields to the event loop (it
            # may be taking a long run of queued messages, and the server sits idle without credit meanwhile)
            self._port.write_now()
        self._pending_msgs += batch
        if max_bytes is not None:
            self._pending_bytes += max_bytes
        if self._status.active:
            self._status.emit(ConsumerStatus(ConsumerDebugEvents.NEXT, json.loads(request)))
        self._arm_heartbeat()
        if not self._continuous:
            # the server ends the pull with a 408 at expiry; this is the backstop if that answer is lost
            self._expiry_timer = self._loop.call_later(self._expires + max(1.0, self._heartbeat), self._end, None)

    def _start(self) -> None:
        self._pull(self._max_messages, self._max_bytes)

    def _pull_again(self) -> None:
        """A fetch's pull that nothing took, asked again (see ``_on_status``)."""
        self._retry_timer = None
        if not self._done:
            self._start()

    def _back_off_oversize(self) -> None:
        """The next message does not fit in a pull's ``max_bytes``: ask again later, not at once (the answer would be
        the same until the message is gone), and sooner again once messages flow. Meanwhile nothing pulls: neither
        an arrival nor taking what is queued."""
        if self.received != self._oversize_received:
            self._oversize_received = self.received
            self._oversize_delay = 0.0
        if self._oversize_timer is not None:
            return  # (another pull that was on its way got the same answer)
        limit = min(_OVERSIZE_MAX_DELAY, self._heartbeat) if self._heartbeat else _OVERSIZE_MAX_DELAY
        self._oversize_delay = min(max(2 * self._oversize_delay, _OVERSIZE_FIRST_DELAY), limit)
        self._refilling = False
        self._oversize_timer = self._loop.call_later(self._oversize_delay, self._pull_after_oversize)

    def _pull_after_oversize(self) -> None:
        self._oversize_timer = None
        if self._done or not self._live:
            return
        self._refilling = True
        self._refill()

    def _arm_heartbeat(self) -> None:
        """Note activity now, and make sure the connection's heartbeat clock watches this puller: it compares the
        activity count with the one it saw last, and silence for two heartbeat intervals is a miss (a message costs
        one increment, no clock read)."""
        self._activity += 1
        if not self._hb_watched and self._heartbeat and self._live:
            self._port.heartbeats.watch(self)

    def _heartbeats_missed(self) -> None:
        """The clock's call: nothing arrived for two intervals (``_hb_misses`` times in a row). The watch starts
        again with the next pull (a recovery's, say), which does not count as something heard: a miss after it
        is the next in the row."""
        self._hb_watched = False
        if self._live:
            self._context.run(self._heartbeat_missed)

    def _heartbeat_missed(self) -> None:
        self._status.emit(ConsumerStatus(ConsumerEvents.HEARTBEATS_MISSED, self._hb_misses))
        if not self._continuous:
            self._end(JetStreamIdleHeartbeatError("idle heartbeats missed"))
            return
        # Whatever was outstanding is gone: ask again.
        self._pending_msgs = 0
        self._pending_bytes = 0
        self._schedule_recover()

    def _on_connection_status(self, status: Status) -> None:
        """The heartbeat clock's relay of a disconnect or a reconnect (a fetch lets its heartbeats tell)."""
        if not self._live or not self._continuous:
            return
        if status.type == Events.DISCONNECT:
            # nothing can arrive while offline: missed heartbeats would only be noise
            self._hb_watched = False
        elif status.type == Events.RECONNECT:
            # The pulls may have died with the old server (a restart forgets them): ask again now rather than
            # after a heartbeat interval; an ordered consumer is recreated where it left off.
            self._pending_msgs = 0
            self._pending_bytes = 0
            self._schedule_recover()

    # -- recovering -------------------------------------------------------------------------------------------
    def _schedule_recover(self) -> None:
        """Recover on the scope's task (held, cancelled by stop() and by the connection's close). One recovery at a
        time; a request arriving meanwhile runs once more afterwards (its cause may be newer)."""
        if not self._live:
            return
        if self._recovery is not None:
            self._recover_again = True
            return
        self._recover_again = False
        self._recovery = self._port.scope.spawn(self._recover(), f"consumer recover {self._name()}")

    async def _recover(self) -> None:
        try:
            while True:
                self._recover_again = False
                await self._recover_once()
                if not self._recover_again or not self._live:
                    return
        finally:
            if self._recovery is asyncio.current_task():
                self._recovery = None

    async def _recover_once(self) -> None:
        try:
            await self._consumer._before_repull()
        except (ConsumerNotFoundError, StreamNotFoundError) as exc:
            event = (
                ConsumerEvents.STREAM_NOT_FOUND
                if isinstance(exc, StreamNotFoundError)
                else ConsumerEvents.CONSUMER_NOT_FOUND
            )
            self._status.emit(ConsumerStatus(event, str(exc)))
            if self._abort_on_missing:
                self._end(exc)
                return
        except NatsError as exc:
            self._status.emit(ConsumerStatus(ConsumerDebugEvents.DEBUG_EVENT, str(exc)))
        if not self._live:
            return
        if self._consumer._awaiting_replacement():
            # an ordered consumer's replacement could not be made yet (a leader election, say): pulling from the
            # old one would only bring messages it must discard, so try again shortly
            self._retry_timer = self._loop.call_later(_RECREATE_RETRY, self._retry_recover)
            return
        if self._consumer._ordered_reset_needed:
            self._pending_msgs = 0
            self._pending_bytes = 0
        if self._pending_msgs == 0:
            self._start()
        else:
            self._arm_heartbeat()

    def _retry_recover(self) -> None:
        self._retry_timer = None
        self._schedule_recover()

    # -- receiving ----------------------------------------------------------------------------------------------
    if TYPE_CHECKING:  # PullerBase's, typed for what this puller queues

        def _take_nowait(self) -> JsMsg | None: ...

    def _deliver_inline(self, jsmsg: JsMsg) -> None:
        """A plain callback runs on the read path (``PullerBase`` calls this for each message)."""
        adapter = self._adapter
        assert adapter is not None
        result = adapter.call_inline(jsmsg)
        self.processed += 1
        if result is not None and result is not FAILED:
            # A plain-looking callback returned an awaitable (a lambda or partial over a coroutine function): it is
            # awaited on the callback task, and from now on messages queue for that task, in order.
            self._queue_callbacks = True
            self._start_callback_task((jsmsg, result))
        self._refill()

    def _ordered_gap(self, delivery_sequence: int) -> None:
        """The ordered consumer saw a gap (``PullerBase`` refused the message): recreate it where it left off."""
        self._status.emit(ConsumerStatus(ConsumerDebugEvents.RESET, delivery_sequence))
        self._pending_msgs = 0
        self._pending_bytes = 0
        assert self._cursor is not None
        self._cursor.resetting = True  # nothing more from this consumer is accepted; _create deletes it
        self._schedule_recover()

    def _on_status(self, code: int, description: str, headers: Headers) -> None:
        if code == 100:  # idle heartbeat (flow control does not apply to pull consumers)
            return
        left_msgs = int(headers.get("Nats-Pending-Messages") or 0)
        left_bytes = int(headers.get("Nats-Pending-Bytes") or 0)
        if code in (404, 408):
            if not self._continuous:
                self._end(None)
                return
            self._pending_msgs = max(0, self._pending_msgs - left_msgs)
            self._pending_bytes = max(0, self._pending_bytes - left_bytes)
            self._status.emit(
                ConsumerStatus(ConsumerDebugEvents.DISCARD, {"msgs_left": left_msgs, "bytes_left": left_bytes})
            )
            self._refill()
            return
        if code == 409:
            lowered = description.lower()
            if "consumer deleted" in lowered:
                self._status.emit(ConsumerStatus(ConsumerEvents.CONSUMER_DELETED, description))
                if not self._continuous or self._abort_on_missing:
                    self._end(ConsumerNotFoundError(description, description=description))
                    return
                self._pending_msgs = 0
                self._pending_bytes = 0
                self._schedule_recover()
                return
            if not self._continuous:
                self._end(None)
                return
            self._status.emit(ConsumerStatus(ConsumerDebugEvents.DEBUG_EVENT, f"{code} {description}"))
            self._pending_msgs = max(0, self._pending_msgs - left_msgs)
            self._pending_bytes = max(0, self._pending_bytes - left_bytes)
            max_bytes = self._max_bytes
            if "message size exceeds maxbytes" in lowered and max_bytes is not None and left_bytes >= max_bytes:
                # (a pull that delivered some and has too little left for the next, or that asked for less than the
                # whole window, is answered so in the normal course of a consume by bytes: the next asks for more)
                self._back_off_oversize()
                return
            self._refill()
            return
        if code == 400:
            # The server refused the pull itself (a priority group missing or not the consumer's, an option the
            # consumer's policy does not take...): every later pull would be refused the same way.
            self._status.emit(ConsumerStatus(ConsumerDebugEvents.DEBUG_EVENT, f"{code} {description}"))
            self._end(JetStreamApiError(description, status=code, description=description))
            return
        if code == 503:
            # Nobody took the pull (JetStream, the stream or the consumer is gone): a fetch ends with the error; a
            # consume forgets the pull and asks again when its heartbeat timer says nothing came.
            self._status.emit(ConsumerStatus(ConsumerEvents.NO_RESPONDERS, description or "no responders"))
            if not self._continuous:
                if self.received == 0 and self._unanswered < _UNANSWERED_RETRIES:
                    # A consumer made a moment ago may not be known yet on the server this client is connected to
                    # (its interest still crossing routes or gateways): ask again shortly before giving up.
                    self._unanswered += 1
                    self._pending_msgs = 0
                    self._pending_bytes = 0
                    if self._expiry_timer is not None:
                        self._expiry_timer.cancel()
                        self._expiry_timer = None
                    delay = _UNANSWERED_FIRST_DELAY * 2 ** (self._unanswered - 1)
                    self._retry_timer = self._loop.call_later(delay, self._pull_again)
                    return
                self._end(NoRespondersError())
                return
            self._pending_msgs = 0
            self._pending_bytes = 0
            return
        self._status.emit(ConsumerStatus(ConsumerDebugEvents.DEBUG_EVENT, f"{code} {description}"))

    # -- consuming ------------------------------------------------------------------------------------------------
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _next(self) -> JsMsg | None:
        while not self._queue:
            if self._done:
                return None
            waiter = self._waiter
            if waiter is None or waiter.done():
                waiter = self._waiter = self._loop.create_future()
            await asyncio.shield(waiter)
        return self._take_nowait()

    async def _anext_slow(self) -> JsMsg:
        msg = await self._next()
        if msg is None:
            self._queue_done()
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            raise StopAsyncIteration
        return msg

    def _callback_failed(self, exc: BaseException, msg: JsMsg) -> None:
        self._port.report_callback_error(exc, msg.subject, self._sub.sid)

    def _start_callback_task(self, first: tuple[JsMsg, Awaitable[Any]] | None) -> None:
        task = self._task = self._port.scope.spawn(self._run_callback(first), f"consume callback {self._name()}")
        if first is not None:
            pending = first[1]
            if task is None:
                discard_unawaited(pending)
            else:
                # cancelled before its first step (the connection closed at once): the awaitable was never awaited
                task.add_done_callback(lambda t: discard_unawaited(pending) if t.cancelled() else None)

    async def _run_callback(self, first: tuple[JsMsg, Awaitable[Any]] | None) -> None:
        adapter = self._adapter
        assert adapter is not None
        if first is not None:
            await adapter.call(first[0], first[1])
        call = adapter.call
        while True:
            msg = self._take_nowait()
            if msg is None:
                msg = await self._next()
                if msg is None:
                    break
            await call(msg)
        self._queue_done()

    # -- ending ---------------------------------------------------------------------------------------------------
    def _stop_work(self) -> None:
        """No more pulls, timers or recoveries (a recovery in flight is cancelled: a consumer it is creating is
        deleted by ``ConsumerAPI.add_owned``)."""
        self._live = False
        self._refilling = False
        self._port.heartbeats.leave(self)
        for timer in (self._expiry_timer, self._retry_timer, self._oversize_timer):
            if timer is not None:
                timer.cancel()
        self._expiry_timer = self._retry_timer = self._oversize_timer = None
        task, self._recovery = self._recovery, None
        if task is not None and task is not current_task():
            task.cancel()

    def _end(self, error: BaseException | None, *, wait_queue: bool = False) -> None:
        """Stop receiving; the iterator ends after what is queued (raising ``error``). ``closed`` resolves now, or
        with ``wait_queue`` (a drain) once what is queued has been taken."""
        if self._done:
            return
        self._done = True
        self._error = error
        self._stop_work()
        self._sub.unsubscribe()
        if self._consumer._active is self:
            self._consumer._active = None
        self._wake()
        self._status.close()
        if not (wait_queue or self._draining) or (not self._queue and self._task is None):
            self._queue_done()

    def _queue_done(self) -> None:
        if not self._closed.done():
            error = self._error
            self._closed.set_result(error if isinstance(error, Exception) else None)
            # (a drain's end waits for the queue: until then the connection's close still concerns it)
            self._port.scope.release(self)
            reveal(self._hidden)
            self._show_front()

    def _dropped(self) -> None:
        """The ConsumerMessages in front was collected unread: stop, and forget what is queued."""
        if self._done:
            return
        self._queue.clear()
        self._queued_bytes = 0
        self._end(None)

    def connection_closed(self, error: Exception | None) -> None:
        """The connection closed: an iterator hands out what it holds, then ends (raising ``error`` after a fatal
        close); a callback's queue is dropped (its task is cancelled by the connection)."""
        if self._adapter is not None:
            self._queue.clear()
            self._queued_bytes = 0
        if not self._done:
            self._end(error)
        elif error is not None and not self._closed.done():
            self._error = error  # a drain that did not finish: the end is the connection's
        self._queue_done()

    def drain_owned(self) -> Awaitable[None]:
        """The connection's drain: stop pulling, take what the server already sent (the inbox is drained), hand
        out what is queued, then end."""
        return self._drain()

    async def _drain(self) -> None:
        if not self._done and not self._draining:
            self._draining = True
            self._stop_work()
            # UNSUB, then a round trip: whatever the server sent before it has arrived (and is queued)
            with contextlib.suppress(NatsError):
                await self._sub.drain(None)
            self._end(None, wait_queue=True)
        await asyncio.shield(self._closed)


class _GroupPuller(_Puller):
    """A puller whose pulls name a priority group (server 2.11+). Its requests are formatted from the group's fields
    and, on a ``pinned_client`` consumer, the pin id: the one the server put on the messages (``Nats-Pin-Id``), kept
    by the ``Consumer`` and sent with every later pull of it. A pull refused for its pin (status 423: the server
    pinned someone else, or nobody yet) forgets the pin and is asked again without one. Only these pullers read the
    headers of what arrives (``_note_pin``, as the arrival hook), and only on a pinned consumer.
    """

    def __init__(self, consumer: Consumer, *, group: _PullGroup, **options: Any) -> None:
        super().__init__(consumer, **options)
        self._group = group
        self._group_tail = group.tail()
        self._timing = self._tail  # expires and idle_heartbeat, as the base formatted them
        self._deadline = self._loop.time() + self._expires  # a fetch pulls again (423) only within its time
        self._pin: str | None = None  # the pin id this puller's pulls went with (sent, or seen on their messages)
        self._user_arrival: Callable[[JsMsg], None] | None = None
        if group.pinned:
            self._on_arrival = self._note_pin

    def _arrival_hook(self) -> Callable[[JsMsg], None] | None:
        return self._user_arrival if self._group.pinned else self._on_arrival

    def _set_arrival_hook(self, hook: Callable[[JsMsg], None] | None) -> None:
        if self._group.pinned:
            self._user_arrival = hook  # called by _note_pin
        else:
            self._on_arrival = hook

    def _pull(self, batch: int, max_bytes: int | None) -> None:
        tail = self._timing + self._group_tail
        if self._group.pinned:
            pin = self._consumer._pins.get(self._group.group)
            if pin is not None:
                self._pin = pin
                tail += b',"id":' + json.dumps(pin).encode()
        self._tail = tail
        super()._pull(batch, max_bytes)

    def _note_pin(self, jsmsg: JsMsg) -> None:
        headers = jsmsg.headers
        if headers is not None:
            pin = headers.get("Nats-Pin-Id")
            if pin:
                self._pin = pin
                self._consumer._pins[self._group.group] = pin
        hook = self._user_arrival
        if hook is not None:
            hook(jsmsg)

    def _on_status(self, code: int, description: str, headers: Headers) -> None:
        if code != 423:
            super()._on_status(code, description, headers)
            return
        # The pin id is not (or no longer) the server's: forget it (unless a newer one was learned meanwhile) and
        # pull without it, a candidate for the next pin. "Nats-Wrong-Pin-Id" ends a waiting pull and says what it
        # still expected; "Nats-Pin-Id mismatch" refuses a pull as it arrives, all of it.
        self._status.emit(ConsumerStatus(ConsumerDebugEvents.DEBUG_EVENT, f"{code} {description}"))
        pins = self._consumer._pins
        if self._pin is not None and pins.get(self._group.group) == self._pin:
            del pins[self._group.group]
        self._pin = None
        left = headers.get("Nats-Pending-Messages")
        if not self._continuous:
            self._pull_rest()
            return
        if left:
            self._pending_msgs = max(0, self._pending_msgs - int(left))
            self._pending_bytes = max(0, self._pending_bytes - int(headers.get("Nats-Pending-Bytes") or 0))
        else:
            # which pull was refused is not said: ask again for everything
            self._pending_msgs = 0
            self._pending_bytes = 0
        self._refill()

    def _pull_rest(self) -> None:
        """A fetch's pull lost its pin: pull again, without a pin id, for what is still missing, within the time
        the fetch has left (its end comes when too little is left)."""
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None
        missing = self._max_messages - self.received
        missing_bytes = None if self._max_bytes is None else self._pending_bytes
        remaining = self._deadline - self._loop.time()
        if missing <= 0 or (missing_bytes is not None and missing_bytes <= 0) or remaining < _MIN_REPULL_TIME:
            self._end(None)
            return
        self._pending_msgs = 0
        self._pending_bytes = 0
        self._expires = remaining
        expires_ns = seconds_to_ns(remaining)
        self._timing = b',"expires":%d' % expires_ns
        if self._heartbeat:
            # the server refuses a heartbeat interval over half the expiry
            self._timing += b',"idle_heartbeat":%d' % min(seconds_to_ns(self._heartbeat), expires_ns // 2)
        self._pull(missing, missing_bytes)


_InfoOrNone = TypeVar("_InfoOrNone", bound="ConsumerInfo | None")


def _kept(info: _InfoOrNone) -> _InfoOrNone:
    """The info a consumer keeps: parsed JSON, plain data that cannot be part of a cycle, so off the collector's
    lists for good (a process may hold thousands of consumers, and each full collection would walk it)."""
    if info is not None:
        hide_owned((info,), (JsonModel,))
    return info


async def consume_window(
    consumer: OrderedConsumer, *, max_messages: int, max_bytes: int, expires: float, idle_heartbeat: float | None
) -> ConsumerMessages:
    """What the views read through (KV watchers and listings): ``consumer`` consuming with a window bounded both by
    messages and by bytes, which ``consume()`` does not offer (as in nats.js, it takes one or the other): many small
    entries at a time, never more than ``max_bytes`` of large ones. It pulls again when either falls to half on its
    way; at most a window waits unread and another is on its way."""
    return await consumer._consume_window(max_messages, max_bytes, expires, idle_heartbeat)


def held_internally(messages: ConsumerMessages) -> None:
    """``messages`` is read by the library itself (a KV watcher's or an object read's), never held by the user: it
    is freed only once its read has ended, and what stops a read left early is the finalizer of the view in front of
    it, so its own finalizer has nothing to stop."""
    messages._pull._front_watched = False


def hide_view(messages: ConsumerMessages, view: object) -> None:
    """``view`` reads ``messages`` (held internally) and references nothing the user gave: off the collector's lists
    until ``show_view``. The pull keeps a borrowed pointer to it, which ``view_gone`` clears."""
    messages._pull._hide_view(view)


def view_gone(messages: ConsumerMessages, view: object) -> None:
    """``view`` is being freed (its finalizer): the pull forgets it, if it was the one hidden."""
    messages._pull._view_gone(view)


def show_view(messages: ConsumerMessages) -> None:
    """The read has ended: the view hidden by ``hide_view``, if still alive, is back on the collector's lists."""
    messages._pull._show_view()


def _private_copy(options: OrderedConsumerOptions) -> OrderedConsumerOptions:
    """The options an ordered consumer reads each time it makes a server consumer: a copy (what the user changes
    later does not reach it), of plain values only, and so off the collector's lists for good (as ``_kept``)."""
    copy = replace(options)
    if isinstance(copy.filter_subjects, list):
        copy.filter_subjects = list(copy.filter_subjects)
    hide_owned((copy,), (OrderedConsumerOptions,))
    return copy


class ConsumerMessages(MessagesBase):
    """The messages of a ``fetch`` or ``consume``: an async iterator of ``JsMsg`` (or a callback's feed).

    The iterator ends (``StopAsyncIteration``) after ``stop()``/``close()``, at the end of a fetch, or once the
    connection closed or drained, after what it already holds; a fatal close raises the connection's error instead.
    Leaving it early stops it: ``async with`` and ``aclose()`` do it at once; an iterator that is no longer referenced
    (``break`` out of ``async for``) stops when collected: its inbox subscription is removed and no more pulls are
    sent. Messages delivered to a callback run until stopped, referenced or not.
    """

    __slots__ = ()

    _pull: _Puller

    def __init__(self, pull: _Puller) -> None:
        self._pull = pull
        pull._front_made(self)

    def __del__(self) -> None:
        # collected: an iterator left unread stops (messages delivered to a callback go on until stopped)
        pull = getattr(self, "_pull", None)  # (unset if construction failed)
        if pull is not None:
            pull._front_collected()

    # -- properties ---------------------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return len(self._pull._queue)

    @property
    def received(self) -> int:
        return self._pull.received

    @property
    def processed(self) -> int:
        return self._pull.processed

    @property
    def closed(self) -> asyncio.Future[Exception | None]:
        return self._pull._closed

    @property
    def _on_arrival(self) -> Callable[[JsMsg], None] | None:
        return self._pull._arrival_hook()

    @_on_arrival.setter
    def _on_arrival(self, hook: Callable[[JsMsg], None] | None) -> None:
        # (a hook must not reference this ConsumerMessages, or it can no longer be collected unread)
        self._pull._set_arrival_hook(hook)

    def status(self) -> AsyncIterator[ConsumerStatus]:
        """The status events of these messages (missed heartbeats, a consumer or stream gone, an ordered consumer
        recreated, and debug events), as an async iterator that ends when the messages end.

        Raises:
            Nothing: events are only reported, never raised.
        """
        return self._pull._status.listen()

    # -- iterating ----------------------------------------------------------------------------------------------
    def __aiter__(self) -> ConsumerMessages:
        if self._pull._adapter is not None:
            raise RuntimeError("messages delivered to a callback cannot be iterated")
        return self

    # __anext__ is MessagesBase's: a queued message at once (no coroutine), else the puller's slow path
    if TYPE_CHECKING:

        async def __anext__(self) -> JsMsg: ...
        def _take_nowait(self) -> JsMsg | None: ...

    async def __aenter__(self) -> ConsumerMessages:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- ending ---------------------------------------------------------------------------------------------------
    def stop(self, err: Exception | None = None) -> None:
        """Stop pulling; the iterator ends after what is queued (raising ``err`` if given).

        Raises:
            Nothing: stopping twice, or after the end, does nothing.
        """
        self._pull._end(err)

    async def close(self) -> Exception | None:
        """Stop pulling, let a callback finish what is queued; what ``closed`` resolves to.

        Raises:
            Nothing: an error that ended the messages is returned, not raised.
        """
        pull = self._pull
        pull._end(None)
        task = pull._task
        if task is not None and task is not current_task():
            await asyncio.gather(task, return_exceptions=True)
        return await asyncio.shield(pull._closed)

    async def aclose(self) -> None:
        """``close()`` under the name async iterators use.

        Raises:
            Nothing: as ``close()``.
        """
        await self.close()

    def __repr__(self) -> str:
        pull = self._pull
        return f"<ConsumerMessages {pull._name()} received={pull.received} pending={len(pull._queue)}>"


class Consumer:
    """A consumer on a stream (``js.consumers.get(stream, name)``), or an ordered consumer."""

    def __init__(self, ctx: JetStreamContext, info: ConsumerInfo | None, stream: str) -> None:
        self._ctx = ctx
        self._info = _kept(info)
        self.stream = stream
        self.name = info.name if info is not None else ""
        self._active: _Puller | None = None
        self._ordered_reset_needed = False
        self._pins: dict[str, str] = {}  # priority group -> the pin id the server gave this consumer object

    def _pull_group(
        self, group: str | None, min_pending: int | None, min_ack_pending: int | None, priority: int | None
    ) -> _PullGroup:
        """The checked priority-group options of a pull (one of them is given); pin ids are kept when the consumer
        pins a client."""
        info = self._info
        pinned = info is not None and info.config.priority_policy == PriorityPolicy.PINNED_CLIENT
        return _pull_group(group, min_pending, min_ack_pending, priority, pinned)

    # hooks the ordered consumer overrides
    def _awaiting_replacement(self) -> bool:
        return False

    async def _before_repull(self) -> None:
        await self.info()

    async def info(self, cached: bool = False) -> ConsumerInfo:
        """The consumer's info: the one fetched last with ``cached``, else fetched now. An ordered consumer creates its
        server consumer first if it has none yet.

        Raises:
            StreamNotFoundError: the stream does not exist (any more).
            ConsumerNotFoundError: the consumer does not exist (any more).
            JetStreamApiError: the server refused to create an ordered consumer's server consumer.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        if cached and self._info is not None:
            return self._info
        self._info = info = _kept(await ConsumerAPI(self._ctx).info(self.stream, self.name))
        return info

    async def delete(self) -> bool:
        """Delete the consumer on the server; True when the server reports success.

        Raises:
            InvalidNameError: an ordered consumer has no server consumer yet (nothing was fetched or consumed).
            StreamNotFoundError: the stream does not exist (any more).
            ConsumerNotFoundError: the consumer does not exist (any more).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        return await ConsumerAPI(self._ctx).delete(self.stream, self.name)

    async def next(
        self,
        *,
        expires: float = 30.0,
        idle_heartbeat: float | None = None,
        group: str | None = None,
        min_pending: int | None = None,
        min_ack_pending: int | None = None,
        priority: int | None = None,
    ) -> JsMsg | None:
        """One message, or None when none arrived before ``expires`` (``idle_heartbeat`` and the priority-group
        options ``group``, ``min_pending``, ``min_ack_pending`` and ``priority`` as for ``fetch``).

        Raises:
            InvalidOptionError: ``expires`` is less than 1 second, a priority-group option is not valid (see
                ``fetch``), or an ordered consumer is already consuming (or fetching), or is given a group.
            JetStreamIdleHeartbeatError: heartbeats from the server were missed.
            ConsumerNotFoundError: the consumer was deleted.
            NoRespondersError: nothing took the pull request (the consumer or its stream is gone).
            JetStreamApiError: the server refused the pull request (status 400: a priority group missing, not one of
                the consumer's, or an option its priority policy does not take).
            StreamNotFoundError: an ordered consumer's stream does not exist.
            JetStreamApiError: the server refused to create an ordered consumer's server consumer.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        messages = await self.fetch(
            max_messages=1,
            expires=expires,
            idle_heartbeat=idle_heartbeat,
            group=group,
            min_pending=min_pending,
            min_ack_pending=min_ack_pending,
            priority=priority,
        )
        async for msg in messages:
            await messages.close()
            return msg
        return None

    async def _prepare(self) -> None:
        """Before a fetch/consume (the ordered consumer creates its server consumer here)."""

    def _messages(self, pull: _Puller) -> ConsumerMessages:
        """Start ``pull`` (its first pull request) and put it in front of the user."""
        try:
            pull._start()
        except BaseException:
            pull._end(None)
            raise
        self._active = pull
        return ConsumerMessages(pull)

    async def fetch(
        self,
        *,
        max_messages: int | None = None,
        max_bytes: int | None = None,
        expires: float = 30.0,
        idle_heartbeat: float | None = None,
        group: str | None = None,
        min_pending: int | None = None,
        min_ack_pending: int | None = None,
        priority: int | None = None,
    ) -> ConsumerMessages:
        """At most ``max_messages`` messages (or ``max_bytes`` bytes) with one pull request, as an iterator that ends
        once they are received or ``expires`` seconds passed.

        On a consumer with priority groups (server 2.11+) every pull names one of them: ``group``. With the
        ``overflow`` policy the pull is served only while the consumer has at least ``min_pending`` messages
        pending or ``min_ack_pending`` acknowledgements outstanding (either suffices); with ``prioritized``, pulls
        of a lower ``priority`` (0 to 9, default 0) are served first. With ``pinned_client`` the server pins one
        client: this consumer object keeps the pin id its messages carry and sends it with its later pulls; a pull
        whose pin the server no longer honours (status 423) is asked again without it, within ``expires``.

        Raises:
            InvalidOptionError: both ``max_messages`` and ``max_bytes`` are given, one is not positive, ``expires`` is
                less than 1 second, ``min_pending``, ``min_ack_pending`` or ``priority`` is given without ``group``,
                ``group`` is not a valid group name (1 to 16 of ``A-Z a-z 0-9 - _ / =``), ``min_pending`` or
                ``min_ack_pending`` is not a positive integer, ``priority`` is not an integer from 0 to 9, or an
                ordered consumer is already consuming (or fetching), or is given a group.
            StreamNotFoundError: an ordered consumer's stream does not exist.
            JetStreamApiError: the server refused to create an ordered consumer's server consumer.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
            JetStreamIdleHeartbeatError: while iterating, heartbeats from the server were missed.
            ConsumerNotFoundError: while iterating, the consumer was deleted.
            NoRespondersError: while iterating, nothing took the pull request (the consumer or its stream is gone).
            JetStreamApiError: while iterating, the server refused the pull request (status 400: a priority group
                missing, not one of the consumer's, or an option its priority policy does not take).
            NatsError: while iterating, the connection closed with an error (a fatal close): that error.
        """
        msgs, nbytes, exp, hb = _pull_options(max_messages, max_bytes, expires, idle_heartbeat)
        grouped = group is not None or min_pending is not None or min_ack_pending is not None or priority is not None
        pull_group = self._pull_group(group, min_pending, min_ack_pending, priority) if grouped else None
        await self._prepare()
        pull: _Puller
        if pull_group is None:
            pull = _Puller(self, continuous=False, max_messages=msgs, max_bytes=nbytes, expires=exp, idle_heartbeat=hb)
        else:
            pull = _GroupPuller(
                self,
                group=pull_group,
                continuous=False,
                max_messages=msgs,
                max_bytes=nbytes,
                expires=exp,
                idle_heartbeat=hb,
            )
        return self._messages(pull)

    async def consume(
        self,
        *,
        max_messages: int | None = None,
        max_bytes: int | None = None,
        expires: float = 30.0,
        idle_heartbeat: float | None = None,
        threshold_messages: int | None = None,
        threshold_bytes: int | None = None,
        callback: JsCallback | None = None,
        abort_on_missing_resource: bool = False,
        bind: bool = False,
        group: str | None = None,
        min_pending: int | None = None,
        min_ack_pending: int | None = None,
        priority: int | None = None,
    ) -> ConsumerMessages:
        """Messages as they come, pulled ahead of the reader. ``callback`` may be a plain function (run inline),
        a coroutine function, or anything whose call returns an awaitable (awaited, in order, one at a time); an
        exception it raises is reported as a ``CALLBACK_ERROR`` status and consuming goes on.

        A consumer or stream that goes away is reported as a status event and waited for, unless
        ``abort_on_missing_resource`` is set: then the iteration ends with ``ConsumerNotFoundError`` or
        ``StreamNotFoundError``.

        ``group``, ``min_pending``, ``min_ack_pending`` and ``priority`` go with every pull, as for ``fetch``. On a
        ``pinned_client`` consumer the pin id is kept and sent with every later pull; when the server refuses it
        (status 423, reported as a debug status event) the pulls go on without it, candidates for the next pin.

        Raises:
            InvalidOptionError: both ``max_messages`` and ``max_bytes`` are given, one is not positive, ``expires`` is
                less than 1 second, a priority-group option is not valid (see ``fetch``), or an ordered consumer is
                given ``bind`` or a group, or is already fetching (or consuming).
            StreamNotFoundError: an ordered consumer's stream does not exist.
            JetStreamApiError: the server refused to create an ordered consumer's server consumer.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
            JetStreamApiError: while iterating, the server refused a pull request (status 400: a priority group
                missing, not one of the consumer's, or an option its priority policy does not take); it ends the
                iteration.
            NatsError: while iterating, the connection closed with an error (a fatal close): that error.
        """
        msgs, nbytes, exp, hb = _pull_options(max_messages, max_bytes, expires, idle_heartbeat)
        grouped = group is not None or min_pending is not None or min_ack_pending is not None or priority is not None
        pull_group = self._pull_group(group, min_pending, min_ack_pending, priority) if grouped else None
        if not bind:
            await self._prepare()
        options: dict[str, Any] = {
            "continuous": True,
            "max_messages": msgs,
            "max_bytes": nbytes,
            "expires": exp,
            "idle_heartbeat": hb,
            "threshold_messages": threshold_messages,
            "threshold_bytes": threshold_bytes,
            "callback": callback,
            "abort_on_missing_resource": abort_on_missing_resource,
        }
        pull = _Puller(self, **options) if pull_group is None else _GroupPuller(self, group=pull_group, **options)
        return self._messages(pull)

    def __repr__(self) -> str:
        return f"<Consumer {self.stream}/{self.name}>"


class OrderedConsumer(Consumer):
    """Delivers every stream message once, in order, through ephemeral server consumers it recreates at the next
    expected stream sequence after any gap, missed heartbeats or deletion."""

    def __init__(self, ctx: JetStreamContext, stream: str, options: OrderedConsumerOptions) -> None:
        super().__init__(ctx, None, stream)
        self._options = _private_copy(options)
        self._prefix = options.name_prefix or f"oc_{nuid.next()}"
        self._serial = 0
        # the server consumer read, the sequence expected next and where to restart (0: not anchored yet); its
        # pullers check every message against it in the protocol core
        self._cursor = OrderedCursor()
        self._mode: str | None = None

    @property
    def _expected_cseq(self) -> int:
        return self._cursor.expected

    def _config(self) -> ConsumerConfig:
        opts = self._options
        filters = opts.filter_subjects
        cfg = ConsumerConfig(
            name=f"{self._prefix}_{self._serial}",
            ack_policy=AckPolicy.NONE,
            mem_storage=True,
            num_replicas=1,
            max_deliver=1,
            inactive_threshold=opts.inactive_threshold if opts.inactive_threshold is not None else 300.0,
            replay_policy=opts.replay_policy,
            headers_only=opts.headers_only,
        )
        if isinstance(filters, str):
            cfg.filter_subject = filters
        elif filters:
            cfg.filter_subjects = list(filters)
        if self._cursor.next_stream_seq > 0:
            cfg.deliver_policy = DeliverPolicy.START_SEQUENCE
            cfg.opt_start_seq = self._cursor.next_stream_seq
        else:
            cfg.deliver_policy = opts.deliver_policy or DeliverPolicy.ALL
            cfg.opt_start_seq = opts.opt_start_seq
            cfg.opt_start_time = opts.opt_start_time
        return cfg

    async def _create(self, owner: _Puller | None = None) -> None:
        """Create the next server consumer and delete the one it replaces. ``owner`` is the puller a recovery runs
        for: when it ended meanwhile, the new consumer is deleted rather than used (a cancelled creation is cleaned
        up by ``add_owned`` itself)."""
        api = ConsumerAPI(self._ctx)
        old = self.name
        cursor = self._cursor
        # From here on nothing from the old consumer is accepted: the replacement starts after the last message
        # delivered, so one more accepted now would be delivered twice.
        cursor.resetting = bool(old)
        self._serial += 1
        config = self._config()
        info = await api.add_owned(self.stream, config)
        if owner is not None and owner._done:
            api.delete_later(self.stream, info.name)
            return
        self._info = _kept(info)
        self.name = cursor.name = info.name
        cursor.expected = 1
        cursor.resetting = False
        if cursor.next_stream_seq == 0 and config.deliver_policy is DeliverPolicy.NEW:
            # "Only what comes next" is anchored now: a consumer recreated before anything was delivered must start
            # here, not at whatever is newest by then (a restart would otherwise lose what was written meanwhile).
            cursor.next_stream_seq = info.delivered.stream_seq + 1
        if old:
            # gone already (or unreachable): it expires by its inactive threshold anyway
            with contextlib.suppress(NatsError):
                await api.delete(self.stream, old)

    def _awaiting_replacement(self) -> bool:
        return self._cursor.resetting

    async def _prepare(self) -> None:
        await self._create()

    def _pull_group(
        self, group: str | None, min_pending: int | None, min_ack_pending: int | None, priority: int | None
    ) -> _PullGroup:
        raise InvalidOptionError("the ordered consumer has no priority groups")

    async def _before_repull(self) -> None:
        active = self._active
        await self._create(active)
        self._ordered_reset_needed = True
        if active is not None and not active._done:
            active._status.emit(ConsumerStatus(ConsumerEvents.ORDERED_CONSUMER_RECREATED, self.name))

    async def fetch(
        self,
        *,
        max_messages: int | None = None,
        max_bytes: int | None = None,
        expires: float = 30.0,
        idle_heartbeat: float | None = None,
        group: str | None = None,
        min_pending: int | None = None,
        min_ack_pending: int | None = None,
        priority: int | None = None,
    ) -> ConsumerMessages:
        if group is not None or min_pending is not None or min_ack_pending is not None or priority is not None:
            self._pull_group(group, min_pending, min_ack_pending, priority)
        if self._mode == "consume":
            raise InvalidOptionError("ordered consumer initialized as consume")
        if self._active is not None:
            raise InvalidOptionError("ordered consumer doesn't support concurrent fetch")
        self._mode = "fetch"
        return await super().fetch(
            max_messages=max_messages, max_bytes=max_bytes, expires=expires, idle_heartbeat=idle_heartbeat
        )

    async def consume(self, **kwargs: Any) -> ConsumerMessages:
        if kwargs.get("bind"):
            raise InvalidOptionError("bind is not supported by the ordered consumer")
        group_options = ("group", "min_pending", "min_ack_pending", "priority")
        if any(kwargs.get(name) is not None for name in group_options):
            self._pull_group(*(kwargs.get(name) for name in group_options))
        self._claim_consume()
        return await super().consume(**kwargs)

    def _claim_consume(self) -> None:
        if self._mode == "fetch":
            raise InvalidOptionError("ordered consumer initialized as fetch")
        if self._active is not None:
            raise InvalidOptionError("ordered consumer doesn't support concurrent consume")
        self._mode = "consume"

    async def _consume_window(
        self, max_messages: int, max_bytes: int, expires: float, idle_heartbeat: float | None
    ) -> ConsumerMessages:
        # Both limits at once, which the public options refuse: validate and default as for a count window.
        max_messages, _, expires, idle_heartbeat = _pull_options(max_messages, None, expires, idle_heartbeat)
        self._claim_consume()
        await self._prepare()
        pull = _Puller(
            self,
            continuous=True,
            max_messages=max_messages,
            max_bytes=max_bytes,
            expires=expires,
            idle_heartbeat=idle_heartbeat,
            threshold_messages=max_messages // 2,
            threshold_bytes=max_bytes // 2,
        )
        return self._messages(pull)

    async def info(self, cached: bool = False) -> ConsumerInfo:
        if not self.name:
            await self._create()
        return await super().info(cached)


class Consumers:
    """``js.consumers``: consumers to read from."""

    def __init__(self, ctx: JetStreamContext) -> None:
        self._ctx = ctx

    async def get(self, stream: str, name: str | OrderedConsumerOptions | None = None) -> Consumer:
        """A consumer of ``stream``: the one named ``name``, or an ordered consumer (no name, or its options; its server
        consumer is created at the first fetch or consume).

        Raises:
            InvalidNameError: ``stream`` or ``name`` is not valid.
            InvalidOptionError: the consumer is a push consumer.
            StreamNotFoundError: the stream does not exist.
            ConsumerNotFoundError: the consumer does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        check_name(stream, "stream")
        if name is None or isinstance(name, OrderedConsumerOptions):
            await StreamAPI(self._ctx).info(stream)  # StreamNotFoundError now rather than at the first pull
            return OrderedConsumer(self._ctx, stream, name or OrderedConsumerOptions())
        info = await ConsumerAPI(self._ctx).info(stream, name)
        if info.config.deliver_subject:
            raise InvalidOptionError("push consumer not supported")
        return Consumer(self._ctx, info, stream)

    def get_pull_consumer_for(self, info: ConsumerInfo) -> Consumer:
        """The pull consumer ``info`` describes, without a request.

        Raises:
            InvalidOptionError: the consumer is a push consumer.
        """
        if info.config.deliver_subject:
            raise InvalidOptionError("push consumer not supported")
        return Consumer(self._ctx, info, info.stream_name)
