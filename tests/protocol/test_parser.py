"""The parser on known frames, at every split point, through the BufferedProtocol calls, and on malformed input."""

from __future__ import annotations

import json
from types import ModuleType

import pytest
from helpers.protocol import make_parser, run

from cnats.errors import ProtocolError

INFO = {"server_id": "X", "version": "2.15.1", "max_payload": 1048576, "headers": True, "proto": 1}
STREAM = (
    b"INFO " + json.dumps(INFO).encode() + b"\r\n"
    b"PING\r\n"
    b"MSG foo 1 5\r\nhello\r\n"
    b"MSG foo.bar 2 _INBOX.abc 0\r\n\r\n"
    b"HMSG svc 3 22 24\r\nNATS/1.0 503\r\nA: b\r\n\r\nhi\r\n"
    b"HMSG svc 1 rep 45 45\r\nNATS/1.0 100 Idle Heartbeat\r\nK: 1\r\nK:  2 \r\n\r\n\r\n"
    b"+OK\r\n"
    b"-ERR 'Permissions Violation for Publish to \"x\"'\r\n"
    b"MSG bin 2 6\r\n\r\n\x00\xff\r\n\r\n"
    b"PONG\r\n"
)
EXPECTED = [
    ("info", INFO),
    ("ping",),
    ("msg", 1, "foo", None, b"hello", None),
    ("msg", 2, "foo.bar", "_INBOX.abc", b"", None),
    ("msg", 3, "svc", None, b"hi", (503, "", {"A": ["b"]})),
    ("msg", 1, "svc", "rep", b"", (100, "Idle Heartbeat", {"K": ["1", "2"]})),
    ("ok",),
    ("err", 'Permissions Violation for Publish to "x"'),
    ("msg", 2, "bin", None, b"\r\n\x00\xff\r\n", None),
    ("pong",),
]


def test_known_frames(core: ModuleType) -> None:
    events, error = run(core, [STREAM])
    assert error is None
    assert events == EXPECTED


def test_every_split_point(core: ModuleType) -> None:
    for cut in range(len(STREAM) + 1):
        events, error = run(core, [STREAM[:cut], STREAM[cut:]])
        assert (events, error) == (EXPECTED, None), cut


def test_byte_by_byte(core: ModuleType) -> None:
    events, error = run(core, [STREAM[i : i + 1] for i in range(len(STREAM))])
    assert (events, error) == (EXPECTED, None)


def test_stats_count_all_messages(core: ModuleType) -> None:
    parser, _ = make_parser(core, sids=())
    parser.feed(STREAM)
    assert parser.in_msgs == 5
    assert parser.in_bytes == 5 + 0 + 24 + 45 + 6
    assert parser.position == len(STREAM)


def test_unknown_sid_is_dropped(core: ModuleType) -> None:
    parser, rec = make_parser(core, sids=(1,))
    parser.feed(b"MSG a 9 3\r\nabc\r\nMSG b 1 1\r\nx\r\n")
    assert rec.events == [("msg", 1, "b", None, b"x", None)]


def test_case_insensitive_verbs_and_lenient_whitespace(core: ModuleType) -> None:
    events, error = run(core, [b"ping\r\nPong\n+ok\r\nmsg  a\t1   2\r\nxy\r\nhmsg a 1 12 12\r\nNATS/1.0\r\n\r\n\r\n"])
    assert error is None
    assert events == [
        ("ping",),
        ("pong",),
        ("ok",),
        ("msg", 1, "a", None, b"xy", None),
        ("msg", 1, "a", None, b"", (0, "", {})),
    ]


