"""Services interop with nats-py 2.16 (``nats.micro``) on one real server: a nats-py service discovered and called by
the cnats client, and a cnats service discovered, pinged, queried for stats and called by nats-py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from helpers.nats_py import py_settled
from nats.aio.client import Client as NatsPyClient
from nats.micro import add_service
from nats.micro import request as py_request
from nats.micro import service as py_service

from cnats import NatsConnection, RequestStrategy
from cnats.services import (
    SERVICE_ERROR_CODE_HEADER,
    SERVICE_ERROR_HEADER,
    EndpointInfo,
    ServiceError,
    ServiceMsg,
    ServiceResponseType,
)
from cnats.testing import NatsServer

TIMEOUT = 10.0


async def collect(iterator: Any) -> list[Any]:
    async def run() -> list[Any]:
        return [item async for item in iterator]

    return await asyncio.wait_for(run(), TIMEOUT)


async def test_nats_py_service_is_discovered_and_called_by_cnats(
    nats_server: NatsServer, nc: NatsConnection, py: NatsPyClient
) -> None:
    service = await add_service(py, name="inventory", version="3.1.4", description="stock", metadata={"dc": "1"})

    async def stock(request: py_request.Request) -> None:
        if request.data == b"missing":
            raise py_request.ServiceError("404", "unknown item")
        await request.respond(b"42:" + request.data)

    await service.add_endpoint(name="stock", subject="inv.stock", handler=stock, metadata={"unit": "pcs"})
    group = service.add_group(name="admin", queue_group="adminq")
    await group.add_endpoint(name="reload", handler=stock)
    await py_settled(nats_server, py)
    try:
        client = nc.services.client(strategy=RequestStrategy.COUNT, max_messages=1)
        (ping,) = await collect(await client.ping("inventory"))
        assert (ping.type, ping.name, ping.id, ping.version, ping.metadata) == (
            ServiceResponseType.PING,
            "inventory",
            service.id,
            "3.1.4",
            {"dc": "1"},
        )
        (info,) = await collect(await client.info("inventory", service.id))
        assert info.description == "stock"
        assert info.endpoints == [
            EndpointInfo(name="stock", subject="inv.stock", queue_group="q", metadata={"unit": "pcs"}),
            EndpointInfo(name="reload", subject="admin.reload", queue_group="adminq", metadata=None),  # sent as null
        ]

        assert (await nc.request("inv.stock", b"bolt", timeout=2)).data == b"42:bolt"
        failed = await nc.request("inv.stock", b"missing", timeout=2)
        err = ServiceError.to_service_error(failed)
        assert err is not None and (err.code, err.message) == (404, "unknown item")

        (stats,) = await collect(await client.stats("inventory"))
        assert stats.type is ServiceResponseType.STATS and stats.id == service.id
        by_name = {e.name: e for e in stats.endpoints}
        stock_stats = by_name["stock"]
        assert (stock_stats.num_requests, stock_stats.num_errors) == (2, 1)
        assert "unknown item" in stock_stats.last_error
        assert stock_stats.processing_time > 0 and stock_stats.data is None
        assert by_name["reload"].last_error == ""  # nats-py sends null for "no error"
        assert stats.started.tzinfo is not None
    finally:
        await service.stop()


async def test_cnats_service_is_discovered_and_called_by_nats_py(nc: NatsConnection, py: NatsPyClient) -> None:
    service = await nc.services.add(
        "billing",
        "1.0.0-beta.2",
        description="invoices",
        metadata={"team": "pay"},
        stats_handler=lambda endpoint: {"endpoint": endpoint.name},
    )

    def invoice(msg: ServiceMsg) -> None:
        if msg.data == b"":
            msg.respond_error(400, "empty invoice")
        else:
            msg.respond(b"invoice:" + msg.data)

    async def refund(msg: ServiceMsg) -> None:
        raise ServiceError(409, "already refunded")

    api = service.add_group("billing")
    api.add_endpoint("invoice", invoice, metadata={"v": "1"})
    api.add_endpoint("refund", refund)
    await nc.flush()
    try:
        ping = py_service.ServicePing.from_dict(json.loads((await py.request("$SRV.PING.billing", timeout=2)).data))
        assert (ping.id, ping.name, ping.version, ping.metadata) == (
            service.id,
            "billing",
            "1.0.0-beta.2",
            {"team": "pay"},
        )

        raw_info = json.loads((await py.request(f"$SRV.INFO.billing.{service.id}", timeout=2)).data)
        info = py_service.ServiceInfo.from_dict(raw_info)
        assert info.description == "invoices" and info.type == "io.nats.micro.v1.info_response"
        assert [(e.name, e.subject, e.queue_group, e.metadata) for e in info.endpoints] == [
            ("invoice", "billing.invoice", "q", {"v": "1"}),
            ("refund", "billing.refund", "q", {}),
        ]

        reply = await py.request("billing.invoice", b"7", timeout=2)
        assert reply.data == b"invoice:7" and not reply.headers
        bad = await py.request("billing.invoice", b"", timeout=2)
        assert bad.headers == {SERVICE_ERROR_CODE_HEADER: "400", SERVICE_ERROR_HEADER: "empty invoice"}
        refused = await py.request("billing.refund", b"1", timeout=2)
        assert refused.headers == {SERVICE_ERROR_CODE_HEADER: "409", SERVICE_ERROR_HEADER: "already refunded"}

        # nats-py's from_dict needs "data" in every endpoint: the stats handler provides it here
        stats = py_service.ServiceStats.from_dict(json.loads((await py.request("$SRV.STATS", timeout=2)).data))
        assert stats.id == service.id and stats.metadata == {"team": "pay"}
        by_name = {e.name: e for e in stats.endpoints}
        invoice_stats = by_name["invoice"]
        assert (invoice_stats.num_requests, invoice_stats.num_errors, invoice_stats.last_error) == (
            2,
            1,
            "400:empty invoice",
        )
        assert invoice_stats.data == {"endpoint": "invoice"}
        assert invoice_stats.average_processing_time == invoice_stats.processing_time // 2
        assert (by_name["refund"].num_errors, by_name["refund"].last_error) == (1, "already refunded")
        local = await service.stats()
        assert stats.started == local.started.replace(tzinfo=None)  # nats-py reads naive UTC
    finally:
        await service.stop()
