"""``cnats info``: the installed version, which protocol core is in use, and which nats-server would be used."""

from __future__ import annotations

import argparse
import subprocess

from .._version import __version__
from ..protocol import USES_CYTHON

__all__ = ["register"]


def _info(args: argparse.Namespace) -> int:
    from ..testing import find_server_binary

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


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    info = commands.add_parser("info", help="which protocol core is in use and which nats-server is found")
    info.set_defaults(run=_info)
