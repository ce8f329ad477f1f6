"""Atomic batch publishing (``js.batch()``, server 2.12+) against a real server: a committed batch is stored whole, in
order and on contiguous sequences; a refused batch (a failed expectation, a stream without ``allow_atomic``, a gap, a
duplicate message id, too many messages) leaves nothing in the stream; a discarded or finished batch sends nothing
more; batches on one connection commit independently."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.core import eventually

import cnats
from cnats import NatsConnection
from cnats.errors import (
    BadSubjectError,
    InvalidOptionError,
    JetStreamApiError,
    NatsTimeoutError,
    NoRespondersError,
    WrongLastSequenceError,
)
from cnats.jetstream import BatchAck, JetStreamClient, JetStreamManager, PubHeaders, PublishBatch, PublishExpect
from cnats.testing import NatsServer

STREAM = "ATOM"

# the server's error codes for atomic batches (nats-server 2.12+)
DISABLED = 10174  # the stream does not allow atomic publishing
INCOMPLETE = 10176  # a message of the batch is missing (a gap, or the batch was abandoned)
UNSUPPORTED_HEADER = 10177  # Nats-Expected-Last-Msg-Id in a batch
TOO_LARGE = 10199  # more messages than the server's batch limit (1000 by default)
DUPLICATE_MSG_ID = 10201  # a Nats-Msg-Id the stream (or the batch) already holds
TOO_MANY_INFLIGHT = 10210  # the stream's (or the server's) limit of open batches is reached
WRONG_STREAM = 10060  # an expected stream name that is not the stream's


@pytest.fixture
async def atomic(jsm: JetStreamManager) -> str:
    """A stream that allows atomic batches, on ``atom.*`` (``atom.x.y`` is outside it: the tests' marker subject)."""
    await jsm.streams.add(name=STREAM, subjects=["atom.*"], storage="memory", allow_atomic=True)
    return STREAM


async def stored(jsm: JetStreamManager, stream: str) -> list[tuple[int, str, bytes]]:
    """Every message of ``stream``: sequence, subject and data."""
    state = (await jsm.streams.info(stream)).state
    out = []
    for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
        msg = await jsm.streams.get_message(stream, seq)
        out.append((msg.seq, msg.subject, msg.data))
    return out


async def count(jsm: JetStreamManager, stream: str) -> int:
    return (await jsm.streams.info(stream)).state.messages


# -- committed batches ----------------------------------------------------------------------------------------------


async def test_a_committed_batch_is_stored_whole_in_order(
    js: JetStreamClient, jsm: JetStreamManager, atomic: str
) -> None:
    await js.publish("atom.before", b"0")  # the batch's sequences follow what the stream holds
    batch = js.batch()
    assert isinstance(batch, PublishBatch)
    assert (batch.size, len(batch.id)) == (0, 22)
    for i in range(1, 5):
        await batch.add(f"atom.{i % 2}", f"m{i}")
        assert batch.size == i
    assert await count(jsm, atomic) == 1  # staged, not stored, until the commit
    ack = await batch.commit("atom.last", b"m5")
    assert isinstance(ack, BatchAck)
    assert (ack.stream, ack.seq, ack.batch, ack.count, ack.duplicate) == (atomic, 6, batch.id, 5, False)
    assert batch.size == 5
    assert await stored(jsm, atomic) == [
        (1, "atom.before", b"0"),
        (2, "atom.1", b"m1"),
        (3, "atom.0", b"m2"),
        (4, "atom.1", b"m3"),
        (5, "atom.0", b"m4"),
        (6, "atom.last", b"m5"),
    ]


async def test_a_batch_of_one_message_is_its_commit(js: JetStreamClient, jsm: JetStreamManager, atomic: str) -> None:
    batch = js.batch()
    ack = await batch.commit("atom.one", b"only")
    assert (ack.seq, ack.count, ack.batch, batch.size) == (1, 1, batch.id, 1)
    assert await stored(jsm, atomic) == [(1, "atom.one", b"only")]


async def test_headers_and_message_ids_are_stored(js: JetStreamClient, jsm: JetStreamManager, atomic: str) -> None:
    batch = js.batch()
    headers = {"X-Part": "1", PubHeaders.MSG_ID.value: "order-1"}
    await batch.add("atom.a", b"1", headers=headers)
    ack = await batch.commit("atom.b", b"2", headers={"X-Part": "2", PubHeaders.MSG_ID.value: "order-2"})
    assert (ack.seq, ack.count) == (2, 2)
    assert headers == {"X-Part": "1", PubHeaders.MSG_ID.value: "order-1"}  # the caller's mapping is untouched
    for seq, part in ((1, "1"), (2, "2")):
        msg = await jsm.streams.get_message(atomic, seq)
        assert msg.headers is not None
        assert msg.headers.get("X-Part") == part
        assert msg.headers.get(PubHeaders.MSG_ID.value) == f"order-{part}"
        # the server keeps the batch's headers with each message
        assert (msg.headers.get("Nats-Batch-Id"), msg.headers.get("Nats-Batch-Sequence")) == (batch.id, part)
    assert msg.headers.get("Nats-Batch-Commit") == "1"  # on the last one


async def test_the_batch_limit_is_a_thousand_messages(js: JetStreamClient, jsm: JetStreamManager, atomic: str) -> None:
    batch = js.batch()
    for _ in range(999):
        await batch.add("atom.big", b"x")
    ack = await batch.commit("atom.big", b"x")
    assert (ack.seq, ack.count) == (1000, 1000)
    # one more is refused at the commit, and nothing of that batch is stored
    batch = js.batch()
    for _ in range(1000):
        await batch.add("atom.big", b"y")
    with pytest.raises(JetStreamApiError) as info:
        await batch.commit("atom.big", b"y")
    assert (info.value.status, info.value.err_code) == (400, TOO_LARGE)
    assert await count(jsm, atomic) == 1000
    # the message past the limit may also be an add (published without an answer): the commit says the same
    batch = js.batch()
    for _ in range(1001):
        await batch.add("atom.big", b"z")
    with pytest.raises(JetStreamApiError) as info:
        await batch.commit("atom.big", b"z")
    assert info.value.err_code == TOO_LARGE
    assert await count(jsm, atomic) == 1000


async def test_interleaved_batches_commit_independently(
    js: JetStreamClient, jsm: JetStreamManager, atomic: str
) -> None:
    first, second = js.batch(), js.batch()
    assert first.id != second.id
    for i in range(3):
        await first.add("atom.first", f"f{i}")
        await second.add("atom.second", f"s{i}")
    ack2 = await second.commit("atom.second", b"s3")
    assert (ack2.batch, ack2.count, ack2.seq) == (second.id, 4, 4)
    await first.add("atom.first", b"f3")
    ack1 = await first.commit("atom.first", b"f4")
    assert (ack1.batch, ack1.count, ack1.seq) == (first.id, 5, 9)
    assert [(seq, data) for seq, _, data in await stored(jsm, atomic)] == [
        (1, b"s0"),
        (2, b"s1"),
        (3, b"s2"),
        (4, b"s3"),
        (5, b"f0"),
        (6, b"f1"),
        (7, b"f2"),
        (8, b"f3"),
        (9, b"f4"),
    ]


async def test_message_ids_and_the_batch_headers_a_caller_gives(
    js: JetStreamClient, jsm: JetStreamManager, atomic: str
) -> None:
    batch = js.batch()
    # the batch's own headers are the batch's: a commit header given to add does not end the batch early
    await batch.add("atom.a", b"1", msg_id="id-1", headers={"Nats-Batch-Commit": "1", "Nats-Batch-Sequence": "9"})
    await batch.add("atom.a", b"2", msg_id="id-2", headers={"Nats-Batch-Id": "not-mine"})
    ack = await batch.commit("atom.a", b"3", msg_id="id-3", expect=PublishExpect(stream_name=atomic))
    assert (ack.seq, ack.count, ack.batch) == (3, 3, batch.id)
    for seq in (1, 2, 3):
        msg = await jsm.streams.get_message(atomic, seq)
        assert msg.headers is not None
        assert msg.headers.get(PubHeaders.MSG_ID.value) == f"id-{seq}"
    # the ids de-duplicate the next batch: refused whole
    batch = js.batch()
    await batch.add("atom.a", b"4", msg_id="id-4")
    with pytest.raises(JetStreamApiError) as info:
        await batch.commit("atom.a", b"5", msg_id="id-1")
    assert info.value.err_code == DUPLICATE_MSG_ID
    assert await count(jsm, atomic) == 3


async def test_concurrent_calls_keep_the_order_they_are_made_in(
    js: JetStreamClient, jsm: JetStreamManager, atomic: str
) -> None:
    # the first add awaits the server's answer: the calls made meanwhile wait for it instead of opening the batch too
    batch = js.batch()
    await asyncio.gather(*(batch.add(f"atom.{i}", f"m{i}") for i in range(5)))
    assert batch.size == 5
    ack = await batch.commit("atom.5", b"m5")
    assert (ack.seq, ack.count) == (6, 6)
    assert await stored(jsm, atomic) == [(i + 1, f"atom.{i}", f"m{i}".encode()) for i in range(6)]
    # a commit made while the first message is still unanswered comes after it
    batch = js.batch()
    _, ack = await asyncio.gather(batch.add("atom.a", b"first"), batch.commit("atom.b", b"last"))
    assert (ack.seq, ack.count) == (8, 2)
    assert [data for _, _, data in await stored(jsm, atomic)][-2:] == [b"first", b"last"]


async def test_a_first_message_that_fails_finishes_the_batch(
    nc2: NatsConnection, js: JetStreamClient, jsm: JetStreamManager, atomic: str
) -> None:
    waiting = js.batch()
    late = asyncio.ensure_future(waiting.add("nowhere.a", b"2"))
    with pytest.raises(NoRespondersError):
        await waiting.add("nowhere.a", b"1")
    with pytest.raises(InvalidOptionError, match="committed or discarded"):
        await late  # it waited for the first message's answer
    # a subscriber that never answers: the first message times out, and the batch's id is spent
    nc2.subscribe("quiet.a")
    await nc2.flush()
    batch = js.batch(timeout=0.1)
    with pytest.raises(NatsTimeoutError):
        await batch.add("quiet.a", b"1")
    with pytest.raises(InvalidOptionError):
        await batch.commit("quiet.a", b"2")
    # bad input leaves the batch open
    batch = js.batch()
    with pytest.raises(BadSubjectError):
        await batch.add("atom. a", b"1")
    with pytest.raises(TypeError):
        await batch.add("atom.a", b"1", headers=[("X", "1")])  # type: ignore[arg-type]
    assert (await batch.commit("atom.a", b"1")).count == 1


@pytest.mark.parametrize("timeout", [0, -1, True, "1"])
def test_a_bad_timeout_is_refused_at_once(js: JetStreamClient, timeout: object) -> None:
    with pytest.raises(InvalidOptionError, match="timeout"):
        js.batch(timeout=timeout)  # type: ignore[arg-type]


# -- refused batches ------------------------------------------------------------------------------------------------


async def test_a_failed_expectation_refuses_the_whole_batch(
    js: JetStreamClient, jsm: JetStreamManager, atomic: str
) -> None:
    await js.publish("atom.k", b"0")
    batch = js.batch()
    await batch.add("atom.k", b"1", expect=PublishExpect(last_subject_sequence=7))  # it is 1
    await batch.add("atom.other", b"2")
    with pytest.raises(WrongLastSequenceError) as info:
        await batch.commit("atom.other", b"3")
    assert (info.value.status, info.value.err_code) == (400, 10071)
    assert await stored(jsm, atomic) == [(1, "atom.k", b"0")]
    # checked against the stream as it was before the batch: met, the batch is stored
    batch = js.batch()
    await batch.add("atom.k", b"1", expect=PublishExpect(last_subject_sequence=1, last_sequence=1))
    ack = await batch.commit("atom.k", b"2", expect=PublishExpect(stream_name=atomic))
    assert (ack.seq, ack.count) == (3, 2)
    # a wrong stream name on any message refuses it too
    batch = js.batch()
    await batch.add("atom.k", b"3")
    with pytest.raises(JetStreamApiError) as info:
        await batch.commit("atom.k", b"4", expect=PublishExpect(stream_name="ELSEWHERE"))
    assert info.value.err_code == WRONG_STREAM
    assert await count(jsm, atomic) == 3


async def test_an_expected_last_msg_id_is_not_supported_in_a_batch(
    js: JetStreamClient, jsm: JetStreamManager, atomic: str
) -> None:
    await js.publish("atom.k", b"0", msg_id="m0")
    batch = js.batch()
    await batch.add("atom.k", b"1", expect=PublishExpect(last_msg_id="m0"))  # met, yet refused at the commit
    with pytest.raises(JetStreamApiError) as info:
        await batch.commit("atom.k", b"2")
    assert info.value.err_code == UNSUPPORTED_HEADER
    assert "Nats-Expected-Last-Msg-Id" in info.value.description
    assert await count(jsm, atomic) == 1


async def test_a_duplicate_message_id_refuses_the_whole_batch(
    js: JetStreamClient, jsm: JetStreamManager, atomic: str
) -> None:
    await js.publish("atom.k", b"0", msg_id="seen")
    # an id the stream holds is not acknowledged as a duplicate, as a single publish would be: the batch is refused
    batch = js.batch()
    await batch.add("atom.k", b"1", headers={PubHeaders.MSG_ID.value: "fresh"})
    with pytest.raises(JetStreamApiError) as info:
        await batch.commit("atom.k", b"2", headers={PubHeaders.MSG_ID.value: "seen"})
    assert info.value.err_code == DUPLICATE_MSG_ID
    # so is an id given twice in one batch
    batch = js.batch()
    await batch.add("atom.k", b"1", headers={PubHeaders.MSG_ID.value: "twice"})
    with pytest.raises(JetStreamApiError) as info:
        await batch.commit("atom.k", b"2", headers={PubHeaders.MSG_ID.value: "twice"})
    assert info.value.err_code == DUPLICATE_MSG_ID
    assert await stored(jsm, atomic) == [(1, "atom.k", b"0")]


@pytest.mark.parametrize("config", [{}, {"allow_batched": True}], ids=["plain", "allow_batched"])
async def test_a_stream_without_allow_atomic_refuses_the_first_message(
    js: JetStreamClient, jsm: JetStreamManager, config: dict[str, bool]
) -> None:
    # allow_batched (fast batches, server 2.14+) is another feature: it does not enable atomic batches
    await jsm.streams.add(name="PLAIN", subjects=["plain.>"], storage="memory", **config)
    batch = js.batch()
    with pytest.raises(JetStreamApiError) as info:
        await batch.add("plain.a", b"1")  # the first message is a request: refused at once
    assert (info.value.status, info.value.err_code) == (400, DISABLED)
    with pytest.raises(InvalidOptionError):
        await batch.add("plain.a", b"2")  # the refusal finished the batch
    with pytest.raises(InvalidOptionError):
        await batch.commit("plain.a", b"2")
    with pytest.raises(JetStreamApiError) as info:
        await js.batch().commit("plain.a", b"1")  # a batch of one message
    assert info.value.err_code == DISABLED
    assert await count(jsm, "PLAIN") == 0


async def test_a_batch_across_two_streams_is_refused(js: JetStreamClient, jsm: JetStreamManager, atomic: str) -> None:
    await jsm.streams.add(name="OTHER", subjects=["other.*"], storage="memory", allow_atomic=True)
    batch = js.batch()
    await batch.add("atom.a", b"1")
    await batch.add("other.a", b"2")  # for OTHER, a batch that starts at its second message
    with pytest.raises(JetStreamApiError) as info:
        await batch.commit("atom.a", b"3")  # ATOM sees a gap at its third message
    assert info.value.err_code == INCOMPLETE
    assert (await count(jsm, atomic), await count(jsm, "OTHER")) == (0, 0)


async def test_a_message_no_stream_takes_breaks_the_batch(
    js: JetStreamClient, jsm: JetStreamManager, atomic: str
) -> None:
    batch = js.batch()
    await batch.add("atom.a", b"1")
    await batch.add("nowhere.a", b"2")  # published without an answer: lost, so the batch has a gap
    with pytest.raises(JetStreamApiError) as info:
        await batch.commit("atom.a", b"3")
    assert info.value.err_code == INCOMPLETE
    assert await count(jsm, atomic) == 0


# -- finished batches -----------------------------------------------------------------------------------------------


async def sent_nothing(nc: NatsConnection, seen: list[str], marker: str) -> None:
    """Wait until ``marker`` (published now, after the calls checked) is seen, then check nothing came before it."""
    nc.publish(marker, b"")
    await eventually(lambda: marker in seen, what="the marker arrives")
    assert seen == [marker]


@pytest.fixture
async def watched(nc2: NatsConnection) -> list[str]:
    """The subjects of the messages published on ``atom.>`` (the marker ``atom.x.y`` included), as they arrive."""
    seen: list[str] = []
    nc2.subscribe("atom.>", callback=lambda msg: seen.append(msg.subject))
    await nc2.flush()
    return seen


async def test_a_discarded_batch_stores_nothing_and_sends_nothing_more(
    nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager, atomic: str, watched: list[str]
) -> None:
    batch = js.batch()
    await batch.add("atom.a", b"1")
    await batch.add("atom.b", b"2")
    batch.discard()
    batch.discard()  # again: nothing happens
    assert await count(jsm, atomic) == 0
    await eventually(lambda: watched == ["atom.a", "atom.b"], what="the batch's messages are seen")
    watched.clear()
    with pytest.raises(InvalidOptionError, match="committed or discarded"):
        await batch.add("atom.c", b"3")
    with pytest.raises(InvalidOptionError, match="committed or discarded"):
        await batch.commit("atom.c", b"3")
    await sent_nothing(nc, watched, "atom.x.y")
    assert await count(jsm, atomic) == 0
    # a batch discarded before its first message
    empty = js.batch()
    empty.discard()
    with pytest.raises(InvalidOptionError):
        await empty.commit("atom.c")


async def test_a_committed_batch_takes_nothing_more(
    nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager, atomic: str, watched: list[str]
) -> None:
    batch = js.batch()
    await batch.add("atom.a", b"1")
    await batch.commit("atom.a", b"2")
    await eventually(lambda: watched == ["atom.a", "atom.a"], what="the batch's messages are seen")
    watched.clear()
    with pytest.raises(InvalidOptionError):
        await batch.add("atom.a", b"3")
    with pytest.raises(InvalidOptionError):
        await batch.commit("atom.a", b"3")
    await sent_nothing(nc, watched, "atom.x.y")
    # a refused commit finishes the batch as well
    refused = js.batch()
    await refused.add("atom.a", b"1", expect=PublishExpect(last_sequence=99))
    with pytest.raises(WrongLastSequenceError):
        await refused.commit("atom.a", b"2")
    with pytest.raises(InvalidOptionError):
        await refused.commit("atom.a", b"2")
    assert await count(jsm, atomic) == 2


# -- the server's batch limits (made small) -------------------------------------------------------------------------


@pytest.fixture
def small_limits(nats_server_factory: Callable[..., NatsServer], tmp_path: Path) -> NatsServer:
    """A server whose batches hold 3 messages at most, two open per stream, abandoned after 1 s of silence."""
    limits = 'limits { batch { max_msgs: 3, max_inflight_per_stream: 2, timeout: "1s" } }'
    return nats_server_factory(jetstream=True, config=f'jetstream {{ store_dir: "{tmp_path}", {limits} }}')


async def test_the_server_limits_batch_size_and_open_batches(small_limits: NatsServer) -> None:
    async with await cnats.connect(small_limits.url) as nc:
        jsm = await nc.jetstream_manager()
        await jsm.streams.add(name=STREAM, subjects=["atom.*"], storage="memory", allow_atomic=True)
        js = nc.jetstream()
        abandoned = nc.subscribe(f"$JS.EVENT.ADVISORY.STREAM.BATCH_ABANDONED.{STREAM}")
        await nc.flush()
        # the size limit is the server's setting
        batch = js.batch()
        for _ in range(3):
            await batch.add("atom.a")
        with pytest.raises(JetStreamApiError, match="too large: 3") as info:
            await batch.commit("atom.a")
        assert info.value.err_code == TOO_LARGE
        advisory = (await abandoned.next_msg(timeout=5)).json()
        assert (advisory["batch"], advisory["reason"]) == (batch.id, "large")
        # a discarded batch stays open on the server until its timeout: it counts against the open-batch limit
        discarded = [js.batch(), js.batch()]
        for open_batch in discarded:
            await open_batch.add("atom.a")
            open_batch.discard()
        with pytest.raises(JetStreamApiError) as info:
            await js.batch().add("atom.a")
        assert info.value.err_code == TOO_MANY_INFLIGHT
        gone = {(await abandoned.next_msg(timeout=5)).json()["batch"] for _ in discarded}
        assert gone == {b.id for b in discarded}
        # the server abandoned them: room for new batches, but one silent for longer than the timeout is gone too
        late = js.batch()
        await late.add("atom.a", b"1")
        advisory = (await abandoned.next_msg(timeout=5)).json()
        assert (advisory["batch"], advisory["reason"]) == (late.id, "timeout")
        with pytest.raises(JetStreamApiError) as info:
            await late.commit("atom.a", b"2")
        assert info.value.err_code == INCOMPLETE
        assert await count(jsm, STREAM) == 0
        ack = await js.batch().commit("atom.a", b"ok")
        assert (ack.seq, ack.count) == (1, 1)
