"""PubAckReader: what a pipelined publish's acknowledgement becomes, in both cores. The compiled one reads the usual
answer itself; whatever it reads must equal what the Python parse (``parse_pub_ack``, the twin's only path) makes of
the same answer, errors included."""

from __future__ import annotations

import asyncio
import dataclasses
from types import ModuleType
from typing import Any

import pytest
from helpers.protocol import load_core, publisher
from hypothesis import given, settings
from hypothesis import strategies as st

from cnats.errors import NatsTimeoutError, NoRespondersError
from cnats.headers import Headers
from cnats.jetstream.api import PubAck
from cnats.jetstream.client import parse_pub_ack

CYTHON = load_core("cython")
PYTHON = load_core("python")
DEFAULTS = {f.name: f.default for f in dataclasses.fields(PubAck) if f.name not in ("stream", "seq")}


def answer(core: ModuleType, data: bytes, headers: Headers | None = None) -> Any:
    msg = core.MsgBase()
    msg._init("_INBOX.x.1", data, None, headers, 1, None)
    return msg


def reader(core: ModuleType, calls: list[bytes] | None = None) -> Any:
    def slow(msg: Any, subject: str) -> PubAck:
        if calls is not None:
            calls.append(msg.data)
        return parse_pub_ack(msg, subject)

    return core.PubAckReader(PubAck, DEFAULTS, slow)


def outcome(read: Any, msg: Any) -> Any:
    try:
        return read(msg, "orders.new")
    except Exception as exc:  # noqa: BLE001 - the error is the outcome to compare
        return (type(exc), str(exc))


def test_the_usual_answer_is_read_without_the_slow_path_in_the_compiled_core() -> None:
    calls: list[bytes] = []
    read = reader(CYTHON, calls)
    first = read(answer(CYTHON, b'{"stream":"ORDERS","seq":41}'), "orders.new")
    second = read(answer(CYTHON, b'{"stream":"ORDERS","seq":42}'), "orders.new")  # the kept head
    other = read(answer(CYTHON, b'{"stream":"\xc5\x99ADY","seq":7}'), "orders.new")  # a new stream, not ASCII
    assert (first, second) == (PubAck(stream="ORDERS", seq=41), PubAck(stream="ORDERS", seq=42))
    assert other == PubAck(stream="řADY", seq=7)
    assert type(first) is PubAck and dataclasses.asdict(first) == {
        "stream": "ORDERS",
        "seq": 41,
        "duplicate": False,
        "domain": None,
        "val": None,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.seq = 1  # type: ignore[misc]
    assert calls == []


@pytest.mark.parametrize(
    "data",
    [
        b'{"stream":"ORDERS","seq":41,"duplicate":true}',
        b'{"stream":"ORDERS","domain":"hub","seq":41}',
        b'{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"ORDERS","seq":0}',
        b'{"stream":"OR\\"DERS","seq":41}',
        b'{"stream":"","seq":41}',
        b'{"stream":"ORDERS","seq":-1}',
        b'{"stream":"ORDERS","seq":1234567890123456789}',
        b'{"stream":"ORDERS","seq":}',
        b"not json",
        b"",
    ],
)
@pytest.mark.parametrize("core", [CYTHON, PYTHON], ids=["cython", "python"])
def test_every_other_answer_goes_to_the_slow_path(core: ModuleType, data: bytes) -> None:
    calls: list[bytes] = []
    read = reader(core, calls)
    assert outcome(read, answer(core, data)) == outcome(parse_pub_ack, answer(core, data))
    assert calls == [data]


@pytest.mark.parametrize("core", [CYTHON, PYTHON], ids=["cython", "python"])
def test_an_answer_with_headers_goes_to_the_slow_path(core: ModuleType) -> None:
    calls: list[bytes] = []
    read = reader(core, calls)
    msg = answer(core, b"", Headers(503, ""))
    assert outcome(read, msg) == (NoRespondersError, "no responders for 'orders.new'")
    assert calls == [b""]


@pytest.mark.parametrize("core", [CYTHON, PYTHON], ids=["cython", "python"])
async def test_a_pipelined_publish_resolves_with_the_read_ack(core: ModuleType) -> None:
    loop = asyncio.get_running_loop()
    mux = core.ReplyMux(loop, "_INBOX.x.", NatsTimeoutError, NoRespondersError)
    window = core.AckWindow(loop, 10)
    future = mux.request(publisher(core, loop), "orders.new", b"1", None, 1.0, window, reader(core))
    mux(answer(core, b'{"stream":"ORDERS","seq":9}'))
    assert await future == PubAck(stream="ORDERS", seq=9) and window.pending == 0


names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
answers = st.one_of(
    st.builds(
        lambda name, seq, tail: b'{"stream":"' + name.encode() + b'","seq":' + seq.encode() + tail,
        names,
        st.integers(0, 10**19).map(str) | st.sampled_from(["", "-1", "1a", "01", " 1"]),
        st.sampled_from([b"}", b"", b',"duplicate":true}', b"}}", b" }"]),
    ),
    st.binary(max_size=30),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(answers, min_size=1, max_size=4))
def test_both_cores_make_what_the_python_parse_makes(datas: list[bytes]) -> None:
    """Runs of answers (so that the kept head of one meets the next) read the same in both cores as in Python."""
    compiled, twin = reader(CYTHON), reader(PYTHON)
    for data in datas:
        expected = outcome(parse_pub_ack, answer(PYTHON, data))
        assert outcome(compiled, answer(CYTHON, data)) == expected
        assert outcome(twin, answer(PYTHON, data)) == expected
