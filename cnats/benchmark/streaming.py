"""Throughput workloads as sessions: publishing, subscribing (fed by the harness's raw publisher) and both in one
process. Like the round trips in sessions.py they stay open while the clients take turns in slices, each client on
a subject of its own so that one client's slice never feeds another's subscriber."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .rawsocket import publish_stream, raw_connect, wait_for
from .sessions import Session, SessionFactory

__all__ = ["STREAMING", "Subscriber"]

UNBOUNDED = 1 << 40  # pending limits of the measured subscriptions: the publisher outruns every subscriber


class Subscriber(Session):
    """A subscription fed from outside: ``arm(n)`` starts the clock and returns the wait for the n-th message
    (counted from the arming, so a subscriber that falls behind is not flattered by a late start)."""

    def __init__(self, *, close: Callable[[], Awaitable[Any]] | None = None) -> None:
        super().__init__(close=close)
        self._target = 0
        self._count = 0
        self._start = 0.0
        self._done: asyncio.Future[float] | None = None

    def arm(self, n: int) -> Awaitable[float]:
        self._count = 0
        self._target = n
        self._done = asyncio.get_running_loop().create_future()
        self._start = time.perf_counter()
        return self._done

    def on_msg(self, msg: Any) -> None:
        self._count += 1
        if self._count == self._target and self._done is not None:
            self._done.set_result(time.perf_counter() - self._start)

    async def on_msg_async(self, msg: Any) -> None:
        self.on_msg(msg)

    async def run(self, n: int) -> tuple[float, list[float]]:
        raise RuntimeError("a subscriber is fed by the harness: arm() it, then publish")


class _RawSubscriber(Subscriber):
    """The bound: counts received bytes in a thread (frames of one known length), no parsing, no objects."""

    def __init__(self, url: str, size: int, subject: str) -> None:
        self._sock = raw_connect(url)
        self._sock.sendall(b"SUB %s 1\r\nPING\r\n" % subject.encode())
        wait_for(self._sock, b"PONG\r\n")
        self._frame_len = len(b"MSG %s 1 %d\r\n" % (subject.encode(), size)) + size + 2
        self._buf = bytearray(1 << 20)
        super().__init__(close=self._close_socket)

    def arm(self, n: int) -> Awaitable[float]:
        start = time.perf_counter()
        return asyncio.get_running_loop().run_in_executor(None, self._receive, n * self._frame_len, start)

    def _receive(self, total: int, start: float) -> float:
        view = memoryview(self._buf)
        got = 0
        while got < total:
            n = self._sock.recv_into(view)
            if not n:
                raise ConnectionError("server closed the connection")
            got += n
        return time.perf_counter() - start

    async def _close_socket(self) -> None:
        self._sock.close()


def _subscriber(client: str, mode: str) -> SessionFactory:
    async def open_session(url: str, size: int, subject: str) -> Session:
        if client == "raw":
            return _RawSubscriber(url, size, subject)
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[None]] = []

        async def close() -> None:
            for task in tasks:
                task.cancel()
            await nc.close()

        session = Subscriber(close=close)
        if client == "cnats":
            import cnats

            nc: Any = await cnats.connect(url)
            if mode == "callback":
                nc.subscribe(subject, callback=session.on_msg)
            elif mode == "coroutine":
                nc.subscribe(subject, callback=session.on_msg_async, pending_msgs_limit=None, pending_bytes_limit=None)
            else:
                sub = nc.subscribe(subject, pending_msgs_limit=None, pending_bytes_limit=None)
                tasks.append(_reader_task(loop, sub, session))
        else:
            import nats

            nc = await nats.connect(url)
            limits = {"pending_msgs_limit": UNBOUNDED, "pending_bytes_limit": UNBOUNDED}
            if mode in ("callback", "coroutine"):  # nats-py only takes coroutine callbacks
                await nc.subscribe(subject, cb=session.on_msg_async, **limits)
            else:
                sub = await nc.subscribe(subject, **limits)
                tasks.append(_reader_task(loop, sub.messages, session))
            # nats-py writes a flush's PING ahead of the SUB it still buffers: by the first PONG the SUB is written,
            # so the second PING follows it and its PONG says the server holds the subscription
            await nc.flush()
        await nc.flush()
        return session

    return open_session


def _reader_task(loop: asyncio.AbstractEventLoop, messages: Any, session: Subscriber) -> asyncio.Task[None]:
    """The benchmark's own reader of an iterator subscription (cnats or nats-py alike)."""
    return loop.create_task(_consume(messages, session))


