"""A worker thread that runs submitted calls in order, and hands each result back to the loop when asked to.

Service endpoints run their handlers on one each; a connection's helper runs the rare callbacks that the asyncio
API would call on the loop thread (``on_initialized`` of a KV watch, a service's ``stats_handler``).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
from collections.abc import Callable, Iterator
from typing import Any

from .delivery import END, End
from .worker import CallbackWorker, log_callback_error

__all__ = ["JobThread", "awaitable_from_thread"]

Done = Callable[[BaseException | None, Any], None]
_Job = tuple[Callable[[Any], Any], Any, Done | None]


class JobThread:
    """``submit(fn, arg, done)``: ``fn(arg)`` runs on this thread; ``done(error, result)`` is called after it."""

    def __init__(self, name: str, on_exit: Callable[[], None] | None = None) -> None:
        self._queue: queue.SimpleQueue[_Job | End] = queue.SimpleQueue()
        self.worker: CallbackWorker[_Job] = CallbackWorker(
            name, self._jobs(), _run, log_callback_error(name), on_exit=on_exit
        )
        self.worker.start()
        self._ended = False

    def _jobs(self) -> Iterator[_Job]:
        get = self._queue.get
        while True:
            job = get()
            if isinstance(job, End):
                return
            yield job

    def submit(self, fn: Callable[[Any], Any], arg: Any, done: Done | None = None) -> None:
        self._queue.put((fn, arg, done))

    def end(self) -> None:
        """No more jobs: the thread ends after those already submitted (or at once, after ``drop_rest``)."""
        if not self._ended:
            self._ended = True
            self._queue.put(END)


def _run(job: _Job) -> None:
    fn, arg, done = job
    if done is None:
        fn(arg)  # an exception is the worker's to report
        return
    try:
        result = fn(arg)
    except Exception as exc:  # noqa: BLE001 - handed back to whoever waits for it
        done(exc, None)
    else:
        done(None, result)


def awaitable_from_thread(jobs: JobThread, fn: Callable[[Any], Any], arg: Any) -> asyncio.Future[Any]:
    """On the loop: run ``fn(arg)`` on ``jobs``' thread; the future (of this loop) resolves with what it returned or
    raised. The loop may be gone by then (the connection closed meanwhile): nobody waits any more."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(error: BaseException | None, result: Any) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def done(error: BaseException | None, result: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nothing waits
            loop.call_soon_threadsafe(settle, error, result)

    jobs.submit(fn, arg, done)
    return future
