"""``ServiceEndpoint``: one subscription of a service, its handler (or iterator) and its counters.

Hot path: the endpoint subscribes with a plain function, so the protocol core calls it straight from the read path
with no queue and no task. A plain handler runs inline; a coroutine handler runs on the subscription's one callback
task, one request at a time in arrival order (the convention of coroutine callbacks). Timing uses
``time.perf_counter_ns``; ``average_processing_time`` is computed only when someone asks for the stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..callbacks import is_async_callable
from ..errors import NatsError
from ..msg import Msg
from ..subscription import Subscription
from .msg import ServiceError, ServiceHandler, ServiceMsg, error_headers
from .schema import EndpointInfo, EndpointStats

if TYPE_CHECKING:
    from .service import Service

__all__ = ["ServiceEndpoint"]

logger = logging.getLogger("cnats")

_perf_ns = time.perf_counter_ns


def _header_safe(text: str) -> str:
    # an exception message may span lines; a header value cannot
    return text.replace("\r", " ").replace("\n", " ") if ("\r" in text or "\n" in text) else text


class ServiceEndpoint:
    """An endpoint of a service. Created without a handler, it is an async iterator of its ``ServiceMsg``."""

    __slots__ = (
        "_handler",
        "_last_error",
        "_metadata",
        "_msg_class",
        "_name",
        "_num_errors",
        "_num_requests",
        "_processing_time",
        "_queue_group",
        "_service",
        "_sub",
        "_subject",
        "_yielded_at",
    )

    def __init__(
        self,
        service: Service,
        name: str,
        subject: str,
        queue_group: str,
        metadata: dict[str, str] | None,
        handler: ServiceHandler | None,
    ) -> None:
        self._service = service
        self._name = name
        self._subject = subject
        self._queue_group = queue_group
        self._metadata = metadata
        self._handler = handler
        self._num_requests = 0
        self._num_errors = 0
        self._last_error = ""
        self._processing_time = 0
        self._yielded_at = 0
        # this endpoint's own ServiceMsg subclass: respond_error finds the counters through it
        self._msg_class: type[ServiceMsg] = type(
            "ServiceMsg",
            (ServiceMsg,),
            {"__slots__": (), "_endpoint": self, "__module__": ServiceMsg.__module__, "__qualname__": "ServiceMsg"},
        )
        callback: Callable[[Msg], Any] | None = None
        if handler is not None:
            is_async = is_async_callable(handler)
            callback = self._async_callback(handler) if is_async else self._plain_callback(handler)
        self._sub: Subscription = service._nc.subscribe(
            subject,
            queue=queue_group,
            callback=callback,
            pending_msgs_limit=None,  # internal subscriptions are unlimited (API.md section 2)
            pending_bytes_limit=None,
        )

    # -- public properties -------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def subject(self) -> str:
        return self._subject

    @property
    def queue_group(self) -> str:
        return self._queue_group

    @property
    def metadata(self) -> dict[str, str] | None:
        return self._metadata

    def __repr__(self) -> str:
        return f"<ServiceEndpoint name={self._name!r} subject={self._subject!r} queue_group={self._queue_group!r}>"

    # -- handlers ------------------------------------------------------------------------------------------------
    def _plain_callback(self, handler: Callable[[ServiceMsg], Any]) -> Callable[[Msg], None]:
        msg_class = self._msg_class
        failed = self._failed

        def on_request(msg: Msg) -> None:
            msg.__class__ = msg_class
            start = _perf_ns()
            try:
                result = handler(msg)  # type: ignore[arg-type]  # its class is now msg_class
            except Exception as exc:  # noqa: BLE001 - answered with a service error, the endpoint goes on
                failed(msg, exc)
            else:
                if result is not None and inspect.isawaitable(result):
                    # a plain function that returned an awaitable (a lambda around a coroutine function...)
                    self._service._spawn(self._finish_awaitable(msg, result, start))
                    return
            self._num_requests += 1
            self._processing_time += _perf_ns() - start

        return on_request

    async def _finish_awaitable(self, msg: Msg, result: Awaitable[Any], start: int) -> None:
        try:
            await result
        except Exception as exc:  # noqa: BLE001
            self._failed(msg, exc)
        self._num_requests += 1
        self._processing_time += _perf_ns() - start

    def _async_callback(self, handler: Callable[[ServiceMsg], Any]) -> Callable[[Msg], Awaitable[None]]:
        msg_class = self._msg_class
        failed = self._failed

        async def on_request(msg: Msg) -> None:
            msg.__class__ = msg_class
            start = _perf_ns()
            try:
                await handler(msg)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001
                failed(msg, exc)
            self._num_requests += 1
            self._processing_time += _perf_ns() - start

        return on_request

    def _failed(self, msg: Msg, exc: Exception) -> None:
        """A handler raised: count it and answer with a service error (ServiceError's code, else 500)."""
        if isinstance(exc, ServiceError):
            code, text = exc.code, exc.message
        else:
            code, text = 500, str(exc) or type(exc).__name__
            logger.error("exception in the handler of service endpoint %r", self._subject, exc_info=exc)
        self._count_error(text)
        if msg.reply:
            try:
                msg.respond(b"", headers=error_headers(code, _header_safe(text)))
            except NatsError as err:  # the connection is closing: nobody is left to answer
                logger.debug("could not send the error response of %r: %r", self._subject, err)

    def _count_error(self, text: str) -> None:
        self._num_errors += 1
        self._last_error = text

    # -- the iterator (endpoints without a handler) -----------------------------------------------------------------
    def __aiter__(self) -> ServiceEndpoint:
        if self._handler is not None:
            raise RuntimeError("an endpoint with a handler cannot be iterated")
        return self

    async def __anext__(self) -> ServiceMsg:
        # processing time of an iterated request: from handing it out until the next one is asked for
        if self._yielded_at:
            self._processing_time += _perf_ns() - self._yielded_at
            self._yielded_at = 0
        try:
            msg = await self._sub.__anext__()
        except StopAsyncIteration:
            error = self._service._stop_error
            if error is not None:
                raise error from None
            raise
        msg.__class__ = self._msg_class
        self._num_requests += 1
        self._yielded_at = _perf_ns()
        return msg  # type: ignore[return-value]  # its class is now msg_class

    async def __aenter__(self) -> ServiceEndpoint:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop this endpoint. Stopping an iterator endpoint stops the whole service (nats.js); an endpoint with a
        handler drains its subscription and leaves the service's INFO and STATS."""
        if self._handler is None:
            self._service._stop_soon(None)
        else:
            self._service._remove_endpoint(self)

    # -- the service's view ------------------------------------------------------------------------------------------
    @property
    def _is_iterator(self) -> bool:
        return self._handler is None

    def _info(self) -> EndpointInfo:
        return EndpointInfo(
            name=self._name,
            subject=self._subject,
            queue_group=self._queue_group,
            metadata=dict(self._metadata) if self._metadata is not None else None,
        )

    def _stats(self) -> EndpointStats:
        n = self._num_requests
        total = self._processing_time
        return EndpointStats(
            name=self._name,
            subject=self._subject,
            queue_group=self._queue_group,
            num_requests=n,
            num_errors=self._num_errors,
            last_error=self._last_error,
            processing_time=total,
            average_processing_time=total // n if n else 0,
        )

    def _reset(self) -> None:
        self._num_requests = 0
        self._num_errors = 0
        self._last_error = ""
        self._processing_time = 0

    async def _drain(self) -> None:
        """Stop interest and wait until what the server already sent is handled (the service's stop)."""
        sub = self._sub
        if sub.is_closed:
            return
        if self._handler is None:
            # An iterator's queue may never be consumed (the loop may be gone): stop interest, let the messages
            # in flight arrive, then close without waiting for the queue (what is queued can still be iterated).
            nc = self._service._nc
            nc._send_unsubscribe(sub.sid, None)
            with contextlib.suppress(NatsError):
                await nc.flush()
            sub.unsubscribe()
            return
        with contextlib.suppress(NatsError):  # already draining (the connection drains) or closed
            await sub.drain()
        await asyncio.shield(sub.closed)
