"""The lifecycle of core messaging on a real server: what ``close()``/``drain()`` do to subscriptions, iterators,
callbacks, ``request_many`` and status listeners; awaiting iterators in every way asyncio allows; callbacks of every
shape. The suite runs once per protocol core (compiled, then the pure-Python twin)."""

from __future__ import annotations

import asyncio
import functools
import gc
import sys
import weakref
from collections.abc import Sequence
from typing import Any

import pytest
from helpers.core import eventually
from helpers.lifecycle import Reader, cnats_tasks, stop_server

from cnats import CallbackError, Events, Msg, NatsConnection, Status, Subscription, connect
from cnats.errors import DrainTimeoutError, NatsError, NatsTimeoutError
from cnats.events import LISTENER_LIMIT, StatusHub
from cnats.testing import NatsServer

pytestmark = pytest.mark.nats_server(jetstream=False)


async def queued(sub: Subscription, n: int) -> None:
    await eventually(lambda: sub.pending >= n, what=f"{n} messages queued")


async def holding(nc: NatsConnection, subject: str, payloads: Sequence[str | bytes]) -> Subscription:
    """A subscription of ``nc`` to ``subject`` with ``payloads`` (published by ``nc``) queued in it."""
    sub = nc.subscribe(subject)
    for payload in payloads:
        nc.publish(subject, payload)
    await queued(sub, len(payloads))
    return sub


def numbered(n: int) -> list[str]:
    return [str(i) for i in range(n)]


# -- awaiting __anext__ -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["await", "create_task", "ensure_future", "wait_for", "task_group"])
@pytest.mark.parametrize("ready", [True, False], ids=["queued", "waiting"])
async def test_anext_is_a_real_awaitable(nc: NatsConnection, how: str, ready: bool) -> None:
    if how == "task_group" and sys.version_info < (3, 11):
        pytest.skip("asyncio.TaskGroup is Python 3.11+")
    sub = nc.subscribe("anext.kinds")
    if ready:
        nc.publish("anext.kinds", b"m")
        await queued(sub, 1)
    else:
        asyncio.get_running_loop().call_later(0.05, nc.publish, "anext.kinds", b"m")
    msg: Msg
    if how == "await":
        msg = await anext(sub)
    elif how == "create_task":
        msg = await asyncio.create_task(anext(sub))
    elif how == "ensure_future":
        msg = await asyncio.ensure_future(anext(sub))
    elif how == "wait_for":
        msg = await asyncio.wait_for(anext(sub), 5)
    else:
        async with asyncio.TaskGroup() as group:  # type: ignore[attr-defined]
            task = group.create_task(anext(sub))
        msg = task.result()
    assert msg.data == b"m"


async def test_a_cancelled_anext_loses_no_message(nc: NatsConnection) -> None:
    sub = await holding(nc, "anext.cancel", numbered(3))
    task = asyncio.create_task(anext(sub))
    task.cancel()  # before its first step: the message it was handed goes back
    assert (await asyncio.gather(task, return_exceptions=True))[0].__class__ is asyncio.CancelledError
    # a waiting __anext__ cancelled by a timeout takes nothing either
    empty = nc.subscribe("anext.cancel.empty")
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(anext(empty), 0.05)
    nc.publish("anext.cancel.empty", b"later")
    assert (await asyncio.wait_for(anext(empty), 5)).data == b"later"
    got = [(await anext(sub)).data for _ in range(3)]
    assert got == [b"0", b"1", b"2"]
    assert sub.processed == 3


async def test_an_anext_never_awaited_gives_its_message_back(nc: NatsConnection) -> None:
    sub = await holding(nc, "anext.dropped", [b"kept"])
    pending = anext(sub)
    pending.close()  # type: ignore[attr-defined]  # what asyncio does to a coroutine it will never run
    assert (await anext(sub)).data == b"kept"


# -- callbacks ----------------------------------------------------------------------------------------------------


class AsyncCallable:
    def __init__(self, sink: list[bytes]) -> None:
        self.sink = sink

    async def __call__(self, msg: Msg) -> None:
        await asyncio.sleep(0)
        self.sink.append(msg.data)


async def record(sink: list[bytes], msg: Msg) -> None:
    await asyncio.sleep(0)
    sink.append(msg.data)


@pytest.mark.parametrize("kind", ["plain", "async def", "lambda", "partial", "async __call__"])
async def test_every_callback_shape_runs_in_order(nc: NatsConnection, kind: str) -> None:
    got: list[bytes] = []

    async def coroutine_fn(msg: Msg) -> None:
        await record(got, msg)

    callback: Any = {
        "plain": lambda m: got.append(m.data),
        "async def": coroutine_fn,
        "lambda": lambda m: record(got, m),
        "partial": functools.partial(record, got),
        "async __call__": AsyncCallable(got),
    }[kind]
    nc.subscribe("cb.shapes", callback=callback)
    expected = [str(i).encode() for i in range(200)]
    for data in expected:
        nc.publish("cb.shapes", data)
    await eventually(lambda: len(got) == 200, what="every message handled")
    assert got == expected


