"""Legacy push and pull subscriptions against a real JetStream server: js.subscribe with an iterator and
with plain and coroutine callbacks, auto-ack (after the callback / when the iterator advances), manual_ack, AckPolicy
NONE, flow control with a large backlog, idle heartbeats (missed → JetStreamIdleHeartbeatError), queue push
consumers, deliver_subject, bind, stream lookup, ordered push subscriptions (recreated when deleted), destroy(), and
pull_subscribe with pull()/next_msg()."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from helpers.core import eventually, stays

import cnats
from cnats import NatsConnection
from cnats.errors import (
    ConsumerNotFoundError,
    InvalidOptionError,
    JetStreamIdleHeartbeatError,
    NatsTimeoutError,
    StreamNotFoundError,
)
from cnats.jetstream import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    JetStreamClient,
    JetStreamManager,
    JetStreamPullSubscription,
    JetStreamSubscription,
    JsMsg,
    ReplayPolicy,
)
from cnats.testing import ChaosProxy, NatsServer


async def publish_n(js: JetStreamClient, n: int, subject: str = "s.x", start: int = 0, payload: bytes = b"") -> None:
    for i in range(start, start + n):
        await js.publish_async(subject, payload or f"{i}".encode())
    await asyncio.wait_for(js.publish_async_completed(), 20)


async def next_of(sub: JetStreamSubscription, timeout: float = 5) -> JsMsg:
    return await asyncio.wait_for(sub.__anext__(), timeout)


async def ack_state(sub: JetStreamSubscription) -> tuple[int, int]:
    """(ack floor stream sequence, number of messages waiting for an ack) of the subscription's consumer."""
    info = await asyncio.wait_for(sub.consumer_info(), 5)
    return info.ack_floor.stream_seq, info.num_ack_pending


async def ack_state_is(sub: JetStreamSubscription, floor: int, pending: int, timeout: float = 5) -> None:
    async def check() -> bool:
        return await ack_state(sub) == (floor, pending)

    await eventually(check, timeout=timeout, interval=0.02, what=f"ack floor {floor}, {pending} pending")


# -- creating the consumer ------------------------------------------------------------------------------------------


async def test_consumer_created_with_nats_js_defaults(js: JetStreamClient, jsm: JetStreamManager) -> None:
    sub = await js.subscribe("s.x", durable="d")
    info = await sub.consumer_info()
    assert info.name == "d" and info.stream_name == "S"
    cfg = info.config
    assert cfg.durable_name == "d"
    assert cfg.deliver_policy == DeliverPolicy.ALL
    assert cfg.ack_policy == AckPolicy.EXPLICIT
    assert cfg.ack_wait == 30.0
    assert cfg.replay_policy == ReplayPolicy.INSTANT
    assert cfg.filter_subject == "s.x"  # the subject becomes the filter
    assert cfg.deliver_subject is not None and cfg.deliver_subject.startswith("_INBOX.")  # a new inbox
    assert sub.subject == cfg.deliver_subject
    sub.unsubscribe()


async def test_config_then_keyword_options(js: JetStreamClient, jsm: JetStreamManager) -> None:
    config = ConsumerConfig(ack_wait=7.5, deliver_subject="from.config", description="cfg", max_deliver=3)
    sub = await js.subscribe("s.x", durable="d", config=config, deliver_subject="from.keyword")
    cfg = (await sub.consumer_info()).config
    assert cfg.ack_wait == 7.5  # config over the defaults
    assert cfg.max_deliver == 3 and cfg.description == "cfg"
    assert cfg.ack_policy == AckPolicy.EXPLICIT  # defaults the config does not set stay
    assert cfg.deliver_subject == "from.keyword"  # the keyword over the config
    assert sub.subject == "from.keyword"
    sub.unsubscribe()


async def test_explicit_deliver_subject(js: JetStreamClient, jsm: JetStreamManager, nc: NatsConnection) -> None:
    sub = await js.subscribe("s.x", durable="d", deliver_subject="my.deliver")
    assert (await sub.consumer_info()).config.deliver_subject == "my.deliver"
    assert sub.subject == "my.deliver"
    await publish_n(js, 2)
    assert [(await next_of(sub)).seq for _ in range(2)] == [1, 2]
    sub.unsubscribe()


