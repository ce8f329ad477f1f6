"""The optional nats.js column of ``cnats bench``: the same workloads run by Node.js with the npm package ``nats``
(2.x; later majors are published as the @nats-io/* packages), from an installation the user points at.

The workers are the ES module scripts in ``natsjs/`` beside this module (shipped as package data). They speak the
protocol of the Python workers (workloads.py): a drain prints one JSON line with its messages and seconds; a session
prints READY, then for each line ``N`` on stdin runs ``N`` operations and prints their seconds (a subscriber prints
ARMED first and is fed by the harness); an empty line closes it. Each script does what the cnats workload of its
row does: the same stream configuration, counts, sizes, ack policy and pull sizes, the clock started and stopped at
the same points. The settings both sides share are passed from the Python modules that define them, so the two
cannot drift apart.

The column is there only when an installation is named: ``cnats bench --natsjs DIR`` or ``$CNATS_BENCH_NATSJS``,
a directory holding ``node_modules/nats`` (``npm install --prefix DIR nats@2.29``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from .consuming import ACK_PENDING, BATCH, WIDE_WINDOW
from .sessions import IN_FLIGHT, JS_SUBJECT, PUBLISH_WINDOW, REQUEST_SUBJECT

__all__ = [
    "COLUMN",
    "ENV",
    "NOTES",
    "WORKLOADS",
    "NatsJsUnavailable",
    "check",
    "command",
    "directory",
    "installed_at",
]

COLUMN = "nats.js"  # the table column, and the client name the harness gives its workers
ENV = "CNATS_BENCH_NATSJS"  # the installation directory; worker processes inherit it
NATSJS = "nats@2.29"  # what the messages say to install
SCRIPT = Path(__file__).resolve().with_name("natsjs") / "worker.mjs"

# Rows with a nats.js workload (worker.mjs dispatches on the same names); the others show "-".
WORKLOADS = frozenset(
    {
        "pub",
        "sub (callback)",
        "sub (async for)",
        "pub+sub",
        "request",
        "request x100",
        "js publish",
        "js publish (async)",
        "js consume",
        "js consume (5k)",
        "js consume (ack)",
        "js consume (ack, 5k)",
        "js fetch (ack)",
    }
)

# Said under the table where nats.js does not run the same mode as cnats.
NOTES = {
    "js publish (async)": (
        f"nats.js: js.publish() promises, at most {PUBLISH_WINDOW:,} unresolved (it has no publish_async)"
    ),
}


class NatsJsUnavailable(RuntimeError):
    """The nats.js column was asked for, but Node.js or the ``nats`` package is not there."""


def directory() -> Path | None:
    """The nats.js installation the column runs from ($CNATS_BENCH_NATSJS), or None: no column."""
    value = os.environ.get(ENV, "")
    return Path(value) if value else None


@contextlib.contextmanager
def installed_at(path: str | os.PathLike[str]) -> Iterator[None]:
    """Within the block, the nats.js column runs from ``path``: set through the environment, which the worker
    processes inherit, and restored after."""
    previous = os.environ.get(ENV)
    os.environ[ENV] = str(Path(path).resolve())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous


def _install(path: object) -> str:
    # --prefix: a plain `npm install` in a directory without a package.json installs into a parent that has one
    return f"`npm install --prefix {path} {NATSJS}`"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise NatsJsUnavailable(
            "the nats.js column needs Node.js, and no `node` was found on PATH: install Node.js (18 or later), "
            f"then {_install('DIR')} for the DIR given to --natsjs"
        )
    return node


def check(path: Path | None = None) -> str:
    """What the column will run, as ``nats.js 2.29.3 (Node.js v20.11.1)``, once Node.js and the package at ``path``
    (default: :func:`directory`) are found. Raises :class:`NatsJsUnavailable` naming what is missing."""
    path = path or directory()
    if path is None:
        raise NatsJsUnavailable(f"no nats.js installation given: use --natsjs DIR or set ${ENV} ({_install('DIR')})")
    if not path.is_dir():
        raise NatsJsUnavailable(f"{path}: no such directory (install nats.js there: {_install(path)})")
    manifest = path / "node_modules" / "nats" / "package.json"
    try:
        version = str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError):
        raise NatsJsUnavailable(
            f"nats.js is not installed in {path} (no node_modules/nats): run {_install(path)}"
        ) from None
    if not version.startswith("2."):
        # the scripts use the 2.x API; later majors moved to the @nats-io/* packages
        raise NatsJsUnavailable(f"{path} has nats {version}; the column needs nats 2.x: run {_install(path)}")
    node = _node()
    try:
        node_version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise NatsJsUnavailable(f"{node} does not run: {exc}") from None
    return f"nats.js {version} (Node.js {node_version})"


def _settings() -> str:
    """What the scripts take from the Python side: one source for the values both sides must share."""
    return json.dumps(
        {
            "batch": BATCH,
            "wide_batch": WIDE_WINDOW,
            "ack_pending": ACK_PENDING,
            "publish_window": PUBLISH_WINDOW,
            "in_flight": IN_FLIGHT,
            "request_subject": REQUEST_SUBJECT,
            "js_subject": JS_SUBJECT,
        }
    )


def command(workload: str, url: str, msgs: int, size: int, subject: str, *, sliced: bool) -> list[str]:
    """The command line of one nats.js worker (the installation: :func:`directory`)."""
    path = directory()
    if path is None:
        raise NatsJsUnavailable(f"no nats.js installation given: use --natsjs DIR or set ${ENV}")
    args = [str(path), workload, url, str(msgs), str(size), subject, _settings()]
    return [_node(), str(SCRIPT), *args, *(["sliced"] if sliced else [])]
