"""Payload codecs: turn values into message payloads and back."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NoReturn, Protocol, TypeVar

from cnats.errors import BadJsonError, BadPayloadError

__all__ = ["Codec", "JSONCodec", "StringCodec"]

T = TypeVar("T")


class Codec(Protocol[T]):
    """Anything that converts ``T`` values to payload bytes and back."""

    def encode(self, value: T) -> bytes:
        """The payload bytes for ``value``.

        Raises:
            NatsError: an implementation reports a value it cannot encode with a cnats error (``StringCodec`` raises
                ``BadPayloadError``, ``JSONCodec`` raises ``BadJsonError``).
        """
        ...

    def decode(self, data: bytes) -> T:
        """The value that ``data`` encodes.

        Raises:
            NatsError: an implementation reports data it cannot decode with a cnats error (``JSONCodec`` raises
                ``BadJsonError``; ``StringCodec`` never fails).
        """
        ...


class StringCodec(Codec[str]):
    """UTF-8 text. Decoding replaces invalid bytes with U+FFFD, as nats.js (TextDecoder) does."""

    __slots__ = ()

    def encode(self, value: str) -> bytes:
        """``value`` encoded as UTF-8.

        Raises:
            BadPayloadError: ``value`` is not a str.
        """
        if not isinstance(value, str):
            raise BadPayloadError(f"StringCodec encodes str, not {type(value).__name__}")
        return value.encode()

    def decode(self, data: bytes) -> str:
        """``data`` decoded as UTF-8, invalid bytes replaced by U+FFFD.

        Raises:
            Nothing: every byte sequence decodes.
        """
        return str(data, "utf-8", "replace")

    def __repr__(self) -> str:
        return "StringCodec()"


def _reject_constant(name: str) -> NoReturn:
    # Python's json accepts NaN/Infinity, which are not JSON (nats.js JSON.parse refuses them)
    raise ValueError(f"{name} is not valid JSON")


class JSONCodec(Codec[Any]):
    """Compact UTF-8 JSON; ``object_hook`` (the nats.js reviver's counterpart) is passed to ``json.loads``.

    Any failure to encode or decode raises ``BadJsonError`` whose ``__cause__`` is the original exception.
    """

    __slots__ = ("_object_hook",)

    def __init__(self, *, object_hook: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self._object_hook = object_hook

    def encode(self, value: Any) -> bytes:
        """``value`` as compact UTF-8 JSON.

        Raises:
            BadJsonError: ``value`` cannot be encoded as JSON (an unsupported type, a circular reference, NaN or
                infinity); the original exception is ``__cause__``.
        """
        try:
            # compact separators and no NaN: the same text JSON.stringify produces
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            return text.encode()
        except Exception as err:
            raise BadJsonError(f"cannot encode value as JSON: {err}") from err

    def decode(self, data: bytes) -> Any:
        """The value of the JSON document in ``data``, passed through ``object_hook`` if one was given.

        Raises:
            BadJsonError: ``data`` is not valid JSON (NaN and infinity included), is not UTF-8, or ``object_hook``
                raised; the original exception is ``__cause__``.
        """
        try:
            if isinstance(data, memoryview):
                data = data.tobytes()
            return json.loads(data, object_hook=self._object_hook, parse_constant=_reject_constant)
        except BadJsonError:
            raise
        except Exception as err:
            # like nats.js, an error raised by the hook is reported as bad JSON as well
            raise BadJsonError(f"invalid JSON: {err}") from err

    def __repr__(self) -> str:
        return f"JSONCodec(object_hook={self._object_hook!r})"
