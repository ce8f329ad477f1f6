"""Fixtures shared by the JetStream tests: a connection, a manager with stream ``S`` (subjects ``s.>``, memory
storage) and a client. A module that needs a manager without the stream defines its own ``jsm``."""

from __future__ import annotations

import pytest

from cnats import NatsConnection
from cnats.jetstream import JetStreamClient, JetStreamManager


@pytest.fixture
async def jsm(nc: NatsConnection) -> JetStreamManager:
    manager = await nc.jetstream_manager()
    await manager.streams.add(name="S", subjects=["s.>"], storage="memory")
    return manager


@pytest.fixture
def js(nc: NatsConnection, jsm: JetStreamManager) -> JetStreamClient:
    return nc.jetstream()
