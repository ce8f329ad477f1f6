"""cnats.otel on JetStream: js.publish / publish_async spans with the acknowledgement's stream and sequence, and
consumer deliveries (callback, fetch, next, legacy subscriptions) with the stream, consumer, stream sequence and
delivery count. A real nats-server with JetStream."""

from __future__ import annotations

import asyncio
from typing import Any

from helpers.core import eventually
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from cnats import NatsConnection
from cnats.jetstream import AckPolicy, ConsumerConfig, JsMsg

from .conftest import Metrics, Spans


def parent_of(child: ReadableSpan, parent: ReadableSpan) -> bool:
    assert child.parent is not None, f"{child.name} has no parent"
    return child.parent.span_id == parent.context.span_id and child.context.trace_id == parent.context.trace_id


async def _stream(nc: NatsConnection, name: str = "ORDERS", subjects: str = "orders.>") -> None:
    jsm = await nc.jetstream_manager()
    await jsm.streams.add(name=name, subjects=[subjects])


async def _durable(nc: NatsConnection, stream: str, name: str) -> None:
    jsm = await nc.jetstream_manager()
    await jsm.consumers.add(stream, ConsumerConfig(durable_name=name, ack_policy=AckPolicy.EXPLICIT))


async def test_publish_span_carries_the_ack(inc: NatsConnection, spans: Spans, measured: Metrics) -> None:
    await _stream(inc)
    js = inc.jetstream()
    ack = await js.publish("orders.eu", b"order", msg_id="order-1")
    (publish,) = spans.named("publish orders.eu")
    assert publish.kind == SpanKind.PRODUCER
    assert publish.attributes is not None
    assert publish.attributes["messaging.operation.type"] == "send"
    assert publish.attributes["messaging.message.id"] == "order-1"
    assert publish.attributes["messaging.nats.stream.name"] == "ORDERS"
    assert publish.attributes["messaging.nats.message.stream_sequence"] == ack.seq
    # the request inside js.publish is the publish itself: no CLIENT span, nothing for the API calls
    assert [s.name for s in spans.all()] == ["publish orders.eu"]
    stored = await (await inc.jetstream_manager()).streams.get_message("ORDERS", ack.seq)
    assert stored.headers is not None
    assert stored.headers.get("Nats-Msg-Id") == "order-1"
    assert stored.headers.get("traceparent").startswith(f"00-{publish.context.trace_id:032x}-")
    where = {"messaging.operation.name": "publish", "messaging.destination.name": "orders.eu"}
    assert measured.total("messaging.client.sent.messages", where) == 1
    assert measured.total("messaging.client.operation.duration", where) == 1  # until the acknowledgement


async def test_publish_async_span_ends_with_the_ack(inc: NatsConnection, spans: Spans) -> None:
    await _stream(inc)
    js = inc.jetstream()
    futures = [await js.publish_async("orders.us", b"%d" % i) for i in range(3)]
    acks = await asyncio.gather(*futures)
    publishes = await spans.wait("publish orders.us", 3)
    assert sorted(s.attributes["messaging.nats.message.stream_sequence"] for s in publishes if s.attributes) == [
        a.seq for a in acks
    ]


async def test_consume_callback_gets_process_spans(inc: NatsConnection, spans: Spans) -> None:
    await _stream(inc)
    await _durable(inc, "ORDERS", "billing")
    js = inc.jetstream()
    await js.publish("orders.eu", b"first", msg_id="m-1")
    consumer = await js.consumers.get("ORDERS", "billing")
    seen: list[tuple[int, int]] = []

    def handle(msg: JsMsg) -> None:
        seen.append((msg.info.stream_sequence, msg.info.delivery_count))
        if msg.info.delivery_count == 1:
            msg.nak()  # once more, please
        else:
            msg.ack()

    messages = await consumer.consume(callback=handle, expires=5)
    processes = await spans.wait("process orders.eu", 2)
    await messages.close()
    (publish,) = spans.named("publish orders.eu")
    assert seen == [(1, 1), (1, 2)]
    for process, count in zip(processes, (1, 2), strict=True):
        assert process.kind == SpanKind.CONSUMER
        assert parent_of(process, publish)
        attributes: Any = process.attributes
        assert attributes["messaging.nats.stream.name"] == "ORDERS"
        assert attributes["messaging.destination.subscription.name"] == "billing"
        assert attributes["messaging.nats.message.stream_sequence"] == 1
        assert attributes["messaging.nats.message.delivery_count"] == count
        assert attributes["messaging.message.id"] == "m-1"
    # neither the pull requests nor the acks are spans
    assert {s.name for s in spans.all()} == {"publish orders.eu", "process orders.eu"}


