"""connect(): addresses, option checks, connect errors, server INFO, name, no_echo, async with."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers.core import closed_port, eventually, http_json

from cnats import NatsConnection, ServerInfo, connect
from cnats.errors import (
    ConnectionTimeoutError,
    InvalidOptionError,
    NatsConnectionRefusedError,
    NatsTimeoutError,
)
from cnats.testing import NatsServer

pytestmark = pytest.mark.nats_server(jetstream=False)


async def _roundtrip(nc: NatsConnection, subject: str = "connect.check") -> None:
    """Prove the connection works: a message published on it comes back to a subscription on it."""
    sub = nc.subscribe(subject)
    nc.publish(subject, b"ping")
    msg = await sub.next_msg(timeout=5)
    assert msg.data == b"ping"
    sub.unsubscribe()


# -- server addresses ----------------------------------------------------------------------------------------------


async def test_connect_with_nats_url(nats_server: NatsServer) -> None:
    nc = await connect(f"nats://127.0.0.1:{nats_server.port}")
    try:
        assert not nc.is_closed
        await _roundtrip(nc)
    finally:
        await nc.close()


async def test_connect_with_host_port_without_scheme(nats_server: NatsServer) -> None:
    nc = await connect(f"127.0.0.1:{nats_server.port}")
    try:
        assert nc.server == f"127.0.0.1:{nats_server.port}"
        await _roundtrip(nc)
    finally:
        await nc.close()


async def test_connect_with_list_skips_unreachable_first_server(nats_server: NatsServer) -> None:
    dead = closed_port()
    nc = await connect([f"127.0.0.1:{dead}", f"nats://127.0.0.1:{nats_server.port}"], no_randomize=True)
    try:
        assert nc.server == f"127.0.0.1:{nats_server.port}"
        await _roundtrip(nc)
    finally:
        await nc.close()


async def test_connect_with_port_option(nats_server: NatsServer) -> None:
    nc = await connect(port=nats_server.port)
    try:
        assert nc.server == f"127.0.0.1:{nats_server.port}"
        await _roundtrip(nc)
    finally:
        await nc.close()


async def test_port_together_with_servers_is_rejected(nats_server: NatsServer) -> None:
    with pytest.raises(InvalidOptionError) as info:
        await connect(nats_server.url, port=nats_server.port)
    assert str(info.value) == "port and servers options are mutually exclusive"


# -- connect errors ------------------------------------------------------------------------------------------------


async def test_refused_port_raises_connection_refused() -> None:
    port = closed_port()
    with pytest.raises(NatsConnectionRefusedError) as info:
        await connect(f"127.0.0.1:{port}", timeout=5)
    assert isinstance(info.value, ConnectionRefusedError)
    assert info.value.code == "CONNECTION_REFUSED"


async def test_every_server_refused_raises_the_last_error() -> None:
    ports = [closed_port(), closed_port()]
    with pytest.raises(NatsConnectionRefusedError):
        await connect([f"127.0.0.1:{p}" for p in ports], no_randomize=True, timeout=5)


async def test_port_with_empty_servers_list_is_allowed(nats_server: NatsServer) -> None:
    nc = await connect([], port=nats_server.port)
    try:
        assert nc.server == f"127.0.0.1:{nats_server.port}"
    finally:
        await nc.close()


async def test_server_that_never_sends_info_times_out_within_timeout() -> None:
    accepted = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Accept and say nothing; hold the socket until the client gives up.
        accepted.set()
        await reader.read()
        writer.close()

    fake = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = fake.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    try:
        start = loop.time()
        with pytest.raises(ConnectionTimeoutError) as info:
            await asyncio.wait_for(connect(f"127.0.0.1:{port}", timeout=0.5), 10)
        elapsed = loop.time() - start
    finally:
        fake.close()
        await fake.wait_closed()
    assert accepted.is_set()
    assert isinstance(info.value, NatsTimeoutError)
    assert isinstance(info.value, TimeoutError)
    assert info.value.code == "CONNECTION_TIMEOUT"
    assert 0.4 <= elapsed < 2.0


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"timeout": -1}, id="negative-timeout"),
        pytest.param({"max_ping_out": 0}, id="max_ping_out-0"),
        pytest.param({"inbox_prefix": "_INBOX.*"}, id="inbox_prefix-star"),
        pytest.param({"inbox_prefix": "a.>"}, id="inbox_prefix-gt"),
        pytest.param({"user": 123}, id="non-str-user"),
    ],
)
async def test_invalid_option_value_raises_invalid_option(nats_server: NatsServer, options: dict[str, Any]) -> None:
    with pytest.raises(InvalidOptionError) as info:
        await connect(nats_server.url, **options)
    assert isinstance(info.value, ValueError)
    assert info.value.code == "INVALID_OPTION"


# -- what a connection exposes ---------------------------------------------------------------------------------------


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[NatsConnection]:
    conn = await connect(nats_server.url)
    yield conn
    await conn.close()


async def test_info_describes_the_server(nc: NatsConnection, nats_server: NatsServer) -> None:
    info = nc.info
    assert isinstance(info, ServerInfo)
    assert isinstance(info.server_id, str) and info.server_id
    assert info.max_payload == 1024 * 1024  # the server default
    assert info.headers is True
    assert info.proto >= 1
    assert info.port == nats_server.port


async def test_server_is_host_port_of_current_server(nc: NatsConnection, nats_server: NatsServer) -> None:
    assert nc.server == f"127.0.0.1:{nats_server.port}"


async def test_info_is_none_once_closed(nc: NatsConnection) -> None:
    await nc.close()
    assert nc.info is None


async def test_name_is_reported_to_the_server(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url, name="cnats-connect-test")
    try:
        await nc.flush()
        url = nats_server.monitor_urls[0] + "/connz"

        async def listed() -> bool:
            connz = await http_json(url)
            return any(c.get("name") == "cnats-connect-test" for c in connz.get("connections", []))

        await eventually(listed, what="connection name in /connz")
    finally:
        await nc.close()


async def test_no_echo_suppresses_own_messages_only(nats_server: NatsServer) -> None:
    quiet = await connect(nats_server.url, no_echo=True)
    other = await connect(nats_server.url)
    try:
        got: list[bytes] = []
        quiet.subscribe("echo.test", callback=lambda m: got.append(m.data))
        await quiet.flush()
        quiet.publish("echo.test", b"mine")
        await quiet.flush()  # an echo would have been delivered before the PONG
        other.publish("echo.test", b"theirs")
        await other.flush()
        await eventually(lambda: len(got) >= 1, what="message of the other connection")
        await quiet.flush()
        assert got == [b"theirs"]
    finally:
        await quiet.close()
        await other.close()


async def test_echo_is_on_by_default(nc: NatsConnection) -> None:
    got: list[bytes] = []
    nc.subscribe("echo.default", callback=lambda m: got.append(m.data))
    nc.publish("echo.default", b"mine")
    await nc.flush()
    assert got == [b"mine"]


async def test_async_with_closes_on_exit(nats_server: NatsServer) -> None:
    async with await connect(nats_server.url) as nc:
        assert isinstance(nc, NatsConnection)
        assert not nc.is_closed
        await _roundtrip(nc)
    assert nc.is_closed
    assert nc.closed.done()
    assert nc.closed.result() is None


async def test_close_resolves_closed_with_none_and_is_idempotent(nats_server: NatsServer) -> None:
    nc = await connect(nats_server.url)
    await nc.close()
    await nc.close()
    assert nc.is_closed
    assert await nc.closed is None
