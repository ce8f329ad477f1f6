"""Unit tests of cnats.headers: Headers, Match, headers(), canonical_mime_header_key, parse_header_block."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnats.errors import BadHeaderError, InvalidOptionError
from cnats.headers import Headers, Match, canonical_mime_header_key, headers, parse_header_block

# -- construction and status -------------------------------------------------------------------------------


def test_match_values() -> None:
    assert (Match.EXACT, Match.CANONICAL_MIME, Match.IGNORE_CASE) == (0, 1, 2)


def test_empty_headers() -> None:
    h = Headers()
    assert h.code == 0
    assert h.description == ""
    assert h.status == "0"
    assert not h.has_error
    assert not h
    assert len(h) == 0
    assert h.keys() == []
    assert list(h) == []
    assert h.encode() == b""
    assert h.to_dict() == {}


def test_status_properties() -> None:
    h = Headers(503)
    assert (h.code, h.description, h.status, h.has_error) == (503, "", "503", True)
    assert h
    h = Headers(100, "Idle Heartbeat")
    assert (h.code, h.description, h.status, h.has_error) == (
        100,
        "Idle Heartbeat",
        "100 Idle Heartbeat",
        False,
    )
    assert Headers(299, "x").has_error is False
    assert Headers(300, "x").has_error is True


def test_code_and_description_are_read_only() -> None:
    h = Headers(503)
    with pytest.raises(AttributeError):
        h.code = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        h.description = "x"  # type: ignore[misc]


def test_no_extra_attributes() -> None:
    h = Headers()
    with pytest.raises(AttributeError):
        h.other = 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(("code", "description"), [(-1, ""), (1000, ""), (1.5, ""), (True, ""), ("503", "")])
def test_constructor_rejects_bad_codes(code: object, description: str) -> None:
    with pytest.raises(InvalidOptionError):
        Headers(code, description)  # type: ignore[arg-type]


def test_constructor_rejects_description_without_code() -> None:
    with pytest.raises(InvalidOptionError):
        Headers(0, "Idle Heartbeat")


def test_constructor_rejects_crlf_in_description() -> None:
    with pytest.raises(BadHeaderError):
        Headers(400, "bad\r\nX: y")
    with pytest.raises(BadHeaderError):
        Headers(400, "bad\n")


def test_constructor_strips_description() -> None:
    assert Headers(400, "  Bad Request\t").description == "Bad Request"


def test_headers_function() -> None:
    h = headers()
    assert isinstance(h, Headers)
    assert (h.code, h.description) == (0, "")
    h = headers(408, "Request Timeout")
    assert (h.code, h.description) == (408, "Request Timeout")


@pytest.mark.parametrize(("code", "description"), [(503, ""), (0, "No Responders")])
def test_headers_function_requires_both_or_neither(code: int, description: str) -> None:
    with pytest.raises(InvalidOptionError):
        headers(code, description)


# -- canonical MIME keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("content-type", "Content-Type"),
        ("CONTENT-TYPE", "Content-Type"),
        ("cOnTeNt-tYpE", "Content-Type"),
        ("nats-msg-id", "Nats-Msg-Id"),
        ("a", "A"),
        ("A", "A"),
        ("x-1a-2b", "X-1a-2b"),
        ("1abc", "1abc"),
        ("a--b", "A--B"),
        ("-a-", "-A-"),
        ("", ""),
        ("-", "-"),
        # keys with characters outside [A-Za-z0-9-] are returned unchanged
        ("foo_bar", "foo_bar"),
        ("foo bar", "foo bar"),
        ("foo.bar", "foo.bar"),
        ("foo:bar", "foo:bar"),
        ("héllo", "héllo"),
    ],
)
def test_canonical_mime_header_key(key: str, expected: str) -> None:
    assert canonical_mime_header_key(key) == expected


# -- key and value validation ------------------------------------------------------------------------------

BAD_KEYS = ["", "a b", "a:b", ":", "a\tb", "a\r", "a\n", "\x7f", "\x00", "clé", "a\x1fb", "ключ"]


@pytest.mark.parametrize("key", BAD_KEYS)
@pytest.mark.parametrize("match", list(Match))
def test_bad_keys_rejected(key: str, match: Match) -> None:
    h = Headers()
    with pytest.raises(BadHeaderError):
        h.append(key, "v", match)
    with pytest.raises(BadHeaderError):
        h.set(key, "v", match)
    assert not h


def test_all_printable_ascii_but_colon_accepted_as_key() -> None:
    h = Headers()
    for c in range(33, 127):
        if chr(c) != ":":
            h.append(chr(c), "v")
    assert len(h) == 93
    assert parse_header_block(h.encode()) == h


def test_non_str_key_rejected() -> None:
    with pytest.raises(BadHeaderError):
        Headers().append(1, "v")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["a\rb", "a\nb", "\r\n", "x\r", "\ny"])
def test_bad_values_rejected(value: str) -> None:
    h = Headers()
    with pytest.raises(BadHeaderError):
        h.append("k", value)
    h.append("k", "old")
    with pytest.raises(BadHeaderError):
        h.set("k", value)
    assert h.values("k") == ["old"]  # a rejected set changes nothing


def test_non_str_value_rejected() -> None:
    with pytest.raises(BadHeaderError):
        Headers().append("k", 1)  # type: ignore[arg-type]


def test_values_are_stripped() -> None:
    h = Headers()
    h.append("k", "  spaced\t ")
    h.set("j", "\tx y ")
    assert h.get("k") == "spaced"
    assert h.get("j") == "x y"
    h.append("e", "   ")
    assert h.values("e") == [""]


# -- EXACT -------------------------------------------------------------------------------------------------


def test_exact_mode() -> None:
    h = Headers()
    h.append("Foo", "1")
    h.append("foo", "2")
    h.append("Foo", "3")
    assert h.keys() == ["Foo", "foo"]
    assert h.get("Foo") == "1"
    assert h.last("Foo") == "3"
    assert h.values("Foo") == ["1", "3"]
    assert h.get("foo") == "2"
    assert h.get("FOO") == ""
    assert h.last("FOO") == ""
    assert h.values("FOO") == []
    assert h.has("Foo") and h.has("foo") and not h.has("FOO")
    h.set("Foo", "x")
    assert h.values("Foo") == ["x"]
    assert h.values("foo") == ["2"]
    h.delete("FOO")  # no match: no-op
    assert len(h) == 2
    h.delete("foo")
    assert h.keys() == ["Foo"]


def test_exact_is_default() -> None:
    h = Headers()
    h.append("a-b", "1")
    assert h.keys() == ["a-b"]
    assert h.get("A-B") == ""


# -- CANONICAL_MIME ----------------------------------------------------------------------------------------


def test_canonical_mime_mode() -> None:
    h = Headers()
    h.append("content-type", "text/plain", Match.CANONICAL_MIME)
    h.append("CONTENT-TYPE", "text/html", Match.CANONICAL_MIME)
    assert h.keys() == ["Content-Type"]
    assert h.values("content-type", Match.CANONICAL_MIME) == ["text/plain", "text/html"]
    assert h.get("cOntent-Type", Match.CANONICAL_MIME) == "text/plain"
    assert h.last("content-TYPE", Match.CANONICAL_MIME) == "text/html"
    assert h.has("content-type", Match.CANONICAL_MIME)
    assert not h.has("content-type")  # EXACT does not canonicalise
    assert h.get("content-type") == ""
    h.set("CONTENT-type", "x", Match.CANONICAL_MIME)
    assert h.to_dict() == {"Content-Type": ["x"]}
    h.delete("content-type", Match.CANONICAL_MIME)
    assert not h


def test_canonical_mime_only_matches_the_canonical_key() -> None:
    h = Headers()
    h.append("content-type", "lower")  # stored as given with EXACT
    assert not h.has("Content-Type", Match.CANONICAL_MIME)
    assert h.get("content-type", Match.CANONICAL_MIME) == ""
    h.append("content-type", "canon", Match.CANONICAL_MIME)
    assert h.keys() == ["content-type", "Content-Type"]
    h.delete("CONTENT-TYPE", Match.CANONICAL_MIME)
    assert h.keys() == ["content-type"]


def test_canonical_mime_with_non_canonicalisable_key() -> None:
    h = Headers()
    h.append("my_key", "v", Match.CANONICAL_MIME)
    assert h.keys() == ["my_key"]
    assert h.get("my_key", Match.CANONICAL_MIME) == "v"


# -- IGNORE_CASE -------------------------------------------------------------------------------------------


def test_ignore_case_mode() -> None:
    h = Headers()
    h.append("X-Foo", "1", Match.IGNORE_CASE)  # no match yet: stored as given
    h.append("x-foo", "2", Match.IGNORE_CASE)  # goes to the existing key
    assert h.keys() == ["X-Foo"]
    assert h.values("X-FOO", Match.IGNORE_CASE) == ["1", "2"]
    assert h.get("x-FOO", Match.IGNORE_CASE) == "1"
    assert h.last("x-foo", Match.IGNORE_CASE) == "2"
    assert h.has("x-foo", Match.IGNORE_CASE)
    assert not h.has("x-foo")
    assert not h.has("x-bar", Match.IGNORE_CASE)
    assert h.get("x-bar", Match.IGNORE_CASE) == ""
    assert h.last("x-bar", Match.IGNORE_CASE) == ""
    assert h.values("x-bar", Match.IGNORE_CASE) == []


def test_ignore_case_with_several_matching_keys() -> None:
    h = Headers()
    h.append("a", "1")
    h.append("B", "x")
    h.append("A", "2")
    h.append("A", "3")
    # get/last look at the first matching key; values gathers all of them
    assert h.get("a", Match.IGNORE_CASE) == "1"
    assert h.get("A", Match.IGNORE_CASE) == "1"
    assert h.last("A", Match.IGNORE_CASE) == "1"
    assert h.values("A", Match.IGNORE_CASE) == ["1", "2", "3"]
    h.append("A", "4", Match.IGNORE_CASE)  # appends to the first matching key
    assert h.to_dict() == {"a": ["1", "4"], "B": ["x"], "A": ["2", "3"]}
    h.set("A", "z", Match.IGNORE_CASE)  # deletes every match, then stores the key as given
    assert h.to_dict() == {"B": ["x"], "A": ["z"]}
    h.append("a", "y")
    h.delete("a", Match.IGNORE_CASE)
    assert h.to_dict() == {"B": ["x"]}


def test_ignore_case_non_ascii_keys_from_the_wire() -> None:
    h = parse_header_block("NATS/1.0\r\nÉté: 1\r\n\r\n".encode())
    assert h.get("été", Match.IGNORE_CASE) == "1"


def test_unknown_match_mode() -> None:
    h = Headers()
    h.append("a", "1")
    for call in (h.get, h.last, h.values, h.has, h.delete):
        with pytest.raises(InvalidOptionError):
            call("a", 7)  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError):
        h.append("a", "2", 7)  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError):
        h.set("a", "2", 7)  # type: ignore[arg-type]
    assert h.values("a") == ["1"]


def test_match_accepts_plain_ints() -> None:
    h = Headers()
    h.append("content-type", "v", 1)  # type: ignore[arg-type]
    assert h.get("CONTENT-TYPE", 2) == "v"  # type: ignore[arg-type]


# -- set / append / delete order ---------------------------------------------------------------------------


def test_set_replaces_all_values_and_moves_key_last() -> None:
    h = Headers()
    h.append("a", "1")
    h.append("a", "2")
    h.append("b", "3")
    h.set("a", "x")
    assert h.to_dict() == {"b": ["3"], "a": ["x"]}
    assert h.keys() == ["b", "a"]


def test_insertion_order_kept() -> None:
    h = Headers()
    for k in ["z", "a", "m", "a", "b"]:
        h.append(k, k)
    assert h.keys() == ["z", "a", "m", "b"]
    assert list(h) == ["z", "a", "m", "b"]
    assert list(h.items()) == [("z", ["z"]), ("a", ["a", "a"]), ("m", ["m"]), ("b", ["b"])]


def test_delete_absent_key_is_noop() -> None:
    h = Headers()
    for m in Match:
        h.delete("missing", m)
    assert not h


# -- container protocol ------------------------------------------------------------------------------------


def test_container_protocol() -> None:
    h = Headers()
    h.append("a", "1")
    h.append("b", "2")
    h.append("a", "3")
    assert len(h) == 2
    assert "a" in h
    assert "A" not in h
    assert 1 not in h
    assert None not in h
    assert bool(h)
    assert list(h) == ["a", "b"]


def test_bool_with_code_only() -> None:
    assert bool(Headers(503))
    assert not bool(Headers())


def test_returned_collections_are_copies() -> None:
    h = Headers()
    h.append("a", "1")
    h.keys().append("x")
    h.values("a").append("x")
    for _, values in h.items():
        values.append("x")
    h.to_dict()["a"].append("x")
    assert h.to_dict() == {"a": ["1"]}


def test_deleting_while_iterating() -> None:
    h = Headers.from_dict({"a": "1", "b": "2", "c": "3"})
    for k in h:
        h.delete(k)
    assert not h


def test_not_hashable() -> None:
    with pytest.raises(TypeError):
        hash(Headers())


def test_repr() -> None:
    h = Headers(503)
    assert repr(h) == "Headers(code=503, {})"
    h = Headers(100, "Idle Heartbeat")
    h.append("a", "1")
    assert repr(h) == "Headers(code=100, description='Idle Heartbeat', {'a': ['1']})"
    assert repr(Headers()) == "Headers({})"


# -- equality ----------------------------------------------------------------------------------------------


def test_equality() -> None:
    a = Headers.from_dict({"k": ["1", "2", "2"], "j": "x"})
    b = Headers.from_dict({"j": "x", "k": ["2", "1", "2"]})
    assert a == b
    assert not a.__ne__(b)
    assert a != Headers.from_dict({"j": "x", "k": ["1", "2"]})  # multiset: counts matter
    assert a != Headers.from_dict({"j": "x", "k": ["1", "1", "2"]})
    assert a != Headers.from_dict({"j": "x", "K": ["1", "2", "2"]})  # keys are case-sensitive
    assert a != Headers.from_dict({"k": ["1", "2", "2"]})
    assert Headers(503) == Headers(503)
    assert Headers(503) != Headers(404, "x")
    assert Headers(503) != Headers()
    # as nats.js, the description does not take part
    assert Headers(503, "No Responders") == Headers(503)


def test_equality_with_other_types() -> None:
    h = Headers()
    assert h.__eq__({}) is NotImplemented
    assert h != {}
    assert h != None  # noqa: E711
    assert h != "NATS/1.0"


# -- to_dict / from_dict -----------------------------------------------------------------------------------


def test_from_dict_and_to_dict() -> None:
    h = Headers.from_dict({"a": "1", "b": ["2", " 3 "], "c": ("4",), "empty": []})
    assert h.to_dict() == {"a": ["1"], "b": ["2", "3"], "c": ["4"]}
    assert "empty" not in h
    assert h.code == 0
    assert Headers.from_dict(h.to_dict()) == h


@pytest.mark.parametrize(
    "bad",
    [{"a b": "1"}, {"a": "x\ny"}, {"a": b"bytes"}, {"a": 1}, {"a": ["1", 2]}, {"": "x"}],
)
def test_from_dict_validates(bad: dict[str, object]) -> None:
    with pytest.raises(BadHeaderError):
        Headers.from_dict(bad)  # type: ignore[arg-type]


# -- encode ------------------------------------------------------------------------------------------------


def test_encode() -> None:
    h = Headers()
    h.append("A", "1")
    h.append("b", "x y")
    h.append("A", "2")
    assert h.encode() == b"NATS/1.0\r\nA: 1\r\nA: 2\r\nb: x y\r\n\r\n"


def test_encode_status() -> None:
    assert Headers(503).encode() == b"NATS/1.0 503\r\n\r\n"
    assert Headers(100, "Idle Heartbeat").encode() == b"NATS/1.0 100 Idle Heartbeat\r\n\r\n"
    h = Headers(408, "Request Timeout")
    h.append("k", "v")
    assert h.encode() == b"NATS/1.0 408 Request Timeout\r\nk: v\r\n\r\n"


def test_encode_utf8_and_empty_value() -> None:
    h = Headers()
    h.append("k", "héllo ✓")
    h.append("e", "")
    assert h.encode() == "NATS/1.0\r\nk: héllo ✓\r\ne: \r\n\r\n".encode()


# -- parse_header_block / decode ---------------------------------------------------------------------------


def test_parse_examples() -> None:
    h = parse_header_block(b"NATS/1.0 503\r\n\r\n")
    assert (h.code, h.description, len(h), h.status) == (503, "", 0, "503")
    assert h.has_error

    h = parse_header_block(b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 0\r\n\r\n")
    assert (h.code, h.description) == (100, "Idle Heartbeat")
    assert h.to_dict() == {"Nats-Last-Consumer": ["0"]}

    h = parse_header_block(b"NATS/1.0\r\nA: 1\r\nA: 2\r\nb:x\r\n\r\n")
    assert (h.code, h.description) == (0, "")
    assert h.to_dict() == {"A": ["1", "2"], "b": ["x"]}


def test_decode_is_parse_header_block() -> None:
    data = b"NATS/1.0 404 No Messages\r\nk: v\r\n\r\n"
    assert Headers.decode(data) == parse_header_block(data)
    assert Headers.decode(data).description == "No Messages"


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_parse_accepts_bytes_like(kind: type) -> None:
    h = parse_header_block(kind(b"NATS/1.0 409 Conflict\r\nk: v\r\n\r\n"))
    assert (h.code, h.description, h.to_dict()) == (409, "Conflict", {"k": ["v"]})


def test_parse_non_contiguous_memoryview() -> None:
    raw = b"NATS/1.0\r\nk: v\r\n\r\n"
    spread = bytes(b for c in raw for b in (c, 0))
    h = parse_header_block(memoryview(spread)[::2])
    assert h.to_dict() == {"k": ["v"]}


@pytest.mark.parametrize(
    ("data", "code", "description"),
    [
        (b"NATS/1.0\r\n\r\n", 0, ""),
        (b"NATS/1.0 \r\n\r\n", 0, ""),
        (b"NATS/1.0 \t \r\n\r\n", 0, ""),
        (b"NATS/1.0\t503\r\n\r\n", 503, ""),
        (b"NATS/1.0  503  \r\n\r\n", 503, ""),
        (b"NATS/1.0 503\tNo Responders\r\n\r\n", 503, "No Responders"),
        (b"NATS/1.0 503 \t No  Responders \t\r\n\r\n", 503, "No  Responders"),
        (b"NATS/1.0 1\r\n\r\n", 1, ""),
        (b"NATS/1.0 007 Bond\r\n\r\n", 7, "Bond"),
        (b"NATS/1.0 000\r\n\r\n", 0, ""),
        (b"NATS/1.0 999 x\r\n\r\n", 999, "x"),
        (b"NATS/1.0 400 a:b c\r\n\r\n", 400, "a:b c"),
        ("NATS/1.0 400 résumé\r\n\r\n".encode(), 400, "résumé"),
    ],
)
def test_parse_status_lines(data: bytes, code: int, description: str) -> None:
    h = parse_header_block(data)
    assert (h.code, h.description) == (code, description)
    assert len(h) == 0


def test_parse_key_value_rules() -> None:
    h = parse_header_block(
        b"NATS/1.0\r\n"
        b" \tSpaced-Key \t:  \tvalue with  inner  spaces\t \r\n"
        b"empty:\r\n"
        b"colons: a:b:c\r\n"
        b"lower-case: v\r\n"
        b"key with space: v\r\n"
        b"bare: a\nb\r\n"
        b"cr: a\rb\r\n"
        b"\r\n"
    )
    assert h.to_dict() == {
        "Spaced-Key": ["value with  inner  spaces"],
        "empty": [""],
        "colons": ["a:b:c"],
        "lower-case": ["v"],
        "key with space": ["v"],
        "bare": ["a\nb"],
        "cr": ["a\rb"],
    }


def test_parse_cr_before_crlf_belongs_to_the_value() -> None:
    h = parse_header_block(b"NATS/1.0\r\nk: v\r\r\n\r\n")
    assert h.values("k") == ["v\r"]


def test_parse_keeps_keys_as_received_and_accumulates() -> None:
    h = parse_header_block(b"NATS/1.0\r\na: 1\r\nA: 2\r\na: 3\r\n\r\n")
    assert h.to_dict() == {"a": ["1", "3"], "A": ["2"]}
    assert h.keys() == ["a", "A"]


def test_parse_utf8() -> None:
    h = parse_header_block("NATS/1.0\r\nclé: välue ✓\r\n\r\n".encode())
    assert h.to_dict() == {"clé": ["välue ✓"]}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n\r\n",
        b"NATS/1.0",
        b"NATS/1.0\r\n",
        b"NATS/1.0\r\n\r",
        b"NATS/1.0\r\nk: v\r\n",
        b"NATS/1.0\r\nk: v\r\n\r",
        b"NATS/1.0\n\n",
        b"NATS/1.0\r\nk: v\n\n",
        b"NATS/1.1\r\n\r\n",
        b"nats/1.0\r\n\r\n",
        b" NATS/1.0\r\n\r\n",
        b"HTTP/1.0\r\n\r\n",
        # status line
        b"NATS/1.0x\r\n\r\n",
        b"NATS/1.00\r\n\r\n",
        b"NATS/1.0503\r\n\r\n",
        b"NATS/1.0 abc\r\n\r\n",
        b"NATS/1.0 No Responders\r\n\r\n",
        b"NATS/1.0 1000\r\n\r\n",
        b"NATS/1.0 5O3\r\n\r\n",
        b"NATS/1.0 -1\r\n\r\n",
        b"NATS/1.0 +1\r\n\r\n",
        b"NATS/1.0 50.\r\n\r\n",
        b"NATS/1.0 503x\r\n\r\n",
        b"NATS/1.0 503:\r\n\r\n",
        "NATS/1.0 ٥٠٣\r\n\r\n".encode(),  # non-ASCII digits
        "NATS/1.0 ²\r\n\r\n".encode(),
        b"NATS/1.0 503\n\r\n\r\n",
        # header lines
        b"NATS/1.0\r\nno colon\r\n\r\n",
        b"NATS/1.0\r\n: v\r\n\r\n",
        b"NATS/1.0\r\n \t: v\r\n\r\n",
        b"NATS/1.0\r\n:\r\n\r\n",
        b"NATS/1.0\r\n \r\n\r\n",
        # data after the empty line
        b"NATS/1.0\r\n\r\n\r\n",
        b"NATS/1.0\r\n\r\nk: v\r\n\r\n",
        b"NATS/1.0\r\nk: v\r\n\r\nj: w\r\n\r\n",
        b"NATS/1.0\r\nk: v\r\n\r\n\r\n",
        # UTF-8
        b"NATS/1.0\r\nk: \xff\r\n\r\n",
        b"NATS/1.0\r\n\xc3: v\r\n\r\n",
        b"NATS/1.0 503 \xe2\x82\r\n\r\n",
    ],
)
def test_parse_malformed(data: bytes) -> None:
    with pytest.raises(BadHeaderError):
        parse_header_block(data)
    with pytest.raises(BadHeaderError):
        Headers.decode(data)


def test_parse_error_messages_say_what_is_wrong() -> None:
    cases = {
        b"HTTP/1.0\r\n\r\n": "NATS/1.0",
        b"NATS/1.0\r\n": "end",
        b"NATS/1.0 abc\r\n\r\n": "status",
        b"NATS/1.0\r\nnocolon\r\n\r\n": "':'",
        b"NATS/1.0\r\n: v\r\n\r\n": "empty key",
        b"NATS/1.0\r\n\r\nk: v\r\n\r\n": "after",
        b"NATS/1.0\r\nk: \xff\r\n\r\n": "UTF-8",
    }
    for data, fragment in cases.items():
        with pytest.raises(BadHeaderError, match=fragment):
            parse_header_block(data)


# -- Headers built the way the compiled core builds them ---------------------------------------------------


def _raw(code: int, description: str, hmap: dict[str, list[str]]) -> Headers:
    h = Headers.__new__(Headers)
    h._code = code
    h._description = description
    h._map = hmap
    return h


def test_headers_built_with_new_behave_normally() -> None:
    h = _raw(408, "Request Timeout", {"Nats-Pending-Messages": ["5"], "a": ["1", "2"]})
    assert (h.code, h.description, h.status, h.has_error) == (
        408,
        "Request Timeout",
        "408 Request Timeout",
        True,
    )
    assert h.get("a") == "1" and h.last("a") == "2" and h.values("a") == ["1", "2"]
    assert h.get("nats-pending-messages", Match.CANONICAL_MIME) == "5"
    assert h.get("NATS-PENDING-MESSAGES", Match.IGNORE_CASE) == "5"
    assert h.has("a") and "a" in h and len(h) == 2 and bool(h)
    assert h.keys() == ["Nats-Pending-Messages", "a"]
    assert list(h) == h.keys()
    assert dict(h.items()) == h.to_dict()
    assert h == Headers.decode(h.encode())
    assert repr(h).startswith("Headers(code=408")
    h.append("a", "3")
    h.set("b", "x", Match.IGNORE_CASE)
    h.delete("Nats-Pending-Messages")
    assert h.to_dict() == {"a": ["1", "2", "3"], "b": ["x"]}
    assert h.encode() == b"NATS/1.0 408 Request Timeout\r\na: 1\r\na: 2\r\na: 3\r\nb: x\r\n\r\n"

    empty = _raw(0, "", {})
    assert not empty and empty.encode() == b"" and empty == Headers()


def test_parse_result_has_exactly_the_three_slots() -> None:
    h = parse_header_block(b"NATS/1.0 100 Idle Heartbeat\r\nA: 1\r\n\r\n")
    assert type(h) is Headers
    assert (h._code, h._description, h._map) == (100, "Idle Heartbeat", {"A": ["1"]})


# -- property-based round trips ----------------------------------------------------------------------------

_key_chars = st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":")
keys = st.text(_key_chars, min_size=1, max_size=20)
# values: anything without CR/LF; surrounding whitespace is stripped on append
values = st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]), max_size=30)
_desc_chars = st.characters(exclude_characters="\r\n", exclude_categories=["Cs"])


@st.composite
def statuses(draw: st.DrawFn) -> tuple[int, str]:
    code = draw(st.integers(min_value=0, max_value=999))
    if code == 0:
        return 0, ""
    return code, draw(st.text(_desc_chars, max_size=30))


@given(status=statuses(), pairs=st.lists(st.tuples(keys, values), max_size=12))
def test_encode_parse_round_trip(status: tuple[int, str], pairs: list[tuple[str, str]]) -> None:
    h = Headers(*status)
    for k, v in pairs:
        h.append(k, v)
    data = h.encode()
    if not pairs and not status[0]:
        assert data == b""
        return
    back = parse_header_block(data)
    assert back == h
    # stronger than __eq__: same description, same key order, same value order
    assert (back.code, back.description, back.to_dict()) == (h.code, h.description, h.to_dict())
    assert list(back.to_dict()) == h.keys()
    assert back.encode() == data


@given(
    status=statuses(),
    pairs=st.lists(st.tuples(keys, values), max_size=12),
    match=st.sampled_from(list(Match)),
)
def test_round_trip_any_match_mode(status: tuple[int, str], pairs: list[tuple[str, str]], match: Match) -> None:
    h = Headers(*status)
    for k, v in pairs:
        h.append(k, v, match)
    for k, _ in pairs:
        assert h.has(k, match)
    if h:
        assert parse_header_block(h.encode()).to_dict() == h.to_dict()


@given(st.binary(max_size=80))
def test_parse_never_fails_with_another_error(data: bytes) -> None:
    try:
        h = parse_header_block(b"NATS/1.0" + data)
    except BadHeaderError:
        return
    assert isinstance(h, Headers)
    for vals in h.to_dict().values():
        assert vals


@given(st.text(st.characters(categories=[], include_characters="Ab-z1_ "), max_size=12))
def test_canonical_is_idempotent(key: str) -> None:
    once = canonical_mime_header_key(key)
    assert canonical_mime_header_key(once) == once
    assert once.lower() == key.lower()
