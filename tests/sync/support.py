"""Helpers of the cnats.sync tests (blocking ones: these tests run no event loop of their own)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

SYNC_THREAD = "cnats-sync"


def loop_factory() -> Any:
    """The private loop's factory the suite runs with (uvloop in the suite's uvloop run)."""
    if os.environ.get("CNATS_TEST_UVLOOP", "") not in ("", "0"):
        import uvloop

        return uvloop.new_event_loop
    return None


def sync_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(SYNC_THREAD) and t.is_alive()]


def loop_idents() -> set[int | None]:
    """The thread ids of the loops of the open blocking connections."""
    return {t.ident for t in sync_threads() if t.name == "cnats-sync loop"}


def eventually(pred: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``pred`` until it is true; ``AssertionError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s: {what or pred!r}")
        time.sleep(0.002)
