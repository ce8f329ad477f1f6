"""The global options (servers, credentials, TLS, timeout, name) and how failures are reported: one
``error: <message>`` line and exit status 1 (2 for usage errors), never a traceback."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import nkeys  # type: ignore[import-untyped]
import pytest
from cli.cli_support import Background, Cli, cnats_process, wait_for_interest
from helpers.jwt import Operator, operator_config

from cnats import __version__
from cnats.testing import NatsServer, ServerTls, make_test_certs

_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _one_error_line(err: str) -> str:
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err[len("error: ") : -1]


# -- servers ----------------------------------------------------------------------------------------------------


def test_wrong_url_fails_fast_with_one_line(cli: Cli, free_port: int) -> None:
    started = time.monotonic()
    result = cli("pub", "x", "y", server=f"nats://127.0.0.1:{free_port}")
    assert time.monotonic() - started < 3
    assert result.code == 1 and result.out == ""
    assert _one_error_line(result.err).startswith(f"could not connect to 127.0.0.1:{free_port}")


def test_wrong_url_in_a_real_process_has_no_traceback(free_port: int) -> None:
    result = cnats_process("-s", f"nats://127.0.0.1:{free_port}", "kv", "ls")
    assert result.returncode == 1
    assert _one_error_line(result.stderr).startswith("could not connect")


def test_unknown_host_is_one_line(cli: Cli) -> None:
    result = cli("pub", "x", "y", server="nats://no-such-host.invalid:4222")
    assert result.code == 1
    assert "no-such-host.invalid" in _one_error_line(result.err)


def test_nats_url_is_the_default_and_s_overrides_it(
    cli: Cli, nats_server: NatsServer, free_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NATS_URL", nats_server.url)
    assert cli("pub", "x", "y", server=None).code == 0
    monkeypatch.setenv("NATS_URL", f"nats://127.0.0.1:{free_port}")
    assert cli("pub", "x", "y", server=None).code == 1
    assert cli("pub", "x", "y").code == 0  # -s wins over $NATS_URL
    # comma-separated lists, in $NATS_URL as in -s: the refused server is skipped
    monkeypatch.setenv("NATS_URL", f"nats://127.0.0.1:{free_port},{nats_server.url}")
    assert cli("pub", "x", "y", server=None).code == 0


def test_connection_name_reaches_the_server(
    background: Callable[..., Background], nats_server: NatsServer, cli: Cli
) -> None:
    sub = background("sub", "named", "--count", "1", "--name", "audit-tail")
    wait_for_interest(nats_server, "named")
    with _http.open(nats_server.monitor_urls[0] + "/connz", timeout=2) as response:
        names = [c.get("name") for c in json.load(response)["connections"]]
    assert "audit-tail" in names
    assert cli("pub", "named", "done").code == 0
    assert sub.wait() == 0


# -- credentials ------------------------------------------------------------------------------------------------


@pytest.mark.nats_server(jetstream=False, users={"alice": "secret"})
def test_user_and_password(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("--user", "alice", "--password", "secret", "pub", "x", "y").code == 0
    wrong = cli("--user", "alice", "--password", "wrong", "pub", "x", "y")
    assert wrong.code == 1 and _one_error_line(wrong.err) == "Authorization Violation"
    missing = cli("pub", "x", "y")
    assert missing.code == 1 and _one_error_line(missing.err) == "Authorization Violation"
    monkeypatch.setenv("NATS_USER", "alice")
    monkeypatch.setenv("NATS_PASSWORD", "secret")
    assert cli("pub", "x", "y").code == 0  # from the environment, as the Go tool


@pytest.mark.nats_server(jetstream=False, token="s3cret")
def test_token(cli: Cli) -> None:
    assert cli("pub", "x", "y", "--token", "s3cret").code == 0
    wrong = cli("pub", "x", "y", "--token", "guess")
    assert wrong.code == 1 and _one_error_line(wrong.err) == "Authorization Violation"


def test_creds_file(nats_server_factory: Callable[..., NatsServer], cli: Cli, tmp_path: Path) -> None:
    operator = Operator.create()
    account = operator.account("A")
    server = nats_server_factory(jetstream=False, config=operator_config(operator))
    creds = tmp_path / "alice.creds"
    creds.write_text(account.user("alice").creds())
    assert cli("--creds", str(creds), "pub", "x", "y", server=server.url).code == 0

    stranger = tmp_path / "stranger.creds"
    stranger.write_text(Operator.create().account("B").user("bob").creds())  # an account this server does not know
    refused = cli("--creds", str(stranger), "pub", "x", "y", server=server.url)
    assert refused.code == 1 and _one_error_line(refused.err)

    missing = cli("--creds", str(tmp_path / "nope.creds"), "pub", "x", "y", server=server.url)
    assert missing.code == 1
    assert _one_error_line(missing.err) == f"credentials file not found: {tmp_path / 'nope.creds'}"


def test_nkey_seed_file(nats_server_factory: Callable[..., NatsServer], cli: Cli, tmp_path: Path) -> None:
    seed: bytes = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    server = nats_server_factory(jetstream=False, config=f'authorization {{ users = [ {{ nkey: "{public}" }} ] }}')
    seed_file = tmp_path / "user.nk"
    seed_file.write_bytes(seed + b"\n")
    assert cli("--nkey", str(seed_file), "pub", "x", "y", server=server.url).code == 0

    seed_file.write_text("SUAnot-a-seed\n")
    bad = cli("--nkey", str(seed_file), "pub", "x", "y", server=server.url)
    assert bad.code == 1 and "nkey" in _one_error_line(bad.err).lower()
    seed_file.write_text("")
    empty = cli("--nkey", str(seed_file), "pub", "x", "y", server=server.url)
    assert empty.code == 1 and _one_error_line(empty.err) == f"nkey seed file is empty: {seed_file}"


# -- TLS --------------------------------------------------------------------------------------------------------


def test_tls_ca_and_client_certificate(nats_server_factory: Callable[..., NatsServer], cli: Cli) -> None:
    server = nats_server_factory(jetstream=False, tls=True)
    assert server.client_tls is not None and server.client_tls.ca_file is not None
    untrusted = cli("pub", "x", "y", server=server.url)
    assert untrusted.code == 1 and _one_error_line(untrusted.err)
    assert cli("--tls-ca", server.client_tls.ca_file, "pub", "x", "y", server=server.url).code == 0
    half = cli("--tls-ca", server.client_tls.ca_file, "--tls-cert", server.client_tls.ca_file, "pub", "x", "y")
    assert half.code == 1 and _one_error_line(half.err) == "--tls-cert and --tls-key go together"


def test_mutual_tls_with_handshake_first(
    nats_server_factory: Callable[..., NatsServer], cli: Cli, tmp_path: Path
) -> None:
    certs = make_test_certs(tmp_path)
    server = nats_server_factory(
        jetstream=False,
        tls=ServerTls(
            cert_file=certs.server_cert_file,
            key_file=certs.server_key_file,
            ca_file=certs.ca_file,
            verify=True,
            handshake_first=True,
        ),
    )
    tls = ["--tls-ca", certs.ca_file, "--tls-cert", certs.client_cert_file, "--tls-key", certs.client_key_file]
    assert cli(*tls, "--tls-first", "pub", "x", "y", server=server.url).code == 0
    without_cert = cli("--tls-ca", certs.ca_file, "--tls-first", "pub", "x", "y", server=server.url)
    assert without_cert.code == 1 and _one_error_line(without_cert.err)


def test_missing_tls_file(cli: Cli, tmp_path: Path) -> None:
    result = cli("--tls-ca", str(tmp_path / "ca.pem"), "pub", "x", "y")
    assert result.code == 1 and _one_error_line(result.err) == f"TLS CA file not found: {tmp_path / 'ca.pem'}"


# -- usage and other errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nope"],
        ["kv"],
        ["kv", "get", "only-a-bucket"],
        ["pub"],
        ["--timeout", "0", "pub", "x", "y"],
        ["--timeout", "soon", "pub", "x", "y"],
        ["sub", "x", "--count", "-1"],
        ["sub", "x", "--raw", "--json"],
    ],
)
def test_usage_errors_exit_2(cli: Cli, argv: list[str]) -> None:
    result = cli(*argv, server=None)
    assert result.code == 2
    assert "usage: cnats" in result.err and "Traceback" not in result.err


def test_help_and_version_exit_0(cli: Cli) -> None:
    help_text = cli("--help", server=None)
    assert help_text.code == 0 and "kv" in help_text.out and "--tls-ca" in help_text.out
    version = cli("--version", server=None)
    assert version.code == 0 and version.out == f"cnats {__version__}\n"


@pytest.mark.nats_server(jetstream=False)
def test_jetstream_commands_on_a_server_without_jetstream(cli: Cli) -> None:
    result = cli("kv", "ls")
    assert result.code == 1 and "JetStream is not enabled" in _one_error_line(result.err)


def test_info_names_the_protocol_core(cli: Cli) -> None:
    result = cli("info", server=None)
    assert result.code == 0
    assert result.out.startswith(f"cnats {__version__}\nprotocol core: ") and "nats-server: " in result.out
