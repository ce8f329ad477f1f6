"""What every command shares at run time: the error a command raises to stop with a message, running a command's
coroutine, and ending a long-running command on SIGINT/SIGTERM as a normal exit."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from ..errors import NatsError

__all__ = ["CliError", "describe_error", "read_stdin", "run", "stop_on_signal"]


class CliError(Exception):
    """A failure the command line reports as one ``error: <message>`` line (exit status 1)."""


def describe_error(exc: BaseException) -> str:
    """The one-line message for an error, without a traceback."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    if isinstance(exc, (NatsError, CliError)):
        return str(exc) or type(exc).__name__
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run(coro: Coroutine[Any, Any, int]) -> int:
    """Run one command's coroutine on a fresh event loop; its return value is the exit status."""

    async def main() -> int:
        asyncio.get_running_loop().set_exception_handler(_loop_exception)
        return await coro

    return asyncio.run(main())


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # A command interrupted in the middle of an operation (Ctrl-C during a flush) can leave a library future that
    # later fails with ConnectionClosedError when the connection closes; asyncio would print it as an unretrieved
    # exception. The command has already reported its outcome, so that one is dropped; anything else is shown.
    if isinstance(context.get("exception"), NatsError) and "never retrieved" in str(context.get("message", "")):
        return
    loop.default_exception_handler(context)


@contextlib.contextmanager
def stop_on_signal(stop: Callable[[], None]) -> Iterator[None]:
    """While inside, SIGINT (Ctrl-C) and SIGTERM call ``stop`` (which ends the command's loop normally, exit 0)
    instead of interrupting it. Signal handlers can only be set from the main thread; elsewhere (a command run
    in-process from a worker thread) this does nothing."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop)
        except (ValueError, RuntimeError, NotImplementedError):
            continue
        installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def read_stdin() -> bytes:
    """The payload of a command whose DATA argument was left out."""
    if sys.stdin is None:
        raise CliError("no data given and no standard input")
    if sys.stdin.isatty():
        print("reading the payload from standard input (end with Ctrl-D)", file=sys.stderr)
    return sys.stdin.buffer.read()
