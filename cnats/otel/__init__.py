"""OpenTelemetry tracing and metrics for cnats connections (the extra ``cnats[otel]``, ``opentelemetry-api`` only).

``instrument(nc)`` makes one connection report spans and metrics, following the OpenTelemetry messaging semantic
conventions (``messaging.system = "nats"``), and carry W3C trace context (``traceparent``, ``tracestate``) in the
headers of what it sends; ``uninstrument(nc)`` stops it. A connection that was never instrumented runs exactly the
code it runs without this module: instrumenting replaces methods of that one connection (and of the objects it hands
out afterwards), nothing is checked per message elsewhere.
"""

from __future__ import annotations

try:
    from opentelemetry import metrics as _metrics  # noqa: F401 - the extra's dependency, checked up front
    from opentelemetry import propagate as _propagate  # noqa: F401
    from opentelemetry import trace as _trace  # noqa: F401
except ImportError as exc:
    raise ImportError(
        "cnats.otel needs the OpenTelemetry API: install the extra cnats[otel] (pip install 'cnats[otel]')",
        name=exc.name,
    ) from exc

import weakref
from typing import TYPE_CHECKING

from ..connection import NatsConnection
from ..errors import InvalidOptionError
from ..services.endpoint import handler_hooks
from ._changes import Changes
from ._delivering import traced_iterator_class
from ._jetstream import instrument_jetstream
from ._sending import traced_publish, traced_request
from ._services import handler_hook
from ._subscribing import traced_subscribe
from ._telemetry import Telemetry

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from ..jetstream.client import JetStreamClient

__all__ = ["instrument", "uninstrument"]


class _Instrumentation:
    """One instrumented connection: its telemetry and what was changed to produce it."""

    __slots__ = ("changes", "telemetry")

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self.changes = Changes(lambda base: traced_iterator_class(telemetry, base))


_instrumented: weakref.WeakKeyDictionary[NatsConnection, _Instrumentation] = weakref.WeakKeyDictionary()


def _traced_jetstream(tel: Telemetry, changes: Changes, jetstream: Callable[..., JetStreamClient]) -> Any:
    def jetstream_traced(**options: Any) -> JetStreamClient:
        js = jetstream(**options)
        if tel.active:
            instrument_jetstream(tel, changes, js)
        return js

    return jetstream_traced


def instrument(
    nc: NatsConnection,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> None:
    """Trace and measure what ``nc`` sends and delivers from now on.

    Spans: ``publish`` (PRODUCER) for ``nc.publish`` and the ``publish``/``publish_async`` of JetStream clients made
    from now on with ``nc.jetstream()``; ``request`` (CLIENT) for ``nc.request``; ``process`` (CONSUMER) around each
    call of a subscription's or consumer's callback; ``receive`` (CONSUMER) for each message an iterator hands out
    (``async for``, ``next_msg``, ``fetch``, ``consume``, ``next``); ``process`` (SERVER) around each call of a
    service handler. The context of each send goes in the message headers (W3C ``traceparent``/``tracestate``,
    through the configured propagator), and each delivery is a child of the context its message carries, or the
    root of a new trace. Metrics: ``messaging.client.sent.messages``, ``messaging.client.consumed.messages``,
    ``messaging.nats.client.sent.bytes``, ``messaging.nats.client.consumed.bytes`` (counters) and
    ``messaging.client.operation.duration``, ``messaging.process.duration`` (histograms, seconds).

    Subscriptions, JetStream clients, consumers and service endpoints made before this call are not traced.
    Subjects starting with ``$`` (the JetStream API, acknowledgements, service discovery) are never traced.

    Args:
        nc: the connection.
        tracer_provider: where spans go; None uses the global tracer provider.
        meter_provider: where measurements go; None uses the global meter provider.

    Raises:
        InvalidOptionError: ``nc`` is already instrumented (``uninstrument()`` it first to change providers).
        TypeError: ``nc`` is not a ``NatsConnection``.
    """
    if not isinstance(nc, NatsConnection):
        raise TypeError(f"instrument() takes a NatsConnection, not {type(nc).__name__}")
    if nc in _instrumented:
        raise InvalidOptionError("the connection is already instrumented")
    tel = Telemetry(nc, tracer_provider, meter_provider)
    state = _Instrumentation(tel)
    changes = state.changes
    changes.shadow(
        nc,
        {
            "publish": traced_publish(tel, nc.publish),
            "request": traced_request(tel, nc.request),
            "subscribe": traced_subscribe(tel, nc.subscribe, changes.trace_iterator),
            "jetstream": _traced_jetstream(tel, changes, nc.jetstream),
        },
    )
    handler_hooks[nc] = handler_hook(tel)
    _instrumented[nc] = state


def uninstrument(nc: NatsConnection) -> None:
    """Stop tracing and measuring ``nc``: its methods are its own again, iterators handed out while it was
    instrumented are plain again, and callbacks wrapped meanwhile call straight through. A no-op on a connection
    that is not instrumented.

    Raises:
        Nothing: uninstrumenting twice, or a connection never instrumented, does nothing.
    """
    state = _instrumented.pop(nc, None)
    if state is None:
        return
    state.telemetry.active = False
    state.changes.undo()
    handler_hooks.pop(nc, None)
