"""Pending limits of a subscription: slow consumer with DROP, flow control with BLOCK."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from helpers.core import StatusLog, eventually, stays

from cnats import Events, Msg, NatsConnection, PendingPolicy, Subscription, connect
from cnats.errors import InvalidOptionError, SlowConsumerError
from cnats.testing import NatsServer

pytestmark = pytest.mark.nats_server(jetstream=False)


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[NatsConnection]:
    conn = await connect(nats_server.url)
    yield conn
    await conn.close()


@pytest.fixture
async def pub(nats_server: NatsServer) -> AsyncIterator[NatsConnection]:
    """A second connection that publishes, so the subscriber's socket carries only deliveries."""
    conn = await connect(nats_server.url)
    yield conn
    await conn.close()


class Gate:
    """A coroutine callback that records messages and blocks on an Event until opened."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.got: list[bytes] = []

    async def __call__(self, msg: Msg) -> None:
        await self.open.wait()
        self.got.append(msg.data)


def slow_events(log: StatusLog) -> list[SlowConsumerError]:
    out: list[SlowConsumerError] = []
    for status in log.of(Events.ERROR, "SLOW_CONSUMER"):
        assert isinstance(status.error, SlowConsumerError)
        out.append(status.error)
    return out


async def hold(sub: Subscription, pub: NatsConnection) -> None:
    """Make a Gate-blocked callback hold one message, so that nothing leaves the queue during the next burst."""
    before = sub.processed
    pub.publish(sub.subject, b"primer")
    await pub.flush()
    await eventually(lambda: sub.processed == before + 1, what="the callback holds the primer")


async def burst(pub: NatsConnection, subject: str, count: int, payload: bytes = b"m") -> None:
    for _ in range(count):
        pub.publish(subject, payload)
    await pub.flush()


# -- DROP (the default policy) -------------------------------------------------------------------------------------


async def test_slow_consumer_drops_beyond_pending_msgs_limit(nc: NatsConnection, pub: NatsConnection) -> None:
    gate = Gate()
    sub = nc.subscribe("limits.msgs", callback=gate, pending_msgs_limit=10)
    await nc.flush()
    await hold(sub, pub)
    async with StatusLog(nc) as log:
        await burst(pub, "limits.msgs", 100)
        await eventually(lambda: sub.received == 101, what="all 100 delivered by the server")
        assert sub.pending == 10
        assert sub.dropped == 90
        assert sub.dropped == sub.received - sub.processed - sub.pending
        await eventually(lambda: len(slow_events(log)) >= 1, what="a SLOW_CONSUMER status")
        await nc.flush()
        errors = slow_events(log)
        assert len(errors) == 1  # once per burst, not once per dropped message
        err = errors[0]
        assert err.code == "SLOW_CONSUMER"
        assert err.sid == sub.sid
        assert err.subject == "limits.msgs"
        assert err.pending_msgs == 10  # the queue when the first message was dropped
    gate.open.set()


async def test_slow_consumer_counts_hold_without_priming(nc: NatsConnection, pub: NatsConnection) -> None:
    # Without a primer the callback may take one message between two socket reads, so the exact split depends on
    # timing; the accounting identity and the limit do not.
    gate = Gate()
    sub = nc.subscribe("limits.loose", callback=gate, pending_msgs_limit=10)
    await nc.flush()
    await burst(pub, "limits.loose", 100)
    await eventually(lambda: sub.received == 100)
    await eventually(lambda: sub.processed == 1, what="the callback took one message")
    assert sub.pending <= 10
    assert sub.dropped == sub.received - sub.processed - sub.pending
    assert 89 <= sub.dropped <= 90
    gate.open.set()


async def test_slow_consumer_recovers_after_unblocking(nc: NatsConnection, pub: NatsConnection) -> None:
    gate = Gate()
    sub = nc.subscribe("limits.recover", callback=gate, pending_msgs_limit=10)
    await nc.flush()
    await hold(sub, pub)
    await burst(pub, "limits.recover", 100)
    await eventually(lambda: sub.received == 101)
    assert sub.dropped == 90
    gate.open.set()
    await eventually(lambda: len(gate.got) == 11 and sub.pending == 0, what="queued messages processed")
    assert not sub.is_closed
    pub.publish("limits.recover", b"new")
    await pub.flush()
    await eventually(lambda: gate.got[-1:] == [b"new"], what="a new message after recovery")
    assert sub.dropped == 90  # nothing more dropped
    assert sub.processed == 12


async def test_each_burst_reports_slow_consumer_once(nc: NatsConnection, pub: NatsConnection) -> None:
    gate = Gate()
    sub = nc.subscribe("limits.bursts", callback=gate, pending_msgs_limit=5)
    await nc.flush()
    async with StatusLog(nc) as log:
        await hold(sub, pub)
        await burst(pub, "limits.bursts", 50)
        await eventually(lambda: sub.received == 51)
        await eventually(lambda: len(slow_events(log)) >= 1)
        await nc.flush()
        assert len(slow_events(log)) == 1
        gate.open.set()
        await eventually(lambda: sub.pending == 0 and len(gate.got) == 6)
        gate.open.clear()
        # Messages were accepted again since the last drop, so the next overflow is a new burst: one more event.
        await hold(sub, pub)
        await burst(pub, "limits.bursts", 50)
        await eventually(lambda: sub.received == 102)
        await eventually(lambda: len(slow_events(log)) >= 2)
        await nc.flush()
        assert len(slow_events(log)) == 2
        assert sub.dropped == 90
    gate.open.set()


async def test_slow_consumer_drops_beyond_pending_bytes_limit(nc: NatsConnection, pub: NatsConnection) -> None:
    gate = Gate()
    sub = nc.subscribe("limits.bytes", callback=gate, pending_msgs_limit=None, pending_bytes_limit=1000)
    await nc.flush()
    await hold(sub, pub)
    async with StatusLog(nc) as log:
        await burst(pub, "limits.bytes", 100, payload=b"x" * 100)
        await eventually(lambda: sub.received == 101)
        assert sub.pending_bytes == 1000
        assert sub.pending == 10
        assert sub.dropped == 90
        await eventually(lambda: len(slow_events(log)) >= 1)
        await nc.flush()
        errors = slow_events(log)
        assert len(errors) == 1
        assert errors[0].sid == sub.sid
        assert errors[0].subject == "limits.bytes"
        assert errors[0].pending_bytes == 1000
    gate.open.set()
    await eventually(lambda: sub.pending == 0 and sub.pending_bytes == 0)


async def test_iterator_subscription_is_limited_too(nc: NatsConnection, pub: NatsConnection) -> None:
    sub = nc.subscribe("limits.iter", pending_msgs_limit=10)
    await nc.flush()
    await burst(pub, "limits.iter", 30)
    await eventually(lambda: sub.received == 30)
    assert sub.pending == 10
    assert sub.dropped == 20
    got = [(await sub.next_msg(timeout=5)).data for _ in range(10)]
    assert len(got) == 10
    pub.publish("limits.iter", b"fresh")
    await pub.flush()
    assert (await sub.next_msg(timeout=5)).data == b"fresh"


async def test_none_limits_are_unlimited(nc: NatsConnection, pub: NatsConnection) -> None:
    gate = Gate()
    sub = nc.subscribe("limits.none", callback=gate, pending_msgs_limit=None, pending_bytes_limit=None)
    await nc.flush()
    async with StatusLog(nc) as log:
        await burst(pub, "limits.none", 5000, payload=b"p" * 64)
        await eventually(lambda: sub.received == 5000)
        assert sub.dropped == 0
        assert sub.pending + sub.processed == 5000
        assert sub.pending >= 4999
        assert sub.pending_bytes >= 4999 * 64
        await nc.flush()
        assert slow_events(log) == []
        gate.open.set()
        await eventually(lambda: len(gate.got) == 5000)


# -- BLOCK: flow control instead of loss -------------------------------------------------------------------------------


async def test_block_policy_delivers_everything_in_order(nc: NatsConnection, pub: NatsConnection) -> None:
    count = 200
    payload_size = 8 * 1024  # big enough that 200 of them need many socket reads
    sub = nc.subscribe("block.main", pending_msgs_limit=5, on_full=PendingPolicy.BLOCK)
    side: list[bytes] = []
    nc.subscribe("block.side", callback=lambda m: side.append(m.data))
    await nc.flush()
    async with StatusLog(nc) as log:
        for i in range(count):
            pub.publish("block.main", str(i).encode().ljust(payload_size, b"."))
        pub.publish("block.side", b"after-the-burst")
        await pub.flush()

        # Nobody consumes yet: reading from the socket is paused, so the queue stays near its limit (it can overrun
        # by what one socket read had already brought in) instead of taking the whole burst.
        await eventually(lambda: sub.pending >= 5)
        await stays(lambda: sub.received < count, duration=0.2, what="reading is paused")
        # Flow control is per connection, not per subscription: every subscription of the connection waits
        # while this one is full, so the side message published after the burst has not been delivered.
        assert side == []

        got: list[int] = []

        async def consume() -> None:
            async for msg in sub:
                got.append(int(msg.data.rstrip(b".")))
                if len(got) % 20 == 0:
                    await asyncio.sleep(0.001)  # a slow consumer
                if len(got) == count:
                    break

        await asyncio.wait_for(consume(), 15)
        assert got == list(range(count))
        assert sub.received == count
        assert sub.dropped == 0
        await eventually(lambda: side == [b"after-the-burst"], what="the other subscription resumes")
        await nc.flush()
        assert slow_events(log) == []
    assert not nc.is_closed


async def test_block_policy_with_coroutine_callback_drops_nothing(nc: NatsConnection, pub: NatsConnection) -> None:
    got: list[int] = []

    async def on_msg(msg: Msg) -> None:
        await asyncio.sleep(0)
        got.append(int(msg.data))

    sub = nc.subscribe("block.cb", callback=on_msg, pending_msgs_limit=5, on_full=PendingPolicy.BLOCK)
    await nc.flush()
    for i in range(500):
        pub.publish("block.cb", str(i))
    await pub.flush()
    await eventually(lambda: len(got) == 500, timeout=10)
    assert got == list(range(500))
    assert sub.dropped == 0


async def test_block_policy_with_plain_function_callback_is_invalid(nc: NatsConnection) -> None:
    with pytest.raises(InvalidOptionError):
        nc.subscribe("block.plain", callback=lambda m: None, on_full=PendingPolicy.BLOCK)
    # The rejected subscription left nothing behind: the connection keeps working.
    sub: Subscription = nc.subscribe("block.plain")
    nc.publish("block.plain", b"ok")
    assert (await sub.next_msg(timeout=5)).data == b"ok"
