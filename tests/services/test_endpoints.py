"""Endpoints and groups: subjects, queue groups and metadata as INFO reports them and as the server routes requests;
plain, coroutine and iterator handlers; the ServiceMsg a handler gets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from helpers.core import eventually

from cnats import Msg, NatsConnection
from cnats.errors import NoRespondersError
from cnats.services import Service, ServiceEndpoint, ServiceGroup, ServiceMsg

TIMEOUT = 10.0


def echo(msg: ServiceMsg) -> None:
    msg.respond(msg.data)


async def test_plain_coroutine_and_wrapped_handlers_answer(nc: NatsConnection) -> None:
    service = await nc.services.add("calc", "1.0.0")

    def plain(msg: ServiceMsg) -> None:
        msg.respond(b"plain:" + msg.data)

    async def coroutine(msg: ServiceMsg) -> None:
        await asyncio.sleep(0)
        msg.respond(b"coro:" + msg.data)

    service.add_endpoint("plain", plain)
    service.add_endpoint("coro", coroutine)
    service.add_endpoint("wrapped", lambda m: coroutine(m))  # a plain callable that returns an awaitable
    assert (await nc.request("plain", b"1", timeout=2)).data == b"plain:1"
    assert (await nc.request("coro", b"2", timeout=2)).data == b"coro:2"
    assert (await nc.request("wrapped", b"3", timeout=2)).data == b"coro:3"
    stats = {e.name: e for e in (await service.stats()).endpoints}
    assert stats["plain"].num_requests == stats["coro"].num_requests == stats["wrapped"].num_requests == 1
    await service.stop()


async def test_handler_gets_a_service_msg(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")
    seen: list[ServiceMsg] = []

    def handler(msg: ServiceMsg) -> None:
        seen.append(msg)
        msg.respond(b"ok")

    service.add_endpoint("e", handler)
    await nc.request("e", b"data", timeout=2, headers={"X-Trace": "1"})
    (msg,) = seen
    assert isinstance(msg, ServiceMsg) and isinstance(msg, Msg)
    assert msg.subject == "e" and msg.data == b"data" and msg.reply
    assert msg.headers is not None and msg.headers.get("X-Trace") == "1"
    assert "ServiceMsg" in repr(msg)
    await service.stop()


async def test_coroutine_handler_runs_requests_one_at_a_time_in_order(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")
    order: list[bytes] = []
    running = 0
    overlap = False

    async def handler(msg: ServiceMsg) -> None:
        nonlocal running, overlap
        running += 1
        overlap = overlap or running > 1
        await asyncio.sleep(0.001)
        order.append(msg.data)
        running -= 1
        msg.respond(msg.data)

    service.add_endpoint("e", handler)
    await nc.flush()
    payloads = [str(i).encode() for i in range(20)]
    replies = await asyncio.wait_for(asyncio.gather(*(nc.request("e", p, timeout=5) for p in payloads)), TIMEOUT)
    assert [r.data for r in replies] == payloads
    assert order == payloads
    assert not overlap
    await service.stop()


async def test_groups_make_subjects_and_pass_queue_groups_down(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0", queue_group="svcq")
    root: ServiceGroup = service.add_group()
    assert root.subject == "" and root.queue_group is None
    api = service.add_group("api", queue_group="apiq")
    v1 = api.add_group("v1")
    dotted = service.add_group("a.b")
    assert (api.subject, api.queue_group) == ("api", "apiq")
    assert (v1.subject, v1.queue_group) == ("api.v1", "apiq")
    endpoints = [
        service.add_endpoint("top", echo),
        root.add_endpoint("rooted", echo),
        api.add_endpoint("status", echo, subject="health"),
        v1.add_endpoint("get", echo, queue_group="own", metadata={"verb": "GET"}),
        v1.add_endpoint("all", echo, subject="items.>"),
        dotted.add_endpoint("c", echo),
    ]
    got = [(e.name, e.subject, e.queue_group, e.metadata) for e in endpoints]
    assert got == [
        ("top", "top", "svcq", None),
        ("rooted", "rooted", "svcq", None),
        ("status", "api.health", "apiq", None),
        ("get", "api.v1.get", "own", {"verb": "GET"}),
        ("all", "api.v1.items.>", "apiq", None),
        ("c", "a.b.c", "svcq", None),
    ]
    info = service.info()
    assert [(e.name, e.subject, e.queue_group, e.metadata) for e in info.endpoints] == got
    for subject in ("top", "rooted", "api.health", "api.v1.get", "api.v1.items.x.y", "a.b.c"):
        assert (await nc.request(subject, subject, timeout=2)).data == subject.encode()
    await service.stop()


async def test_default_queue_group_is_q(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")
    assert service.add_endpoint("e", echo).queue_group == "q"
    await service.stop()


async def run_instances(
    connect: Callable[..., Awaitable[NatsConnection]], queue_groups: list[str | None]
) -> list[Service]:
    services = []
    for queue_group in queue_groups:
        conn = await connect()
        service = await conn.services.add("svc", "1.0.0")
        service.add_endpoint("e", echo, queue_group=queue_group)
        await conn.flush()
        services.append(service)
    return services


async def test_instances_share_the_work_in_one_queue_group(
    nc: NatsConnection, connect: Callable[..., Awaitable[NatsConnection]]
) -> None:
    services = await run_instances(connect, [None, None])
    for i in range(40):
        await nc.request("e", str(i), timeout=2)
    counts = [(await s.stats()).endpoints[0].num_requests for s in services]
    assert sum(counts) == 40  # each request served exactly once


async def test_instances_in_different_queue_groups_each_get_every_request(
    nc: NatsConnection, connect: Callable[..., Awaitable[NatsConnection]]
) -> None:
    services = await run_instances(connect, ["a", "b"])
    for i in range(10):
        await nc.request("e", str(i), timeout=2)

    async def both_saw_all() -> bool:
        counts = [(await s.stats()).endpoints[0].num_requests for s in services]
        return counts == [10, 10]

    await eventually(both_saw_all, what="both instances saw every request")


async def test_iterator_endpoint(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")
    endpoint: ServiceEndpoint = service.add_endpoint("it", subject="work")
    await nc.flush()

    async def serve() -> int:
        served = 0
        async for msg in endpoint:
            assert isinstance(msg, ServiceMsg)
            msg.respond(msg.data.upper())
            served += 1
        return served

    task = asyncio.create_task(serve())
    assert (await nc.request("work", b"a", timeout=2)).data == b"A"
    assert (await nc.request("work", b"b", timeout=2)).data == b"B"
    stats = (await service.stats()).endpoints[0]
    assert stats.num_requests == 2
    endpoint.stop()  # an iterator endpoint stops the whole service
    assert await asyncio.wait_for(service.stopped, TIMEOUT) is None
    assert await asyncio.wait_for(task, TIMEOUT) == 2
    try:
        await nc.request("work", b"c", timeout=2)
        raise AssertionError("the stopped endpoint answered")
    except NoRespondersError:
        pass


async def test_iterator_endpoint_async_with_stops_the_service(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")
    async with service.add_endpoint("it") as endpoint:
        await nc.flush()
        reply = asyncio.ensure_future(nc.request("it", b"x", timeout=5))
        msg = await asyncio.wait_for(endpoint.__anext__(), TIMEOUT)
        msg.respond(b"y")
        assert (await reply).data == b"y"
    assert await asyncio.wait_for(service.stopped, TIMEOUT) is None


async def test_iterator_endpoint_ends_with_the_stop_error(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")
    endpoint = service.add_endpoint("it")
    error = RuntimeError("maintenance")
    assert await asyncio.wait_for(service.stop(error), TIMEOUT) is error
    try:
        await asyncio.wait_for(endpoint.__anext__(), TIMEOUT)
        raise AssertionError("the iterator did not end")
    except RuntimeError as exc:
        assert exc is error


async def test_a_handler_endpoint_cannot_be_iterated(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")
    endpoint = service.add_endpoint("e", echo)
    try:
        endpoint.__aiter__()
        raise AssertionError("iterating a handler endpoint worked")
    except RuntimeError:
        pass
    await service.stop()


async def test_stopping_a_handler_endpoint_leaves_the_others(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")
    gone = service.add_endpoint("gone", echo)
    service.add_endpoint("kept", echo)
    await nc.flush()
    gone.stop()
    assert [e.name for e in service.info().endpoints] == ["kept"]
    assert [e.name for e in (await service.stats()).endpoints] == ["kept"]

    async def no_responders() -> bool:
        try:
            await nc.request("gone", timeout=1)
        except NoRespondersError:
            return True
        return False

    await eventually(no_responders, what="the stopped endpoint unsubscribed")
    assert (await nc.request("kept", b"k", timeout=2)).data == b"k"
    assert not service.is_stopped
    await service.stop()
