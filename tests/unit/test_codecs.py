"""Unit tests of cnats.codecs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnats.codecs import Codec, JSONCodec, StringCodec
from cnats.errors import BadJsonError, BadPayloadError


def test_string_codec_round_trip() -> None:
    sc = StringCodec()
    assert sc.encode("héllo ✓") == "héllo ✓".encode()
    assert sc.decode("héllo ✓".encode()) == "héllo ✓"
    assert sc.encode("") == b""
    assert sc.decode(b"") == ""


def test_string_codec_decode_replaces_invalid_utf8() -> None:
    assert StringCodec().decode(b"a\xffb") == "a\ufffdb"


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_string_codec_decodes_bytes_like(kind: type) -> None:
    assert StringCodec().decode(kind(b"abc")) == "abc"


def test_string_codec_rejects_non_str() -> None:
    with pytest.raises(BadPayloadError):
        StringCodec().encode(b"bytes")  # type: ignore[arg-type]


@given(st.text())
def test_string_codec_property(text: str) -> None:
    sc = StringCodec()
    try:
        data = sc.encode(text)
    except UnicodeEncodeError:  # lone surrogates cannot be UTF-8
        return
    assert sc.decode(data) == text


def test_json_codec_round_trip() -> None:
    jc = JSONCodec()
    value = {"a": [1, 2.5, None, True], "b": {"c": "é"}, "d": ""}
    data = jc.encode(value)
    assert isinstance(data, bytes)
    assert jc.decode(data) == value


def test_json_codec_encoding_is_compact_utf8() -> None:
    assert JSONCodec().encode({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'.encode()
    assert JSONCodec().encode("x") == b'"x"'
    assert JSONCodec().encode(None) == b"null"


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_json_codec_decodes_bytes_like(kind: type) -> None:
    assert JSONCodec().decode(kind(b'{"a":1}')) == {"a": 1}


def test_json_codec_object_hook() -> None:
    calls: list[dict[str, Any]] = []

    def hook(d: dict[str, Any]) -> Any:
        calls.append(d)
        return tuple(sorted(d.items()))

    jc = JSONCodec(object_hook=hook)
    assert jc.decode(b'{"b":{"x":1},"a":2}') == (("a", 2), ("b", (("x", 1),)))
    assert calls == [{"x": 1}, {"b": (("x", 1),), "a": 2}]


def test_json_codec_object_hook_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        JSONCodec(lambda d: d)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "data", [b"", b"{", b"{'a': 1}", b"[1,]", b"NaN", b"Infinity", b"-Infinity", b'{"a": NaN}', b"\xff\xfe{"]
)
def test_json_codec_decode_errors(data: bytes) -> None:
    with pytest.raises(BadJsonError) as info:
        JSONCodec().decode(data)
    assert info.value.__cause__ is not None
    assert info.value.code == "BAD_JSON"
    assert isinstance(info.value, ValueError)


def test_json_codec_decode_error_is_chained_from_json_error() -> None:
    with pytest.raises(BadJsonError) as info:
        JSONCodec().decode(b"{oops")
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


def test_json_codec_hook_error_is_bad_json() -> None:
    def hook(d: dict[str, Any]) -> Any:
        raise KeyError("nope")

    with pytest.raises(BadJsonError) as info:
        JSONCodec(object_hook=hook).decode(b'{"a":1}')
    assert isinstance(info.value.__cause__, KeyError)


def test_json_codec_hook_bad_json_error_passes_through() -> None:
    err = BadJsonError("from the hook")

    def hook(d: dict[str, Any]) -> Any:
        raise err

    with pytest.raises(BadJsonError) as info:
        JSONCodec(object_hook=hook).decode(b'{"a":1}')
    assert info.value is err


@pytest.mark.parametrize("value", [object(), {1, 2}, b"bytes", float("nan"), float("inf"), {(1, 2): "tuple key"}])
def test_json_codec_encode_errors(value: object) -> None:
    with pytest.raises(BadJsonError) as info:
        JSONCodec().encode(value)
    assert info.value.__cause__ is not None


def test_json_codec_encode_circular() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(BadJsonError) as info:
        JSONCodec().encode(loop)
    assert isinstance(info.value.__cause__, ValueError)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_json_codec_property(value: Any) -> None:
    jc = JSONCodec()
    try:
        data = jc.encode(value)
    except BadJsonError as err:  # only lone surrogates cannot be UTF-8 encoded
        assert isinstance(err.__cause__, UnicodeEncodeError)
        return
    assert jc.decode(data) == value


def test_codecs_satisfy_the_protocol() -> None:
    def roundtrip(codec: Codec[Any], value: Any) -> Any:
        return codec.decode(codec.encode(value))

    assert roundtrip(StringCodec(), "x") == "x"
    assert roundtrip(JSONCodec(), [1]) == [1]
    assert "StringCodec" in repr(StringCodec())
    assert "JSONCodec" in repr(JSONCodec())
