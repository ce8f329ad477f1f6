"""What every JetStream object shares: the connection (its public API as ``_nc``, its internal interface as
``port``), the options, and the API request with its error mapping."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..connection import port_of
from ..errors import (
    ConsumerNotFoundError,
    InvalidNameError,
    InvalidOptionError,
    JetStreamApiError,
    JetStreamNotEnabledError,
    MessageNotFoundError,
    NoRespondersError,
    StreamNotFoundError,
    WrongLastSequenceError,
)

if TYPE_CHECKING:
    from ..connection import NatsConnection
    from ..msg import Msg
    from ..port import Port

__all__ = ["JetStreamContext", "JetStreamOptions", "api_error", "check_name", "not_enabled"]

_ERRORS_BY_CODE: dict[int, type[JetStreamApiError]] = {
    10059: StreamNotFoundError,
    10014: ConsumerNotFoundError,
    10037: MessageNotFoundError,
    10071: WrongLastSequenceError,
}
_BAD_NAME = re.compile(r"[.*>/\\ \t\r\n]")
_DEFAULT_API_PREFIX = "$JS.API"


@dataclass(frozen=True, kw_only=True)
class JetStreamOptions:
    """Options of a JetStream client or manager: the API prefix (or domain) and the request timeout in seconds."""

    api_prefix: str = _DEFAULT_API_PREFIX
    timeout: float = 5.0
    domain: str | None = None

    @classmethod
    def build(cls, *, domain: str | None, api_prefix: str, timeout: float) -> JetStreamOptions:
        """The options of a client or manager; a ``domain`` gives the API prefix ``$JS.<domain>.API``.

        Raises:
            InvalidOptionError: the API prefix is empty, or ``timeout`` is not a positive number.
        """
        if domain:
            api_prefix = f"$JS.{domain}.API"
        api_prefix = api_prefix.rstrip(".")
        if not api_prefix:
            raise InvalidOptionError("api_prefix cannot be empty")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InvalidOptionError("timeout must be greater than 0")
        return cls(api_prefix=api_prefix, timeout=float(timeout), domain=domain or None)


def api_error(error: dict[str, Any]) -> JetStreamApiError:
    """The error class for a JetStream API error object ``{"code", "err_code", "description"}``."""
    status = int(error.get("code", 500))
    err_code = error.get("err_code")
    description = str(error.get("description", ""))
    cls = _ERRORS_BY_CODE.get(err_code) if isinstance(err_code, int) else None
    if cls is None and status == 503:
        cls = JetStreamNotEnabledError
    if cls is None:
        cls = JetStreamApiError
    return cls(description, status=status, err_code=err_code, description=description)


def check_name(name: object, what: str) -> str:
    """A stream or consumer name: non-empty, without ``. * > / \\`` or whitespace (``InvalidNameError``)."""
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"{what} name required")
    bad = _BAD_NAME.search(name)
    if bad is not None:
        raise InvalidNameError(f"invalid {what} name - {what} name cannot contain '{bad.group()}'")
    return name


class JetStreamContext:
    """Base of JetStreamClient and JetStreamManager (and of the objects they hand out).

    ``port`` is the connection's internal interface (``cnats.port.Port``): the layers built on JetStream (the
    consumers, Key-Value, the object store) reach the connection through it; ``_nc`` is used for the connection's
    public API only."""

    def __init__(self, nc: NatsConnection, options: JetStreamOptions) -> None:
        self._nc = nc
        self.port: Port = port_of(nc)
        self._options = options

    @property
    def options(self) -> JetStreamOptions:
        return self._options

    @property
    def api_prefix(self) -> str:
        return self._options.api_prefix

    @property
    def write_prefix(self) -> str:
        """What goes before a stream's own subject when a Key-Value view writes to it: nothing with
        the default API prefix, else the API prefix and a dot (``$JS.hub.API.$KV.b.k``). The stream's plain subject
        does not reach another JetStream domain (from a leaf node) or an account whose API is imported under a
        prefix; the prefixed one does (a server maps a domain's prefix into the domain). Views read it once, when
        made."""
        prefix = self._options.api_prefix
        return "" if prefix == _DEFAULT_API_PREFIX else prefix + "."

    def _api_future(
        self, subject: str, payload: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> Awaitable[Msg]:
        """Send one JetStream API request (``<prefix>.<subject>``) now; the future of its raw answer (read it with
        ``_api_answer``). Raises at once on a closed or draining connection."""
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        return self.port.request_future(
            f"{self._options.api_prefix}.{subject}", body, None, timeout or self._options.timeout
        )

    @staticmethod
    def _api_answer(msg: Msg) -> Any:
        """The decoded answer of an API request, or the mapped error."""
        try:
            data = json.loads(msg.data)
        except ValueError as exc:
            raise JetStreamApiError(f"bad JetStream API response: {exc}", status=500) from exc
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            raise api_error(data["error"])
        return data

    async def _api(self, subject: str, payload: dict[str, Any] | None = None, *, timeout: float | None = None) -> Any:
        """One JetStream API request (``<prefix>.<subject>``); the decoded answer, or the mapped error."""
        try:
            msg = await self._api_future(subject, payload, timeout=timeout)
        except NoRespondersError:
            raise not_enabled() from None
        return self._api_answer(msg)


def not_enabled() -> JetStreamNotEnabledError:
    """What an API request without responders means: JetStream is not enabled (for this account or domain)."""
    return JetStreamNotEnabledError("JetStream is not enabled (no responders)", status=503, description="no responders")
