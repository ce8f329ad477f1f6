"""The WebSocket transport: the NATS protocol carried in RFC 6455 binary frames to a server's ``websocket {}``
listener (``ws://`` and ``wss://`` URLs).

It sits between the socket and the connection's protocol object, which sees an ordinary transport: what it writes
leaves as one binary frame, and the payload of every frame received goes to the same protocol core as a TCP
connection's bytes (frames do not align with protocol lines; the core's parser does not care). The framing itself
is the ``websockets`` library's sans-I/O client (extra ``cnats[websocket]``); no compression is negotiated.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import InvalidOptionError, NatsConnectionRefusedError, ProtocolError

try:
    from websockets.client import ClientProtocol
    from websockets.frames import Frame, Opcode
    from websockets.http11 import Response
    from websockets.uri import parse_uri
except ImportError:  # the extra is not installed: check_available() says so when a ws:// server is given
    ClientProtocol = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from .servers import ServerAddress

__all__ = ["check_available", "check_headers", "open_websocket"]

_MISSING = "ws:// and wss:// servers need the websockets package: pip install 'cnats[websocket]'"


def check_available() -> None:
    """Raises ``InvalidOptionError`` naming the extra when the ``websockets`` package is not installed."""
    if ClientProtocol is None:
        raise InvalidOptionError(_MISSING)


def check_headers(headers: object) -> dict[str, str]:
    """``ws_headers`` as a plain dict, after checking it can be sent as HTTP header lines."""
    if not isinstance(headers, Mapping):
        raise InvalidOptionError(f"ws_headers must be a mapping of str to str, not {type(headers).__name__}")
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidOptionError("ws_headers must map str to str")
        if not name or any(c in name for c in ":\r\n \t") or any(c in value for c in "\r\n"):
            raise InvalidOptionError(f"invalid ws_headers entry {name!r}")
        out[name] = value
    return out


async def open_websocket(
    loop: asyncio.AbstractEventLoop,
    inner: asyncio.BaseProtocol,
    server: ServerAddress,
    *,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
    headers: Mapping[str, str],
) -> None:
    """Connects to ``server``, runs the opening handshake, then hands ``inner`` a transport of its own
    (``inner.connection_made``): from then on ``inner`` receives the NATS bytes and writes NATS bytes.

    Raises ``NatsConnectionRefusedError`` when the server refuses the upgrade, ``OSError`` when the socket cannot
    be opened, and ``ssl.SSLError`` when the TLS handshake of ``wss://`` fails.
    """
    uri = parse_uri(f"{server.scheme}://{server.hostport}{server.path}")
    ws = ClientProtocol(uri, max_size=None)  # the protocol core bounds what it accepts (max_payload)
    adapter = _SocketProtocol(ws, inner, loop)
    if ssl_context is not None:
        await loop.create_connection(
            lambda: adapter, server.host, server.port, ssl=ssl_context, server_hostname=server_hostname
        )
    else:
        await loop.create_connection(lambda: adapter, server.host, server.port)
    try:
        request = ws.connect()
        for name, value in headers.items():
            request.headers[name] = value
        ws.send_request(request)
        adapter.send_pending()
        await adapter.opened
    except BaseException:
        if adapter.socket is not None:
            adapter.socket.abort()
        raise


_DATA = (Opcode.BINARY, Opcode.CONT, Opcode.TEXT) if ClientProtocol is not None else ()


class _SocketProtocol(asyncio.Protocol):
    """The socket's protocol: unframes what arrives for the inner (NATS) protocol, and answers pings and closes."""

    def __init__(self, ws: ClientProtocol, inner: asyncio.BaseProtocol, loop: asyncio.AbstractEventLoop) -> None:
        self.ws = ws
        self.inner = inner
        self.socket: asyncio.Transport | None = None
        self.transport: WebSocketTransport | None = None  # the inner protocol's transport, once upgraded
        self.opened: asyncio.Future[None] = loop.create_future()
        self.opened.add_done_callback(_retrieve)
        self._reported = False  # a broken frame was reported to the inner protocol
        # the inner protocol reads through a buffer of its own (BufferedProtocol) or takes bytes (Protocol)
        self._feed = self._buffered_feed if isinstance(inner, asyncio.BufferedProtocol) else inner.data_received  # type: ignore[attr-defined]

    def _buffered_feed(self, data: bytes | bytearray | memoryview) -> None:
        inner: asyncio.BufferedProtocol = self.inner  # type: ignore[assignment]
        view = memoryview(data)
        while view:
            buffer = memoryview(inner.get_buffer(len(view)))
            n = min(len(buffer), len(view))
            buffer[:n] = view[:n]
            inner.buffer_updated(n)
            view = view[n:]

    def send_pending(self) -> None:
        socket = self.socket
        if socket is None or socket.is_closing():
            return
        for data in self.ws.data_to_send():
            if data:
                socket.write(data)
            else:  # the end of the stream: the close handshake is done
                socket.close()
                return

    # -- asyncio protocol ------------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.socket = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Response):
                self._upgraded()
            elif (
                isinstance(event, Frame)
                and event.opcode in _DATA
                and event.data
                and self.transport is not None
                and not self.transport.is_closing()
            ):
                self._feed(event.data)
        self.send_pending()
        if ws.parser_exc is not None and self.transport is not None and not self._reported:
            # a frame that breaks RFC 6455 is hostile input, reported like a broken NATS frame
            self._reported = True
            report = getattr(self.inner, "on_protocol_error", None)
            if report is not None:
                report(ProtocolError(f"invalid WebSocket frame from the server: {ws.parser_exc}"))
        if ws.handshake_exc is not None and not self.opened.done():
            exc = ws.handshake_exc
            self.opened.set_exception(NatsConnectionRefusedError(f"WebSocket upgrade refused: {exc}"))
            if self.socket is not None:
                self.socket.abort()

    def _upgraded(self) -> None:
        if self.ws.handshake_exc is not None or self.socket is None:
            return
        self.transport = WebSocketTransport(self)
        if not self.opened.done():
            self.opened.set_result(None)
        self.inner.connection_made(self.transport)

    def eof_received(self) -> bool:
        self.ws.receive_eof()
        self.send_pending()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or NatsConnectionRefusedError("the server closed the WebSocket upgrade"))
        if self.transport is not None:
            self.transport.closing = True
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.inner.resume_writing()


