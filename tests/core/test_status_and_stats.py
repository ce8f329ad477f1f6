"""Status events and statistics of a connection against a real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from cnats import DebugEvents, Events, Headers, NatsConnection, Stats, Status, connect
from cnats.testing import NatsServer

pytestmark = pytest.mark.nats_server(jetstream=False)


async def until_reconnected(nc: NatsConnection, it: AsyncIterator[Status], timeout: float = 5.0) -> list[Status]:
    """Start a client-initiated reconnect and return what ``it`` yields up to and including RECONNECT."""
    seen: list[Status] = []

    async def collect() -> None:
        async for status in it:
            seen.append(status)
            if status.type == Events.RECONNECT:
                return
        raise AssertionError("status iterator ended before RECONNECT")

    task = asyncio.create_task(collect())
    await nc.reconnect()
    await asyncio.wait_for(task, timeout)
    return seen


async def rest_of(it: AsyncIterator[Status], timeout: float = 2.0) -> list[Status]:
    """Everything ``it`` still yields until it ends (the connection must be closing)."""

    async def collect() -> list[Status]:
        return [s async for s in it]

    return await asyncio.wait_for(collect(), timeout)


# -- status() -------------------------------------------------------------------------------------------------


async def test_status_iterators_are_independent_and_do_not_replay(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, reconnect_time_wait=0.05, reconnect_jitter=0)
    first, second = nc.status(), nc.status()
    seen_first = await until_reconnected(nc, first)
    late = nc.status()  # created after the first reconnect's events
    seen_first += await until_reconnected(nc, first)
    await nc.close()
    seen_first += await rest_of(first)
    seen_second = await rest_of(second)
    seen_late = await rest_of(late)

    types_first = [s.type for s in seen_first]
    assert types_first.count(DebugEvents.CLIENT_INITIATED_RECONNECT) == 2
    assert [(s.type, s.data) for s in seen_second] == [(s.type, s.data) for s in seen_first]  # both saw everything
    second_round = len(types_first) - 1 - types_first[::-1].index(DebugEvents.CLIENT_INITIATED_RECONNECT)
    assert [(s.type, s.data) for s in seen_late] == [(s.type, s.data) for s in seen_first[second_round:]]


async def test_status_iterator_supports_async_with(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    try:
        async with nc.status() as it:
            pass
        assert await rest_of(it) == []  # exit stopped it
    finally:
        await nc.close()


# -- stats() --------------------------------------------------------------------------------------------------


async def test_stats_start_at_zero(nats_server: NatsServer) -> None:
    async with await connect(nats_server.url) as nc:
        assert nc.stats() == Stats(in_bytes=0, out_bytes=0, in_msgs=0, out_msgs=0)


async def test_stats_count_messages_and_payload_bytes_exactly(nats_server: NatsServer) -> None:
    async with await connect(nats_server.url) as nc:
        sub = nc.subscribe("stats.x")
        await nc.flush()
        for _ in range(10):
            nc.publish("stats.x", b"12345")
        await nc.flush()  # our own messages are queued before the PONG: all of them have arrived now
        assert sub.received == 10
        assert nc.stats() == Stats(in_bytes=50, out_bytes=50, in_msgs=10, out_msgs=10)


async def test_stats_is_a_snapshot(nats_server: NatsServer) -> None:
    async with await connect(nats_server.url) as nc:
        before = nc.stats()
        nc.publish("stats.snapshot", b"abc")
        after = nc.stats()
        assert before.out_msgs == 0 and before.out_bytes == 0
        assert after.out_msgs == 1 and after.out_bytes == 3


async def test_stats_bytes_include_the_encoded_header_block(nats_server: NatsServer) -> None:
    async with await connect(nats_server.url) as nc:
        sub = nc.subscribe("stats.hdr")
        await nc.flush()
        hdrs = Headers()
        hdrs.append("X-Trace", "abc123")
        header_len = len(hdrs.encode())
        assert header_len > 0
        nc.publish("stats.hdr", b"12345", headers=hdrs)
        await nc.flush()
        msg = await sub.next_msg(timeout=2)
        assert msg.headers is not None and msg.headers.get("X-Trace") == "abc123"
        assert nc.stats() == Stats(in_bytes=header_len + 5, out_bytes=header_len + 5, in_msgs=1, out_msgs=1)


async def test_stats_do_not_count_protocol_traffic(nats_server: NatsServer) -> None:
    async with await connect(nats_server.url) as nc:
        nc.subscribe("stats.quiet")
        await nc.flush()
        await nc.rtt()
        assert nc.stats() == Stats(in_bytes=0, out_bytes=0, in_msgs=0, out_msgs=0)


async def test_stats_survive_a_reconnect(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, reconnect_time_wait=0.05, reconnect_jitter=0)
    try:
        sub = nc.subscribe("stats.rc")
        await nc.flush()
        nc.publish("stats.rc", b"ab")
        await nc.flush()
        await until_reconnected(nc, nc.status())
        nc.publish("stats.rc", b"cde")
        await nc.flush()
        assert sub.received == 2
        assert nc.stats() == Stats(in_bytes=5, out_bytes=5, in_msgs=2, out_msgs=2)
    finally:
        await nc.close()


# -- ping timer -----------------------------------------------------------------------------------------------


async def test_ping_timer_reports_one_outstanding_ping_on_a_healthy_connection(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, ping_interval=0.2)
    try:
        statuses = nc.status()
        pings: list[Status] = []

        async def three_ping_timers() -> None:
            async for status in statuses:
                assert status.type == DebugEvents.PING_TIMER, status  # nothing else happens to a healthy connection
                pings.append(status)
                if len(pings) == 3:
                    return

        await asyncio.wait_for(three_ping_timers(), 3)
        assert [p.data for p in pings] == [1, 1, 1]  # each PING was answered before the next tick
        assert all(type(p.data) is int for p in pings)
        assert not nc.is_closed
        assert await nc.rtt() > 0
    finally:
        await nc.close()
