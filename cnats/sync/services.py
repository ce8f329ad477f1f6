"""Services (ADR-32 micro) with plain-function handlers: each endpoint runs its handler on a worker thread of its
own, one request at a time, in order.

The asyncio endpoint is given a coroutine handler that hands the request to the worker and waits for it, so every
rule of the asyncio services holds as it is: processing time, error counting, the error response of a handler that
raises (a ``ServiceError``'s code, else 500), draining on stop.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..callbacks import is_async_callable
from ..errors import InvalidOptionError
from ..request import RequestStrategy
from ..services import (
    EndpointInfo,
    Service,
    ServiceClient,
    ServiceEndpoint,
    ServiceGroup,
    ServiceIdentity,
    ServiceInfo,
    ServiceMsg,
    ServicesAPI,
    ServiceStats,
)
from .bridge import SyncIterator
from .context import Context
from .jobs import JobThread, awaitable_from_thread
from .messages import SyncServiceMsg
from .runner import check_blocking_allowed

__all__ = ["SyncService", "SyncServiceClient", "SyncServiceEndpoint", "SyncServiceGroup", "SyncServicesAPI"]

SyncHandler = Callable[[SyncServiceMsg], Any]


def _check_plain(fn: object, what: str) -> None:
    if fn is not None and (not callable(fn) or is_async_callable(fn)):
        raise InvalidOptionError(f"{what} must be a plain function (cnats.sync runs it on a thread)")


class SyncServicesAPI:
    """``nc.services`` of a `SyncConnection`: start a service, or make a client that discovers services."""

    def __init__(self, ctx: Context, services: ServicesAPI) -> None:
        self._ctx = ctx
        self._services = services

    def add(
        self,
        name: str,
        version: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        queue_group: str = "q",
        stats_handler: Callable[[EndpointInfo], Any] | None = None,
    ) -> SyncService:
        """Validate and start a service (discoverable when this returns). ``stats_handler`` (a plain function) runs
        on the connection's helper thread.

        Raises:
            InvalidNameError: ``name`` or ``queue_group`` is not valid.
            InvalidOptionError: ``version`` is not a semantic version, ``description`` or ``metadata`` is not valid,
                ``stats_handler`` is not a plain function, or this thread runs an event loop.
            ConnectionClosedError: the connection is closed (also while the service starts).
            ConnectionDrainingError: the connection is draining.
        """
        _check_plain(stats_handler, "stats_handler")
        ctx = self._ctx
        on_stats = None
        if stats_handler is not None:

            def on_stats(info: EndpointInfo) -> Any:  # on the loop: the handler itself runs on the helper thread
                return awaitable_from_thread(ctx.helper(), stats_handler, info)

        service = ctx.call(
            self._services.add(
                name,
                version,
                description=description,
                metadata=metadata,
                queue_group=queue_group,
                stats_handler=on_stats,
            )
        )
        return SyncService(ctx, service)

    def client(
        self,
        *,
        strategy: RequestStrategy = RequestStrategy.JITTER_TIMER,
        max_wait: float = 2.0,
        max_messages: int = -1,
        jitter: float = 0.3,
        prefix: str | None = None,
    ) -> SyncServiceClient:
        """A client that discovers running services (``ping``, ``info``, ``stats``) with these request options.

        Raises:
            InvalidOptionError: ``strategy`` is unknown, ``max_wait`` or ``jitter`` is not positive, ``max_messages``
                does not fit the strategy, or ``prefix`` is not a valid subject prefix.
        """
        client = self._services.client(
            strategy=strategy, max_wait=max_wait, max_messages=max_messages, jitter=jitter, prefix=prefix
        )
        return SyncServiceClient(self._ctx, client)


class SyncServiceClient:
    """Discovers running services: each call is a blocking iterator of one answer per service instance."""

    def __init__(self, ctx: Context, client: ServiceClient) -> None:
        self._ctx = ctx
        self._client = client

    def ping(self, name: str | None = None, id: str | None = None) -> SyncIterator[ServiceIdentity]:
        """The identity of every service (of ``name``; of the instance ``id``).

        Raises:
            InvalidNameError: ``id`` is given without ``name``.
            NoRespondersError: no service answers (raised while iterating).
            InvalidOptionError: this thread runs an event loop.
        """
        return SyncIterator(self._ctx.runner, lambda: self._client.ping(name, id))

    def info(self, name: str | None = None, id: str | None = None) -> SyncIterator[ServiceInfo]:
        """The info of every service (of ``name``; of the instance ``id``).

        Raises:
            InvalidNameError: ``id`` is given without ``name``.
            NoRespondersError: no service answers (raised while iterating).
            InvalidOptionError: this thread runs an event loop.
        """
        return SyncIterator(self._ctx.runner, lambda: self._client.info(name, id))

    def stats(self, name: str | None = None, id: str | None = None) -> SyncIterator[ServiceStats]:
        """The stats of every service (of ``name``; of the instance ``id``).

        Raises:
            InvalidNameError: ``id`` is given without ``name``.
            NoRespondersError: no service answers (raised while iterating).
            InvalidOptionError: this thread runs an event loop.
        """
        return SyncIterator(self._ctx.runner, lambda: self._client.stats(name, id))


class SyncServiceEndpoint:
    """An endpoint of a `SyncService`. Added without a handler, it is a blocking iterator of its requests."""

    def __init__(self, ctx: Context, endpoint: ServiceEndpoint, jobs: JobThread | None) -> None:
        self._ctx = ctx
        self._endpoint = endpoint
        self._jobs = jobs
        self._requests: SyncIterator[SyncServiceMsg] | None = None

    @property
    def name(self) -> str:
        """The endpoint's name."""
        return self._endpoint.name

    @property
    def subject(self) -> str:
        """The subject it listens on."""
        return self._endpoint.subject

    @property
    def queue_group(self) -> str:
        """Its queue group."""
        return self._endpoint.queue_group

    @property
    def metadata(self) -> dict[str, str] | None:
        """Its metadata."""
        return self._endpoint.metadata

    def __repr__(self) -> str:
        return f"<SyncServiceEndpoint name={self.name!r} subject={self.subject!r}>"

    def __iter__(self) -> SyncIterator[SyncServiceMsg]:
        if self._jobs is not None:
            raise RuntimeError("an endpoint with a handler cannot be iterated")
        if self._requests is None:
            endpoint = self._endpoint
            self._requests = SyncIterator(self._ctx.runner, lambda: endpoint, self._ctx.wrap_service, window=1)
        return self._requests

    def stop(self) -> None:
        """Stop this endpoint (an iterator endpoint stops the whole service, as in the asyncio API); its handler
        thread ends after the requests it holds.

        Raises:
            InvalidOptionError: this thread runs an event loop.
        """
        self._ctx.runner.run(self._endpoint.stop)


