"""Connect options not covered elsewhere: verbose, pedantic, debug logging, inbox_prefix, the outbound limit."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from helpers.core import eventually

import cnats
from cnats import Msg, NatsConnection, OutboundBufferLimitError
from cnats.testing import NatsServer

pytestmark = pytest.mark.nats_server(jetstream=False)


async def _round_trip(nc: NatsConnection) -> None:
    nc.subscribe("opt.echo", callback=lambda m: m.respond(m.data))
    got: list[Msg] = []
    nc.subscribe("opt.x", callback=got.append)
    nc.publish("opt.x", b"1")
    assert (await nc.request("opt.echo", b"ping")).data == b"ping"
    await nc.flush()
    assert [m.data for m in got] == [b"1"]


async def test_verbose_mode_works_with_the_servers_ok_acknowledgements(nats_server: NatsServer) -> None:
    nc = await cnats.connect(nats_server.url, verbose=True)
    try:
        await _round_trip(nc)
    finally:
        await nc.close()


async def test_pedantic_mode_works(nats_server: NatsServer) -> None:
    nc = await cnats.connect(nats_server.url, pedantic=True)
    try:
        await _round_trip(nc)
    finally:
        await nc.close()


async def test_debug_logs_protocol_lines_both_ways_without_secrets(
    nats_server_factory: Callable[..., NatsServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = nats_server_factory(users={"alice": "hunter2-secret"})
    caplog.set_level(logging.INFO, logger="cnats.protocol")
    nc = await cnats.connect(server.url, user="alice", password="hunter2-secret", debug=True)
    try:
        await _round_trip(nc)
    finally:
        await nc.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "cnats.protocol"]
    sent = [line for line in lines if line.startswith("->>")]
    received = [line for line in lines if line.startswith("<<-")]
    assert any(line.startswith("->> CONNECT ") for line in sent)
    assert any(line.startswith("->> PUB opt.x") for line in sent)
    assert any(line.startswith("<<- INFO ") for line in received)
    assert any(line.startswith("<<- MSG opt.x") for line in received)
    assert any("PONG" in line for line in received)
    assert not any("hunter2-secret" in line for line in lines)
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "cnats.protocol")


async def test_without_debug_nothing_is_logged_on_the_protocol_logger(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cnats.protocol")
    nc = await cnats.connect(nats_server.url)
    try:
        await _round_trip(nc)
    finally:
        await nc.close()
    assert not [r for r in caplog.records if r.name == "cnats.protocol"]


async def test_a_producer_outrunning_the_socket_meets_the_outbound_limit_and_loses_nothing(
    nats_server: NatsServer,
) -> None:
    limit = 512 * 1024
    nc = await cnats.connect(nats_server.url, pending_bytes_limit=limit)
    reader = await cnats.connect(nats_server.url)
    try:
        got: list[int] = []
        reader.subscribe("opt.flood", callback=lambda m: got.append(int(m.data[:8])))
        await reader.flush()
        payload = b"x" * (32 * 1024)
        accepted = 0
        refused = 0
        # A tight loop with no await: the socket's buffer fills, then cnats' own, up to the limit.
        for i in range(2000):
            try:
                nc.publish("opt.flood", b"%08d" % i + payload)
            except OutboundBufferLimitError:
                refused += 1
                break
            accepted += 1
        assert refused == 1, "the limit was never reached"
        assert nc.stats().out_msgs == accepted
        await nc.flush()  # drains the buffer; publishing works again
        nc.publish("opt.flood", b"%08d" % accepted + payload)
        await nc.flush()
        await eventually(lambda: len(got) == accepted + 1, timeout=10)
        assert got == list(range(accepted + 1))
    finally:
        await nc.close()
        await reader.close()


async def test_inbox_prefix_is_used_for_requests(nats_server: NatsServer) -> None:
    nc = await cnats.connect(nats_server.url, inbox_prefix="_MY.box")
    try:
        replies: list[str | None] = []

        def answer(msg: Msg) -> None:
            replies.append(msg.reply)
            msg.respond(b"ok")

        nc.subscribe("opt.svc", callback=answer)
        await nc.request("opt.svc", b"")
        await nc.request("opt.svc", b"", no_mux=True)
        assert all(r is not None and r.startswith("_MY.box.") for r in replies)
    finally:
        await nc.close()
