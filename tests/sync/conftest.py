"""Fixtures of the cnats.sync tests: a blocking connection to the real nats-server, on uvloop when the suite runs on
uvloop (``CNATS_TEST_UVLOOP=1``), and a check after every test that no thread of cnats.sync is left running."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sync.support import eventually, loop_factory, sync_threads

import cnats.sync
from cnats.sync import SyncConnection
from cnats.testing import NatsServer


@pytest.fixture(autouse=True)
def _no_thread_left() -> Iterator[None]:
    """Every blocking connection a test opened is closed by its end, and none leaves a thread behind."""
    yield
    eventually(lambda: not sync_threads(), timeout=5.0, what=f"threads left: {sync_threads()}")


@pytest.fixture
def connect(nats_server: NatsServer) -> Iterator[Callable[..., SyncConnection]]:
    """``connect(**options)``: more blocking connections to the test's server, closed at teardown."""
    conns: list[SyncConnection] = []

    def make(**options: Any) -> SyncConnection:
        conn = cnats.sync.connect(nats_server.url, loop_factory=loop_factory(), **options)
        conns.append(conn)
        return conn

    try:
        yield make
    finally:
        for conn in conns:
            conn.close()


@pytest.fixture
def snc(connect: Callable[..., SyncConnection]) -> SyncConnection:
    """A blocking connection to the test's server."""
    return connect()
