"""The lifecycle of JetStream consumers on a real server: ``fetch()``/``consume()`` iterators and the ordered consumer
end with their connection (after what they hold), drain with it, stop when left early or dropped, start no work on a
closed connection, and leave no consumer behind when stopped during a recovery; callbacks of every shape are awaited,
auto-acked only after they succeeded, and their errors reported as ``CALLBACK_ERROR`` statuses.

The suite runs once per protocol core (compiled, then the pure-Python twin)."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from helpers.core import eventually, http_json, stays
from helpers.lifecycle import ApiSpy, Reader, closed_result, cnats_tasks, consumer_names, next_callback_error
from lifecycle_guard import LoopErrors

from cnats import Msg, NatsConnection, connect
from cnats.errors import DrainTimeoutError, NatsError
from cnats.jetstream import (
    AckPolicy,
    Consumer,
    ConsumerConfig,
    ConsumerMessages,
    JetStreamClient,
    JetStreamManager,
    JsMsg,
)
from cnats.testing import ChaosProxy, NatsServer

STREAM = "S"


def consumer_tasks() -> list[asyncio.Task[Any]]:
    """The tasks cnats runs for consumers (a callback's, a recovery, a clean-up)."""
    return [t for t in cnats_tasks() if "consume" in t.get_name() or "recover" in t.get_name()]


async def add_stream(jsm: JetStreamManager) -> None:
    await jsm.streams.add(name=STREAM, subjects=["s.>"], storage="memory")


async def publish_n(js: JetStreamClient, n: int, subject: str = "s.x") -> list[bytes]:
    payloads = [f"m{i}".encode() for i in range(n)]
    for payload in payloads:
        await js.publish(subject, payload)
    return payloads


async def get_consumer(js: JetStreamClient, jsm: JetStreamManager, kind: str, **config: Any) -> Consumer:
    if kind == "ordered":
        return await js.consumers.get(STREAM)
    await jsm.consumers.add(STREAM, durable_name="d", ack_policy=AckPolicy.EXPLICIT, **config)
    return await js.consumers.get(STREAM, "d")


async def start(consumer: Consumer, mode: str, **kwargs: Any) -> ConsumerMessages:
    kwargs.setdefault("max_messages", 10)
    if mode == "fetch":
        return await consumer.fetch(**kwargs)
    return await consumer.consume(**kwargs)


def payloads(msgs: list[JsMsg]) -> list[bytes]:
    return [msg.data for msg in msgs]


async def server_subjects(server: NatsServer) -> set[str]:
    """Every subject subscribed on the server (its monitoring endpoint)."""
    data = await http_json(f"{server.monitor_urls[0]}/connz?subs=1")
    return {s for c in data.get("connections") or [] for s in c.get("subscriptions_list") or []}


# -- close(): iterators end after what they hold ------------------------------------------------------------------


@pytest.mark.parametrize("held", ["queued", "waiting"])
@pytest.mark.parametrize("mode", ["consume", "fetch"])
@pytest.mark.parametrize("kind", ["durable", "ordered"])
async def test_close_ends_the_iterator_after_what_it_holds(
    nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager, kind: str, mode: str, held: str
) -> None:
    await add_stream(jsm)
    sent = await publish_n(js, 5)
    messages = await start(await get_consumer(js, jsm, kind), mode)
    reader = Reader(messages, hold_at=2 if held == "queued" else None)
    if held == "queued":
        await eventually(lambda: len(reader.got) == 2 and messages.pending == 3, what="3 messages queued")
    else:
        await eventually(lambda: len(reader.got) == 5, what="every message read, the reader waits for more")
    await asyncio.wait_for(nc.close(), 5)
    assert cnats_tasks() == []
    await reader.ended()  # the `async for` ended: StopAsyncIteration
    assert payloads(reader.got) == sent
    assert reader.error is None
    assert await closed_result(messages.closed) is None


@pytest.mark.parametrize("mode", ["consume", "fetch"])
@pytest.mark.parametrize("kind", ["durable", "ordered"])
async def test_a_fatal_close_ends_the_iterator_with_the_connection_error(
    chaos_proxy: ChaosProxy, kind: str, mode: str
) -> None:
    # the connection is cut under the client (a stopped server would first end the pulls with "409 Server Shutdown")
    nc = await connect(chaos_proxy.url, reconnect=False)
    try:
        js = nc.jetstream()
        jsm = await nc.jetstream_manager()
        await add_stream(jsm)
        sent = await publish_n(js, 5)
        messages = await start(await get_consumer(js, jsm, kind), mode)
        reader = Reader(messages, hold_at=2)
        await eventually(lambda: len(reader.got) == 2 and messages.pending == 3, what="3 messages queued")
        chaos_proxy.cut()
        error = await closed_result(nc.closed)
        assert error is not None
        await eventually(lambda: not cnats_tasks(), what="no cnats task left")
        await reader.ended()
        assert payloads(reader.got) == sent  # what it held first
        assert reader.error is error  # then the connection's error
        assert await closed_result(messages.closed) is error
    finally:
        await nc.close()


async def test_a_status_iterator_of_consumer_messages_ends_with_the_connection(
    nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager
) -> None:
    await add_stream(jsm)
    messages = await start(await get_consumer(js, jsm, "durable"), "consume")
    statuses = messages.status()
    await nc.close()
    assert [s async for s in statuses] == []


async def test_nothing_starts_on_a_closed_connection(
    nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager
) -> None:
    await add_stream(jsm)
    durable = await get_consumer(js, jsm, "durable")
    ordered = await get_consumer(js, jsm, "ordered")
    await nc.close()
    for consumer in (durable, ordered):
        for mode in ("consume", "fetch"):
            with pytest.raises(NatsError):
                await start(consumer, mode)
    assert cnats_tasks() == []


# -- timers after close -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["consume", "fetch"])
@pytest.mark.parametrize("kind", ["durable", "ordered"])
async def test_no_heartbeat_recovery_after_close(
    nc: NatsConnection,
    js: JetStreamClient,
    jsm: JetStreamManager,
    loop_errors: LoopErrors,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    mode: str,
) -> None:
    await add_stream(jsm)
    messages = await start(await get_consumer(js, jsm, kind), mode, expires=2.0, idle_heartbeat=0.5)
    await nc.close()
    assert cnats_tasks() == []

    def quiet() -> bool:
        gc.collect()  # a failed task that nobody awaited is reported when it is collected
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        return not loop_errors.contexts and not errors and not cnats_tasks()

    # the heartbeat window is 1 s: a timer left armed would fire a recovery on the closed connection in it
    with caplog.at_level(logging.DEBUG):
        await stays(quiet, duration=2.0, interval=0.1, what="no recovery after close")
    assert await closed_result(messages.closed) is None


# -- leaving early --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["break", "collected", "aclose", "async with"])
@pytest.mark.parametrize("mode", ["consume", "fetch"])
async def test_leaving_early_removes_the_inbox_and_stops_pulling(
    nats_server: NatsServer,
    nc: NatsConnection,
    nc2: NatsConnection,
    js: JetStreamClient,
    jsm: JetStreamManager,
    mode: str,
    how: str,
) -> None:
    await add_stream(jsm)
    await publish_n(js, 5)
    consumer = await get_consumer(js, jsm, "durable")
    spy = await ApiSpy(nc2).start()  # every pull request: their reply subject is the consumer's inbox
    options: dict[str, Any] = {"max_messages": 2, "expires": 2.0, "idle_heartbeat": 0.5}
    first: JsMsg | None = None
    if how == "break":
        async for msg in await start(consumer, mode, **options):
            first = msg
            break
    elif how == "collected":
        messages = await start(consumer, mode, **options)
        first = await anext(messages)
        ref = weakref.ref(messages)
        del messages
        gc.collect()
        assert ref() is None
    elif how == "aclose":
        messages = await start(consumer, mode, **options)
        first = await anext(messages)
        await messages.aclose()
    else:
        async with await start(consumer, mode, **options) as messages:
            first = await anext(messages)
    assert first is not None and first.data == b"m0"
    await eventually(lambda: bool(spy.requests), what="the pull was seen")
    inbox = spy.requests[0].reply

    async def inbox_gone() -> bool:
        return inbox not in await server_subjects(nats_server)

    await eventually(inbox_gone, what="the inbox subscription is gone")
    pulls = len(spy.requests)
    # a pull expires in 2 s and heartbeats are due every second: nothing may ask again
    await stays(lambda: len(spy.requests) == pulls, duration=2.5, interval=0.05, what="no more pulls")
    assert consumer_tasks() == []


async def test_a_consume_callback_runs_on_when_its_messages_object_is_dropped(
    nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager
) -> None:
    await add_stream(jsm)
    got: list[bytes] = []
    consumer = await get_consumer(js, jsm, "durable")
    await consumer.consume(callback=lambda m: got.append(m.data))  # not kept
    gc.collect()
    sent = await publish_n(js, 3)
    await eventually(lambda: got == sent, what="the callback still runs")


# -- stop() while a recovery is in flight ----------------------------------------------------------------------


@pytest.fixture
async def proxied(chaos_proxy: ChaosProxy) -> AsyncIterator[NatsConnection]:
    """A connection through the chaos proxy (the test's ``nc`` goes to the server directly)."""
    async with await connect(chaos_proxy.url) as conn:
        try:
            yield conn
        finally:
            chaos_proxy.set_latency(0)


async def consuming_ordered(nc: NatsConnection, jsm: JetStreamManager, n: int) -> tuple[Consumer, ConsumerMessages]:
    """An ordered consumer of ``nc`` on a new stream of ``n`` messages, consuming; its first message read."""
    js = nc.jetstream()
    await add_stream(jsm)
    await publish_n(js, n)
    consumer = await js.consumers.get(STREAM)
    messages = await consumer.consume(max_messages=10)
    await asyncio.wait_for(anext(messages), 5)
    return consumer, messages


async def test_stop_during_an_ordered_recovery_leaves_no_consumer(
    chaos_proxy: ChaosProxy, proxied: NatsConnection, nc: NatsConnection, jsm: JetStreamManager, loop_errors: LoopErrors
) -> None:
    """The recovery's create request is in flight (the proxy delays the answer) when stop() is called: the
    consumer the server creates anyway is deleted."""
    consumer, messages = await consuming_ordered(proxied, jsm, 2)
    first = consumer.name
    created: list[str] = []
    deleted: list[str] = []

    def on_create(msg: Msg) -> None:
        created.append(msg.subject)
        messages.stop()  # the create reached the server; its answer is still in the proxy

    nc.subscribe(f"$JS.API.CONSUMER.CREATE.{STREAM}.>", callback=on_create)
    nc.subscribe(f"$JS.API.CONSUMER.DELETE.{STREAM}.>", callback=lambda m: deleted.append(m.subject))
    await nc.flush()
    chaos_proxy.set_latency(0.3)
    await jsm.consumers.delete(STREAM, first)  # the server tells the pull "consumer deleted": a recovery starts
    await eventually(lambda: bool(created), what="the recovery sent its create request")
    assert consumer.name == first  # the replacement was never taken into use

    async def no_consumer_left() -> bool:
        return await consumer_names(jsm, STREAM) == []

    await eventually(no_consumer_left, timeout=10, what="the replacement was deleted")
    replacement = created[0].split(".")[5]
    assert any(subject.endswith(f".{replacement}") for subject in deleted)
    await eventually(lambda: consumer_tasks() == [], what="the recovery and the clean-up ended")
    assert await closed_result(messages.closed) is None
    gc.collect()
    assert loop_errors.contexts == []
    chaos_proxy.set_latency(0)
    await proxied.close()
    await nc.close()
    assert cnats_tasks() == []


async def test_close_during_an_ordered_recovery_leaves_no_task_and_no_consumer(
    chaos_proxy: ChaosProxy, proxied: NatsConnection, nc: NatsConnection, jsm: JetStreamManager, loop_errors: LoopErrors
) -> None:
    """Closing while a recovery's request is in flight cancels it: nothing is left running or unretrieved, and the
    consumer the server creates anyway is deleted while close() settles (the connection is still up then)."""
    consumer, messages = await consuming_ordered(proxied, jsm, 1)
    created = asyncio.Event()
    nc.subscribe(f"$JS.API.CONSUMER.CREATE.{STREAM}.>", callback=lambda m: created.set())
    await nc.flush()
    chaos_proxy.set_latency(0.3)
    await jsm.consumers.delete(STREAM, consumer.name)
    await asyncio.wait_for(created.wait(), 5)
    await asyncio.wait_for(proxied.close(), 5)
    assert cnats_tasks() == []
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(messages), 5)
    assert await consumer_names(jsm, STREAM) == []  # deleted before close() returned
    gc.collect()
    assert loop_errors.contexts == []


