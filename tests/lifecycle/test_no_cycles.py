"""Traffic leaves no reference cycles behind. A cycle is freed only by the cyclic garbage collector, so garbage made
per operation would make collections more frequent and, with many live objects (subscriptions, watchers), longer.

Each operation is run once to warm up (lazily made inboxes, caches), then many times with the collector off and
``gc.DEBUG_SAVEALL`` on, so that whatever a collection then finds unreachable is kept in ``gc.garbage`` to be
counted: less than one object per operation means no operation leaves a cycle.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from cnats import USES_CYTHON, Msg, NatsConnection
from cnats.jetstream import AckPolicy, ConsumerConfig, JetStreamClient, JetStreamManager, StorageType, StreamConfig
from cnats.testing import NatsServer

TIMES = 300


async def cyclic_garbage(operation: Callable[[], Awaitable[object]], times: int = TIMES) -> Counter[str]:
    """The types of what ``times`` runs of ``operation`` left for the cyclic collector."""
    await operation()
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(times):
            await operation()
        gc.collect()
        return Counter(type(obj).__name__ for obj in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def assert_no_cycles(found: Counter[str], times: int = TIMES) -> None:
    assert sum(found.values()) < times, f"cycles left by {times} operations: {found.most_common(8)}"


@pytest.fixture
async def stream(jsm: JetStreamManager) -> AsyncIterator[str]:
    await jsm.streams.add(StreamConfig(name="CYCLES", subjects=["cycles.>"], storage=StorageType.MEMORY))
    yield "CYCLES"


async def test_core_publish_subscribe_and_request(nc: NatsConnection, nc2: NatsConnection) -> None:
    got: list[Msg] = []
    nc2.subscribe("cyc.cb", callback=got.append)
    nc2.subscribe("cyc.echo", callback=lambda m: m.respond(m.data))
    iterated = nc2.subscribe("cyc.it")
    await nc2.flush()

    async def publish_and_deliver() -> None:
        nc.publish("cyc.cb", b"x")
        nc.publish("cyc.it", b"x")
        await nc.flush()
        await iterated.next_msg(timeout=5)
        await nc2.flush()  # the callback's message has arrived too
        got.clear()

    async def request() -> None:
        assert (await nc.request("cyc.echo", b"ping", timeout=5)).data == b"ping"

    assert_no_cycles(await cyclic_garbage(publish_and_deliver))
    assert_no_cycles(await cyclic_garbage(request))


async def test_jetstream_publish_and_consume(js: JetStreamClient, jsm: JetStreamManager, stream: str) -> None:
    async def publish() -> None:
        await js.publish("cycles.a", b"x")

    async def publish_async() -> None:
        for _ in range(10):
            await js.publish_async("cycles.a", b"x")
        await js.publish_async_completed()

    assert_no_cycles(await cyclic_garbage(publish))
    assert_no_cycles(await cyclic_garbage(publish_async))

    await jsm.consumers.add(stream, ConsumerConfig(durable_name="pull", ack_policy=AckPolicy.EXPLICIT))
    durable = await js.consumers.get(stream, "pull")
    acked = await durable.consume(max_messages=100)
    ordered = await (await js.consumers.get(stream)).consume(max_messages=100)

    async def consume_and_ack() -> None:
        msg = await anext(acked)
        msg.ack()

    async def consume_ordered() -> None:
        await anext(ordered)

    try:
        assert_no_cycles(await cyclic_garbage(consume_and_ack))
        assert_no_cycles(await cyclic_garbage(consume_ordered))
    finally:
        acked.stop()
        ordered.stop()


async def test_kv_put_get_and_watch(js: JetStreamClient) -> None:
    kv = await js.views.kv("cycles", storage=StorageType.MEMORY)
    watcher = await kv.watch()

    async def put_get_and_see() -> None:
        await kv.put("k", b"v")
        assert (await kv.get("k")) is not None
        await asyncio.wait_for(anext(watcher), 5)

    try:
        assert_no_cycles(await cyclic_garbage(put_get_and_see))
    finally:
        watcher.stop()


async def test_a_subscription_is_walked_by_the_collector_only_once_it_has_ended(nc: NatsConnection) -> None:
    """A live subscription is held by its connection, so the compiled core keeps it off the collector's lists (many
    may be alive); once it ends it is tracked again, and a cycle through it (here: its own callback) is freed."""

    class Handler:
        sub: object = None

        def __call__(self, msg: Msg) -> None:
            pass

    handler = Handler()
    sub = nc.subscribe("cyc.ends", callback=handler)
    handler.sub = sub  # the cycle: subscription -> callback -> subscription
    del handler
    assert gc.is_tracked(sub) is (not USES_CYTHON)
    gone = weakref.ref(sub)
    sub.unsubscribe()
    assert gc.is_tracked(sub)
    del sub
    gc.collect()
    assert gone() is None


async def test_the_sid_tables_stay_off_the_collectors_lists(nc: NatsConnection) -> None:
    """The connection's tables of live subscriptions (sid -> subscription, sid -> what the parser calls) are what a
    full collection would walk with many subscriptions alive: with the compiled core they stay untracked, whatever
    is put in them, and a closed connection leaves them empty."""
    subs = [nc.subscribe(f"tables.{i}") for i in range(10)]
    js = nc.jetstream()
    jsm = await nc.jetstream_manager()
    await jsm.streams.add(name="TABLES", subjects=["tables.js"], storage="memory")
    await js.publish("tables.js", b"x")
    consumer = await js.consumers.get("TABLES")  # its pulls put a puller in the sink table
    assert (await consumer.next(expires=2)) is not None
    # a push consumer with heartbeats replaces its subscription's sink with a function of its own
    push = await js.subscribe("tables.js", durable="tables", idle_heartbeat=1.0, callback=lambda m: None)
    tables = (nc._subs, nc._sinks)  # the tables themselves are what this test is about
    # (the pure-Python core cannot take anything off the collector's lists)
    assert [gc.is_tracked(table) for table in tables] == [not USES_CYTHON] * 2
    for sub in subs:
        sub.unsubscribe()
    push.unsubscribe()
    await nc.close()
    assert tables == ({}, {})


def _references_walked() -> int:
    """How many references a full collection follows: those of every tracked object."""
    return sum(len(gc.get_referents(obj)) for obj in gc.get_objects())


async def test_running_consumers_and_watchers_are_mostly_off_the_collectors_lists(
    js: JetStreamClient, stream: str
) -> None:
    """A running consume or watch is held by its connection's scope: with the compiled core, what only it
    references is hidden from the collector until it ends (10,000 of them would be walked by every full collection:
    they used to be 30 to 40 tracked objects each). So is what the user holds: a watcher (whose fields are all the
    library's), a consume's iterator (which references only its pull) and its ``Consumer`` (which the pull
    references), until the read or pull ends. No timer,
    observer or weak reference of their own: one clock per connection watches their heartbeats, and their
    finalizers stop them when dropped."""
    kv = await js.views.kv("hidden", storage=StorageType.MEMORY)
    await kv.put("k", b"v")
    first = await kv.watch("k")  # warm up (imports, caches)
    await asyncio.wait_for(anext(first), 5)
    first.stop()
    gc.collect()
    before, visits_before = len(gc.get_objects()), _references_walked()
    watchers = [await kv.watch(f"k{i}") for i in range(20)]
    consuming = [await (await js.consumers.get(stream)).consume(max_messages=10) for _ in range(20)]
    gc.collect()
    per_item = (len(gc.get_objects()) - before) / 40
    # what a full collection visits per item: no longer the references of what the user holds (7 for a watcher, 13
    # for a consume's consumer), nor an entry per item in the connection's tables (the scope's children, the
    # heartbeat clock's pulls; about 15 on average with them), which stay off its lists
    visits_per_item = (_references_walked() - visits_before) / 40
    try:
        if USES_CYTHON:
            # nothing of theirs: what is left is this test's own lists of them (one reference per item)
            assert per_item <= 0.25, per_item
            assert visits_per_item <= 2, visits_per_item
            assert not any(gc.is_tracked(item) for item in [*watchers, *consuming])
        else:
            assert per_item > 8  # nothing can be hidden from Python: the census above does count
        for watcher in watchers:
            watcher.stop()
        assert all(gc.is_tracked(watcher) for watcher in watchers)  # back on the lists once their reads end
    finally:
        for watcher in watchers:
            watcher.stop()
        for messages in consuming:
            messages.stop()


async def test_a_cycle_through_an_ended_consume_is_collected(js: JetStreamClient, stream: str) -> None:
    """What a consume hid is given back when it ends: a cycle through it (a callback that refers to its messages)
    is freed once it is dropped."""

    class Handler:
        messages: object = None

        def __call__(self, msg: object) -> None:
            pass

    handler = Handler()
    consumer = await js.consumers.get(stream)
    messages = await consumer.consume(callback=handler, max_messages=10)
    handler.messages = messages  # the cycle: messages -> puller -> callback -> messages
    gone = weakref.ref(messages)
    del handler
    await messages.close()
    del messages, consumer
    gc.collect()
    assert gone() is None


async def test_a_cycle_through_an_ended_iterator_is_collected(js: JetStreamClient, stream: str) -> None:
    """A consume's iterator and its ``Consumer`` are off the collector's lists while the pull runs (with the
    compiled core), and back on them once it ends: a cycle through them (the consumer refers to the iterator) is freed
    once it is stopped and dropped."""
    consumer = await js.consumers.get(stream)
    messages = await consumer.consume(max_messages=10)
    assert gc.is_tracked(messages) is not USES_CYTHON
    assert gc.is_tracked(consumer) is not USES_CYTHON
    consumer.last_messages = messages  # type: ignore[attr-defined]  # the cycle: messages -> puller -> consumer
    gone = weakref.ref(messages)
    messages.stop()
    assert gc.is_tracked(messages) and gc.is_tracked(consumer)
    del messages, consumer
    gc.collect()
    assert gone() is None


async def test_a_consumer_with_two_consumes_is_tracked_again_when_the_first_ends(
    js: JetStreamClient, jsm: JetStreamManager, stream: str
) -> None:
    """Two consumes of one durable ``Consumer``: it is off the collector's lists while they run, back on them as
    soon as one of them ends (tracked early is safe; untracked late would not be), and a cycle through it is freed
    once both are stopped and it is dropped."""
    await jsm.consumers.add(stream, ConsumerConfig(durable_name="twice", ack_policy=AckPolicy.EXPLICIT))
    consumer = await js.consumers.get(stream, "twice")
    first = await consumer.consume(max_messages=10)
    second = await consumer.consume(max_messages=10)
    assert gc.is_tracked(consumer) is not USES_CYTHON
    consumer.itself = consumer  # type: ignore[attr-defined]  # the cycle
    first.stop()
    assert gc.is_tracked(consumer)
    third = await consumer.consume(max_messages=10)  # hides it again while it runs
    assert gc.is_tracked(consumer) is not USES_CYTHON
    third.stop()
    second.stop()
    assert gc.is_tracked(consumer)
    gone = weakref.ref(consumer)
    del consumer, first, second, third
    gc.collect()
    assert gone() is None


def test_fronts_dropped_in_a_cycle_while_running_are_collected_safely(nats_server: NatsServer) -> None:
    """Iterators and watchers left running in a reference cycle are collected, which stops them, while their
    machinery is hidden from the collector: their finalizers stop them (once the collection is over, on the loop), and
    the collector's handling of the weak references left in that machinery must find them where it expects them (an
    untracked one crashed the interpreter), in a collection or at exit."""
    script = f"""
import asyncio, gc
import cnats
from cnats.jetstream import StorageType

async def main():
    nc = await cnats.connect({nats_server.url!r})
    js = nc.jetstream()
    jsm = await nc.jetstream_manager()
    await jsm.streams.add(name="FRONTS", subjects=["fronts.>"], storage="memory")
    kv = await js.views.kv("fronts", storage=StorageType.MEMORY)
    kept = []
    for _ in range(10):
        cycle = {{}}
        cycle["self"] = cycle
        cycle["watcher"] = await kv.watch()
        cycle["messages"] = await (await js.consumers.get("FRONTS")).consume()
        kept.append(await kv.watch())  # still running at exit
        del cycle
    gc.collect()
    for _ in range(100):  # the stops the collection scheduled
        await asyncio.sleep(0.05)
        if nc._port.heartbeats.listening == 10:
            break
    gc.collect()
    print("collected, running:", nc._port.heartbeats.listening)

asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "collected, running: 10" in done.stdout
