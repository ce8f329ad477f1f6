"""Network faults between the client and a real nats-server, made by the ChaosProxy: a silent
network (stale connection detection), latency, a connection cut in the middle of a frame, refused reconnects
(ping_interval/max_ping_out, reconnect policy).

Clients connect to ``chaos_proxy.url``; the proxy forwards to the ``nats_server`` fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Any

import pytest
from helpers.core import StatusLog, eventually

import cnats
from cnats import DebugEvents, Events, Msg, connect
from cnats.errors import NatsConnectionRefusedError
from cnats.testing import ChaosProxy, NatsServer

pytestmark = pytest.mark.nats_server(jetstream=False)

FAST = {"reconnect_time_wait": 0.05, "reconnect_jitter": 0.0}


async def test_blackhole_is_detected_as_a_stale_connection_then_reconnects(chaos_proxy: ChaosProxy) -> None:
    ping_interval, max_ping_out = 0.2, 2
    nc = await connect(
        chaos_proxy.url,
        ping_interval=ping_interval,
        max_ping_out=max_ping_out,
        timeout=0.5,
        max_reconnect_attempts=-1,
        **FAST,
    )
    log = StatusLog(nc)
    loop = asyncio.get_running_loop()
    try:
        sub = nc.subscribe("stale.x")
        await nc.flush()
        begin = loop.time()
        chaos_proxy.blackhole()
        await eventually(lambda: bool(log.of(DebugEvents.STALE_CONNECTION)), timeout=3, what="stale connection")
        elapsed = loop.time() - begin
        # max_ping_out PINGs go out unanswered, one per interval; the next tick declares the connection stale.
        assert ping_interval * max_ping_out - 0.05 <= elapsed <= ping_interval * (max_ping_out + 1) + 0.3, elapsed
        types = [s.type for s in log.events]
        stale = types.index(DebugEvents.STALE_CONNECTION)
        # PING_TIMER counts the outstanding PINGs including the new one; the tick that finds max_ping_out PINGs
        # unanswered reports max_ping_out + 1 and declares the connection stale instead of sending another.
        ticks = [s.data for s in log.events[:stale] if s.type == DebugEvents.PING_TIMER]
        assert ticks[-(max_ping_out + 1) :] == list(range(1, max_ping_out + 2)), ticks
        assert log.events[stale].data == ""
        await eventually(lambda: bool(log.of(Events.DISCONNECT)), timeout=2, what="disconnect")
        assert types.index(DebugEvents.STALE_CONNECTION) < [s.type for s in log.events].index(Events.DISCONNECT)
        assert not nc.is_closed

        chaos_proxy.blackhole(False)
        await eventually(lambda: bool(log.of(Events.RECONNECT)), timeout=5, what="reconnect after the blackhole")
        nc.publish("stale.x", b"alive")
        assert (await sub.next_msg(timeout=2)).data == b"alive"
        assert await asyncio.wait_for(nc.rtt(), 2) < 0.5
    finally:
        chaos_proxy.blackhole(False)
        await log.aclose()
        await nc.close()


async def test_latency_slows_round_trips_but_everything_works(chaos_proxy: ChaosProxy) -> None:
    nc = await connect(chaos_proxy.url, **FAST)
    log = StatusLog(nc)
    try:
        assert await nc.rtt() < 0.05
        chaos_proxy.set_latency(0.05)
        rtt = await asyncio.wait_for(nc.rtt(), 5)
        assert rtt >= 0.1, rtt
        nc.subscribe("lat.echo", callback=lambda m: m.respond(m.data.upper()))
        sub = nc.subscribe("lat.x")
        nc.publish("lat.x", b"slow")
        assert (await sub.next_msg(timeout=3)).data == b"slow"
        assert (await nc.request("lat.echo", b"hi", timeout=3)).data == b"HI"
        await asyncio.wait_for(nc.flush(), 3)
        chaos_proxy.set_latency(0)
        assert await asyncio.wait_for(nc.rtt(), 2) < 0.05
        assert not log.events  # nothing was stale or lost
    finally:
        await log.aclose()
        await nc.close()


async def test_cut_in_the_middle_of_a_frame_then_messages_flow_again(
    chaos_proxy: ChaosProxy, nats_server: NatsServer
) -> None:
    def payload(n: int) -> bytes:
        return (b"%08d|" % n) * 40  # 360 bytes whose content checks itself

    nc = await connect(chaos_proxy.url, max_reconnect_attempts=-1, **FAST)
    pub = await connect(nats_server.url)
    log = StatusLog(nc)
    received: list[int] = []
    corrupt: list[bytes] = []

    def on_msg(msg: Msg) -> None:
        n = int(msg.data[:8])
        if msg.data != payload(n):
            corrupt.append(msg.data)
        received.append(n)

    nc.subscribe("cut.x", callback=on_msg)
    await nc.flush()
    stop = asyncio.Event()

    async def pump() -> None:
        n = 0
        while not stop.is_set():
            for _ in range(20):
                pub.publish("cut.x", payload(n))
                n += 1
            await asyncio.sleep(0.001)

    pumping = asyncio.create_task(pump())
    try:
        await eventually(lambda: len(received) >= 200, timeout=5, what="messages flowing")
        chaos_proxy.cut(mid_frame=True)
        await eventually(lambda: bool(log.of(Events.RECONNECT)), timeout=5, what="reconnect after the cut")
        at_reconnect = len(received)
        await eventually(lambda: len(received) >= at_reconnect + 200, timeout=5, what="messages after reconnect")
        assert corrupt == []
        assert received == sorted(received)  # ordered, no duplicates; a gap at the cut is expected
        assert len(set(received)) == len(received)
        assert log.events[0].type == Events.DISCONNECT
    finally:
        stop.set()
        await asyncio.wait_for(pumping, 5)
        await log.aclose()
        await pub.close()
        await nc.close()


async def test_refused_reconnects_keep_trying_until_accepted(chaos_proxy: ChaosProxy) -> None:
    nc = await connect(chaos_proxy.url, max_reconnect_attempts=-1, **FAST)
    log = StatusLog(nc)
    try:
        sub = nc.subscribe("refuse.x")
        await nc.flush()
        chaos_proxy.refuse()
        chaos_proxy.cut()
        await eventually(lambda: len(log.of(DebugEvents.RECONNECTING)) >= 5, timeout=5, what="5 refused attempts")
        assert not log.of(Events.RECONNECT)
        assert not nc.is_closed
        chaos_proxy.refuse(False)
        await eventually(lambda: bool(log.of(Events.RECONNECT)), timeout=5, what="reconnect once accepted")
        assert chaos_proxy.connections == 1
        nc.publish("refuse.x", b"back")
        assert (await sub.next_msg(timeout=2)).data == b"back"
    finally:
        chaos_proxy.refuse(False)
        await log.aclose()
        await nc.close()


async def test_server_that_never_comes_back_closes_with_the_last_error(chaos_proxy: ChaosProxy) -> None:
    nc = await connect(chaos_proxy.url, max_reconnect_attempts=3, **FAST)
    log = StatusLog(nc)
    try:
        chaos_proxy.refuse()
        chaos_proxy.cut()
        err = await asyncio.wait_for(asyncio.shield(nc.closed), 5)
        assert isinstance(err, NatsConnectionRefusedError), repr(err)
        assert nc.is_closed
        assert len(log.of(DebugEvents.RECONNECTING)) == 3
        assert not log.of(Events.RECONNECT)
    finally:
        with contextlib.suppress(OSError):
            chaos_proxy.refuse(False)
        await log.aclose()
        await nc.close()


async def test_an_abandoned_flush_is_not_reported_when_the_connection_closes(chaos_proxy: ChaosProxy) -> None:
    """A flush the caller stopped waiting for is failed by close(): nobody awaits it, and asyncio must not log
    'Future exception was never retrieved' for it."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        nc = await cnats.connect(chaos_proxy.url, ping_interval=60)
        chaos_proxy.blackhole()
        with pytest.raises(cnats.NatsTimeoutError):
            await nc.flush(timeout=0.1)
        waiter = asyncio.ensure_future(nc.flush())
        await asyncio.sleep(0.05)
        waiter.cancel()
        await nc.close()
        await asyncio.sleep(0)
        gc.collect()
        assert [c for c in reported if "never retrieved" in str(c.get("message"))] == []
    finally:
        loop.set_exception_handler(None)