# -- drain -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["durable", "ordered"])
async def test_drain_hands_out_what_is_queued_then_ends_a_read_iterator(
    nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager, kind: str
) -> None:
    await add_stream(jsm)
    sent = await publish_n(js, 5)
    messages = await start(await get_consumer(js, jsm, kind), "consume")
    reader = Reader(messages, hold_at=2)
    await eventually(lambda: len(reader.got) == 2 and messages.pending == 3, what="3 messages queued")
    drain = asyncio.create_task(nc.drain(timeout=10))
    await stays(lambda: not drain.done(), duration=0.2, what="the drain waits for the queued messages")
    reader.release()
    await asyncio.wait_for(drain, 10)
    await reader.ended()
    assert payloads(reader.got) == sent
    assert reader.error is None
    assert nc.is_closed and await closed_result(nc.closed) is None
    assert await closed_result(messages.closed) is None
    assert cnats_tasks() == []


async def test_drain_times_out_on_messages_nobody_reads(
    nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager
) -> None:
    await add_stream(jsm)
    sent = await publish_n(js, 5)
    messages = await start(await get_consumer(js, jsm, "durable"), "consume")
    await eventually(lambda: messages.pending == 5, what="5 messages queued")
    with pytest.raises(DrainTimeoutError):
        await nc.drain(timeout=0.5)
    assert nc.is_closed
    error = await closed_result(nc.closed)
    assert isinstance(error, DrainTimeoutError)
    assert cnats_tasks() == []
    # the iterator still hands out what it holds, then ends with the connection's error
    got = [(await anext(messages)).data for _ in range(5)]
    assert got == sent
    with pytest.raises(DrainTimeoutError):
        await anext(messages)
    assert await closed_result(messages.closed) is error


