"""The instrumented ``publish`` and ``request`` of a connection: a PRODUCER or CLIENT span around the original
method, whose context travels in the message headers.

Left as they are (passed straight to the original): subjects starting with ``$`` (the JetStream API, acks, pull
requests, flow control, service discovery: the protocols cnats speaks on the user's behalf), sends nested in an
operation that has its span already (the publish inside a request, the request inside ``js.publish``), and, on the
pure-Python core, the sends its fast paths make through the connection's ``publish`` where the compiled core
writes directly (``Msg.respond``, acks, the request inbox): a response is part of its handler's span on both cores.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from types import CodeType
from typing import Any

from opentelemetry.trace import SpanKind

from ..protocol import USES_CYTHON
from ._carrier import with_trace_context
from ._names import PUBLISH, REQUEST
from ._telemetry import Telemetry, body_size

__all__ = ["inner_operation", "traced_publish", "traced_request", "untraced_subject"]

_perf = time.perf_counter

# True while an instrumented operation runs the original method it wraps: what that method sends is its own.
inner_operation: ContextVar[bool] = ContextVar("cnats.otel.inner_operation", default=False)


def _pure_core_senders() -> frozenset[CodeType]:
    """The pure-Python core's functions that send through ``publish`` where the compiled core does not."""
    if USES_CYTHON:
        return frozenset()
    from .. import _delivery_py, _protocol_py

    return frozenset(
        {
            _protocol_py.MsgBase.respond.__code__,
            _protocol_py.ReplyMux.request.__code__,
            _delivery_py.JsMsgBase._send.__code__,
        }
    )


_CORE_SENDERS = _pure_core_senders()


def untraced_subject(subject: object) -> bool:
    """Subjects left alone: the ``$`` protocol subjects, and anything not a str (the original raises for it)."""
    return type(subject) is not str or subject.startswith("$")


def traced_publish(tel: Telemetry, publish: Callable[..., None]) -> Callable[..., None]:
    """``nc.publish`` with a PRODUCER span ("publish <subject>") and the trace context in its headers."""
    senders = _CORE_SENDERS

    def publish_traced(subject: str, payload: Any = b"", *, reply: str | None = None, headers: Any = None) -> None:
        if (
            not tel.active
            or untraced_subject(subject)
            or inner_operation.get()
            or (senders and sys._getframe(1).f_code in senders)
        ):
            publish(subject, payload, reply=reply, headers=headers)
            return
        size = body_size(payload)
        span, measured = tel.start_send(SpanKind.PRODUCER, PUBLISH, subject, size)
        try:
            if tel.headers_allowed():
                headers = with_trace_context(headers, span)
            publish(subject, payload, reply=reply, headers=headers)
        except BaseException as exc:
            tel.end_send(span, measured, size, None, exc)
            raise
        tel.end_send(span, measured, size, None, None)

    return publish_traced


def traced_request(tel: Telemetry, request: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """``nc.request`` with a CLIENT span ("request <subject>") covering the round trip; the responder's span is its
    child through the request's headers."""

    async def request_traced(subject: str, payload: Any = b"", **options: Any) -> Any:
        if not tel.active or untraced_subject(subject) or inner_operation.get():
            return await request(subject, payload, **options)
        size = body_size(payload)
        span, measured = tel.start_send(SpanKind.CLIENT, REQUEST, subject, size)
        started = _perf()
        token = inner_operation.set(True)
        try:
            if tel.headers_allowed():
                options["headers"] = with_trace_context(options.get("headers"), span)
            response = await request(subject, payload, **options)
        except BaseException as exc:
            tel.end_send(span, measured, size, started, exc)
            raise
        finally:
            inner_operation.reset(token)
        tel.end_send(span, measured, size, started, None)
        return response

    return request_traced