class SyncServiceGroup:
    """A group of a `SyncService`: endpoints added to it listen under its subject."""

    def __init__(self, service: SyncService, group: ServiceGroup | Service) -> None:
        self._service = service
        self._group = group

    @property
    def subject(self) -> str:
        """The accumulated subject prefix ("" for the root)."""
        group = self._group
        return group.subject if isinstance(group, ServiceGroup) else ""

    def add_endpoint(
        self,
        name: str,
        handler: SyncHandler | None = None,
        *,
        subject: str | None = None,
        metadata: Mapping[str, str] | None = None,
        queue_group: str | None = None,
    ) -> SyncServiceEndpoint:
        """Add an endpoint listening on ``<group subject>.<subject or name>``; ``handler`` (a plain function) runs
        on a worker thread of the endpoint. Without a handler the endpoint is a blocking iterator of its requests.

        Raises:
            InvalidNameError: ``name`` or ``queue_group`` is not valid.
            InvalidOptionError: ``handler`` is not a plain function, ``subject`` or ``metadata`` is not valid, the
                service is stopped, or this thread runs an event loop.
            BadSubjectError: the endpoint's subject is not valid.
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining.
        """
        return self._service._add(self._group, name, handler, subject, metadata, queue_group)

    def add_group(self, name: str = "", queue_group: str | None = None) -> SyncServiceGroup:
        """A group under this one.

        Raises:
            InvalidNameError: ``name`` or ``queue_group`` is not valid.
        """
        return SyncServiceGroup(self._service, self._group.add_group(name, queue_group))


