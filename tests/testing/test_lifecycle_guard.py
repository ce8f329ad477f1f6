"""The suite's lifecycle guard (tests/lifecycle_guard.py), run on small inner test files through pytester."""

from __future__ import annotations

import logging

import pytest
from lifecycle_guard import ENV, guard_enabled

pytest_plugins = ["pytester"]

ARGS = (
    *("-p", "lifecycle_guard", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark"),
    *("-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function"),
)

UVLOOP_CONFTEST = """
import uvloop

def pytest_asyncio_loop_factories(config, item):
    return {"uvloop": uvloop.new_event_loop}
"""


@pytest.fixture(params=["asyncio", "uvloop"])
def guarded(request: pytest.FixtureRequest, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> str:
    """A pytester directory with the guard switched on, on asyncio's loop or on uvloop."""
    monkeypatch.setenv(ENV, "1")
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
        pytester.makeconftest(UVLOOP_CONFTEST)
    return str(request.param)


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile("import asyncio, gc, socket\nimport pytest\n" + source)
    return pytester.runpytest(*ARGS, *args)


def test_switch() -> None:
    assert guard_enabled({}) and guard_enabled({ENV: "1"})
    assert not guard_enabled({ENV: ""}) and not guard_enabled({ENV: "0"})


def test_pending_cnats_task_fails_the_test(pytester: pytest.Pytester, guarded: str) -> None:
    result = run(
        pytester,
        """
async def test_leaks():
    asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="cnats:leak")
""",
    )
    result.assert_outcomes(passed=1, errors=1)  # the test body passed; the guard fails its teardown
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaks*",
            "*lifecycle guard*",
            "*1 cnats task(s) still pending after the test and its fixtures finished:",
            "*cnats:leak: sleep (tasks.py:*",
        ]
    )


def test_unnamed_task_running_cnats_code_counts(pytester: pytest.Pytester, guarded: str) -> None:
    result = run(
        pytester,
        """
from cnats.lifecycle import Scope

async def test_leaks_unnamed():
    scope = Scope(asyncio.get_running_loop())
    scope.spawn(asyncio.sleep(3600), "held")
    asyncio.get_running_loop().create_task(scope.wait_closed())  # no name: escaped the naming
""",
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*2 cnats task(s) still pending*"])
    result.stdout.fnmatch_lines_random(
        ["*cnats:held: sleep*", "*Task-* (unnamed, runs cnats code): wait_closed (lifecycle.py:*"]
    )


def test_no_pending_cnats_task_passes(pytester: pytest.Pytester, guarded: str) -> None:
    result = run(
        pytester,
        """
async def test_cleans_up():
    task = asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="cnats:done")
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

async def test_finished_task():
    await asyncio.get_running_loop().create_task(asyncio.sleep(0), name="cnats:quick")

async def test_other_tasks_are_not_checked():
    asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="someone-else")
""",
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["cnats lifecycle guard: on"])


def test_check_runs_after_the_fixtures_teardown(pytester: pytest.Pytester, guarded: str) -> None:
    # Like the suite's nc fixture: a connection-like fixture holds a cnats task and ends it in its teardown.
    result = run(
        pytester,
        """
@pytest.fixture
async def conn():
    task = asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="cnats:reader")
    yield task
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

@pytest.fixture
async def leaky_conn():
    yield asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="cnats:reconnect")

async def test_fixture_closes(conn):
    assert not conn.done()

async def test_fixture_leaks(leaky_conn):
    assert not leaky_conn.done()
""",
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_fixture_leaks*", "*cnats:reconnect: sleep*"])
    assert not [line for line in result.outlines if "ERROR" in line and "test_fixture_closes" in line]


def test_task_exception_never_retrieved_fails_the_test(pytester: pytest.Pytester, guarded: str) -> None:
    result = run(
        pytester,
        """
async def boom():
    raise ValueError("lost")

async def test_task_exception():
    task = asyncio.get_running_loop().create_task(boom())
    await asyncio.sleep(0.01)
    assert task.done()
    del task  # the exception was never retrieved

async def test_future_exception():
    fut = asyncio.get_running_loop().create_future()
    fut.set_exception(KeyError("lost too"))
    del fut

async def test_in_a_cycle():
    # only gc finds it: the guard's gc.collect() makes it this test's failure
    task = asyncio.get_running_loop().create_task(boom())
    await asyncio.sleep(0.01)
    cycle = [task]
    cycle.append(cycle)
    del task, cycle
""",
    )
    result.assert_outcomes(passed=3, errors=3)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_task_exception*",
            "*1 report(s) reached the event loop's exception handler:",
            "Task exception was never retrieved",
            "*ValueError: lost",
            "*ERROR at teardown of test_future_exception*",
            "Future exception was never retrieved",
            "*KeyError: 'lost too'",
            "*ERROR at teardown of test_in_a_cycle*",
            "Task exception was never retrieved",
        ]
    )
    # still printed as asyncio prints it (through the default handler's log record)
    result.stdout.fnmatch_lines(["*ERROR*asyncio*Task exception was never retrieved*"])


