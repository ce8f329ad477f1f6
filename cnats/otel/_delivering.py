"""Deliveries of an instrumented connection: a span per message handed to a callback ("process", CONSUMER; a service
handler's is SERVER) or out of an iterator ("receive", CONSUMER), child of the trace context the message carries.

Callbacks are wrapped once, when the subscription (consumer, endpoint) is made; the wrapper keeps the callback's
kind (plain or asynchronous), so the subscription runs it exactly as it would run the callback. Iterators keep
their identity: the object handed out switches to a subclass of its own class whose ``__anext__``/``next_msg`` add
the span, so nothing changes for iterators of connections that are not instrumented.
"""

from __future__ import annotations

import inspect
import time
import weakref
from collections.abc import Awaitable, Callable
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind

from ..callbacks import discard_unawaited, is_async_callable
from ..subscription import Subscription
from ._names import PROCESS
from ._telemetry import Attributes, Telemetry

__all__ = ["Delivery", "traced_callback", "traced_iterator_class"]

_perf = time.perf_counter
_now = time.time_ns


class Delivery:
    """Where a callback's messages come from: what its spans say besides the message itself."""

    __slots__ = ("extra", "kind", "queue", "template")

    def __init__(
        self,
        template: str | None = None,
        queue: str | None = None,
        *,
        kind: SpanKind = SpanKind.CONSUMER,
        extra: Attributes | None = None,
    ) -> None:
        self.template = template  # the subscription's subject (wildcards as given)
        self.queue = queue
        self.kind = kind
        self.extra = extra


def traced_callback(tel: Telemetry, callback: Callable[[Any], Any], where: Delivery) -> Callable[[Any], Any]:
    """``callback`` with a span around each call; an exception it raises is recorded and raised on (the owner
    reports it, and skips the auto-ack, as without instrumentation)."""

    def begin(msg: Any) -> tuple[Span, Attributes, Context, Token[Context]]:
        span, measured, ctx = tel.start_delivery(where.kind, PROCESS, msg, where.template, where.queue, where.extra)
        return span, measured, ctx, otel_context.attach(ctx)

    if is_async_callable(callback):

        async def deliver_async(msg: Any) -> None:
            if not tel.active:
                await callback(msg)
                return
            span, measured, _, token = begin(msg)
            started = _perf()
            try:
                await callback(msg)
            except BaseException as exc:
                tel.end_process(span, measured, started, exc)
                raise
            finally:
                otel_context.detach(token)
            tel.end_process(span, measured, started, None)

        return deliver_async

    def deliver(msg: Any) -> Any:
        if not tel.active:
            return callback(msg)
        span, measured, ctx, token = begin(msg)
        started = _perf()
        try:
            result = callback(msg)
        except BaseException as exc:
            tel.end_process(span, measured, started, exc)
            raise
        finally:
            otel_context.detach(token)
        if result is not None and inspect.isawaitable(result):
            # a plain-looking callback returned an awaitable: its owner awaits what this returns, on its task
            return _finish_later(tel, span, measured, ctx, started, result)
        tel.end_process(span, measured, started, None)
        return result

    return deliver


def _finish_later(
    tel: Telemetry, span: Span, measured: Attributes, ctx: Context, started: float, pending: Awaitable[Any]
) -> Any:
    async def finish() -> Any:
        token = otel_context.attach(ctx)
        try:
            result = await pending
        except BaseException as exc:
            tel.end_process(span, measured, started, exc)
            raise
        finally:
            otel_context.detach(token)
        tel.end_process(span, measured, started, None)
        return result

    waiting = finish()
    # the owner closes this unstarted when its connection closes first; the callback's own coroutine then goes too
    weakref.finalize(waiting, discard_unawaited, pending)
    return waiting


def _subscription_of(obj: Any) -> tuple[str | None, str | None]:
    if isinstance(obj, Subscription):
        return obj.subject, obj.queue
    return None, None


def traced_iterator_class(tel: Telemetry, base: type) -> type:
    """A subclass of ``base`` (an iterator class: a subscription, a consumer's messages) whose hand-outs get a
    receive span; same slots, so an object of ``base`` can switch to it and back."""
    base_anext = base.__anext__  # type: ignore[attr-defined]

    async def __anext__(self: Any) -> Any:
        start_time = _now()
        msg = await base_anext(self)
        if tel.active:
            template, queue = _subscription_of(self)
            tel.received(msg, start_time, template, queue)
        return msg

    namespace: dict[str, Any] = {
        "__slots__": (),
        "__anext__": __anext__,
        "__module__": base.__module__,
        "__qualname__": base.__qualname__,
        "__doc__": base.__doc__,
    }
    base_next_msg = getattr(base, "next_msg", None)
    if base_next_msg is not None:

        async def next_msg(self: Any, timeout: float | None = None) -> Any:
            start_time = _now()
            msg = await base_next_msg(self, timeout)
            if tel.active:
                template, queue = _subscription_of(self)
                tel.received(msg, start_time, template, queue)
            return msg

        next_msg.__doc__ = base_next_msg.__doc__
        namespace["next_msg"] = next_msg
    return type(base.__name__, (base,), namespace)
