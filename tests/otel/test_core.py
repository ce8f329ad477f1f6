"""cnats.otel on core messaging: publish, callback and iterator deliveries, request/reply and services, the trace
context in the headers, metrics, and what uninstrument() puts back. A real nats-server throughout."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest
from helpers.core import eventually
from helpers.lifecycle import next_callback_error
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import SpanKind, StatusCode

import cnats
from cnats import Headers, Msg, NatsConnection, Subscription
from cnats.errors import InvalidOptionError, NoRespondersError
from cnats.otel import instrument, uninstrument
from cnats.services import ServiceError, ServiceMsg
from cnats.testing import NatsServer

from .conftest import Metrics, Spans

pytestmark = pytest.mark.nats_server(jetstream=False)


def parent_of(child: ReadableSpan, parent: ReadableSpan) -> bool:
    assert child.parent is not None, f"{child.name} has no parent"
    return child.parent.span_id == parent.context.span_id and child.context.trace_id == parent.context.trace_id


def traceparent_of(span: ReadableSpan) -> str:
    return f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-"


# -- publish and callback deliveries ---------------------------------------------------------------------------------


async def test_publish_and_callback_delivery_are_linked(inc: NatsConnection, spans: Spans) -> None:
    got: list[Msg] = []
    inc.subscribe("orders.new", callback=got.append)
    inc.publish("orders.new", b"order 1")
    (process,) = await spans.wait("process orders.new")
    (publish,) = spans.named("publish orders.new")

    assert publish.kind == SpanKind.PRODUCER
    assert publish.parent is None  # no span was current: the root of a new trace
    assert publish.attributes is not None and process.attributes is not None
    assert publish.attributes["messaging.system"] == "nats"
    assert publish.attributes["messaging.operation.name"] == "publish"
    assert publish.attributes["messaging.operation.type"] == "send"
    assert publish.attributes["messaging.destination.name"] == "orders.new"
    assert publish.attributes["messaging.message.body.size"] == 7
    assert publish.attributes["server.address"] == "127.0.0.1"
    assert isinstance(publish.attributes["server.port"], int)

    assert process.kind == SpanKind.CONSUMER
    assert parent_of(process, publish)
    assert process.attributes["messaging.operation.name"] == "process"
    assert process.attributes["messaging.operation.type"] == "process"
    assert process.attributes["messaging.destination.name"] == "orders.new"
    assert process.attributes["messaging.message.body.size"] == 7
    # the delivered message carries the producer span's context
    assert got[0].headers is not None
    assert got[0].headers.get("traceparent").startswith(traceparent_of(publish))


async def test_publish_is_a_child_of_the_current_span(
    inc: NatsConnection, spans: Spans, tracer_provider: TracerProvider
) -> None:
    tracer = tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("handle http request"):
        inc.publish("events", b"x")
    (publish,) = spans.named("publish events")
    (outer,) = spans.named("handle http request")
    assert parent_of(publish, outer)


async def test_wildcard_and_queue_subscription(inc: NatsConnection, spans: Spans) -> None:
    inc.subscribe("orders.*", queue="workers", callback=lambda msg: None)
    inc.publish("orders.eu", b"1")
    (process,) = await spans.wait("process orders.*")
    assert process.attributes is not None
    assert process.attributes["messaging.destination.template"] == "orders.*"
    assert process.attributes["messaging.destination.name"] == "orders.eu"
    assert process.attributes["messaging.consumer.group.name"] == "workers"


async def test_async_callback_runs_inside_its_span(inc: NatsConnection, spans: Spans) -> None:
    current: list[Any] = []

    async def handler(msg: Msg) -> None:
        await asyncio.sleep(0)
        current.append(trace.get_current_span().get_span_context())

    inc.subscribe("work", callback=handler)
    inc.publish("work", b"job")
    (process,) = await spans.wait("process work")
    assert current == [process.context]
    (publish,) = spans.named("publish work")
    assert parent_of(process, publish)


async def test_plain_callback_returning_a_coroutine(inc: NatsConnection, spans: Spans) -> None:
    done: list[bytes] = []

    async def work(msg: Msg) -> None:
        await asyncio.sleep(0)
        done.append(msg.data)

    inc.subscribe("lazy", callback=lambda msg: work(msg))
    for i in range(3):
        inc.publish("lazy", b"%d" % i)
    processes = await spans.wait("process lazy", 3)
    assert done == [b"0", b"1", b"2"]
    publishes = spans.named("publish lazy")
    assert {p.parent.span_id for p in processes if p.parent} == {p.context.span_id for p in publishes}


async def test_callback_error_is_recorded_and_still_reported(inc: NatsConnection, spans: Spans) -> None:
    statuses = inc.status()
    calls: list[bytes] = []

    def fails(msg: Msg) -> None:
        calls.append(msg.data)
        if msg.data == b"bad":
            raise ValueError("cannot handle it")

    inc.subscribe("jobs", callback=fails)
    inc.publish("jobs", b"bad")
    inc.publish("jobs", b"good")
    processes = await spans.wait("process jobs", 2)
    assert calls == [b"bad", b"good"]  # the subscription went on
    failed = [s for s in processes if s.status.status_code == StatusCode.ERROR]
    assert len(failed) == 1
    assert failed[0].attributes is not None
    assert failed[0].attributes["error.type"] == "ValueError"
    assert [event.name for event in failed[0].events] == ["exception"]
    error = await next_callback_error(statuses)  # reported as it is without instrumentation
    assert isinstance(error.__cause__, ValueError)


# -- headers ------------------------------------------------------------------------------------------------------


async def test_user_headers_are_kept_and_not_changed(inc: NatsConnection, spans: Spans) -> None:
    sub = inc.subscribe("h")
    mine = Headers()
    mine.append("X-Order", "42")
    mine.append("X-Tag", "a")
    mine.append("X-Tag", "b")
    inc.publish("h", b"", headers=mine)
    inc.publish("h", b"", headers={"X-Map": "yes"})
    first = await sub.next_msg(5)
    second = await sub.next_msg(5)
    assert first.headers is not None and second.headers is not None
    assert first.headers.get("X-Order") == "42"
    assert first.headers.values("X-Tag") == ["a", "b"]
    assert first.headers.get("traceparent").startswith("00-")
    assert second.headers.get("X-Map") == "yes"
    assert second.headers.get("traceparent").startswith("00-")
    assert "traceparent" not in mine  # the caller's object is untouched
    assert mine.keys() == ["X-Order", "X-Tag"]


async def test_a_message_without_trace_context_starts_a_trace(
    inc: NatsConnection, nc2: NatsConnection, spans: Spans
) -> None:
    got: list[Msg] = []
    inc.subscribe("plain", callback=got.append)
    await inc.flush()
    nc2.publish("plain", b"from an uninstrumented peer")  # no headers at all
    nc2.publish("plain", b"with other headers", headers={"X-Only": "this"})
    processes = await spans.wait("process plain", 2)
    assert len(got) == 2
    assert all(span.parent is None for span in processes)
    assert len({span.context.trace_id for span in processes}) == 2


async def test_malformed_traceparent_starts_a_trace(inc: NatsConnection, nc2: NatsConnection, spans: Spans) -> None:
    got: list[Msg] = []
    inc.subscribe("odd", callback=got.append)
    await inc.flush()
    nc2.publish("odd", b"", headers={"traceparent": "not a trace context"})
    (process,) = await spans.wait("process odd")
    assert process.parent is None
    assert len(got) == 1


# -- iterators ---------------------------------------------------------------------------------------------------


async def test_iterator_deliveries_get_receive_spans(inc: NatsConnection, spans: Spans) -> None:
    sub = inc.subscribe("feed")
    assert type(sub).__name__ == "Subscription" and isinstance(sub, Subscription)
    for i in range(3):
        inc.publish("feed", b"%d" % i)
    received = []
    async for msg in sub:
        received.append(msg.data)
        if len(received) == 2:
            break
    received.append((await sub.next_msg(5)).data)
    assert received == [b"0", b"1", b"2"]
    receives = spans.named("receive feed", SpanKind.CONSUMER)
    publishes = spans.named("publish feed")
    assert len(receives) == 3
    for receive in receives:
        assert receive.attributes is not None
        assert receive.attributes["messaging.operation.type"] == "receive"
    assert sorted(r.parent.span_id for r in receives if r.parent) == sorted(p.context.span_id for p in publishes)


async def test_iterator_ends_as_usual(inc: NatsConnection, spans: Spans) -> None:
    sub = inc.subscribe("short", max=2)
    inc.publish("short", b"a")
    inc.publish("short", b"b")
    assert [msg.data async for msg in sub] == [b"a", b"b"]
    assert len(spans.named("receive short")) == 2


# -- request / reply and services ----------------------------------------------------------------------------------


async def test_request_and_service_handler_are_parent_and_child(inc: NatsConnection, spans: Spans) -> None:
    service = await inc.services.add("calc", "1.0.0")

    async def add(msg: ServiceMsg) -> None:
        a, b = msg.json()
        msg.respond(str(a + b))

    service.add_endpoint("add", add)
    await inc.flush()
    reply = await inc.request("add", b"[2, 3]", timeout=5)
    assert reply.data == b"5"
    (server,) = await spans.wait("process add", kind=SpanKind.SERVER)
    (client,) = spans.named("request add", SpanKind.CLIENT)
    assert parent_of(server, client)
    assert server.context.trace_id == client.context.trace_id
    assert server.attributes is not None and client.attributes is not None
    assert client.attributes["messaging.operation.name"] == "request"
    assert server.attributes["messaging.nats.service.name"] == "calc"
    assert server.attributes["messaging.nats.service.endpoint"] == "add"
    assert server.attributes["messaging.consumer.group.name"] == "q"
    # one span per side: no publish span for the request's own send, none for the response, no CONSUMER span
    assert [s.name for s in spans.all() if s.name != "process add" and s.name != "request add"] == []
    assert reply.headers is None  # a response carries no trace context of its own


async def test_plain_service_handler_and_its_errors(inc: NatsConnection, spans: Spans) -> None:
    service = await inc.services.add("strict", "1.0.0")

    def check(msg: ServiceMsg) -> None:
        if msg.data == b"no":
            raise ServiceError(400, "refused")
        msg.respond(b"ok")

    service.add_endpoint("check", check)
    await inc.flush()
    assert (await inc.request("check", b"yes", timeout=5)).data == b"ok"
    refused = await inc.request("check", b"no", timeout=5)
    assert refused.headers is not None and refused.headers.get("Nats-Service-Error-Code") == "400"
    servers = await spans.wait("process check", 2, SpanKind.SERVER)
    clients = spans.named("request check", SpanKind.CLIENT)
    assert {s.parent.span_id for s in servers if s.parent} == {c.context.span_id for c in clients}
    failed = [s for s in servers if s.status.status_code == StatusCode.ERROR]
    assert len(failed) == 1 and failed[0].attributes is not None
    assert failed[0].attributes["error.type"] == "cnats.services.msg.ServiceError"
    assert (await service.stats()).endpoints[0].num_errors == 1  # the endpoint's own accounting is unchanged


async def test_request_to_a_traced_responder_on_another_connection(
    inc: NatsConnection, nc2: NatsConnection, spans: Spans, tracer_provider: TracerProvider
) -> None:
    instrument(nc2, tracer_provider=tracer_provider)
    nc2.subscribe("echo", callback=lambda msg: msg.respond(msg.data))
    await nc2.flush()
    assert (await inc.request("echo", b"hi", timeout=5)).data == b"hi"
    (process,) = await spans.wait("process echo")
    (client,) = spans.named("request echo")
    assert parent_of(process, client)
    assert len(spans.all()) == 2  # the response is part of the process span, on both protocol cores
    uninstrument(nc2)


async def test_request_failure_is_recorded(inc: NatsConnection, spans: Spans) -> None:
    with pytest.raises(NoRespondersError):
        await inc.request("nobody.home", b"", timeout=5)
    (client,) = spans.named("request nobody.home")
    assert client.status.status_code == StatusCode.ERROR
    assert client.attributes is not None
    assert client.attributes["error.type"] == "cnats.errors.NoRespondersError"


async def test_iterator_service_endpoint_gets_receive_spans(inc: NatsConnection, spans: Spans) -> None:
    service = await inc.services.add("pull", "1.0.0")
    endpoint = service.add_endpoint("next")
    await inc.flush()
    pending = asyncio.ensure_future(inc.request("next", b"?", timeout=5))
    async for msg in endpoint:
        msg.respond(b"!")
        break
    assert (await pending).data == b"!"
    (receive,) = spans.named("receive next")
    (client,) = spans.named("request next")
    assert parent_of(receive, client)


# -- what is not traced --------------------------------------------------------------------------------------------


async def test_dollar_subjects_are_not_traced(inc: NatsConnection, spans: Spans) -> None:
    got: list[Msg] = []
    inc.subscribe("$SYSX.test", callback=got.append)
    inc.publish("$SYSX.test", b"")
    await eventually(lambda: len(got) == 1)
    assert spans.all() == []
    assert got[0].headers is None


# -- metrics -------------------------------------------------------------------------------------------------------


async def test_metrics(inc: NatsConnection, spans: Spans, measured: Metrics) -> None:
    inc.subscribe("m.cb", callback=lambda msg: None)
    sub = inc.subscribe("m.it")
    inc.publish("m.cb", b"12345")
    inc.publish("m.cb", b"123")
    inc.publish("m.it", b"1")
    await sub.next_msg(5)
    await spans.wait("process m.cb", 2)
    inc.subscribe("m.rr", callback=lambda msg: msg.respond(b"ok"))
    await inc.request("m.rr", b"ping", timeout=5)

    def where(operation: str, destination: str) -> dict[str, Any]:
        return {"messaging.operation.name": operation, "messaging.destination.name": destination}

    assert measured.total("messaging.client.sent.messages", where("publish", "m.cb")) == 2
    assert measured.total("messaging.nats.client.sent.bytes", where("publish", "m.cb")) == 8
    assert measured.total("messaging.client.sent.messages", where("request", "m.rr")) == 1
    assert measured.total("messaging.nats.client.sent.bytes", where("request", "m.rr")) == 4
    assert measured.total("messaging.client.consumed.messages", where("process", "m.cb")) == 2
    assert measured.total("messaging.nats.client.consumed.bytes", where("process", "m.cb")) == 8
    assert measured.total("messaging.client.consumed.messages", where("receive", "m.it")) == 1
    assert measured.total("messaging.process.duration", where("process", "m.cb")) == 2  # count of the histogram
    # durations of what waits on the server only: a request, not a publish (a buffer append) or an iterator's wait
    assert measured.total("messaging.client.operation.duration", where("request", "m.rr")) == 1
    assert measured.total("messaging.client.operation.duration", where("publish", "m.cb")) == 0
    assert measured.total("messaging.client.operation.duration", where("receive", "m.it")) == 0
    for point in measured.points("messaging.client.sent.messages"):
        assert point.attributes["messaging.system"] == "nats"


# -- instrument / uninstrument -------------------------------------------------------------------------------------


async def test_uninstrument_puts_everything_back(
    nc: NatsConnection, spans: Spans, tracer_provider: TracerProvider
) -> None:
    instrument(nc, tracer_provider=tracer_provider)
    got: list[Msg] = []
    nc.subscribe("u.cb", callback=got.append)  # wrapped while instrumented
    it = nc.subscribe("u.it")
    assert "publish" in vars(nc)
    uninstrument(nc)

    assert not {"publish", "request", "subscribe", "jetstream"} & set(vars(nc))
    assert type(it) is Subscription
    assert type(nc).publish is NatsConnection.publish
    nc.publish("u.cb", b"after")
    nc.publish("u.it", b"after")
    msg = await it.next_msg(5)
    await eventually(lambda: len(got) == 1)
    assert msg.headers is None and got[0].headers is None  # no trace context injected any more
    later = nc.subscribe("u.later", callback=got.append)
    nc.publish("u.later", b"")
    await eventually(lambda: len(got) == 2)
    later.unsubscribe()
    assert spans.all() == []


async def test_instrument_twice_is_an_error_and_uninstrument_twice_is_not(
    nc: NatsConnection, spans: Spans, tracer_provider: TracerProvider
) -> None:
    instrument(nc, tracer_provider=tracer_provider)
    with pytest.raises(InvalidOptionError):
        instrument(nc, tracer_provider=tracer_provider)
    uninstrument(nc)
    uninstrument(nc)
    instrument(nc, tracer_provider=tracer_provider)  # again, after uninstrument
    nc.publish("again", b"")
    assert len(spans.named("publish again")) == 1
    uninstrument(nc)


async def test_instrument_takes_a_connection_only() -> None:
    with pytest.raises(TypeError):
        instrument(object())  # type: ignore[arg-type]


async def test_closing_an_instrumented_connection(
    nc: NatsConnection, spans: Spans, tracer_provider: TracerProvider
) -> None:
    instrument(nc, tracer_provider=tracer_provider)
    sub = nc.subscribe("c.it")
    nc.subscribe("c.cb", callback=lambda msg: None)
    nc.publish("c.it", b"1")
    await nc.flush()
    await nc.close()
    assert [msg.data async for msg in sub] == [b"1"]  # what it holds, then the end
    assert len(spans.named("receive c.it")) == 1
    uninstrument(nc)


async def test_instrumentation_keeps_nothing_alive(nats_server: NatsServer, tracer_provider: TracerProvider) -> None:
    nc = await cnats.connect(nats_server.url)
    instrument(nc, tracer_provider=tracer_provider)
    js = nc.jetstream()
    sub = nc.subscribe("gone")
    refs = [weakref.ref(obj) for obj in (nc, js, sub)]
    await nc.close()
    del nc, js, sub
    gc.collect()
    assert [ref() for ref in refs] == [None, None, None]
