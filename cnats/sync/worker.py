"""A thread of its own for one owner's callbacks: one at a time, in arrival order, never on the loop thread.

Each callback subscription (and each service endpoint, each ``consume(callback=...)``) has one, so a slow callback
delays only its own owner's messages.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

__all__ = ["CallbackWorker", "log_callback_error"]

logger = logging.getLogger("cnats")

T = TypeVar("T")


def log_callback_error(what: str) -> Callable[[BaseException, object], None]:
    """An error reporter for the callbacks of ``what`` (a subscription's subject, an endpoint...)."""

    def report(exc: BaseException, item: object) -> None:
        logger.error("cnats.sync: exception in a callback (%s)", what, exc_info=exc)

    return report


class CallbackWorker(Generic[T]):
    """Calls ``handle(item)`` for every item of ``items`` (a blocking iterable that ends when its owner ends)."""

    def __init__(
        self,
        name: str,
        items: Iterable[T],
        handle: Callable[[T], object],
        on_error: Callable[[BaseException, T], None],
        *,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self._items = items
        self._on_exit = on_exit
        self._handle = handle
        self._on_error = on_error
        self._dropping = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        handle, on_error = self._handle, self._on_error
        try:
            for item in self._items:
                if self._dropping:
                    break
                try:
                    handle(item)
                except Exception as exc:  # noqa: BLE001 - reported; the owner goes on with the next item
                    on_error(exc, item)
        finally:
            if self._on_exit is not None:
                self._on_exit()

    def drop_rest(self) -> None:
        """Run no further callback once the current one returns (the connection closed: nothing can answer)."""
        self._dropping = True

    @property
    def is_current(self) -> bool:
        """True when called from this worker's own thread (inside one of its callbacks)."""
        return threading.current_thread() is self.thread

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (not from inside its own callback); True when it has."""
        if self.is_current or not self.thread.is_alive():
            return not self.thread.is_alive() or self.is_current
        self.thread.join(timeout)
        return not self.thread.is_alive()
