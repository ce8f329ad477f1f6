"""publish and subscribe against a real server: payloads, headers, limits, delivery modes, ending."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers.core import eventually, stays

from cnats import Headers, Msg, NatsConnection, Subscription, connect
from cnats.errors import (
    BadHeaderError,
    BadPayloadError,
    BadSubjectError,
    ConnectionClosedError,
    MaxPayloadExceededError,
    NatsTimeoutError,
    SubscriptionClosedError,
    SubscriptionDrainingError,
)
from cnats.testing import NatsServer

pytestmark = pytest.mark.nats_server(jetstream=False)

SMALL_MAX_PAYLOAD = pytest.mark.nats_server(jetstream=False, config="max_payload: 1024")


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[NatsConnection]:
    conn = await connect(nats_server.url)
    yield conn
    await conn.close()


@pytest.fixture
async def nc2(nats_server: NatsServer) -> AsyncIterator[NatsConnection]:
    """A second connection to the same server (publisher or subscriber on the other side)."""
    conn = await connect(nats_server.url)
    yield conn
    await conn.close()


async def take(sub: Subscription, n: int, timeout: float = 5.0) -> list[Msg]:
    """The next ``n`` messages of an iterator subscription."""
    return [await sub.next_msg(timeout=timeout) for _ in range(n)]


# -- publish ----------------------------------------------------------------------------------------------


async def test_publish_is_synchronous_and_returns_none(nc: NatsConnection) -> None:
    assert not inspect.iscoroutinefunction(nc.publish)
    result = nc.publish("pub.sync", b"x")
    assert result is None


async def test_published_message_arrives_after_flush(nc: NatsConnection) -> None:
    sub = nc.subscribe("pub.flush")
    nc.publish("pub.flush", b"hello")
    await nc.flush()
    # The server delivers to this connection before it answers the PING of flush().
    assert sub.received == 1
    msg = await sub.next_msg(timeout=1)
    assert msg.data == b"hello"


async def test_published_message_reaches_another_connection(nc: NatsConnection, nc2: NatsConnection) -> None:
    sub = nc2.subscribe("pub.other")
    await nc2.flush()
    nc.publish("pub.other", b"across")
    await nc.flush()
    msg = await sub.next_msg(timeout=5)
    assert msg.data == b"across"


async def test_str_payload_is_utf8_encoded(nc: NatsConnection) -> None:
    sub = nc.subscribe("pub.str")
    text = "héllo wörld ✓ 日本"
    nc.publish("pub.str", text)
    msg = await sub.next_msg(timeout=5)
    assert type(msg.data) is bytes
    assert msg.data == text.encode("utf-8")
    assert msg.string() == text


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\x00\x01binary\xff", id="bytes"),
        pytest.param(bytearray(b"\x00\x01binary\xff"), id="bytearray"),
        pytest.param(memoryview(b"\x00\x01binary\xff"), id="memoryview"),
        pytest.param(memoryview(b"xx\x00\x01binary\xffyy")[2:-2], id="memoryview-slice"),
    ],
)
async def test_binary_payload_types_arrive_as_bytes(nc: NatsConnection, payload: Any) -> None:
    sub = nc.subscribe("pub.bin")
    nc.publish("pub.bin", payload)
    msg = await sub.next_msg(timeout=5)
    assert type(msg.data) is bytes
    assert msg.data == b"\x00\x01binary\xff"


async def test_empty_payload(nc: NatsConnection) -> None:
    sub = nc.subscribe("pub.empty")
    nc.publish("pub.empty")
    nc.publish("pub.empty", b"")
    nc.publish("pub.empty", "")
    msgs = await take(sub, 3)
    assert [m.data for m in msgs] == [b"", b"", b""]


async def test_headers_object_arrives_with_same_values(nc: NatsConnection) -> None:
    sub = nc.subscribe("pub.hdr")
    hdrs = Headers()
    hdrs.append("X-Multi", "one")
    hdrs.append("X-Multi", "two")
    hdrs.set("Single", "value with spaces")
    nc.publish("pub.hdr", b"body", headers=hdrs)
    msg = await sub.next_msg(timeout=5)
    assert msg.data == b"body"
    assert msg.headers is not None
    assert msg.headers == hdrs
    assert msg.headers.values("X-Multi") == ["one", "two"]
    assert msg.headers.get("Single") == "value with spaces"


async def test_headers_dict_with_lists_arrives_with_same_values(nc: NatsConnection) -> None:
    sub = nc.subscribe("pub.hdrdict")
    nc.publish("pub.hdrdict", b"", headers={"A": "1", "B": ["x", "y"]})
    msg = await sub.next_msg(timeout=5)
    assert msg.headers is not None
    assert msg.headers.to_dict() == {"A": ["1"], "B": ["x", "y"]}
    assert msg.headers.get("A") == "1"
    assert msg.headers.values("B") == ["x", "y"]


async def test_message_without_headers_has_headers_none(nc: NatsConnection) -> None:
    sub = nc.subscribe("pub.nohdr")
    nc.publish("pub.nohdr", b"x")
    msg = await sub.next_msg(timeout=5)
    assert msg.headers is None


@SMALL_MAX_PAYLOAD
async def test_server_max_payload_is_known(nc: NatsConnection) -> None:
    assert nc.info is not None
    assert nc.info.max_payload == 1024


@SMALL_MAX_PAYLOAD
async def test_payload_over_max_payload_raises_and_sends_nothing(nc: NatsConnection, nc2: NatsConnection) -> None:
    got: list[Msg] = []
    nc2.subscribe("pub.big", callback=got.append)
    await nc2.flush()
    before = nc.stats()
    with pytest.raises(MaxPayloadExceededError) as info:
        nc.publish("pub.big", b"x" * 1025)
    assert isinstance(info.value, ValueError)
    assert info.value.code == "MAX_PAYLOAD_EXCEEDED"
    assert nc.stats().out_msgs == before.out_msgs
    assert nc.stats().out_bytes == before.out_bytes
    # The connection stays usable: a message of exactly max_payload goes through, and only that one arrives.
    nc.publish("pub.big", b"y" * 1024)
    await nc.flush()
    await eventually(lambda: len(got) >= 1)
    await nc2.flush()
    assert [m.data for m in got] == [b"y" * 1024]
    assert not nc.is_closed
    assert nc.stats().out_msgs == before.out_msgs + 1


@SMALL_MAX_PAYLOAD
async def test_headers_count_toward_max_payload(nc: NatsConnection) -> None:
    sub = nc.subscribe("pub.bighdr")
    payload = b"z" * 1000
    with pytest.raises(MaxPayloadExceededError):
        nc.publish("pub.bighdr", payload, headers={"X-Pad": "p" * 100})
    nc.publish("pub.bighdr", payload)  # the same payload without headers fits
    msg = await sub.next_msg(timeout=5)
    assert msg.data == payload
    assert msg.headers is None
    await nc.flush()
    assert sub.received == 1


@pytest.mark.parametrize(
    "subject",
    [
        pytest.param("", id="empty"),
        pytest.param("a b", id="space"),
        pytest.param("a\tb", id="tab"),
        pytest.param("a\r\nPUB x", id="crlf-injection"),
        pytest.param(None, id="none"),
        pytest.param(b"bytes.subject", id="bytes"),
        pytest.param(42, id="int"),
    ],
)
async def test_bad_subject_raises_bad_subject(nc: NatsConnection, subject: Any) -> None:
    before = nc.stats()
    with pytest.raises(BadSubjectError) as info:
        nc.publish(subject, b"x")
    assert info.value.code == "BAD_SUBJECT"
    assert nc.stats().out_msgs == before.out_msgs
    await nc.flush()  # nothing half-written: the connection still answers
    assert not nc.is_closed


async def test_bad_reply_subject_raises_bad_subject(nc: NatsConnection) -> None:
    with pytest.raises(BadSubjectError):
        nc.publish("pub.ok", b"x", reply="a b")


@pytest.mark.parametrize(
    "payload",
    [pytest.param(7, id="int"), pytest.param(None, id="none"), pytest.param({"a": 1}, id="dict")],
)
async def test_bad_payload_raises_bad_payload(nc: NatsConnection, payload: Any) -> None:
    before = nc.stats()
    with pytest.raises(BadPayloadError) as info:
        nc.publish("pub.badpayload", payload)
    assert isinstance(info.value, TypeError)
    assert info.value.code == "BAD_PAYLOAD"
    assert nc.stats().out_msgs == before.out_msgs
    await nc.flush()


async def test_str_payload_that_is_not_utf8_encodable_raises_bad_payload(nc: NatsConnection) -> None:
    with pytest.raises(BadPayloadError):
        nc.publish("pub.surrogate", "\ud800")


async def test_empty_headers_send_no_header_block(nc: NatsConnection) -> None:
    sub = nc.subscribe("pub.emptyhdr")
    nc.publish("pub.emptyhdr", b"e", headers=Headers())
    msg = await sub.next_msg(timeout=5)
    assert msg.data == b"e"
    assert msg.headers is None


async def test_bad_header_key_raises_bad_header_and_sends_nothing(nc: NatsConnection) -> None:
    before = nc.stats()
    with pytest.raises(BadHeaderError):
        nc.publish("pub.badhdr", b"", headers={"bad key": "x"})
    assert nc.stats().out_msgs == before.out_msgs
    await nc.flush()


async def test_reply_arrives_as_msg_reply(nc: NatsConnection) -> None:
    sub = nc.subscribe("pub.reply")
    nc.publish("pub.reply", b"q", reply="my.inbox.1")
    nc.publish("pub.reply", b"q2")
    first, second = await take(sub, 2)
    assert first.reply == "my.inbox.1"
    assert second.reply is None


async def test_publish_message_sends_subject_data_reply_headers(nc: NatsConnection) -> None:
    sub = nc.subscribe("pub.msg")
    out = Msg("pub.msg", "payload", reply="the.reply", headers={"K": ["v1", "v2"]})
    assert out.sid == 0
    assert nc.publish_message(out) is None
    msg = await sub.next_msg(timeout=5)
    assert msg.subject == "pub.msg"
    assert msg.data == b"payload"
    assert msg.reply == "the.reply"
    assert msg.headers is not None
    assert msg.headers.values("K") == ["v1", "v2"]


async def test_many_publishes_without_await_all_arrive_in_order(nc: NatsConnection, nc2: NatsConnection) -> None:
    count = 50_000
    got: list[bytes] = []
    nc2.subscribe("pub.many", callback=lambda m: got.append(m.data))
    await nc2.flush()
    for i in range(count):
        nc.publish("pub.many", str(i))
    await nc.flush()
    await eventually(lambda: len(got) >= count, timeout=20, what=f"{count} messages")
    await nc2.flush()
    assert len(got) == count
    assert got == [str(i).encode() for i in range(count)]


async def test_publish_on_closed_connection_raises(nc: NatsConnection) -> None:
    await nc.close()
    with pytest.raises(ConnectionClosedError):
        nc.publish("pub.closed", b"x")


# -- subscribe: delivery modes ------------------------------------------------------------------------------------


async def test_plain_function_callback_receives_messages(nc: NatsConnection) -> None:
    got: list[bytes] = []

    def on_msg(msg: Msg) -> None:
        got.append(msg.data)

    sub = nc.subscribe("sub.plain", callback=on_msg)
    for i in range(5):
        nc.publish("sub.plain", str(i))
    await nc.flush()
    assert got == [b"0", b"1", b"2", b"3", b"4"]
    assert sub.processed == 5
    assert sub.pending == 0  # plain callbacks run inline: no queue


async def test_coroutine_callbacks_run_one_at_a_time_in_arrival_order(nc: NatsConnection) -> None:
    order: list[int] = []
    active = 0
    max_active = 0

    async def on_msg(msg: Msg) -> None:
        nonlocal active, max_active
        active += 1
        max_active = max(max_active, active)
        await asyncio.sleep(0.002)  # yield to the loop: a concurrent callback would start now
        order.append(int(msg.data))
        active -= 1

    sub = nc.subscribe("sub.coro", callback=on_msg)
    for i in range(30):
        nc.publish("sub.coro", str(i))
    await nc.flush()
    await eventually(lambda: len(order) == 30)
    assert order == list(range(30))
    assert max_active == 1
    assert sub.processed == 30


async def test_async_for_iterates_messages(nc: NatsConnection) -> None:
    sub = nc.subscribe("sub.iter")
    for i in range(3):
        nc.publish("sub.iter", str(i))
    got: list[bytes] = []

    async def consume() -> None:
        async for msg in sub:
            got.append(msg.data)
            if len(got) == 3:
                break

    await asyncio.wait_for(consume(), 5)
    assert got == [b"0", b"1", b"2"]


async def test_next_msg_returns_next_message(nc: NatsConnection) -> None:
    sub = nc.subscribe("sub.next")
    nc.publish("sub.next", b"a")
    nc.publish("sub.next", b"b")
    assert (await sub.next_msg(timeout=5)).data == b"a"
    assert (await sub.next_msg(timeout=5)).data == b"b"


async def test_next_msg_times_out_with_nats_timeout(nc: NatsConnection) -> None:
    sub = nc.subscribe("sub.next.timeout")
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(NatsTimeoutError) as info:
        await sub.next_msg(timeout=0.2)
    assert isinstance(info.value, TimeoutError)
    assert 0.15 <= loop.time() - start < 2
    # The subscription is still usable afterwards.
    assert not sub.is_closed
    nc.publish("sub.next.timeout", b"late")
    assert (await sub.next_msg(timeout=5)).data == b"late"


async def test_iterating_a_callback_subscription_raises_runtime_error(nc: NatsConnection) -> None:
    sub = nc.subscribe("sub.cb.iter", callback=lambda m: None)
    with pytest.raises(RuntimeError):
        async for _ in sub:
            pass
    with pytest.raises(RuntimeError):
        await sub.next_msg(timeout=0.1)


async def test_queue_group_splits_messages_and_plain_subscriber_gets_all(
    nc: NatsConnection, nc2: NatsConnection
) -> None:
    members: list[list[int]] = [[], [], []]
    for bucket in members:
        nc2.subscribe("sub.queue", queue="workers", callback=lambda m, b=bucket: b.append(int(m.data)))
    everyone: list[int] = []
    plain = nc2.subscribe("sub.queue", callback=lambda m: everyone.append(int(m.data)))
    await nc2.flush()
    for i in range(300):
        nc.publish("sub.queue", str(i))
    await nc.flush()
    await eventually(lambda: len(everyone) == 300 and sum(map(len, members)) >= 300, what="all deliveries")
    await nc2.flush()
    assert everyone == list(range(300))
    assert plain.received == 300
    delivered = [n for bucket in members for n in bucket]
    assert len(delivered) == 300
    assert sorted(delivered) == list(range(300))  # each message to exactly one member
    assert all(len(bucket) > 0 for bucket in members), [len(b) for b in members]


async def test_queue_property(nc: NatsConnection) -> None:
    assert nc.subscribe("sub.q", queue="g").queue == "g"
    assert nc.subscribe("sub.q").queue is None


async def test_wildcard_star_matches_exactly_one_token(nc: NatsConnection) -> None:
    got: list[str] = []
    nc.subscribe("wc.*", callback=lambda m: got.append(m.subject))
    for subject in ("wc.a", "wc.b", "wc.a.b", "wc", "other.a"):
        nc.publish(subject, b"")
    await nc.flush()
    assert got == ["wc.a", "wc.b"]


async def test_wildcard_gt_matches_one_or_more_tokens(nc: NatsConnection) -> None:
    got: list[str] = []
    nc.subscribe("wg.>", callback=lambda m: got.append(m.subject))
    for subject in ("wg.a", "wg.a.b", "wg.a.b.c", "wg", "other.a"):
        nc.publish(subject, b"")
    await nc.flush()
    assert got == ["wg.a", "wg.a.b", "wg.a.b.c"]


async def test_msg_fields(nc: NatsConnection) -> None:
    sub = nc.subscribe("msg.>")
    nc.publish("msg.fields", b"data")
    msg = await sub.next_msg(timeout=5)
    assert isinstance(msg, Msg)
    assert msg.subject == "msg.fields"
    assert msg.reply is None
    assert type(msg.data) is bytes and msg.data == b"data"
    assert msg.headers is None
    assert msg.sid == sub.sid
    assert sub.subject == "msg.>"


async def test_each_subscription_has_its_own_sid(nc: NatsConnection) -> None:
    a = nc.subscribe("sid.test")
    b = nc.subscribe("sid.test")
    assert a.sid != b.sid
    nc.publish("sid.test", b"x")
    ma, mb = await a.next_msg(timeout=5), await b.next_msg(timeout=5)
    assert (ma.sid, mb.sid) == (a.sid, b.sid)


# -- subscribe: ending ---------------------------------------------------------------------------------------------


async def test_max_auto_unsubscribes_after_n_messages(nc: NatsConnection) -> None:
    sub = nc.subscribe("end.max", max=3)
    assert sub.max == 3
    for i in range(10):
        nc.publish("end.max", str(i))
    await nc.flush()

    async def consume() -> list[bytes]:
        return [m.data async for m in sub]

    got = await asyncio.wait_for(consume(), 5)
    assert got == [b"0", b"1", b"2"]
    assert sub.is_closed
    assert await asyncio.wait_for(sub.closed, 5) is None
    assert sub.received == 3


async def test_max_with_callback_delivers_exactly_n(nc: NatsConnection) -> None:
    got: list[bytes] = []
    sub = nc.subscribe("end.max.cb", max=2, callback=lambda m: got.append(m.data))
    for i in range(5):
        nc.publish("end.max.cb", str(i))
    await nc.flush()
    assert got == [b"0", b"1"]
    assert await asyncio.wait_for(sub.closed, 5) is None


async def test_unsubscribe_stops_delivery_and_ends_iterator(nc: NatsConnection) -> None:
    sub = nc.subscribe("end.unsub")
    nc.publish("end.unsub", b"before")
    assert (await sub.next_msg(timeout=5)).data == b"before"
    sub.unsubscribe()
    assert sub.is_closed
    nc.publish("end.unsub", b"after")
    await nc.flush()

    async def rest() -> list[Msg]:
        return [m async for m in sub]

    assert await asyncio.wait_for(rest(), 5) == []
    assert sub.received == 1
    assert await sub.closed is None
    sub.unsubscribe()  # a no-op on a closed subscription, never raises


async def test_unsubscribe_ends_a_waiting_iterator(nc: NatsConnection) -> None:
    sub = nc.subscribe("end.unsub.wait")

    async def rest() -> list[Msg]:
        return [m async for m in sub]

    task = asyncio.create_task(rest())
    await asyncio.sleep(0.01)
    assert not task.done()
    sub.unsubscribe()
    assert await asyncio.wait_for(task, 5) == []


async def test_unsubscribe_with_max_counts_messages_already_received(nc: NatsConnection) -> None:
    got: list[bytes] = []
    sub = nc.subscribe("end.unsub.max", callback=lambda m: got.append(m.data))
    nc.publish("end.unsub.max", b"0")
    nc.publish("end.unsub.max", b"1")
    await nc.flush()
    assert sub.received == 2
    sub.unsubscribe(5)
    assert sub.max == 5
    assert not sub.is_closed
    for i in range(2, 10):
        nc.publish("end.unsub.max", str(i))
    await nc.flush()
    assert got == [b"0", b"1", b"2", b"3", b"4"]
    assert sub.received == 5
    assert sub.is_closed


async def test_unsubscribe_with_max_already_reached_closes_now(nc: NatsConnection) -> None:
    sub = nc.subscribe("end.unsub.reached", callback=lambda m: None)
    for _ in range(3):
        nc.publish("end.unsub.reached", b"x")
    await nc.flush()
    sub.unsubscribe(2)
    assert sub.is_closed
    nc.publish("end.unsub.reached", b"x")
    await nc.flush()
    assert sub.received == 3


async def test_timeout_without_messages_closes_with_nats_timeout(nc: NatsConnection) -> None:
    sub = nc.subscribe("end.timeout", timeout=0.2)

    async def consume() -> list[Msg]:
        return [m async for m in sub]

    with pytest.raises(NatsTimeoutError):
        await asyncio.wait_for(consume(), 5)
    assert sub.is_closed
    err = await sub.closed
    assert isinstance(err, NatsTimeoutError)


async def test_timeout_is_cancelled_by_first_message(nc: NatsConnection) -> None:
    sub = nc.subscribe("end.timeout.cancel", timeout=0.2)
    nc.publish("end.timeout.cancel", b"first")
    assert (await sub.next_msg(timeout=5)).data == b"first"
    await stays(lambda: not sub.is_closed, duration=0.4, what="subscription stays open past its timeout")
    nc.publish("end.timeout.cancel", b"second")
    assert (await sub.next_msg(timeout=5)).data == b"second"


async def test_drain_delivers_everything_published_before_then_closes(nc: NatsConnection) -> None:
    sub = nc.subscribe("end.drain")
    await nc.flush()
    for i in range(100):
        nc.publish("end.drain", str(i))
    drain = asyncio.create_task(sub.drain())
    await asyncio.sleep(0)
    assert sub.is_draining
    got = [m.data async for m in sub]  # ends once the drain is complete
    await asyncio.wait_for(drain, 5)
    assert got == [str(i).encode() for i in range(100)]
    assert sub.is_closed
    assert not sub.is_draining
    assert await sub.closed is None
    nc.publish("end.drain", b"after")
    await nc.flush()
    assert sub.received == 100


async def test_drain_with_coroutine_callback_waits_for_callbacks(nc: NatsConnection, nc2: NatsConnection) -> None:
    got: list[bytes] = []

    async def on_msg(msg: Msg) -> None:
        await asyncio.sleep(0)
        got.append(msg.data)

    sub = nc.subscribe("end.drain.cb", callback=on_msg)
    await nc.flush()
    for i in range(50):
        nc2.publish("end.drain.cb", str(i))
    await nc2.flush()
    await eventually(lambda: sub.received == 50)
    await asyncio.wait_for(sub.drain(), 5)
    assert got == [str(i).encode() for i in range(50)]
    assert sub.is_closed


async def test_drain_of_closed_subscription_raises_subscription_closed(nc: NatsConnection) -> None:
    sub = nc.subscribe("end.drain.closed")
    sub.unsubscribe()
    with pytest.raises(SubscriptionClosedError) as info:
        await sub.drain()
    assert info.value.code == "SUB_CLOSED"


async def test_second_drain_raises_subscription_draining(nc: NatsConnection) -> None:
    sub = nc.subscribe("end.drain.twice", callback=lambda m: None)
    first = asyncio.create_task(sub.drain())
    await asyncio.sleep(0)
    assert sub.is_draining
    with pytest.raises(SubscriptionDrainingError) as info:
        await sub.drain()
    assert info.value.code == "SUB_DRAINING"
    await asyncio.wait_for(first, 5)
    assert sub.is_closed


async def test_next_msg_on_closed_empty_subscription_raises_subscription_closed(nc: NatsConnection) -> None:
    sub = nc.subscribe("end.next.closed")
    sub.unsubscribe()
    with pytest.raises(SubscriptionClosedError):
        await sub.next_msg(timeout=1)


async def test_unsubscribe_ends_every_task_iterating_one_subscription(nc: NatsConnection) -> None:
    # A common worker pattern: several tasks consume one subscription. Each message goes to one of them, and
    # ending the subscription must end all of them (none may stay blocked forever).
    sub = nc.subscribe("end.workers")
    got: list[bytes] = []

    async def worker() -> None:
        async for msg in sub:
            got.append(msg.data)

    workers = [asyncio.create_task(worker()) for _ in range(3)]
    try:
        await asyncio.sleep(0.01)  # every worker is waiting for a message
        for i in range(10):
            nc.publish("end.workers", str(i))
        await nc.flush()
        await eventually(lambda: len(got) == 10, what="every message consumed by some worker")
        sub.unsubscribe()
        _done, hung = await asyncio.wait(workers, timeout=2)
        assert not hung, f"{len(hung)} of 3 iterating tasks never ended after unsubscribe()"
        assert sorted(got) == sorted(str(i).encode() for i in range(10))
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


async def test_close_ends_every_task_waiting_in_next_msg(nats_server: NatsServer) -> None:
    conn = await connect(nats_server.url)
    sub = conn.subscribe("end.waiters")
    waiters = [asyncio.create_task(sub.next_msg()) for _ in range(2)]
    try:
        await asyncio.sleep(0.01)
        await conn.close()
        done, hung = await asyncio.wait(waiters, timeout=2)
        assert not hung, f"{len(hung)} of 2 next_msg() calls never returned after close()"
        for task in done:
            assert isinstance(task.exception(), SubscriptionClosedError)
    finally:
        for task in waiters:
            task.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        await conn.close()


async def test_async_with_subscription_unsubscribes_on_exit(nc: NatsConnection) -> None:
    async with nc.subscribe("end.with") as sub:
        nc.publish("end.with", b"in")
        assert (await sub.next_msg(timeout=5)).data == b"in"
    assert sub.is_closed
    nc.publish("end.with", b"out")
    await nc.flush()
    assert sub.received == 1


async def test_drain_on_closed_connection_raises_connection_closed(nc: NatsConnection) -> None:
    sub = nc.subscribe("end.drain.connclosed")
    await nc.close()
    with pytest.raises(ConnectionClosedError):
        await sub.drain()


async def test_closing_connection_ends_iterators_normally(nc: NatsConnection) -> None:
    sub = nc.subscribe("end.conn.close")

    async def rest() -> list[Msg]:
        return [m async for m in sub]

    task = asyncio.create_task(rest())
    await nc.flush()
    await nc.close()
    assert await asyncio.wait_for(task, 5) == []
    assert await sub.closed is None


# -- counters, errors ------------------------------------------------------------------------------------------------


async def test_received_processed_pending_counters(nc: NatsConnection) -> None:
    sub = nc.subscribe("cnt.iter")
    assert (sub.received, sub.processed, sub.pending) == (0, 0, 0)
    for _ in range(5):
        nc.publish("cnt.iter", b"abc")
    await nc.flush()
    assert (sub.received, sub.processed, sub.pending) == (5, 0, 5)
    assert sub.pending_bytes == 15
    await take(sub, 2)
    assert (sub.received, sub.processed, sub.pending) == (5, 2, 3)
    assert sub.pending_bytes == 9
    await take(sub, 3)
    assert (sub.received, sub.processed, sub.pending) == (5, 5, 0)
    assert sub.pending_bytes == 0
    assert sub.dropped == 0


async def test_exception_in_plain_callback_is_logged_and_subscription_continues(
    nc: NatsConnection, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[bytes] = []

    def on_msg(msg: Msg) -> None:
        if msg.data == b"boom":
            raise ValueError("callback failure for the test")
        got.append(msg.data)

    sub = nc.subscribe("err.plain", callback=on_msg)
    with caplog.at_level(logging.ERROR, logger="cnats"):
        nc.publish("err.plain", b"boom")
        nc.publish("err.plain", b"ok")
        await nc.flush()
    assert got == [b"ok"]
    assert not sub.is_closed
    logged = [r for r in caplog.records if r.name == "cnats" and r.exc_info is not None]
    assert any(isinstance(r.exc_info[1], ValueError) for r in logged if r.exc_info), caplog.records


async def test_exception_in_coroutine_callback_is_logged_and_subscription_continues(
    nc: NatsConnection, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[bytes] = []

    async def on_msg(msg: Msg) -> None:
        if msg.data == b"boom":
            raise ValueError("async callback failure for the test")
        got.append(msg.data)

    sub = nc.subscribe("err.coro", callback=on_msg)
    with caplog.at_level(logging.ERROR, logger="cnats"):
        nc.publish("err.coro", b"boom")
        nc.publish("err.coro", b"ok")
        await nc.flush()
        await eventually(lambda: got == [b"ok"])
    assert not sub.is_closed
    logged = [r for r in caplog.records if r.name == "cnats" and r.exc_info is not None]
    assert any(isinstance(r.exc_info[1], ValueError) for r in logged if r.exc_info), caplog.records
    nc.publish("err.coro", b"again")
    await eventually(lambda: got == [b"ok", b"again"])


async def test_subscribe_on_closed_connection_raises(nc: NatsConnection) -> None:
    await nc.close()
    with pytest.raises(ConnectionClosedError) as info:
        nc.subscribe("sub.closed")
    assert info.value.code == "CONNECTION_CLOSED"


@pytest.mark.parametrize("subject", ["", "a b", "a\r\nSUB x 1", None])
async def test_subscribe_with_bad_subject_raises_bad_subject(nc: NatsConnection, subject: Any) -> None:
    with pytest.raises(BadSubjectError):
        nc.subscribe(subject)
