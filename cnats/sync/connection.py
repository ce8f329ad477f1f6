"""``cnats.sync.connect()`` and ``SyncConnection``: the asyncio connection, driven from any thread.

The connection lives on a private event loop, run by one daemon thread. Publishes are checked in the calling thread
and handed over through the outbox (no coroutine, no future per message); everything that waits for the server
runs as a coroutine on the loop while the calling thread blocks on its result.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..callbacks import is_async_callable
from ..connection import connect as _async_connect
from ..connection import port_of
from ..errors import (
    ConnectionClosedError,
    ConnectionDrainingError,
    DrainTimeoutError,
    InvalidOptionError,
    NatsError,
    ServerOptionNotAvailableError,
)
from ..events import Stats, Status
from ..headers import Headers
from ..info import ServerInfo
from ..msg import Msg
from ..protocol import HandOff
from ..request import RequestStrategy
from .bridge import SyncIterator
from .checks import check_size, checked_headers, checked_payload, checked_subject
from .context import Context
from .delivery import Delivery
from .messages import SyncMsg, js_msg_wrapper, msg_wrapper, service_msg_wrapper
from .outbox import BIG_PAYLOAD, CROWDED, Outbox
from .runner import LoopRunner, check_blocking_allowed
from .subscription import SyncSubscription

if TYPE_CHECKING:
    from ..connection import NatsConnection
    from ..subscription import Subscription
    from .jetstream import SyncJetStream
    from .manager import SyncJetStreamManager
    from .services import SyncServicesAPI

__all__ = ["SyncConnection", "connect"]

_DEFAULT_PENDING_BYTES = 8 * 1024 * 1024
_EXIT_WAIT = 5.0  # what interpreter exit gives each connection still open to close
_KNOWN_MAX = 4096  # subjects remembered as checked


def connect(
    servers: str | Sequence[str] | None = None,
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    **options: Any,
) -> SyncConnection:
    """Connect to a NATS server and return a blocking, thread-safe connection.

    ``servers`` and ``options`` are those of `cnats.connect` (every one of them, with the same meaning and
    defaults). The connection runs on a private event loop in a daemon thread of its own; ``loop_factory`` makes
    that loop (default ``asyncio.new_event_loop``; ``uvloop.new_event_loop`` works too).

    Raises:
        InvalidOptionError: an option is not valid, or the calling thread runs an event loop (use the asyncio API
            there).
        NatsConnectionRefusedError: no server accepted the connection.
        ConnectionTimeoutError: connecting took longer than ``timeout``.
        TlsError: the TLS handshake failed.
        AuthorizationError: the server rejected the credentials.
        NatsError: any other error `cnats.connect` raises, unchanged.
        TypeError: an unknown option was given.
    """
    check_blocking_allowed()
    loop = (loop_factory or asyncio.new_event_loop)()
    runner = LoopRunner(loop, "cnats-sync loop")
    ready: concurrent.futures.Future[SyncConnection] = concurrent.futures.Future()
    limit = options.get("pending_bytes_limit", _DEFAULT_PENDING_BYTES)

    async def main() -> None:
        try:
            nc = await _async_connect(servers, **options)
        except BaseException as exc:  # noqa: BLE001 - raised in the thread that called connect()
            ready.set_exception(exc)
            return
        conn = SyncConnection(runner, nc, pending_bytes_limit=limit if isinstance(limit, int) else 0)
        ready.set_result(conn)
        try:
            await asyncio.shield(nc.closed)
        finally:
            if not nc.is_closed:  # cancelled: connect() was interrupted just as the connection was made
                await nc.close()
            conn._connection_ended()

    runner.start(main)
    try:
        return ready.result()
    except BaseException:  # what connecting raised, or an interruption (Ctrl-C) of this wait
        if not ready.done():
            runner.call_soon(_cancel_all)  # stop connecting (or close what was just made)
        runner.stop_and_join()
        raise


def _cancel_all() -> None:
    for task in asyncio.all_tasks():
        task.cancel()


class SyncConnection:
    """A connection whose methods may be called from any thread; make it with `cnats.sync.connect`.

    Errors are the exception classes of the asyncio API, raised in the calling thread. A method that waits (for the
    server, or for a message) raises ``InvalidOptionError`` when called on a thread whose event loop is running:
    there, use the asyncio API. It is a context manager: leaving ``with`` closes it.
    """

    def __init__(self, runner: LoopRunner, nc: NatsConnection, *, pending_bytes_limit: int) -> None:
        self._runner = runner
        self._nc = nc
        self._pub = nc.publish
        self._port = port = port_of(nc)
        self._request_future = port.request_future
        outbox = self._outbox = Outbox(runner, nc.publish, pending_bytes_limit or _DEFAULT_PENDING_BYTES)
        self._items = outbox.items
        self._open = True  # False once closing or closed: publishes raise in the caller
        self._known: set[str] = set()  # subjects checked before (the fast path); emptied for good once closed
        self._draining = False
        info = nc.info
        self._small = min(BIG_PAYLOAD, info.max_payload if info is not None else BIG_PAYLOAD)
        # The usual publish (small bytes, a subject checked before) without a Python frame: the protocol core's
        # HandOff does what the fast path of ``publish`` below does, and shadows it on this instance.
        self._handoff = HandOff(
            self._items, self._known, self._pub, outbox, self._publish_checked, self._small, CROWDED
        )
        self.__dict__["publish"] = self._handoff
        self._ctx = Context(
            runner=runner,
            publish=self.publish,
            submit=self._submit,
            wrap_msg=msg_wrapper(self.publish),
            wrap_js=js_msg_wrapper(self._submit, runner.call),
            wrap_service=service_msg_wrapper(self.publish, self._submit),
            report=port.report_callback_error,
        )
        _LIVE.add(self)

    # -- state ------------------------------------------------------------------------------------------------------
    @property
    def info(self) -> ServerInfo | None:
        """The INFO of the server connected to (None once closed)."""
        return self._nc.info

    @property
    def server(self) -> str:
        """The host:port of the current server ("" when there is none)."""
        return self._nc.server

    @property
    def is_closed(self) -> bool:
        """Whether the connection is closed."""
        return self._nc.is_closed

    @property
    def is_draining(self) -> bool:
        """Whether the connection is draining."""
        return self._draining and not self._nc.is_closed

    def stats(self) -> Stats:
        """Counters of the messages and bytes received and sent so far (what this thread published before the call
        included).

        Raises:
            InvalidOptionError: this thread runs an event loop.
        """
        if not self._runner.is_running:
            return self._nc.stats()
        try:
            return self._runner.run(self._stats_on_loop)
        except ConnectionClosedError:
            return self._nc.stats()

    def _stats_on_loop(self) -> Stats:
        self._outbox.drain()
        return self._nc.stats()

    def status(self) -> SyncIterator[Status]:
        """A new blocking iterator of status events from now on (no replay); it ends when the connection closes.

        Raises:
            ConnectionClosedError: the connection is closed.
            InvalidOptionError: this thread runs an event loop.
        """
        return SyncIterator(self._runner, self._nc.status, window=256)

    def __repr__(self) -> str:
        state = "closed" if self.is_closed else "open"
        return f"<SyncConnection server={self.server!r} {state}>"

    # -- publishing -------------------------------------------------------------------------------------------------
    def publish(
        self,
        subject: str,
        payload: bytes | bytearray | memoryview | str = b"",
        *,
        reply: str | None = None,
        headers: Headers | Mapping[str, Any] | None = None,
    ) -> None:
        """Publish a message; it is checked here, then handed to the connection's loop, which sends it in the order
        this thread published. Never waits for the server (``flush()`` does); it waits only when the loop is far
        behind.

        Raises:
            ConnectionClosedError: the connection is closed.
            BadSubjectError: the subject or reply subject is not valid.
            BadPayloadError: the payload is not bytes, bytearray, memoryview or a UTF-8 encodable str.
            BadHeaderError: a header name or value is not valid.
            TypeError: ``headers`` is neither ``Headers`` nor a mapping.
            ServerOptionNotAvailableError: the message has headers and the server does not support them.
            MaxPayloadExceededError: the message exceeds the server's `max_payload`.
            OutboundBufferLimitError: the outbound buffer (`pending_bytes_limit`) is full: disconnected, or the socket
                is backed up (flush() and retry).
        """
        # the fast path: a small bytes payload to a subject this connection checked before (empty once closed)
        if reply is None and headers is None and type(payload) is bytes and len(payload) <= self._small:
            try:
                fast = subject in self._known
            except TypeError:  # an unhashable subject: the checks below say what is wrong with it
                fast = False
            if fast:
                items = self._items
                items.append((self._pub, subject, payload))
                outbox = self._outbox
                if not outbox.waking:
                    outbox.wake()
                elif len(items) >= CROWDED:
                    outbox.wait_for_room()
                return
        self._publish_checked(subject, payload, reply, headers)

    def _publish_checked(self, subject: Any, payload: Any, reply: Any, headers: Any) -> None:
        if not self._open:
            raise ConnectionClosedError()
        checked_subject(subject)
        known = self._known
        if len(known) >= _KNOWN_MAX:
            known.clear()
        known.add(subject)  # (a close replaces the set: the fast path then finds nothing)
        if reply:
            checked_subject(reply, "reply subject")
        else:
            reply = None
        data = checked_payload(payload)
        hdrs, hlen = checked_headers(headers) if headers is not None else (None, 0)
        info = self._nc.info
        if info is None:
            raise ConnectionClosedError()
        if hdrs is not None and not info.headers:
            raise ServerOptionNotAvailableError("the server does not support headers")
        check_size(len(data) + hlen, info.max_payload)
        outbox = self._outbox
        if len(data) > BIG_PAYLOAD:
            outbox.push_big(subject, data, reply, hdrs)
        elif reply is None and hdrs is None:
            outbox.push(self._pub, subject, data)
        else:
            outbox.push(self._publish_full, subject, (data, reply, hdrs))

    def _publish_full(self, subject: str, rest: tuple[bytes, str | None, Headers | None]) -> None:
        data, reply, headers = rest
        self._pub(subject, data, reply=reply, headers=headers)

    def _stop_publishing(self) -> None:
        """From now on every publish raises ``ConnectionClosedError`` in its caller (the fast path included)."""
        self._open = False
        self._handoff.open = False
        self._known = set()

    def _submit(self, fn: Callable[[], object]) -> None:
        """Run ``fn()`` on the loop, in order with this thread's publishes (acks, unsubscribes, error responses)."""
        if not self._open:
            raise ConnectionClosedError()
        self._outbox.push_call(fn)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the server has processed everything published so far (by this thread, everything it published
        before the call).

        Raises:
            ConnectionClosedError: the connection is closed (also when it closes while waiting).
            NatsTimeoutError: no answer within ``timeout`` seconds.
            InvalidOptionError: this thread runs an event loop.
        """
        self._runner.call(self._outbox.flush(self._nc.flush, timeout))

    # -- subscribing ------------------------------------------------------------------------------------------------
    def subscribe(
        self,
        subject: str,
        *,
        queue: str | None = None,
        callback: Callable[[SyncMsg], Any] | None = None,
        max: int | None = None,
        pending_msgs_limit: int | None = 524_288,
        pending_bytes_limit: int | None = 128 * 1024 * 1024,
    ) -> SyncSubscription:
        """Subscribe to ``subject`` (wildcards allowed), optionally in a queue group. With ``callback`` (a plain
        function) every message is passed to it on a thread owned by the subscription; without one, iterate the
        subscription. Messages beyond the pending limits (``None``: unlimited) are dropped and counted.

        Raises:
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining.
            BadSubjectError: the subject or queue group is not valid.
            InvalidOptionError: ``max``, a pending limit or ``callback`` is not valid (a coroutine function is not
                a callback here), or this thread runs an event loop.
        """
        if callback is not None and (not callable(callback) or is_async_callable(callback)):
            raise InvalidOptionError("callback must be a plain function (cnats.sync runs it on a thread)")
        delivery: Delivery[SyncMsg] = Delivery(
            subject, self._ctx.wrap_msg, pending_msgs_limit, pending_bytes_limit, self._port.report_slow_consumer
        )
        self._ctx.deliveries.add(delivery)
        sync_sub = SyncSubscription(self._ctx, subject, delivery, callback)
        sub = self._runner.run(
            self._subscribe_on_loop, subject, queue, delivery, max, pending_msgs_limit, pending_bytes_limit
        )
        sync_sub._attach(sub)
        return sync_sub

    def _subscribe_on_loop(
        self,
        subject: str,
        queue: str | None,
        delivery: Delivery[SyncMsg],
        max: int | None,
        pending_msgs_limit: int | None,
        pending_bytes_limit: int | None,
    ) -> Subscription:
        self._outbox.drain()  # what this thread published before subscribing goes first
        # the limits are checked by the asyncio subscribe and applied by the delivery (a plain callback has no queue)
        sub = self._nc.subscribe(
            subject,
            queue=queue,
            callback=delivery,
            max=max,
            pending_msgs_limit=pending_msgs_limit,
            pending_bytes_limit=pending_bytes_limit,
        )
        sub.closed.add_done_callback(lambda closed: delivery.end(closed.result()))
        return sub

    # -- requests ---------------------------------------------------------------------------------------------------
    def request(
        self,
        subject: str,
        payload: bytes | bytearray | memoryview | str = b"",
        *,
        timeout: float = 1.0,
        headers: Headers | Mapping[str, Any] | None = None,
        no_mux: bool = False,
        reply: str | None = None,
    ) -> SyncMsg:
        """Publish a request and wait for the first response.

        Raises:
            NoRespondersError: no subscription listens on ``subject``.
            NatsTimeoutError: no response within ``timeout`` seconds.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            InvalidOptionError: ``timeout`` is not positive, ``reply`` is given without ``no_mux``, or this thread
                runs an event loop.
            BadSubjectError: the subject is not valid.
            BadPayloadError: the payload is not bytes, bytearray, memoryview or a UTF-8 encodable str.
            MaxPayloadExceededError: the request exceeds the server's `max_payload`.
        """
        if no_mux or reply is not None or isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            # the rare forms (and what the asyncio request rejects) take the asyncio request as it is
            msg = self._runner.call(
                self._nc.request(subject, payload, timeout=timeout, headers=headers, no_mux=no_mux, reply=reply)
            )
            return self._ctx.wrap_msg(msg)
        if timeout <= 0:
            raise InvalidOptionError("timeout must be greater than 0")
        check_blocking_allowed()
        # the common form without a coroutine or a task on the loop: the shared inbox's own future of the response
        future: concurrent.futures.Future[Msg] = concurrent.futures.Future()
        self._runner.start_call(future, self._start_request, subject, payload, headers, timeout)
        return self._ctx.wrap_msg(self._runner.wait(future))

    def _start_request(
        self, future: concurrent.futures.Future[Msg], subject: str, payload: Any, headers: Any, timeout: float
    ) -> None:
        if not future.set_running_or_notify_cancel():
            return  # interrupted before it started
        try:
            response = self._request_future(subject, payload, headers, timeout)
        except BaseException as exc:  # noqa: BLE001 - raised in the calling thread
            future.set_exception(exc)
            return
        response.add_done_callback(functools.partial(_settle, future))  # type: ignore[attr-defined]

    def request_many(
        self,
        subject: str,
        payload: bytes | bytearray | memoryview | str = b"",
        *,
        strategy: RequestStrategy = RequestStrategy.TIMER,
        max_wait: float = 1.0,
        max_messages: int = -1,
        jitter: float = 0.3,
        headers: Headers | Mapping[str, Any] | None = None,
        no_mux: bool = False,
    ) -> SyncIterator[SyncMsg]:
        """Publish a request and return a blocking iterator of the responses, ended by ``strategy``.

        Raises:
            InvalidOptionError: ``max_wait``, ``max_messages`` or ``jitter`` does not fit the strategy, or this
                thread runs an event loop.
            NoRespondersError: no subscription listens on ``subject`` (raised while iterating).
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining.
            BadSubjectError: the subject is not valid.
        """

        def open_responses() -> Any:
            return self._nc.request_many(
                subject,
                payload,
                strategy=strategy,
                max_wait=max_wait,
                max_messages=max_messages,
                jitter=jitter,
                headers=headers,
                no_mux=no_mux,
            )

        return SyncIterator(self._runner, open_responses, self._ctx.wrap_msg)

    # -- JetStream and services -------------------------------------------------------------------------------------
    def jetstream(
        self,
        *,
        domain: str | None = None,
        api_prefix: str = "$JS.API",
        timeout: float = 5.0,
        publish_async_max_pending: int = 4000,
        publish_async_stall_wait: float = 5.0,
    ) -> SyncJetStream:
        """A blocking JetStream client (no I/O). ``publish_async`` waits at most ``publish_async_stall_wait`` seconds
        for room while ``publish_async_max_pending`` acknowledgements are outstanding.

        Raises:
            InvalidOptionError: ``domain`` and a non-default ``api_prefix`` are both given, ``timeout``,
                ``publish_async_max_pending`` or ``publish_async_stall_wait`` is not positive, or this thread runs an
                event loop.
        """
        from .jetstream import SyncJetStream

        js = self._runner.run(
            lambda: self._nc.jetstream(
                domain=domain,
                api_prefix=api_prefix,
                timeout=timeout,
                publish_async_max_pending=publish_async_max_pending,
                publish_async_stall_wait=publish_async_stall_wait,
            )
        )
        return SyncJetStream(self._ctx, js, publish_async_max_pending, publish_async_stall_wait)

    def jetstream_manager(
        self, *, domain: str | None = None, api_prefix: str = "$JS.API", timeout: float = 5.0, check_api: bool = True
    ) -> SyncJetStreamManager:
        """A blocking JetStream manager: every request of `cnats.jetstream.JetStreamManager`, waited for.

        Raises:
            JetStreamNotEnabledError: with ``check_api``, JetStream is not enabled for the account or server.
            NoRespondersError: with ``check_api``, nothing answers the JetStream API.
            NatsTimeoutError: with ``check_api``, the account-info request timed out.
            InvalidOptionError: ``domain`` and a non-default ``api_prefix`` are both given, ``timeout`` is not
                positive, or this thread runs an event loop.
            ConnectionClosedError: the connection is closed.
        """
        from .manager import SyncJetStreamManager

        jsm = self._runner.call(
            self._nc.jetstream_manager(domain=domain, api_prefix=api_prefix, timeout=timeout, check_api=check_api)
        )
        return SyncJetStreamManager(self._ctx, jsm)

    @property
    def services(self) -> SyncServicesAPI:
        """The services framework: ``add`` a service whose handlers are plain functions, or a ``client()``."""
        from .services import SyncServicesAPI

        return SyncServicesAPI(self._ctx, self._nc.services)

    # -- ending -----------------------------------------------------------------------------------------------------
    def drain(self, timeout: float | None = 30.0) -> None:
        """Drain, then close: subscriptions stop taking messages and their callbacks handle every message already
        received (they can still reply), then everything else drains as `NatsConnection.drain` does, and the loop
        thread ends. Past ``timeout`` seconds the connection is closed anyway and ``DrainTimeoutError`` is raised;
        None waits without limit.

        Raises:
            ConnectionClosedError: the connection is already closed.
            ConnectionDrainingError: the connection is already draining.
            InvalidOptionError: ``timeout`` is not a positive number or None, or this thread runs an event loop.
            DrainTimeoutError: the drain did not finish within ``timeout``; the connection was closed anyway.
        """
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
            raise InvalidOptionError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        check_blocking_allowed()
        if self._nc.is_closed or not self._runner.is_running:
            raise ConnectionClosedError()
        if self._draining:
            raise ConnectionDrainingError()
        self._draining = True
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        owned = list(self._ctx.owned)
        join_timeout: float | None = None
        try:
            # 1. what feeds a callback thread stops; the callbacks handle what they hold while they can still reply
            fed_off = self._runner.call(_stop_feeding_all(owned, left()))
            finished = fed_off and all(thing._wait_callbacks(left()) for thing in owned)
            remaining = left()
            if not finished or (remaining is not None and remaining <= 0):
                # past the deadline: closed now; a callback still running ends its thread when it returns
                join_timeout = 0.0
                self._close(join_timeout)
                raise DrainTimeoutError(f"drain did not finish within {timeout} s; the connection was closed")
            # 2. everything else, as the asyncio drain does it (then the connection closes)
            self._runner.call(self._drain_on_loop(remaining))
        except DrainTimeoutError:
            join_timeout = 0.0
            raise
        finally:
            self._finish(join_timeout)

    async def _drain_on_loop(self, timeout: float | None) -> None:
        self._outbox.drain()
        await self._nc.drain(timeout)

    def close(self) -> None:
        """Close the connection (idempotent): what was published before is written (best effort; ``flush()`` for a
        guarantee), subscriptions and iterators end, callbacks still queued are dropped, and the loop thread and
        every callback thread of this connection end before it returns (a callback running now is let finish).

        Raises:
            InvalidOptionError: this thread runs an event loop.
        """
        check_blocking_allowed()
        self._close(join_timeout=None)

    def _close(self, join_timeout: float | None) -> None:
        self._stop_publishing()
        if self._runner.is_running:
            with contextlib.suppress(ConnectionClosedError):
                self._runner.call(self._close_on_loop())
        self._finish(join_timeout)

    async def _close_on_loop(self) -> None:
        self._outbox.drain()  # written before the socket goes
        await self._nc.close()

    def _finish(self, timeout: float | None = None) -> None:
        """After the close: no callback thread and no loop thread is left (except the calling one)."""
        for thing in list(self._ctx.owned):
            thing._drop_callbacks()
        for thing in list(self._ctx.owned):
            thing._join_callbacks(timeout)
        self._ctx.end_helper(timeout)
        self._runner.stop_and_join(timeout)
        _LIVE.discard(self)

    def _connection_ended(self) -> None:
        """On the loop, once the connection closed (a close, a drain, or a fatal error)."""
        self._stop_publishing()
        self._outbox.discard()
        for delivery in list(self._ctx.deliveries):
            delivery.end(None)  # a no-op for those its subscription ended already (with its error, if any)
        for thing in list(self._ctx.owned):
            thing._drop_callbacks()
        self._ctx.end_helper(0.0)  # its thread ends by itself (a fatal close has nobody calling close())

    def _close_at_exit(self) -> None:
        """Close with bounded waits: the interpreter is exiting and must not hang on a stuck callback."""
        self._stop_publishing()
        runner = self._runner
        if runner.is_running:
            with contextlib.suppress(Exception):  # a closed loop, a timeout: the threads are daemons anyway
                runner.submit(self._close_on_loop()).result(_EXIT_WAIT)
        self._finish(_EXIT_WAIT)

    def __enter__(self) -> SyncConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _settle(target: concurrent.futures.Future[Any], source: asyncio.Future[Any]) -> None:
    """Copy the outcome of a loop future to the future a thread waits on."""
    if target.done():
        return
    if source.cancelled():
        target.set_exception(ConnectionClosedError("connection closed"))
    elif source.exception() is not None:
        target.set_exception(source.exception())
    else:
        target.set_result(source.result())


async def _stop_feeding_all(owned: list[Any], timeout: float | None) -> bool:
    """Tell everything that feeds a callback thread to stop; False when that took longer than ``timeout``."""
    stopping = asyncio.gather(*(thing._stop_feeding() for thing in owned), return_exceptions=True)
    try:
        results = await asyncio.wait_for(stopping, timeout)
    except asyncio.TimeoutError:
        return False
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, NatsError):
            raise result
    return True


# -- interpreter exit: no loop thread, no callback thread is left running -----------------------------------------
_LIVE: weakref.WeakSet[SyncConnection] = weakref.WeakSet()


def _close_all_at_exit() -> None:
    for conn in list(_LIVE):
        with contextlib.suppress(Exception):  # exiting anyway: one connection must not keep the others open
            conn._close_at_exit()


atexit.register(_close_all_at_exit)
