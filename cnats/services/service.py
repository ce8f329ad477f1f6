"""``Service`` and ``ServiceGroup``: a running ADR-32 service, its endpoints and its discovery subscriptions.

A service answers ``$SRV.<VERB>``, ``$SRV.<VERB>.<name>`` and ``$SRV.<VERB>.<name>.<id>`` for PING, INFO and STATS
(no queue group: every instance answers). It ends on ``stop()``, when the connection closes, or when one of its
subscriptions fails; ``stopped`` then resolves with the reason (never raises).

A service is a child of its connection's scope (cnats/lifecycle.py): the connection's ``drain()`` stops it first
(its endpoints stop taking requests, what was received is answered), its ``close()`` ends it at once (``stopped``
resolves, the handler tasks are cancelled and awaited). Every task it starts goes through ``Scope.spawn``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..connection import port_of
from ..errors import InvalidOptionError, NatsError
from ..msg import Msg
from ..nuid import nuid
from ..subscription import Subscription
from .endpoint import ServiceEndpoint
from .msg import ServiceHandler
from .schema import (
    SERVICE_API_PREFIX,
    EndpointInfo,
    EndpointStats,
    ServiceIdentity,
    ServiceInfo,
    ServiceResponseType,
    ServiceStats,
    ServiceVerb,
)
from .validation import check_endpoint_subject, check_group_name, check_metadata, check_name, check_queue_group

if TYPE_CHECKING:
    from ..connection import NatsConnection

__all__ = ["Service", "ServiceGroup", "StatsHandler"]

logger = logging.getLogger("cnats")

StatsHandler = Callable[[EndpointInfo], Any]  # may return an awaitable


def _join(prefix: str, name: str) -> str:
    if not prefix:
        return name
    return f"{prefix}.{name}" if name else prefix


class _EndpointAdder:
    """What ``Service`` and ``ServiceGroup`` share: adding endpoints and groups under a subject prefix."""

    __slots__ = ()
    _service: Service
    _prefix: str
    _group_queue: str | None

    def add_endpoint(
        self,
        name: str,
        handler: ServiceHandler | None = None,
        *,
        subject: str | None = None,
        metadata: Mapping[str, str] | None = None,
        queue_group: str | None = None,
    ) -> ServiceEndpoint:
        """Add an endpoint listening on ``<group subject>.<subject or name>``; without ``handler`` the endpoint is an
        async iterator of its requests.

        Raises:
            InvalidNameError: ``name`` or ``queue_group`` is not valid.
            InvalidOptionError: ``handler`` is not callable, ``subject`` is not a non-empty str, ``metadata`` does not
                map str to str, or the service is stopped.
            BadSubjectError: the endpoint's subject has whitespace, an empty token or a ``>`` that is not the last
                token.
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining.
        """
        check_name("endpoint", name)
        if handler is not None and not callable(handler):
            raise InvalidOptionError("handler must be callable")
        if subject is not None and (not isinstance(subject, str) or not subject):
            raise InvalidOptionError(f"endpoint subject must be a non-empty str, got {subject!r}")
        full_subject = check_endpoint_subject(_join(self._prefix, subject or name))
        if queue_group is not None:
            check_queue_group("endpoint", queue_group)
        meta = check_metadata(metadata)
        service = self._service
        queue = queue_group or self._group_queue or service._queue_group
        return service._add_endpoint(name, full_subject, queue, meta, handler)

    def add_group(self, name: str = "", queue_group: str | None = None) -> ServiceGroup:
        """A group: endpoints added to it listen under ``<this subject>.<name>`` and default to its queue group.

        Raises:
            InvalidNameError: ``name`` has whitespace, a ``>`` or an empty token, or ``queue_group`` is not valid.
        """
        check_group_name(name)
        if queue_group is not None:
            check_queue_group("group", queue_group)
        return ServiceGroup(self._service, _join(self._prefix, name), queue_group or self._group_queue)


class ServiceGroup(_EndpointAdder):
    """A subject prefix (and optionally a queue group) shared by the endpoints added to it."""

    __slots__ = ("_group_queue", "_prefix", "_service")

    def __init__(self, service: Service, prefix: str, queue_group: str | None) -> None:
        self._service = service
        self._prefix = prefix
        self._group_queue = queue_group

    @property
    def subject(self) -> str:
        return self._prefix

    @property
    def queue_group(self) -> str | None:
        return self._group_queue

    def __repr__(self) -> str:
        return f"<ServiceGroup subject={self._prefix!r} queue_group={self._group_queue!r}>"


class Service(_EndpointAdder):
    """A running service (create it with ``nc.services.add(...)``)."""

    def __init__(
        self,
        nc: NatsConnection,
        name: str,
        version: str,
        *,
        description: str,
        metadata: dict[str, str] | None,
        queue_group: str,
        stats_handler: StatsHandler | None,
    ) -> None:
        self._nc = nc
        self._port = port = port_of(nc)
        self._service = self
        self._prefix = ""
        self._group_queue = None
        self._id = nuid.next()
        self._name = name
        self._version = version
        self._description = description
        self._metadata = metadata
        self._queue_group = queue_group
        self._stats_handler = stats_handler
        self._started = datetime.now(timezone.utc)
        self._endpoints: list[ServiceEndpoint] = []
        self._every_endpoint: list[ServiceEndpoint] = []  # also those stopping: closing the connection ends them
        self._discovery: list[Subscription] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopped: asyncio.Future[Exception | None] = port.loop.create_future()
        self._stop_begun = False
        self._stop_error: Exception | None = None
        self._ping_response = json.dumps(self.ping().to_dict()).encode()

    # -- public properties -------------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._id

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self._version

    @property
    def description(self) -> str:
        return self._description

    @property
    def metadata(self) -> dict[str, str] | None:
        return self._metadata

    @property
    def is_stopped(self) -> bool:
        """True once the service is stopping or stopped (it takes no new endpoints)."""
        return self._stop_begun or self._stopped.done()

    @property
    def stopped(self) -> asyncio.Future[Exception | None]:
        """Resolves (never raises) when the service has stopped: None, or the error that stopped it."""
        return self._stopped

    def __repr__(self) -> str:
        return f"<Service name={self._name!r} id={self._id!r} version={self._version!r}>"

    # -- starting ---------------------------------------------------------------------------------------------
    async def _start(self) -> None:
        """Subscribe the discovery subjects and wait until the server has them (the service is discoverable)."""
        stats_async = self._stats_handler is not None
        handlers: dict[ServiceVerb, Callable[[Msg], Any]] = {
            ServiceVerb.PING: self._on_ping,
            ServiceVerb.INFO: self._on_info,
            ServiceVerb.STATS: self._on_stats_async if stats_async else self._on_stats,
        }
        scope = self._port.scope
        try:
            for verb, callback in handlers.items():
                for subject in (
                    f"{SERVICE_API_PREFIX}.{verb.value}",
                    f"{SERVICE_API_PREFIX}.{verb.value}.{self._name}",
                    f"{SERVICE_API_PREFIX}.{verb.value}.{self._name}.{self._id}",
                ):
                    sub = self._nc.subscribe(
                        subject, callback=callback, pending_msgs_limit=None, pending_bytes_limit=None
                    )
                    self._watch(sub)
                    self._discovery.append(sub)
            scope.adopt(self)
            await self._port.flush()
        except BaseException:
            scope.release(self)
            for sub in self._discovery:
                sub.unsubscribe()
            self._discovery.clear()
            self._resolve(None)
            raise

    def _watch(self, sub: Subscription) -> None:
        sub.closed.add_done_callback(self._on_subscription_closed)

    # -- endpoints ----------------------------------------------------------------------------------------------
    def _add_endpoint(
        self,
        name: str,
        subject: str,
        queue_group: str,
        metadata: dict[str, str] | None,
        handler: ServiceHandler | None,
    ) -> ServiceEndpoint:
        if self.is_stopped:
            raise InvalidOptionError("the service is stopped")
        endpoint = ServiceEndpoint(self, name, subject, queue_group, metadata, handler)
        self._watch(endpoint._sub)
        self._endpoints.append(endpoint)
        self._every_endpoint.append(endpoint)
        return endpoint

    def _remove_endpoint(self, endpoint: ServiceEndpoint) -> None:
        if endpoint in self._endpoints:
            self._endpoints.remove(endpoint)
            self._spawn(endpoint._drain(), f"service {self._name} endpoint {endpoint.subject} stop")

    # -- discovery answers ---------------------------------------------------------------------------------------
    def _identity(self) -> dict[str, Any]:
        """The fields every discovery answer starts with."""
        metadata = dict(self._metadata) if self._metadata is not None else None
        return {"name": self._name, "id": self._id, "version": self._version, "metadata": metadata}

    def ping(self) -> ServiceIdentity:
        """The identity this service answers PINGs with.

        Raises:
            Nothing: it reads the service's own fields.
        """
        return ServiceIdentity(type=ServiceResponseType.PING, **self._identity())

    def info(self) -> ServiceInfo:
        """What this service answers INFOs with: its identity, description and endpoints.

        Raises:
            Nothing: it reads the service's own fields.
        """
        return ServiceInfo(
            type=ServiceResponseType.INFO,
            **self._identity(),
            description=self._description,
            endpoints=[e._info() for e in self._endpoints],
        )

    async def stats(self) -> ServiceStats:
        """The counters of every endpoint; each gets the ``stats_handler``'s value (when not None) as ``data``.

        Raises:
            Nothing: an exception of the stats handler is counted as the endpoint's error and reported as a
                ``CALLBACK_ERROR`` status.
        """
        handler = self._stats_handler
        if handler is None:
            return self._stats_now()
        endpoints = []
        for endpoint in list(self._endpoints):
            stats = endpoint._stats()
            try:
                data = handler(endpoint._info())
                if inspect.isawaitable(data):
                    data = await data
            except Exception as exc:  # noqa: BLE001 - counted (nats.js) and reported; the STATS answer goes on
                endpoint._count_error(str(exc) or type(exc).__name__)
                self._port.report_callback_error(exc, endpoint.subject, endpoint._sub.sid)
                stats = endpoint._stats()
            else:
                stats.data = data
            endpoints.append(stats)
        return self._stats_document(endpoints)

    def _stats_now(self) -> ServiceStats:
        """``stats()`` without a stats handler: nothing to await."""
        return self._stats_document([e._stats() for e in self._endpoints])

    def _stats_document(self, endpoints: list[EndpointStats]) -> ServiceStats:
        return ServiceStats(
            type=ServiceResponseType.STATS, **self._identity(), started=self._started, endpoints=endpoints
        )

    def reset(self) -> None:
        """Zero every endpoint's counters; ``started`` becomes now.

        Raises:
            Nothing: it only resets counters.
        """
        self._started = datetime.now(timezone.utc)
        for endpoint in self._endpoints:
            endpoint._reset()

    def _answer(self, msg: Msg, body: bytes) -> None:
        if msg.reply:
            try:
                msg.respond(body)
            except NatsError as err:  # closing connection: the requester is gone too
                logger.debug("service %r could not answer %r: %r", self._name, msg.subject, err)

    def _on_ping(self, msg: Msg) -> None:
        self._answer(msg, self._ping_response)

    def _on_info(self, msg: Msg) -> None:
        self._answer(msg, json.dumps(self.info().to_dict()).encode())

    def _on_stats(self, msg: Msg) -> None:
        self._answer(msg, json.dumps(self._stats_now().to_dict()).encode())

    async def _on_stats_async(self, msg: Msg) -> None:
        stats = await self.stats()
        try:
            body = json.dumps(stats.to_dict()).encode()
        except (TypeError, ValueError) as exc:
            logger.error("the stats handler of service %r returned data that is not JSON: %r", self._name, exc)
            for endpoint in stats.endpoints:
                endpoint.data = None
            body = json.dumps(stats.to_dict()).encode()
        self._answer(msg, body)

    # -- stopping ----------------------------------------------------------------------------------------------
    async def stop(self, err: Exception | None = None) -> Exception | None:
        """Drain the endpoints and the discovery subscriptions, then resolve ``stopped`` with ``err``. Idempotent:
        later calls return what ``stopped`` resolved to. When the connection closes meanwhile, the stop ends at once
        (the handlers still running are cancelled) and returns without raising.

        Raises:
            Nothing: the reason the service stopped is returned, not raised.
        """
        self._begin_stop(err)
        # shield: a caller cancelled while waiting leaves the stop going; `stopped` resolves whatever happens
        await asyncio.shield(self._stopped)
        return self._stopped.result()

    def drain_owned(self) -> Awaitable[Exception | None]:
        """The connection drains: stop like ``stop()`` (the connection bounds the wait with its drain timeout).

        Raises:
            Nothing: as ``stop()``.
        """
        return self.stop()

    def _begin_stop(self, err: Exception | None) -> None:
        if self._stop_begun or self._stopped.done():
            return
        self._stop_begun = True
        self._stop_error = err
        task = self._port.scope.spawn(self._stop(err), f"service {self._name} stop")
        if task is None:  # the connection is closed (it has told the service already)
            self._resolve(err)

    async def _stop(self, err: Exception | None) -> None:
        try:
            endpoints, self._endpoints = self._endpoints, []
            drains: list[Awaitable[None]] = [e._drain() for e in endpoints]
            drains += [self._drain_discovery(sub) for sub in self._discovery]
            await asyncio.gather(*drains, return_exceptions=True)
            self._discovery.clear()
            # endpoints stopped one by one (endpoint.stop()) finish draining too
            while pending := [task for task in self._tasks if not task.done()]:
                await asyncio.gather(*pending, return_exceptions=True)
        finally:
            # also when cancelled: the connection closed, connection_closed resolved `stopped` already
            self._every_endpoint.clear()
            self._port.scope.release(self)
            self._resolve(err)

    @staticmethod
    async def _drain_discovery(sub: Subscription) -> None:
        if sub.is_closed:
            return
        with contextlib.suppress(NatsError):
            await sub.drain()
        await asyncio.shield(sub.closed)

    def _resolve(self, err: Exception | None) -> None:
        if not self._stopped.done():
            self._stopped.set_result(err)

    def connection_closed(self, error: Exception | None) -> None:
        """The connection closed (``error`` is None after ``close()``/``drain()``): the service is stopped now.
        ``stopped`` resolves with the reason given to a ``stop(err)`` already under way, else with ``error``.
        The subscriptions are closed by the connection, the tasks cancelled and awaited by its scope.

        Raises:
            Nothing: called by the connection while it closes.
        """
        endpoints, self._every_endpoint, self._endpoints = self._every_endpoint, [], []
        for endpoint in endpoints:
            endpoint._connection_closed()
        self._discovery.clear()
        if self._stopped.done():
            return
        reason = self._stop_error if self._stop_error is not None else error
        self._stop_begun = True
        self._stop_error = reason
        self._resolve(reason)

    def _on_subscription_closed(self, closed: asyncio.Future[Exception | None]) -> None:
        error = None if closed.cancelled() else closed.result()
        if error is not None and not self.is_stopped:
            logger.error("service %r stops: one of its subscriptions failed: %r", self._name, error)
            self._begin_stop(error)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = self._port.scope.spawn(coro, name)
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def __aenter__(self) -> Service:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
