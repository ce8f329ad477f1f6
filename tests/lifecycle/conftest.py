"""Fixtures shared by the lifecycle tests (their helpers are in tests/helpers/lifecycle.py). What every test of the
suite gets from the lifecycle guard (tests/lifecycle_guard.py) is not repeated here: no cnats task left pending,
nothing reaching the loop's exception handler, no failed cnats background task, no coroutine never awaited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from helpers.lifecycle import ApiSpy, StoppedCheck, assert_stopped_for_good
from lifecycle_guard import LoopErrors

from cnats import NatsConnection
from cnats.jetstream import JetStreamManager


@pytest.fixture
async def loop_errors() -> AsyncIterator[LoopErrors]:
    """What reaches the loop's exception handler during the test ("Task exception was never retrieved", ...), for a
    test to look at before its end (each report is passed on to the guard's handler too)."""
    errors = LoopErrors(asyncio.get_running_loop())
    errors.install()
    try:
        yield errors
    finally:
        errors.uninstall()


@pytest.fixture
def stopped_for_good(
    nc: NatsConnection, jsm: JetStreamManager, spy: ApiSpy, poke: Callable[[], Awaitable[object]]
) -> StoppedCheck:
    """``await stopped_for_good(what)``: the consumers of the spy's stream are gone and, from a settle point on, the
    spy sees no more request even when ``poke()`` gives a live iterator something new to deliver (``spy`` and
    ``poke`` are the test module's)."""
    return lambda what: assert_stopped_for_good(nc, jsm, spy, what, poke)