# -- callbacks --------------------------------------------------------------------------------------------------


class Handler:
    """An async handler in every shape a callback can take; it records what it handled, and can wait or fail."""

    def __init__(self, js: JetStreamClient) -> None:
        self.js = js
        self.started: list[bytes] = []
        self.finished: list[tuple[bytes, bool]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_first = False
        self.ack_self = False

    async def handle(self, msg: JsMsg) -> None:
        self.started.append(msg.data)
        await self.gate.wait()
        if self.fail_first and not msg.redelivered:
            raise ValueError(f"failed on {msg.data!r}")
        if self.ack_self:
            msg.ack()
        self.finished.append((msg.data, msg.redelivered))

    async def handle_tagged(self, tag: str, msg: JsMsg) -> None:
        assert tag == "tag"
        await self.handle(msg)

    async def __call__(self, msg: JsMsg) -> None:
        await self.handle(msg)

    def callback(self, kind: str) -> Callable[[JsMsg], Awaitable[None] | None]:
        if kind == "async def":
            return self.handle
        if kind == "lambda":
            return lambda m: self.handle(m)
        if kind == "partial":
            return functools.partial(self.handle_tagged, "tag")
        return self  # an object with async def __call__


CALLBACK_KINDS = ["async def", "lambda", "partial", "async __call__"]


async def subscribe_with(api: str, js: JetStreamClient, jsm: JetStreamManager, callback: Any) -> Any:
    """A push or pull subscription (auto-ack), or a consume(), on durable ``cb`` with a 1 s ack_wait."""
    config = ConsumerConfig(ack_wait=1.0)
    if api == "push":
        return await js.subscribe("s.cb", durable="cb", config=config, callback=callback)
    if api == "pull":
        sub = await js.pull_subscribe("s.cb", durable="cb", config=config, callback=callback)
        sub.pull(10, expires=30.0)
        return sub
    await jsm.consumers.add(
        STREAM, durable_name="cb", filter_subject="s.cb", ack_wait=1.0, ack_policy=AckPolicy.EXPLICIT
    )
    return await (await js.consumers.get(STREAM, "cb")).consume(callback=callback)


async def ack_pending(jsm: JetStreamManager) -> int:
    return (await jsm.consumers.info(STREAM, "cb")).num_ack_pending


@pytest.mark.parametrize("api", ["push", "pull"])
@pytest.mark.parametrize("kind", CALLBACK_KINDS)
async def test_an_async_callback_is_awaited_and_auto_acked_after_it_finished(
    nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager, api: str, kind: str
) -> None:
    await add_stream(jsm)
    handler = Handler(js)
    handler.gate.clear()
    sub = await subscribe_with(api, js, jsm, handler.callback(kind))
    await js.publish("s.cb", b"one")
    await eventually(lambda: handler.started == [b"one"], what="the handler ran")
    # the handler has not finished: the message is not acknowledged
    assert await ack_pending(jsm) == 1
    await asyncio.sleep(0)
    assert await ack_pending(jsm) == 1
    handler.gate.set()
    await eventually(lambda: handler.finished == [(b"one", False)], what="the handler finished")

    async def acked() -> bool:
        return await ack_pending(jsm) == 0

    await eventually(acked, what="acknowledged once the handler finished")
    sub.unsubscribe()


@pytest.mark.parametrize("kind", CALLBACK_KINDS)
async def test_an_async_consume_callback_is_awaited_in_order(
    nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager, kind: str
) -> None:
    await add_stream(jsm)
    handler = Handler(js)
    handler.ack_self = True
    messages = await subscribe_with("consume", js, jsm, handler.callback(kind))
    sent = await publish_n(js, 5, "s.cb")
    await eventually(lambda: [d for d, _ in handler.finished] == sent, what="every message handled, in order")

    async def acked() -> bool:
        return await ack_pending(jsm) == 0

    await eventually(acked, what="the handler's own acks")
    await messages.close()
    assert cnats_tasks() == []


@pytest.mark.parametrize("api", ["push", "pull", "consume"])
@pytest.mark.parametrize("kind", [*CALLBACK_KINDS, "plain"])
async def test_a_raising_callback_is_reported_not_acked_and_the_subscription_goes_on(
    nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager, api: str, kind: str
) -> None:
    await add_stream(jsm)
    handler = Handler(js)
    handler.fail_first = True
    handler.ack_self = api == "consume"  # consume() never auto-acks
    callback: Any
    if kind == "plain":
        failures: list[bytes] = []

        def plain(msg: JsMsg) -> None:
            handler.started.append(msg.data)
            if not msg.redelivered:
                failures.append(msg.data)
                raise ValueError("plain failure")
            if handler.ack_self:
                msg.ack()
            handler.finished.append((msg.data, True))

        callback = plain
    else:
        callback = handler.callback(kind)
    statuses = nc.status()
    sub = await subscribe_with(api, js, jsm, callback)
    await js.publish("s.cb", b"bad")
    error = await next_callback_error(statuses)
    assert error.code == "CALLBACK_ERROR"
    assert isinstance(error.__cause__, ValueError)
    # not acknowledged: the server redelivers it after ack_wait (1 s), and this time the handler succeeds
    assert await ack_pending(jsm) == 1
    if api == "pull":
        sub.pull(10, expires=30.0)
    await eventually(lambda: (b"bad", True) in handler.finished, timeout=10, what="redelivered and handled")

    async def acked() -> bool:
        return await ack_pending(jsm) == 0

    await eventually(acked, what="acknowledged after the successful call")
    if api == "consume":
        await sub.close()
    else:
        sub.unsubscribe()
    assert not nc.is_closed


def never_awaited(recorded: pytest.WarningsRecorder) -> list[str]:
    gc.collect()
    return [str(w.message) for w in recorded.list if "never awaited" in str(w.message)]


@pytest.mark.parametrize("kind", ["plain", "lambda"])
async def test_a_legacy_subscription_with_a_callback_ends_with_the_connection(
    nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager, recwarn: pytest.WarningsRecorder, kind: str
) -> None:
    await add_stream(jsm)
    handler = Handler(js)
    callback: Any = (lambda m: None) if kind == "plain" else handler.callback("lambda")
    push = await js.subscribe("s.cb", durable="cb", callback=callback, idle_heartbeat=0.5, flow_control=True)
    ordered = await js.subscribe("s.x", ordered=True, idle_heartbeat=0.5)
    await js.publish("s.cb", b"x")
    await nc.close()
    assert cnats_tasks() == []
    assert push.is_closed and ordered.is_closed
    assert await closed_result(push.closed) is None
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(ordered), 5)
    assert never_awaited(recwarn) == []


@pytest.mark.parametrize("kind", CALLBACK_KINDS)
async def test_a_consume_callback_ends_with_the_connection(
    nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager, recwarn: pytest.WarningsRecorder, kind: str
) -> None:
    await add_stream(jsm)
    handler = Handler(js)
    handler.gate.clear()  # the first call never finishes: close cuts it short
    messages = await subscribe_with("consume", js, jsm, handler.callback(kind))
    await publish_n(js, 3, "s.cb")
    await nc.close()
    assert cnats_tasks() == []
    assert await closed_result(messages.closed) is None
    assert never_awaited(recwarn) == []
