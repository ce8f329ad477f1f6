"""Instrumented JetStream clients (each one ``nc.jetstream()`` returns on an instrumented connection): ``publish``
and ``publish_async`` get a PRODUCER span and carry its context; the consumers they hand out give their callbacks a
process span and their iterators a receive span, both with the stream, consumer, stream sequence and delivery count
of each message. Key-Value and object-store views are not traced."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Span, SpanKind

from ._carrier import with_trace_context
from ._changes import Changes
from ._delivering import Delivery, traced_callback
from ._names import NATS_STREAM, NATS_STREAM_SEQUENCE, PUBLISH
from ._sending import inner_operation, untraced_subject
from ._telemetry import Attributes, Telemetry, body_size

if TYPE_CHECKING:
    from ..jetstream.api import PubAck
    from ..jetstream.client import JetStreamClient
    from ..jetstream.consumer import Consumer

__all__ = ["instrument_jetstream"]

_perf = time.perf_counter


def instrument_jetstream(tel: Telemetry, changes: Changes, js: JetStreamClient) -> None:
    """Shadow the publishing and consuming entry points of ``js`` with traced ones."""
    changes.shadow(
        js,
        {
            "publish": _traced_publish(tel, js.publish),
            "publish_async": _traced_publish_async(tel, js.publish_async),
            "subscribe": _traced_legacy(tel, changes, js.subscribe),
            "pull_subscribe": _traced_legacy(tel, changes, js.pull_subscribe),
        },
    )
    consumers = js.consumers
    get = consumers.get
    get_pull_consumer_for = consumers.get_pull_consumer_for

    async def get_traced(stream: str, name: Any = None) -> Consumer:
        consumer = await get(stream, name)
        if tel.active:
            _instrument_consumer(tel, changes, consumer)
        return consumer

    def get_pull_consumer_for_traced(info: Any) -> Consumer:
        consumer = get_pull_consumer_for(info)
        if tel.active:
            _instrument_consumer(tel, changes, consumer)
        return consumer

    changes.shadow(consumers, {"get": get_traced, "get_pull_consumer_for": get_pull_consumer_for_traced})


def _acked(span: Span, ack: PubAck) -> None:
    span.set_attribute(NATS_STREAM, ack.stream)
    span.set_attribute(NATS_STREAM_SEQUENCE, ack.seq)


def _start(tel: Telemetry, subject: str, payload: Any, options: dict[str, Any]) -> tuple[Span, Attributes, int]:
    size = body_size(payload)
    span, measured = tel.start_send(SpanKind.PRODUCER, PUBLISH, subject, size, options.get("msg_id"))
    return span, measured, size


def _traced_publish(tel: Telemetry, publish: Callable[..., Awaitable[PubAck]]) -> Callable[..., Awaitable[PubAck]]:
    async def publish_traced(subject: str, payload: Any = b"", **options: Any) -> PubAck:
        if not tel.active or untraced_subject(subject) or inner_operation.get():
            return await publish(subject, payload, **options)
        span, measured, size = _start(tel, subject, payload, options)
        started = _perf()
        token = inner_operation.set(True)  # the request inside is this publish, not a span of its own
        try:
            if tel.headers_allowed():
                options["headers"] = with_trace_context(options.get("headers"), span)
            ack = await publish(subject, payload, **options)
        except BaseException as exc:
            tel.end_send(span, measured, size, started, exc)
            raise
        finally:
            inner_operation.reset(token)
        _acked(span, ack)
        tel.end_send(span, measured, size, started, None)
        return ack

    return publish_traced


def _traced_publish_async(
    tel: Telemetry, publish_async: Callable[..., Awaitable[asyncio.Future[PubAck]]]
) -> Callable[..., Awaitable[asyncio.Future[PubAck]]]:
    async def publish_async_traced(subject: str, payload: Any = b"", **options: Any) -> asyncio.Future[PubAck]:
        if not tel.active or untraced_subject(subject) or inner_operation.get():
            return await publish_async(subject, payload, **options)
        span, measured, size = _start(tel, subject, payload, options)
        started = _perf()
        token = inner_operation.set(True)
        try:
            if tel.headers_allowed():
                options["headers"] = with_trace_context(options.get("headers"), span)
            future = await publish_async(subject, payload, **options)
        except BaseException as exc:
            tel.end_send(span, measured, size, started, exc)
            raise
        finally:
            inner_operation.reset(token)

        def settled(done: asyncio.Future[PubAck]) -> None:
            # the span lasts until the acknowledgement (or its failure) settles the future; reading the error here
            # marks it retrieved, and it is in the span instead of an "exception was never retrieved" log line
            if done.cancelled():
                tel.end_send(span, measured, size, started, None)
                return
            error = done.exception()
            if error is None:
                _acked(span, done.result())
            tel.end_send(span, measured, size, started, error)

        future.add_done_callback(settled)
        return future

    return publish_async_traced


def _traced_legacy(tel: Telemetry, changes: Changes, subscribe: Callable[..., Awaitable[Any]]) -> Any:
    """A legacy push or pull subscription (``js.subscribe``/``js.pull_subscribe``)."""

    async def subscribe_traced(subject: str, **options: Any) -> Any:
        callback = options.get("callback")
        if tel.active and callback is not None and callable(callback):
            options["callback"] = traced_callback(tel, callback, Delivery())
        sub = await subscribe(subject, **options)
        if tel.active and callback is None:
            changes.trace_iterator(sub)
        return sub

    return subscribe_traced


def _instrument_consumer(tel: Telemetry, changes: Changes, consumer: Consumer) -> None:
    fetch = consumer.fetch
    consume = consumer.consume

    async def fetch_traced(**options: Any) -> Any:
        messages = await fetch(**options)
        if tel.active:
            changes.trace_iterator(messages)
        return messages

    async def consume_traced(**options: Any) -> Any:
        callback = options.get("callback")
        if tel.active and callback is not None and callable(callback):
            options["callback"] = traced_callback(tel, callback, Delivery())
        messages = await consume(**options)
        if tel.active and callback is None:
            changes.trace_iterator(messages)
        return messages

    # Consumer.next() fetches one message through fetch(): it is traced with it
    changes.shadow(consumer, {"fetch": fetch_traced, "consume": consume_traced})