class WebSocketTransport(asyncio.Transport):
    """What the NATS protocol writes to: each write leaves as one binary frame; the rest is the socket's."""

    def __init__(self, socket_protocol: _SocketProtocol) -> None:
        super().__init__()
        self._proto = socket_protocol
        self._ws = socket_protocol.ws
        assert socket_protocol.socket is not None
        self._socket: asyncio.Transport = socket_protocol.socket
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closing or not data:
            return
        self._ws.send_binary(data)
        for chunk in self._ws.data_to_send():
            self._socket.write(chunk)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def is_closing(self) -> bool:
        return self.closing or self._socket.is_closing()

    def close(self) -> None:
        """The WebSocket close handshake, then the socket closes (the server answers, or its end of the stream)."""
        if self.closing:
            return
        self.closing = True
        self._ws.send_close()
        self._proto.send_pending()
        self._socket.close()

    def abort(self) -> None:
        self.closing = True
        self._socket.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._socket.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return self._socket.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._socket.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._socket.set_write_buffer_limits(high, low)

    def pause_reading(self) -> None:
        self._socket.pause_reading()

    def resume_reading(self) -> None:
        self._socket.resume_reading()

    def is_reading(self) -> bool:
        return self._socket.is_reading()

    def can_write_eof(self) -> bool:
        return False

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._proto.inner = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._proto.inner


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
