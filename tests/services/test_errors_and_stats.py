"""Service errors and counters: respond_error's headers, exceptions in handlers (counted, answered with a service
error, the service goes on), ServiceError helpers, per-endpoint stats (requests, errors, last error, processing time
in ns), the stats handler's data, reset()."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

import pytest

from cnats import Msg, NatsConnection
from cnats.services import (
    SERVICE_ERROR_CODE_HEADER,
    SERVICE_ERROR_HEADER,
    EndpointInfo,
    ServiceError,
    ServiceMsg,
    ServiceStats,
)


def error_of(msg: Msg) -> tuple[str, str]:
    assert msg.headers is not None
    return msg.headers.get(SERVICE_ERROR_CODE_HEADER), msg.headers.get(SERVICE_ERROR_HEADER)


async def endpoint_stats(service: object, name: str) -> object:
    stats: ServiceStats = await service.stats()  # type: ignore[attr-defined]
    return next(e for e in stats.endpoints if e.name == name)


async def test_respond_error_sets_the_headers_and_counts(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")

    def handler(msg: ServiceMsg) -> None:
        assert msg.respond_error(404, "no such order", b'{"id": 7}', headers={"X-Extra": "yes"}) is True

    service.add_endpoint("e", handler)
    reply = await nc.request("e", timeout=2)
    assert error_of(reply) == ("404", "no such order")
    assert reply.data == b'{"id": 7}'
    assert reply.headers is not None and reply.headers.get("X-Extra") == "yes"
    assert ServiceError.is_service_error(reply)
    err = ServiceError.to_service_error(reply)
    assert err is not None and (err.code, err.message, str(err)) == (404, "no such order", "no such order")
    stats = (await service.stats()).endpoints[0]
    assert (stats.num_requests, stats.num_errors, stats.last_error) == (1, 1, "404:no such order")
    await service.stop()


async def test_respond_error_without_a_reply_sends_nothing(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")
    results: list[bool] = []
    service.add_endpoint("e", lambda m: results.append(m.respond_error(400, "x")))
    nc.publish("e", b"no reply expected")
    await nc.flush()
    for _ in range(200):
        if results:
            break
        await asyncio.sleep(0.01)
    assert results == [False]
    await service.stop()


@pytest.mark.parametrize("coroutine", [False, True], ids=["plain", "coroutine"])
async def test_exceptions_are_answered_counted_and_survived(
    nc: NatsConnection, coroutine: bool, caplog: pytest.LogCaptureFixture
) -> None:
    service = await nc.services.add("svc", "1.0.0")
    calls = 0

    def work(msg: ServiceMsg) -> None:
        nonlocal calls
        calls += 1
        if msg.data == b"boom":
            raise ValueError("it broke\non two lines")
        if msg.data == b"teapot":
            raise ServiceError(418, "I'm a teapot")
        msg.respond(b"ok")

    async def async_work(msg: ServiceMsg) -> None:
        await asyncio.sleep(0)
        work(msg)

    service.add_endpoint("e", async_work if coroutine else work)
    with caplog.at_level(logging.ERROR, logger="cnats"):
        boom = await nc.request("e", b"boom", timeout=2)
    assert error_of(boom) == ("500", "it broke on two lines")  # a header value is one line
    assert boom.data == b""
    assert "it broke" in caplog.text  # an unexpected exception is logged with its traceback
    teapot = await nc.request("e", b"teapot", timeout=2)
    assert error_of(teapot) == ("418", "I'm a teapot")
    fine = await nc.request("e", b"fine", timeout=2)
    assert fine.data == b"ok" and not ServiceError.is_service_error(fine)
    assert ServiceError.to_service_error(fine) is None
    stats = (await service.stats()).endpoints[0]
    assert (stats.num_requests, stats.num_errors, stats.last_error) == (3, 2, "I'm a teapot")
    assert calls == 3 and not service.is_stopped
    await service.stop()


async def test_exception_without_message_reports_the_type(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")

    def handler(msg: ServiceMsg) -> None:
        raise KeyError

    service.add_endpoint("e", handler)
    reply = await nc.request("e", timeout=2)
    assert error_of(reply) == ("500", "KeyError")
    assert (await service.stats()).endpoints[0].last_error == "KeyError"
    await service.stop()


def test_service_error_is_not_a_nats_error() -> None:
    from cnats.errors import NatsError

    err = ServiceError(503, "busy")
    assert not isinstance(err, NatsError) and isinstance(err, Exception)
    assert (err.code, err.message, str(err)) == (503, "busy", "busy")
    assert "503" in repr(err)
    plain = Msg("s", b"")
    assert not ServiceError.is_service_error(plain) and ServiceError.to_service_error(plain) is None
    odd = Msg("s", b"", headers={SERVICE_ERROR_CODE_HEADER: "E42", SERVICE_ERROR_HEADER: "odd"})
    converted = ServiceError.to_service_error(odd)
    assert converted is not None and (converted.code, converted.message) == (0, "odd")


async def test_counters_and_processing_time(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")

    async def slow(msg: ServiceMsg) -> None:
        await asyncio.sleep(0.02)  # awaiting is part of the processing time
        msg.respond(b"")

    service.add_endpoint("slow", slow)
    service.add_endpoint("fast", lambda m: m.respond(b""))
    service.add_endpoint("idle", lambda m: m.respond(b""))
    for _ in range(3):
        await nc.request("slow", timeout=2)
        await nc.request("fast", timeout=2)
    stats = {e.name: e for e in (await service.stats()).endpoints}
    slow_stats, fast, idle = stats["slow"], stats["fast"], stats["idle"]
    assert slow_stats.num_requests == 3 and fast.num_requests == 3
    assert slow_stats.processing_time >= 3 * 20_000_000
    assert slow_stats.average_processing_time == slow_stats.processing_time // 3
    assert 0 < fast.processing_time < slow_stats.processing_time
    assert isinstance(fast.processing_time, int) and isinstance(fast.average_processing_time, int)
    assert (idle.num_requests, idle.num_errors, idle.last_error, idle.processing_time) == (0, 0, "", 0)
    assert idle.average_processing_time == 0 and idle.data is None
    await service.stop()


async def test_reset_zeroes_counters_and_restarts_the_clock(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")

    def handler(msg: ServiceMsg) -> None:
        msg.respond_error(500, "nope")

    service.add_endpoint("e", handler)
    await nc.request("e", timeout=2)
    before = await service.stats()
    assert before.endpoints[0].num_errors == 1
    await asyncio.sleep(0.002)
    service.reset()
    after = await service.stats()
    e = after.endpoints[0]
    assert (e.num_requests, e.num_errors, e.last_error, e.processing_time, e.average_processing_time) == (
        0,
        0,
        "",
        0,
        0,
    )
    assert after.started > before.started
    await nc.request("e", timeout=2)
    assert (await service.stats()).endpoints[0].num_requests == 1
    await service.stop()


async def test_started_is_utc_now(nc: NatsConnection) -> None:
    before = datetime.now(timezone.utc)
    service = await nc.services.add("svc", "1.0.0")
    started = (await service.stats()).started
    assert started.tzinfo is not None and started.utcoffset() == timedelta(0)
    assert before <= started <= datetime.now(timezone.utc)
    await service.stop()


async def test_stats_handler_data(nc: NatsConnection) -> None:
    seen: list[EndpointInfo] = []

    def stats_handler(endpoint: EndpointInfo) -> object:
        seen.append(endpoint)
        return {"endpoint": endpoint.name, "queue": endpoint.queue_group} if endpoint.name != "quiet" else None

    service = await nc.services.add("svc", "1.0.0", stats_handler=stats_handler)
    service.add_endpoint("e", lambda m: m.respond(b""), metadata={"k": "v"})
    service.add_endpoint("quiet", lambda m: m.respond(b""))
    stats = {e.name: e for e in (await service.stats()).endpoints}
    assert stats["e"].data == {"endpoint": "e", "queue": "q"}
    assert stats["quiet"].data is None
    assert "data" not in stats["quiet"].to_dict() and stats["e"].to_dict()["data"] == {"endpoint": "e", "queue": "q"}
    assert [(i.name, i.subject, i.metadata) for i in seen] == [("e", "e", {"k": "v"}), ("quiet", "quiet", None)]
    await service.stop()


async def test_async_stats_handler_and_its_failures(nc: NatsConnection) -> None:
    async def stats_handler(endpoint: EndpointInfo) -> object:
        await asyncio.sleep(0)
        if endpoint.name == "bad":
            raise RuntimeError("no stats today")
        return [1, 2, 3]

    service = await nc.services.add("svc", "1.0.0", stats_handler=stats_handler)
    service.add_endpoint("good", lambda m: m.respond(b""))
    service.add_endpoint("bad", lambda m: m.respond(b""))
    stats = {e.name: e for e in (await service.stats()).endpoints}
    assert stats["good"].data == [1, 2, 3]
    assert stats["bad"].data is None
    assert (stats["bad"].num_errors, stats["bad"].last_error) == (1, "no stats today")  # counted, as nats.js does
    await service.stop()
