"""The trace context crosses clients: a nats-py peer on the same real server reads the ``traceparent`` cnats wrote,
and cnats continues a trace whose context a peer wrote (as an instrumented nats-py or nats.go service would)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats
import pytest
from helpers.nats_py import py_subscribe
from nats.aio.client import Client as NatsPyClient
from nats.aio.msg import Msg as NatsPyMsg
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from cnats import NatsConnection
from cnats.services import ServiceMsg
from cnats.testing import NatsServer

from .conftest import Spans

pytestmark = pytest.mark.nats_server(jetstream=False)


PY_NAME = "otel-nats-py"


@pytest.fixture
async def py(nats_server: NatsServer) -> AsyncIterator[NatsPyClient]:
    client = await nats.connect(nats_server.url, name=PY_NAME, allow_reconnect=False)
    try:
        yield client
    finally:
        await client.close()


def _traceparent(trace_id: int, span_id: int) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-01"


async def test_nats_py_reads_the_traceparent(
    nats_server: NatsServer, inc: NatsConnection, py: NatsPyClient, spans: Spans
) -> None:
    received: asyncio.Queue[NatsPyMsg] = asyncio.Queue()
    await py_subscribe(nats_server, py, "interop.out", cb=received.put)
    inc.publish("interop.out", b"hello nats-py", headers={"X-App": "cnats"})
    msg = await asyncio.wait_for(received.get(), 5)
    (publish,) = spans.named("publish interop.out")
    assert msg.headers is not None
    assert msg.headers["X-App"] == "cnats"
    version, trace_id, span_id, flags = msg.headers["traceparent"].split("-")
    assert version == "00"
    assert int(trace_id, 16) == publish.context.trace_id
    assert int(span_id, 16) == publish.context.span_id
    assert int(flags, 16) & 1  # sampled


async def test_cnats_continues_a_trace_a_peer_started(
    inc: NatsConnection, py: NatsPyClient, spans: Spans, tracer_provider: TracerProvider
) -> None:
    inc.subscribe("interop.in", callback=lambda msg: None)
    await inc.flush()
    remote = tracer_provider.get_tracer("peer").start_span("peer publish", kind=SpanKind.PRODUCER)
    remote.end()  # stands for the span of an instrumented peer
    ctx = remote.get_span_context()
    await py.publish(
        "interop.in",
        b"from nats-py",
        headers={"traceparent": _traceparent(ctx.trace_id, ctx.span_id), "tracestate": "vendor=x"},
    )
    await py.publish("interop.in", b"and one without trace context")
    processes = await spans.wait("process interop.in", 2)
    traced = [p for p in processes if p.parent is not None]
    assert len(traced) == 1
    assert traced[0].parent is not None
    assert traced[0].parent.span_id == ctx.span_id
    assert traced[0].context.trace_id == ctx.trace_id
    assert traced[0].parent.is_remote
    assert traced[0].context.trace_state.get("vendor") == "x"


async def test_nats_py_request_to_a_cnats_service(
    inc: NatsConnection, py: NatsPyClient, spans: Spans, tracer_provider: TracerProvider
) -> None:
    service = await inc.services.add("greeter", "1.0.0")

    async def greet(msg: ServiceMsg) -> None:
        msg.respond(b"hello " + msg.data)

    service.add_endpoint("greet", greet)
    await inc.flush()
    client = tracer_provider.get_tracer("peer").start_span("peer request", kind=SpanKind.CLIENT)
    client.end()
    ctx = client.get_span_context()
    reply = await py.request(
        "greet", b"py", timeout=5, headers={"traceparent": _traceparent(ctx.trace_id, ctx.span_id)}
    )
    assert reply.data == b"hello py"
    (server,) = await spans.wait("process greet", kind=SpanKind.SERVER)
    assert server.parent is not None and server.parent.span_id == ctx.span_id
    assert server.context.trace_id == ctx.trace_id


async def test_cnats_request_to_a_nats_py_responder(
    nats_server: NatsServer, inc: NatsConnection, py: NatsPyClient, spans: Spans
) -> None:
    seen: list[str] = []

    async def respond(msg: NatsPyMsg) -> None:
        seen.append((msg.headers or {}).get("traceparent", ""))
        await msg.respond(b"pong")

    await py_subscribe(nats_server, py, "interop.rpc", cb=respond)
    reply = await inc.request("interop.rpc", b"ping", timeout=5)
    assert reply.data == b"pong"
    (client,) = spans.named("request interop.rpc", SpanKind.CLIENT)
    (traceparent,) = seen
    _, trace_id, span_id, _ = traceparent.split("-")
    assert (int(trace_id, 16), int(span_id, 16)) == (client.context.trace_id, client.context.span_id)
