"""The async-iterator protocol of a subscription, called by hand as well as by ``async for``."""

from __future__ import annotations

import asyncio

import pytest

import cnats
from cnats.testing import NatsServer

pytestmark = pytest.mark.nats_server(jetstream=False)


async def test_concurrent_anext_calls_get_different_messages(nats_server: NatsServer) -> None:
    nc = await cnats.connect(nats_server.url)
    try:
        sub = nc.subscribe("it.x")
        nc.publish("it.x", b"1")
        nc.publish("it.x", b"2")
        await nc.flush()
        while sub.pending < 2:
            await asyncio.sleep(0.01)
        first, second = await asyncio.gather(sub.__anext__(), sub.__anext__())
        assert sorted([first.data, second.data]) == [b"1", b"2"]
        waiting = asyncio.ensure_future(sub.__anext__())  # nothing queued: the slow path waits
        await asyncio.sleep(0.05)
        assert not waiting.done()
        nc.publish("it.x", b"3")
        assert (await asyncio.wait_for(waiting, 5)).data == b"3"
        assert sub.processed == 3 and sub.pending == 0 and sub.pending_bytes == 0
    finally:
        await nc.close()


async def test_anext_after_close_stops(nats_server: NatsServer) -> None:
    nc = await cnats.connect(nats_server.url)
    sub = nc.subscribe("it.y")
    await nc.close()
    with pytest.raises(StopAsyncIteration):
        await sub.__anext__()
