"""`cnats server`: the embedded nats-server in the foreground, JetStream on by default."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from cli.cli_support import Cli, Running

from cnats.testing import NatsServer


def test_server_prints_its_url_serves_jetstream_and_stops_on_sigterm(running: Callable[..., Running], cli: Cli) -> None:
    server = running("server", "--port", "0")
    url = server.line(timeout=20)
    assert url.startswith("nats://127.0.0.1:")
    added = cli("kv", "add", "on-the-cli-server", server=url)  # JetStream is on without --js
    assert added.code == 0, added.err
    assert server.stop(signal.SIGTERM, timeout=15) == 0
    assert cli("pub", "x", "y", server=url).code == 1  # really gone


def test_server_without_jetstream_stops_on_ctrl_c(running: Callable[..., Running], cli: Cli) -> None:
    server = running("server", "--port", "0", "--no-js")
    url = server.line(timeout=20)
    assert cli("pub", "x", "y", server=url).code == 0
    result = cli("kv", "ls", server=url)
    assert result.code == 1 and "JetStream is not enabled" in result.err
    assert server.stop(signal.SIGINT, timeout=15) == 0


def test_server_port_in_use_is_one_error_line(cli: Cli, nats_server: NatsServer) -> None:
    result = cli("server", "--port", str(nats_server.port), server=None)
    assert result.code == 1
    assert result.err.startswith("error: nats-server did not start: ") and result.err.count("\n") == 1
    assert "address already in use" in result.err


def test_server_missing_config_file(cli: Cli, tmp_path: Path) -> None:
    result = cli("server", "--port", "0", "--config", str(tmp_path / "extra.conf"), server=None)
    assert result.code == 1
    assert result.err == f"error: {tmp_path / 'extra.conf'}: No such file or directory\n"
