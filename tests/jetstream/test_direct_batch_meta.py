"""Where a batched direct get stands, as the server says on each answer: ``StoredMsg.num_pending`` (matching messages
that follow in the stream, ``Nats-Num-Pending``) and ``StoredMsg.last_sequence`` (the previous answer's sequence in
the batch, 0 first, ``Nats-Last-Sequence``), checked against what the stream holds: batches from a sequence, on a
subject (``next_by_subj``) and of last messages (``multi_last``); None on single gets."""

from __future__ import annotations

import pytest

from cnats import NatsConnection
from cnats.jetstream import JetStreamManager, StoredMsg

# seq: 1 m.a, 2 m.b, 3 m.a, 4 m.c, 5 m.b, 6 m.a, 7 m.c, 8 m.a; then 5 is deleted
SUBJECTS = ["m.a", "m.b", "m.a", "m.c", "m.b", "m.a", "m.c", "m.a"]
DELETED = 5


@pytest.fixture
async def jsm(nc: NatsConnection) -> JetStreamManager:
    manager = await nc.jetstream_manager()
    await manager.streams.add(name="META", subjects=["m.>"], storage="memory", allow_direct=True)
    js = nc.jetstream()
    for i, subject in enumerate(SUBJECTS, start=1):
        # one message with headers of its own: the server adds its own after them
        await js.publish(subject, f"v{i}", headers={"X-Own": "yes"} if i == 3 else None)
    assert await manager.streams.delete_message("META", DELETED)
    return manager


async def stored(jsm: JetStreamManager) -> dict[int, str]:
    """What the stream holds now, read back one message at a time: sequence -> subject."""
    info = await jsm.streams.info("META")
    held: dict[int, str] = {}
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        if seq == DELETED:
            continue
        held[seq] = (await jsm.streams.get_message("META", seq)).subject
    assert len(held) == info.state.messages
    return held


def expected_pending(held: dict[int, str], after: int, subjects: set[str] | None = None) -> int:
    """Messages of the stream after sequence ``after`` (on ``subjects`` if given)."""
    return sum(1 for seq, subj in held.items() if seq > after and (subjects is None or subj in subjects))


def check_chain(batch: list[StoredMsg]) -> None:
    """Each answer names the one before it in the batch; the first names 0."""
    assert [m.last_sequence for m in batch] == [0] + [m.seq for m in batch[:-1]]


async def test_batch_from_a_sequence(jsm: JetStreamManager) -> None:
    held = await stored(jsm)
    batch = [m async for m in await jsm.direct.get_batch("META", batch=4, seq=3)]
    assert [m.seq for m in batch] == [3, 4, 6, 7]  # 5 was deleted
    assert [m.num_pending for m in batch] == [expected_pending(held, m.seq) for m in batch] == [4, 3, 2, 1]
    check_chain(batch)
    # the message's own headers are kept, the batch's are not headers of the message
    assert batch[0].headers is not None and dict(batch[0].headers.items()) == {"X-Own": ["yes"]}
    assert batch[1].headers is None
    # to the end of the stream: the last answer has nothing pending
    rest = [m async for m in await jsm.direct.get_batch("META", batch=10, seq=7)]
    assert [(m.seq, m.num_pending, m.last_sequence) for m in rest] == [(7, 1, 0), (8, 0, 7)]


async def test_batch_on_a_subject(jsm: JetStreamManager) -> None:
    held = await stored(jsm)
    batch = [m async for m in await jsm.direct.get_batch("META", batch=2, next_by_subj="m.a")]
    assert [m.seq for m in batch] == [1, 3]
    assert [m.num_pending for m in batch] == [expected_pending(held, m.seq, {"m.a"}) for m in batch] == [3, 2]
    check_chain(batch)
    # from a later sequence, a wildcard subject
    later = [m async for m in await jsm.direct.get_batch("META", batch=10, seq=4, next_by_subj="m.>")]
    assert [m.seq for m in later] == [4, 6, 7, 8]
    assert [m.num_pending for m in later] == [expected_pending(held, m.seq) for m in later] == [3, 2, 1, 0]
    check_chain(later)


async def test_multi_last(jsm: JetStreamManager) -> None:
    held = await stored(jsm)
    lasts = {subj: max(seq for seq, s in held.items() if s == subj) for subj in set(held.values())}
    assert lasts == {"m.a": 8, "m.b": 2, "m.c": 7}  # m.b's last is 2: its later message was deleted
    batch = [m async for m in await jsm.direct.get_batch("META", multi_last=["m.a", "m.b", "m.c"])]
    # in stream order; pending counts the last messages still to come in this answer
    assert [(m.subject, m.seq) for m in batch] == sorted(((s, q) for s, q in lasts.items()), key=lambda p: p[1])
    assert [m.num_pending for m in batch] == [2, 1, 0]
    check_chain(batch)
    # a batch limit cuts the answer: what is pending says how many more a next request would get
    first_two = [m async for m in await jsm.direct.get_batch("META", multi_last=["m.>"], batch=2)]
    assert [(m.seq, m.num_pending, m.last_sequence) for m in first_two] == [(2, 2, 0), (7, 1, 2)]
    nxt = [m async for m in await jsm.direct.get_batch("META", multi_last=["m.>"], batch=2, seq=first_two[-1].seq + 1)]
    assert [(m.seq, m.num_pending, m.last_sequence) for m in nxt] == [(8, 0, 0)]


async def test_single_gets_carry_no_batch_metadata(jsm: JetStreamManager) -> None:
    single = [
        await jsm.direct.get_message("META", seq=3),
        await jsm.direct.get_message("META", last_by_subj="m.a"),
        await jsm.direct.get_message("META", next_by_subj="m.c", seq=1),
        await jsm.streams.get_message("META", 4),
        await jsm.streams.get_message("META", last_by_subj="m.b"),
    ]
    assert [m.seq for m in single] == [3, 8, 4, 4, 2]
    assert all(m.num_pending is None and m.last_sequence is None for m in single)


def test_stored_msg_stays_slotted_and_read_only() -> None:
    msg = StoredMsg("m.a", 1, b"x", None, "2024-01-01T00:00:00Z", "META", num_pending=3, last_sequence=0)
    assert (msg.num_pending, msg.last_sequence) == (3, 0)
    assert not hasattr(msg, "__dict__")
    with pytest.raises(AttributeError):
        msg.num_pending = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        msg.extra = 1  # type: ignore[attr-defined]
    plain = StoredMsg("m.a", 1, b"x", None, "2024-01-01T00:00:00Z")
    assert (plain.num_pending, plain.last_sequence) == (None, None)
