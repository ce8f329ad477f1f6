"""W3C trace context in NATS headers: written into a copy of the outgoing headers, read from a delivered message,
through the globally configured propagator (``opentelemetry.propagate``; W3C ``traceparent``/``tracestate`` and
baggage by default)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.trace import Span

from ..headers import Headers, Match
from ..msg import to_headers

__all__ = ["NO_PARENT", "context_of", "with_trace_context"]

# The parent of a delivery whose message carries no trace context: none (a new trace), never whatever context the
# socket's reader happens to run in.
NO_PARENT = Context()


class _HeadersSetter(Setter[Headers]):
    def set(self, carrier: Headers, key: str, value: str) -> None:
        # replaces a value the message already had under any case (a forwarded message, a hand-made traceparent)
        carrier.set(key, value, Match.IGNORE_CASE)


class _HeadersGetter(Getter[Headers]):
    def get(self, carrier: Headers, key: str) -> list[str] | None:
        # NATS header names are case-sensitive; peers write "traceparent", but a Go carrier may write "Traceparent"
        return carrier.values(key, Match.IGNORE_CASE) or None

    def keys(self, carrier: Headers) -> list[str]:
        return carrier.keys()


_SETTER = _HeadersSetter()
_GETTER = _HeadersGetter()


def _copy(headers: Headers | Mapping[str, str | Sequence[str]] | None) -> Headers:
    """Headers of our own to write into: the caller's ``Headers`` object is never changed."""
    if headers is None:
        return Headers()
    if not isinstance(headers, Headers):
        converted = to_headers(headers)  # a fresh object; raises what publish would for a bad mapping
        assert converted is not None
        return converted
    out = Headers(headers.code, headers.description)
    for key, values in headers.items():
        for value in values:
            out.append(key, value)
    return out


def with_trace_context(headers: Any, span: Span) -> Headers:
    """A copy of ``headers`` (None, ``Headers`` or a mapping) carrying ``span`` as the remote parent.

    Raises:
        BadHeaderError: a name or value of a mapping is not valid.
        TypeError: ``headers`` is neither ``Headers`` nor a mapping.
    """
    out = _copy(headers)
    # the current context with the span in it: the caller's baggage travels too
    propagate.inject(out, context=trace.set_span_in_context(span), setter=_SETTER)
    return out


def context_of(headers: Headers | None) -> Context:
    """The trace context a delivered message carries, or ``NO_PARENT``.

    Raises:
        Nothing: malformed trace headers are ignored by the propagator.
    """
    if not headers:
        return NO_PARENT
    return propagate.extract(headers, context=NO_PARENT, getter=_GETTER)
