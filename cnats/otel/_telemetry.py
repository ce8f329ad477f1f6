"""``Telemetry``: one instrumented connection's tracer and metric instruments, and how its spans and measurements
are named and described (the conventions of ``_names``). The wrappers of the other modules call it; it wraps
nothing itself."""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import Histogram, Meter, MeterProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from .._version import __version__
from ..connection import port_of
from ..jetstream.jsmsg import JsMsg
from ._carrier import context_of
from ._names import (
    BODY_SIZE,
    CONSUMED_BYTES,
    CONSUMED_MESSAGES,
    CONSUMER_GROUP,
    DESTINATION_NAME,
    DESTINATION_TEMPLATE,
    DESTINATION_TEMPORARY,
    DURATION_BUCKETS,
    ERROR_TYPE,
    INSTRUMENTATION_NAME,
    MESSAGE_ID,
    MESSAGING_SYSTEM,
    NATS_DELIVERY_COUNT,
    NATS_STREAM,
    NATS_STREAM_SEQUENCE,
    OPERATION_DURATION,
    OPERATION_NAME,
    OPERATION_TYPE,
    PROCESS_DURATION,
    RECEIVE,
    SCHEMA_URL,
    SENT_BYTES,
    SENT_MESSAGES,
    SERVER_ADDRESS,
    SERVER_PORT,
    SUBSCRIPTION_NAME,
    SYSTEM,
)

if TYPE_CHECKING:
    from ..connection import NatsConnection
    from ..msg import Msg

__all__ = ["Telemetry", "body_size", "error_type"]

_perf = time.perf_counter
_MSG_ID = "Nats-Msg-Id"
_DEFAULT_INBOX = "_INBOX."

Attributes = dict[str, Any]


def body_size(payload: object) -> int:
    """The size of a payload in bytes as it goes on the wire (0 for what publish will refuse anyway)."""
    if isinstance(payload, (bytes, bytearray)):
        return len(payload)
    if isinstance(payload, memoryview):
        return payload.nbytes
    if isinstance(payload, str):
        return len(payload.encode("utf-8", "replace"))
    return 0


def error_type(error: BaseException) -> str:
    """``error.type``: the exception's class, qualified by its module unless it is a builtin."""
    cls = type(error)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _histogram(meter: Meter, name: str, description: str) -> Histogram:
    try:
        return meter.create_histogram(
            name, unit="s", description=description, explicit_bucket_boundaries_advisory=DURATION_BUCKETS
        )
    except TypeError:  # an API older than 1.23 has no bucket advice
        return meter.create_histogram(name, unit="s", description=description)


def _is_wildcard(subject: str) -> bool:
    return "*" in subject or ">" in subject


