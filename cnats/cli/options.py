"""The global connection options (named as in the Go ``nats`` command line where they fit) and the connection they
open. Every option also has an environment variable, as in the Go tool; an option given on the command line wins."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..connection import NatsConnection, connect
from ..tls import TlsOptions
from . import arguments
from .runtime import CliError

__all__ = ["DEFAULT_URL", "add_connection_options", "connect_kwargs", "open_connection", "server_urls"]

DEFAULT_URL = "nats://127.0.0.1:4222"
DEFAULT_TIMEOUT = 5.0
DEFAULT_NAME = "cnats CLI"

# option destination -> environment variable consulted when the option is not given
_ENVIRONMENT = {
    "user": "NATS_USER",
    "password": "NATS_PASSWORD",
    "token": "NATS_TOKEN",
    "creds": "NATS_CREDS",
    "nkey": "NATS_NKEY",
    "tls_ca": "NATS_CA",
    "tls_cert": "NATS_CERT",
    "tls_key": "NATS_KEY",
}


def add_connection_options(parser: argparse.ArgumentParser, *, suppress: bool, name: bool = True) -> None:
    """Add the global options. On a command's own parser (``suppress=True``) an option that is not given leaves the
    value set before the command name in place, so ``cnats -s URL pub ...`` and ``cnats pub -s URL ...`` both work.
    ``name=False`` leaves out ``--name`` for a command that has its own (``obj put --name``)."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("connection options")
    group.add_argument(
        "-s",
        "--server",
        dest="servers",
        action="append",
        default=default(None),
        metavar="URL",
        help="server URL, repeatable or comma-separated (default: $NATS_URL, else nats://127.0.0.1:4222)",
    )
    group.add_argument("--user", default=default(None), help="user name ($NATS_USER)")
    group.add_argument("--password", default=default(None), help="password ($NATS_PASSWORD)")
    group.add_argument("--token", default=default(None), help="authentication token ($NATS_TOKEN)")
    group.add_argument("--creds", default=default(None), metavar="FILE", help="user credentials file ($NATS_CREDS)")
    group.add_argument("--nkey", default=default(None), metavar="SEEDFILE", help="NKey seed file ($NATS_NKEY)")
    group.add_argument("--tls-ca", "--tlsca", default=default(None), metavar="FILE", help="trusted CA ($NATS_CA)")
    group.add_argument(
        "--tls-cert", "--tlscert", default=default(None), metavar="FILE", help="client certificate ($NATS_CERT)"
    )
    group.add_argument(
        "--tls-key", "--tlskey", default=default(None), metavar="FILE", help="client certificate key ($NATS_KEY)"
    )
    group.add_argument(
        "--tls-first",
        "--tlsfirst",
        action="store_true",
        default=default(False),
        help="TLS handshake before the server INFO (the server must be configured for it)",
    )
    group.add_argument(
        "--timeout",
        type=arguments.timeout,
        default=default(DEFAULT_TIMEOUT),
        metavar="SEC",
        help=f"connect, request and JetStream API timeout in seconds (default {DEFAULT_TIMEOUT:g})",
    )
    if name:
        group.add_argument(
            "--name",
            dest="connection_name",
            metavar="NAME",
            default=default(DEFAULT_NAME),
            help=f"connection name shown by the server (default {DEFAULT_NAME!r})",
        )


def server_urls(args: argparse.Namespace) -> list[str]:
    """``-s`` values, else ``$NATS_URL``, else the local default; each may hold comma-separated URLs."""
    given: list[str] = args.servers or [os.environ.get("NATS_URL", "") or DEFAULT_URL]
    urls = [url.strip() for value in given for url in value.split(",") if url.strip()]
    if not urls:
        raise CliError("no server URL given")
    return urls


def _option(args: argparse.Namespace, dest: str) -> str | None:
    value: str | None = getattr(args, dest, None)
    if value is None and dest in _ENVIRONMENT:
        value = os.environ.get(_ENVIRONMENT[dest]) or None
    return value


def _readable_file(path: str, what: str) -> str:
    # Checked here so a missing file is reported as such, not as a failed connection attempt.
    if not os.path.isfile(path):
        raise CliError(f"{what} not found: {path}")
    if not os.access(path, os.R_OK):
        raise CliError(f"{what} is not readable: {path}")
    return path


def connect_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The ``cnats.connect`` keyword arguments for the global options."""
    kwargs: dict[str, Any] = {
        "servers": server_urls(args),
        "timeout": getattr(args, "timeout", DEFAULT_TIMEOUT),
        "name": getattr(args, "connection_name", DEFAULT_NAME),
    }
    for dest in ("user", "password", "token"):
        value = _option(args, dest)
        if value is not None:
            kwargs[dest] = value
    creds = _option(args, "creds")
    if creds is not None:
        kwargs["user_credentials"] = _readable_file(creds, "credentials file")
    nkey = _option(args, "nkey")
    if nkey is not None:
        with open(_readable_file(nkey, "nkey seed file"), encoding="ascii", errors="replace") as f:
            seed = f.read().strip()
        if not seed:
            raise CliError(f"nkey seed file is empty: {nkey}")
        kwargs["nkey_seed"] = seed
    ca, cert, key = (_option(args, dest) for dest in ("tls_ca", "tls_cert", "tls_key"))
    if (cert is None) != (key is None):
        raise CliError("--tls-cert and --tls-key go together")
    if ca is not None or cert is not None:
        kwargs["tls"] = TlsOptions(
            ca_file=_readable_file(ca, "TLS CA file") if ca is not None else None,
            cert_file=_readable_file(cert, "TLS certificate file") if cert is not None else None,
            key_file=_readable_file(key, "TLS key file") if key is not None else None,
        )
    if getattr(args, "tls_first", False):
        kwargs["tls_handshake_first"] = True
        kwargs.setdefault("tls", True)  # handshake-first is a TLS connection by definition
    return kwargs


async def open_connection(args: argparse.Namespace) -> NatsConnection:
    """Connect with the global options; the first connect fails at once (no retry) with the server's reason."""
    return await connect(**connect_kwargs(args))