def test_failed_cnats_background_task_fails_the_test(
    pytester: pytest.Pytester, guarded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The inner session runs in this process: this test's own guard would collect its records too (a handler on the
    # same logger). Off the logger while the inner session runs: its outcome is what this test looks at.
    monkeypatch.setattr(logging.getLogger("cnats"), "handlers", [])
    result = run(
        pytester,
        """
import logging
from cnats.lifecycle import Scope

async def fails():
    raise ValueError("lost in the background")

async def test_scope_task_fails():
    scope = Scope(asyncio.get_running_loop())
    task = scope.spawn(fails(), "worker")
    await asyncio.wait([task])
    await asyncio.sleep(0)  # the scope's done callback logs the failure

@pytest.fixture
def logs_in_teardown():
    yield
    logging.getLogger("cnats.sub").error("background task %s failed", "cnats:closing", exc_info=KeyError("late"))

def test_failure_logged_in_a_fixtures_teardown(logs_in_teardown):
    pass

def test_other_cnats_records_pass():
    logging.getLogger("cnats").warning("background task cnats:x failed")  # below ERROR
    logging.getLogger("cnats").error("something else went wrong")
    logging.getLogger("other").error("background task not cnats' failed")
""",
        "-rE",
    )
    result.assert_outcomes(passed=3, errors=2)  # the test bodies passed; the guard fails two teardowns
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_scope_task_fails*",
            "*lifecycle guard*",
            "*1 cnats background task(s) failed:",
            "*cnats ERROR: background task cnats:worker failed",
            "*ValueError: lost in the background",
            "*ERROR at teardown of test_failure_logged_in_a_fixtures_teardown*",
            "*cnats.sub ERROR: background task cnats:closing failed",
            "*KeyError: 'late'",
        ]
    )
    assert not [line for line in result.outlines if "ERROR" in line and "test_other_cnats_records_pass" in line]


def test_never_awaited_coroutine_and_unclosed_socket_are_errors(pytester: pytest.Pytester, guarded: str) -> None:
    result = run(
        pytester,
        """
async def work():
    pass

async def test_never_awaited():
    work()

def test_never_awaited_in_a_cycle():
    # only gc finds it: the guard's gc.collect() makes it this test's error, not a later test's
    coro = work()
    cycle = [coro]
    cycle.append(cycle)
    del coro, cycle

def test_unclosed_socket():
    s = socket.socket()
    del s

async def test_unclosed_stream():
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    server.close()
    cycle = [writer]
    cycle.append(cycle)
    del writer, cycle  # never closed

def test_clean():
    with socket.socket():
        pass
""",
        "-rfE",
    )
    result.assert_outcomes(failed=2, passed=3, errors=2)
    # A summary line ends at the test id, or goes on with " - <message>" (pytest keeps the message whole under CI=...)
    result.stdout.re_match_lines_random(
        [
            r"FAILED \S+::test_never_awaited( - .*)?$",  # dropped at once: the warning is raised in the test
            r"ERROR \S+::test_never_awaited_in_a_cycle( - .*)?$",  # dropped by the guard's gc.collect()
            r"FAILED \S+::test_unclosed_socket( - .*)?$",
            r"ERROR \S+::test_unclosed_stream( - .*)?$",
        ]
    )
    text = result.stdout.str()
    assert text.count("RuntimeWarning: coroutine 'work' was never awaited") >= 2
    assert "ResourceWarning: unclosed <socket.socket" in text
    assert "ResourceWarning: unclosed <StreamWriter" in text


def test_guard_is_off_when_switched_off(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "0")
    result = run(
        pytester,
        """
async def boom():
    raise ValueError("lost")

async def test_leaks():
    asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="cnats:leak")
    task = asyncio.get_running_loop().create_task(boom())
    await asyncio.sleep(0.01)
    del task
""",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["cnats lifecycle guard: off*"])
