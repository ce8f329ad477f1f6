"""Fixtures of the object-store tests: a connection, its JetStream client and manager, and a store ``b`` (memory
storage, so the tests do not wait on the disk)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import cnats
from cnats import NatsConnection
from cnats.jetstream import JetStreamClient, JetStreamManager, ObjectStore, StorageType
from cnats.testing import NatsServer


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[NatsConnection]:
    conn = await cnats.connect(nats_server.url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def js(nc: NatsConnection) -> JetStreamClient:
    return nc.jetstream()


@pytest.fixture
async def jsm(nc: NatsConnection) -> JetStreamManager:
    return await nc.jetstream_manager()


@pytest.fixture
async def store(js: JetStreamClient) -> ObjectStore:
    return await js.views.os("b", storage=StorageType.MEMORY)
