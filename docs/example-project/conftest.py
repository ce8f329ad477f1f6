"""Fixtures shared by the greeter's tests. The servers come from cnats' pytest plugin (``nats_server``,
``nats_cluster``), which installing cnats registers: nothing to import for them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import cnats
import pytest
from cnats.testing import NatsServer


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[cnats.NatsConnection]:
    """A connection to the test's own nats-server (JetStream on), closed after the test."""
    async with await cnats.connect(nats_server.url) as connection:
        yield connection