class Telemetry:
    """What an instrumented connection reports with; ``active`` turns every wrapper of it into a pass-through."""

    def __init__(
        self, nc: NatsConnection, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
    ) -> None:
        self.active = True
        self._owner = weakref.ref(nc)  # the wrappers this object serves are held by the connection itself
        self.tracer = trace.get_tracer(INSTRUMENTATION_NAME, __version__, tracer_provider, schema_url=SCHEMA_URL)
        meter = metrics.get_meter(INSTRUMENTATION_NAME, __version__, meter_provider, schema_url=SCHEMA_URL)
        self.sent_messages = meter.create_counter(
            SENT_MESSAGES, unit="{message}", description="Number of messages the client attempted to send."
        )
        self.sent_bytes = meter.create_counter(
            SENT_BYTES, unit="By", description="Payload bytes of the messages the client attempted to send."
        )
        self.consumed_messages = meter.create_counter(
            CONSUMED_MESSAGES, unit="{message}", description="Number of messages delivered to the application."
        )
        self.consumed_bytes = meter.create_counter(
            CONSUMED_BYTES, unit="By", description="Payload bytes of the messages delivered to the application."
        )
        self.operation_duration = _histogram(
            meter, OPERATION_DURATION, "Duration of a request, or of a JetStream publish until its acknowledgement."
        )
        self.process_duration = _histogram(meter, PROCESS_DURATION, "Duration of a callback or service handler.")
        # replies come back on the connection's inbox subjects: temporary destinations, kept out of span names
        inbox = port_of(nc).new_inbox()
        self._inbox_prefix = inbox[: inbox.rfind(".") + 1]
        self._hostport: str | None = None
        self._server_attributes: Attributes = {}
        # (subject, queue) of a service endpoint whose handler is traced already, so subscribe leaves it alone
        self.claimed_subscription: tuple[str, str | None] | None = None

    # -- about the connection ---------------------------------------------------------------------------------------
    def headers_allowed(self) -> bool:
        """Whether the server takes headers (a server that does not gets no trace context, rather than an error)."""
        nc = self._owner()
        info = nc.info if nc is not None else None
        return info is None or info.headers

    def _is_temporary(self, subject: str) -> bool:
        return subject.startswith(self._inbox_prefix) or subject.startswith(_DEFAULT_INBOX)

    def _server(self) -> Attributes:
        nc = self._owner()
        hostport = nc.server if nc is not None else ""
        if hostport != self._hostport:  # parsed again only after a reconnect to another server
            self._hostport = hostport
            host, _, port = hostport.rpartition(":")
            attributes: Attributes = {}
            if host:
                attributes[SERVER_ADDRESS] = host.strip("[]")
            if port.isdigit():
                attributes[SERVER_PORT] = int(port)
            self._server_attributes = attributes
        return self._server_attributes

    # -- sending ------------------------------------------------------------------------------------------------------
    def start_send(
        self, kind: SpanKind, operation: tuple[str, str], subject: str, size: int, message_id: str | None = None
    ) -> tuple[Span, Attributes]:
        """A PRODUCER (publish) or CLIENT (request) span, child of the current context, and the attributes of its
        measurements."""
        name, op_type = operation
        measured: Attributes = {MESSAGING_SYSTEM: SYSTEM, OPERATION_NAME: name, OPERATION_TYPE: op_type}
        temporary = self._is_temporary(subject)
        if temporary:
            measured[DESTINATION_TEMPORARY] = True
        else:
            measured[DESTINATION_NAME] = subject
        attributes = {**measured, **self._server(), DESTINATION_NAME: subject, BODY_SIZE: size}
        if message_id:
            attributes[MESSAGE_ID] = message_id
        span = self.tracer.start_span(name if temporary else f"{name} {subject}", kind=kind, attributes=attributes)
        return span, measured

    def end_send(
        self, span: Span, measured: Attributes, size: int, started: float | None, error: BaseException | None
    ) -> None:
        """End a send span and count the message (attempted, so failed ones too, with ``error.type``); with
        ``started``, the operation waited on the server (a request, an acknowledged publish) and its duration is
        recorded (a core publish only appends to a buffer: its duration would say nothing)."""
        if error is not None and isinstance(error, Exception):
            fail(span, error)
            measured = {**measured, ERROR_TYPE: error_type(error)}
        self.sent_messages.add(1, measured)
        self.sent_bytes.add(size, measured)
        if started is not None:
            self.operation_duration.record(_perf() - started, measured)
        span.end()

    # -- delivering ---------------------------------------------------------------------------------------------------
    def start_delivery(
        self,
        kind: SpanKind,
        operation: tuple[str, str],
        msg: Msg,
        template: str | None = None,
        queue: str | None = None,
        extra: Attributes | None = None,
        start_time: int | None = None,
    ) -> tuple[Span, Attributes, Context]:
        """A span for one delivered message, child of the trace context it carries (a new trace when it carries
        none), counted as consumed; returns the span, the attributes of its measurements and the context to make
        current while the message is processed."""
        name, op_type = operation
        subject = msg.subject
        data = msg.data
        measured: Attributes = {MESSAGING_SYSTEM: SYSTEM, OPERATION_NAME: name, OPERATION_TYPE: op_type}
        attributes: Attributes = {DESTINATION_NAME: subject, BODY_SIZE: len(data)}
        if template is not None and template != subject and _is_wildcard(template):
            measured[DESTINATION_TEMPLATE] = template
            span_name = f"{name} {template}"
        elif self._is_temporary(subject):
            measured[DESTINATION_TEMPORARY] = True
            span_name = name
        else:
            measured[DESTINATION_NAME] = subject
            span_name = f"{name} {subject}"
        if queue:
            measured[CONSUMER_GROUP] = queue
        if isinstance(msg, JsMsg):
            self._jetstream(msg, attributes)
        attributes.update(measured)
        attributes.update(self._server())
        if extra:
            attributes.update(extra)
        parent = context_of(msg.headers)
        span = self.tracer.start_span(
            span_name, context=parent, kind=kind, attributes=attributes, start_time=start_time
        )
        self.consumed_messages.add(1, measured)
        self.consumed_bytes.add(len(data), measured)
        return span, measured, trace.set_span_in_context(span, parent)

    @staticmethod
    def _jetstream(msg: JsMsg, attributes: Attributes) -> None:
        try:
            info = msg.info
        except Exception:  # noqa: BLE001 - a message without a JetStream reply subject has no delivery info
            return
        attributes[NATS_STREAM] = info.stream
        attributes[SUBSCRIPTION_NAME] = info.consumer
        attributes[NATS_STREAM_SEQUENCE] = info.stream_sequence
        attributes[NATS_DELIVERY_COUNT] = info.delivery_count
        headers = msg.headers
        if headers is not None:
            msg_id = headers.get(_MSG_ID)
            if msg_id:
                attributes[MESSAGE_ID] = msg_id

    def end_process(self, span: Span, measured: Attributes, started: float, error: BaseException | None) -> None:
        """End a process (or service) span and record how long the callback or handler took."""
        elapsed = _perf() - started
        if error is not None and isinstance(error, Exception):
            fail(span, error)
            measured = {**measured, ERROR_TYPE: error_type(error)}
        self.process_duration.record(elapsed, measured)
        span.end()

    def received(self, msg: Msg, start_time: int, template: str | None, queue: str | None) -> None:
        """One message handed out by an iterator: a receive span from the call to the hand-out (no duration is
        recorded: the time an iterator waits is the time nothing arrived, not the cost of an operation)."""
        span, _, _ = self.start_delivery(SpanKind.CONSUMER, RECEIVE, msg, template, queue, start_time=start_time)
        span.end()


def fail(span: Span, error: Exception) -> None:
    """Mark ``span`` failed by ``error`` (a cancellation is not a failure and is never passed here)."""
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.set_attribute(ERROR_TYPE, error_type(error))
