"""Discovery: the exact ADR-32 JSON documents on ``$SRV.PING|INFO|STATS`` (no name, a name, name and id), and the
services client across several services and instances, with its filters, strategies, prefix and errors."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from cnats import Msg, NatsConnection, RequestStrategy
from cnats.errors import BadJsonError, NoRespondersError
from cnats.services import (
    EndpointInfo,
    EndpointStats,
    Service,
    ServiceIdentity,
    ServiceInfo,
    ServiceMsg,
    ServiceResponseType,
    ServiceStats,
    ServiceVerb,
)
from cnats.services.schema import parse_started

TIMEOUT = 10.0


async def collect(iterator: Any) -> list[Any]:
    async def run() -> list[Any]:
        return [item async for item in iterator]

    return await asyncio.wait_for(run(), TIMEOUT)


async def answer(nc: NatsConnection, subject: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((await nc.request(subject, timeout=2)).data)
    return document


@pytest.fixture
async def orders(nc: NatsConnection) -> Service:
    service = await nc.services.add(
        "orders", "1.2.3", description="order book", metadata={"region": "eu"}, stats_handler=lambda e: None
    )
    api = service.add_group("orders", queue_group="oq")

    def get(msg: ServiceMsg) -> None:
        if msg.data == b"bad":
            msg.respond_error(400, "bad order id")
        else:
            msg.respond(b"order")

    api.add_endpoint("get", get, metadata={"verb": "GET"})
    service.add_endpoint("count", lambda m: m.respond(b"3"))
    await nc.flush()
    return service


async def test_ping_document(nc: NatsConnection, orders: Service) -> None:
    expected = {
        "type": "io.nats.micro.v1.ping_response",
        "name": "orders",
        "id": orders.id,
        "version": "1.2.3",
        "metadata": {"region": "eu"},
    }
    for subject in ("$SRV.PING", "$SRV.PING.orders", f"$SRV.PING.orders.{orders.id}"):
        assert await answer(nc, subject) == expected
    assert orders.ping().to_dict() == expected


async def test_info_document(nc: NatsConnection, orders: Service) -> None:
    expected = {
        "type": "io.nats.micro.v1.info_response",
        "name": "orders",
        "id": orders.id,
        "version": "1.2.3",
        "metadata": {"region": "eu"},
        "description": "order book",
        "endpoints": [
            {"name": "get", "subject": "orders.get", "queue_group": "oq", "metadata": {"verb": "GET"}},
            {"name": "count", "subject": "count", "queue_group": "q", "metadata": {}},
        ],
    }
    for subject in ("$SRV.INFO", "$SRV.INFO.orders", f"$SRV.INFO.orders.{orders.id}"):
        assert await answer(nc, subject) == expected
    assert orders.info().to_dict() == expected


async def test_stats_document(nc: NatsConnection, orders: Service) -> None:
    await nc.request("orders.get", b"1", timeout=2)
    await nc.request("orders.get", b"bad", timeout=2)
    for subject in ("$SRV.STATS", "$SRV.STATS.orders", f"$SRV.STATS.orders.{orders.id}"):
        document = await answer(nc, subject)
        started = document.pop("started")
        get, count = document.pop("endpoints")
        assert document == {
            "type": "io.nats.micro.v1.stats_response",
            "name": "orders",
            "id": orders.id,
            "version": "1.2.3",
            "metadata": {"region": "eu"},
        }
        assert started.endswith("Z") and parse_started(started) == (await orders.stats()).started
        processing = get.pop("processing_time")
        average = get.pop("average_processing_time")
        assert get == {
            "name": "get",
            "subject": "orders.get",
            "queue_group": "oq",
            "num_requests": 2,
            "num_errors": 1,
            "last_error": "400:bad order id",
        }  # no "data": the stats handler returned None
        assert isinstance(processing, int) and processing > 0 and average == processing // 2
        assert count == {
            "name": "count",
            "subject": "count",
            "queue_group": "q",
            "num_requests": 0,
            "num_errors": 0,
            "last_error": "",
            "processing_time": 0,
            "average_processing_time": 0,
        }


async def test_metadata_is_always_present(nc: NatsConnection) -> None:
    service = await nc.services.add("bare", "0.1.0")
    service.add_endpoint("e", lambda m: m.respond(b""))
    await nc.flush()
    assert (await answer(nc, "$SRV.PING.bare"))["metadata"] == {}
    info = await answer(nc, "$SRV.INFO.bare")
    assert info["metadata"] == {} and info["description"] == "" and info["endpoints"][0]["metadata"] == {}
    stats = await answer(nc, "$SRV.STATS.bare")
    assert stats["metadata"] == {} and "data" not in stats["endpoints"][0]
    assert service.description == "" and service.metadata is None
    await service.stop()


async def test_stats_handler_data_on_the_wire(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0", stats_handler=lambda e: {"depth": 4, "name": e.name})
    service.add_endpoint("e", lambda m: m.respond(b""))
    await nc.flush()
    stats = await answer(nc, "$SRV.STATS.svc")
    assert stats["endpoints"][0]["data"] == {"depth": 4, "name": "e"}
    await service.stop()


async def test_stats_handler_data_that_is_not_json_is_left_out(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0", stats_handler=lambda e: object())
    service.add_endpoint("e", lambda m: m.respond(b""))
    await nc.flush()
    stats = await answer(nc, "$SRV.STATS.svc")
    assert "data" not in stats["endpoints"][0] and stats["endpoints"][0]["name"] == "e"
    await service.stop()


async def test_other_names_and_ids_do_not_answer(nc: NatsConnection, orders: Service) -> None:
    for subject in ("$SRV.PING.billing", "$SRV.INFO.orders.notmyid", "$SRV.STATS.ORDERS"):
        with pytest.raises(NoRespondersError):
            await nc.request(subject, timeout=2)


async def start_fleet(connect: Callable[..., Awaitable[NatsConnection]]) -> list[Service]:
    """Two instances of "a" (on separate connections) and one of "b"."""
    services = []
    for name, version in (("a", "1.0.0"), ("a", "1.0.1"), ("b", "2.0.0")):
        conn = await connect()
        service = await conn.services.add(name, version, metadata={"n": name})
        service.add_endpoint("e", lambda m: m.respond(b""), subject=f"{name}.{version}")
        await conn.flush()
        services.append(service)
    return services


async def test_client_across_services_and_instances(
    nc: NatsConnection, connect: Callable[..., Awaitable[NatsConnection]]
) -> None:
    fleet = await start_fleet(connect)
    a1, a2, b = fleet
    client = nc.services.client(jitter=0.2)

    pings = await collect(await client.ping())
    assert all(isinstance(p, ServiceIdentity) and p.type is ServiceResponseType.PING for p in pings)
    assert sorted((p.name, p.id, p.version) for p in pings) == sorted((s.name, s.id, s.version) for s in fleet)
    assert {p.id: p.metadata for p in pings}[b.id] == {"n": "b"}

    infos = await collect(await client.info("a"))
    assert all(isinstance(i, ServiceInfo) for i in infos)
    assert sorted(i.id for i in infos) == sorted([a1.id, a2.id])
    assert {i.id: i.endpoints for i in infos}[a2.id] == [
        EndpointInfo(name="e", subject="a.1.0.1", queue_group="q", metadata={})  # as on the wire
    ]

    stats = await collect(await client.stats("a", a1.id))
    assert len(stats) == 1 and isinstance(stats[0], ServiceStats) and stats[0].id == a1.id
    assert isinstance(stats[0].endpoints[0], EndpointStats) and stats[0].started == (await a1.stats()).started
    assert stats[0].type is ServiceResponseType.STATS


async def test_client_strategies(nc: NatsConnection, connect: Callable[..., Awaitable[NatsConnection]]) -> None:
    await start_fleet(connect)
    counted = nc.services.client(strategy=RequestStrategy.COUNT, max_messages=2, max_wait=5)
    started = time.monotonic()
    assert len(await collect(await counted.ping())) == 2
    assert time.monotonic() - started < 4  # ended by the count, not by max_wait
    timed = nc.services.client(strategy=RequestStrategy.TIMER, max_wait=0.3)
    started = time.monotonic()
    assert len(await collect(await timed.ping())) == 3
    assert 0.25 <= time.monotonic() - started < 3


async def test_client_without_services_raises_no_responders(nc: NatsConnection) -> None:
    client = nc.services.client()
    for verb in (client.ping, client.info, client.stats):
        with pytest.raises(NoRespondersError):
            await collect(await verb())


async def test_client_with_a_custom_prefix_and_a_bad_answer(nc: NatsConnection) -> None:
    """A responder under another prefix (a fake: real services use $SRV), first with a document, then with junk."""
    document = {"type": "io.nats.micro.v1.ping_response", "name": "x", "id": "1", "version": "1.0.0", "metadata": {}}

    def good(msg: Msg) -> None:
        msg.respond(json.dumps(document))

    def junk(msg: Msg) -> None:
        msg.respond(b"this is not json")

    nc.subscribe("custom.PING.x", callback=good)
    nc.subscribe("custom.PING.junk", callback=junk)
    nc.subscribe("custom.INFO.junk", callback=lambda m: m.respond(b"[1, 2]"))
    await nc.flush()
    client = nc.services.client(prefix="custom", strategy=RequestStrategy.COUNT, max_messages=1)
    assert client.subject(ServiceVerb.STATS, "x", "1") == "custom.STATS.x.1"
    (ping,) = await collect(await client.ping("x"))
    assert ping == ServiceIdentity(name="x", id="1", version="1.0.0", metadata={})
    with pytest.raises(BadJsonError):
        await collect(await client.ping("junk"))
    with pytest.raises(BadJsonError):
        await collect(await client.info("junk"))  # JSON, but not an object


async def test_bad_answer_ends_the_iteration(nc: NatsConnection) -> None:
    nc.subscribe("$SRV.PING", callback=lambda m: m.respond(b"{not json"))
    await nc.flush()
    responses = await nc.services.client(max_wait=1).ping()
    with pytest.raises(BadJsonError):
        await asyncio.wait_for(responses.__anext__(), TIMEOUT)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(responses.__anext__(), TIMEOUT)


async def test_responses_support_async_with(nc: NatsConnection, orders: Service) -> None:
    client = nc.services.client(max_wait=5, jitter=5)
    started = time.monotonic()
    async with await client.ping() as responses:
        first = await asyncio.wait_for(responses.__anext__(), TIMEOUT)
        assert first.id == orders.id
    assert [p async for p in responses] == []  # exiting ended it at once
    assert time.monotonic() - started < 4
