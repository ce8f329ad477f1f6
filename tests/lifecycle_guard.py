"""A suite-wide lifecycle guard: a test fails when it leaves cnats work behind.

On unless ``CNATS_LIFECYCLE_GUARD=0`` (for a look at a failure without it). Registered from tests/conftest.py
(``pytest_plugins``); another suite can load it with ``-p lifecycle_guard`` when this directory is importable.
When on, a test fails if:

1. a task whose name starts with ``cnats`` (cnats names its background tasks ``cnats:<what>``) is still pending on
   the test's event loop once the test *and its fixtures* are done (the ``nc`` fixtures have closed their
   connections by then); so is an unnamed task whose coroutine is a cnats function (outside ``cnats.testing``):
   one that escaped the naming;
2. something reached the loop's exception handler during the test: "Task exception was never retrieved", "Future
   exception was never retrieved", "Task was destroyed but it is pending!", an exception in a callback... (still
   printed: the recording handler passes each one on to the previous / default handler, which logs it);
3. cnats logged that one of its background tasks failed (``Scope`` logs "background task <name> failed" at ERROR
   on the ``cnats`` logger when a task it holds ends with an exception): a handler on that logger collects these
   records from the guard's setup to its teardown, so the test's function-scoped fixtures are included (the records
   are still logged and captured as usual);
4. a coroutine was never awaited (RuntimeWarning), or a transport or socket was left unclosed (ResourceWarning):
   these warnings become errors. Emitted from a ``__del__``, they reach pytest as an unraisable exception, and the
   suite's ``error::pytest.PytestUnraisableExceptionWarning`` makes that an error of the test during which it
   happened; ``gc.collect()`` at the end of every test makes that the test that dropped the object.

Where the check runs: ``_cnats_lifecycle_guard`` is an autouse function-scoped fixture, so it is set up before
every other function-scoped fixture of the test (autouse fixtures come first in a test's fixture closure, and this
plugin's are global) and torn down after all of them. It asks pytest-asyncio for the test's loop runner
(``_function_scoped_runner``) during its own setup, so the runner is torn down after it: the check sees the loop
after every fixture finished and before pytest-asyncio closes the loop (which cancels leftover tasks silently).
The failure is reported as an error in the test's teardown.

Only tests on a function-scoped loop get the pending-task check (a wider loop legitimately outlives a test);
every test gets the ``gc.collect()``, the background-task check and, when it runs on a loop, the exception-handler
check. One more ``gc.collect()`` runs after the whole teardown (the loop closed), so that what goes with the loop is
reported with the test too.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import traceback
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

ENV = "CNATS_LIFECYCLE_GUARD"

#: Added to the ``filterwarnings`` ini setting when the guard is on (a message is a case-insensitive regular
#: expression matched at the start of the warning's text; it cannot contain ``:``).
WARNING_FILTERS = (
    "error:coroutine .* was never awaited:RuntimeWarning",
    "error:unclosed transport:ResourceWarning",  # asyncio's transports (selector, SSL, pipes, subprocesses)
    "error:unclosed resource:ResourceWarning",  # uvloop's handles
    "error:unclosed <.*socket:ResourceWarning",  # socket.socket, ssl.SSLSocket
    "error:unclosed <StreamWriter:ResourceWarning",  # an asyncio StreamWriter (its transport, on any loop)
)

_ENABLED = pytest.StashKey[bool]()


def guard_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(ENV, "1") not in ("", "0")


def pytest_configure(config: pytest.Config) -> None:
    enabled = guard_enabled()
    config.stash[_ENABLED] = enabled
    if enabled:
        for line in WARNING_FILTERS:
            config.addinivalue_line("filterwarnings", line)


def pytest_collection_finish(session: pytest.Session) -> None:
    # Two full collections per test are cheap only if they skip what collection imported and built (modules,
    # parametrizations, hypothesis' strategies...): freeze that, so each gc.collect() sees what the tests make.
    # (Anything frozen here that becomes garbage later is never freed: memory, not correctness, for one session.)
    if session.config.stash.get(_ENABLED, False):
        gc.collect()
        gc.freeze()


def pytest_report_header(config: pytest.Config) -> str:
    state = "on" if config.stash.get(_ENABLED, False) else f"off ({ENV}=0)"
    return f"cnats lifecycle guard: {state}"


class LoopErrors:
    """A loop exception handler that records every context and passes it on to the handler it replaced (the guard
    installs one for each test; a test can install another to look at what reached the loop so far)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.previous = loop.get_exception_handler()
        self.contexts: list[dict[str, Any]] = []

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.contexts.append(context)
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def install(self) -> None:
        self.loop.set_exception_handler(self)

    def uninstall(self) -> None:
        if self.loop.get_exception_handler() is self:
            self.loop.set_exception_handler(self.previous)


class _BackgroundTaskFailures(logging.Handler):
    """Collects, formatted (traceback included), the "background task ... failed" records of the ``cnats`` logger."""

    PREFIX = "background task"

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))
        self.failures: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self.PREFIX):
            self.failures.append(self.format(record))  # text only: no traceback keeps the task's frames alive

    def install(self) -> None:
        logging.getLogger("cnats").addHandler(self)

    def uninstall(self) -> None:
        logging.getLogger("cnats").removeHandler(self)
        self.failures.clear()


def _loop_scope(item: pytest.Item) -> str:
    marker = item.get_closest_marker("asyncio")
    scope = (marker.kwargs.get("loop_scope") or marker.kwargs.get("scope")) if marker is not None else None
    if scope is None:
        try:
            scope = item.config.getini("asyncio_default_test_loop_scope")
        except ValueError:  # an older pytest-asyncio without that setting
            scope = None
    return str(scope or "function")