@pytest.mark.parametrize("kind", ["plain", "async def", "lambda"])
async def test_a_raising_callback_is_reported_as_a_status_and_the_subscription_goes_on(
    nc: NatsConnection, kind: str
) -> None:
    seen: list[bytes] = []
    boom = ValueError("boom")

    def plain(msg: Msg) -> None:
        seen.append(msg.data)
        if msg.data == b"bad":
            raise boom

    async def coroutine_fn(msg: Msg) -> None:
        plain(msg)

    callback: Any = {"plain": plain, "async def": coroutine_fn, "lambda": lambda m: coroutine_fn(m)}[kind]
    statuses = nc.status()
    sub = nc.subscribe("cb.raises", callback=callback)
    for data in (b"ok", b"bad", b"after"):
        nc.publish("cb.raises", data)
    status: Status = await asyncio.wait_for(anext(statuses), 5)
    assert status.type == Events.ERROR
    assert status.data == "CALLBACK_ERROR"
    assert isinstance(status.error, CallbackError)
    assert status.error.subject == "cb.raises"
    assert status.error.sid == sub.sid
    assert status.error.__cause__ is boom
    await eventually(lambda: seen == [b"ok", b"bad", b"after"], what="the subscription went on")
    assert not sub.is_closed


# -- close --------------------------------------------------------------------------------------------------------