def test_long_tokens_end_at_any_whitespace_in_any_byte_of_a_word(core: ModuleType) -> None:
    """Long tokens are scanned a word at a time: a separator at every offset within a word, each kind of whitespace
    as separator, and control characters (not whitespace) inside a token, which stay part of it."""
    for length in range(1, 40):
        for sep in (b" ", b"\t", b"\x0b", b"\x0c", b"  \t "):
            subject = (b"s.\x01" + b"abcdefgh" * 5)[:length]
            reply = b"$JS.ACK.S\x1fC." + b"9" * length
            line = b"MSG" + sep + subject + sep + b"1" + sep + reply + sep + b"3\r\nxyz\r\n"
            events, error = run(core, [line])
            assert error is None, (length, sep)
            assert events == [("msg", 1, subject.decode(), reply.decode(), b"xyz", None)], (length, sep)


def test_utf8_subjects(core: ModuleType) -> None:
    subject = "café.☕".encode()
    events, error = run(core, [b"MSG " + subject + b" 1 1\r\nx\r\n"])
    assert error is None
    assert events == [("msg", 1, "café.☕", None, b"x", None)]


def test_buffered_protocol_calls(core: ModuleType) -> None:
    """Drive the parser exactly as asyncio does: get_buffer, write into it, buffer_updated."""
    parser, rec = make_parser(core)
    payload = bytes(range(256)) * 4096  # 1 MiB: larger than the initial buffer
    data = b"MSG big 1 %d\r\n%b\r\nPING\r\n" % (len(payload), payload)
    at = 0
    while at < len(data):
        view = parser.get_buffer(-1)
        assert len(view) >= 1
        n = min(len(view), 50_000, len(data) - at)
        view[:n] = data[at : at + n]
        del view
        parser.buffer_updated(n)
        at += n
    assert rec.events == [("msg", 1, "big", None, payload, None), ("ping",)]
    # once drained, a grown buffer is given back
    assert len(parser.get_buffer(-1)) <= 1024 * 1024


def test_get_buffer_offers_room_for_a_whole_frame(core: ModuleType) -> None:
    parser, rec = make_parser(core)
    parser.feed(b"MSG big 1 500000\r\n")
    view = parser.get_buffer(-1)
    assert len(view) >= 500002
    view[:500002] = b"z" * 500000 + b"\r\n"
    del view
    parser.buffer_updated(500002)
    assert rec.events[0][4] == b"z" * 500000


def test_max_payload_is_settable(core: ModuleType) -> None:
    parser, rec = make_parser(core, max_payload=100)
    with pytest.raises(ProtocolError):
        parser.feed(b"MSG a 1 %d\r\n" % (100 + 64 * 1024 * 1024 + 1))
    parser.reset()
    parser.max_payload = 1_000_000
    parser.feed(b"MSG a 1 200000\r\n" + b"x" * 200000 + b"\r\n")
    assert len(rec.events) == 1


def test_reset_forgets_partial_frames(core: ModuleType) -> None:
    parser, rec = make_parser(core)
    parser.feed(b"MSG a 1 10\r\nabc")
    parser.reset()
    parser.feed(b"PING\r\n")
    assert rec.events == [("ping",)]
    assert parser.position == 6


def test_callbacks_may_reset_the_parser(core: ModuleType) -> None:
    parser, rec = make_parser(core)
    parser.subs[1] = lambda msg: parser.reset()
    parser.feed(b"MSG a 1 1\r\nx\r\nPING\r\n")
    assert rec.events == []


def test_sink_exceptions_leave_the_parser_consistent(core: ModuleType) -> None:
    parser, rec = make_parser(core)

    def boom(msg: object) -> None:
        raise RuntimeError("callback failed")

    parser.subs[9] = boom
    with pytest.raises(RuntimeError):
        parser.feed(b"MSG a 9 1\r\nx\r\nMSG b 1 1\r\ny\r\n")
    parser.feed(b"")  # resumes where it stopped
    parser.buffer_updated(0)
    assert rec.events == [("msg", 1, "b", None, b"y", None)]


def hmsg(block: bytes) -> bytes:
    return b"HMSG a 1 %d %d\r\n%b\r\n" % (len(block), len(block), block)


