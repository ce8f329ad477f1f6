"""Fixtures of the object-store tests: a connection, its JetStream client and manager, and a store ``b`` (memory
storage, so the tests do not wait on the disk)."""

from __future__ import annotations

import pytest

from cnats.jetstream import JetStreamClient, ObjectStore, StorageType


@pytest.fixture
async def store(js: JetStreamClient) -> ObjectStore:
    return await js.views.os("b", storage=StorageType.MEMORY)
