"""``cnats info``: the installed version, which protocol core is in use and what it was built with, the platform,
the event loop, and which nats-server would be used."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import platform
import re
import subprocess
import sys
import sysconfig
from types import ModuleType

from .._version import __version__
from ..protocol import USES_CYTHON

__all__ = ["register"]

# Cython registers the types shared by the modules it compiled (its function type among them) in a module named
# after its own version and ABI: "_cython_3_1_2", maybe with ABI suffixes after the version.
_CYTHON_ABI = re.compile(r"_cython_(\d+)_(\d+)_(\d+(?:(?:a|b|rc)\d+)?)")


def _compiled_with(module: ModuleType) -> str | None:
    """The version of Cython that compiled ``module``, as recorded in the module itself: the name Cython gave the
    type of the module's functions at compile time. None when it cannot be read."""
    for value in vars(module).values():
        match = _CYTHON_ABI.match(getattr(type(value), "__module__", "") or "")
        if match:
            return ".".join(match.groups())
    return None


def _installed_cython() -> str | None:
    try:
        return importlib.metadata.version("Cython")
    except importlib.metadata.PackageNotFoundError:
        return None


def cython_line() -> str:
    """Which Cython the compiled core was built with (or why there is none in use)."""
    try:
        from .. import _protocol
    except ImportError:
        return "none (the compiled core is not installed)"
    version = _compiled_with(_protocol)
    if version is None:
        # Only when the module does not tell: the installed Cython need not be the one that built it.
        installed = _installed_cython()
        version = f"unrecorded (Cython {installed} is installed here)" if installed else "unrecorded"
    if not USES_CYTHON:
        return f"not in use: CNATS_NO_EXTENSIONS is set (the installed compiled core was built with Cython {version})"
    return f"{version} (built the compiled core)"


def install_line() -> str:
    """How cnats is installed: the tags of the wheel it came from, or an editable checkout."""
    try:
        dist = importlib.metadata.distribution("cnats")
    except importlib.metadata.PackageNotFoundError:
        return "not installed (imported from a source tree)"
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        direct = {}
    if direct.get("dir_info", {}).get("editable"):
        return f"editable, from {direct.get('url', '?')}"
    lines = (dist.read_text("WHEEL") or "").splitlines()
    tags = [line.partition(":")[2].strip().split("-") for line in lines if line.startswith("Tag:")]
    tags = [tag for tag in tags if len(tag) == 3]  # python-abi-platform
    if not tags:
        return "not from a wheel"
    if len({(python, abi) for python, abi, _ in tags}) == 1:  # shown as in the wheel's file name
        return f"wheel {tags[0][0]}-{tags[0][1]}-{'.'.join(plat for _, _, plat in tags)}"
    return "wheel " + ", ".join("-".join(tag) for tag in tags)


def event_loop_line() -> str:
    """The event loop asyncio makes by default here, and whether uvloop is there to be chosen instead."""
    loop = asyncio.new_event_loop()
    try:
        default = type(loop).__name__
    finally:
        loop.close()
    try:
        uvloop = f"uvloop {importlib.metadata.version('uvloop')} installed"
    except importlib.metadata.PackageNotFoundError:
        uvloop = "uvloop not installed"
    return f"asyncio ({default}); {uvloop}"


def _info(args: argparse.Namespace) -> int:
    from ..testing import find_server_binary

    print(f"cnats {__version__}")
    print(f"protocol core: {'cython (compiled)' if USES_CYTHON else 'pure python'}")
    print(f"cython: {cython_line()}")
    print(f"python: {platform.python_implementation()} {platform.python_version()} ({sys.executable})")
    print(f"platform: {sysconfig.get_platform()}; installed as: {install_line()}")
    print(f"event loop: {event_loop_line()}")
    try:
        binary = find_server_binary()
    except FileNotFoundError as exc:
        print(f"nats-server: not found ({exc})")
        return 0
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    print(f"nats-server: {binary} ({version})")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    info = commands.add_parser(
        "info", help="the version, the protocol core in use and its Cython, the platform, the event loop, nats-server"
    )
    info.set_defaults(run=_info)
