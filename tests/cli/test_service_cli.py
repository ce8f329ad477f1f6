"""`cnats service ls|ping|info|stats` against services running on a real server. The tests are async (the services
run on the test's event loop); each command runs on a worker thread with its own loop, as a user's would."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator

import pytest
from cli.cli_support import Result

import cnats
from cnats import NatsConnection
from cnats.cli import main
from cnats.services import Service, ServiceMsg
from cnats.testing import NatsServer

pytestmark = pytest.mark.nats_server(jetstream=False)


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[NatsConnection]:
    conn = await cnats.connect(nats_server.url)
    yield conn
    await conn.close()


@pytest.fixture
async def services(nc: NatsConnection) -> tuple[Service, Service]:
    """Two instances of "calc" (one with endpoints that have served a request each) and nothing else."""
    calc = await nc.services.add("calc", "1.2.0", description="adds numbers", metadata={"team": "core"})
    calc.add_endpoint("add", lambda msg: msg.respond(b"3"), subject="calc.add")

    def refuse(msg: ServiceMsg) -> None:
        msg.respond_error(400, "bad input")

    calc.add_endpoint("check", refuse)
    other = await nc.services.add("calc", "1.2.0")
    await nc.request("calc.add", b"1 2", timeout=5)
    await nc.request("check", b"", timeout=5)
    return calc, other


async def _cnats(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> Result:
    capsys.readouterr()
    code = await asyncio.wait_for(asyncio.to_thread(main, ["-s", url, *args]), 30)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


async def test_ls_and_ping_list_every_instance(
    services: tuple[Service, Service], nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = sorted(s.id for s in services)
    for verb in ("ls", "ping"):
        result = await _cnats(capsys, nats_server.url, "service", verb)
        assert result.code == 0, result.err
        lines = [line.split() for line in result.out.splitlines()]
        assert lines == [["NAME", "VERSION", "ID"], *(["calc", "1.2.0", i] for i in ids)]
    calc = services[0]
    one = await _cnats(capsys, nats_server.url, "service", "ping", "calc", calc.id, "--json")
    assert [json.loads(line) for line in one.out.splitlines()] == [
        {
            "type": "io.nats.micro.v1.ping_response",
            "name": "calc",
            "id": calc.id,
            "version": "1.2.0",
            "metadata": {"team": "core"},
        }
    ]


async def test_info_describes_endpoints(
    services: tuple[Service, Service], nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    calc, _ = services
    result = await _cnats(capsys, nats_server.url, "service", "info", "calc", calc.id)
    assert result.code == 0, result.err
    assert result.out == (
        f"calc 1.2.0 ({calc.id})\n"
        "  adds numbers\n"
        "  metadata team: core\n"
        "  ENDPOINT  SUBJECT   QUEUE\n"
        "  add       calc.add  q\n"
        "  check     check     q\n"
        "\n"
    )
    as_json = await _cnats(capsys, nats_server.url, "service", "info", "calc", calc.id, "--json")
    assert json.loads(as_json.out) == calc.info().to_dict()


async def test_stats_counts_requests_and_errors(
    services: tuple[Service, Service], nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    calc, other = services
    result = await _cnats(capsys, nats_server.url, "service", "stats", "calc", calc.id)
    assert result.code == 0, result.err
    assert "  add (calc.add): 1 requests, 0 errors, average " in result.out
    assert "  check (check): 1 requests, 1 errors, average " in result.out
    assert result.out.rstrip().endswith("last error: 400:bad input")
    stats = [
        json.loads(line)
        for line in (await _cnats(capsys, nats_server.url, "service", "stats", "--json")).out.splitlines()
    ]
    assert sorted(s["id"] for s in stats) == sorted([calc.id, other.id])
    mine = next(s for s in stats if s["id"] == calc.id)
    assert {e["name"]: (e["num_requests"], e["num_errors"]) for e in mine["endpoints"]} == {
        "add": (1, 0),
        "check": (1, 1),
    }


async def test_nobody_answering_is_one_error_line(
    services: tuple[Service, Service], nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    named = await _cnats(capsys, nats_server.url, "service", "info", "weather")
    assert (named.code, named.err) == (1, "error: no service named 'weather' answered\n")
    instance = await _cnats(capsys, nats_server.url, "service", "stats", "calc", "NOPE")
    assert (instance.code, instance.err) == (1, "error: no instance 'NOPE' of service 'calc' answered\n")


async def test_no_services_at_all_in_a_real_process(nats_server: NatsServer) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cnats",
        "-s",
        nats_server.url,
        "service",
        "ls",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1 and out == b"" and err == b"error: no service answered\n"


async def test_service_info_in_a_real_process(services: tuple[Service, Service], nats_server: NatsServer) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cnats",
        "service",
        "info",
        "calc",
        "--json",
        "-s",
        nats_server.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    assert sorted(json.loads(line)["id"] for line in out.decode().splitlines()) == sorted(s.id for s in services)
