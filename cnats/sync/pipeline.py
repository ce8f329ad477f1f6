"""Pipelined JetStream publishes from threads: ``publish_async`` returns a ``concurrent.futures.Future[PubAck]``.

Requests are queued (like the outbox's publishes) for one pump task of the JetStream client, which hands them to
the asyncio ``publish_async`` in order and copies each acknowledgement to its future. A semaphore bounds what is
outstanding (queued or waiting for its acknowledgement) to the client's ``publish_async_max_pending``, so a thread
that outruns the server waits here, as an asyncio publisher waits for room.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from ..errors import ConnectionClosedError, NatsTimeoutError
from .runner import LoopRunner, check_blocking_allowed

if TYPE_CHECKING:
    from ..jetstream.api import PubAck
    from ..jetstream.client import JetStreamClient

__all__ = ["Pipeline"]

_Request = tuple["concurrent.futures.Future[PubAck]", str, bytes, dict[str, Any]]


class Pipeline:
    """One per `SyncJetStream`."""

    def __init__(self, runner: LoopRunner, js: JetStreamClient, max_pending: int, stall_wait: float = 5.0) -> None:
        self._runner = runner
        self._js = js
        self._slots = threading.BoundedSemaphore(max_pending)
        self._stall_wait = stall_wait
        self._queue: deque[_Request] = deque()
        self._waking = False
        self._event: asyncio.Event | None = None
        self._pump: concurrent.futures.Future[None] | None = None
        self._lock = threading.Lock()
        self.outstanding: set[concurrent.futures.Future[PubAck]] = set()

    # -- the threads --------------------------------------------------------------------------------------------
    def submit(self, subject: str, payload: bytes, options: dict[str, Any]) -> concurrent.futures.Future[PubAck]:
        if not self._slots.acquire(blocking=False):
            check_blocking_allowed()  # waiting for room would block this thread's event loop
            if not self._slots.acquire(timeout=self._stall_wait):
                raise NatsTimeoutError(
                    f"publish_async waited {self._stall_wait} s for room: "
                    f"{len(self.outstanding)} acknowledgements outstanding"
                )
        future: concurrent.futures.Future[PubAck] = concurrent.futures.Future()
        try:
            self._runner.track(future)  # failed if the loop stops before its acknowledgement
        except ConnectionClosedError:
            self._slots.release()
            raise
        self.outstanding.add(future)
        future.add_done_callback(self._settled)
        self._queue.append((future, subject, payload, options))
        if not self._waking:
            self._wake()
        return future

    def _settled(self, future: concurrent.futures.Future[PubAck]) -> None:
        self.outstanding.discard(future)
        self._slots.release()

    def _wake(self) -> None:
        self._waking = True
        with self._lock:
            if self._pump is None:
                try:
                    self._pump = self._runner.submit(self._run())
                except ConnectionClosedError:
                    self._fail_queued()
                    raise
                return
        self._runner.call_soon(self._set_event)

    def _set_event(self) -> None:
        if self._event is not None:
            self._event.set()

    def completed(self, timeout: float | None) -> None:
        check_blocking_allowed()
        pending = list(self.outstanding)
        if not pending:
            return
        _, not_done = concurrent.futures.wait(pending, timeout)
        if not_done:
            raise NatsTimeoutError(f"{len(not_done)} publish acknowledgements still pending")

    # -- the loop -----------------------------------------------------------------------------------------------
    async def _run(self) -> None:
        event = self._event = asyncio.Event()
        queue = self._queue
        publish_async = self._js.publish_async
        try:
            while True:
                self._waking = False  # before taking: a request queued from now on wakes the pump again
                while queue:
                    future, subject, payload, options = queue.popleft()
                    if future.cancelled():
                        continue
                    try:
                        ack = await publish_async(subject, payload, **options)
                    except Exception as exc:  # noqa: BLE001 - the future carries it to the thread
                        _set_exception(future, exc)
                        continue
                    ack.add_done_callback(functools.partial(_copy, future))
                await event.wait()
                event.clear()
        finally:
            self._fail_queued()

    def _fail_queued(self) -> None:
        while self._queue:
            future, *_ = self._queue.popleft()
            _set_exception(future, ConnectionClosedError("connection closed"))


def _set_exception(future: concurrent.futures.Future[Any], exc: BaseException) -> None:
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        future.set_exception(exc)


def _copy(target: concurrent.futures.Future[Any], source: asyncio.Future[Any]) -> None:
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if source.cancelled():
            target.set_exception(ConnectionClosedError("connection closed"))
        elif source.exception() is not None:
            target.set_exception(source.exception())
        else:
            target.set_result(source.result())
