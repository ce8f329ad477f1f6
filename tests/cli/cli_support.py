"""Running the ``cnats`` command line in tests: in-process through ``main([...])`` (fast; output captured with
capsys), as a real ``python -m cnats`` process (the true entry point), and waiting for a command to be listening."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cnats.cli import main
from cnats.testing import NatsServer

_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Result:
    code: int
    out: str
    err: str


Cli = Callable[..., Result]


class Background:
    """A command running in-process on a worker thread (its own event loop), e.g. a ``sub`` waiting for messages.
    Its output lands in the same capsys buffer as the test's other commands."""

    def __init__(self, argv: list[str]) -> None:
        self.code: int | None = None
        self._thread = threading.Thread(target=self._run, args=(argv,), daemon=True)
        self._thread.start()

    def _run(self, argv: list[str]) -> None:
        self.code = main(argv)

    def wait(self, timeout: float = 10.0) -> int:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the command did not finish in time"
        assert self.code is not None
        return self.code


def connections(server: NatsServer) -> list[dict[str, Any]]:
    """The server's view of its client connections (/connz, with their subscriptions)."""
    with _http.open(server.monitor_urls[0] + "/connz?subs=1", timeout=2) as response:
        found: list[dict[str, Any]] = json.load(response).get("connections") or []
    return found


def wait_for_interest(server: NatsServer, subject: str, count: int = 1, timeout: float = 10.0) -> None:
    """Wait until ``count`` client subscriptions on exactly ``subject`` exist on the server (its /connz view)."""
    deadline = time.monotonic() + timeout
    while True:
        found = sum((c.get("subscriptions_list") or []).count(subject) for c in connections(server))
        if found >= count:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"no {count} subscription(s) on {subject!r} within {timeout} s")
        time.sleep(0.02)


def cnats_process(*args: str, input: str | None = None, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """``python -m cnats ARGS`` to completion (same protocol core as this test run: the environment is inherited)."""
    return subprocess.run(
        [sys.executable, "-m", "cnats", *args], capture_output=True, text=True, input=input, timeout=timeout
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Running:
    """``python -m cnats ARGS`` in the background, its output read line by line with a deadline."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cnats", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,  # unbuffered: select() and readline() see the same bytes
            # A suite started in the background (`cmd &` in a script) inherits SIGINT ignored, and so would the
            # command: Ctrl-C as a user sends it must reach it, so the child starts with the default disposition.
            preexec_fn=_default_sigint if os.name == "posix" else None,
        )

    def line(self, stream: str = "stdout", timeout: float = 10.0) -> str:
        pipe = self.proc.stdout if stream == "stdout" else self.proc.stderr
        assert pipe is not None
        deadline = time.monotonic() + timeout
        data = b""
        while not data.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([pipe], [], [], remaining)[0]:
                raise AssertionError(f"no complete line on {stream} within {timeout} s (got {data!r})")
            byte = pipe.read(1)
            if not byte:
                raise AssertionError(f"{stream} closed (got {data!r}); exit {self.proc.poll()}")
            data += byte
        return data.decode().rstrip("\n")

    def stop(self, sig: int, timeout: float = 10.0) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
