"""How a service ends: ``stop()`` drains (requests already received are answered) then resolves ``stopped``;
``stop(err)``; idempotence; ``async with``; the connection closing, draining or failing; a subscription the server
refuses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

import cnats
from cnats import NatsConnection
from cnats.errors import DisconnectedError, NoRespondersError, PermissionViolationError
from cnats.services import ServiceMsg
from cnats.testing import NatsServer

TIMEOUT = 10.0


async def test_stop_answers_what_was_received_then_resolves(
    nc: NatsConnection, connect: Callable[..., Awaitable[NatsConnection]]
) -> None:
    service = await nc.services.add("svc", "1.0.0")
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow(msg: ServiceMsg) -> None:
        started.set()
        await release.wait()
        msg.respond(b"done:" + msg.data)

    service.add_endpoint("e", slow)
    await nc.flush()
    requester = await connect()
    replies = [asyncio.ensure_future(requester.request("e", str(i), timeout=TIMEOUT)) for i in range(3)]
    await asyncio.wait_for(started.wait(), TIMEOUT)  # one in the handler, two queued behind it
    await requester.flush()
    stopping = asyncio.ensure_future(service.stop())
    await asyncio.sleep(0.05)
    assert service.is_stopped and not service.stopped.done()  # stopping: waits for the handler
    release.set()
    assert await asyncio.wait_for(stopping, TIMEOUT) is None
    assert service.stopped.done() and service.stopped.result() is None
    assert [r.data for r in await asyncio.wait_for(asyncio.gather(*replies), TIMEOUT)] == [
        b"done:0",
        b"done:1",
        b"done:2",
    ]
    for subject in ("e", "$SRV.PING", "$SRV.INFO.svc", f"$SRV.STATS.svc.{service.id}"):
        with pytest.raises(NoRespondersError):
            await requester.request(subject, timeout=2)


async def test_stop_waits_for_awaitables_returned_by_plain_handlers(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")
    release = asyncio.Event()
    started = asyncio.Event()
    finished: list[bytes] = []

    async def work(msg: ServiceMsg) -> None:
        started.set()
        await release.wait()
        finished.append(msg.data)
        msg.respond(b"ok")

    service.add_endpoint("e", lambda m: work(m))
    await nc.flush()
    reply = asyncio.ensure_future(nc.request("e", b"x", timeout=TIMEOUT))
    await asyncio.wait_for(started.wait(), TIMEOUT)
    stopping = asyncio.ensure_future(service.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done()
    release.set()
    await asyncio.wait_for(stopping, TIMEOUT)
    assert finished == [b"x"] and (await reply).data == b"ok"
    assert (await service.stats()).endpoints == []  # a stopped service has no endpoints left


async def test_stop_is_idempotent_and_keeps_the_first_reason(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")
    error = RuntimeError("shutting down")
    first, second = await asyncio.wait_for(asyncio.gather(service.stop(error), service.stop()), TIMEOUT)
    assert first is error and second is error
    assert await asyncio.wait_for(service.stop(ValueError("later")), TIMEOUT) is error
    assert service.stopped.result() is error  # resolved with the error, never raised
    assert service.is_stopped


async def test_async_with_stops_the_service(nc: NatsConnection) -> None:
    async with await nc.services.add("svc", "1.0.0") as service:
        service.add_endpoint("e", lambda m: m.respond(b"in"))
        assert (await nc.request("e", timeout=2)).data == b"in"
    assert service.stopped.done() and service.stopped.result() is None
    with pytest.raises(NoRespondersError):
        await nc.request("e", timeout=2)


async def test_connection_close_stops_the_service(nats_server: NatsServer) -> None:
    nc = await cnats.connect(nats_server.url)
    service = await nc.services.add("svc", "1.0.0")
    service.add_endpoint("e", lambda m: m.respond(b""))
    await nc.close()
    assert await asyncio.wait_for(service.stopped, TIMEOUT) is None
    assert service.is_stopped
    assert await asyncio.wait_for(service.stop(), TIMEOUT) is None


async def test_connection_drain_answers_then_stops_the_service(
    nats_server: NatsServer, connect: Callable[..., Awaitable[NatsConnection]]
) -> None:
    nc = await cnats.connect(nats_server.url)
    service = await nc.services.add("svc", "1.0.0")
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow(msg: ServiceMsg) -> None:
        started.set()
        await release.wait()
        msg.respond(b"late")

    service.add_endpoint("e", slow)
    await nc.flush()
    requester = await connect()
    reply = asyncio.ensure_future(requester.request("e", timeout=TIMEOUT))
    await asyncio.wait_for(started.wait(), TIMEOUT)
    draining = asyncio.ensure_future(nc.drain())
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.wait_for(draining, TIMEOUT)
    assert (await reply).data == b"late"
    assert await asyncio.wait_for(service.stopped, TIMEOUT) is None


async def test_connection_failure_stops_the_service_with_its_error(
    nats_server_factory: Callable[..., NatsServer],
) -> None:
    server = nats_server_factory(jetstream=False)
    nc = await cnats.connect(server.url, reconnect=False)
    service = await nc.services.add("svc", "1.0.0")
    server.stop()
    error = await asyncio.wait_for(service.stopped, TIMEOUT)
    assert isinstance(error, DisconnectedError)
    assert error is nc.closed.result()
    assert await asyncio.wait_for(service.stop(), TIMEOUT) is error


PERMISSIONS = """
authorization {
  users = [
    {user: svc, password: pw, permissions: {subscribe: {deny: ["forbidden.>"]}}}
  ]
}
"""


async def test_a_refused_subscription_stops_the_service(nats_server_factory: Callable[..., NatsServer]) -> None:
    server = nats_server_factory(jetstream=False, config=PERMISSIONS)
    nc = await cnats.connect(server.url, user="svc", password="pw")
    try:
        service = await nc.services.add("svc", "1.0.0")
        service.add_endpoint("ok", lambda m: m.respond(b""))
        service.add_endpoint("denied", lambda m: m.respond(b""), subject="forbidden.x")
        error = await asyncio.wait_for(service.stopped, TIMEOUT)
        assert isinstance(error, PermissionViolationError)
        assert error.subject == "forbidden.x"
        assert not nc.is_closed  # the connection goes on; the service is gone
        with pytest.raises(NoRespondersError):
            await nc.request("ok", timeout=2)
    finally:
        await nc.close()
