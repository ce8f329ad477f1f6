"""What the objects a blocking connection hands out share with it: its loop, its hand-off (``submit``), its message
wrappers, and the list of what owns callback threads (so that drain and close can reach them)."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from ..errors import ConnectionClosedError
from ..jetstream.jsmsg import JsMsg
from ..msg import Msg
from ..services.msg import ServiceMsg
from .delivery import Delivery
from .jobs import JobThread
from .messages import SyncJsMsg, SyncMsg, SyncServiceMsg
from .runner import LoopRunner

__all__ = ["Context", "Owned"]

logger = logging.getLogger("cnats")

T = TypeVar("T")


class Owned(Protocol):
    """Something of a connection whose callbacks run on threads of their own."""

    async def _stop_feeding(self) -> None:
        """On the loop, when the connection drains: take no new messages (what is held is still handed over)."""

    def _wait_callbacks(self, timeout: float | None) -> bool:
        """Wait until the callbacks have handled everything they were given; True when they have."""

    def _drop_callbacks(self) -> None:
        """The connection closed: run no further callback (thread-safe, never blocks)."""

    def _join_callbacks(self, timeout: float | None) -> None:
        """Wait for the callback threads to end (never the calling thread itself)."""


@dataclass(eq=False)
class Context:
    runner: LoopRunner
    publish: Callable[..., None]  # SyncConnection.publish
    submit: Callable[[Callable[[], object]], None]  # a call on the loop, in order with the publishes
    wrap_msg: Callable[[Msg], SyncMsg]
    wrap_js: Callable[[JsMsg], SyncJsMsg]
    wrap_service: Callable[[ServiceMsg], SyncServiceMsg]
    report: Callable[[BaseException, str, int], None]  # the connection's callback-error report (on the loop)
    owned: set[Owned] = field(default_factory=set)
    # the subscriptions' deliveries: each gets its end marker when the connection ends, whatever else happens
    deliveries: weakref.WeakSet[Delivery[Any]] = field(default_factory=weakref.WeakSet)
    _helper: JobThread | None = None
    _helper_ended: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for it."""
        return self.runner.call(coro)

    def report_callback_error(self, exc: BaseException, subject: str, sid: int) -> None:
        """From a callback thread: logged and reported as a ``CALLBACK_ERROR`` status, as the asyncio API does."""
        if not self.runner.call_soon(self.report, exc, subject, sid):
            logger.error("cnats.sync: exception in a callback (subject %r)", subject, exc_info=exc)

    def own(self, thing: Owned) -> None:
        self.owned.add(thing)

    def disown(self, thing: Owned) -> None:
        self.owned.discard(thing)

    def helper(self) -> JobThread:
        """The connection's helper thread (made on first use), for callbacks the asyncio API runs on the loop."""
        with self._lock:
            if self._helper_ended:
                raise ConnectionClosedError("connection closed")
            if self._helper is None:
                self._helper = JobThread("cnats-sync helper")
            return self._helper

    def end_helper(self, timeout: float | None) -> None:
        with self._lock:
            helper, self._helper = self._helper, None
            self._helper_ended = True
        if helper is not None:
            helper.end()
            helper.worker.join(timeout)
