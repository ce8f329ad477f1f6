"""``ChaosProxy``: a TCP proxy between clients and a real server that injects faults on command.

Used where a real server alone cannot produce the fault: a network that silently drops everything (no FIN), added
latency, a connection cut in the middle of a frame, refused connections, or raw bytes pushed to the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Coroutine
from typing import Any

__all__ = ["ChaosProxy"]

_READ = 65536


def _host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[-1]
    rest = rest.rsplit("@", 1)[-1]
    host, _, port = rest.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def _background(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task of the proxy's own (it is a test tool, not a connection: it keeps its tasks itself)."""
    return asyncio.get_running_loop().create_task(coro)


class _Pipe:
    """One proxied connection: client <-> upstream, two copying tasks."""

    def __init__(
        self,
        proxy: ChaosProxy,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.proxy = proxy
        self.client_reader, self.client_writer = client
        self.up_reader, self.up_writer = upstream
        self.cut_mid_frame = False
        self.tasks = [
            _background(self._copy(self.client_reader, self.up_writer)),
            _background(self._copy(self.up_reader, self.client_writer, to_client=True)),
        ]

    async def _copy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, to_client: bool = False) -> None:
        try:
            while True:
                data = await reader.read(_READ)
                if not data:
                    break
                if self.proxy._blackhole:
                    continue  # swallowed: nothing goes through, and no FIN either
                if to_client and self.cut_mid_frame:
                    writer.write(data[: max(1, len(data) // 2)])
                    await writer.drain()
                    self.close()
                    return
                if self.proxy._latency > 0:
                    await asyncio.sleep(self.proxy._latency)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        for writer in (self.client_writer, self.up_writer):
            with contextlib.suppress(Exception):
                writer.close()
        self.proxy._pipes.discard(self)
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current and not task.done():
                task.cancel()


class ChaosProxy:
    """A fault-injecting TCP proxy in front of ``upstream`` (a server URL); give clients :attr:`url`."""

    def __init__(self, upstream: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._upstream = _host_port(upstream)
        self._host = host
        if port == 0:
            with socket.socket() as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        self._port = port
        self._server: asyncio.base_events.Server | None = None
        self._pipes: set[_Pipe] = set()
        self._blackhole = False
        self._latency = 0.0
        self._refusing = False
        self._pending_listen: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self._host}:{self._port}"

    @property
    def connections(self) -> int:
        return len(self._pipes)

    async def start(self) -> ChaosProxy:
        """Listen on :attr:`url` and forward every connection to the upstream server; returns ``self``.

        Raises:
            OSError: the address cannot be listened on (the port is taken).
        """
        await self._listen()
        return self

    async def _listen(self) -> None:
        await self._serve(socket.create_server((self._host, self._port)))

    async def stop(self) -> None:
        # Close the listener, then the pipes, then wait: since Python 3.12.1 ``wait_closed()`` also waits for every
        # connection the server accepted, which only closing the pipes ends.
        """Stop listening and close every proxied connection.

        Raises:
            Nothing: stopping a stopped proxy does nothing.
        """
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for pipe in list(self._pipes):
            pipe.close()
        if server is not None:
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.close()  # the server is down: the client sees the connection end, as with a dead server
            return
        self._pipes.add(_Pipe(self, (reader, writer), upstream))

    def blackhole(self, on: bool = True) -> None:
        """Stop forwarding in both directions, keeping the sockets open (no FIN): a silent network.

        Raises:
            Nothing: it only sets a flag.
        """
        self._blackhole = on

    def set_latency(self, seconds: float) -> None:
        """Delay every forwarded chunk by ``seconds`` (each direction).

        Raises:
            Nothing: a negative delay counts as none.
        """
        self._latency = max(0.0, seconds)

    def cut(self, *, mid_frame: bool = False) -> None:
        """Close every proxied connection now, or (``mid_frame``) after forwarding half of the next chunk the
        server sends.

        Raises:
            Nothing: errors of closing a socket are ignored.
        """
        for pipe in list(self._pipes):
            if mid_frame:
                pipe.cut_mid_frame = True
            else:
                pipe.close()

    def refuse(self, on: bool = True) -> None:
        """Refuse new connections (the listening socket is closed; existing connections stay).

        Raises:
            OSError: with ``on=False``, the address cannot be listened on again (the port was taken meanwhile).
        """
        self._refusing = on
        if on:
            if self._server is not None:
                self._server.close()  # stops listening at once; accepted connections are not touched
                self._server = None
        elif self._server is None:
            sock = socket.create_server((self._host, self._port))
            self._pending_listen = _background(self._serve(sock))

    async def _serve(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_server(self._accept, sock=sock)

    def inject_to_client(self, data: bytes) -> None:
        """Write raw protocol bytes to every connected client (e.g. an INFO announcing lame duck mode).

        Raises:
            Nothing: the bytes are queued on each client's socket.
        """
        for pipe in self._pipes:
            pipe.client_writer.write(data)

    async def __aenter__(self) -> ChaosProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
