"""``connect()`` and ``NatsConnection``: the asyncio layer over the protocol core.

Reading: each socket gets an ``asyncio.BufferedProtocol`` whose buffer belongs to a fresh ``Parser``; the parser
hands messages straight to the subscriptions (``sinks``: sid -> delivery function). Writing: ``publish`` encodes
into one ``WriteBuffer`` shared by all sockets of the connection's life; one flush per event-loop turn hands it to
the transport, or at once when it passes ``_CHUNK``. PING/PONG are written directly after what is buffered, so the
buffer only ever holds PUB/HPUB/SUB/UNSUB frames and can be carried across a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._version import __version__ as _version
from .auth import (
    creds_authenticator,
    nkey_authenticator,
    token_authenticator,
    user_password_authenticator,
)
from .errors import (
    AuthError,
    CallbackError,
    ConnectionClosedError,
    ConnectionDrainingError,
    ConnectionTimeoutError,
    DisconnectedError,
    DrainTimeoutError,
    InvalidOptionError,
    NatsConnectionRefusedError,
    NatsError,
    NatsTimeoutError,
    NoRespondersError,
    PermissionViolationError,
    ProtocolError,
    ServerOptionNotAvailableError,
    SubscriptionClosedError,
    TlsError,
    error_from_server,
)
from .events import DebugEvents, Events, PermissionContext, ServersChanged, Stats, Status, StatusHub
from .headers import Headers
from .heartbeats import HeartbeatClock
from .info import ServerInfo
from .lifecycle import Scope, current_task
from .msg import Msg, to_headers
from .nuid import nuid
from .options import Authenticator, ConnectOptions
from .port import Port
from .protocol import Parser, PublisherBase, ReplyMux, WriteBuffer, retrack, untrack_while_live
from .request import RequestManyIterator, RequestStrategy, check_no_responders
from .servers import ServerAddress, ServerPool
from .subjects import check_subject
from .subscription import MsgCallback, PendingPolicy, Subscription
from .tls import TlsOptions, client_ssl_context
from .websocket import check_available as check_websocket
from .websocket import open_websocket

if TYPE_CHECKING:
    from .jetstream.client import JetStreamClient
    from .jetstream.manager import JetStreamManager
    from .services import ServicesAPI

__all__ = ["NatsConnection", "connect", "port_of"]


def _retrieve_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


logger = logging.getLogger("cnats")
protocol_logger = logging.getLogger("cnats.protocol")

_CHUNK = 64 * 1024  # a publish that leaves this much buffered hands it to the socket at once
_PING = b"PING\r\n"
_PONG = b"PONG\r\n"
_UNLIMITED = None
_SETTLE_TIMEOUT = 1.0  # what a user close() gives cleanup (consumer deletions) before the socket goes


class _State(IntEnum):
    CONNECTING = 0
    CONNECTED = 1
    RECONNECTING = 2
    DRAINING_SUBS = 3
    DRAINING_PUBS = 4
    CLOSED = 5


class _NatsProtocol(asyncio.BufferedProtocol):
    """One socket's protocol object. Until the handshake completes it answers the handshake's futures itself;
    afterwards it forwards the server's control lines to the connection."""

    def __init__(self, conn: NatsConnection) -> None:
        self.conn = conn
        loop = conn._loop
        self.parser: Any = None  # set right after construction (the parser needs this object as its handler)
        self.transport: asyncio.Transport | None = None
        self.established = False
        self.error: NatsError | None = None  # why this socket failed before the handshake completed
        self.info_future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.pong_future: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        # The handshake may end before it awaits these (e.g. a failed TLS upgrade): their errors are not news.
        for fut in (self.info_future, self.pong_future):
            fut.add_done_callback(_retrieve)

    def attach(self, parser: Any) -> None:
        """Reads go straight to the parser: its methods shadow this class's wrappers (no Python frame per read)."""
        self.parser = parser
        self.get_buffer = parser.get_buffer  # type: ignore[method-assign]
        self.buffer_updated = parser.received  # type: ignore[method-assign]

    # -- asyncio protocol ------------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        buffer: memoryview = self.parser.get_buffer(sizehint)
        return buffer

    def buffer_updated(self, nbytes: int) -> None:
        try:
            self.parser.buffer_updated(nbytes)
        except ProtocolError as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        err: BaseException = exc if exc is not None else DisconnectedError("connection closed by the server")
        for fut in (self.info_future, self.pong_future):
            if not fut.done():
                fut.set_exception(err)
        self.conn._on_connection_lost(self, exc)

    def pause_writing(self) -> None:
        if self.established:
            self.conn._write_paused = True

    def resume_writing(self) -> None:
        if self.established:
            self.conn._write_paused = False
            self.conn._flush_pending()

    def _fail(self, exc: NatsError) -> None:
        """A fatal error on this socket: handshake waiters fail; an established connection reconnects."""
        if self.error is None:
            self.error = exc
        for fut in (self.info_future, self.pong_future):
            if not fut.done():
                fut.set_exception(exc)
        if self.established:
            self.conn._on_fatal_error(self, exc)
        elif self.transport is not None:
            self.transport.abort()

    # -- parser handler ------------------------------------------------------------------------------------------
    def on_info(self, info: dict[str, Any]) -> None:
        if not self.info_future.done():
            self.info_future.set_result(info)
        elif self.established:
            self.conn._on_async_info(info)

    def on_ping(self) -> None:
        if self.established:
            self.conn._send_pong()
        elif self.transport is not None:
            self.transport.write(_PONG)

    def on_pong(self) -> None:
        if self.established:
            self.conn._on_pong()
        elif not self.pong_future.done():
            self.pong_future.set_result(None)

    def on_ok(self) -> None:
        pass

    def on_protocol_error(self, error: ProtocolError) -> None:
        self._fail(error)

    def on_err(self, text: str) -> None:
        if self.established:
            self.conn._on_server_error(self, text)
        else:
            self._fail(error_from_server(text))


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class _DebugProtocol(_NatsProtocol):
    """``debug=True``: logs every line received (what is sent is logged by the connection)."""

    def attach(self, parser: Any) -> None:
        self.parser = parser  # reads pass through the logging wrappers below

    def get_buffer(self, sizehint: int) -> memoryview:
        self._view = super().get_buffer(sizehint)
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        _log_lines("<<-", bytes(self._view[:nbytes]))
        super().buffer_updated(nbytes)


_SECRET_FIELDS = ("pass", "auth_token", "sig", "jwt")


def _log_lines(direction: str, data: bytes | bytearray) -> None:
    for line in bytes(data).split(b"\r\n"):
        if line:
            text = line[:4096].decode("utf-8", "replace")
            if text.startswith("CONNECT "):
                text = _redact_connect(text)
            protocol_logger.info("%s %s", direction, text[:1024])


