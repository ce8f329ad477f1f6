"""``Msg``: a message as the user sees it. Its fields live in the protocol core's ``MsgBase``, which the parser
fills directly; this subclass adds the constructor for user-built messages and the convenience methods."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import BadJsonError, BadPayloadError
from .headers import Headers
from .protocol import MsgBase

__all__ = ["Msg", "payload_bytes", "to_headers"]


def payload_bytes(data: object) -> bytes:
    """A Payload as ``bytes`` (a str is UTF-8 encoded); anything else raises BadPayloadError."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise BadPayloadError(f"payload must be bytes, bytearray, memoryview or str, not {type(data).__name__}")


def to_headers(headers: object) -> Headers | None:
    """A HeadersLike as ``Headers`` (a mapping goes through ``Headers.from_dict``)."""
    if headers is None or isinstance(headers, Headers):
        return headers
    if isinstance(headers, Mapping):
        return Headers.from_dict(headers)
    raise TypeError(f"headers must be Headers or a mapping, not {type(headers).__name__}")


class Msg(MsgBase):
    """A NATS message: received from a subscription, or built to be published with ``publish_message``.
    ``respond()`` comes from the protocol core's ``MsgBase`` (compiled: no Python frame per response)."""

    __slots__ = ()

    def __init__(
        self,
        subject: str,
        data: bytes | bytearray | memoryview | str = b"",
        *,
        reply: str | None = None,
        headers: Headers | Mapping[str, Any] | None = None,
    ) -> None:
        self._init(subject, payload_bytes(data), reply or None, to_headers(headers), 0, None)

    def json(self, **loads_kwargs: Any) -> Any:
        """The data parsed as JSON; ``loads_kwargs`` are passed to ``json.loads``.

        Raises:
            BadJsonError: the data is not valid JSON (or not in a JSON encoding); the original error is
                ``__cause__``.
            TypeError: ``loads_kwargs`` holds an argument ``json.loads`` does not take.
        """
        try:
            return json.loads(self.data, **loads_kwargs)
        except ValueError as exc:
            raise BadJsonError(f"message data is not valid JSON: {exc}") from exc

    def string(self) -> str:
        """The data decoded as UTF-8, invalid bytes replaced by U+FFFD.

        Raises:
            Nothing: every byte sequence decodes.
        """
        return self.data.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        reply = f" reply={self.reply!r}" if self.reply else ""
        hdrs = f" headers={self.headers!r}" if self.headers is not None else ""
        return f"<Msg subject={self.subject!r}{reply} data={self.data[:64]!r}{hdrs}>"
