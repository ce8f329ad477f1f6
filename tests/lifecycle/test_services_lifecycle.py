"""Services under the connection's lifecycle: a service and its endpoints are owned by the connection.

Every kind of handler answers (plain function, ``async def``, a lambda or ``functools.partial`` returning a
coroutine, an object with ``async def __call__``), asynchronous ones one request at a time in arrival order; a
handler's exception is answered with a service error, counted, logged once and reported as a ``CALLBACK_ERROR``
status. ``nc.close()`` stops the service (``stopped`` resolves, no handler task is left); ``nc.drain()`` drains it
first (requests already received are answered), bounded by the drain timeout; iterator endpoints end after what
they hold.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

import pytest
from helpers.core import eventually
from helpers.lifecycle import HeldHandler, cnats_tasks, next_callback_error

import cnats
from cnats import Msg, NatsConnection
from cnats.connection import port_of
from cnats.errors import ConnectionClosedError, DrainTimeoutError, NatsTimeoutError, NoRespondersError
from cnats.services import SERVICE_ERROR_CODE_HEADER, SERVICE_ERROR_HEADER, Service, ServiceError, ServiceMsg
from cnats.testing import NatsServer

pytestmark = pytest.mark.nats_server(jetstream=False)

TIMEOUT = 10.0


# -- helpers ------------------------------------------------------------------------------------------------------
def leftover_tasks(still_open: NatsConnection) -> list[str]:
    """The pending cnats tasks, but those of ``still_open`` (the test's other connection, open until teardown)."""
    theirs = port_of(still_open).scope.tasks
    return [t.get_name() for t in cnats_tasks() if t not in theirs]


def error_of(msg: Msg) -> tuple[str, str]:
    assert msg.headers is not None
    return msg.headers.get(SERVICE_ERROR_CODE_HEADER), msg.headers.get(SERVICE_ERROR_HEADER)


# Every kind of handler, built around one coroutine function ``work(msg)`` (or plain function for "plain").
def make_handler(kind: str, work: Callable[[ServiceMsg], Any]) -> Callable[[ServiceMsg], Any]:
    if kind == "plain":
        return work
    if kind == "async_def":

        async def handler(msg: ServiceMsg) -> None:
            await work(msg)

        return handler
    if kind == "lambda":
        return lambda msg: work(msg)
    if kind == "partial":

        async def with_prefix(prefix: str, msg: ServiceMsg) -> None:
            assert prefix == "p"
            await work(msg)

        return functools.partial(with_prefix, "p")
    if kind == "async_call":

        class Handler:
            async def __call__(self, msg: ServiceMsg) -> None:
                await work(msg)

        return Handler()
    raise AssertionError(kind)


ASYNC_KINDS = ["async_def", "lambda", "partial", "async_call"]
ALL_KINDS = ["plain", *ASYNC_KINDS]


async def held_request(
    nc: NatsConnection, requester: NatsConnection, kind: str = "async_def", reply: str | None = "nobody"
) -> tuple[Service, HeldHandler]:
    """A service on ``nc`` whose endpoint ``e`` holds a request of ``requester`` (published with ``reply``) in a
    handler of ``kind`` that does not finish by itself."""
    held = HeldHandler()
    service = await nc.services.add("svc", "1.0.0")
    service.add_endpoint("e", make_handler(kind, held.handle))
    await nc.flush()
    requester.publish("e", b"x", reply=reply)
    await requester.flush()
    await asyncio.wait_for(held.started.wait(), TIMEOUT)
    return service, held


# -- handler kinds --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_every_handler_kind_answers_in_order(nc: NatsConnection, kind: str) -> None:
    service = await nc.services.add("svc", "1.0.0")
    seen: list[bytes] = []
    active = 0
    most_active = 0

    def plain(msg: ServiceMsg) -> None:
        seen.append(msg.data)
        msg.respond(b"re:" + msg.data)

    async def work(msg: ServiceMsg) -> None:
        nonlocal active, most_active
        active += 1
        most_active = max(most_active, active)
        for _ in range(3):  # give other requests every chance to overtake this one
            await asyncio.sleep(0)
        seen.append(msg.data)
        active -= 1
        msg.respond(b"re:" + msg.data)

    service.add_endpoint("e", make_handler(kind, plain if kind == "plain" else work))
    await nc.flush()

    inbox = cnats.create_inbox()
    replies = nc.subscribe(inbox)
    n = 30
    for i in range(n):
        nc.publish("e", str(i), reply=inbox)
    got = [(await replies.next_msg(TIMEOUT)).data for _ in range(n)]
    expected = [str(i).encode() for i in range(n)]
    assert seen == expected
    assert got == [b"re:" + e for e in expected]
    assert most_active <= 1  # one request at a time per endpoint
    stats = (await service.stats()).endpoints[0]
    assert (stats.num_requests, stats.num_errors) == (n, 0)
    assert isinstance(await nc.request("e", b"last", timeout=TIMEOUT), Msg)
    await asyncio.wait_for(service.stop(), TIMEOUT)
    assert cnats_tasks() == []  # the endpoint's task ended with it


# -- errors -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_a_raising_handler_is_answered_counted_and_reported(
    nc: NatsConnection, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    service = await nc.services.add("svc", "1.0.0")
    failure = ValueError("it broke")

    def plain(msg: ServiceMsg) -> None:
        if msg.data == b"teapot":
            raise ServiceError(418, "I'm a teapot")  # a deliberate answer: counted, not a callback error
        raise failure

    async def work(msg: ServiceMsg) -> None:
        await asyncio.sleep(0)
        plain(msg)

    service.add_endpoint("e", make_handler(kind, plain if kind == "plain" else work))
    statuses = nc.status()
    with caplog.at_level(logging.ERROR, logger="cnats"):
        teapot = await nc.request("e", b"teapot", timeout=TIMEOUT)
        assert error_of(teapot) == ("418", "I'm a teapot")
        reply = await nc.request("e", b"boom", timeout=TIMEOUT)
        assert error_of(reply) == ("500", "it broke")
        error = await next_callback_error(
            statuses, TIMEOUT
        )  # the first one is the ValueError: ServiceError is no failure
    assert error.__cause__ is failure
    assert error.subject == "e"
    stats = (await service.stats()).endpoints[0]
    assert (stats.num_requests, stats.num_errors, stats.last_error) == (2, 2, "it broke")
    # logged once, with its traceback
    logged = [r for r in caplog.records if r.name == "cnats" and r.exc_info and r.exc_info[1] is failure]
    assert len(logged) == 1
    assert not service.is_stopped  # the service goes on
    await asyncio.wait_for(service.stop(), TIMEOUT)


async def test_a_raising_stats_handler_is_counted_and_reported(nc: NatsConnection) -> None:
    failure = RuntimeError("no stats today")

    def stats_handler(info: object) -> object:
        raise failure

    service = await nc.services.add("svc", "1.0.0", stats_handler=stats_handler)
    service.add_endpoint("e", lambda m: m.respond(b""))
    statuses = nc.status()
    stats = await service.stats()
    assert (stats.endpoints[0].num_errors, stats.endpoints[0].last_error) == (1, "no stats today")
    error = await next_callback_error(statuses, TIMEOUT)
    assert error.__cause__ is failure
    await asyncio.wait_for(service.stop(), TIMEOUT)


# -- close ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ASYNC_KINDS)
async def test_close_with_a_slow_handler_in_flight(nc: NatsConnection, nc2: NatsConnection, kind: str) -> None:
    service, held = await held_request(nc, nc2, kind)
    nc2.publish("e", b"queued behind it")  # a second request waits in the endpoint's queue
    await nc2.flush()

    await asyncio.wait_for(nc.close(), TIMEOUT)
    assert service.stopped.done() and service.stopped.result() is None
    assert service.is_stopped
    assert held.cancelled.is_set()  # the handler was cancelled, not left running
    assert leftover_tasks(nc2) == []
    assert await asyncio.wait_for(service.stop(), TIMEOUT) is None  # stop() after close: the same reason


async def test_close_right_after_a_request_arrived(nc: NatsConnection, nc2: NatsConnection) -> None:
    """The connection closes before the endpoint's task got to run the awaitable a lambda handler returned: it is
    closed, not left never awaited."""
    service = await nc.services.add("svc", "1.0.0")

    async def work(msg: ServiceMsg) -> None:
        msg.respond(b"")

    service.add_endpoint("e", lambda m: work(m))
    trigger: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    nc.subscribe("trigger", callback=lambda m: trigger.set_result(None))
    await nc.flush()

    async def close_when_triggered() -> None:
        await trigger
        await nc.close()

    closing = asyncio.ensure_future(close_when_triggered())
    # Both most likely arrive in one read: the closer wakes up before the endpoint's new task first runs.
    nc2.publish("trigger", b"")
    nc2.publish("e", b"x", reply="nobody")
    await nc2.flush()
    await asyncio.wait_for(closing, TIMEOUT)
    assert service.stopped.result() is None
    assert leftover_tasks(nc2) == []


async def test_close_leaves_no_task(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")

    async def handler(msg: ServiceMsg) -> None:
        msg.respond(b"")

    service.add_endpoint("a", handler)
    service.add_endpoint("b", lambda m: handler(m))
    await nc.request("a", timeout=TIMEOUT)
    await nc.request("b", timeout=TIMEOUT)
    await nc.request("$SRV.STATS.svc", timeout=TIMEOUT)
    await asyncio.wait_for(nc.close(), TIMEOUT)
    assert cnats_tasks() == []
    assert service.stopped.result() is None


async def test_stop_in_flight_when_the_connection_closes(nc: NatsConnection, nc2: NatsConnection) -> None:
    service, _ = await held_request(nc, nc2)
    stopping = asyncio.ensure_future(service.stop())
    await eventually(lambda: service.is_stopped, TIMEOUT)
    assert not stopping.done()  # waits for the handler
    await asyncio.wait_for(nc.close(), TIMEOUT)
    assert await asyncio.wait_for(stopping, TIMEOUT) is None  # returns, raises nothing
    assert service.stopped.result() is None
    assert leftover_tasks(nc2) == []


async def test_stop_with_an_error_in_flight_keeps_its_reason(nc: NatsConnection, nc2: NatsConnection) -> None:
    service, _ = await held_request(nc, nc2, reply=None)
    reason = RuntimeError("going away")
    stopping = asyncio.ensure_future(service.stop(reason))
    await eventually(lambda: service.is_stopped, TIMEOUT)
    await asyncio.wait_for(nc.close(), TIMEOUT)
    assert await asyncio.wait_for(stopping, TIMEOUT) is reason
    assert service.stopped.result() is reason


async def test_add_on_a_closed_connection_fails(nats_server: NatsServer) -> None:
    nc = await cnats.connect(nats_server.url)
    await nc.close()
    with pytest.raises(ConnectionClosedError):
        await nc.services.add("svc", "1.0.0")
    assert cnats_tasks() == []


# -- drain -----------------------------------------------------------------------------------------------------------
async def test_drain_answers_the_request_in_flight_and_takes_no_new_one(
    nc: NatsConnection, nc2: NatsConnection
) -> None:
    service = await nc.services.add("svc", "1.0.0")
    held = HeldHandler(b"answered:")
    service.add_endpoint("e", held.handle)
    await nc.flush()
    reply = asyncio.ensure_future(nc2.request("e", b"first", timeout=TIMEOUT))
    await asyncio.wait_for(held.started.wait(), TIMEOUT)
    draining = asyncio.ensure_future(nc.drain())

    async def no_responders() -> bool:
        try:
            await nc2.request("e", b"late", timeout=0.5)
        except NoRespondersError:
            return True
        except NatsTimeoutError:  # taken before the UNSUB reached the server: queued behind the first one
            return False
        return False

    await eventually(no_responders, TIMEOUT, what="the endpoint stops taking requests while draining")
    assert not draining.done() and not reply.done()
    held.release()
    await asyncio.wait_for(draining, TIMEOUT)
    assert (await reply).data == b"answered:first"
    assert nc.is_closed
    assert service.stopped.result() is None
    assert leftover_tasks(nc2) == []


async def test_drain_timeout_with_a_handler_that_never_finishes(nc: NatsConnection, nc2: NatsConnection) -> None:
    service, _ = await held_request(nc, nc2)
    with pytest.raises(DrainTimeoutError):
        await asyncio.wait_for(nc.drain(timeout=0.5), TIMEOUT)
    assert nc.is_closed
    assert isinstance(nc.closed.result(), DrainTimeoutError)
    # the service's stop began with the drain but could not finish: it ends with the connection's reason
    assert isinstance(service.stopped.result(), DrainTimeoutError)
    assert leftover_tasks(nc2) == []


# -- iterator endpoints ----------------------------------------------------------------------------------------
async def test_an_iterator_endpoint_hands_out_what_it_holds_then_ends_on_close(
    nc: NatsConnection, nc2: NatsConnection
) -> None:
    service = await nc.services.add("svc", "1.0.0")
    jobs = service.add_endpoint("jobs")
    await nc.flush()
    for i in range(3):
        nc2.publish("jobs", str(i))
    await nc2.flush()
    await eventually(lambda: nc.stats().in_msgs == 3, TIMEOUT, what="three requests held")
    await asyncio.wait_for(nc.close(), TIMEOUT)
    got = [msg.data async for msg in jobs]
    assert got == [b"0", b"1", b"2"]
    assert service.stopped.result() is None
    assert leftover_tasks(nc2) == []


async def test_an_iterator_endpoint_waiting_ends_on_close(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")
    jobs = service.add_endpoint("jobs")

    async def consume() -> list[bytes]:
        return [msg.data async for msg in jobs]

    consumer = asyncio.ensure_future(consume())
    await nc.request("$SRV.PING.svc", timeout=TIMEOUT)  # the consumer is waiting by now
    assert not consumer.done()
    await asyncio.wait_for(nc.close(), TIMEOUT)
    assert await asyncio.wait_for(consumer, TIMEOUT) == []
    assert cnats_tasks() == []


async def test_an_iterator_endpoint_drains_with_the_connection(nc: NatsConnection, nc2: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")
    jobs = service.add_endpoint("jobs")
    await nc.flush()
    nc2.publish("jobs", b"held")
    await nc2.flush()
    await eventually(lambda: nc.stats().in_msgs == 1, TIMEOUT, what="one request held")
    await asyncio.wait_for(nc.drain(), TIMEOUT)  # nobody iterates: the drain does not wait for the queue
    assert service.stopped.result() is None
    assert [msg.data async for msg in jobs] == [b"held"]
