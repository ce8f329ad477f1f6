"""Legacy push and pull subscriptions (API.md section 5.7; deprecated in nats.js, kept for migration).

A ``JetStreamSubscription`` wraps a core subscription on the consumer's deliver subject (or, for pull, an inbox
that pull requests deliver to). Control messages (idle heartbeats, flow-control requests) are handled here and
never reach the user; messages are wrapped as ``JsMsg`` and, unless ``manual_ack`` or AckPolicy NONE, acked after
the callback returns or when the iterator moves past them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

from ..errors import (
    ConsumerNotFoundError,
    InvalidOptionError,
    JetStreamIdleHeartbeatError,
    NatsError,
    SubscriptionClosedError,
)
from ..msg import Msg
from ..nuid import nuid
from .api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy, ReplayPolicy
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
        self._nc = ctx._nc
        self._stream = stream
        self._consumer = consumer
        self._auto_ack = auto_ack
        self._user_callback = callback
        self._heartbeat = idle_heartbeat
        self._hb_timer: asyncio.TimerHandle | None = None
        self._last_arrival = 0.0
        self._ordered = ordered
        self._ordered_config = ordered_config
        self._expected_cseq = 1
        self._next_sseq = 1
        self._resetting = False
        self._last: JsMsg | None = None
        self._sub: Subscription  # set by _attach()

    def _attach(self, sub: Subscription) -> None:
        self._sub = sub
        if self._heartbeat:
            # Heartbeats count when they arrive, not when the reader gets to them: note every arrival.
            loop = self._nc._loop

            def arrival(msg: Msg) -> None:
                self._last_arrival = loop.time()
                sub(msg)

            self._nc._sinks[sub.sid] = arrival
        self._arm_heartbeat()

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
        self._last_arrival = self._nc._loop.time()
        if self._heartbeat and self._hb_timer is None:
            self._hb_timer = self._nc._loop.call_later(self._heartbeat * 2, self._heartbeat_missed)

    def _heartbeat_missed(self) -> None:
        self._hb_timer = None
        assert self._heartbeat is not None
        window = self._heartbeat * 2
        quiet_since = self._last_arrival
        if self._nc._loop.time() - quiet_since < window:  # something arrived meanwhile: watch on
            self._hb_timer = self._nc._loop.call_at(quiet_since + window, self._heartbeat_missed)
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
            if self._resetting or info.consumer != self._consumer:
                return None
            if info.delivery_sequence != self._expected_cseq:
                self._reset_ordered()
                return None
            self._expected_cseq += 1
            self._next_sseq = info.stream_sequence + 1
        return jsmsg

    def _reset_ordered(self) -> None:
        if self._resetting:
            return
        self._resetting = True
        self._nc._loop.create_task(self._recreate())

    async def _recreate(self) -> None:
        from .manager import ConsumerAPI

        assert self._ordered_config is not None
        api = ConsumerAPI(self._ctx)
        old = self._consumer
        cfg = replace(
            self._ordered_config,
            name=f"{self._ordered_config.name or 'ordered'}_{nuid.next()}",
            deliver_policy=DeliverPolicy.START_SEQUENCE,
            opt_start_seq=self._next_sseq,
            opt_start_time=None,
        )
        try:
            info = await api.add(self._stream, cfg)
        except NatsError as exc:
            logger.warning("could not recreate the ordered consumer: %s", exc)
            self._resetting = False
            return
        self._consumer = info.name
        self._expected_cseq = 1
        self._resetting = False
        with contextlib.suppress(NatsError):
            await api.delete(self._stream, old)

    def _incoming(self, msg: Msg) -> JsMsg | None:
        """The message as a JsMsg, or None when it was a control message or one the ordering logic drops."""
        if self._control(msg):
            return None
        return self._wrap(msg)

    # -- callbacks ------------------------------------------------------------------------------------------------
    def _on_msg_inline(self, msg: Msg) -> None:
        jsmsg = self._incoming(msg)
        if jsmsg is None:
            return
        assert self._user_callback is not None
        try:
            self._user_callback(jsmsg)
        except Exception:
            logger.exception("exception in a JetStream subscription callback")
            return
        if self._auto_ack:
            jsmsg.ack()

    async def _on_msg_async(self, msg: Msg) -> None:
        jsmsg = self._incoming(msg)
        if jsmsg is None:
            return
        assert self._user_callback is not None
        try:
            await self._user_callback(jsmsg)  # type: ignore[misc]
        except Exception:
            logger.exception("exception in a JetStream subscription callback")
            return
        if self._auto_ack:
            jsmsg.ack()

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
        self._stop_timer()
        self._sub.unsubscribe(max)

    async def drain(self) -> None:
        self._stop_timer()
        await self._sub.drain()

    def _stop_timer(self) -> None:
        if self._hb_timer is not None:
            self._hb_timer.cancel()
            self._hb_timer = None

    async def next_msg(self, timeout: float | None = None) -> JsMsg:
        if self._user_callback is not None:
            raise RuntimeError("next_msg() cannot be used on a subscription with a callback")
        self._ack_last()
        loop = self._nc._loop
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
            self._last.ack()
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
        from .manager import ConsumerAPI

        return await ConsumerAPI(self._ctx).info(self._stream, self._consumer)

    async def destroy(self) -> None:
        """Unsubscribe and delete the consumer."""
        from .manager import ConsumerAPI

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
    from .manager import StreamAPI

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
    from .manager import ConsumerAPI

    api = ConsumerAPI(ctx)
    nc = ctx._nc
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
        deliver = deliver_subject or cfg.deliver_subject or f"{nc._opts.inbox_prefix}.{nuid.next()}"
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
    internal: Any = None
    if callback is not None:
        coroutine = inspect.iscoroutinefunction(callback)
        internal = jsub._on_msg_async if coroutine else jsub._on_msg_inline
    sub = nc._subscribe(deliver, queue or info.config.deliver_group, internal, max=max)
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
    from .manager import ConsumerAPI

    api = ConsumerAPI(ctx)
    nc = ctx._nc
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
    internal: Any = None
    if callback is not None:
        internal = jsub._on_msg_async if inspect.iscoroutinefunction(callback) else jsub._on_msg_inline
    sub = nc._subscribe(f"{nc._opts.inbox_prefix}.{nuid.next()}", None, internal)
    jsub._attach(sub)
    return jsub
