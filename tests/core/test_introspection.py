"""What a connection says about itself: is_connected, is_reconnecting, last_error, servers, discovered_servers and
pending_bytes, against real servers (a node stopped and restarted, a cluster telling about its nodes)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from helpers.core import eventually

import cnats
from cnats import Msg, NatsConnection
from cnats.errors import CallbackError, NatsConnectionRefusedError
from cnats.testing import NatsServer

FAST = {"reconnect_time_wait": 0.05, "reconnect_jitter": 0.0}


def hostport(url: str) -> str:
    return url.rsplit("/", 1)[-1]


async def test_a_connection_follows_its_state(nats_server_factory: Callable[..., NatsServer]) -> None:
    server = nats_server_factory()
    nc = await cnats.connect(server.url, max_reconnect_attempts=-1, **FAST)
    try:
        assert (nc.is_connected, nc.is_reconnecting, nc.is_closed) == (True, False, False)
        assert nc.servers == [hostport(server.url)] and nc.discovered_servers == []
        await asyncio.to_thread(server.stop)
        await eventually(lambda: nc.is_reconnecting, timeout=5, what="reconnecting")
        assert not nc.is_connected
        await asyncio.to_thread(server.start)
        await eventually(lambda: nc.is_connected, timeout=10, what="reconnected")
        assert not nc.is_reconnecting
    finally:
        await nc.close()
    assert (nc.is_connected, nc.is_reconnecting, nc.is_closed) == (False, False, True)


async def test_last_error_is_the_last_reported_one_or_what_closed_the_connection(
    nats_server_factory: Callable[..., NatsServer],
) -> None:
    server = nats_server_factory()
    nc = await cnats.connect(server.url, max_reconnect_attempts=1, **FAST)
    assert nc.last_error is None

    def fails(msg: Msg) -> None:
        raise ValueError("boom")

    nc.subscribe("introspect.fails", callback=fails)
    nc.publish("introspect.fails", b"x")
    await nc.flush()
    await eventually(lambda: isinstance(nc.last_error, CallbackError), timeout=5, what="the callback's error")
    await asyncio.to_thread(server.stop)  # the one reconnect attempt fails: the connection closes
    error = await asyncio.wait_for(asyncio.shield(nc.closed), 10)
    assert isinstance(error, NatsConnectionRefusedError) and nc.last_error is error


async def test_discovered_servers_are_the_cluster_nodes_not_given(
    nats_server_factory: Callable[..., NatsServer],
) -> None:
    cluster = nats_server_factory(cluster=3)
    given = hostport(cluster.urls[0])
    async with await cnats.connect(cluster.urls[0], no_randomize=True) as nc:
        others = {hostport(url) for url in cluster.urls[1:]}
        await eventually(lambda: set(nc.discovered_servers) == others, timeout=5, what="the cluster's nodes")
        assert nc.servers[0] == given and set(nc.servers) == {given, *others}


async def test_pending_bytes_counts_what_is_not_written_yet(nc: NatsConnection) -> None:
    assert nc.pending_bytes == 0
    nc.publish("introspect.pending", b"0123456789")
    assert nc.pending_bytes == len(b"PUB introspect.pending 10\r\n0123456789\r\n")
    await nc.flush()
    assert nc.pending_bytes == 0
