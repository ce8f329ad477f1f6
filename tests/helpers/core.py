"""Shared helpers of the core-messaging tests (connect, publish, subscribe) against a real nats-server."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import socket
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

from cnats import DebugEvents, Events, NatsConnection, Status


async def eventually(
    pred: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0, interval: float = 0.005, what: str = ""
) -> None:
    """Poll ``pred`` (a plain or async callable) until it is true; ``AssertionError`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = pred()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s: {what or pred!r}")
        await asyncio.sleep(interval)


async def stays(pred: Callable[[], bool], duration: float = 0.2, interval: float = 0.005, what: str = "") -> None:
    """Assert that ``pred`` holds during the whole of ``duration`` seconds (a short, bounded observation window)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration
    while loop.time() < deadline:
        assert pred(), f"condition stopped holding: {what or pred!r}"
        await asyncio.sleep(interval)
    assert pred(), f"condition stopped holding: {what or pred!r}"


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released: connecting to it is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def http_json(url: str, timeout: float = 5.0) -> Any:
    """GET ``url`` (a server monitoring endpoint on loopback) in a worker thread and decode its JSON body; straight
    to it, so that an ``http_proxy`` in the environment does not intercept."""

    def get() -> Any:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=timeout) as resp:
            return json.loads(resp.read())

    return await asyncio.to_thread(get)


class StatusLog:
    """Records every status event of a connection from now on (a background task reading ``nc.status()``)."""

    def __init__(self, nc: NatsConnection) -> None:
        self.events: list[Status] = []
        self._it = nc.status()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for status in self._it:
            self.events.append(status)

    def of(self, type_: Events | DebugEvents, data: object = None) -> list[Status]:
        return [s for s in self.events if s.type == type_ and (data is None or s.data == data)]

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def __aenter__(self) -> StatusLog:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
