"""Fixtures of the command-line tests; the helpers they hand out live in cli_support.py."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest
from cli.cli_support import Background, Cli, Result, Running

from cnats.cli import main
from cnats.testing import NatsServer


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], nats_server: NatsServer) -> Cli:
    """``cli("pub", "x", "y")`` runs ``cnats -s <nats_server> pub x y`` in-process and returns its exit status and
    output. Set ``server=None`` to leave out ``-s``."""

    def run(*args: str, server: str | None = nats_server.url) -> Result:
        capsys.readouterr()
        code = main([*(["-s", server] if server else []), *args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def background(nats_server: NatsServer) -> Iterator[Callable[..., Background]]:
    started: list[Background] = []

    def start(*args: str) -> Background:
        command = Background(["-s", nats_server.url, *args])
        started.append(command)
        return command

    yield start
    for command in started:
        command._thread.join(10)


@pytest.fixture
def running() -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(*args: str) -> Running:
        process = Running(*args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (bound, then closed again)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port
