"""``ServiceClient``: discovery of running services (PING, INFO, STATS) over ``request_many``.

One request goes to ``<prefix>.<VERB>[.<name>[.<id>]]``; every service instance that matches answers, and the client
yields one decoded response per answer until the request strategy ends the iteration.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..errors import BadJsonError, InvalidNameError, InvalidOptionError
from ..msg import Msg
from ..request import RequestManyIterator, RequestStrategy
from .schema import SERVICE_API_PREFIX, ServiceIdentity, ServiceInfo, ServiceStats, ServiceVerb
from .validation import check_name

if TYPE_CHECKING:
    from ..connection import NatsConnection

__all__ = ["ServiceClient", "ServiceResponses"]

T = TypeVar("T")


class ServiceResponses(AsyncIterator[T], Generic[T]):
    """The decoded answers of one discovery request. A response that is not a JSON object ends it with
    ``BadJsonError``; no service at all raises ``NoRespondersError``."""

    __slots__ = ("_decode", "_responses")

    def __init__(self, responses: AsyncIterator[Msg], decode: Callable[[dict[str, Any]], T]) -> None:
        self._responses = responses
        self._decode = decode

    def __aiter__(self) -> ServiceResponses[T]:
        return self

    async def __anext__(self) -> T:
        msg = await self._responses.__anext__()
        try:
            document = json.loads(msg.data)
            if not isinstance(document, dict):
                raise ValueError(f"expected a JSON object, got {type(document).__name__}")
            return self._decode(document)
        except ValueError as exc:
            self._end()
            raise BadJsonError(f"bad service response on {msg.subject!r}: {exc}") from exc

    def _end(self) -> None:
        responses = self._responses
        if isinstance(responses, RequestManyIterator):
            responses.end(None)

    async def __aenter__(self) -> ServiceResponses[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._end()


class ServiceClient:
    """Finds services: ``ping``, ``info`` and ``stats`` of all of them, of one name, or of one instance."""

    def __init__(
        self,
        nc: NatsConnection,
        *,
        strategy: RequestStrategy = RequestStrategy.JITTER_TIMER,
        max_wait: float = 2.0,
        max_messages: int = -1,
        jitter: float = 0.3,
        prefix: str | None = None,
    ) -> None:
        try:
            strategy = RequestStrategy(strategy)
        except ValueError:
            raise InvalidOptionError(f"unknown request strategy {strategy!r}") from None
        if isinstance(max_wait, bool) or not isinstance(max_wait, (int, float)) or max_wait <= 0:
            raise InvalidOptionError("max_wait must be greater than 0")
        if isinstance(max_messages, bool) or not isinstance(max_messages, int):
            raise InvalidOptionError(f"max_messages must be an int, got {max_messages!r}")
        if strategy is RequestStrategy.COUNT and max_messages <= 0:
            raise InvalidOptionError("max_messages must be greater than 0 with the count strategy")
        if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or jitter <= 0:
            raise InvalidOptionError("jitter must be greater than 0")
        if prefix is not None:
            _check_prefix(prefix)
        self._nc = nc
        self._strategy = strategy
        self._max_wait = float(max_wait)
        self._max_messages = max_messages
        self._jitter = float(jitter)
        self._prefix = prefix or SERVICE_API_PREFIX

    def __repr__(self) -> str:
        return f"<ServiceClient prefix={self._prefix!r} strategy={self._strategy.value!r}>"

    async def ping(self, name: str | None = None, id: str | None = None) -> AsyncIterator[ServiceIdentity]:
        """The identities (PING) of every running service, of those named ``name``, or of the
        instance ``id`` of ``name``: an async iterator of the answers, ended by the client's request strategy.

        Raises:
            InvalidNameError: ``name`` or ``id`` is not valid, or ``id`` is given without ``name``.
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining.
            NoRespondersError: while iterating, no service answered at all.
            BadJsonError: while iterating, an answer is not a valid JSON object (the iteration ends).
            NatsError: while iterating, the connection closed with an error (a fatal close): that error.
        """
        return await self._query(ServiceVerb.PING, name, id, ServiceIdentity.from_dict)

    async def info(self, name: str | None = None, id: str | None = None) -> AsyncIterator[ServiceInfo]:
        """The descriptions and endpoints (INFO) of every running service, of those named ``name``, or of the
        instance ``id`` of ``name``: an async iterator of the answers, ended by the client's request strategy.

        Raises:
            InvalidNameError: ``name`` or ``id`` is not valid, or ``id`` is given without ``name``.
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining.
            NoRespondersError: while iterating, no service answered at all.
            BadJsonError: while iterating, an answer is not a valid JSON object (the iteration ends).
            NatsError: while iterating, the connection closed with an error (a fatal close): that error.
        """
        return await self._query(ServiceVerb.INFO, name, id, ServiceInfo.from_dict)

    async def stats(self, name: str | None = None, id: str | None = None) -> AsyncIterator[ServiceStats]:
        """The endpoint counters (STATS) of every running service, of those named ``name``, or of the
        instance ``id`` of ``name``: an async iterator of the answers, ended by the client's request strategy.

        Raises:
            InvalidNameError: ``name`` or ``id`` is not valid, or ``id`` is given without ``name``.
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining.
            NoRespondersError: while iterating, no service answered at all.
            BadJsonError: while iterating, an answer is not a valid JSON object (the iteration ends).
            NatsError: while iterating, the connection closed with an error (a fatal close): that error.
        """
        return await self._query(ServiceVerb.STATS, name, id, ServiceStats.from_dict)

    def subject(self, verb: ServiceVerb, name: str | None = None, id: str | None = None) -> str:
        """The discovery subject of ``verb`` for all services, one name, or one instance.

        Raises:
            InvalidNameError: ``name`` or ``id`` is not valid, or ``id`` is given without ``name``.
            ValueError: ``verb`` is not a ``ServiceVerb`` value.
        """
        parts = [self._prefix, ServiceVerb(verb).value]
        if name:
            parts.append(check_name("service", name))
        if id:
            if not name:
                raise InvalidNameError("a service name is required when an id is given")
            parts.append(check_name("service id", id))
        return ".".join(parts)

    async def _query(
        self, verb: ServiceVerb, name: str | None, id: str | None, decode: Callable[[dict[str, Any]], T]
    ) -> AsyncIterator[T]:
        responses = await self._nc.request_many(
            self.subject(verb, name, id),
            b"",
            strategy=self._strategy,
            max_wait=self._max_wait,
            max_messages=self._max_messages,
            jitter=self._jitter,
        )
        return ServiceResponses(responses, decode)


def _check_prefix(prefix: object) -> None:
    if not isinstance(prefix, str) or not prefix:
        raise InvalidOptionError(f"prefix must be a non-empty str, got {prefix!r}")
    for token in prefix.split("."):
        if not token or token in ("*", ">") or any(ch.isspace() for ch in token):
            raise InvalidOptionError(f"invalid service API prefix {prefix!r}")