class SyncService(SyncServiceGroup):
    """A running service of a `SyncConnection` (``nc.services.add(...)``); a context manager that stops it."""

    def __init__(self, ctx: Context, service: Service) -> None:
        super().__init__(self, service)
        self._ctx = ctx
        self._async_service = service
        self._workers: list[JobThread] = []
        self._lock = threading.Lock()
        ctx.own(self)

    @property
    def id(self) -> str:
        """The service instance's id."""
        return self._async_service.id

    @property
    def name(self) -> str:
        """The service's name."""
        return self._async_service.name

    @property
    def version(self) -> str:
        """The service's version."""
        return self._async_service.version

    @property
    def description(self) -> str:
        """The service's description ("" when none)."""
        return self._async_service.description

    @property
    def metadata(self) -> dict[str, str] | None:
        """The service's metadata."""
        return self._async_service.metadata

    @property
    def is_stopped(self) -> bool:
        """True once the service is stopping or stopped."""
        return self._async_service.is_stopped

    def __repr__(self) -> str:
        return f"<SyncService name={self.name!r} id={self.id!r}>"

    def _add(
        self,
        group: ServiceGroup | Service,
        name: str,
        handler: SyncHandler | None,
        subject: str | None,
        metadata: Mapping[str, str] | None,
        queue_group: str | None,
    ) -> SyncServiceEndpoint:
        _check_plain(handler, "handler")
        check_blocking_allowed()
        jobs = None
        on_request = None
        if handler is not None:
            jobs = JobThread(f"cnats-sync endpoint {name}")
            on_request = _on_request(jobs, handler, self._ctx.wrap_service)
        try:
            endpoint = self._ctx.runner.run(
                functools.partial(
                    group.add_endpoint, name, on_request, subject=subject, metadata=metadata, queue_group=queue_group
                )
            )
        except BaseException:
            if jobs is not None:
                jobs.end()
            raise
        if jobs is not None:
            with self._lock:
                self._workers.append(jobs)
        return SyncServiceEndpoint(self._ctx, endpoint, jobs)

    def info(self) -> ServiceInfo:
        """What the service answers INFO requests with.

        Raises:
            InvalidOptionError: this thread runs an event loop.
        """
        return self._ctx.runner.run(self._async_service.info)

    def ping(self) -> ServiceIdentity:
        """The identity the service answers PING requests with.

        Raises:
            InvalidOptionError: this thread runs an event loop.
        """
        return self._ctx.runner.run(self._async_service.ping)

    def stats(self) -> ServiceStats:
        """The counters of every endpoint (with the ``stats_handler``'s data).

        Raises:
            InvalidOptionError: this thread runs an event loop.
            ConnectionClosedError: the connection is closed.
        """
        return self._ctx.call(self._async_service.stats())

    def reset(self) -> None:
        """Zero every endpoint's counters; ``started`` becomes now.

        Raises:
            InvalidOptionError: this thread runs an event loop.
        """
        self._ctx.runner.run(self._async_service.reset)

    def stop(self, err: Exception | None = None) -> Exception | None:
        """Drain the endpoints (handlers finish the requests they hold), stop, and end the handler threads; what the
        service stopped with. Idempotent.

        Raises:
            InvalidOptionError: this thread runs an event loop.
        """
        result: Exception | None = None
        if self._ctx.runner.is_running:
            result = self._ctx.call(self._async_service.stop(err))
        self._drop_callbacks()
        self._join_callbacks(None)
        self._ctx.disown(self)
        return result

    def __enter__(self) -> SyncService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- Owned: the asyncio drain waits for the handlers (their coroutines wait for the threads) --------------------
    async def _stop_feeding(self) -> None:
        pass

    def _wait_callbacks(self, timeout: float | None) -> bool:
        return True

    def _drop_callbacks(self) -> None:
        with self._lock:
            workers = list(self._workers)
        for jobs in workers:
            jobs.end()

    def _join_callbacks(self, timeout: float | None) -> None:
        with self._lock:
            workers = list(self._workers)
        for jobs in workers:
            jobs.worker.join(timeout)


def _on_request(jobs: JobThread, handler: SyncHandler, wrap: Callable[[ServiceMsg], SyncServiceMsg]) -> Any:
    """The coroutine handler the asyncio endpoint runs: the request goes to the endpoint's thread, and what the
    handler raised is raised here (the endpoint then answers with the service error and counts it)."""

    async def on_request(msg: ServiceMsg) -> None:
        await awaitable_from_thread(jobs, handler, wrap(msg))

    return on_request
