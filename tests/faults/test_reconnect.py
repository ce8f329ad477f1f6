"""Reconnect policy and "nothing acknowledged is lost" across server restarts, against a real
nats-server that is stopped and started again on the same port.

Every test uses a short ``reconnect_time_wait`` with ``reconnect_jitter=0`` and bounds every wait in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable

import pytest
from helpers.core import StatusLog, closed_port, eventually, http_json, stays

from cnats import DebugEvents, Events, Msg, NatsConnection, Status, connect
from cnats.errors import (
    ConnectionClosedError,
    ConnectionDrainingError,
    DisconnectedError,
    NatsConnectionRefusedError,
    NatsError,
    NatsTimeoutError,
    OutboundBufferLimitError,
)
from cnats.testing import NatsServer

pytestmark = pytest.mark.nats_server(jetstream=False)

FAST = {"reconnect_time_wait": 0.05, "reconnect_jitter": 0.0}


class TimedLog:
    """Status events with the loop time they were seen at (for measuring the spacing of reconnect attempts)."""

    def __init__(self, nc: NatsConnection) -> None:
        self.events: list[tuple[float, Status]] = []
        self._loop = asyncio.get_running_loop()
        self._it = nc.status()
        self._task = self._loop.create_task(self._run())

    async def _run(self) -> None:
        async for status in self._it:
            self.events.append((self._loop.time(), status))

    def times(self, type_: Events | DebugEvents) -> list[float]:
        return [t for t, s in self.events if s.type == type_]

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def closed_result(nc: NatsConnection, timeout: float = 5.0) -> Exception | None:
    """What ``nc.closed`` resolves to (shielded so the timeout does not cancel the future itself)."""
    return await asyncio.wait_for(asyncio.shield(nc.closed), timeout)


async def stop(server: NatsServer) -> None:
    """Stop the (single-node) server, keeping its port and files, without blocking the event loop."""
    await asyncio.to_thread(server.stop, 0)


async def start(server: NatsServer) -> None:
    await asyncio.to_thread(server.start)


def hostport(server: NatsServer, node: int = 0) -> str:
    return f"127.0.0.1:{server.ports[node]}"


def spacings(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


# -- reconnect policy -------------------------------------------------------------------------------------------


async def test_reconnect_false_closes_on_first_disconnect(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, reconnect=False, **FAST)
    log = StatusLog(nc)
    try:
        await stop(nats_server)
        err = await closed_result(nc)
        assert isinstance(err, NatsError), err
        assert nc.is_closed
        assert [s.type for s in log.events] == [Events.DISCONNECT]
        assert log.events[0].data == hostport(nats_server)
        with pytest.raises(ConnectionClosedError):
            nc.publish("x")
    finally:
        await log.aclose()
        await nc.close()


@pytest.mark.parametrize("attempts", [1, 3])
async def test_max_reconnect_attempts_then_closed_with_last_error(nats_server: NatsServer, attempts: int) -> None:
    nc = await connect(nats_server.url, max_reconnect_attempts=attempts, **FAST)
    log = StatusLog(nc)
    try:
        await stop(nats_server)
        err = await closed_result(nc)
        assert isinstance(err, NatsConnectionRefusedError), repr(err)
        assert nc.is_closed
        assert len(log.of(DebugEvents.RECONNECTING, hostport(nats_server))) == attempts
        assert not log.of(Events.RECONNECT)
        assert nc.info is None
    finally:
        await log.aclose()
        await nc.close()


async def test_max_reconnect_attempts_count_per_server(nats_server: NatsServer) -> None:
    dead = closed_port()
    nc = await connect(
        [nats_server.url, f"nats://127.0.0.1:{dead}"], no_randomize=True, max_reconnect_attempts=2, **FAST
    )
    log = StatusLog(nc)
    try:
        assert nc.server == hostport(nats_server)
        await stop(nats_server)
        err = await closed_result(nc)
        assert isinstance(err, NatsConnectionRefusedError), repr(err)
        assert len(log.of(DebugEvents.RECONNECTING, hostport(nats_server))) == 2
        assert len(log.of(DebugEvents.RECONNECTING, f"127.0.0.1:{dead}")) == 2
        assert len(log.of(DebugEvents.RECONNECTING)) == 4
    finally:
        await log.aclose()
        await nc.close()


async def test_unlimited_reconnect_attempts_keep_trying_until_the_server_returns(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, max_reconnect_attempts=-1, **FAST)
    log = StatusLog(nc)
    try:
        sub = nc.subscribe("forever")
        await nc.flush()
        await stop(nats_server)
        # More attempts than the default limit (10) would allow: still trying, still not closed.
        await eventually(lambda: len(log.of(DebugEvents.RECONNECTING)) >= 15, timeout=5, what="15 attempts")
        assert not nc.is_closed
        assert not log.of(Events.RECONNECT)
        await start(nats_server)
        await eventually(lambda: bool(log.of(Events.RECONNECT)), timeout=5, what="reconnect")
        assert log.of(Events.RECONNECT)[0].data == hostport(nats_server)
        nc.publish("forever", b"back")
        msg = await sub.next_msg(timeout=2)
        assert msg.data == b"back"
    finally:
        await log.aclose()
        await nc.close()


async def test_reconnect_delay_handler_is_called_and_its_delay_honoured(nats_server: NatsServer) -> None:
    calls = 0

    def delay() -> float:
        nonlocal calls
        calls += 1
        return 0.25

    # reconnect_time_wait=5 would make the test slow if it were used instead of the handler.
    nc = await connect(
        nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=5.0, reconnect_delay_handler=delay
    )
    log = TimedLog(nc)
    try:
        await stop(nats_server)
        await eventually(lambda: len(log.times(DebugEvents.RECONNECTING)) >= 4, timeout=5, what="4 attempts")
        gaps = spacings(log.times(DebugEvents.RECONNECTING))
        assert all(0.22 <= g <= 0.6 for g in gaps), gaps
        assert calls >= 3
        await start(nats_server)
        await eventually(lambda: bool(log.times(Events.RECONNECT)), timeout=3, what="reconnect")
    finally:
        await log.aclose()
        await nc.close()


@pytest.mark.parametrize("jitter", [0.0, 0.1])
async def test_delay_between_attempts_on_one_server_is_time_wait_plus_jitter(
    nats_server: NatsServer, jitter: float
) -> None:
    nc = await connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2, reconnect_jitter=jitter)
    log = TimedLog(nc)
    try:
        await stop(nats_server)
        await eventually(lambda: len(log.times(DebugEvents.RECONNECTING)) >= 4, timeout=5, what="4 attempts")
        gaps = spacings(log.times(DebugEvents.RECONNECTING))
        # Every attempt waits at least reconnect_time_wait. A busy machine only ever lengthens a gap, so the upper
        # bound is asked of the shortest one; the jitter's own bounds are tested exactly in tests/core.
        assert all(g >= 0.18 for g in gaps), gaps
        assert min(gaps) <= 0.2 + jitter + 0.15, gaps
    finally:
        await log.aclose()
        await nc.close()


async def test_wait_on_first_connect_retries_until_the_server_starts() -> None:
    server = NatsServer()  # ports are fixed now; the process starts later
    loop = asyncio.get_running_loop()

    async def start_later() -> None:
        await asyncio.sleep(0.5)
        await asyncio.to_thread(server.start)

    starter = asyncio.create_task(start_later())
    try:
        begin = loop.time()
        nc = await asyncio.wait_for(
            # max_reconnect_attempts does not limit the first connect: it keeps trying "without limit"
            connect(
                server.url,
                wait_on_first_connect=True,
                max_reconnect_attempts=2,
                reconnect_time_wait=0.1,
                reconnect_jitter=0,
            ),
            10,
        )
        try:
            assert loop.time() - begin >= 0.45
            assert nc.server == hostport(server)
            sub = nc.subscribe("first")
            nc.publish("first", b"hello")
            assert (await sub.next_msg(timeout=2)).data == b"hello"
        finally:
            await nc.close()
    finally:
        await starter
        await asyncio.to_thread(server.stop)


async def test_no_wait_on_first_connect_raises_at_once() -> None:
    loop = asyncio.get_running_loop()
    begin = loop.time()
    with pytest.raises(NatsConnectionRefusedError):
        await asyncio.wait_for(
            connect([f"nats://127.0.0.1:{closed_port()}", f"nats://127.0.0.1:{closed_port()}"], **FAST), 5
        )
    assert loop.time() - begin < 1.0


async def test_no_randomize_tries_servers_in_the_given_order(
    nats_server_factory: Callable[..., NatsServer],
) -> None:
    a = nats_server_factory()
    b = nats_server_factory()
    dead = f"nats://127.0.0.1:{closed_port()}"
    # A refused server first, then a real one: the client moves on to the next one in order.
    async with await connect([dead, a.url], no_randomize=True, **FAST) as nc:
        assert nc.server == hostport(a)
    # Two live servers: always the first one given (with shuffling, 8 times the same would be a 1/256 chance).
    for first, second in [(a, b), (b, a)] * 4:
        async with await connect([first.url, second.url], no_randomize=True, **FAST) as nc:
            assert nc.server == hostport(first)
    # On a reconnect the next server in order takes over.
    nc = await connect([a.url, b.url], no_randomize=True, max_reconnect_attempts=1, **FAST)
    log = StatusLog(nc)
    try:
        await stop(a)
        await eventually(lambda: bool(log.of(Events.RECONNECT)), timeout=5, what="reconnect to b")
        assert log.of(Events.RECONNECT)[0].data == hostport(b)
        assert nc.server == hostport(b)
    finally:
        await log.aclose()
        await nc.close()


async def test_client_initiated_reconnect(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, **FAST)
    log = StatusLog(nc)
    try:
        sub = nc.subscribe("cir")
        await nc.flush()
        await nc.reconnect()
        await eventually(lambda: bool(log.of(Events.RECONNECT)), timeout=5, what="reconnect")
        types = [s.type for s in log.events]
        assert types[0] == DebugEvents.CLIENT_INITIATED_RECONNECT
        assert log.events[0].data == ""
        assert types.index(Events.DISCONNECT) < types.index(Events.RECONNECT)
        assert set(types) <= {
            DebugEvents.CLIENT_INITIATED_RECONNECT,
            Events.DISCONNECT,
            DebugEvents.RECONNECTING,
            Events.RECONNECT,
        }
        nc.publish("cir", b"after")
        assert (await sub.next_msg(timeout=2)).data == b"after"
    finally:
        await log.aclose()
        await nc.close()


async def test_client_initiated_reconnect_while_disconnected_is_a_no_op(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, max_reconnect_attempts=-1, **FAST)
    log = StatusLog(nc)
    try:
        await stop(nats_server)
        await eventually(lambda: bool(log.of(Events.DISCONNECT)), timeout=5, what="disconnect")
        await nc.reconnect()
        await nc.reconnect()
        await asyncio.sleep(0.1)
        assert not log.of(DebugEvents.CLIENT_INITIATED_RECONNECT)
        assert len(log.of(Events.DISCONNECT)) == 1
        assert not nc.is_closed
        await start(nats_server)
        await eventually(lambda: bool(log.of(Events.RECONNECT)), timeout=5, what="reconnect")
        assert len(log.of(Events.RECONNECT)) == 1
    finally:
        await log.aclose()
        await nc.close()


async def test_client_initiated_reconnect_while_draining_or_closed_raises(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, **FAST)
    release = asyncio.Event()

    async def slow(msg: Msg) -> None:
        await release.wait()

    nc.subscribe("drain.slow", callback=slow)
    nc.publish("drain.slow", b"x")
    await nc.flush()
    drain = asyncio.create_task(nc.drain())
    try:
        await eventually(lambda: nc.is_draining, timeout=2, what="draining")
        with pytest.raises(ConnectionDrainingError):
            await nc.reconnect()
    finally:
        release.set()
        await asyncio.wait_for(drain, 5)
    assert await closed_result(nc) is None
    with pytest.raises(ConnectionClosedError):
        await nc.reconnect()


async def test_status_order_on_a_server_restart(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, max_reconnect_attempts=-1, **FAST)
    log = StatusLog(nc)
    try:
        await asyncio.to_thread(nats_server.restart)
        await eventually(lambda: bool(log.of(Events.RECONNECT)), timeout=5, what="reconnect")
        types = [s.type for s in log.events]
        assert types[0] == Events.DISCONNECT
        assert types[-1] == Events.RECONNECT
        assert len(types) >= 3
        assert all(t == DebugEvents.RECONNECTING for t in types[1:-1]), types
        assert {s.data for s in log.events} == {hostport(nats_server)}
    finally:
        await log.aclose()
        await nc.close()


# -- nothing acknowledged is lost -------------------------------------------------------------------------------


class Stream:
    """A numbered stream published on ``nc`` and received by a subscription on the same connection."""

    def __init__(self, nc: NatsConnection, subject: str) -> None:
        self.nc = nc
        self.subject = subject
        self.accepted: list[int] = []
        self.rejected: list[int] = []
        self.received: list[int] = []
        self.next = 0
        nc.subscribe(subject, callback=lambda m: self.received.append(int(m.data)))

    def publish(self) -> None:
        n = self.next
        self.next += 1
        try:
            self.nc.publish(self.subject, str(n).encode())
        except OutboundBufferLimitError:
            self.rejected.append(n)
        else:
            self.accepted.append(n)

    def duplicates(self) -> int:
        return len(self.received) - len(set(self.received))

    def missing(self, among: list[int]) -> list[int]:
        got = set(self.received)
        return [n for n in among if n not in got]


class DisconnectMarker:
    """Remembers how many messages the stream had accepted when the client reported DISCONNECT / RECONNECT."""

    def __init__(self, nc: NatsConnection, stream: Stream) -> None:
        self.at_disconnect: list[int] = []
        self.at_reconnect: list[int] = []
        self._stream = stream
        self._it = nc.status()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for status in self._it:
            if status.type == Events.DISCONNECT:
                self.at_disconnect.append(self._stream.next)
            elif status.type == Events.RECONNECT:
                self.at_reconnect.append(self._stream.next)

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def publish_across_restarts(server: NatsServer, stream: Stream, marker: DisconnectMarker, restarts: int) -> None:
    """Publish continuously (one message per loop turn) while the server is restarted ``restarts`` times, then
    a while more; returns once everything is flushed."""
    for round_ in range(restarts):
        restart = asyncio.create_task(asyncio.to_thread(server.restart))
        while not restart.done() or len(marker.at_reconnect) <= round_:
            stream.publish()
            await asyncio.sleep(0)
            assert stream.next < 2_000_000, "the restart did not complete"
        await restart
        for _ in range(500):
            stream.publish()
            await asyncio.sleep(0)
        # What the reconnect sent (the outage's buffer) must have reached the server before the next restart kills
        # this connection too: otherwise it is again "written into a dying socket", the documented at-most-once
        # window, just one restart later.
        await asyncio.wait_for(stream.nc.flush(), 10)
    # The subscription is on the publishing connection: the server queues every delivery of a publish ahead of
    # the PONG answering a later PING, so once flush() returns everything that will ever arrive has arrived.
    await asyncio.wait_for(stream.nc.flush(), 10)


async def test_stream_across_a_restart_arrives_exactly_once_in_order(nats_server: NatsServer) -> None:
    # Publishes accepted after the client noticed the disconnect (buffered during the outage, sent after the
    # reconnect) must all arrive, exactly once, in order; nothing is duplicated anywhere in the stream.
    nc = await connect(nats_server.url, max_reconnect_attempts=-1, **FAST)
    stream = Stream(nc, "stream.once")
    marker = DisconnectMarker(nc, stream)
    try:
        await nc.flush()
        for _ in range(1000):
            stream.publish()
            if stream.next % 5 == 0:
                await asyncio.sleep(0)
        await nc.flush()
        assert stream.received == list(range(1000))
        await publish_across_restarts(nats_server, stream, marker, restarts=1)
        assert len(marker.at_disconnect) == 1
        assert not stream.rejected
        noticed = marker.at_disconnect[0]
        after = [n for n in stream.accepted if n >= noticed]
        outage = marker.at_reconnect[0] - noticed
        assert outage > 0, "nothing was published during the outage"
        assert stream.duplicates() == 0
        assert stream.received == sorted(stream.received), "out of order"
        assert stream.missing(after) == [], f"{len(stream.missing(after))} of {len(after)} lost after the disconnect"
    finally:
        await marker.aclose()
        await nc.close()


async def test_only_publishes_written_into_the_dying_socket_can_be_lost(nats_server: NatsServer) -> None:
    # Core NATS has no publish acknowledgement: bytes the client wrote after the server stopped reading, but before
    # the client noticed, may be lost (docs/reconnect.md; use flush() or JetStream where that matters). Everything
    # accepted from the DISCONNECT on (buffered during the outage) must arrive, exactly once and in order. Three
    # restarts make the risky window likely to contain some messages.
    nc = await connect(nats_server.url, max_reconnect_attempts=-1, **FAST)
    stream = Stream(nc, "stream.cut")
    marker = DisconnectMarker(nc, stream)
    try:
        await nc.flush()
        await publish_across_restarts(nats_server, stream, marker, restarts=3)
        assert not stream.rejected
        assert stream.duplicates() == 0
        lost = stream.missing(stream.accepted)
        windows = list(zip(marker.at_disconnect, marker.at_reconnect, strict=False))
        # Where the lost ones were: per restart, how many were published before the client noticed the disconnect
        # (written into the dying socket) and how many after (buffered during the outage).
        per_restart = [
            (
                sum(1 for n in lost if (windows[i - 1][1] if i else 0) <= n < d),
                sum(1 for n in lost if d <= n < r),
            )
            for i, (d, r) in enumerate(windows)
        ]
        assert all(during == 0 for _, during in per_restart), (
            f"publishes accepted during an outage were lost; (before DISCONNECT, during the outage) per restart: "
            f"{per_restart}; stream position at (DISCONNECT, RECONNECT): {windows}"
        )
        last_window_end = windows[-1][1] if windows else 0
        assert not [n for n in lost if n >= last_window_end], "publishes after the last reconnect were lost"
    finally:
        await marker.aclose()
        await nc.close()


async def test_publishes_buffered_while_disconnected_up_to_pending_bytes_limit(nats_server: NatsServer) -> None:
    limit = 64 * 1024
    payload = b"p" * 1000
    frame = len(b"PUB buf.limit 1000\r\n") + len(payload) + 2
    nc = await connect(nats_server.url, max_reconnect_attempts=-1, pending_bytes_limit=limit, **FAST)
    log = StatusLog(nc)
    received: list[bytes] = []
    nc.subscribe("buf.limit", callback=lambda m: received.append(m.data))
    try:
        await nc.flush()
        await stop(nats_server)
        await eventually(lambda: bool(log.of(Events.DISCONNECT)), timeout=5, what="disconnect")
        accepted = 0
        with pytest.raises(OutboundBufferLimitError):
            for i in range(10_000):
                nc.publish("buf.limit", b"%04d" % i + payload[4:])
                accepted += 1
        assert accepted * frame <= limit < (accepted + 1) * frame
        with pytest.raises(OutboundBufferLimitError):  # still full: nothing was dropped to make room
            nc.publish("buf.limit", payload)
        await start(nats_server)
        await asyncio.wait_for(nc.flush(), 5)
        await eventually(lambda: len(received) >= accepted, timeout=2)
        assert [int(d[:4]) for d in received] == list(range(accepted))
        # room again after the reconnect
        nc.publish("buf.limit", b"9999" + payload[4:])
        await asyncio.wait_for(nc.flush(), 5)
        await eventually(lambda: len(received) == accepted + 1, timeout=2)
    finally:
        await log.aclose()
        await nc.close()


async def test_subscription_restored_with_its_remaining_max(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, max_reconnect_attempts=-1, **FAST)
    log = StatusLog(nc)
    try:
        received: list[bytes] = []
        sub = nc.subscribe("max.restored", max=10, callback=lambda m: received.append(m.data))
        for i in range(4):
            nc.publish("max.restored", b"before-%d" % i)
        await nc.flush()
        await eventually(lambda: len(received) == 4, timeout=2)
        await asyncio.to_thread(nats_server.restart)
        await eventually(lambda: bool(log.of(Events.RECONNECT)), timeout=5, what="reconnect")
        for i in range(10):
            nc.publish("max.restored", b"after-%d" % i)
        await asyncio.wait_for(nc.flush(), 5)
        await eventually(lambda: sub.is_closed, timeout=2, what="subscription closed at max")
        await asyncio.sleep(0.05)
        assert received[4:] == [b"after-%d" % i for i in range(6)]
        assert sub.received == 10
    finally:
        await log.aclose()
        await nc.close()


async def test_subscription_drained_during_the_outage_is_not_restored(nats_server: NatsServer) -> None:
    # Subscription.drain() during an outage: its UNSUB cannot be sent, the drain completes after the reconnect,
    # and the server must not be left with the interest (restored SUB without an UNSUB).
    nc = await connect(nats_server.url, max_reconnect_attempts=-1, **FAST)
    log = StatusLog(nc)
    try:
        drained: list[bytes] = []
        sub = nc.subscribe("outage.drained", callback=lambda m: drained.append(m.data))
        kept = nc.subscribe("outage.kept")
        await nc.flush()
        await stop(nats_server)
        await eventually(lambda: bool(log.of(Events.DISCONNECT)), timeout=5, what="disconnect")
        drain = asyncio.create_task(sub.drain())
        await asyncio.sleep(0.1)
        await start(nats_server)
        await asyncio.wait_for(drain, 5)
        assert sub.is_closed
        await asyncio.wait_for(nc.flush(), 5)
        connz = await http_json(nats_server.monitor_urls[0] + "/connz?subs=1")
        subjects = [s for c in connz["connections"] for s in c.get("subscriptions_list") or []]
        assert "outage.kept" in subjects
        assert "outage.drained" not in subjects, subjects
        before = nc.stats().in_msgs
        nc.publish("outage.drained", b"nobody")
        nc.publish("outage.kept", b"kept")
        assert (await kept.next_msg(timeout=2)).data == b"kept"
        assert nc.stats().in_msgs == before + 1  # the drained subject is not delivered to the client any more
        assert drained == []
    finally:
        await log.aclose()
        await nc.close()


async def test_flush_during_a_reconnect_waits_and_succeeds(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, max_reconnect_attempts=-1, **FAST)
    log = StatusLog(nc)
    try:
        await stop(nats_server)
        await eventually(lambda: bool(log.of(Events.DISCONNECT)), timeout=5, what="disconnect")
        flush = asyncio.create_task(nc.flush())
        await asyncio.sleep(0.2)
        assert not flush.done()
        await start(nats_server)
        await asyncio.wait_for(flush, 5)
        assert log.of(Events.RECONNECT)
    finally:
        await log.aclose()
        await nc.close()


async def test_flush_with_timeout_while_the_server_stays_down(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, max_reconnect_attempts=-1, **FAST)
    log = StatusLog(nc)
    try:
        await stop(nats_server)
        await eventually(lambda: bool(log.of(Events.DISCONNECT)), timeout=5, what="disconnect")
        loop = asyncio.get_running_loop()
        begin = loop.time()
        with pytest.raises(NatsTimeoutError):
            await asyncio.wait_for(nc.flush(timeout=0.3), 5)
        assert 0.25 <= loop.time() - begin < 2
        assert not nc.is_closed
        with pytest.raises(DisconnectedError):
            await asyncio.wait_for(nc.rtt(), 2)
    finally:
        await log.aclose()
        await nc.close()


async def test_request_made_during_the_outage_succeeds_after_the_reconnect(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, max_reconnect_attempts=-1, **FAST)
    log = StatusLog(nc)
    try:
        nc.subscribe("svc.echo", callback=lambda m: m.respond(b"re:" + m.data))
        assert (await nc.request("svc.echo", b"a", timeout=2)).data == b"re:a"
        await stop(nats_server)
        await eventually(lambda: bool(log.of(Events.DISCONNECT)), timeout=5, what="disconnect")
        request = asyncio.create_task(nc.request("svc.echo", b"b", timeout=5))
        await asyncio.sleep(0.2)
        assert not request.done()
        await start(nats_server)
        msg = await asyncio.wait_for(request, 6)
        assert msg.data == b"re:b"
        # and one whose timeout runs out during the outage fails with a timeout, not a hang
        await stop(nats_server)
        await eventually(lambda: len(log.of(Events.DISCONNECT)) == 2, timeout=5, what="second disconnect")
        with pytest.raises(NatsTimeoutError):
            await asyncio.wait_for(nc.request("svc.echo", b"c", timeout=0.2), 5)
    finally:
        await log.aclose()
        await nc.close()


# -- close and drain while reconnecting -------------------------------------------------------------------------


async def test_close_while_reconnecting_stops_the_reconnect_loop(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, max_reconnect_attempts=-1, **FAST)
    log = StatusLog(nc)
    try:
        await stop(nats_server)
        await eventually(lambda: len(log.of(DebugEvents.RECONNECTING)) >= 2, timeout=5, what="reconnecting")
        loop = asyncio.get_running_loop()
        begin = loop.time()
        await asyncio.wait_for(nc.close(), 2)
        assert loop.time() - begin < 0.5
        assert await closed_result(nc) is None
        assert nc.is_closed
        attempts = len(log.of(DebugEvents.RECONNECTING))
        await stays(lambda: len(log.of(DebugEvents.RECONNECTING)) == attempts, duration=0.3)
    finally:
        await log.aclose()
        await nc.close()


async def test_drain_while_reconnecting_completes_after_the_server_returns(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, max_reconnect_attempts=-1, **FAST)
    log = StatusLog(nc)
    try:
        received: list[bytes] = []
        nc.subscribe("drain.r", callback=lambda m: received.append(m.data))
        await nc.flush()
        await stop(nats_server)
        await eventually(lambda: bool(log.of(DebugEvents.RECONNECTING)), timeout=5, what="reconnecting")
        drain = asyncio.create_task(nc.drain())
        await asyncio.sleep(0.1)
        assert nc.is_draining
        await start(nats_server)
        await asyncio.wait_for(drain, 5)
        assert await closed_result(nc) is None
        assert nc.is_closed
    finally:
        await log.aclose()
        await nc.close()


async def test_drain_while_reconnecting_to_a_server_that_never_returns(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, max_reconnect_attempts=3, **FAST)
    log = StatusLog(nc)
    try:
        nc.subscribe("drain.never", callback=lambda m: None)
        await nc.flush()
        await stop(nats_server)
        await eventually(lambda: bool(log.of(DebugEvents.RECONNECTING)), timeout=5, what="reconnecting")
        with contextlib.suppress(NatsError):
            await asyncio.wait_for(nc.drain(), 5)
        err = await closed_result(nc)
        assert isinstance(err, NatsConnectionRefusedError), repr(err)
        assert nc.is_closed
    finally:
        await log.aclose()
        await nc.close()
