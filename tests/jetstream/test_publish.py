"""Publishing to streams: PubAck, msg_id de-duplication, every PublishExpect option (met and not met),
headers, no responders, timeouts, invalid acknowledgements, and pipelined publish_async with its back-pressure,
errors and closing."""

from __future__ import annotations

import asyncio
import time

import pytest
from helpers.core import eventually

import cnats
from cnats import Msg, NatsConnection
from cnats.errors import (
    ConnectionClosedError,
    ConnectionDrainingError,
    InvalidOptionError,
    JetStreamApiError,
    JetStreamInvalidAckError,
    NatsTimeoutError,
    NoRespondersError,
    WrongLastSequenceError,
)
from cnats.jetstream import JetStreamClient, JetStreamManager, PubAck, PubHeaders, PublishExpect
from cnats.testing import NatsServer

# -- publish --------------------------------------------------------------------------------------------------------


async def test_pub_ack_fields(js: JetStreamClient) -> None:
    first = await js.publish("s.a", b"one")
    assert isinstance(first, PubAck)
    assert first.stream == "S"
    assert first.seq == 1
    assert first.duplicate is False
    assert first.domain is None
    second = await js.publish("s.b", "two")  # a str payload is UTF-8 encoded
    assert second.seq == 2
    third = await js.publish("s.c")
    assert third.seq == 3


async def test_published_data_and_headers_are_stored(js: JetStreamClient, jsm: JetStreamManager) -> None:
    headers = {"X-One": "1", "X-Many": ["a", "b"]}
    await js.publish("s.h", "héllo", headers=headers)
    stored = await jsm.streams.get_message("S", 1)
    assert stored.data == "héllo".encode()
    assert stored.headers is not None
    assert stored.headers.get("X-One") == "1"
    assert stored.headers.values("X-Many") == ["a", "b"]
    assert headers == {"X-One": "1", "X-Many": ["a", "b"]}  # the caller's mapping is untouched
    # with msg_id and expectations the user's headers are kept too
    await js.publish("s.h", b"2", headers={"X-Two": "2"}, msg_id="id-2", expect=PublishExpect(stream_name="S"))
    stored = await jsm.streams.get_message("S", 2)
    assert stored.headers is not None
    assert stored.headers.get("X-Two") == "2"
    assert stored.headers.get(PubHeaders.MSG_ID.value) == "id-2"


async def test_msg_id_deduplication(js: JetStreamClient, jsm: JetStreamManager) -> None:
    first = await js.publish("s.d", b"x", msg_id="abc")
    assert first.duplicate is False
    again = await js.publish("s.d", b"different data", msg_id="abc")
    assert again.duplicate is True
    assert again.seq == first.seq
    assert again.stream == "S"
    other = await js.publish("s.d", b"x", msg_id="abd")
    assert other.duplicate is False and other.seq == first.seq + 1
    assert (await jsm.streams.info("S")).state.messages == 2
    assert (await jsm.streams.get_message("S", first.seq)).data == b"x"


async def test_expect_stream_name(js: JetStreamClient, jsm: JetStreamManager) -> None:
    ack = await js.publish("s.e", b"x", expect=PublishExpect(stream_name="S"))
    assert ack.stream == "S"
    with pytest.raises(JetStreamApiError) as err:
        await js.publish("s.e", b"x", expect=PublishExpect(stream_name="OTHER"))
    assert not isinstance(err.value, WrongLastSequenceError)
    assert err.value.status == 400
    assert err.value.err_code == 10060  # expected stream does not match
    assert err.value.code == "400"
    assert (await jsm.streams.info("S")).state.messages == 1


async def test_expect_last_sequence(js: JetStreamClient, jsm: JetStreamManager) -> None:
    ack = await js.publish("s.a", b"1", expect=PublishExpect(last_sequence=0))
    assert ack.seq == 1
    ack = await js.publish("s.b", b"2", expect=PublishExpect(last_sequence=1))
    assert ack.seq == 2
    with pytest.raises(WrongLastSequenceError) as err:
        await js.publish("s.a", b"3", expect=PublishExpect(last_sequence=1))
    assert isinstance(err.value, JetStreamApiError)
    assert err.value.status == 400
    assert err.value.err_code == 10071
    assert (await jsm.streams.info("S")).state.messages == 2


