"""Both cores fed the same random byte streams, split at random points, must produce the same events and errors."""

from __future__ import annotations

import json
from typing import Any

from helpers.protocol import load_core, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnats.headers import Headers

CYTHON = load_core("cython")
PYTHON = load_core("python")

subject_token = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Cc"), blacklist_characters=".*>"),
    min_size=1,
    max_size=8,
)
subjects = st.lists(subject_token, min_size=1, max_size=4).map(".".join)
header_keys = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=":"), min_size=1, max_size=10
)
header_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=12
).map(lambda v: v.strip(" \t"))


@st.composite
def header_blocks(draw: st.DrawFn) -> tuple[bytes, tuple[int, str, dict[str, list[str]]]]:
    code = draw(st.sampled_from([0, 100, 200, 404, 408, 409, 503]))
    description = draw(st.sampled_from(["", "Idle Heartbeat", "No Messages", "Request Timeout"])) if code else ""
    h = Headers()
    h._code = code
    h._description = description
    for key, values in draw(
        st.dictionaries(header_keys, st.lists(header_values, min_size=1, max_size=3), max_size=4)
    ).items():
        h._map[key] = values
    block = h.encode() or b"NATS/1.0\r\n\r\n"
    return block, (code, description, dict(h._map))


@st.composite
def frames(draw: st.DrawFn) -> tuple[bytes, tuple[Any, ...]]:
    kind = draw(st.sampled_from(["msg", "msg", "hmsg", "ping", "pong", "ok", "err", "info"]))
    if kind in ("msg", "hmsg"):
        subject = draw(subjects)
        sid = draw(st.sampled_from([1, 2, 3, 4]))  # 4 is not subscribed: dropped
        reply = draw(st.none() | subjects)
        payload = draw(st.binary(max_size=300))
        head = b"%b %b %d " % (b"MSG" if kind == "msg" else b"HMSG", subject.encode(), sid)
        if reply is not None:
            head += reply.encode() + b" "
        if kind == "msg":
            frame = head + b"%d\r\n%b\r\n" % (len(payload), payload)
            shown = None
        else:
            block, shown = draw(header_blocks())
            frame = head + b"%d %d\r\n%b%b\r\n" % (len(block), len(block) + len(payload), block, payload)
        event = ("msg", sid, subject, reply, payload, shown) if sid != 4 else ()
        return frame, event
    if kind == "err":
        text = draw(
            st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n'"), max_size=40)
        ).strip(" \t\x0b\x0c")
        return b"-ERR '%b'\r\n" % text.encode(), ("err", text)
    if kind == "info":
        info = draw(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4))
        return b"INFO " + json.dumps(info).encode() + b"\r\n", ("info", info)
    return {"ping": b"PING\r\n", "pong": b"PONG\r\n", "ok": b"+OK\r\n"}[kind], (kind,)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, last = [], 0
    for p in points:
        chunks.append(data[last:p])
        last = p
    chunks.append(data[last:])
    return chunks


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(), min_size=1, max_size=25), st.lists(st.integers(min_value=0), max_size=12))
def test_valid_streams_give_the_same_events_in_both_cores(
    stream: list[tuple[bytes, tuple[Any, ...]]], cuts: list[int]
) -> None:
    data = b"".join(frame for frame, _ in stream)
    expected = [event for _, event in stream if event]
    chunks = split(data, cuts)
    for core in (CYTHON, PYTHON):
        assert run(core, chunks) == (expected, None)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"MSG ",
                b"HMSG ",
                b"PING",
                b"PONG",
                b"+OK",
                b"-ERR ",
                b"INFO ",
                b"\r\n",
                b"\n",
                b" ",
                b"\t",
                b"1",
                b"12",
                b"a.b",
                b"NATS/1.0",
                b"503",
                b":",
                b"{}",
                b"-",
                b"\xff",
            ]
        )
        | st.binary(max_size=8),
        max_size=30,
    ),
    st.lists(st.integers(min_value=0), max_size=8),
)
def test_random_bytes_give_the_same_outcome_in_both_cores(pieces: list[bytes], cuts: list[int]) -> None:
    data = b"".join(pieces)
    chunks = split(data, cuts)
    assert run(CYTHON, chunks) == run(PYTHON, chunks)
    # and the outcome does not depend on how the stream was cut
    assert run(CYTHON, [data]) == run(CYTHON, chunks)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=60),
    st.lists(
        st.sampled_from([b"NATS/1.0", b"\r\n", b": ", b" ", b"\t", b"503", b"A", b"\xc3\xa9", b"\xff"]), max_size=12
    ),
)
def test_header_blocks_parse_the_same_in_both_cores(noise: bytes, pieces: list[bytes]) -> None:
    for block in (noise, b"".join(pieces), b"NATS/1.0" + b"".join(pieces) + b"\r\n\r\n"):
        if not block:
            continue
        frame = b"HMSG a 1 %d %d\r\n%b\r\n" % (len(block), len(block), block)
        assert run(CYTHON, [frame]) == run(PYTHON, [frame])
