"""The private event loop of a blocking connection: one daemon thread runs it, other threads hand it work.

Every blocking call ends the same way: it gets its answer, or the error the asyncio API raised, or
``ConnectionClosedError`` once the loop has stopped (a call cut short by the shutdown never waits forever).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ..errors import ConnectionClosedError, InvalidOptionError

__all__ = ["LoopRunner", "check_blocking_allowed"]

T = TypeVar("T")

_IN_LOOP = (
    "cnats.sync blocks the calling thread, and this thread runs an event loop (blocking it would stall every task "
    "of that loop): use the asyncio API here (await cnats.connect(...); a Jupyter cell can await), or call "
    "cnats.sync from another thread (await asyncio.to_thread(...))"
)


def check_blocking_allowed() -> None:
    """Raise ``InvalidOptionError`` when the calling thread runs an event loop right now.

    Raises:
        InvalidOptionError: the calling thread's event loop is running.
    """
    if asyncio._get_running_loop() is not None:
        raise InvalidOptionError(_IN_LOOP)


def _closed() -> ConnectionClosedError:
    return ConnectionClosedError("connection closed")


def _forked() -> ConnectionClosedError:
    return ConnectionClosedError(
        "this connection was made before the process forked: its loop thread is in the parent; connect in this process"
    )


class LoopRunner:
    """An event loop on a daemon thread of its own, running ``main()`` until it returns, then shut down cleanly."""

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str) -> None:
        self.loop = loop
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._main: Callable[[], Coroutine[Any, Any, None]] | None = None
        self._lock = threading.Lock()  # orders "still accepting work" against the shutdown
        self._accepting = True
        self._pid = os.getpid()  # a forked child has no loop thread: its copy of the connection refuses work
        # blocking calls not answered yet: failed with ConnectionClosedError if the loop stops under them
        self._waiting: set[concurrent.futures.Future[Any]] = set()

    @property
    def is_running(self) -> bool:
        """False once the loop stopped accepting work (or in a process forked after the connection was made)."""
        return self._accepting and os.getpid() == self._pid

    def _refuse_if_closed(self) -> None:
        # called holding the lock
        if os.getpid() != self._pid:
            raise _forked()
        if not self._accepting:
            raise _closed()

    def start(self, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._main = main
        self.thread.start()

    def _run(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            assert self._main is not None
            loop.run_until_complete(self._main())
        finally:
            with self._lock:
                self._accepting = False
            try:
                self._finish_loop()
            finally:
                for future in list(self._waiting):
                    with contextlib.suppress(concurrent.futures.InvalidStateError):
                        future.set_exception(_closed())

    def _finish_loop(self) -> None:
        """What ``asyncio.run`` does after its main coroutine: cancel what is left (pumps, calls in flight), then
        close the loop."""
        loop = self.loop
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    # -- handing work to the loop ------------------------------------------------------------------------------
    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coro`` on the loop; its future (the coroutine is closed unstarted if the loop has stopped)."""
        with self._lock:
            try:
                self._refuse_if_closed()
            except ConnectionClosedError:
                coro.close()
                raise
            future = asyncio.run_coroutine_threadsafe(coro, self.loop)
            self._track(future)
        return future

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Run ``fn(*args)`` on the loop, without waiting; False (nothing happens) once the loop has closed."""
        if os.getpid() != self._pid:
            return False
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed meanwhile: nothing left to notify
            return False
        return True

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result (its exception is raised here, unchanged)."""
        if asyncio._get_running_loop() is not None:
            coro.close()
            raise InvalidOptionError(_IN_LOOP)
        return self.wait(self.submit(coro))

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Call the plain function ``fn(*args)`` on the loop and wait for what it returns (or raises)."""
        check_blocking_allowed()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread as it is
                future.set_exception(exc)
            else:
                future.set_result(result)

        with self._lock:
            self._refuse_if_closed()
            self.loop.call_soon_threadsafe(job)
            self._track(future)
        return self.wait(future)

    def start_call(self, future: concurrent.futures.Future[Any], fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(future, *args)`` on the loop, which settles ``future`` (failed with ``ConnectionClosedError``
        if the loop stops first); ``ConnectionClosedError`` at once when it has stopped already."""
        with self._lock:
            self._refuse_if_closed()
            self.loop.call_soon_threadsafe(fn, future, *args)
            self._track(future)

    def track(self, future: concurrent.futures.Future[Any]) -> None:
        """Have ``future`` failed with ``ConnectionClosedError`` if the loop stops before it is settled."""
        with self._lock:
            self._refuse_if_closed()
            self._track(future)

    def _track(self, future: concurrent.futures.Future[Any]) -> None:
        # under the lock: the shutdown's sweep (after it stopped accepting) sees every future handed out before
        self._waiting.add(future)
        future.add_done_callback(self._waiting.discard)

    def wait(self, future: concurrent.futures.Future[T], timeout: float | None = None) -> T:
        """The result of ``future``; a call the shutdown cancelled raises ``ConnectionClosedError``. Interrupted
        (Ctrl-C), the work on the loop is cancelled too."""
        try:
            return future.result(timeout)
        except (concurrent.futures.CancelledError, asyncio.CancelledError):
            raise _closed() from None
        except (KeyboardInterrupt, SystemExit):
            future.cancel()
            raise

    def stop_and_join(self, timeout: float | None = None) -> None:
        """Wait for the loop thread to end (it ends once ``main()`` returned); never from the loop thread."""
        if threading.current_thread() is not self.thread and self.thread.is_alive():
            self.thread.join(timeout)