async def test_stream_given_or_looked_up_by_subject(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await jsm.streams.add(name="OTHER", subjects=["o.>"], storage="memory")
    looked_up = await js.subscribe("o.a", durable="a")
    assert (await looked_up.consumer_info()).stream_name == "OTHER"
    given = await js.subscribe("o.b", stream="OTHER", durable="b")
    assert (await given.consumer_info()).stream_name == "OTHER"
    await js.publish("o.b", b"b")
    msg = await next_of(given)
    assert msg.info.stream == "OTHER" and msg.info.consumer == "b" and msg.data == b"b"
    with pytest.raises(StreamNotFoundError):
        await asyncio.wait_for(js.subscribe("nothing.here", durable="c"), 5)  # no stream captures the subject
    with pytest.raises(StreamNotFoundError):
        await asyncio.wait_for(js.subscribe("s.x", stream="MISSING", durable="c"), 5)
    with pytest.raises(StreamNotFoundError):
        await asyncio.wait_for(js.pull_subscribe("nothing.here", durable="c"), 5)
    looked_up.unsubscribe()
    given.unsubscribe()


async def test_durable_resumes_after_resubscribe(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await publish_n(js, 6)
    sub = await js.subscribe("s.x", durable="d", manual_ack=True)
    for _ in range(3):
        (await next_of(sub)).ack()
    await ack_state_is(sub, 3, 3)
    sub.unsubscribe()
    again = await js.subscribe("s.x", durable="d")  # same durable, a new deliver inbox
    assert [(await next_of(again)).seq for _ in range(3)] == [4, 5, 6]
    again.unsubscribe()


# -- auto-ack, manual ack, AckPolicy NONE ---------------------------------------------------------------------------


async def test_iterator_auto_acks_when_it_advances(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await publish_n(js, 3)
    sub = await js.subscribe("s.x", durable="d")
    first = await next_of(sub)
    assert first.seq == 1 and first.data == b"0"
    await ack_state_is(sub, 0, 3)  # all three delivered, none acked: the iterator did not move past the first
    await asyncio.sleep(0.1)
    assert await ack_state(sub) == (0, 3)
    second = await next_of(sub)
    assert second.seq == 2
    await ack_state_is(sub, 1, 2)  # moving on acked the first
    third = await next_of(sub)
    assert third.seq == 3
    await ack_state_is(sub, 2, 1)
    sub.unsubscribe()


async def test_async_for_auto_acks(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await publish_n(js, 5)
    sub = await js.subscribe("s.x", durable="d")
    seen: list[int] = []

    async def read() -> None:
        async for msg in sub:
            seen.append(msg.seq)
            if len(seen) == 5:
                break

    await asyncio.wait_for(read(), 5)
    assert seen == [1, 2, 3, 4, 5]
    await ack_state_is(sub, 4, 1)  # the loop never moved past the last one
    sub.unsubscribe()


async def test_plain_callback_auto_acks_after_it_returns(js: JetStreamClient, jsm: JetStreamManager) -> None:
    seen: list[tuple[int, bool]] = []

    def on_msg(msg: JsMsg) -> None:
        # acking here would be a no-op if the subscription had acked before calling us
        seen.append((msg.seq, msg.redelivered))

    sub = await js.subscribe("s.x", durable="d", callback=on_msg)
    with pytest.raises(RuntimeError):
        sub.__aiter__()
    await publish_n(js, 10)
    await eventually(lambda: len(seen) == 10, what="10 callbacks")
    assert seen == [(i, False) for i in range(1, 11)]
    await ack_state_is(sub, 10, 0)
    sub.unsubscribe()


async def test_coroutine_callback_acked_only_after_it_returns(js: JetStreamClient, jsm: JetStreamManager) -> None:
    floors_during: list[tuple[int, int]] = []
    running = 0
    overlap = False

    async def on_msg(msg: JsMsg) -> None:
        nonlocal running, overlap
        running += 1
        overlap = overlap or running > 1
        floor, _ = await ack_state(sub)
        floors_during.append((msg.seq, floor))
        running -= 1

    sub = await js.subscribe("s.x", durable="d", callback=on_msg)
    await publish_n(js, 5)
    await eventually(lambda: len(floors_during) == 5, what="5 callbacks")
    assert [seq for seq, _ in floors_during] == [1, 2, 3, 4, 5]  # one at a time, in order
    assert not overlap
    assert all(floor < seq for seq, floor in floors_during)  # never acked while its callback was running
    await ack_state_is(sub, 5, 0)
    sub.unsubscribe()


async def test_callback_exception_does_not_stop_the_subscription(js: JetStreamClient, jsm: JetStreamManager) -> None:
    seen: list[int] = []

    def on_msg(msg: JsMsg) -> None:
        seen.append(msg.seq)
        if msg.seq == 2:
            raise ValueError("boom")

    sub = await js.subscribe("s.x", durable="d", callback=on_msg)
    await publish_n(js, 4)
    await eventually(lambda: len(seen) >= 4)
    assert seen[:4] == [1, 2, 3, 4]
    assert not sub.is_closed
    sub.unsubscribe()


async def test_manual_ack_acks_nothing_by_itself(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await publish_n(js, 3)
    sub = await js.subscribe("s.x", durable="d", manual_ack=True)
    msgs = [await next_of(sub) for _ in range(3)]
    assert [m.seq for m in msgs] == [1, 2, 3]
    with pytest.raises(NatsTimeoutError):
        await sub.next_msg(timeout=0.2)  # the iterator advanced past every message
    await ack_state_is(sub, 0, 3)
    msgs[0].ack()
    msgs[1].ack()
    await ack_state_is(sub, 2, 1)
    assert await asyncio.wait_for(msgs[2].ack_ack(), 5) is True
    assert await ack_state(sub) == (3, 0)
    sub.unsubscribe()


async def test_manual_ack_with_callback(js: JetStreamClient, jsm: JetStreamManager) -> None:
    got: list[JsMsg] = []
    sub = await js.subscribe("s.x", durable="d", manual_ack=True, callback=got.append)
    await publish_n(js, 3)
    await eventually(lambda: len(got) == 3)
    await ack_state_is(sub, 0, 3)
    for msg in got:
        msg.ack()
    await ack_state_is(sub, 3, 0)
    sub.unsubscribe()


async def test_ack_policy_none_sends_no_acks(js: JetStreamClient, jsm: JetStreamManager, nc: NatsConnection) -> None:
    await publish_n(js, 5)
    sub = await js.subscribe("s.x", durable="d", config=ConsumerConfig(ack_policy=AckPolicy.NONE))
    assert (await sub.consumer_info()).config.ack_policy == AckPolicy.NONE
    first = await next_of(sub)
    out_before = nc.stats().out_msgs
    rest = [await next_of(sub) for _ in range(4)]
    assert nc.stats().out_msgs == out_before  # advancing the iterator published nothing (no auto-ack)
    assert [m.seq for m in [first, *rest]] == [1, 2, 3, 4, 5]
    info = await sub.consumer_info()
    assert info.num_ack_pending == 0
    assert info.delivered.stream_seq == 5
    sub.unsubscribe()


# -- flow control and heartbeats --------------------------------------------------------------------------------------


async def test_flow_control_with_large_backlog(js: JetStreamClient, jsm: JetStreamManager, nc: NatsConnection) -> None:
    total = 20_000
    payload = bytes(range(256)) * 4  # 1 KiB
    await publish_n(js, total, payload=payload)
    sub = await js.subscribe(
        "s.x",
        durable="fc",
        flow_control=True,
        idle_heartbeat=1.0,
        config=ConsumerConfig(max_ack_pending=-1),  # no ack window: the server pushes until flow control stops it
    )
    cfg = (await sub.consumer_info()).config
    assert cfg.flow_control is True and cfg.idle_heartbeat == 1.0
    seqs: list[int] = []
    out_before = nc.stats().out_msgs

    async def read() -> None:
        async for msg in sub:
            assert msg.data == payload  # never a control message (they have no data)
            seqs.append(msg.seq)
            if len(seqs) == total:
                return

    await asyncio.wait_for(read(), 30)
    assert seqs == list(range(1, total + 1))  # every message once, in order
    assert sub.received > total  # control messages did arrive; none was yielded
    answered = nc.stats().out_msgs - out_before - (total - 1)  # what was published besides the auto-acks
    assert answered >= 1  # flow-control requests were answered
    await ack_state_is(sub, total - 1, 1)
    with pytest.raises(NatsTimeoutError):
        await sub.next_msg(timeout=0.2)  # nothing more; this call moved past (and acked) the last one
    await ack_state_is(sub, total, 0)
    sub.unsubscribe()


async def test_heartbeats_keep_an_idle_subscription_alive(js: JetStreamClient, jsm: JetStreamManager) -> None:
    got: list[int] = []
    sub = await js.subscribe("s.x", durable="hb", idle_heartbeat=0.3, callback=lambda m: got.append(m.seq))
    await stays(lambda: not sub.is_closed, 1.0, what="subscription open")  # > 3 heartbeat intervals, no message
    await js.publish("s.x", b"x")
    await eventually(lambda: got == [1])
    sub.unsubscribe()


async def test_heartbeats_count_while_the_reader_is_busy(js: JetStreamClient, jsm: JetStreamManager) -> None:
    """Heartbeats keep arriving while the application works on a message for longer than two heartbeat intervals:
    the subscription must not conclude that heartbeats were missed."""
    sub = await js.subscribe("s.x", durable="hb", idle_heartbeat=0.3)
    await js.publish("s.x", b"1")
    assert (await next_of(sub)).seq == 1
    await asyncio.sleep(1.0)  # the application is busy; the server goes on sending heartbeats
    await js.publish("s.x", b"2")
    assert (await next_of(sub)).seq == 2
    assert not sub.is_closed
    sub.unsubscribe()


async def test_missed_heartbeats_end_iterator(nats_server: NatsServer) -> None:
    async with ChaosProxy(nats_server.url) as proxy:
        nc = await cnats.connect(proxy.url, ping_interval=60, reconnect=False)
        try:
            jsm = await nc.jetstream_manager()
            await jsm.streams.add(name="S", subjects=["s.>"], storage="memory")
            js = nc.jetstream()
            await publish_n(js, 2)
            sub = await js.subscribe("s.x", durable="hb", idle_heartbeat=0.5)
            got: list[int] = []

            async def read() -> None:
                async for msg in sub:
                    got.append(msg.seq)

            reader = asyncio.create_task(read())
            await stays(lambda: not sub.is_closed, 1.2, what="alive while heartbeats arrive")
            assert got == [1, 2]
            proxy.blackhole()
            with pytest.raises(JetStreamIdleHeartbeatError):
                await asyncio.wait_for(reader, 5)
            assert isinstance(await asyncio.wait_for(sub.closed, 1), JetStreamIdleHeartbeatError)
            assert sub.is_closed
        finally:
            proxy.blackhole(False)
            await nc.close()


async def test_missed_heartbeats_end_callback_subscription(nats_server: NatsServer) -> None:
    async with ChaosProxy(nats_server.url) as proxy:
        nc = await cnats.connect(proxy.url, ping_interval=60, reconnect=False)
        try:
            jsm = await nc.jetstream_manager()
            await jsm.streams.add(name="S", subjects=["s.>"], storage="memory")
            js = nc.jetstream()

            async def on_msg(msg: JsMsg) -> None:
                pass

            sub = await js.subscribe("s.x", durable="hb", idle_heartbeat=0.5, callback=on_msg)
            await asyncio.sleep(0.1)
            proxy.blackhole()
            error = await asyncio.wait_for(sub.closed, 5)
            assert isinstance(error, JetStreamIdleHeartbeatError)
            assert error.code == "IDLE_HEARTBEAT"
        finally:
            proxy.blackhole(False)
            await nc.close()


# -- queue groups -----------------------------------------------------------------------------------------------------


async def test_queue_subscribers_share_a_durable(js: JetStreamClient, jsm: JetStreamManager) -> None:
    got: list[list[JsMsg]] = [[], []]
    subs = [
        await asyncio.wait_for(js.subscribe("s.x", queue="q", durable="d", callback=got[i].append), 5) for i in range(2)
    ]
    assert all(sub.queue == "q" for sub in subs)
    info = await subs[0].consumer_info()
    assert info.config.deliver_group == "q"
    await publish_n(js, 200)
    await eventually(lambda: len(got[0]) + len(got[1]) >= 200, timeout=10)
    await asyncio.sleep(0.1)
    a = [m.seq for m in got[0]]
    b = [m.seq for m in got[1]]
    assert len(a) + len(b) == 200
    assert sorted(a + b) == list(range(1, 201))  # each message to exactly one member
    assert a and b  # both members got some
    await ack_state_is(subs[0], 200, 0)
    for sub in subs:
        sub.unsubscribe()


async def test_queue_subscription_with_heartbeat_refused(js: JetStreamClient, jsm: JetStreamManager) -> None:
    with pytest.raises(InvalidOptionError):
        await js.subscribe("s.x", queue="q", durable="d", idle_heartbeat=1.0)
    with pytest.raises(InvalidOptionError):
        await js.subscribe("s.x", queue="q", durable="d", flow_control=True)


# -- bind -----------------------------------------------------------------------------------------------------------


async def test_bind_to_existing_push_consumer(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await jsm.consumers.add("S", durable_name="pc", deliver_subject="pc.deliver", ack_policy=AckPolicy.EXPLICIT)
    created = (await jsm.consumers.info("S", "pc")).created
    await publish_n(js, 3)
    sub = await js.subscribe("s.x", stream="S", durable="pc", bind=True)
    assert sub.subject == "pc.deliver"
    msgs = [await next_of(sub) for _ in range(3)]
    assert [m.seq for m in msgs] == [1, 2, 3]
    assert all(m.info.consumer == "pc" for m in msgs)
    await ack_state_is(sub, 2, 1)  # auto-ack applies to bound subscriptions too
    info = await jsm.consumers.info("S", "pc")
    assert info.created == created and info.config.deliver_subject == "pc.deliver"  # not re-created
    sub.unsubscribe()


async def test_bind_errors(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await jsm.consumers.add("S", durable_name="pull", ack_policy=AckPolicy.EXPLICIT)
    await jsm.consumers.add("S", durable_name="push", deliver_subject="push.deliver", ack_policy=AckPolicy.EXPLICIT)
    with pytest.raises(InvalidOptionError):
        await asyncio.wait_for(js.subscribe("s.x", durable="push", bind=True), 5)  # no stream
    with pytest.raises(InvalidOptionError):
        await asyncio.wait_for(js.subscribe("s.x", stream="S", bind=True), 5)  # no durable/name
    with pytest.raises(ConsumerNotFoundError):
        await asyncio.wait_for(js.subscribe("s.x", stream="S", durable="missing", bind=True), 5)
    with pytest.raises(InvalidOptionError):
        await asyncio.wait_for(js.subscribe("s.x", stream="S", durable="pull", bind=True), 5)  # a pull consumer
    with pytest.raises(InvalidOptionError):
        await asyncio.wait_for(js.pull_subscribe("s.x", durable="pull", bind=True), 5)
    with pytest.raises(ConsumerNotFoundError):
        await asyncio.wait_for(js.pull_subscribe("s.x", stream="S", durable="missing", bind=True), 5)
    with pytest.raises(InvalidOptionError):
        await asyncio.wait_for(js.pull_subscribe("s.x", stream="S", durable="push", bind=True), 5)
    # binding created nothing
    assert sorted([c.name async for c in jsm.consumers.list("S")]) == ["pull", "push"]


async def test_bind_without_stream_is_an_option_error_before_any_lookup(
    js: JetStreamClient, jsm: JetStreamManager
) -> None:
    """``bind=True`` without ``stream`` is an argument error whatever the subject (no stream lookup is needed to
    know that)."""
    with pytest.raises(InvalidOptionError):
        await asyncio.wait_for(js.subscribe("nothing.here", durable="d", bind=True), 5)


# -- ordered push -----------------------------------------------------------------------------------------------------


async def test_ordered_delivers_everything_in_order(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await publish_n(js, 500)
    sub = await js.subscribe("s.x", ordered=True)
    info = await sub.consumer_info()
    cfg = info.config
    assert cfg.ack_policy == AckPolicy.NONE
    assert cfg.flow_control is True
    assert cfg.idle_heartbeat == 5.0
    assert cfg.max_deliver == 1 and cfg.mem_storage is True and cfg.num_replicas == 1
    assert cfg.durable_name is None
    got: list[int] = []

    async def read() -> None:
        async for msg in sub:
            got.append(int(msg.data))
            if len(got) == 500:
                return

    await asyncio.wait_for(read(), 10)
    assert got == list(range(500))
    await sub.destroy()


async def test_ordered_recreated_after_deletion(js: JetStreamClient, jsm: JetStreamManager, nc: NatsConnection) -> None:
    await publish_n(js, 200)
    got: list[int] = []
    sub = await js.subscribe("s.x", ordered=True, idle_heartbeat=0.5, callback=lambda m: got.append(int(m.data)))
    await eventually(lambda: len(got) >= 50)
    first = (await sub.consumer_info()).name
    creates: list[str] = []
    spy = nc.subscribe("$JS.API.CONSUMER.CREATE.S.>", callback=lambda m: creates.append(m.subject))
    await nc.flush()
    assert await jsm.consumers.delete("S", first) is True
    await publish_n(js, 300, start=200)
    await eventually(lambda: len(got) >= 500, timeout=10, what="500 messages")
    # one replacement: the new consumer's first messages, pushed before the answer to its creation, are taken
    assert len(creates) == 1, creates
    spy.unsubscribe()
    await asyncio.sleep(0.2)
    assert got == list(range(500))  # no gap, no duplicate
    current = (await sub.consumer_info()).name
    assert current != first
    for _ in range(6):  # over three heartbeat intervals: the replacement stays, alone
        assert [c.name async for c in jsm.consumers.list("S")] == [current]
        await asyncio.sleep(0.2)
    assert (await sub.consumer_info()).name == current
    await sub.destroy()
    assert [c.name async for c in jsm.consumers.list("S")] == []


async def test_two_ordered_subscriptions_at_once(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await publish_n(js, 5, subject="s.a")
    await publish_n(js, 5, subject="s.b", start=5)
    first = await asyncio.wait_for(js.subscribe("s.a", ordered=True), 5)
    second = await asyncio.wait_for(js.subscribe("s.b", ordered=True), 5)  # its own server consumer
    names = {(await first.consumer_info()).name, (await second.consumer_info()).name}
    assert len(names) == 2
    assert [int((await next_of(first)).data) for _ in range(5)] == [0, 1, 2, 3, 4]
    assert [int((await next_of(second)).data) for _ in range(5)] == [5, 6, 7, 8, 9]
    await first.destroy()
    await second.destroy()


async def test_ordered_option_conflicts(js: JetStreamClient, jsm: JetStreamManager, nc: NatsConnection) -> None:
    bad: list[dict[str, Any]] = [
        {"durable": "d"},
        {"manual_ack": True},
        {"queue": "q"},
        {"deliver_subject": "x.deliver"},
        {"bind": True, "stream": "S", "name": "n"},
        {"config": ConsumerConfig(ack_policy=AckPolicy.EXPLICIT)},
        {"config": ConsumerConfig(ack_policy=AckPolicy.ALL)},
    ]
    for kwargs in bad:
        with pytest.raises(InvalidOptionError):
            await asyncio.wait_for(js.subscribe("s.x", ordered=True, **kwargs), 5)
    assert [c.name async for c in jsm.consumers.list("S")] == []
    # AckPolicy NONE in the config is what ordered uses anyway
    sub = await js.subscribe("s.x", ordered=True, config=ConsumerConfig(ack_policy=AckPolicy.NONE))
    await sub.destroy()


# -- destroy --------------------------------------------------------------------------------------------------------


async def test_destroy_deletes_the_consumer(js: JetStreamClient, jsm: JetStreamManager) -> None:
    sub = await js.subscribe("s.x", durable="d")
    pull = await js.pull_subscribe("s.x", durable="p")
    await sub.destroy()
    assert sub.is_closed
    with pytest.raises(ConsumerNotFoundError):
        await jsm.consumers.info("S", "d")
    await pull.destroy()
    assert pull.is_closed
    with pytest.raises(ConsumerNotFoundError):
        await jsm.consumers.info("S", "p")
    await publish_n(js, 2)
    assert (await jsm.streams.info("S")).state.consumer_count == 0


# -- pull_subscribe -------------------------------------------------------------------------------------------------


async def test_pull_subscribe_pull_and_next_msg(js: JetStreamClient, jsm: JetStreamManager) -> None:
    sub = await js.pull_subscribe("s.x", durable="p")
    assert isinstance(sub, JetStreamPullSubscription)
    cfg = (await sub.consumer_info()).config
    assert cfg.deliver_subject is None and cfg.ack_policy == AckPolicy.EXPLICIT and cfg.filter_subject == "s.x"
    await publish_n(js, 10)
    with pytest.raises(NatsTimeoutError):
        await sub.next_msg(timeout=0.2)  # nothing arrives without a pull
    sub.pull(4, expires=2)
    first = [(await sub.next_msg(timeout=5)).seq for _ in range(4)]
    assert first == [1, 2, 3, 4]
    with pytest.raises(NatsTimeoutError):
        await sub.next_msg(timeout=0.2)  # the batch is done (and this call moved past message 4)
    await ack_state_is(sub, 4, 0)
    sub.pull(10, no_wait=True)  # 6 left: they come, then the server's "no more" status, which is not yielded
    rest = [await sub.next_msg(timeout=5) for _ in range(6)]
    assert [m.seq for m in rest] == [5, 6, 7, 8, 9, 10]
    assert all(m.data for m in rest)
    received = sub.received
    with pytest.raises(NatsTimeoutError):
        await sub.next_msg(timeout=0.3)
    await ack_state_is(sub, 10, 0)
    sub.pull(5, no_wait=True)  # an empty stream answers with a status only
    await eventually(lambda: sub.received > received)
    with pytest.raises(NatsTimeoutError):
        await sub.next_msg(timeout=0.2)
    sub.pull(2, expires=1.0)  # a pull that waits: a message published later is delivered
    await js.publish("s.x", b"late")
    late = await sub.next_msg(timeout=5)
    assert late.seq == 11 and late.data == b"late"
    with pytest.raises(InvalidOptionError):
        sub.pull(0)
    sub.unsubscribe()


async def test_pull_subscribe_manual_ack(js: JetStreamClient, jsm: JetStreamManager) -> None:
    sub = await js.pull_subscribe("s.x", durable="p", manual_ack=True)
    await publish_n(js, 3)
    sub.pull(3, expires=2)
    msgs = [await sub.next_msg(timeout=5) for _ in range(3)]
    with pytest.raises(NatsTimeoutError):
        await sub.next_msg(timeout=0.2)
    await ack_state_is(sub, 0, 3)
    for msg in msgs:
        msg.ack()
    await ack_state_is(sub, 3, 0)
    sub.unsubscribe()


async def test_pull_subscribe_with_callback(js: JetStreamClient, jsm: JetStreamManager) -> None:
    got: list[int] = []

    async def on_msg(msg: JsMsg) -> None:
        got.append(msg.seq)

    sub = await js.pull_subscribe("s.x", durable="p", callback=on_msg)
    await publish_n(js, 5)
    sub.pull(5, expires=2)
    await eventually(lambda: len(got) == 5)
    assert got == [1, 2, 3, 4, 5]
    await ack_state_is(sub, 5, 0)  # acked after each callback returned
    with pytest.raises(RuntimeError):
        await sub.next_msg(timeout=0.1)
    sub.unsubscribe()


async def test_pull_subscribe_heartbeats_not_yielded(js: JetStreamClient, jsm: JetStreamManager) -> None:
    sub = await js.pull_subscribe("s.x", durable="p")
    sub.pull(1, expires=1.5, idle_heartbeat=0.2)
    await eventually(lambda: sub.received >= 2, timeout=3, what="heartbeats")  # heartbeats came in...
    with pytest.raises(NatsTimeoutError):
        await sub.next_msg(timeout=0.1)  # ...and none was yielded
    sub.unsubscribe()
