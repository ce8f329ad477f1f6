"""The outbound encoder of both cores: exact frames, validation before anything is written, limits, take()."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from helpers.protocol import load_core, make_parser
from hypothesis import given, settings
from hypothesis import strategies as st

from cnats.errors import BadPayloadError, BadSubjectError, MaxPayloadExceededError, OutboundBufferLimitError
from cnats.headers import Headers


def test_frames(core: ModuleType) -> None:
    wb = core.WriteBuffer()
    wb.connect({"verbose": False, "name": "x"})
    wb.publish("a.b", b"xyz")
    wb.publish("a", "hé", reply="r.1")
    wb.publish("h", b"data", headers=Headers.from_dict({"K": ["v1", "v2"], "Z": "1"}))
    wb.publish("h", bytearray(b"d"), reply="r", headers=Headers(503, ""))
    wb.publish("e", memoryview(b"abcdef")[1:3], headers=Headers())  # empty headers: plain PUB
    wb.subscribe("s.>", 7)
    wb.subscribe("s.*", 8, queue="workers")
    wb.unsubscribe(7)
    wb.unsubscribe(8, 10)
    wb.ping()
    wb.pong()
    wb.write_raw(b"PING\r\n")
    assert wb.pending == len(wb)
    assert wb.take() == (
        b'CONNECT {"verbose":false,"name":"x"}\r\n'
        b"PUB a.b 3\r\nxyz\r\n"
        b"PUB a r.1 3\r\nh\xc3\xa9\r\n"
        b"HPUB h 32 36\r\nNATS/1.0\r\nK: v1\r\nK: v2\r\nZ: 1\r\n\r\ndata\r\n"
        b"HPUB h r 16 17\r\nNATS/1.0 503\r\n\r\nd\r\n"
        b"PUB e 2\r\nbc\r\n"
        b"SUB s.> 7\r\nSUB s.* workers 8\r\nUNSUB 7\r\nUNSUB 8 10\r\nPING\r\nPONG\r\nPING\r\n"
    )
    assert wb.pending == 0
    assert wb.take() == b""


def test_stats(core: ModuleType) -> None:
    wb = core.WriteBuffer()
    wb.publish("a", b"12345")
    wb.publish("a", b"", headers=Headers.from_dict({"A": "b"}))
    wb.subscribe("x", 1)
    assert wb.out_msgs == 2
    assert wb.out_bytes == 5 + len(b"NATS/1.0\r\nA: b\r\n\r\n")


def test_whitespace_anywhere_in_a_long_subject_is_refused(core: ModuleType) -> None:
    """Subjects are checked eight bytes at a time: whitespace at every offset of a word is found, and control
    characters that are not whitespace pass, as a byte-by-byte check would let them."""
    wb = core.WriteBuffer()
    for length in range(1, 30):
        for at in range(length):
            for space in " \t\n\x0b\x0c\r":
                subject = "a" * at + space + "é" * (length - at - 1)
                with pytest.raises(BadSubjectError, match="whitespace"):
                    wb.publish(subject, b"")
                with pytest.raises(BadSubjectError, match="reply subject cannot contain whitespace"):
                    wb.publish("ok", b"", reply=subject)
        assert wb.pending == 0
        control = "a.\x01\x1f\x7f" + "b" * length
        wb.publish(control, b"", reply=control)
        assert bytes(wb.take()) == f"PUB {control} {control} 0\r\n\r\n".encode()


@pytest.mark.parametrize(
    ("subject", "reply", "message"),
    [
        ("", None, "subject cannot be empty"),
        ("a b", None, "subject cannot contain whitespace"),
        ("a\tb", None, "whitespace"),
        ("a\r\nPUB x 1", None, "whitespace"),
        (b"bytes", None, "subject must be a str, not bytes"),
        (None, None, "subject must be a str, not NoneType"),
        ("ok", "bad reply", "reply subject cannot contain whitespace"),
        ("ok", 5, "reply subject must be a str, not int"),
        ("\ud800", None, "subject is not valid UTF-8"),
    ],
)
def test_bad_subjects_write_nothing(core: ModuleType, subject: Any, reply: Any, message: str) -> None:
    wb = core.WriteBuffer()
    wb.publish("before", b"1")
    before = wb.pending
    with pytest.raises(BadSubjectError, match=message):
        wb.publish(subject, b"x", reply=reply)
    with pytest.raises(BadSubjectError):
        wb.subscribe(subject if reply is None else "a b", 1)
    assert wb.pending == before
    assert wb.out_msgs == 1


@pytest.mark.parametrize("payload", [None, 5, 1.5, ["x"], {"a": 1}, memoryview(b"abcdef")[::2], "\udc80"])
def test_bad_payloads_write_nothing(core: ModuleType, payload: Any) -> None:
    wb = core.WriteBuffer()
    with pytest.raises(BadPayloadError):
        wb.publish("a", payload)
    assert wb.pending == 0


def test_queue_group_validated(core: ModuleType) -> None:
    wb = core.WriteBuffer()
    with pytest.raises(BadSubjectError, match="queue group cannot contain whitespace"):
        wb.subscribe("a", 1, queue="a b")
    assert wb.pending == 0


def test_max_payload_counts_headers_and_writes_nothing(core: ModuleType) -> None:
    wb = core.WriteBuffer(max_payload=20)
    wb.publish("a", b"x" * 20)
    before = wb.pending
    with pytest.raises(MaxPayloadExceededError, match="message size 21 exceeds max_payload 20"):
        wb.publish("a", b"x" * 21)
    with pytest.raises(MaxPayloadExceededError):
        wb.publish("a", b"x" * 5, headers=Headers.from_dict({"Key": "value"}))
    assert wb.pending == before
    wb.max_payload = 0  # unknown / unlimited
    wb.publish("a", b"x" * 1000)


def test_outbound_limit_is_exact_and_keeps_earlier_frames(core: ModuleType) -> None:
    frame = b"PUB a 3\r\nxyz\r\n"
    wb = core.WriteBuffer(limit=3 * len(frame))
    for _ in range(3):
        wb.publish("a", b"xyz")
    with pytest.raises(OutboundBufferLimitError):
        wb.publish("a", b"xyz")
    wb.subscribe("control", 1)  # control frames are never refused
    assert wb.take() == frame * 3 + b"SUB control 1\r\n"
    wb.publish("a", b"xyz")
    assert wb.out_msgs == 4


def test_take_hands_over_large_buffers(core: ModuleType) -> None:
    wb = core.WriteBuffer()
    wb.publish("a", b"x" * 100)
    small = wb.take()
    assert type(small) is bytes
    wb.publish("a", b"y" * 100_000)
    big = wb.take()
    assert isinstance(big, (bytes, bytearray))
    assert bytes(big) == b"PUB a 100000\r\n" + b"y" * 100_000 + b"\r\n"
    wb.publish("a", b"z")  # the handed-over buffer is not touched again
    assert bytes(big).endswith(b"y\r\n")
    assert wb.take() == b"PUB a 1\r\nz\r\n"


def test_publish_returns_the_pending_size(core: ModuleType) -> None:
    wb = core.WriteBuffer()
    assert wb.publish("a", b"xyz") == len(b"PUB a 3\r\nxyz\r\n") == wb.pending
    wb.clear()
    assert wb.pending == 0


def test_many_frames_grow_the_buffer(core: ModuleType) -> None:
    wb = core.WriteBuffer()
    for i in range(20_000):
        wb.publish("grow", b"%d" % i)
    data = bytes(wb.take())
    assert data.count(b"PUB grow ") == 20_000
    assert data.endswith(b"PUB grow 5\r\n19999\r\n")


CYTHON = load_core("cython")
PYTHON = load_core("python")
header_maps = st.dictionaries(
    st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=":"), min_size=1, max_size=8
    ),
    st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=10).map(
            lambda v: v.strip(" \t")
        ),
        min_size=1,
        max_size=3,
    ),
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=12),
    st.none() | st.text(max_size=8),
    st.binary(max_size=200) | st.text(max_size=50),
    st.none() | header_maps,
    st.sampled_from([0, 0, 100]),
)
def test_both_cores_encode_the_same_and_round_trip(
    subject: str, reply: str | None, payload: bytes | str, hmap: dict[str, list[str]] | None, code: int
) -> None:
    outcomes = []
    for core in (CYTHON, PYTHON):
        wb = core.WriteBuffer(max_payload=150)
        headers = None
        if hmap is not None:
            headers = Headers.from_dict(hmap)
            headers._code = code
        try:
            wb.publish(subject, payload, reply=reply, headers=headers)
        except Exception as exc:  # noqa: BLE001 - compared between the cores
            outcomes.append((type(exc), str(exc), wb.pending))
        else:
            outcomes.append((None, bytes(wb.take()), wb.out_bytes))
    assert outcomes[0] == outcomes[1]
    if outcomes[0][0] is None:
        # what we encode, the parser reads back: turn the PUB into the MSG the server would deliver
        frame = outcomes[0][1]
        verb, rest = frame.split(b" ", 1)
        subj, rest = rest.split(b" ", 1)
        delivered = b"%s %s 1 %s" % (b"MSG" if verb == b"PUB" else b"HMSG", subj, rest)
        for core in (CYTHON, PYTHON):
            parser, rec = make_parser(core)
            parser.feed(delivered)
            (event,) = rec.events
            data = payload.encode() if isinstance(payload, str) else payload
            assert event[2:5] == (subject, reply or None, data)
            if event[5] is not None:
                assert event[5] == (code, "", Headers.from_dict(hmap or {}).to_dict())
