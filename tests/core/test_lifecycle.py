"""Connection lifecycle against a real nats-server: flush, rtt, close, drain, reconnect."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from cnats import DebugEvents, Events, Msg, NatsConnection, Status, connect
from cnats.errors import ConnectionClosedError, ConnectionDrainingError, NatsError
from cnats.testing import NatsServer

pytestmark = pytest.mark.nats_server(jetstream=False)


async def eventually(pred: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``pred`` until it holds; ``AssertionError`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() >= deadline:
            raise AssertionError(f"not true within {timeout} s: {what or pred!r}")
        await asyncio.sleep(0.005)


async def next_status(it: AsyncIterator[Status], type_: Events | DebugEvents, timeout: float = 5.0) -> Status:
    """The next status of ``type_`` from ``it`` (other events are skipped)."""

    async def find() -> Status:
        async for status in it:
            if status.type == type_:
                return status
        raise AssertionError(f"status iterator ended before a {type_!r} event")

    return await asyncio.wait_for(find(), timeout)


async def closed_result(nc: NatsConnection, timeout: float = 5.0) -> Exception | None:
    """What ``nc.closed`` resolves to (the future itself is shielded from the timeout's cancellation)."""
    return await asyncio.wait_for(asyncio.shield(nc.closed), timeout)


# -- flush and rtt ----------------------------------------------------------------------------------------------


async def test_flush_returns_once_the_server_has_processed_earlier_publishes(nats_server: NatsServer) -> None:
    async with await connect(nats_server.url) as pub, await connect(nats_server.url) as sub_nc:
        received: list[bytes] = []
        sub_nc.subscribe("flush.x", callback=lambda m: received.append(m.data))
        await sub_nc.flush()  # the SUB is registered on the server
        for i in range(100):
            pub.publish("flush.x", str(i).encode())
        await pub.flush()
        # The server routed every message before it answered pub's PING, so they sit in sub_nc's outbound
        # queue ahead of the PONG answering this flush: no polling needed.
        await sub_nc.flush()
        assert received == [str(i).encode() for i in range(100)]


async def test_flush_returns_none(nats_server: NatsServer) -> None:
    async with await connect(nats_server.url) as nc:
        assert await nc.flush() is None
        assert await nc.flush(timeout=2.0) is None


async def test_rtt_is_a_small_positive_float(nats_server: NatsServer) -> None:
    async with await connect(nats_server.url) as nc:
        rtt = await nc.rtt()
        assert isinstance(rtt, float)
        assert 0 < rtt < 1.0


# -- close ----------------------------------------------------------------------------------------------------


async def test_close_is_idempotent_and_closed_resolves_none(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    assert not nc.is_closed
    assert nc.info is not None
    await nc.close()
    await nc.close()
    assert nc.is_closed
    assert nc.info is None
    assert await closed_result(nc) is None
    assert await closed_result(nc) is None  # awaitable any number of times
    assert nc.closed.done() and nc.closed.result() is None


async def test_async_with_closes_the_connection(nats_server: NatsServer) -> None:
    async with await connect(nats_server.url) as nc:
        assert not nc.is_closed
    assert nc.is_closed
    assert await closed_result(nc) is None


CLOSED_OPERATIONS: dict[str, Callable[[NatsConnection], Any]] = {
    "publish": lambda nc: nc.publish("closed.x", b"x"),
    "subscribe": lambda nc: nc.subscribe("closed.x"),
    "request": lambda nc: nc.request("closed.x", b"x", timeout=0.5),
    "flush": lambda nc: nc.flush(),
    "rtt": lambda nc: nc.rtt(),
    "drain": lambda nc: nc.drain(),
    "reconnect": lambda nc: nc.reconnect(),
}


@pytest.mark.parametrize("operation", list(CLOSED_OPERATIONS))
async def test_operations_on_a_closed_connection_raise_connection_closed(
    nats_server: NatsServer, operation: str
) -> None:
    nc = await connect(nats_server.url)
    await nc.close()
    with pytest.raises(ConnectionClosedError):
        result = CLOSED_OPERATIONS[operation](nc)
        if inspect.isawaitable(result):
            await asyncio.wait_for(result, 2)


async def test_close_ends_subscription_iterators_normally(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    sub = nc.subscribe("close.iter")
    await nc.flush()

    async def consume() -> list[Msg]:
        return [m async for m in sub]

    task = asyncio.create_task(consume())
    nc.publish("close.iter", b"one")
    await eventually(lambda: sub.processed == 1, what="first message consumed")
    await nc.close()
    msgs = await asyncio.wait_for(task, 2)  # StopAsyncIteration, not an error
    assert [m.data for m in msgs] == [b"one"]
    assert sub.is_closed
    assert await asyncio.wait_for(asyncio.shield(sub.closed), 2) is None


async def test_close_ends_status_iterators(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    first, second = nc.status(), nc.status()

    async def drain_it(it: AsyncIterator[Status]) -> list[Status]:
        return [s async for s in it]

    tasks = [asyncio.create_task(drain_it(first)), asyncio.create_task(drain_it(second))]
    await asyncio.sleep(0)
    await nc.close()
    assert await asyncio.wait_for(asyncio.gather(*tasks), 2) == [[], []]
    # An iterator asked for after the close ends at once.
    assert await asyncio.wait_for(drain_it(nc.status()), 2) == []


async def test_close_fails_pending_requests_with_connection_closed(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    responder = nc.subscribe("close.req")  # receives the request, never answers
    await nc.flush()
    request = asyncio.create_task(nc.request("close.req", b"?", timeout=5.0))
    await eventually(lambda: responder.received == 1, what="request reached the responder")
    await nc.close()
    with pytest.raises(ConnectionClosedError):
        await asyncio.wait_for(request, 2)


# -- drain ----------------------------------------------------------------------------------------------------


async def test_drain_delivers_every_received_message_to_a_slow_callback_before_closing(
    nats_server: NatsServer,
) -> None:
    async with await connect(nats_server.url) as pub:
        nc = await connect(nats_server.url)
        handled: list[bytes] = []

        async def slow(msg: Msg) -> None:
            await asyncio.sleep(0.01)
            handled.append(msg.data)

        sub = nc.subscribe("drain.slow", callback=slow)
        await nc.flush()
        for i in range(20):
            pub.publish("drain.slow", str(i).encode())
        await pub.flush()  # all 20 are on their way to nc before it sends its UNSUB
        await asyncio.wait_for(nc.drain(), 5)
        assert handled == [str(i).encode() for i in range(20)]
        assert sub.is_closed
        assert nc.is_closed
        assert await closed_result(nc) is None


async def test_drain_flushes_a_publish_made_just_before_it(nats_server: NatsServer) -> None:
    async with await connect(nats_server.url) as listener:
        got = listener.subscribe("drain.last")
        await listener.flush()
        nc = await connect(nats_server.url)
        nc.subscribe("drain.other")  # something to drain first
        nc.publish("drain.last", b"final words")
        await asyncio.wait_for(nc.drain(), 5)
        assert nc.is_closed
        msg = await got.next_msg(timeout=2)
        assert msg.data == b"final words"


async def test_during_drain_subscribe_request_and_drain_raise_connection_draining(nats_server: NatsServer) -> None:
    async with await connect(nats_server.url) as pub:
        nc = await connect(nats_server.url)
        release = asyncio.Event()

        async def blocked(msg: Msg) -> None:
            await release.wait()

        nc.subscribe("drain.block", callback=blocked)
        await nc.flush()
        pub.publish("drain.block", b"hold the drain open")
        await pub.flush()
        drain = asyncio.create_task(nc.drain())
        try:
            await eventually(lambda: nc.is_draining, what="is_draining")
            assert not nc.is_closed
            with pytest.raises(ConnectionDrainingError):
                nc.subscribe("drain.new")
            with pytest.raises(ConnectionDrainingError):
                await nc.request("drain.req", b"?", timeout=0.5)
            with pytest.raises(ConnectionDrainingError):
                await nc.drain()  # a second, concurrent drain
            with pytest.raises(ConnectionDrainingError):
                await nc.reconnect()
        finally:
            release.set()
        await asyncio.wait_for(drain, 5)
        assert not nc.is_draining
        assert nc.is_closed
        assert await closed_result(nc) is None
        with pytest.raises(ConnectionClosedError):
            nc.publish("drain.after", b"x")


async def test_publish_is_refused_once_subscriptions_are_drained_and_earlier_publishes_still_arrive(
    nats_server: NatsServer,
) -> None:
    async with await connect(nats_server.url) as listener:
        got = listener.subscribe("drain.phase")
        await listener.flush()
        nc = await connect(nats_server.url)
        sub = nc.subscribe("drain.phase.sub")
        await nc.flush()
        drain = asyncio.create_task(nc.drain())
        accepted = 0
        refused_while_open = False
        # Publish on every loop turn: accepted while subscriptions drain, refused once drain moves on to
        # flushing (which needs a server round trip, so there is a turn in that phase), never closed before.
        while not drain.done():
            try:
                nc.publish("drain.phase", b"x")
                accepted += 1
            except ConnectionDrainingError:
                refused_while_open = not nc.is_closed
                assert sub.is_closed  # subscriptions were drained first
                break
            except ConnectionClosedError:
                break
            await asyncio.sleep(0)
        assert refused_while_open, "publish never raised ConnectionDrainingError between the sub drain and close"
        await asyncio.wait_for(drain, 5)
        assert accepted >= 1
        for _ in range(accepted):  # every accepted publish was flushed before the close
            await got.next_msg(timeout=2)


async def test_drain_on_a_closed_connection_raises_connection_closed(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    await nc.drain()
    with pytest.raises(ConnectionClosedError):
        await nc.drain()


async def test_drain_without_subscriptions_closes_with_none(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    await asyncio.wait_for(nc.drain(), 5)
    assert nc.is_closed
    assert await closed_result(nc) is None


# -- reconnect ------------------------------------------------------------------------------------------------


async def test_client_initiated_reconnect_emits_events_and_keeps_subscriptions(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, reconnect_time_wait=0.05, reconnect_jitter=0)
    try:
        sub = nc.subscribe("reconnect.client")
        await nc.flush()
        statuses = nc.status()
        seen: list[Status] = []

        async def collect() -> None:
            async for status in statuses:
                seen.append(status)
                if status.type == Events.RECONNECT:
                    return

        collector = asyncio.create_task(collect())
        await nc.reconnect()
        await asyncio.wait_for(collector, 5)
        types = [s.type for s in seen]
        assert types[0] == DebugEvents.CLIENT_INITIATED_RECONNECT
        assert seen[0].data == ""
        assert types.index(Events.DISCONNECT) < types.index(Events.RECONNECT)
        hostport = f"127.0.0.1:{nats_server.port}"
        assert [s.data for s in seen if s.type in (Events.DISCONNECT, Events.RECONNECT)] == [hostport, hostport]
        assert not nc.is_closed
        nc.publish("reconnect.client", b"after")
        assert (await sub.next_msg(timeout=2)).data == b"after"
    finally:
        await nc.close()


async def test_server_restart_restores_subscriptions_and_delivers_publishes_buffered_meanwhile(
    nats_server: NatsServer,
) -> None:
    nc = await connect(nats_server.url, reconnect_time_wait=0.1, reconnect_jitter=0, max_reconnect_attempts=-1)
    try:
        sub = nc.subscribe("restart.x")
        await nc.flush()
        statuses = nc.status()
        await asyncio.to_thread(nats_server.stop)
        await next_status(statuses, Events.DISCONNECT)
        for i in range(3):
            nc.publish("restart.x", f"while-down-{i}".encode())  # buffered until the reconnect
        await asyncio.to_thread(nats_server.start)  # same port
        await next_status(statuses, Events.RECONNECT, timeout=10)
        got = [(await sub.next_msg(timeout=3)).data for _ in range(3)]
        assert got == [b"while-down-0", b"while-down-1", b"while-down-2"]
        nc.publish("restart.x", b"after")
        assert (await sub.next_msg(timeout=2)).data == b"after"
        assert not nc.is_closed
    finally:
        await nc.close()


async def test_server_restart_emits_disconnect_then_reconnect(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, reconnect_time_wait=0.1, reconnect_jitter=0, max_reconnect_attempts=-1)
    try:
        statuses = nc.status()
        seen: list[Status] = []

        async def collect() -> None:
            async for status in statuses:
                seen.append(status)
                if status.type == Events.RECONNECT:
                    return

        collector = asyncio.create_task(collect())
        await asyncio.to_thread(nats_server.restart)
        await asyncio.wait_for(collector, 10)
        main = [s.type for s in seen if s.type in (Events.DISCONNECT, Events.RECONNECT)]
        assert main == [Events.DISCONNECT, Events.RECONNECT]
        assert await nc.rtt() > 0
    finally:
        await nc.close()


async def test_without_reconnect_a_server_stop_closes_the_connection_with_an_error(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, reconnect=False)
    await asyncio.to_thread(nats_server.stop)
    result = await closed_result(nc)
    assert isinstance(result, NatsError)
    assert nc.is_closed
    with pytest.raises(ConnectionClosedError):
        nc.publish("gone", b"x")
