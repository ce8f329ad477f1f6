"""Suite-wide settings. ``CNATS_TEST_UVLOOP=1`` runs every async test on uvloop instead of asyncio's own loop
(the README's test command does this for its second run, with the pure-Python core)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from cnats import NatsConnection
    from cnats.jetstream import JetStreamClient, JetStreamManager
    from cnats.testing import NatsServer

# On unless CNATS_LIFECYCLE_GUARD=0: a test fails when it leaves cnats tasks pending, lost task exceptions, failed
# cnats background tasks, never-awaited coroutines or unclosed transports behind (tests/lifecycle_guard.py).
pytest_plugins = ["lifecycle_guard"]


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, Callable[[], Any]]:
    if os.environ.get("CNATS_TEST_UVLOOP", "") not in ("", "0"):
        import uvloop

        return {"uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


def pytest_report_header(config: pytest.Config) -> str:
    import cnats

    loop = "uvloop" if os.environ.get("CNATS_TEST_UVLOOP", "") not in ("", "0") else "asyncio"
    return f"cnats: protocol core {'cython' if cnats.USES_CYTHON else 'pure python'}, event loop {loop}"


# The connection most tests need; a directory whose tests need other options defines its own ``nc``.
@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[NatsConnection]:
    import cnats

    async with await cnats.connect(nats_server.url) as conn:
        yield conn


@pytest.fixture
async def nc2(nats_server: NatsServer) -> AsyncIterator[NatsConnection]:
    """A second connection to the same server (the other side: responders, requesters, observers)."""
    import cnats

    async with await cnats.connect(nats_server.url) as conn:
        yield conn


@pytest.fixture
def js(nc: NatsConnection) -> JetStreamClient:
    return nc.jetstream()


@pytest.fixture
async def jsm(nc: NatsConnection) -> JetStreamManager:
    return await nc.jetstream_manager()