async def test_async_consume_callback_error_leaves_the_message_unacked(inc: NatsConnection, spans: Spans) -> None:
    await _stream(inc)
    js = inc.jetstream()
    await js.publish("orders.eu", b"x")
    consumer = await js.consumers.get("ORDERS")
    calls: list[int] = []

    async def handle(msg: JsMsg) -> None:
        calls.append(msg.info.delivery_count)
        raise RuntimeError("broken")

    messages = await consumer.consume(callback=handle, expires=5)
    (process,) = await spans.wait("process orders.eu")
    await messages.close()
    assert calls == [1]
    assert process.status.is_ok is False
    assert process.attributes is not None
    assert process.attributes["error.type"] == "RuntimeError"


async def test_fetch_and_next_get_receive_spans(inc: NatsConnection, spans: Spans) -> None:
    await _stream(inc)
    await _durable(inc, "ORDERS", "audit")
    js = inc.jetstream()
    for i in range(3):
        await js.publish(f"orders.{i}", b"%d" % i)
    consumer = await js.consumers.get("ORDERS", "audit")
    messages = await consumer.fetch(max_messages=2, expires=5)
    data = []
    async for msg in messages:
        data.append(msg.data)
        msg.ack()
    last = await consumer.next(expires=5)
    assert last is not None
    last.ack()
    assert data == [b"0", b"1"] and last.data == b"2"
    receives = spans.of_kind(SpanKind.CONSUMER)
    assert sorted(s.name for s in receives) == ["receive orders.0", "receive orders.1", "receive orders.2"]
    for receive in receives:
        attributes: Any = receive.attributes
        assert attributes["messaging.operation.type"] == "receive"
        assert attributes["messaging.destination.subscription.name"] == "audit"
        (publish,) = spans.named("publish " + attributes["messaging.destination.name"])
        assert parent_of(receive, publish)


async def test_ordered_consumer_iterator(inc: NatsConnection, spans: Spans) -> None:
    await _stream(inc)
    js = inc.jetstream()
    await js.publish("orders.a", b"a")
    await js.publish("orders.b", b"b")
    consumer = await js.consumers.get("ORDERS")
    messages = await consumer.consume(expires=5)
    got = []
    async for msg in messages:
        got.append(msg.data)
        if len(got) == 2:
            break
    await messages.close()
    assert got == [b"a", b"b"]
    assert sorted(s.name for s in spans.of_kind(SpanKind.CONSUMER)) == ["receive orders.a", "receive orders.b"]


async def test_legacy_push_subscription(inc: NatsConnection, spans: Spans) -> None:
    await _stream(inc)
    js = inc.jetstream()
    got: list[bytes] = []
    sub = await js.subscribe("orders.>", callback=lambda msg: got.append(msg.data))
    await js.publish("orders.push", b"p")
    (process,) = await spans.wait("process orders.push")
    (publish,) = spans.named("publish orders.push")
    assert parent_of(process, publish)
    await eventually(lambda: got == [b"p"])
    sub.unsubscribe()


async def test_legacy_pull_subscription_iterator(inc: NatsConnection, spans: Spans) -> None:
    await _stream(inc)
    js = inc.jetstream()
    await js.publish("orders.pull", b"p")
    sub = await js.pull_subscribe("orders.>", durable="legacy")
    sub.pull(1)
    msg = await sub.next_msg(5)
    msg.ack()
    (receive,) = spans.named("receive orders.pull")
    (publish,) = spans.named("publish orders.pull")
    assert parent_of(receive, publish)
    sub.unsubscribe()