async def test_expect_last_subject_sequence(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await js.publish("s.a", b"1")  # 1
    await js.publish("s.b", b"2")  # 2
    ack = await js.publish("s.a", b"3", expect=PublishExpect(last_subject_sequence=1))
    assert ack.seq == 3
    ack = await js.publish("s.new", b"4", expect=PublishExpect(last_subject_sequence=0))
    assert ack.seq == 4
    with pytest.raises(WrongLastSequenceError) as err:
        await js.publish("s.b", b"5", expect=PublishExpect(last_subject_sequence=1))  # last s.b is 2
    assert (err.value.status, err.value.err_code) == (400, 10071)
    with pytest.raises(WrongLastSequenceError):
        await js.publish("s.a", b"5", expect=PublishExpect(last_subject_sequence=0))
    assert (await jsm.streams.info("S")).state.messages == 4


async def test_expect_last_msg_id(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await js.publish("s.a", b"1", msg_id="m1")
    ack = await js.publish("s.a", b"2", msg_id="m2", expect=PublishExpect(last_msg_id="m1"))
    assert ack.seq == 2
    with pytest.raises(JetStreamApiError) as err:
        await js.publish("s.a", b"3", msg_id="m3", expect=PublishExpect(last_msg_id="m1"))
    assert not isinstance(err.value, WrongLastSequenceError)
    assert err.value.status == 400
    assert err.value.err_code == 10070  # wrong last msg ID
    assert (await jsm.streams.info("S")).state.messages == 2


async def test_all_expectations_together(js: JetStreamClient) -> None:
    await js.publish("s.a", b"1", msg_id="m1")
    expect = PublishExpect(stream_name="S", last_sequence=1, last_subject_sequence=1, last_msg_id="m1")
    ack = await js.publish("s.a", b"2", msg_id="m2", expect=expect)
    assert ack.seq == 2
    with pytest.raises(JetStreamApiError):
        await js.publish("s.a", b"3", expect=expect)  # the last sequence is 2 by now


async def test_no_stream_captures_subject(js: JetStreamClient) -> None:
    start = time.monotonic()
    with pytest.raises(NoRespondersError):
        await js.publish("nostream.x", b"x", timeout=5)
    assert time.monotonic() - start < 2  # answered by the server, not by the timeout


async def test_timeout_is_honoured(nc: NatsConnection, js: JetStreamClient) -> None:
    sub = nc.subscribe("silent.>")  # something listens, but never answers
    await nc.flush()
    start = time.monotonic()
    with pytest.raises(NatsTimeoutError):
        await js.publish("silent.x", b"x", timeout=0.5)
    elapsed = time.monotonic() - start
    assert 0.4 < elapsed < 2
    slow = nc.jetstream(timeout=0.3)
    start = time.monotonic()
    with pytest.raises(NatsTimeoutError):
        await slow.publish("silent.x", b"x")
    assert 0.2 < time.monotonic() - start < 2
    sub.unsubscribe()


async def test_answer_that_is_not_a_pub_ack(nc: NatsConnection, js: JetStreamClient) -> None:
    def reply(msg: Msg) -> None:
        body = {"fake.json": b"not json", "fake.nostream": b'{"seq": 1}', "fake.list": b"[1]"}[msg.subject]
        msg.respond(body)

    nc.subscribe("fake.*", callback=reply)
    await nc.flush()
    for subject in ("fake.json", "fake.nostream", "fake.list"):
        with pytest.raises(JetStreamInvalidAckError):
            await js.publish(subject, b"x", timeout=2)


async def test_publish_on_closed_connection(nc: NatsConnection, js: JetStreamClient) -> None:
    await nc.close()
    with pytest.raises(ConnectionClosedError):
        await js.publish("s.a", b"x")
    with pytest.raises(ConnectionClosedError):
        await js.publish_async("s.a", b"x")


# -- publish_async ------------------------------------------------------------------------------------------------


async def test_publish_async_many_acked_in_order(js: JetStreamClient, jsm: JetStreamManager) -> None:
    n = 5000
    futures = [await js.publish_async("s.many", f"{i}") for i in range(n)]
    await asyncio.wait_for(js.publish_async_completed(), 30)
    assert js.publish_async_pending == 0
    acks = [f.result() for f in futures]
    assert [a.seq for a in acks] == list(range(1, n + 1))
    assert all(a.stream == "S" and not a.duplicate for a in acks)
    assert (await jsm.streams.info("S")).state.messages == n
    assert (await jsm.streams.get_message("S", 1234)).data == b"1233"


async def test_publish_async_pending_bounded(nc: NatsConnection, jsm: JetStreamManager) -> None:
    js = nc.jetstream(publish_async_max_pending=10)
    seen: list[int] = []
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            seen.append(js.publish_async_pending)
            await asyncio.sleep(0)

    sampler = asyncio.create_task(sample())
    futures = []
    for i in range(500):
        futures.append(await js.publish_async("s.bounded", f"{i}"))
        seen.append(js.publish_async_pending)
    await asyncio.wait_for(js.publish_async_completed(), 10)
    stop.set()
    await sampler
    assert max(seen) <= 10
    assert max(seen) >= 2  # it did pipeline
    assert [f.result().seq for f in futures] == list(range(1, 501))
    assert js.publish_async_pending == 0


async def test_publish_async_max_pending_must_be_positive(nc: NatsConnection) -> None:
    with pytest.raises(InvalidOptionError):
        nc.jetstream(publish_async_max_pending=0)
    for wait in (0, -1.0, True, "5"):
        with pytest.raises(InvalidOptionError, match="publish_async_stall_wait"):
            nc.jetstream(publish_async_stall_wait=wait)  # type: ignore[arg-type]


async def test_publish_async_waits_for_room_at_most_the_stall_wait(nc: NatsConnection) -> None:
    js = nc.jetstream(publish_async_max_pending=1, publish_async_stall_wait=0.3)
    nc.subscribe("silent.>")  # takes the publishes and never acknowledges them
    await nc.flush()
    first = await js.publish_async("silent.a", b"1", timeout=10)
    sent = nc.stats().out_msgs
    started = time.monotonic()
    with pytest.raises(NatsTimeoutError, match=r"publish_async waited 0\.3 s for room"):
        await js.publish_async("silent.b", b"2")
    assert 0.25 < time.monotonic() - started < 3
    assert nc.stats().out_msgs == sent and js.publish_async_pending == 1  # nothing more was sent
    assert not first.done()


async def test_publish_async_completed_when_idle_and_timeout(nc: NatsConnection, js: JetStreamClient) -> None:
    await asyncio.wait_for(js.publish_async_completed(), 1)  # nothing pending: returns at once
    nc.subscribe("silent.>")
    await nc.flush()
    future = await js.publish_async("silent.x", b"x", timeout=5)
    assert js.publish_async_pending == 1
    start = time.monotonic()
    with pytest.raises(NatsTimeoutError):
        await js.publish_async_completed(timeout=0.3)
    assert time.monotonic() - start < 2
    assert not future.done()
    assert js.publish_async_pending == 1


async def test_publish_async_timeout(nc: NatsConnection, js: JetStreamClient) -> None:
    nc.subscribe("silent.>")
    await nc.flush()
    start = time.monotonic()
    future = await js.publish_async("silent.x", b"x", timeout=0.4)
    with pytest.raises(NatsTimeoutError):
        await asyncio.wait_for(future, 5)
    assert 0.3 < time.monotonic() - start < 2
    assert js.publish_async_pending == 0


async def test_publish_async_errors_resolve_future(js: JetStreamClient, jsm: JetStreamManager) -> None:
    ok = await js.publish_async("s.a", b"1", msg_id="m1")
    wrong_seq = await js.publish_async("s.a", b"2", expect=PublishExpect(last_sequence=7))
    wrong_stream = await js.publish_async("s.a", b"3", expect=PublishExpect(stream_name="NOPE"))
    wrong_id = await js.publish_async("s.a", b"4", expect=PublishExpect(last_msg_id="zzz"))
    dup = await js.publish_async("s.a", b"5", msg_id="m1")
    nobody = await js.publish_async("nostream.x", b"6")
    later = await js.publish_async("s.b", b"7")
    await asyncio.wait_for(js.publish_async_completed(), 10)
    assert ok.result().seq == 1
    exc = wrong_seq.exception()
    assert isinstance(exc, WrongLastSequenceError)
    assert (exc.status, exc.err_code) == (400, 10071)
    exc = wrong_stream.exception()
    assert isinstance(exc, JetStreamApiError) and exc.err_code == 10060
    exc = wrong_id.exception()
    assert isinstance(exc, JetStreamApiError) and exc.err_code == 10070
    assert dup.result().duplicate is True and dup.result().seq == 1
    assert isinstance(nobody.exception(), NoRespondersError)
    assert later.result().seq == 2
    assert js.publish_async_pending == 0


async def test_publish_async_headers_and_msg_id(js: JetStreamClient, jsm: JetStreamManager) -> None:
    future = await js.publish_async("s.h", b"x", headers={"X-A": "1"}, msg_id="hid")
    ack = await asyncio.wait_for(future, 5)
    stored = await jsm.streams.get_message("S", ack.seq)
    assert stored.headers is not None
    assert stored.headers.get("X-A") == "1"
    assert stored.headers.get("Nats-Msg-Id") == "hid"


async def test_close_with_acks_pending_fails_futures(nats_server: NatsServer) -> None:
    nc = await cnats.connect(nats_server.url)
    jsm = await nc.jetstream_manager()
    await jsm.streams.add(name="S", subjects=["s.>"], storage="memory")
    js = nc.jetstream()
    nc.subscribe("silent.>")  # acks for these never come
    await nc.flush()
    futures = [await js.publish_async("silent.x", f"{i}", timeout=30) for i in range(20)]
    assert js.publish_async_pending == 20
    await nc.close()
    for future in futures:
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(future, 5)
    await eventually(lambda: js.publish_async_pending == 0, timeout=2)
    await asyncio.wait_for(js.publish_async_completed(), 1)


async def test_close_during_real_publishes(nats_server: NatsServer) -> None:
    nc = await cnats.connect(nats_server.url)
    jsm = await nc.jetstream_manager()
    await jsm.streams.add(name="S", subjects=["s.>"], storage="memory")
    js = nc.jetstream()
    futures = [await js.publish_async("s.x", f"{i}") for i in range(2000)]
    await nc.close()
    results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 10)
    # each future either got its ack before the close or failed with ConnectionClosedError
    for result in results:
        assert isinstance(result, (PubAck, ConnectionClosedError)), result
    acked = [r.seq for r in results if isinstance(r, PubAck)]
    assert acked == list(range(1, len(acked) + 1))
    assert js.publish_async_pending == 0


async def test_publish_async_once_a_drain_began_raises_draining(nats_server: NatsServer) -> None:
    # Its acknowledgement would come to the shared reply inbox, which the drain is taking down: refused at once,
    # as a request is, rather than published with an acknowledgement that could no longer arrive.
    nc = await cnats.connect(nats_server.url)
    jsm = await nc.jetstream_manager()
    await jsm.streams.add(name="S", subjects=["s.>"], storage="memory")
    js = nc.jetstream()
    assert isinstance(await (await js.publish_async("s.before", b"1")), PubAck)
    unread = nc.subscribe("held")  # an iterator nobody reads keeps the drain in its first phase
    nc.publish("held", b"x")
    await nc.flush()
    await eventually(lambda: unread.pending == 1)
    draining = asyncio.get_running_loop().create_task(nc.drain(timeout=5))
    await eventually(lambda: nc.is_draining)
    with pytest.raises(ConnectionDrainingError):
        await js.publish_async("s.during", b"2")
    assert js.publish_async_pending == 0
    assert [m.data async for m in unread] == [b"x"]  # read to its end: the drain can finish now
    await asyncio.wait_for(draining, 5)
    assert nc.is_closed


@pytest.mark.parametrize("timeout", [0, -1, True, "1"])
async def test_a_publish_timeout_must_be_positive(
    nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager, timeout: object
) -> None:
    with pytest.raises(InvalidOptionError, match="timeout must be a positive number"):
        await js.publish("s.t", b"x", timeout=timeout)  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="timeout must be a positive number"):
        await js.publish_async("s.t", b"x", timeout=timeout)  # type: ignore[arg-type]
    assert js.publish_async_pending == 0
    assert (await jsm.streams.info("S")).state.messages == 0  # nothing was published


