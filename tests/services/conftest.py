"""Fixtures of the services tests: a real nats-server without JetStream (the framework needs none, and it starts
faster) and cnats connections to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import cnats
from cnats import NatsConnection
from cnats.testing import NatsServer


@pytest.fixture
def nats_server(nats_server_factory: Callable[..., NatsServer]) -> NatsServer:
    return nats_server_factory(jetstream=False)


@pytest.fixture
async def connect(nats_server: NatsServer) -> AsyncIterator[Callable[..., Awaitable[NatsConnection]]]:
    """More connections to the same server (other service instances, requesters), closed at teardown."""
    conns: list[NatsConnection] = []

    async def make(**kwargs: Any) -> NatsConnection:
        conn = await cnats.connect(nats_server.url, **kwargs)
        conns.append(conn)
        return conn

    try:
        yield make
    finally:
        for conn in conns:
            await conn.close()
