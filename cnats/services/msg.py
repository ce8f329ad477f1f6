"""``ServiceMsg`` (a request as an endpoint sees it) and ``ServiceError`` (a service's error answer).

The parser builds every message as ``cnats.msg.Msg``. An endpoint turns it into a ``ServiceMsg`` by changing its
class (same slots, nothing copied): each endpoint has its own subclass whose ``_endpoint`` class attribute says which
counters ``respond_error`` updates.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import InvalidOptionError
from ..headers import Headers
from ..msg import Msg, to_headers
from .schema import SERVICE_ERROR_CODE_HEADER, SERVICE_ERROR_HEADER

if TYPE_CHECKING:
    from .endpoint import ServiceEndpoint

__all__ = ["ServiceError", "ServiceHandler", "ServiceMsg", "error_headers"]


def error_headers(code: int, description: str, extra: Headers | Mapping[str, Any] | None = None) -> Headers:
    """``extra`` (copied, never modified) plus the two service error headers."""
    headers = Headers()
    source = to_headers(extra)
    if source is not None:
        for key, values in source.items():
            for value in values:
                headers.append(key, value)
    headers.set(SERVICE_ERROR_CODE_HEADER, str(code))
    headers.set(SERVICE_ERROR_HEADER, description)
    return headers


class ServiceMsg(Msg):
    """A request received by a service endpoint: a ``Msg`` that can also answer with a service error."""

    __slots__ = ()

    _endpoint: ClassVar[ServiceEndpoint | None] = None  # set on each endpoint's own subclass

    def respond_error(
        self,
        code: int,
        description: str,
        data: bytes | bytearray | memoryview | str = b"",
        *,
        headers: Headers | Mapping[str, Any] | None = None,
    ) -> bool:
        """Respond with ``data`` and the headers ``Nats-Service-Error-Code: <code>``, ``Nats-Service-Error:
        <description>``; the endpoint counts it as an error. ``False`` (nothing sent) when there is no reply subject.

        Raises:
            InvalidOptionError: ``code`` is not an int.
            BadHeaderError: ``description`` holds CR or LF, or a header in ``headers`` is not valid.
            TypeError: ``headers`` is neither ``Headers`` nor a mapping.
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining (publishing has stopped).
            BadPayloadError: ``data`` is not bytes, bytearray, a C-contiguous memoryview or a UTF-8 encodable str.
            ServerOptionNotAvailableError: the server does not support headers.
            MaxPayloadExceededError: the response exceeds the server's `max_payload`.
            OutboundBufferLimitError: the outbound buffer (`pending_bytes_limit`) is full.
        """
        if isinstance(code, bool) or not isinstance(code, int):
            raise InvalidOptionError(f"service error code must be an int, got {code!r}")
        sent = self.respond(data, headers=error_headers(code, description, headers))
        endpoint = self._endpoint
        if endpoint is not None:
            endpoint._count_error(f"{code}:{description}")
        return sent

    def __repr__(self) -> str:
        return "<Service" + super().__repr__()[1:]


ServiceHandler = Callable[[ServiceMsg], Awaitable[None] | None]
"""An endpoint handler: called with each request, a plain function or a coroutine function."""


class ServiceError(Exception):
    """An error answer of a service: raise it in a handler to respond with this code and message; read it from a
    response with ``to_service_error``. Not a ``NatsError``: its ``code`` is the numeric service error code."""

    code: int
    message: str

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"ServiceError({self.code!r}, {self.message!r})"

    @staticmethod
    def is_service_error(msg: Msg) -> bool:
        """True when the message carries a ``Nats-Service-Error-Code`` header."""
        headers = msg.headers
        return headers is not None and headers.has(SERVICE_ERROR_CODE_HEADER)

    @staticmethod
    def to_service_error(msg: Msg) -> ServiceError | None:
        """The service error a response carries, or None when it is not one."""
        headers = msg.headers
        if headers is None or not headers.has(SERVICE_ERROR_CODE_HEADER):
            return None
        raw = headers.get(SERVICE_ERROR_CODE_HEADER)
        try:
            code = int(raw)
        except ValueError:
            code = 0  # a peer sent a non-numeric code: keep the description, mark the code unknown
        return ServiceError(code, headers.get(SERVICE_ERROR_HEADER))
