"""The ``cnats`` command line (API.md section 9.2). Commands arrive with the features they drive."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence

from ._version import __version__
from .protocol import USES_CYTHON

__all__ = ["main"]


def _cmd_info(args: argparse.Namespace) -> int:
    from .testing import find_server_binary

    print(f"cnats {__version__}")
    print(f"protocol core: {'cython (compiled)' if USES_CYTHON else 'pure python'}")
    try:
        binary = find_server_binary()
    except FileNotFoundError as exc:
        print(f"nats-server: not found ({exc})")
        return 0
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    print(f"nats-server: {binary} ({version})")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import format_protocol_table, run_protocol_bench

    if not args.protocol:
        print(
            "error: only `cnats bench --protocol` exists so far (end-to-end benchmarks come with the client)",
            file=sys.stderr,
        )
        return 2
    frames = 20_000 if args.quick else 200_000
    print(f"protocol cores, best of 5 runs of {frames} frames each (in use: {'cython' if USES_CYTHON else 'python'})")
    print(format_protocol_table(run_protocol_bench(frames=frames, repeat=2 if args.quick else 5)))
    return 0


def _cmd_server(args: argparse.Namespace) -> int:
    from .testing import NatsServer

    server = NatsServer(
        jetstream=args.js,
        port=args.port,
        cluster=args.cluster,
        store_dir=args.store_dir,
        config=open(args.config).read() if args.config else None,  # noqa: SIM115 - tiny file, read once
        tls=args.tls,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    try:
        for url in server.urls:
            print(url, flush=True)
        stop.wait()
    finally:
        server.stop()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnats", description="cnats: the fast asyncio NATS client")
    parser.add_argument("--version", action="version", version=f"cnats {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="which protocol core is in use and which nats-server is found")
    info.set_defaults(run=_cmd_info)

    bench = sub.add_parser("bench", help="benchmarks")
    bench.add_argument("--protocol", action="store_true", help="measure both protocol cores side by side")
    bench.add_argument("--quick", action="store_true", help="a short smoke run")
    bench.set_defaults(run=_cmd_bench)

    server = sub.add_parser("server", help="run the embedded nats-server until interrupted")
    server.add_argument("--port", type=int, default=4222)
    server.add_argument("--js", action="store_true", help="enable JetStream")
    server.add_argument("--store-dir")
    server.add_argument("--config", help="extra nats-server configuration file, appended to the generated one")
    server.add_argument("--cluster", type=int, default=1)
    server.add_argument("--tls", action="store_true", help="TLS with throw-away certificates")
    server.set_defaults(run=_cmd_server)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - one clear line, never a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