def _test_loop(request: pytest.FixtureRequest) -> tuple[asyncio.AbstractEventLoop | None, str]:
    """The event loop an async test runs on (requesting pytest-asyncio's runner for it, so that the runner is torn
    down after the guard), and that loop's scope; (None, "") for a synchronous test."""
    try:
        from pytest_asyncio import is_async_test
    except ImportError:  # pragma: no cover - cnats[test] installs pytest-asyncio
        return None, ""
    item = request.node
    if not isinstance(item, pytest.Item) or not is_async_test(item):
        return None, ""
    scope = _loop_scope(item)
    runner = request.getfixturevalue(f"_{scope}_scoped_runner")
    loop: asyncio.AbstractEventLoop = runner.get_loop()
    return loop, scope


def _where(task: asyncio.Task[Any]) -> str:
    """The await chain of a pending task: ``func (file:line) -> func (file:line) -> ...``."""
    steps: list[str] = []
    obj: Any = task.get_coro()
    for _ in range(20):
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None) or getattr(obj, "ag_frame", None)
        if frame is None:
            if obj is not None and not steps:
                steps.append(repr(obj))
            elif obj is not None:
                steps.append(type(obj).__name__)
            break
        code = frame.f_code
        steps.append(f"{code.co_name} ({os.path.basename(code.co_filename)}:{frame.f_lineno})")
        obj = getattr(obj, "cr_await", None) or getattr(obj, "gi_yieldfrom", None) or getattr(obj, "ag_await", None)
        if obj is None:
            break
    return " -> ".join(steps)


def _label(task: asyncio.Task[Any]) -> str:
    name = task.get_name()
    return name if name.startswith("cnats") else f"{name} (unnamed, runs cnats code)"


def _describe_context(context: Mapping[str, Any]) -> str:
    lines = [str(context.get("message", "(no message)"))]
    for key in ("task", "future", "handle"):
        if key in context:
            lines.append(f"  {key}: {context[key]!r}")
    exc = context.get("exception")
    if isinstance(exc, BaseException):
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
        lines.append("  " + tb.replace("\n", "\n  "))
    return "\n".join(lines)


def _cnats_dir() -> str:
    import cnats

    return os.path.dirname(os.path.realpath(cnats.__file__)) + os.sep


def _runs_cnats_code(task: asyncio.Task[Any]) -> bool:
    """The task's coroutine is a function of the cnats package (cnats.testing aside): a background task cnats
    started without naming it ``cnats:<what>``."""
    code = getattr(task.get_coro(), "cr_code", None)
    filename = getattr(code, "co_filename", "")
    if not filename:
        return False
    if not os.path.isabs(filename):  # the compiled core reports "cnats/_protocol.pyx"
        return filename.replace("\\", "/").startswith("cnats/")
    path = os.path.realpath(filename)
    cnats_dir = _cnats_dir()
    return path.startswith(cnats_dir) and not path.startswith(os.path.join(cnats_dir, "testing") + os.sep)


def is_cnats_task(task: asyncio.Task[Any]) -> bool:
    return task.get_name().startswith("cnats") or _runs_cnats_code(task)


def pending_cnats_tasks(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
    """The loop's unfinished tasks named ``cnats...``, and unnamed ones running a cnats coroutine."""
    tasks = [t for t in asyncio.all_tasks(loop) if is_cnats_task(t)]
    return sorted(tasks, key=lambda t: t.get_name())


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    # After every fixture's teardown, pytest-asyncio's runner included (the loop is closed and released), and
    # before pytest collects the teardown's unraisable exceptions (its own trylast implementation, registered
    # earlier, runs after this one): what is freed with the loop (uvloop closes leftover handles, with a
    # ResourceWarning each, when the loop goes) is reported with this test, not with the next one.
    if item.config.stash.get(_ENABLED, False):
        gc.collect()


@pytest.fixture(autouse=True)
def _cnats_lifecycle_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    if not request.config.stash.get(_ENABLED, False):
        yield
        return
    loop, scope = _test_loop(request)
    handler = LoopErrors(loop) if loop is not None and not loop.is_closed() else None
    if handler is not None:
        handler.install()
    failed_tasks = _BackgroundTaskFailures()
    failed_tasks.install()
    try:
        yield
        # Every fixture set up after this one (all of the test's function-scoped fixtures) is torn down by now;
        # pytest-asyncio's runner, which closes the loop, is torn down after this.
        if handler is not None:
            handler.install()  # again, in case the test replaced it: what gc finds below is the test's too
        gc.collect()
        problems: list[str] = []
        if loop is not None and scope == "function" and not loop.is_closed():
            pending = pending_cnats_tasks(loop)
            if pending:
                problems.append(
                    f"{len(pending)} cnats task(s) still pending after the test and its fixtures finished:\n"
                    + "\n".join(f"  {_label(t)}: {_where(t)}" for t in pending)
                )
            del pending
        if handler is not None and handler.contexts:
            problems.append(
                f"{len(handler.contexts)} report(s) reached the event loop's exception handler:\n"
                + "\n".join(_describe_context(c) for c in handler.contexts)
            )
        if failed_tasks.failures:
            problems.append(
                f"{len(failed_tasks.failures)} cnats background task(s) failed:\n"
                + "\n".join("  " + text.replace("\n", "\n  ") for text in failed_tasks.failures)
            )
        if problems:
            pytest.fail(f"lifecycle guard ({ENV}=1):\n" + "\n".join(problems), pytrace=False)
    finally:
        failed_tasks.uninstall()
        if handler is not None:
            handler.contexts.clear()
            handler.uninstall()
