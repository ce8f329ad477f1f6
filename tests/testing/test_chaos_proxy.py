"""``ChaosProxy`` itself: url, start/stop, async context manager, ``connections``, and the effect of
each fault control, observed through raw sockets (and cnats clients) in front of a real nats-server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re

import pytest
from helpers.core import closed_port, eventually

from cnats import connect
from cnats.testing import ChaosProxy, NatsServer

pytestmark = pytest.mark.nats_server(jetstream=False)

Raw = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def raw_connect(url: str) -> Raw:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port_of(url)), 2)


async def handshake(url: str) -> tuple[Raw, dict[str, object]]:
    """A raw protocol client: reads INFO, sends CONNECT + PING, waits for the PONG; returns it and the INFO.

    Protocol 0, so that the server sends no further INFO after the PONG (it does for protocol 1 clients)."""
    reader, writer = await raw_connect(url)
    line = await asyncio.wait_for(reader.readline(), 2)
    assert line.startswith(b"INFO "), line
    writer.write(b'CONNECT {"verbose":false,"pedantic":false,"protocol":0}\r\nPING\r\n')
    assert await asyncio.wait_for(reader.readline(), 2) == b"PONG\r\n"
    return (reader, writer), json.loads(line[5:])


async def ping(raw: Raw, timeout: float = 2) -> bytes:
    reader, writer = raw
    writer.write(b"PING\r\n")
    return await asyncio.wait_for(reader.readline(), timeout)


async def refused(url: str) -> bool:
    try:
        _, writer = await raw_connect(url)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


async def read_to_eof(reader: asyncio.StreamReader, timeout: float = 2) -> bytes:
    return await asyncio.wait_for(reader.read(), timeout)


def close(raw: Raw) -> None:
    with contextlib.suppress(Exception):
        raw[1].close()


async def test_url_start_stop(nats_server: NatsServer) -> None:
    proxy = ChaosProxy(nats_server.url)
    assert re.fullmatch(r"nats://127\.0\.0\.1:\d+", proxy.url)
    assert port_of(proxy.url) != nats_server.port
    assert proxy.connections == 0
    assert await refused(proxy.url)  # not listening before start()

    assert await proxy.start() is proxy
    raw, info = await handshake(proxy.url)
    assert info["port"] == nats_server.port  # the INFO comes from the real server behind the proxy
    await eventually(lambda: proxy.connections == 1, timeout=2)

    await proxy.stop()
    assert await read_to_eof(raw[0]) == b""  # proxied connections are closed
    assert proxy.connections == 0
    assert await refused(proxy.url)
    close(raw)
    await proxy.stop()  # idempotent


async def test_fixed_port_and_async_context_manager(nats_server: NatsServer) -> None:
    port = closed_port()
    async with ChaosProxy(nats_server.url, port=port) as proxy:
        assert isinstance(proxy, ChaosProxy)
        assert proxy.url == f"nats://127.0.0.1:{port}"
        raw, _ = await handshake(proxy.url)
        assert await ping(raw) == b"PONG\r\n"
    assert await read_to_eof(raw[0]) == b""
    assert await refused(f"nats://127.0.0.1:{port}")
    close(raw)


async def test_connections_counts_proxied_clients(chaos_proxy: ChaosProxy) -> None:
    assert chaos_proxy.connections == 0
    a = await connect(chaos_proxy.url)
    b = await connect(chaos_proxy.url)
    try:
        await eventually(lambda: chaos_proxy.connections == 2, timeout=2)
        await a.close()
        await eventually(lambda: chaos_proxy.connections == 1, timeout=2)
        await b.close()
        await eventually(lambda: chaos_proxy.connections == 0, timeout=2)
    finally:
        await a.close()
        await b.close()


async def test_proxy_forwards_messages_both_ways(chaos_proxy: ChaosProxy, nats_server: NatsServer) -> None:
    async with await connect(chaos_proxy.url) as via_proxy, await connect(nats_server.url) as direct:
        sub = via_proxy.subscribe("fwd.x")
        await via_proxy.flush()
        direct.publish("fwd.x", b"to the proxied client")
        assert (await sub.next_msg(timeout=2)).data == b"to the proxied client"
        back = direct.subscribe("fwd.y")
        await direct.flush()
        via_proxy.publish("fwd.y", b"from the proxied client")
        assert (await back.next_msg(timeout=2)).data == b"from the proxied client"


async def test_blackhole_swallows_both_directions_without_closing(chaos_proxy: ChaosProxy) -> None:
    raw, _ = await handshake(chaos_proxy.url)
    try:
        chaos_proxy.blackhole()
        with pytest.raises(asyncio.TimeoutError):
            await ping(raw, timeout=0.3)  # the PING (or its PONG) is swallowed...
        assert not raw[0].at_eof()  # ...and the connection stays open: no FIN
        assert chaos_proxy.connections == 1
        # a new connection gets no INFO either
        fresh = await raw_connect(chaos_proxy.url)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(fresh[0].readline(), 0.3)
        close(fresh)

        chaos_proxy.blackhole(False)
        assert await ping(raw) == b"PONG\r\n"  # exactly one PONG: the swallowed PING never arrives later
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(raw[0].readline(), 0.2)
    finally:
        chaos_proxy.blackhole(False)
        close(raw)


async def test_latency_delays_each_direction(chaos_proxy: ChaosProxy) -> None:
    raw, _ = await handshake(chaos_proxy.url)
    loop = asyncio.get_running_loop()
    try:
        begin = loop.time()
        assert await ping(raw) == b"PONG\r\n"
        assert loop.time() - begin < 0.05
        chaos_proxy.set_latency(0.1)
        begin = loop.time()
        assert await ping(raw) == b"PONG\r\n"
        assert loop.time() - begin >= 0.19  # 0.1 s on the way in, 0.1 s on the way out
        chaos_proxy.set_latency(-1)  # negative means none
        begin = loop.time()
        assert await ping(raw) == b"PONG\r\n"
        assert loop.time() - begin < 0.05
    finally:
        close(raw)


async def test_cut_closes_every_proxied_connection_and_keeps_accepting(chaos_proxy: ChaosProxy) -> None:
    first, _ = await handshake(chaos_proxy.url)
    second, _ = await handshake(chaos_proxy.url)
    await eventually(lambda: chaos_proxy.connections == 2, timeout=2)
    chaos_proxy.cut()
    assert await read_to_eof(first[0]) == b""
    assert await read_to_eof(second[0]) == b""
    assert chaos_proxy.connections == 0
    again, _ = await handshake(chaos_proxy.url)  # cut() is not refuse()
    assert await ping(again) == b"PONG\r\n"
    for raw in (first, second, again):
        close(raw)


async def test_cut_mid_frame_forwards_half_of_the_next_server_chunk(
    chaos_proxy: ChaosProxy, nats_server: NatsServer
) -> None:
    sub, _ = await handshake(chaos_proxy.url)
    pub, _ = await handshake(nats_server.url)
    try:
        sub[1].write(b"SUB cut.half 1\r\n")
        assert await ping(sub) == b"PONG\r\n"
        chaos_proxy.cut(mid_frame=True)
        await asyncio.sleep(0.1)
        assert chaos_proxy.connections == 1  # still open until the server sends something
        assert not sub[0].at_eof()
        payload = b"x" * 100
        pub[1].write(b"PUB cut.half 100\r\n" + payload + b"\r\n")
        frame = b"MSG cut.half 1 100\r\n" + payload + b"\r\n"
        got = await read_to_eof(sub[0])
        assert 0 < len(got) < len(frame), got
        assert frame.startswith(got)
        await eventually(lambda: chaos_proxy.connections == 0, timeout=2)
        # only the connections present at the cut were marked: a new one forwards whole frames
        again, _ = await handshake(chaos_proxy.url)
        again[1].write(b"SUB cut.half 1\r\n")
        assert await ping(again) == b"PONG\r\n"
        pub[1].write(b"PUB cut.half 100\r\n" + payload + b"\r\n")
        assert await asyncio.wait_for(again[0].readexactly(len(frame)), 2) == frame
        close(again)
    finally:
        close(sub)
        close(pub)


async def test_refuse_rejects_new_connections_only(chaos_proxy: ChaosProxy) -> None:
    existing, _ = await handshake(chaos_proxy.url)
    try:
        chaos_proxy.refuse()
        assert await refused(chaos_proxy.url)
        assert await ping(existing) == b"PONG\r\n"  # established connections are untouched
        assert chaos_proxy.connections == 1
        chaos_proxy.refuse()  # twice is harmless
        chaos_proxy.refuse(False)

        async def accepts() -> bool:
            return not await refused(chaos_proxy.url)

        await eventually(accepts, timeout=2, what="listening again")
        fresh, _ = await handshake(chaos_proxy.url)
        assert await ping(fresh) == b"PONG\r\n"
        close(fresh)
        chaos_proxy.refuse(False)  # already accepting: harmless
        assert await ping(existing) == b"PONG\r\n"
    finally:
        chaos_proxy.refuse(False)
        close(existing)


async def test_inject_to_client_writes_raw_bytes_to_every_client(chaos_proxy: ChaosProxy) -> None:
    a, _ = await handshake(chaos_proxy.url)
    b, _ = await handshake(chaos_proxy.url)
    try:
        await eventually(lambda: chaos_proxy.connections == 2, timeout=2)
        chaos_proxy.inject_to_client(b'INFO {"ldm":true}\r\n')
        for reader, _ in (a, b):
            assert await asyncio.wait_for(reader.readline(), 2) == b'INFO {"ldm":true}\r\n'
        # the injected bytes went to the clients only, the server did not see them: the connection is healthy
        assert await ping(a) == b"PONG\r\n"
    finally:
        close(a)
        close(b)
