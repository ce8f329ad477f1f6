"""``ServiceEndpoint``: one subscription of a service, its handler (or iterator) and its counters.

The handler is called through the ``Callback`` adapter (cnats/callbacks.py). Hot path: a plain handler makes the
endpoint subscribe with a plain function, so the protocol core calls it straight from the read path with no queue
and no task. An asynchronous handler (``async def``, a partial of one, an object with ``async def __call__``; or a
lambda or partial that turns out to return an awaitable, from its first request on) runs on the subscription's one
callback task, owned by the connection's scope, one request at a time in arrival order. A handler's exception is
counted, answered with a service error and (unless it is a ``ServiceError``) reported as a ``CALLBACK_ERROR``
status. Timing uses ``time.perf_counter_ns``; ``average_processing_time`` is computed only when someone asks for the
stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

from ..callbacks import FAILED, Callback
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

# Per connection, what wraps the handler of each endpoint added on it, as hook(service, endpoint, handler) (cnats.otel:
# a span per request); consulted once per endpoint, when it is added, never per request.
handler_hooks: weakref.WeakKeyDictionary[Any, Callable[..., ServiceHandler]] = weakref.WeakKeyDictionary()


def _header_safe(text: str) -> str:
    # an exception message may span lines; a header value cannot
    return text.replace("\r", " ").replace("\n", " ") if ("\r" in text or "\n" in text) else text


class _Finishing:
    """The rest of a request whose plain-looking handler returned an awaitable, for the subscription's task to
    await (an object, not a coroutine: if the task is cancelled before it runs, nothing is left never awaited)."""

    __slots__ = ("_endpoint", "_msg", "_result", "_start")

    def __init__(self, endpoint: ServiceEndpoint, msg: Msg, result: Awaitable[Any], start: int) -> None:
        self._endpoint = endpoint
        self._msg = msg
        self._result = result
        self._start = start

    def __await__(self) -> Generator[Any, None, None]:
        endpoint = self._endpoint
        if endpoint._unstarted is self:
            endpoint._unstarted = None
        return endpoint._finish(self._msg, self._result, self._start).__await__()

    def close(self) -> None:
        result = self._result
        if inspect.iscoroutine(result) and inspect.getcoroutinestate(result) == inspect.CORO_CREATED:
            result.close()


class ServiceEndpoint:
    """An endpoint of a service. Created without a handler, it is an async iterator of its ``ServiceMsg``."""

    __slots__ = (
        "_handler",
        "_handler_adapter",
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
        "_unstarted",
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
        self._unstarted: _Finishing | None = None
        # this endpoint's own ServiceMsg subclass: respond_error finds the counters through it
        self._msg_class: type[ServiceMsg] = type(
            "ServiceMsg",
            (ServiceMsg,),
            {"__slots__": (), "_endpoint": self, "__module__": ServiceMsg.__module__, "__qualname__": "ServiceMsg"},
        )
        callback: Callable[[Msg], Any] | None = None
        self._handler_adapter: Callback[ServiceMsg] | None = None
        if handler is not None:
            hook = handler_hooks.get(service._nc)
            if hook is not None:
                handler = hook(service, self, handler)
            adapter = self._handler_adapter = Callback(handler, self._failed)
            callback = self._async_callback(adapter) if adapter.is_async else self._plain_callback(adapter)
        self._sub: Subscription = service._nc.subscribe(
            subject,
            queue=queue_group,
            callback=callback,
            pending_msgs_limit=None,  # internal subscriptions are unlimited
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
    def _plain_callback(self, handler: Callback[ServiceMsg]) -> Callable[[Msg], Awaitable[None] | None]:
        msg_class = self._msg_class
        call_inline = handler.call_inline

        def on_request(msg: Msg) -> Awaitable[None] | None:
            msg.__class__ = msg_class
            start = _perf_ns()
            result = call_inline(msg)  # type: ignore[arg-type]  # its class is now msg_class
            if result is not None and result is not FAILED:
                # A plain-looking handler returned an awaitable (a lambda around a coroutine function...): handed
                # back to the subscription, which awaits it and from then on runs this endpoint on its one task,
                # one request at a time in arrival order, like an ``async def`` handler.
                self._unstarted = finishing = _Finishing(self, msg, result, start)
                return finishing
            self._num_requests += 1
            self._processing_time += _perf_ns() - start
            return None

        return on_request

    async def _finish(self, msg: Msg, result: Awaitable[Any], start: int) -> None:
        adapter = self._handler_adapter
        assert adapter is not None
        await adapter.call(msg, result)  # type: ignore[arg-type]  # its class is msg_class
        self._num_requests += 1
        self._processing_time += _perf_ns() - start

    def _async_callback(self, handler: Callback[ServiceMsg]) -> Callable[[Msg], Awaitable[None]]:
        msg_class = self._msg_class
        call = handler.call

        async def on_request(msg: Msg) -> None:
            msg.__class__ = msg_class
            start = _perf_ns()
            await call(msg)  # type: ignore[arg-type]
            self._num_requests += 1
            self._processing_time += _perf_ns() - start

        return on_request

    def _failed(self, exc: BaseException, msg: ServiceMsg) -> None:
        """A handler raised: count it and answer with a service error (ServiceError's code, else 500). Anything
        but a ``ServiceError`` (a deliberate answer) is also reported as a ``CALLBACK_ERROR`` status (and logged
        once, by the connection)."""
        if isinstance(exc, ServiceError):
            code, text = exc.code, exc.message
        else:
            code, text = 500, str(exc) or type(exc).__name__
        self._count_error(text)
        if msg.reply:
            try:
                msg.respond(b"", headers=error_headers(code, _header_safe(text)))
            except NatsError as err:  # the connection is closing: nobody is left to answer
                logger.debug("could not send the error response of %r: %r", self._subject, err)
        if not isinstance(exc, ServiceError):
            self._service._port.report_callback_error(exc, self._subject, self._sub.sid)

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
        handler drains its subscription and leaves the service's INFO and STATS.

        Raises:
            Nothing: the drain runs in the background, and stopping twice does nothing.
        """
        if self._handler is None:
            self._service._begin_stop(None)
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

    def _connection_closed(self) -> None:
        """The connection closed. A request handed to the subscription's task that never got to run (the task was
        cancelled first) holds the awaitable its handler returned: closed here, so it is not reported as never
        awaited."""
        finishing, self._unstarted = self._unstarted, None
        if finishing is not None:
            finishing.close()

    async def _drain(self) -> None:
        """Stop interest and wait until what the server already sent is handled (the service's stop)."""
        sub = self._sub
        if sub.is_closed:
            return
        if self._handler is None:
            # An iterator's queue may never be consumed (the loop may be gone): stop interest, let the messages
            # in flight arrive, then close without waiting for the queue (what is queued can still be iterated).
            port = self._service._port
            port.send_unsubscribe(sub.sid, None)
            with contextlib.suppress(NatsError):
                await port.flush()
            sub.unsubscribe()
            return
        with contextlib.suppress(NatsError):  # already draining (the connection drains) or closed
            await sub.drain()
        await asyncio.shield(sub.closed)
