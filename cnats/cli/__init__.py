"""The ``cnats`` command line, also ``python -m cnats``.

Each command group lives in its own module and registers its parser here. ``main`` turns every outcome into an exit
status: 0 success, 1 a NATS or runtime error (reported as one ``error: <message>`` line on stderr, never a
traceback), 2 a usage error, 130 interrupted (Ctrl-C during a command that is not meant to run until interrupted).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .._version import __version__
from . import bench, core, info, kv, obj, server, service
from .options import add_connection_options
from .runtime import describe_error

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnats",
        description="cnats: the fast asyncio NATS client, from the command line",
        epilog="Connection options may come before the command or after it. Run 'cnats COMMAND --help' for details.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"cnats {__version__}")
    add_connection_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (core, kv, obj, service, server, bench, info):
        module.register(commands)
    return parser


def _quiet_stdout() -> None:
    # The reader went away (`cnats sub x | head -1`): point stdout at /dev/null so the interpreter's final flush
    # does not complain about the broken pipe.
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # stdout is not a real file (an in-process run): nothing will flush to the pipe
    finally:
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line (``argv`` without the program name; default ``sys.argv[1:]``); returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except Exception as exc:  # noqa: BLE001 - every failure is one clear line, never a traceback
        print(f"error: {describe_error(exc)}", file=sys.stderr, flush=True)
        return 1
