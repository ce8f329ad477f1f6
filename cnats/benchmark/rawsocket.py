"""Blocking-socket helpers for the raw-socket bound: pre-encoded frames, no client library, no per-message work."""

from __future__ import annotations

import socket
import time

__all__ = ["RawPublisher", "publish_stream", "raw_connect", "wait_for"]


def _host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[-1]
    host, _, port = rest.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def raw_connect(url: str) -> socket.socket:
    """A blocking socket past the INFO/CONNECT/PING/PONG handshake (never timed: callers time what follows)."""
    sock = socket.create_connection(_host_port(url))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    wait_for(sock, b"\r\n")  # INFO, read whole (the server sends nothing else before our CONNECT)
    sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true}\r\nPING\r\n')
    wait_for(sock, b"PONG\r\n")
    return sock


def wait_for(sock: socket.socket, marker: bytes) -> None:
    tail = b""
    while marker not in tail:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        tail = (tail + chunk)[-4096:]


class RawPublisher:
    """A connected blocking socket that writes pre-encoded PUB frames as fast as the socket takes them."""

    def __init__(self, url: str) -> None:
        self._sock = raw_connect(url)

    def publish(self, msgs: int, size: int, subject: str) -> float:
        """Seconds until the server has ``msgs`` frames (a PING answered after them)."""
        frame = b"PUB %s %d\r\n%s\r\n" % (subject.encode(), size, b"x" * size)
        per_chunk = max(1, 65536 // len(frame))
        chunk = frame * per_chunk
        sock = self._sock
        start = time.perf_counter()
        sent = 0
        while sent + per_chunk <= msgs:
            sock.sendall(chunk)
            sent += per_chunk
        if sent < msgs:
            sock.sendall(frame * (msgs - sent))
        sock.sendall(b"PING\r\n")
        wait_for(sock, b"PONG\r\n")
        return time.perf_counter() - start

    def close(self) -> None:
        self._sock.close()


def publish_stream(url: str, msgs: int, size: int, subject: str) -> float:
    """``msgs`` frames from a fresh connection (its handshake is not timed)."""
    publisher = RawPublisher(url)
    try:
        return publisher.publish(msgs, size, subject)
    finally:
        publisher.close()