MALFORMED = [
    (b"FOO bar\r\n", "stream position 0: unknown protocol verb b'FOO'"),
    (b"PING\r\nMSGX a 1 1\r\n", "stream position 6: unknown protocol verb b'MSGX'"),
    (b"\r\n", "stream position 0: empty control line"),
    (b"MSG a 1\r\n", "MSG needs 3 or 4 arguments, got 2"),
    (b"MSG a 1 b c 5\r\n", "MSG needs 3 or 4 arguments, got 5"),
    (b"HMSG a 1 5\r\n", "HMSG needs 4 or 5 arguments, got 3"),
    (b"MSG a x 5\r\n", "invalid sid b'x'"),
    (b"MSG a 1 -5\r\n", "invalid size b'-5'"),
    (b"MSG a 1 +5\r\n", "invalid size b'+5'"),
    (b"MSG a 1 5x\r\n", "invalid size b'5x'"),
    (b"MSG a 1 " + b"9" * 19 + b"\r\n", "invalid size b'9999999999999999999'"),
    (b"MSG a 1 68157441\r\n", "MSG size 68157441 exceeds the limit 68157440"),
    (b"HMSG a 1 30 20\r\n", "HMSG header size 30 exceeds total size 20"),
    (b"HMSG a 1 x 20\r\n", "invalid header size b'x'"),
    (b"MSG a 1 3\r\nabcXY", "stream position 14: missing CRLF after message payload"),
    (b"MSG a 1 3\r\nabc\n\r", "missing CRLF after message payload"),
    (hmsg(b"NATS/1.1\r\n\r\n"), "stream position 16: bad header block"),
    (hmsg(b"NATS/1.0\r\nbad\r\n\r\n"), "bad header block"),
    (hmsg(b"NATS/1.0 4040\r\n\r\n"), "bad header block"),
    (hmsg(b"NATS/1.0 503\r\n"), "bad header block"),
    (hmsg(b"NATS/1.0\r\nA: \xff\r\n\r\n"), "bad header block"),
    (hmsg(b"NATS/1.0\r\n\r\nA: b\r\n\r\n"), "bad header block"),
    (hmsg(b"NATS/1.0\r\n: b\r\n\r\n"), "bad header block"),
    (hmsg(b"NATS/1.0x\r\n\r\n"), "bad header block"),
    (b"MSG \xff\xfe 1 1\r\nx\r\n", "MSG subject is not valid UTF-8"),
    (b"INFO {not json}\r\n", "INFO is not valid JSON"),
    (b"INFO [1]\r\n", "INFO is not a JSON object"),
    (b"PING" + b"x" * 70000, "control line longer than 65536 bytes"),
    (b"INFO {" + b" " * 70000 + b"}\r\n", "control line longer than 65536 bytes"),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED, ids=[repr(d[:20]) for d, _ in MALFORMED])
def test_malformed_input_raises_protocol_error(core: ModuleType, data: bytes, message: str) -> None:
    _events, error = run(core, [data])
    assert error is not None and message in error, error
    # the parser stays failed: nothing after a bad frame is trusted
    parser, _ = make_parser(core)
    with pytest.raises(ProtocolError):
        parser.feed(data)
    with pytest.raises(ProtocolError, match="failed earlier"):
        parser.feed(b"PING\r\n")


def test_malformed_input_byte_by_byte_gives_the_same_error(core: ModuleType) -> None:
    for data, _ in MALFORMED:
        whole = run(core, [data])
        split = run(core, [data[i : i + 1] for i in range(len(data))])
        assert whole == split, data[:30]


def test_an_oversized_frame_fails_before_its_payload_arrives(core: ModuleType) -> None:
    """A hostile size is refused from the control line alone: no waiting, no allocation of that size."""
    parser, _ = make_parser(core)
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        parser.feed(b"MSG a 1 999999999999\r\n")


def test_an_endless_control_line_is_refused_without_growing(core: ModuleType) -> None:
    parser, _ = make_parser(core)
    with pytest.raises(ProtocolError, match="control line longer"):
        for _ in range(100):
            parser.feed(b"x" * 4096)
    assert parser.position == 0