async def test_a_message_ttl_is_sent_as_nats_ttl_and_the_server_expires_the_message(
    js: JetStreamClient, jsm: JetStreamManager
) -> None:
    await jsm.streams.add(name="TTL", subjects=["ttl.>"], storage="memory", allow_msg_ttl=True)
    short = await js.publish("ttl.short", b"gone soon", ttl=1)
    kept = await (await js.publish_async("ttl.kept", b"stays", ttl=-1))
    stored = await jsm.streams.get_message("TTL", kept.seq)
    assert stored.headers is not None and stored.headers.get("Nats-TTL") == "never"
    stored = await jsm.streams.get_message("TTL", short.seq)
    assert stored.headers is not None and stored.headers.get("Nats-TTL") == "1"

    async def expired() -> bool:
        return (await jsm.streams.info("TTL")).state.messages == 1

    await eventually(expired, timeout=10, what="the 1 s message expired")


@pytest.mark.parametrize("ttl", [0, 0.5, 1.5, -2, True, "1s", float("inf"), float("nan")])
async def test_a_message_ttl_must_be_whole_seconds_or_never(
    nc: NatsConnection, js: JetStreamClient, ttl: object
) -> None:
    sent = nc.stats().out_msgs
    with pytest.raises(InvalidOptionError, match="ttl must be a whole number of seconds"):
        await js.publish("ttl.x", b"x", ttl=ttl)  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="ttl must be a whole number of seconds"):
        await js.publish_async("ttl.x", b"x", ttl=ttl)  # type: ignore[arg-type]
    assert nc.stats().out_msgs == sent
