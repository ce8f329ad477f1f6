"""``ServicesAPI`` (``nc.services``): start a service, or make a client that discovers services."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import InvalidOptionError
from ..request import RequestStrategy
from .client import ServiceClient
from .service import Service, StatsHandler
from .validation import check_metadata, check_name, check_version

if TYPE_CHECKING:
    from ..connection import NatsConnection

__all__ = ["ServicesAPI"]


class ServicesAPI:
    """The services framework of one connection (ADR-32 micro protocol)."""

    __slots__ = ("_nc",)

    def __init__(self, nc: NatsConnection) -> None:
        self._nc = nc

    async def add(
        self,
        name: str,
        version: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        queue_group: str = "q",
        stats_handler: StatsHandler | None = None,
    ) -> Service:
        """Validate and start a service: when this returns, the server routes its discovery subjects to it.

        Raises:
            InvalidNameError: ``name`` or ``queue_group`` is not valid (letters, digits, ``-`` and ``_`` only).
            InvalidOptionError: ``version`` is not a semantic version, ``description`` is not a str, ``metadata`` does
                not map str to str, or ``stats_handler`` is not callable.
            ConnectionClosedError: the connection is closed (also while the service starts).
            ConnectionDrainingError: the connection is draining.
        """
        check_name("service", name)
        check_version(version)
        if description is not None and not isinstance(description, str):
            raise InvalidOptionError(f"description must be a str, not {type(description).__name__}")
        meta = check_metadata(metadata)
        check_name("queue group", queue_group)
        if stats_handler is not None and not callable(stats_handler):
            raise InvalidOptionError("stats_handler must be callable")
        service = Service(
            self._nc,
            name,
            version,
            description=description or "",
            metadata=meta,
            queue_group=queue_group,
            stats_handler=stats_handler,
        )
        await service._start()
        return service

    def client(
        self,
        *,
        strategy: RequestStrategy = RequestStrategy.JITTER_TIMER,
        max_wait: float = 2.0,
        max_messages: int = -1,
        jitter: float = 0.3,
        prefix: str | None = None,
    ) -> ServiceClient:
        """A client that discovers running services (``ping``, ``info``, ``stats``) with these request options.

        Raises:
            InvalidOptionError: ``strategy`` is unknown, ``max_wait`` or ``jitter`` is not positive, ``max_messages`` is
                not an int (or not positive with the count strategy), or ``prefix`` is not a valid subject prefix.
        """
        return ServiceClient(
            self._nc, strategy=strategy, max_wait=max_wait, max_messages=max_messages, jitter=jitter, prefix=prefix
        )
