"""The WebSocket transport (ws:// and wss://) against real nats-server websocket listeners: core messaging, large
payloads crossing many frames, auth, TLS, reconnect, cluster discovery keeping the scheme, JetStream, KV, object
store and services over it, a nats-py TCP peer on the same server, and the options' errors."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import subprocess
import sys

import pytest
from nats.aio.client import Client as NatsPyClient
from nats.aio.msg import Msg as NatsPyMsg

import cnats
from cnats import Events, InvalidOptionError, NatsConnectionRefusedError
from cnats.services import ServiceMsg
from cnats.testing import NatsServer
from tests.helpers.core import closed_port, eventually
from tests.helpers.nats_py import py_subscribe

pytestmark = pytest.mark.nats_server(jetstream=True, websocket=True)


def test_urls_take_the_websocket_scheme_and_http_default_ports() -> None:
    from cnats.servers import ServerPool, parse_server_url

    ws = parse_server_url("ws://example.com/nats?x=1")
    assert (ws.scheme, ws.port, ws.path, ws.tls_required) == ("ws", 80, "/nats?x=1", False)
    wss = parse_server_url("wss://user:pw@example.com")
    assert (wss.scheme, wss.port, wss.path, wss.tls_required, wss.username) == ("wss", 443, "/", True, "user")
    assert parse_server_url("ws://h:8080").port == 8080
    with pytest.raises(InvalidOptionError, match="cannot mix"):
        ServerPool(["ws://a:1", "nats://b:2"])
    with pytest.raises(InvalidOptionError, match="cannot mix"):
        ServerPool(["wss://a:1", "tls://b:2"])


async def test_pub_sub_request_over_websocket(nats_server: NatsServer) -> None:
    async with await cnats.connect(nats_server.ws_url) as nc:
        assert nc.is_connected and nc.server == nats_server.ws_url.removeprefix("ws://")
        sub = nc.subscribe("ws.>")
        nc.subscribe("svc", callback=lambda m: m.respond(b"pong:" + m.data))
        for i in range(1000):
            nc.publish(f"ws.{i}", str(i).encode(), headers={"N": str(i)} if i % 2 else None)
        got = [await sub.next_msg(5) for _ in range(1000)]
        assert [m.data for m in got] == [str(i).encode() for i in range(1000)]
        assert got[1].headers is not None and got[1].headers.get("N") == "1"
        reply = await nc.request("svc", b"ping", timeout=5)
        assert reply.data == b"pong:ping"
        stats = nc.stats()
        assert stats.out_msgs >= 1001 and stats.in_msgs >= 1001


async def test_large_payloads_cross_many_frames_both_ways(nats_server: NatsServer) -> None:
    # 900 KiB messages: each leaves as one frame, arrives split over many socket reads and frames, and several
    # messages share frames on the way back; the parser sees a byte stream either way
    payloads = [os.urandom(900 * 1024) for _ in range(4)]
    async with await cnats.connect(nats_server.ws_url) as nc:
        sub = nc.subscribe("big")
        for p in payloads:
            nc.publish("big", p)
        for p in payloads:
            msg = await sub.next_msg(10)
            assert hashlib.sha256(msg.data).digest() == hashlib.sha256(p).digest()


async def test_a_nats_py_tcp_peer_talks_to_a_websocket_client(nats_server: NatsServer) -> None:
    peer = NatsPyClient()
    await peer.connect(nats_server.url, name="nats-py-tcp-peer")
    try:
        async with await cnats.connect(nats_server.ws_url) as nc:
            from_peer = nc.subscribe("to.ws")
            to_peer = await py_subscribe(nats_server, peer, "to.tcp")
            await nc.flush()
            await peer.publish("to.ws", b"hello over tcp", headers={"K": "v"})
            msg = await from_peer.next_msg(5)
            assert msg.data == b"hello over tcp" and msg.headers is not None and msg.headers.get("K") == "v"
            nc.publish("to.tcp", b"hello over websocket")
            await nc.flush()
            got = await to_peer.next_msg(5)
            assert got.data == b"hello over websocket"

            # request/reply across transports, both ways
            async def echo(m: NatsPyMsg) -> None:
                await m.respond(m.data)

            await py_subscribe(nats_server, peer, "tcp.echo", cb=echo)
            assert (await nc.request("tcp.echo", b"x", timeout=5)).data == b"x"
            nc.subscribe("ws.echo", callback=lambda m: m.respond(m.data))
            await nc.flush()
            assert (await peer.request("ws.echo", b"y", timeout=5)).data == b"y"
    finally:
        await peer.close()


async def test_jetstream_kv_object_store_and_services_over_websocket(nats_server: NatsServer) -> None:
    async with await cnats.connect(nats_server.ws_url) as nc:
        jsm = await nc.jetstream_manager()
        from cnats.jetstream import StreamConfig

        await jsm.streams.add(StreamConfig(name="WS", subjects=["wsjs.>"]))
        js = nc.jetstream()
        acks = [await js.publish("wsjs.a", str(i).encode()) for i in range(20)]
        assert [a.seq for a in acks] == list(range(1, 21))
        consumer = await js.consumers.get("WS")
        seen = [m.data async for m in await consumer.fetch(max_messages=20, expires=5)]
        assert seen == [str(i).encode() for i in range(20)]

        kv = await js.views.kv("WSKV")
        await kv.put("k", b"v1")
        entry = await kv.get("k")
        assert entry is not None and entry.value == b"v1"

        store = await js.views.os("WSOBJ")
        blob = os.urandom(300 * 1024)  # three chunks
        await store.put("o", blob)
        assert await store.get_blob("o") == blob

        service = await nc.services.add("wsvc", "1.0.0")

        def double(msg: ServiceMsg) -> None:
            msg.respond(msg.data * 2)

        service.add_endpoint("double", double)
        await nc.flush()
        assert (await nc.request("double", b"ab", timeout=5)).data == b"abab"
        await service.stop()


@pytest.mark.nats_server(jetstream=False, websocket=True, users={"alice": "s3cret"})
async def test_user_password_over_websocket(nats_server: NatsServer) -> None:
    url = nats_server.ws_url.replace("ws://", "ws://alice:s3cret@")
    async with await cnats.connect(url) as nc:
        assert (await nc.request("$SYS.REQ.USER.INFO", b"", timeout=5)) is not None
    with pytest.raises(cnats.AuthorizationError):
        await cnats.connect(nats_server.ws_url, user="alice", password="wrong", max_reconnect_attempts=0)


async def test_ws_headers_reach_the_upgrade_request() -> None:
    # The server takes the token from a cookie of the upgrade request: the connection is only authorised if the
    # extra header really was sent.
    port = closed_port()
    config = f'websocket {{ listen: "127.0.0.1:{port}", no_tls: true, token_cookie: "nats_token" }}'
    with NatsServer(token="t0ken", config=config):
        url = f"ws://127.0.0.1:{port}"
        await eventually(lambda: _accepts(port), timeout=10, what="the WebSocket listener")
        async with await cnats.connect(url, ws_headers={"Cookie": "nats_token=t0ken"}) as nc:
            assert (await nc.request("$SYS.REQ.USER.INFO", b"", timeout=5)) is not None
        with pytest.raises(cnats.AuthorizationError):
            await cnats.connect(url, ws_headers={"Cookie": "nats_token=wrong"}, max_reconnect_attempts=0)


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.nats_server(jetstream=False, websocket=True, tls=True)
async def test_wss_with_the_tls_options(nats_server: NatsServer) -> None:
    assert nats_server.ws_url.startswith("wss://")
    async with await cnats.connect(nats_server.ws_url, tls=nats_server.client_tls) as nc:
        sub = nc.subscribe("secure")
        nc.publish("secure", b"over wss")
        assert (await sub.next_msg(5)).data == b"over wss"
    with pytest.raises(cnats.TlsError):
        # the default trust store does not know the test CA
        await cnats.connect(nats_server.ws_url, max_reconnect_attempts=0)


async def test_reconnects_over_websocket_and_resubscribes(nats_server: NatsServer) -> None:
    events: list[Events] = []
    async with await cnats.connect(nats_server.ws_url, reconnect_time_wait=0.05, max_reconnect_attempts=-1) as nc:
        sub = nc.subscribe("again")
        await nc.flush()

        async def watch() -> None:
            async for status in nc.status():
                events.append(status.type)

        watcher = asyncio.ensure_future(watch())
        try:
            await asyncio.get_running_loop().run_in_executor(None, nats_server.restart)
            await eventually(lambda: Events.RECONNECT in events, timeout=15, what="a reconnect over WebSocket")
            await nc.flush()
            nc.publish("again", b"after")
            assert (await sub.next_msg(5)).data == b"after"
            assert nc.server == nats_server.ws_url.removeprefix("ws://")
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)


async def test_upgrade_refused_is_a_connection_error(nats_server: NatsServer) -> None:
    # the monitoring port speaks HTTP but does not upgrade: a 404, reported as a refused connection
    monitor = nats_server.monitor_urls[0].replace("http://", "ws://")
    with pytest.raises(NatsConnectionRefusedError, match="WebSocket upgrade refused"):
        await cnats.connect(monitor, max_reconnect_attempts=0)


async def test_option_errors_before_connecting() -> None:
    with pytest.raises(InvalidOptionError, match="cannot mix"):
        await cnats.connect(["ws://127.0.0.1:1", "nats://127.0.0.1:2"])
    with pytest.raises(InvalidOptionError, match="ws_headers is for ws:// and wss:// servers"):
        await cnats.connect("nats://127.0.0.1:1", ws_headers={"X": "1"})
    with pytest.raises(InvalidOptionError, match="mapping"):
        await cnats.connect("ws://127.0.0.1:1", ws_headers=[("X", "1")])  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="invalid ws_headers entry"):
        await cnats.connect("ws://127.0.0.1:1", ws_headers={"X": "a\r\nInjected: 1"})
    with pytest.raises(InvalidOptionError, match="scheme must be"):
        await cnats.connect("http://127.0.0.1:1")


def test_without_the_extra_a_websocket_url_names_it() -> None:
    code = (
        "import sys; sys.modules['websockets'] = None\n"
        "import asyncio, cnats\n"
        "try:\n"
        "    asyncio.run(cnats.connect('ws://127.0.0.1:1'))\n"
        "except cnats.InvalidOptionError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "pip install 'cnats[websocket]'" in out.stdout, out.stderr


async def test_cluster_discovery_keeps_the_websocket_scheme_and_fails_over() -> None:
    with NatsServer(cluster=3, websocket=True) as cluster:
        ws_ports = {url.removeprefix("ws://") for url in cluster.ws_urls}
        events: list[Events] = []
        async with await cnats.connect(
            cluster.ws_urls[0], reconnect_time_wait=0.05, max_reconnect_attempts=-1, no_randomize=True
        ) as nc:
            # the cluster announces its nodes' WebSocket URLs to a WebSocket client; they join the pool as ws://
            assert set(nc.discovered_servers) == ws_ports - {nc.server}
            assert set(nc.servers) == ws_ports

            async def watch() -> None:
                async for status in nc.status():
                    events.append(status.type)

            watcher = asyncio.ensure_future(watch())
            try:
                sub = nc.subscribe("fo")
                await nc.flush()
                first = nc.server
                cluster.stop(0)
                await eventually(lambda: Events.RECONNECT in events, timeout=15, what="a failover")
                assert nc.server != first and nc.server in ws_ports
                await nc.flush()
                nc.publish("fo", b"still here")
                assert (await sub.next_msg(5)).data == b"still here"
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)


# -- a hand-written WebSocket server: input a real nats-server never sends ----------------------------------------


class _FakeWebSocketServer:
    """Accepts the upgrade (or not), then plays ``frames`` (raw bytes, unmasked server frames)."""

    def __init__(self, frames: bytes, *, upgrade: bool = True) -> None:
        self.frames = frames
        self.upgrade = upgrade
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        if self.upgrade:
            key = next(
                line.split(b":", 1)[1].strip()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + self.frames
            )
        try:
            await reader.read()  # until the client goes
        finally:
            writer.close()


def _frame(opcode: int, payload: bytes) -> bytes:
    assert len(payload) < 126
    return bytes([0x80 | opcode, len(payload)]) + payload


async def test_a_broken_frame_is_a_protocol_error() -> None:
    info = b'INFO {"server_id":"fake","version":"2.15.0","proto":1,"max_payload":1048576,"headers":true}\r\n'
    reserved_opcode = _frame(0x3, b"?")  # RFC 6455: opcodes 3-7 are reserved
    async with _FakeWebSocketServer(_frame(0x2, info) + reserved_opcode) as url:
        with pytest.raises(cnats.ProtocolError, match="invalid WebSocket frame"):
            await cnats.connect(url, max_reconnect_attempts=0, timeout=5)


async def test_a_server_that_never_upgrades_times_out() -> None:
    async with _FakeWebSocketServer(b"", upgrade=False) as url:
        with pytest.raises(cnats.ConnectionTimeoutError):
            await cnats.connect(url, max_reconnect_attempts=0, timeout=0.5)
