"""Legacy push and pull subscriptions (deprecated in nats.js, kept for migration).

A ``JetStreamSubscription`` wraps a core subscription on the consumer's deliver subject (or, for pull, an inbox
that pull requests deliver to). Control messages (idle heartbeats, flow-control requests) are handled here and
never reach the user; messages are wrapped as ``JsMsg`` and, unless ``manual_ack`` or AckPolicy NONE, acked after
the callback returns or when the iterator moves past them.

A callback may be a plain function, a coroutine function, or anything whose call returns an awaitable (awaited, in
order); the auto-ack follows its success only: a callback that raises leaves the message unacknowledged (redelivered
after ``ack_wait``), and its exception is reported as a ``CALLBACK_ERROR`` status. The subscription is owned by the
connection's scope: its heartbeat timer and an ordered subscription's recreation task end with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Generator
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

from ..callbacks import FAILED, Callback
from ..errors import (
    ConnectionClosedError,
    ConnectionDrainingError,
    ConsumerNotFoundError,
    InvalidOptionError,
    JetStreamIdleHeartbeatError,
    NatsError,
    SubscriptionClosedError,
)
from ..msg import Msg
from ..nuid import nuid
from .api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy, ReplayPolicy
from .apis import ConsumerAPI, StreamAPI
from .context import JetStreamContext, check_name
from .jsmsg import JsMsg
from .model import seconds_to_ns

if TYPE_CHECKING:
    from ..subscription import Subscription

__all__ = ["JetStreamPullSubscription", "JetStreamSubscription", "pull_subscribe", "push_subscribe"]

logger = logging.getLogger("cnats")

JsCallback = Callable[[JsMsg], Awaitable[None] | None]


def _is_control(msg: Msg) -> bool:
    headers = msg.headers
    return headers is not None and headers.code == 100 and not msg.data


class JetStreamSubscription:
    """A push (or pull) subscription whose items are ``JsMsg``; the members of ``Subscription`` delegate to the
    core subscription underneath."""

    def __init__(
        self,
        ctx: JetStreamContext,
        stream: str,
        consumer: str,
        *,
        auto_ack: bool,
        callback: JsCallback | None,
        idle_heartbeat: float | None,
        ordered: bool = False,
        ordered_config: ConsumerConfig | None = None,
    ) -> None:
        self._ctx = ctx
        self._port = ctx.port
        self._nc = ctx._nc  # its public API (publish)
        self._stream = stream
        self._consumer = consumer
        self._retired = ""  # an ordered subscription's consumer being replaced
        self._auto_ack = auto_ack
        self._user_callback = callback
        self._adapter: Callback[JsMsg] | None = None
        if callback is not None:
            self._adapter = Callback(callback, self._callback_failed)
        self._heartbeat = idle_heartbeat
        self._hb_timer: asyncio.TimerHandle | None = None
        self._last_arrival = 0.0
        self._ordered = ordered
        self._ordered_config = ordered_config
        self._expected_cseq = 1
        self._next_sseq = 1
        self._resetting = False
        self._last: JsMsg | None = None
        self._recreating: asyncio.Task[None] | None = None
        self._ended = False
        self._sub: Subscription  # set by _attach()

    def _sink(self) -> Callable[[Msg], Any] | None:
        """What the core subscription calls: None for an iterator; a coroutine function for a callback known to be
        asynchronous (the subscription runs it on its task); else the inline path."""
        if self._adapter is None:
            return None
        return self._on_msg_async if self._adapter.is_async else self._on_msg_inline

    def _attach(self, sub: Subscription) -> None:
        self._sub = sub
        port = self._port
        if self._heartbeat:
            # Heartbeats count when they arrive, not when the reader gets to them: note every arrival.
            loop = port.loop

            def arrival(msg: Msg) -> None:
                self._last_arrival = loop.time()
                sub(msg)

            port.set_sink(sub.sid, arrival)
        self._arm_heartbeat()
        port.scope.adopt(self)
        sub.closed.add_done_callback(self._sub_closed)

    # -- control messages, heartbeats, ordering ------------------------------------------------------------------
    def _control(self, msg: Msg) -> bool:
        """True when ``msg`` was a control message (handled here). Heartbeats are timed by arrival (_attach)."""
        if not _is_control(msg):
            return False
        if msg.reply:  # a flow-control request: answering it lets the server go on
            self._nc.publish(msg.reply, b"")
        elif self._ordered and msg.headers is not None:
            # an idle heartbeat carries the last consumer sequence sent: a mismatch means we missed messages
            last = msg.headers.get("Nats-Last-Consumer")
            if last and int(last) != self._expected_cseq - 1:
                self._reset_ordered()
        return True

    def _arm_heartbeat(self) -> None:
        """(Re)start the heartbeat watch; one timer, which re-arms itself while messages keep arriving."""
        loop = self._port.loop
        self._last_arrival = loop.time()
        if self._heartbeat and self._hb_timer is None and not self._ended:
            self._hb_timer = loop.call_later(self._heartbeat * 2, self._heartbeat_missed)

    def _heartbeat_missed(self) -> None:
        self._hb_timer = None
        if self._ended:
            return
        assert self._heartbeat is not None
        window = self._heartbeat * 2
        quiet_since = self._last_arrival
        loop = self._port.loop
        if loop.time() - quiet_since < window:  # something arrived meanwhile: watch on
            self._hb_timer = loop.call_at(quiet_since + window, self._heartbeat_missed)
            return
        if self._ordered:
            self._reset_ordered()
            self._arm_heartbeat()
            return
        self._sub._finish(JetStreamIdleHeartbeatError("idle heartbeats missed"), send_unsub=True)

    def _wrap(self, msg: Msg) -> JsMsg | None:
        jsmsg = JsMsg(msg, self._nc, self._ctx.options.timeout)
        if self._ordered:
            info = jsmsg.info
            if info.consumer != self._consumer:  # from a consumer replaced (or being replaced)
                return None
            if info.delivery_sequence != self._expected_cseq:
                self._reset_ordered()
                return None
            self._expected_cseq += 1
            self._next_sseq = info.stream_sequence + 1
        return jsmsg

    def _reset_ordered(self) -> None:
        if self._resetting or self._ended:
            return
        self._resetting = True
        # nothing more from this consumer is accepted: its replacement starts after the last message delivered
        self._retired = self._consumer
        self._consumer = ""
        self._recreating = self._port.scope.spawn(self._recreate(), f"recreate ordered consumer {self._stream}")

    async def _recreate(self) -> None:
        try:
            await self._recreate_once()
        finally:
            if self._recreating is asyncio.current_task():
                self._recreating = None

    async def _recreate_once(self) -> None:
        assert self._ordered_config is not None
        api = ConsumerAPI(self._ctx)
        old = self._retired
        cfg = replace(
            self._ordered_config,
            name=f"{self._ordered_config.name or 'ordered'}_{nuid.next()}",
            deliver_policy=DeliverPolicy.START_SEQUENCE,
            opt_start_seq=self._next_sseq,
            opt_start_time=None,
        )
        # The server pushes to the new consumer as soon as it exists, often before the answer to its creation
        # arrives: its messages are accepted by the name chosen here (dropping them meant another gap, another
        # replacement, and under load a chain of them).
        self._consumer = cfg.name or ""
        self._expected_cseq = 1
        try:
            # cancelled when the subscription ends meanwhile: a consumer created anyway is then deleted
            info = await api.add_owned(self._stream, cfg)
        except NatsError as exc:
            logger.warning("could not recreate the ordered consumer: %s", exc)
            self._consumer = ""  # the heartbeat watch tries again
            self._resetting = False
            return
        if self._ended:
            api.delete_later(self._stream, info.name)
            return
        self._consumer = info.name
        self._resetting = False
        if old:
            with contextlib.suppress(NatsError):
                await api.delete(self._stream, old)

    def _incoming(self, msg: Msg) -> JsMsg | None:
        """The message as a JsMsg, or None when it was a control message or one the ordering logic drops."""
        if self._control(msg):
            return None
        return self._wrap(msg)

    # -- callbacks ------------------------------------------------------------------------------------------------
    def _callback_failed(self, exc: BaseException, msg: JsMsg) -> None:
        self._port.report_callback_error(exc, self._sub.subject, self._sub.sid)

    def _on_msg_inline(self, msg: Msg) -> Awaitable[None] | None:
        """A plain callback, on the read path. When it returns an awaitable, so does this (the core subscription
        then awaits it, and runs this on its task from then on, in order); the ack follows its completion."""
        jsmsg = self._incoming(msg)
        if jsmsg is None:
            return None
        adapter = self._adapter
        assert adapter is not None
        result = adapter.call_inline(jsmsg)
        if result is None:
            if self._auto_ack:
                _ack(jsmsg)
            return None
        if result is FAILED:
            return None  # reported; not acknowledged: redelivered after ack_wait
        return _Completion(self, jsmsg, result)

    async def _complete(self, jsmsg: JsMsg, pending: Awaitable[Any]) -> None:
        adapter = self._adapter
        assert adapter is not None
        if await adapter.call(jsmsg, pending) and self._auto_ack:
            _ack(jsmsg)

    async def _on_msg_async(self, msg: Msg) -> None:
        jsmsg = self._incoming(msg)
        if jsmsg is None:
            return
        adapter = self._adapter
        assert adapter is not None
        if await adapter.call(jsmsg) and self._auto_ack:
            _ack(jsmsg)

    # -- the Subscription members ----------------------------------------------------------------------------------
    @property
    def subject(self) -> str:
        return self._sub.subject

    @property
    def queue(self) -> str | None:
        return self._sub.queue

    @property
    def sid(self) -> int:
        return self._sub.sid

    @property
    def received(self) -> int:
        return self._sub.received

    @property
    def processed(self) -> int:
        return self._sub.processed

    @property
    def pending(self) -> int:
        return self._sub.pending

    @property
    def pending_bytes(self) -> int:
        return self._sub.pending_bytes

    @property
    def dropped(self) -> int:
        return self._sub.dropped

    @property
    def max(self) -> int | None:
        return self._sub.max

    @property
    def is_closed(self) -> bool:
        return self._sub.is_closed

    @property
    def is_draining(self) -> bool:
        return self._sub.is_draining

    @property
    def closed(self) -> asyncio.Future[Exception | None]:
        return self._sub.closed

    def unsubscribe(self, max: int | None = None) -> None:
        """Stop the subscription now, or once ``max`` messages were received (the consumer stays on the server).

        Raises:
            Nothing: a no-op on a closed subscription.
        """
        self._stop_timer()
        self._sub.unsubscribe(max)
        if not max:
            self._shutdown()

    async def drain(self) -> None:
        """Stop interest, hand out (or to the callback) what was already received, then close (see
        ``Subscription.drain``; at most 30 seconds).

        Raises:
            ConnectionClosedError: the connection is closed.
            SubscriptionClosedError: the subscription is closed.
            SubscriptionDrainingError: the subscription is already draining.
            DrainTimeoutError: the drain did not finish within 30 seconds; the subscription was closed anyway.
        """
        self._stop_work()
        await self._sub.drain()

    def _stop_timer(self) -> None:
        if self._hb_timer is not None:
            self._hb_timer.cancel()
            self._hb_timer = None

    def _stop_work(self) -> None:
        """No more heartbeat watch or recreation (one in flight is cancelled; what it created is deleted)."""
        self._ended = True
        self._stop_timer()
        task, self._recreating = self._recreating, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _shutdown(self) -> None:
        self._stop_work()
        self._port.scope.release(self)

    def _sub_closed(self, _: object) -> None:
        self._shutdown()  # however the subscription ended (max reached, heartbeats missed, unsubscribe, drain)

    def connection_closed(self, error: Exception | None) -> None:
        """The connection closed: timers and tasks stop; the core subscription (closed by the connection next)
        hands out what it holds, then ends.

        Raises:
            Nothing: called by the connection while it closes.
        """
        self._shutdown()

    def drain_owned(self) -> Awaitable[None]:
        """The connection's drain: stop watching, and drain the subscription underneath.

        Raises:
            Nothing: the errors of the drain are the connection's to handle.
        """
        self._stop_work()
        return self._sub.drain_owned()

    async def next_msg(self, timeout: float | None = None) -> JsMsg:
        """The next message; with auto-ack, the one returned before is acknowledged first.

        Raises:
            NatsTimeoutError: no message within ``timeout`` seconds.
            SubscriptionClosedError: the subscription is closed and every message was handed out.
            JetStreamIdleHeartbeatError: heartbeats from the server were missed (the subscription is closed).
            NatsError: the subscription was closed by another error (a fatal connection close): that error.
            RuntimeError: the subscription has a callback.
        """
        if self._user_callback is not None:
            raise RuntimeError("next_msg() cannot be used on a subscription with a callback")
        self._ack_last()
        loop = self._port.loop
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            jsmsg = self._incoming(await self._sub.next_msg(remaining))
            if jsmsg is None:
                continue
            self._last = jsmsg
            return jsmsg

    def _ack_last(self) -> None:
        if self._auto_ack and self._last is not None:
            _ack(self._last)
        self._last = None

    def __aiter__(self) -> JetStreamSubscription:
        if self._user_callback is not None:
            raise RuntimeError("a subscription with a callback cannot be iterated")
        return self

    async def __anext__(self) -> JsMsg:
        try:
            return await self.next_msg()
        except SubscriptionClosedError:
            self._stop_timer()
            error = self._sub.closed.result() if self._sub.closed.done() else None
            if error is not None:
                raise error from None
            raise StopAsyncIteration from None

    async def __aenter__(self) -> JetStreamSubscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.unsubscribe()

    async def consumer_info(self) -> ConsumerInfo:
        """The info of the subscription's consumer.

        Raises:
            InvalidNameError: an ordered subscription is replacing its consumer and has none at the moment.
            StreamNotFoundError: the stream does not exist (any more).
            ConsumerNotFoundError: the consumer does not exist (any more).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        return await ConsumerAPI(self._ctx).info(self._stream, self._consumer)

    async def destroy(self) -> None:
        """Unsubscribe and delete the consumer (one already gone is fine).

        Raises:
            InvalidNameError: an ordered subscription is replacing its consumer and has none at the moment.
            StreamNotFoundError: the stream does not exist (any more).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        self.unsubscribe()
        with contextlib.suppress(ConsumerNotFoundError):
            await ConsumerAPI(self._ctx).delete(self._stream, self._consumer)


class JetStreamPullSubscription(JetStreamSubscription):
    """A legacy pull subscription: ``pull()`` asks for messages, which arrive on the subscription."""

    def pull(
        self,
        batch: int = 1,
        *,
        no_wait: bool = False,
        expires: float | None = None,
        max_bytes: int | None = None,
        idle_heartbeat: float | None = None,
    ) -> None:
        """Ask for ``batch`` messages (or ``max_bytes``), delivered to this subscription; ``no_wait`` ends the request
        at once when there are none, ``expires`` after that many seconds.

        Raises:
            InvalidOptionError: ``batch`` is not positive.
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining (publishing has stopped).
            OutboundBufferLimitError: the outbound buffer is full.
        """
        if batch <= 0:
            raise InvalidOptionError("batch must be greater than 0")
        request: dict[str, Any] = {"batch": batch}
        if no_wait:
            request["no_wait"] = True
        if expires is not None:
            request["expires"] = seconds_to_ns(expires)
        if max_bytes is not None:
            request["max_bytes"] = max_bytes
        if idle_heartbeat is not None:
            request["idle_heartbeat"] = seconds_to_ns(idle_heartbeat)
        subject = f"{self._ctx.api_prefix}.CONSUMER.MSG.NEXT.{self._stream}.{self._consumer}"
        self._nc.publish(subject, json.dumps(request).encode(), reply=self._sub.subject)

    def _control(self, msg: Msg) -> bool:
        headers = msg.headers
        # pull status answers (404 no messages, 408 expired, 409 ...) end a pull; they are not messages
        if headers is not None and headers.code and not msg.data:
            return True
        return super()._control(msg)


async def _find_stream(ctx: JetStreamContext, subject: str, stream: str | None) -> str:
    if stream:
        return check_name(stream, "stream")
    return await StreamAPI(ctx).find(subject)


def _base_config(config: ConsumerConfig | None) -> ConsumerConfig:
    cfg = ConsumerConfig(
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=30.0,
        replay_policy=ReplayPolicy.INSTANT,
    )
    if config is not None:
        given = {f.name: getattr(config, f.name) for f in fields(config) if getattr(config, f.name) is not None}
        cfg = replace(cfg, **given)
    return cfg


async def push_subscribe(
    ctx: JetStreamContext,
    subject: str,
    *,
    stream: str | None = None,
    durable: str | None = None,
    name: str | None = None,
    deliver_subject: str | None = None,
    queue: str | None = None,
    config: ConsumerConfig | None = None,
    ordered: bool = False,
    flow_control: bool = False,
    idle_heartbeat: float | None = None,
    manual_ack: bool = False,
    bind: bool = False,
    callback: JsCallback | None = None,
    max: int | None = None,
) -> JetStreamSubscription:
    api = ConsumerAPI(ctx)
    port = ctx.port
    if ordered:
        if durable or deliver_subject or queue or manual_ack or bind:
            raise InvalidOptionError("ordered consumers cannot be durable, bound, queued or manually acked")
        if config is not None and config.ack_policy not in (None, AckPolicy.NONE):
            raise InvalidOptionError("ordered consumers must use AckPolicy NONE")
        flow_control = True
        idle_heartbeat = idle_heartbeat if idle_heartbeat is not None else 5.0
    consumer_name = durable or name
    if bind and (not stream or not consumer_name):
        raise InvalidOptionError("bind requires stream and durable (or name)")
    stream_name = await _find_stream(ctx, subject, stream)
    if not bind and consumer_name:
        # A durable that exists already is joined by queue members (they share it), resumed by a lone subscriber.
        try:
            existing = await api.info(stream_name, consumer_name)
        except ConsumerNotFoundError:
            existing = None
        if existing is not None:
            if (existing.config.deliver_group or None) != (queue or None):
                raise InvalidOptionError(
                    f"durable {consumer_name!r} is delivered to queue group {existing.config.deliver_group!r}, "
                    f"not {queue!r}"
                )
            if not queue and existing.push_bound:
                raise InvalidOptionError(f"duplicate subscription: durable {consumer_name!r} is already bound")
            # A queue member joins the group's deliver subject; a lone durable gets a new one (updated below),
            # which also redelivers at once what the last subscriber left unacknowledged.
            bind = bool(queue)
    if bind:
        assert consumer_name is not None
        info = await api.info(stream_name, consumer_name)
        deliver = info.config.deliver_subject
        if not deliver:
            raise InvalidOptionError("cannot bind a push subscription to a pull consumer")
        ack_policy = info.config.ack_policy
        heartbeat = info.config.idle_heartbeat
    else:
        cfg = _base_config(config)
        deliver = deliver_subject or cfg.deliver_subject or port.new_inbox()
        cfg = replace(cfg, deliver_subject=deliver, filter_subject=cfg.filter_subject or subject)
        if durable:
            cfg.durable_name = durable
        if name:
            cfg.name = name
        if queue:
            cfg.deliver_group = queue
        if flow_control:
            cfg.flow_control = True
        if idle_heartbeat is not None:
            cfg.idle_heartbeat = idle_heartbeat
        if ordered:
            cfg = replace(
                cfg,
                ack_policy=AckPolicy.NONE,
                max_deliver=1,
                mem_storage=True,
                num_replicas=1,
                name=f"ordered_{nuid.next()}",
            )
        info = await api.add(stream_name, cfg)
        ack_policy = info.config.ack_policy
        heartbeat = info.config.idle_heartbeat
    auto_ack = not manual_ack and ack_policy not in (AckPolicy.NONE,)
    jsub = JetStreamSubscription(
        ctx,
        stream_name,
        info.name,
        auto_ack=auto_ack,
        callback=callback,
        idle_heartbeat=heartbeat,
        ordered=ordered,
        ordered_config=info.config if ordered else None,
    )
    sub = port.subscribe(deliver, queue or info.config.deliver_group, jsub._sink(), max=max)
    jsub._attach(sub)
    return jsub


async def pull_subscribe(
    ctx: JetStreamContext,
    subject: str,
    *,
    stream: str | None = None,
    durable: str | None = None,
    name: str | None = None,
    config: ConsumerConfig | None = None,
    manual_ack: bool = False,
    bind: bool = False,
    callback: JsCallback | None = None,
) -> JetStreamPullSubscription:
    api = ConsumerAPI(ctx)
    port = ctx.port
    consumer_name = durable or name
    if bind and (not stream or not consumer_name):
        raise InvalidOptionError("bind requires stream and durable (or name)")
    stream_name = await _find_stream(ctx, subject, stream)
    if bind:
        assert consumer_name is not None
        info = await api.info(stream_name, consumer_name)
    else:
        cfg = _base_config(config)
        cfg = replace(cfg, filter_subject=cfg.filter_subject or subject, deliver_subject=None)
        if durable:
            cfg.durable_name = durable
        if name:
            cfg.name = name
        info = await api.add(stream_name, cfg)
    if info.config.deliver_subject:
        raise InvalidOptionError("cannot pull from a push consumer")
    auto_ack = not manual_ack and info.config.ack_policy not in (AckPolicy.NONE,)
    jsub = JetStreamPullSubscription(
        ctx, stream_name, info.name, auto_ack=auto_ack, callback=callback, idle_heartbeat=None
    )
    sub = port.subscribe(port.new_inbox(), None, jsub._sink())
    jsub._attach(sub)
    return jsub


class _Completion:
    """What ``_on_msg_inline`` returns for a callback that returned an awaitable: awaiting it awaits that, then
    auto-acks. The core subscription awaits it on its task; when a close cuts it short before it started, the
    callback's awaitable is closed with it (no "coroutine ... was never awaited")."""

    __slots__ = ("_jsmsg", "_jsub", "_pending", "_started")

    def __init__(self, jsub: JetStreamSubscription, jsmsg: JsMsg, pending: Awaitable[Any]) -> None:
        self._jsub = jsub
        self._jsmsg = jsmsg
        self._pending = pending
        self._started = False

    def __await__(self) -> Generator[Any, None, None]:
        self._started = True
        return self._jsub._complete(self._jsmsg, self._pending).__await__()

    def __del__(self) -> None:
        pending = self._pending
        if self._started or not inspect.iscoroutine(pending):
            return
        if inspect.getcoroutinestate(pending) == inspect.CORO_CREATED:
            pending.close()


def _ack(jsmsg: JsMsg) -> None:
    """An auto-ack: on a connection that closed (or stopped publishing) meanwhile it cannot be sent, and the message
    is redelivered after ``ack_wait``: not an error of whoever happens to trigger it."""
    with contextlib.suppress(ConnectionClosedError, ConnectionDrainingError):
        jsmsg.ack()