def _redact_connect(line: str) -> str:
    """The CONNECT line with its credentials replaced: debug logs never show secrets."""
    try:
        fields = json.loads(line[len("CONNECT ") :])
    except ValueError:
        return "CONNECT <not shown>"
    for key in _SECRET_FIELDS:
        if key in fields:
            fields[key] = "***"
    return "CONNECT " + json.dumps(fields, separators=(",", ":"))


class NatsConnection(PublisherBase):
    """A connection to a NATS server (or cluster). Create it with :func:`connect`.

    ``publish`` is inherited from the protocol core's ``PublisherBase`` (compiled when the extension is built).
    """

    def __init__(self, options: ConnectOptions) -> None:
        self._opts = options
        self._loop = asyncio.get_running_loop()
        self._pool = ServerPool(options.servers, randomize=not options.no_randomize)
        if self._pool.websocket:
            check_websocket()
        elif options.ws_headers:
            raise InvalidOptionError("ws_headers is for ws:// and wss:// servers")
        self._wb = WriteBuffer(limit=options.pending_bytes_limit)
        self._pub_open = True
        self._headers_ok = False
        self._flush_scheduled = False
        self._call_soon = self._loop.call_soon
        self._sinks: dict[int, Callable[[Any], object]] = {}
        self._subs: dict[int, Subscription] = {}
        self._next_sid = 1
        self._state = _State.CONNECTING
        self._protocol: _NatsProtocol | None = None
        self._transport: asyncio.Transport | None = None
        self._parser: Any = None
        self._in_msgs_base = 0
        self._in_bytes_base = 0
        self._info: ServerInfo | None = None
        self._write_paused = False
        self._pongs: deque[asyncio.Future[None] | None] = deque()
        self._pending_flushes: list[asyncio.Future[None]] = []
        self._pings_out = 0
        self._ping_timer: asyncio.TimerHandle | None = None
        self._blocked: set[Subscription] = set()
        self._status: StatusHub[Status] = StatusHub()
        self._closed: asyncio.Future[Exception | None] = self._loop.create_future()
        self._reconnect_task: asyncio.Task[None] | None = None
        self._last_error: Exception | None = None  # what broke the current socket (the reconnect loop's)
        self._reported_error: NatsError | None = None  # what last_error says
        self._resp_sub: Subscription | None = None
        self._mux = ReplyMux(self._loop, f"{options.inbox_prefix}.{nuid.next()}.", NatsTimeoutError, NoRespondersError)
        self._mux.bind(self, self._ready_mux)  # its publish_acked: the pipelined publish, without a Python frame
        self._weakself = weakref.ref(self)
        self._debug = options.debug
        self._ssl: ssl.SSLContext | None = None
        self._scope = Scope(self._loop)
        self._port = Port(
            loop=self._loop,
            scope=self._scope,
            pending_bytes_limit=options.pending_bytes_limit,
            new_inbox=self._new_inbox,
            subscribe=self._subscribe,
            set_sink=self._set_sink,
            send_unsubscribe=self._send_unsubscribe,
            flush=self.flush,
            write_now=self._flush_pending,
            heartbeats=HeartbeatClock(self._loop, self._status.observe),
            forget_subscription=self._forget_subscription,
            block_reading=self._block_reading,
            unblock_reading=self._unblock_reading,
            report_slow_consumer=self._report_slow_consumer,
            report_callback_error=self._report_callback_error,
            request_future=self._request_future,
            publish_acked=self._mux.publish_acked,
            reply_prefix=self._mux_inbox,
            reply_token=self._mux.next_token,
            wait_reply=self._mux.add,
            forget_reply=self._forget_waiter,
            observe_status=self._status.observe,
            unobserve_status=self._status.unobserve,
        )

    # -- properties ------------------------------------------------------------------------------------------
    @property
    def info(self) -> ServerInfo | None:
        """The INFO of the server connected to (None before connecting and once closed)."""
        return None if self._state == _State.CLOSED else self._info

    @property
    def server(self) -> str:
        """The host:port of the current server ("" when there is none)."""
        current = self._pool.current
        return current.hostport if current is not None else ""

    @property
    def is_closed(self) -> bool:
        """Whether the connection is closed."""
        return self._state == _State.CLOSED

    @property
    def is_connected(self) -> bool:
        """Whether a server connection is up and the connection is neither reconnecting, draining nor closed."""
        return self._state == _State.CONNECTED

    @property
    def is_reconnecting(self) -> bool:
        """Whether the connection lost its server and is trying the pool (publishes are buffered meanwhile)."""
        return self._state == _State.RECONNECTING

    @property
    def last_error(self) -> NatsError | None:
        """The last error reported as an ERROR event on ``status()``, or the error that closed the connection."""
        return self._reported_error

    @property
    def servers(self) -> list[str]:
        """The "host:port" of every server of the pool, in the order a reconnect would try them."""
        return [server.hostport for server in self._pool.servers]

    @property
    def discovered_servers(self) -> list[str]:
        """The "host:port" of the servers the cluster told about (INFO ``connect_urls``), a subset of ``servers``."""
        return [server.hostport for server in self._pool.servers if server.discovered]

    @property
    def pending_bytes(self) -> int:
        """Outbound bytes buffered and not yet written to the socket (the write buffer and the transport's)."""
        transport = self._transport
        buffered = transport.get_write_buffer_size() if transport is not None and not transport.is_closing() else 0
        return self._wb.pending + buffered

    @property
    def is_draining(self) -> bool:
        """Whether the connection is draining."""
        return self._state in (_State.DRAINING_SUBS, _State.DRAINING_PUBS)

    @property
    def closed(self) -> asyncio.Future[Exception | None]:
        """Resolves when the connection has closed: with None, or with the error that closed it."""
        return self._closed

    def stats(self) -> Stats:
        """Counters of the messages and bytes received and sent so far.

        Raises:
            Nothing: it also answers on a closed connection.
        """
        parser = self._parser
        in_msgs = self._in_msgs_base + (parser.in_msgs if parser is not None else 0)
        in_bytes = self._in_bytes_base + (parser.in_bytes if parser is not None else 0)
        return Stats(in_bytes=in_bytes, out_bytes=self._wb.out_bytes, in_msgs=in_msgs, out_msgs=self._wb.out_msgs)

    def status(self) -> AsyncIterator[Status]:
        """A new iterator of status events from now on (no replay); it ends when the connection closes.

        Raises:
            Nothing: on a closed connection the iterator is empty.
        """
        return self._status.listen()

    def __repr__(self) -> str:
        return f"<NatsConnection server={self.server!r} state={self._state.name.lower()}>"

    # -- publishing ------------------------------------------------------------------------------------------
    def publish_message(self, msg: Msg) -> None:
        """Publish a `Msg` as it is: its subject, data, reply subject and headers.

        Raises:
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining (publishing has stopped).
            BadSubjectError: the subject or reply subject is not valid.
            ServerOptionNotAvailableError: the message has headers and the server does not support them.
            MaxPayloadExceededError: the message exceeds the server's `max_payload`.
            OutboundBufferLimitError: the outbound buffer (`pending_bytes_limit`) is full.
        """
        self.publish(msg.subject, msg.data, reply=msg.reply, headers=msg.headers)

    def respond_message(self, msg: Msg) -> bool:
        """Publish `msg` to its own reply subject; returns False (and sends nothing) when it has none.

        Raises:
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining (publishing has stopped).
            ServerOptionNotAvailableError: the message has headers and the server does not support them.
            MaxPayloadExceededError: the message exceeds the server's `max_payload`.
            OutboundBufferLimitError: the outbound buffer (`pending_bytes_limit`) is full.
        """
        if not msg.reply:
            return False
        self.publish(msg.reply, msg.data, headers=msg.headers)
        return True

    @staticmethod
    def _to_headers(headers: object) -> Headers | None:
        return to_headers(headers)

    def _set_state(self, state: _State) -> None:
        self._state = state
        self._pub_open = state < _State.DRAINING_PUBS
        if state >= _State.DRAINING_SUBS:
            self._mux.ready = False  # answers could no longer arrive in the shared inbox

    def _raise_closed_or_draining(self) -> None:
        if self._state == _State.CLOSED:
            raise ConnectionClosedError()
        raise ConnectionDrainingError()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._call_soon(self._flush_pending)

    def _log_out(self, data: bytes | bytearray) -> None:
        _log_lines("->>", data)

    def _write_now(self, extra: bytes) -> None:
        """Everything buffered, then ``extra`` (a PING or PONG), in this order, whatever the pause state."""
        transport = self._transport
        if transport is None:
            return
        if self._wb.pending:
            data = self._wb.take()
            if self._debug:
                _log_lines("->>", data)
            transport.write(data)
        if self._debug:
            _log_lines("->>", extra)
        transport.write(extra)

    # -- subscribing ------------------------------------------------------------------------------------------
    def subscribe(
        self,
        subject: str,
        *,
        queue: str | None = None,
        callback: MsgCallback | None = None,
        max: int | None = None,
        timeout: float | None = None,
        pending_msgs_limit: int | None = 524_288,
        pending_bytes_limit: int | None = 128 * 1024 * 1024,
        on_full: PendingPolicy = PendingPolicy.DROP,
    ) -> Subscription:
        """Subscribe to ``subject`` (wildcards allowed), optionally in a queue group.

        Raises:
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining.
            BadSubjectError: the subject or queue group is not valid.
            InvalidOptionError: ``max``, ``timeout``, a pending limit, ``callback`` or ``on_full`` is not valid.
        """
        if self._state >= _State.DRAINING_SUBS:
            self._raise_closed_or_draining()
        check_subject(subject, "subject")
        if queue is not None:
            check_subject(queue, "queue group")
        if max is not None and (isinstance(max, bool) or not isinstance(max, int) or max <= 0):
            raise InvalidOptionError(f"max must be a positive int, got {max!r}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
            raise InvalidOptionError(f"timeout must be a positive number of seconds, got {timeout!r}")
        for name, limit in (("pending_msgs_limit", pending_msgs_limit), ("pending_bytes_limit", pending_bytes_limit)):
            if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
                raise InvalidOptionError(f"{name} must be a positive int or None, got {limit!r}")
        if callback is not None and not callable(callback):
            raise InvalidOptionError("callback must be callable")
        try:
            policy = PendingPolicy(on_full)
        except ValueError:
            raise InvalidOptionError(f"on_full must be a PendingPolicy, got {on_full!r}") from None
        return self._subscribe(subject, queue, callback, max, timeout, pending_msgs_limit, pending_bytes_limit, policy)

    def _subscribe(
        self,
        subject: str,
        queue: str | None,
        callback: MsgCallback | None,
        max: int | None = None,
        timeout: float | None = None,
        pending_msgs_limit: int | None = _UNLIMITED,
        pending_bytes_limit: int | None = _UNLIMITED,
        on_full: PendingPolicy = PendingPolicy.DROP,
    ) -> Subscription:
        sid = self._next_sid
        self._next_sid += 1
        sub = Subscription(
            self._port,
            sid,
            subject,
            queue=queue or None,
            callback=callback,
            max=max,
            timeout=timeout,
            pending_msgs_limit=pending_msgs_limit,
            pending_bytes_limit=pending_bytes_limit,
            on_full=on_full,
        )
        self._subs[sid] = sub
        self._sinks[sid] = sub  # the parser calls the subscription itself (SubscriptionBase.__call__)
        untrack_while_live(sub)  # held here until forgotten: collections need not walk it (many may be alive)
        self._untrack_tables()
        if self._transport is not None:
            self._wb.subscribe(subject, sid, queue or None)
            if max is not None:
                self._wb.unsubscribe(sid, max)
            self._schedule_flush()
        return sub

    def _new_inbox(self) -> str:
        return f"{self._opts.inbox_prefix}.{nuid.next()}"

    def _set_sink(self, sid: int, sink: Callable[[Msg], object]) -> None:
        if sid in self._sinks:
            self._sinks[sid] = sink
            self._untrack_tables()

    def _untrack_tables(self) -> None:
        """Keep the sid tables off the collector's lists (an insertion puts a dict back on them): with 200,000
        subscriptions, walking the two tables was most of what each full collection cost. What they hold is held by
        this open connection, and ``close()`` empties them, so hiding them hides no collectable cycle."""
        untrack_while_live(self._subs)
        untrack_while_live(self._sinks)

    def _send_unsubscribe(self, sid: int, max: int | None) -> None:
        if self._transport is not None and sid in self._subs:
            self._wb.unsubscribe(sid, max)
            self._schedule_flush()

    def _forget_subscription(self, sub: Subscription, *, send_unsub: bool) -> None:
        sid = sub.sid
        if self._subs.get(sid) is sub:
            if send_unsub and self._transport is not None and self._state != _State.CLOSED:
                self._wb.unsubscribe(sid)
                self._schedule_flush()
            del self._subs[sid]
            self._sinks.pop(sid, None)
            retrack(sub)
        self._blocked.discard(sub)

    def _block_reading(self, sub: Subscription) -> None:
        if not self._blocked and self._transport is not None:
            self._transport.pause_reading()
        self._blocked.add(sub)

    def _unblock_reading(self, sub: Subscription) -> None:
        self._blocked.discard(sub)
        if not self._blocked and self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def _report_error(self, err: NatsError, *, permission_context: PermissionContext | None = None) -> None:
        """Emit ``err`` as an ERROR status event; ``last_error`` says it from now on."""
        self._reported_error = err
        self._status.emit(Status(Events.ERROR, err.code, permission_context=permission_context, error=err))

    def _report_slow_consumer(self, err: NatsError) -> None:
        logger.warning("%s", err)
        self._report_error(err)

    def _report_callback_error(self, exc: BaseException, subject: str, sid: int) -> None:
        logger.error("exception in a callback (subject %r, sid %d)", subject, sid, exc_info=exc)
        err = CallbackError(f"a callback raised {type(exc).__name__}: {exc}", subject=subject, sid=sid)
        err.__cause__ = exc
        self._report_error(err)

    # -- requests ------------------------------------------------------------------------------------------
    def _check_can_request(self) -> None:
        if self._state >= _State.DRAINING_SUBS:
            self._raise_closed_or_draining()

    def _mux_inbox(self) -> str:
        """The prefix of reply subjects served by the shared wildcard inbox subscription (created on first use)."""
        if self._resp_sub is None:
            self._resp_sub = self._subscribe(self._mux.prefix + "*", None, self._mux)
        return self._mux.prefix

    async def request(
        self,
        subject: str,
        payload: bytes | bytearray | memoryview | str = b"",
        *,
        timeout: float = 1.0,
        headers: Headers | Mapping[str, Any] | None = None,
        no_mux: bool = False,
        reply: str | None = None,
    ) -> Msg:
        """Publish with a reply subject and return the first response.

        Raises:
            NoRespondersError: no subscription listens on ``subject``.
            NatsTimeoutError: no response within ``timeout`` seconds.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            InvalidOptionError: ``timeout`` is not positive, or ``reply`` is given without ``no_mux``.
            BadSubjectError: the subject is not valid.
            MaxPayloadExceededError: the request exceeds the server's `max_payload`.
        """
        self._check_can_request()
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InvalidOptionError("timeout must be greater than 0")
        if reply is not None and not no_mux:
            raise InvalidOptionError("reply can only be used with noMux")
        if no_mux:
            return await self._request_no_mux(subject, payload, timeout, headers, reply)
        msg: Msg = await self._request_future(subject, payload, headers, timeout)
        return msg

    def _request_future(
        self, subject: str, payload: bytes | bytearray | memoryview | str, headers: Any, timeout: float
    ) -> Awaitable[Msg]:
        """``request()`` minus its own coroutine, for callers in this package whose arguments are valid: the future
        of the response (one coroutine fewer to resume per round trip on the KV and JetStream hot paths)."""
        if self._state >= _State.DRAINING_SUBS:
            self._raise_closed_or_draining()
        if self._resp_sub is None:
            self._mux_inbox()
        # the mux publishes, then records the future; the response, the deadline or close() settles it
        return self._mux.request(self, subject, payload, headers, timeout)

    def _ready_mux(self) -> None:
        """A pipelined publish found the shared inbox not ready: refuse once answers can no longer arrive (the
        inbox is being drained, or the connection is closed), else subscribe it."""
        if self._state >= _State.DRAINING_SUBS:
            self._raise_closed_or_draining()
        self._mux_inbox()
        self._mux.ready = True

    async def _request_no_mux(
        self,
        subject: str,
        payload: bytes | bytearray | memoryview | str,
        timeout: float,
        headers: Headers | Mapping[str, Any] | None,
        reply: str | None,
    ) -> Msg:
        inbox = reply if reply else f"{self._opts.inbox_prefix}.{nuid.next()}"
        check_subject(inbox, "reply subject")
        sub = self._subscribe(inbox, None, None, max=1)
        try:
            self.publish(subject, payload, reply=inbox, headers=headers)
            msg = await sub.next_msg(timeout)
        except NatsTimeoutError:
            raise NatsTimeoutError(f"request to {subject!r} timed out after {timeout} s") from None
        except SubscriptionClosedError:
            if self.is_closed:
                raise ConnectionClosedError() from None
            raise
        finally:
            sub.unsubscribe()
        check_no_responders(msg, subject)
        return msg

    async def request_many(
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
    ) -> AsyncIterator[Msg]:
        """Publish a request and return an iterator of the responses, ended by ``strategy``.

        Raises:
            InvalidOptionError: ``max_wait``, ``max_messages`` or ``jitter`` is not valid for the strategy, or the
                strategy is unknown.
            NoRespondersError: no subscription listens on ``subject``.
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining.
            BadSubjectError: the subject is not valid.
        """
        self._check_can_request()
        if isinstance(max_wait, bool) or not isinstance(max_wait, (int, float)) or max_wait <= 0:
            raise InvalidOptionError("max_wait must be greater than 0")
        try:
            strategy = RequestStrategy(strategy)
        except ValueError:
            raise InvalidOptionError(f"unknown request strategy {strategy!r}") from None
        if strategy is RequestStrategy.COUNT and max_messages <= 0:
            raise InvalidOptionError("max_messages must be greater than 0 with the count strategy")
        if strategy is RequestStrategy.JITTER_TIMER and jitter <= 0:
            raise InvalidOptionError("jitter must be greater than 0 with the jitterTimer strategy")
        it = RequestManyIterator(self._loop, strategy, max_wait, max_messages, jitter)
        if no_mux:
            token = nuid.next()
            inbox = f"{self._opts.inbox_prefix}.{token}"
            sub = self._subscribe(inbox, None, it.deliver)
            self._mux.add(token, it)  # not routed by the mux (another inbox), but failed by close() like the rest

            def end_no_mux() -> None:
                sub.unsubscribe()
                self._forget_waiter(token)
                self._scope.release(it)

            it.on_end = end_no_mux
        else:
            prefix = self._mux_inbox()
            token = self._mux.next_token()
            inbox = prefix + token
            self._mux.add(token, it)

            def end() -> None:
                self._forget_waiter(token)
                self._scope.release(it)

            it.on_end = end
        self._scope.adopt(it)
        try:
            self.publish(subject, payload, reply=inbox, headers=headers)
        except BaseException:
            it.end(None)
            raise
        it.start()
        return it

    def _fail_requests(self, error: Exception) -> None:
        self._mux.fail_all(error)

    def _forget_waiter(self, token: str) -> None:
        self._mux.forget(token)

    # -- flush, rtt ------------------------------------------------------------------------------------------
    async def flush(self, timeout: float | None = None) -> None:
        """Wait until the server has processed everything sent so far (a PING/PONG round trip).

        Raises:
            ConnectionClosedError: the connection is closed (also when it closes while waiting).
            NatsTimeoutError: no PONG within ``timeout`` seconds.
        """
        if self._state == _State.CLOSED:
            raise ConnectionClosedError()
        future: asyncio.Future[None] = self._loop.create_future()
        # the caller may stop waiting (cancelled, timed out): a close failing the future later is then nobody's error
        future.add_done_callback(_retrieve_exception)
        if self._transport is not None and self._state != _State.CONNECTING:
            self._pongs.append(future)
            self._write_now(_PING)
        else:
            self._pending_flushes.append(future)  # pinged after the reconnect
        if timeout is None:
            await asyncio.shield(future)
            return
        # Not asyncio.wait_for: before Python 3.12 it can swallow a cancellation that arrives as the PONG does
        # (a Ctrl-C'd `cnats pub` then went on publishing). A waiter of our own, woken by the PONG or the timer.
        waiter: asyncio.Future[None] = self._loop.create_future()

        def wake(_: object = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        future.add_done_callback(wake)
        timer = self._loop.call_later(timeout, wake)
        try:
            await waiter
        finally:
            timer.cancel()
            future.remove_done_callback(wake)
        if not future.done():
            raise NatsTimeoutError(f"flush timed out after {timeout} s")
        future.result()  # the connection's error, if it closed meanwhile

    async def rtt(self) -> float:
        """Seconds for one PING/PONG round trip to the server.

        Raises:
            ConnectionClosedError: the connection is closed.
            DisconnectedError: the connection is reconnecting.
        """
        if self._state == _State.CLOSED:
            raise ConnectionClosedError()
        if self._transport is None or self._state == _State.RECONNECTING:
            raise DisconnectedError()
        start = time.perf_counter()  # not loop.time(): uvloop's clock ticks in milliseconds
        await self.flush()
        return time.perf_counter() - start

    def _send_pong(self) -> None:
        self._write_now(_PONG)

    def _on_pong(self) -> None:
        self._pings_out = 0
        if self._pongs:
            waiter = self._pongs.popleft()
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    # -- ping timer ------------------------------------------------------------------------------------------
    def _start_ping_timer(self) -> None:
        self._stop_ping_timer()
        self._pings_out = 0
        self._ping_timer = self._loop.call_later(self._opts.ping_interval, self._on_ping_timer)

    def _stop_ping_timer(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None

    def _on_ping_timer(self) -> None:
        self._ping_timer = None
        if self._transport is None or self._state in (_State.CLOSED, _State.RECONNECTING, _State.CONNECTING):
            return
        self._status.emit(Status(DebugEvents.PING_TIMER, self._pings_out + 1))
        if self._pings_out >= self._opts.max_ping_out:
            self._status.emit(Status(DebugEvents.STALE_CONNECTION, ""))
            self._last_error = NatsTimeoutError("stale connection: the server did not answer PINGs")
            self._drop_transport()
            return
        self._pings_out += 1
        self._pongs.append(None)
        self._write_now(_PING)
        self._ping_timer = self._loop.call_later(self._opts.ping_interval, self._on_ping_timer)

    # -- server events ------------------------------------------------------------------------------------------
    def _on_async_info(self, info: dict[str, Any]) -> None:
        self._apply_info(info, initial=False)

    def _apply_info(self, info: dict[str, Any], *, initial: bool) -> None:
        parsed = ServerInfo.from_dict(info)
        self._info = parsed
        self._wb.max_payload = parsed.max_payload
        if self._parser is not None:
            self._parser.max_payload = parsed.max_payload
        self._headers_ok = parsed.headers
        if parsed.connect_urls and not self._opts.ignore_cluster_updates:
            # (a WebSocket pool's TLS is its scheme: wss:// servers announce theirs as ws:// ones do)
            tls = any(s.tls_required for s in self._pool.servers)
            if not self._pool.websocket:
                tls = tls or bool(parsed.tls_required)
            added, deleted = self._pool.update_discovered(parsed.connect_urls, tls)
            if (added or deleted) and not initial:
                self._status.emit(Status(Events.UPDATE, ServersChanged(added=added, deleted=deleted)))
        if parsed.ldm and not initial:
            self._status.emit(Status(Events.LDM, self.server))

    def _on_server_error(self, proto: _NatsProtocol, text: str) -> None:
        err = error_from_server(text)
        context = None
        if isinstance(err, PermissionViolationError):
            context = PermissionContext(err.operation, err.subject, err.queue)
        self._report_error(err, permission_context=context)
        if isinstance(err, PermissionViolationError):
            if err.operation == "subscription":
                for sub in list(self._subs.values()):
                    if sub.subject == err.subject and sub.queue == err.queue:
                        if sub is self._resp_sub:
                            self._resp_sub = None
                            self._mux.ready = False
                            self._fail_requests(err)
                        sub._abandon(err)
            return
        logger.warning("server error: %s", err)
        self._last_error = err  # the server closes the connection after any other -ERR

    def _on_fatal_error(self, proto: _NatsProtocol, err: NatsError) -> None:
        if proto is not self._protocol:
            return
        logger.error("%s", err)
        self._report_error(err)
        self._last_error = err
        self._drop_transport()

    def _drop_transport(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _on_connection_lost(self, proto: _NatsProtocol, exc: Exception | None) -> None:
        if proto is not self._protocol:
            return  # a handshake that failed, or a socket we already left
        self._protocol = None
        self._transport = None
        self._write_paused = False
        self._blocked.clear()
        self._stop_ping_timer()
        parser = self._parser
        if parser is not None:
            self._in_msgs_base += parser.in_msgs
            self._in_bytes_base += parser.in_bytes
            self._parser = None
        # PINGs of the lost socket will never be answered: ask again after the reconnect.
        self._pending_flushes.extend(f for f in self._pongs if f is not None and not f.done())
        self._pongs.clear()
        if self._state == _State.CLOSED:
            return
        if exc is not None and self._last_error is None:
            self._last_error = DisconnectedError(f"connection lost: {exc}")
        server = self._pool.current
        self._status.emit(Status(Events.DISCONNECT, server.hostport if server else ""))
        if self._opts.reconnect and self._state in (_State.CONNECTED, _State.DRAINING_SUBS, _State.DRAINING_PUBS):
            if self._state == _State.CONNECTED:
                self._set_state(_State.RECONNECTING)
            self._reconnect_task = self._scope.spawn(self._reconnect_loop(), "reconnect")
        else:
            self._close_now(self._last_error or DisconnectedError("connection lost"))

    # -- connecting ------------------------------------------------------------------------------------------
    async def _connect_first(self) -> None:
        """Try every server once (or forever with wait_on_first_connect); raise the last error."""
        last: Exception | None = None
        while True:
            for _ in range(len(self._pool)):
                server = self._pool.next_server()
                if server is None:
                    break
                if self._opts.wait_on_first_connect:
                    await self._wait_before(server)
                try:
                    await self._attempt(server)
                    return
                except NatsError as exc:
                    last = exc
                    server.failed_attempts += 1
                except BaseException as exc:
                    self._close_now(exc if isinstance(exc, Exception) else None)
                    raise
            if not self._opts.wait_on_first_connect:
                self._set_state(_State.CLOSED)
                self._scope.close(last)
                self._status.close()
                self._closed.set_result(last)
                assert last is not None
                raise last

    def _reconnect_delay(self, server: ServerAddress) -> float:
        handler = self._opts.reconnect_delay_handler
        if handler is not None:
            return float(handler())
        tls = server.tls_required or self._opts.tls not in (None, False)
        jitter = self._opts.reconnect_jitter_tls if tls else self._opts.reconnect_jitter
        return self._opts.reconnect_time_wait + random.uniform(0, jitter)

    async def _wait_before(self, server: ServerAddress) -> None:
        if server.last_attempt is None:
            return
        remaining = server.last_attempt + self._reconnect_delay(server) - self._loop.time()
        if remaining > 0:
            await asyncio.sleep(remaining)

    async def _reconnect_loop(self) -> None:
        opts = self._opts
        last_auth_error: str | None = None
        try:
            while not self.is_closed:
                server = self._pool.next_server()
                if server is None:
                    self._close_now(self._last_error or NatsConnectionRefusedError("no servers left to connect to"))
                    return
                await self._wait_before(server)
                if self.is_closed:
                    return
                self._status.emit(Status(DebugEvents.RECONNECTING, server.hostport))
                try:
                    await self._attempt(server)
                except Exception as exc:  # noqa: BLE001 - any failure (an authenticator's too) fails this attempt only
                    self._last_error = exc
                    server.failed_attempts += 1
                    if isinstance(exc, AuthError) and not opts.ignore_auth_error_abort:
                        if last_auth_error == exc.code:
                            self._close_now(exc)
                            return
                        last_auth_error = exc.code
                    else:
                        last_auth_error = None
                    if opts.max_reconnect_attempts != -1 and server.failed_attempts >= opts.max_reconnect_attempts:
                        self._pool.remove(server)
                    continue
                self._status.emit(Status(Events.RECONNECT, server.hostport))
                return
        finally:
            task = self._reconnect_task
            if task is not None and (task.done() or task is current_task()):
                self._reconnect_task = None

    async def _attempt(self, server: ServerAddress) -> None:
        server.last_attempt = self._loop.time()
        proto = (_DebugProtocol if self._debug else _NatsProtocol)(self)
        parser = Parser(proto, msg_class=Msg, client=self._weakself)
        parser.subs = self._sinks
        proto.attach(parser)
        try:
            await asyncio.wait_for(self._handshake(server, proto), self._opts.timeout)
        except asyncio.TimeoutError:
            if proto.transport is not None:
                proto.transport.abort()
            raise ConnectionTimeoutError(f"timed out connecting to {server.hostport}") from None
        except ssl.SSLError as exc:  # an OSError too: the TLS-first handshake happens while connecting
            if proto.transport is not None:
                proto.transport.abort()
            raise TlsError(f"TLS handshake with {server.hostport} failed: {exc}") from exc
        except OSError as exc:
            if proto.transport is not None:
                proto.transport.abort()
            raise NatsConnectionRefusedError(f"could not connect to {server.hostport}: {exc}") from exc
        except BaseException:
            if proto.transport is not None:
                proto.transport.abort()
            raise
        # The socket may have failed in the very read that completed the handshake (a bad frame right after the
        # PONG, or the server hanging up): then this attempt failed, even though the handshake itself succeeded.
        if proto.error is not None or proto.lost.done() or proto.transport is None or proto.transport.is_closing():
            if proto.transport is not None:
                proto.transport.abort()
            raise proto.error or DisconnectedError(f"connection to {server.hostport} lost during the handshake")
        self._established(server, proto, parser)

    async def _handshake(self, server: ServerAddress, proto: _NatsProtocol) -> None:
        loop = self._loop
        opts = self._opts
        tls_first = opts.tls_handshake_first and opts.tls not in (None, False)
        name = opts.tls_hostname or server.host  # what the certificate must name, and the SNI
        if server.websocket:  # TLS, if any, is the scheme's (wss://), below the WebSocket
            await open_websocket(
                loop,
                proto,
                server,
                ssl_context=self._ssl_context() if server.tls_required else None,
                server_hostname=name if server.tls_required else None,
                headers=opts.ws_headers or {},
            )
            tls_first = True
        elif tls_first:
            await loop.create_connection(
                lambda: proto, server.host, server.port, ssl=self._ssl_context(), server_hostname=name
            )
        else:
            await loop.create_connection(lambda: proto, server.host, server.port)
        info = await proto.info_future
        if not tls_first and self._wants_tls(server, info):
            transport = proto.transport
            assert transport is not None
            try:
                upgraded = await loop.start_tls(transport, proto, self._ssl_context(), server_hostname=name)
            except (ssl.SSLError, ssl.CertificateError) as exc:
                raise TlsError(f"TLS handshake with {server.hostport} failed: {exc}") from exc
            proto.transport = upgraded
        transport = proto.transport
        assert transport is not None
        connect = self._connect_payload(server, info)
        connect["tls_required"] = transport.get_extra_info("sslcontext") is not None
        wb = WriteBuffer()
        wb.connect(connect)
        wb.ping()
        data = wb.take()
        if self._debug:
            _log_lines("->>", data)
        transport.write(data)
        await proto.pong_future
        proto.established = True
        proto.info = info  # type: ignore[attr-defined]

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = client_ssl_context(self._opts.tls)
        return self._ssl

    def _wants_tls(self, server: ServerAddress, info: dict[str, Any]) -> bool:
        tls = self._opts.tls
        if tls is False:
            if info.get("tls_required"):
                raise TlsError("the server requires TLS and tls=False was given")
            return False
        if tls is None and not server.tls_required:
            return bool(info.get("tls_required"))
        if not (info.get("tls_required") or info.get("tls_available")):
            raise ServerOptionNotAvailableError("TLS was requested but the server does not offer it")
        return True

    def _connect_payload(self, server: ServerAddress, info: dict[str, Any]) -> dict[str, Any]:
        opts = self._opts
        headers = bool(info.get("headers"))
        if opts.no_echo and int(info.get("proto", 0)) < 1:
            raise ServerOptionNotAvailableError("the server does not support no_echo")
        payload: dict[str, Any] = {
            "verbose": opts.verbose,
            "pedantic": opts.pedantic,
            "tls_required": False,
            "lang": "python3",
            "version": _version,
            "protocol": 1,
            "echo": not opts.no_echo,
            "headers": headers,
            "no_responders": headers,
        }
        if opts.name is not None:
            payload["name"] = opts.name
        payload.update(self._credentials(server, info.get("nonce")))
        return payload

    def _credentials(self, server: ServerAddress, nonce: str | None) -> dict[str, Any]:
        """CONNECT auth fields, merged from every source in the documented order (later sources win)."""
        opts = self._opts
        sources: list[Authenticator] = list(opts.authenticators)
        if opts.token is not None:
            sources.append(token_authenticator(opts.token))
        if opts.user is not None:
            sources.append(user_password_authenticator(opts.user, opts.password))
        if opts.nkey_seed is not None:
            sources.append(nkey_authenticator(opts.nkey_seed))
        if opts.user_credentials is not None:
            path = Path(opts.user_credentials)
            sources.append(creds_authenticator(path.read_bytes))
        if not sources and server.username is not None:  # URL userinfo, only when nothing else is given
            if server.password is not None:
                sources.append(user_password_authenticator(server.username, server.password))
            else:
                sources.append(token_authenticator(server.username))
        fields: dict[str, Any] = {}
        for auth in sources:
            extra = auth(nonce)
            if extra:
                fields.update(extra)
        return fields

    def _established(self, server: ServerAddress, proto: _NatsProtocol, parser: Any) -> None:
        reconnecting = self._state != _State.CONNECTING
        self._protocol = proto
        self._transport = proto.transport
        self._parser = parser
        self._pool.current = server
        server.did_connect = True
        server.failed_attempts = 0
        self._last_error = None
        self._apply_info(proto.info, initial=True)  # type: ignore[attr-defined]
        if self._state in (_State.CONNECTING, _State.RECONNECTING):
            self._set_state(_State.CONNECTED)
        # Subscriptions first (with what is left of their max), then what was published meanwhile, then PINGs
        # for the flushes that waited.
        if reconnecting:
            wb = WriteBuffer()
            for sub in self._subs.values():
                if sub._draining:  # its UNSUB could not be sent while disconnected: do not bring it back
                    continue
                wb.subscribe(sub.subject, sub.sid, sub.queue)
                if sub.max is not None:
                    wb.unsubscribe(sub.sid, max(sub.max - sub.received, 1))
            if wb.pending:
                assert self._transport is not None
                self._transport.write(wb.take())
        self._flush_pending()
        flushes, self._pending_flushes = self._pending_flushes, []
        for future in flushes:
            if not future.done():
                self._pongs.append(future)
                self._write_now(_PING)
        self._start_ping_timer()

    # -- JetStream -----------------------------------------------------------------------------------------
    def jetstream(
        self,
        *,
        domain: str | None = None,
        api_prefix: str = "$JS.API",
        timeout: float = 5.0,
        publish_async_max_pending: int = 4000,
        publish_async_stall_wait: float = 5.0,
    ) -> JetStreamClient:
        """A JetStream client (no I/O). ``publish_async`` waits while ``publish_async_max_pending`` acknowledgements
        are outstanding, at most ``publish_async_stall_wait`` seconds (then ``NatsTimeoutError``).

        Raises:
            InvalidOptionError: ``domain`` and a non-default ``api_prefix`` are both given, or ``timeout``,
                ``publish_async_max_pending`` or ``publish_async_stall_wait`` is not positive.
        """
        from .jetstream.client import JetStreamClient
        from .jetstream.context import JetStreamOptions

        options = JetStreamOptions.build(domain=domain, api_prefix=api_prefix, timeout=timeout)
        return JetStreamClient(
            self,
            options,
            publish_async_max_pending=publish_async_max_pending,
            publish_async_stall_wait=publish_async_stall_wait,
        )

    async def jetstream_manager(
        self, *, domain: str | None = None, api_prefix: str = "$JS.API", timeout: float = 5.0, check_api: bool = True
    ) -> JetStreamManager:
        """A JetStream manager; with ``check_api`` an account-info request checks JetStream is there.

        Raises:
            JetStreamNotEnabledError: with ``check_api``, JetStream is not enabled for the account or server.
            NoRespondersError: with ``check_api``, nothing answers the JetStream API (no JetStream, or a wrong
                domain or prefix).
            NatsTimeoutError: with ``check_api``, the account-info request timed out.
            InvalidOptionError: ``domain`` and a non-default ``api_prefix`` are both given, or ``timeout`` is not
                positive.
        """
        from .jetstream.context import JetStreamOptions
        from .jetstream.manager import JetStreamManager

        options = JetStreamOptions.build(domain=domain, api_prefix=api_prefix, timeout=timeout)
        jsm = JetStreamManager(self, options)
        if check_api:
            await jsm.get_account_info()
        return jsm

    # -- services -----------------------------------------------------------------------------------------
    @property
    def services(self) -> ServicesAPI:
        """The services framework (ADR-32 micro): ``add`` a service, or a ``client()`` to discover them."""
        from .services import ServicesAPI

        return ServicesAPI(self)

    # -- closing ------------------------------------------------------------------------------------------
    async def reconnect(self) -> None:
        """Drop the current socket and follow the reconnect policy (a no-op while disconnected).

        Raises:
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining.
        """
        if self._state == _State.CLOSED:
            raise ConnectionClosedError()
        if self.is_draining:
            raise ConnectionDrainingError()
        if self._transport is None:
            return
        self._status.emit(Status(DebugEvents.CLIENT_INITIATED_RECONNECT, ""))
        self._drop_transport()

    async def drain(self, timeout: float | None = 30.0) -> None:
        """Drain everything built on the connection (consumers and watchers stop pulling, subscriptions deliver what
        they received), stop publishing, flush, close; ``closed`` then resolves None. When that takes longer than
        ``timeout`` seconds the connection is closed anyway, ``closed`` resolves with ``DrainTimeoutError`` and it
        is raised. ``None`` waits without limit.

        Raises:
            ConnectionClosedError: the connection is already closed.
            ConnectionDrainingError: the connection is already draining.
            InvalidOptionError: ``timeout`` is not a positive number or None.
            DrainTimeoutError: the drain did not finish within ``timeout``; the connection was closed anyway.
        """
        if self._state == _State.CLOSED:
            raise ConnectionClosedError()
        if self.is_draining:
            raise ConnectionDrainingError()
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
            raise InvalidOptionError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        self._set_state(_State.DRAINING_SUBS)
        try:
            await asyncio.wait_for(self._drain(), timeout)
        except asyncio.TimeoutError:
            err = DrainTimeoutError(f"drain did not finish within {timeout} s; the connection was closed")
            await self._close(err)
            raise err from None
        await self.close()

    async def _drain(self) -> None:
        # First what is built on subscriptions (consumers, watchers, services: they stop asking for more), then the
        # subscriptions themselves, the shared request inbox last (requests in flight still get their answers).
        await self._scope.drain()
        subs = [s for s in self._subs.values() if s is not self._resp_sub]
        results = await asyncio.gather(*(s.drain_owned() for s in subs), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, NatsError):
                logger.warning("error while draining a subscription: %r", result)
        if self._resp_sub is not None and not self._resp_sub.is_closed:
            await asyncio.gather(self._resp_sub.drain_owned(), return_exceptions=True)
        if self.is_closed:  # closed while draining
            return
        self._set_state(_State.DRAINING_PUBS)
        with contextlib.suppress(NatsError):
            await self.flush()

    async def close(self) -> None:
        """Close the connection (idempotent): everything built on it ends (iterators hand out what they hold, then
        end), every task cnats started is cancelled and awaited. Buffered data is written best-effort; use flush()
        for a guarantee.

        Raises:
            Nothing: closing an already closed connection is a no-op.
        """
        if (
            self._state in (_State.CONNECTED, _State.DRAINING_SUBS, _State.DRAINING_PUBS)
            and self._transport is not None
        ):
            # Everything built on the connection ends first, while it is still up, so that a consumer a cancelled
            # request created anyway can still be deleted (best-effort, bounded).
            self._scope.end_children()
            await self._scope.settle(_SETTLE_TIMEOUT)
        await self._close(None)

    async def _close(self, error: Exception | None) -> None:
        proto = self._protocol
        self._close_now(error)
        if proto is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(proto.lost), 1.0)
        await self._scope.wait_closed()
        await asyncio.shield(self._closed)

    def _close_now(self, error: Exception | None) -> None:
        if self._state == _State.CLOSED:
            return
        if isinstance(error, NatsError):
            self._reported_error = error
        self._set_state(_State.CLOSED)
        self._stop_ping_timer()
        task = self._reconnect_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._reconnect_task = None
        transport = self._transport
        if transport is not None:
            if self._wb.pending:
                transport.write(self._wb.take())
            transport.close()
        closed = ConnectionClosedError("connection closed")
        for future in [*self._pongs, *self._pending_flushes]:
            if future is not None and not future.done():
                future.set_exception(closed)
        self._pongs.clear()
        self._pending_flushes.clear()
        # what the connection handed out ends first (its iterators end as the contract says, before the requests
        # still waiting fail with ConnectionClosedError), then the subscriptions themselves
        self._scope.close(error)
        self._fail_requests(closed)
        for sub in list(self._subs.values()):
            sub.connection_closed(error)
        self._status.close()
        if not self._closed.done():
            self._closed.set_result(error)

    async def __aenter__(self) -> NatsConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def port_of(nc: NatsConnection) -> Port:
    """The internal interface of ``nc`` for the layers built on it (``cnats.port``)."""
    return nc._port


async def connect(
    servers: str | Sequence[str] | None = None,
    *,
    port: int | None = None,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
    authenticator: Authenticator | Sequence[Authenticator] | None = None,
    nkey_seed: str | bytes | None = None,
    user_credentials: str | None = None,
    name: str | None = None,
    timeout: float = 20.0,
    reconnect: bool = True,
    max_reconnect_attempts: int = 10,
    reconnect_time_wait: float = 2.0,
    reconnect_jitter: float = 0.1,
    reconnect_jitter_tls: float = 1.0,
    reconnect_delay_handler: Callable[[], float] | None = None,
    wait_on_first_connect: bool = False,
    ping_interval: float = 120.0,
    max_ping_out: int = 2,
    no_randomize: bool = False,
    ignore_cluster_updates: bool = False,
    ignore_auth_error_abort: bool = False,
    resolve: bool = True,
    no_echo: bool = False,
    verbose: bool = False,
    pedantic: bool = False,
    inbox_prefix: str = "_INBOX",
    tls: TlsOptions | ssl.SSLContext | bool | None = None,
    tls_handshake_first: bool = False,
    tls_hostname: str | None = None,
    ws_headers: Mapping[str, str] | None = None,
    pending_bytes_limit: int = 8 * 1024 * 1024,
    debug: bool = False,
) -> NatsConnection:
    """Connect to a NATS server; every option is described in the connecting guide.

    Raises:
        InvalidOptionError: an option is not valid (a bad URL, conflicting credentials, a non-positive duration).
        BadCredsError: the credentials file or NKey seed cannot be read or parsed.
        NatsConnectionRefusedError: no server accepted the connection (the last server's error).
        ConnectionTimeoutError: connecting to the server took longer than ``timeout``.
        TlsError: the TLS handshake failed, or the server requires TLS and ``tls=False`` was given.
        ServerOptionNotAvailableError: the server does not offer what was asked (TLS, ``no_echo``).
        AuthorizationError: the server rejected the credentials.
        ProtocolError: the server sent something that is not the NATS protocol.
    """
    options = ConnectOptions.build(
        servers,
        port,
        user=user,
        password=password,
        token=token,
        authenticator=authenticator,
        nkey_seed=nkey_seed,
        user_credentials=user_credentials,
        name=name,
        timeout=timeout,
        reconnect=reconnect,
        max_reconnect_attempts=max_reconnect_attempts,
        reconnect_time_wait=reconnect_time_wait,
        reconnect_jitter=reconnect_jitter,
        reconnect_jitter_tls=reconnect_jitter_tls,
        reconnect_delay_handler=reconnect_delay_handler,
        wait_on_first_connect=wait_on_first_connect,
        ping_interval=ping_interval,
        max_ping_out=max_ping_out,
        no_randomize=no_randomize,
        ignore_cluster_updates=ignore_cluster_updates,
        ignore_auth_error_abort=ignore_auth_error_abort,
        resolve=resolve,
        no_echo=no_echo,
        verbose=verbose,
        pedantic=pedantic,
        inbox_prefix=inbox_prefix,
        tls=tls,
        tls_handshake_first=tls_handshake_first,
        tls_hostname=tls_hostname,
        ws_headers=ws_headers,
        pending_bytes_limit=pending_bytes_limit,
        debug=debug,
    )
    nc = NatsConnection(options)
    await nc._connect_first()
    return nc
