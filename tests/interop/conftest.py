"""Fixtures of the interop tests: a cnats connection and a nats-py client on the same real server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NatsPyClient

from cnats.testing import NatsServer

PY_NAME = "nats-py-interop"  # the nats-py client's connection name (tests find it in /connz by it)


@pytest.fixture
async def py(nats_server: NatsServer) -> AsyncIterator[NatsPyClient]:
    client = await nats.connect(nats_server.url, name=PY_NAME, allow_reconnect=False)
    try:
        yield client
    finally:
        await client.close()