async def test_close_ends_an_iterator_after_what_it_holds(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    sub = await holding(nc, "close.held", numbered(3))
    await nc.close()
    reader = Reader(sub)
    assert [msg.data for msg in await reader.ended()] == [b"0", b"1", b"2"]
    assert reader.error is None
    assert await sub.closed is None


async def test_close_wakes_a_waiting_iterator(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    sub = nc.subscribe("close.waiting")
    reader = asyncio.create_task(anext(sub))
    await asyncio.sleep(0)
    await nc.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(reader, 5)


async def test_a_fatal_close_ends_iterators_with_the_connections_error(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, reconnect=False)
    sub = await holding(nc, "close.fatal", [b"held"])
    error = await stop_server(nats_server, nc)
    assert (await anext(sub)).data == b"held"
    with pytest.raises(NatsError) as raised:
        await anext(sub)
    assert raised.value is error
    assert await sub.closed is error
    await nc.close()


async def test_close_leaves_no_task_and_ends_request_many(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    gate = asyncio.Event()

    async def slow(msg: Msg) -> None:
        await gate.wait()

    nc.subscribe("close.slow", callback=slow)
    nc.subscribe("close.slow2", callback=lambda m: slow(m))
    nc.publish("close.slow", b"x")
    nc.publish("close.slow2", b"x")
    nc.subscribe("close.silent")  # interest, so no no-responders status, and never an answer
    await nc.flush()
    responses = await nc.request_many("close.silent", max_wait=30)
    await nc.flush()
    assert cnats_tasks()
    await asyncio.wait_for(nc.close(), 5)
    assert cnats_tasks() == []
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(responses), 5)


async def test_close_from_inside_a_coroutine_callback_returns(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    done = asyncio.get_running_loop().create_future()

    async def closer(msg: Msg) -> None:
        await nc.close()
        done.set_result(True)

    nc.subscribe("close.inside", callback=closer)
    nc.publish("close.inside", b"x")
    assert await asyncio.wait_for(done, 5)
    assert nc.is_closed


# -- drain --------------------------------------------------------------------------------------------------------


async def test_drain_with_an_unread_iterator_times_out_and_closes_anyway(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    _sub = await holding(nc, "drain.unread", [b"never read"])  # held: a dropped subscription would be collected
    with pytest.raises(DrainTimeoutError) as raised:
        await nc.drain(timeout=0.2)
    assert isinstance(raised.value, NatsTimeoutError)
    assert nc.is_closed
    assert await nc.closed is raised.value
    assert cnats_tasks() == []


async def test_subscription_drain_timeout(nc: NatsConnection) -> None:
    sub = await holding(nc, "drain.sub.unread", [b"never read"])
    with pytest.raises(DrainTimeoutError):
        await sub.drain(timeout=0.2)
    assert sub.is_closed
    assert isinstance(await sub.closed, DrainTimeoutError)
    nc.publish("drain.sub.unread", b"after")
    await nc.flush()  # the connection is untouched
    assert not nc.is_closed


async def test_drain_waits_for_a_reader_within_the_timeout(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    sub = await holding(nc, "drain.read", numbered(50))
    reader = Reader(sub)
    await nc.drain(timeout=5)
    assert len(await reader.ended()) == 50
    assert reader.error is None
    assert await nc.closed is None


async def test_drain_timeout_is_validated(nc: NatsConnection) -> None:
    from cnats.errors import InvalidOptionError

    with pytest.raises(InvalidOptionError):
        await nc.drain(timeout=0)
    with pytest.raises(InvalidOptionError):
        await nc.subscribe("x").drain(timeout=-1)
    assert not nc.is_draining


# -- status listeners ---------------------------------------------------------------------------------------------


async def test_a_listener_nobody_reads_holds_at_most_its_limit(nc: NatsConnection) -> None:
    statuses = nc.status()

    def bad(msg: Msg) -> None:
        raise RuntimeError(msg.data.decode())

    nc.subscribe("status.flood", callback=bad)
    for i in range(LISTENER_LIMIT + 44):
        nc.publish("status.flood", str(i))
    await nc.flush()
    held = [s async for s in _take_ready(statuses)]
    assert len(held) == LISTENER_LIMIT
    first = held[0].error
    assert first is not None and str(first.__cause__) == "44"  # the oldest were dropped


async def _take_ready(statuses: Any) -> Any:
    while True:
        try:
            yield await asyncio.wait_for(anext(statuses), 0.2)
        except asyncio.TimeoutError:
            return


async def test_a_dropped_status_iterator_is_forgotten(nc: NatsConnection) -> None:
    it = nc.status()
    ref = weakref.ref(it)
    del it
    gc.collect()
    assert ref() is None


def test_a_failing_observer_never_reaches_the_emitter() -> None:
    hub: StatusHub[int] = StatusHub()
    seen: list[int] = []

    def bad(status: int) -> None:
        raise RuntimeError("observer bug")

    hub.observe(bad)
    hub.observe(seen.append)
    hub.emit(1)
    assert seen == [1]


async def test_user_code_failing_while_iterating_status_leaves_the_connection_alone(nc: NatsConnection) -> None:
    async def consume() -> None:
        async for _ in nc.status():
            raise RuntimeError("user bug")

    task = asyncio.create_task(consume())
    nc.subscribe("status.user", callback=lambda m: 1 / 0)
    nc.publish("status.user", b"")
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(task, 5)
    assert (await nc.request_many("status.none", max_wait=0.05)) is not None
    await nc.flush()


# -- the read path owns its sink ----------------------------------------------------------------------------------


async def test_a_finalizer_unsubscribing_during_delivery_is_safe(nc: NatsConnection) -> None:
    """A collection can run inside the parser's delivery (any allocation may start one). A finalizer that
    unsubscribes then drops the subscription table's reference to the very subscription being delivered to: the
    read path must own it until the delivery is over (a freed subscription would be called, or crash)."""
    refs: dict[str, weakref.ref[Any]] = {}
    freed_before_delivery: list[str] = []

    class Unsubscriber:
        def __init__(self, sub: Any) -> None:
            self.sub = weakref.ref(sub)
            self.cycle = self  # only the cyclic collector frees it, whenever an allocation triggers one

        def __del__(self) -> None:
            sub = self.sub()
            if sub is not None:
                sub.unsubscribe()

    def callback(msg: Msg) -> None:
        sub = refs[msg.subject]()
        if sub is None:
            freed_before_delivery.append(msg.subject)
            return
        if msg.data == b"first":
            Unsubscriber(sub)  # garbage from now on: the next message's allocation in the parser collects it
        del sub

    old = gc.get_threshold()
    try:
        for round_ in range(50):
            subject = f"finalizer.{round_}"
            refs[subject] = weakref.ref(nc.subscribe(subject, callback=callback))
            gc.set_threshold(1, 1, 1)
            nc.publish(subject, b"first")
            # same read as the first, most of the time; its header block is parsed into a dict (an allocation that
            # can start a collection) after the parser found the subscription and before it delivers
            nc.publish(subject, b"second", headers={"k": "v"})
            await nc.flush()
            gc.set_threshold(*old)
    finally:
        gc.set_threshold(*old)
    assert freed_before_delivery == []


# -- bounded retention --------------------------------------------------------------------------------------------


async def test_an_answered_request_keeps_no_response_while_older_ones_wait(nc: NatsConnection) -> None:
    nc.subscribe("retain.slow")  # interest but no answer: the first request waits for its deadline
    nc.subscribe("retain.fast", callback=lambda m: m.respond(b"r" * 1024))
    await nc.flush()
    waiting = asyncio.create_task(nc.request("retain.slow", b"", timeout=5))
    await asyncio.sleep(0)
    response = await nc.request("retain.fast", b"p" * 1024, timeout=5)  # same timeout: queued behind the first
    for _ in range(3):  # let the loop drop its own handles on the answered future
        await asyncio.sleep(0)
    gc.collect()
    assert sys.getrefcount(response) == 2  # this frame's name and the call's argument: nothing queued holds it
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)


async def test_a_flush_cancelled_as_its_pong_arrives_is_cancelled(nc: NatsConnection) -> None:
    """The cancellation wins even when the PONG settles the flush in the same loop turn (asyncio.wait_for before
    Python 3.12 returned the result instead, so a Ctrl-C'd loop of publish+flush went on)."""
    await nc.flush()
    flushing = asyncio.create_task(nc.flush(timeout=5))
    await asyncio.sleep(0)  # the PING is out, the flush waits
    nc._on_pong()  # the PONG, as the parser would deliver it
    flushing.cancel()  # in the same turn
    with pytest.raises(asyncio.CancelledError):
        await flushing