async def _consume(messages: Any, session: Subscriber) -> None:
    async for msg in messages:
        session.on_msg(msg)


# -- publishing, alone and with a subscriber in the same process -------------------------------------------------


class _Publisher(Session):
    """``run(n)``: publish ``n`` messages and wait until the server has them all (a flush)."""

    def __init__(self, publish_all: Callable[[int], Awaitable[None]], close: Callable[[], Awaitable[Any]]) -> None:
        super().__init__(close=close)
        self._publish_all = publish_all

    async def run(self, n: int) -> tuple[float, list[float]]:
        start = time.perf_counter()
        await self._publish_all(n)
        return time.perf_counter() - start, []


async def _cnats_publish_all(nc: Any, subject: str, payload: bytes, n: int) -> None:
    import cnats

    publish = nc.publish
    for i in range(n):
        try:
            publish(subject, payload)
        except cnats.OutboundBufferLimitError:  # the documented answer to a producer outrunning the socket
            await nc.flush()
            publish(subject, payload)
        if i & 0xFFF == 0:
            await asyncio.sleep(0)  # let the event loop write (uvloop writes only between callbacks)


async def _nats_py_publish_all(nc: Any, subject: str, payload: bytes, n: int) -> None:
    publish = nc.publish
    for i in range(n):
        await publish(subject, payload)
        if i & 0x3FFF == 0:
            await asyncio.sleep(0)


def _publisher(client: str, with_subscriber: bool) -> SessionFactory:
    async def open_session(url: str, size: int, subject: str) -> Session:
        payload = b"x" * size
        if client == "raw":
            loop = asyncio.get_running_loop()

            async def raw_all(n: int) -> None:
                await loop.run_in_executor(None, publish_stream, url, n, size, subject)

            async def nothing() -> None:
                pass

            return _Publisher(raw_all, nothing)
        receiver = Subscriber()
        if client == "cnats":
            import cnats

            nc: Any = await cnats.connect(url)
            if with_subscriber:
                nc.subscribe(subject, callback=receiver.on_msg)
            publish_all = _cnats_publish_all
        else:
            import nats

            nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
            if with_subscriber:
                await nc.subscribe(
                    subject, cb=receiver.on_msg_async, pending_msgs_limit=UNBOUNDED, pending_bytes_limit=UNBOUNDED
                )
            publish_all = _nats_py_publish_all
        await nc.flush()

        async def all_of(n: int) -> None:
            received = receiver.arm(n) if with_subscriber else None
            await publish_all(nc, subject, payload, n)
            await nc.flush()
            if received is not None:
                await received

        return _Publisher(all_of, nc.close)

    return open_session


# workload name -> client -> factory (url, payload size, subject)
STREAMING: dict[str, dict[str, SessionFactory]] = {
    "pub": {c: _publisher(c, False) for c in ("cnats", "nats-py", "raw")},
    "sub (callback)": {c: _subscriber(c, "callback") for c in ("cnats", "nats-py", "raw")},
    "sub (coroutine)": {c: _subscriber(c, "coroutine") for c in ("cnats", "nats-py")},
    "sub (async for)": {c: _subscriber(c, "iterator") for c in ("cnats", "nats-py")},
    "pub+sub": {c: _publisher(c, True) for c in ("cnats", "nats-py")},
}
