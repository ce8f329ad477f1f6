"""Benchmarks reachable from the command line (``cnats bench``).

So far: the protocol-core benchmark, which measures both cores on the same streams in one run and prints them side
by side with their ratio. The end-to-end benchmarks against an embedded nats-server come with the connection layer.
"""

from __future__ import annotations

import gc
import importlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ProtocolFigure", "format_protocol_table", "run_protocol_bench"]


@dataclass(frozen=True)
class ProtocolFigure:
    workload: str
    cython: float | None  # operations per second; None when the compiled core is not built
    python: float

    @property
    def ratio(self) -> float | None:
        return None if self.cython is None else self.cython / self.python


class _NullHandler:
    def on_info(self, info: dict[str, Any]) -> None: ...
    def on_ping(self) -> None: ...
    def on_pong(self) -> None: ...
    def on_ok(self) -> None: ...
    def on_err(self, text: str) -> None: ...


def _best_rate(run: Callable[[], None], ops: int, repeat: int) -> float:
    """Operations per second of the fastest of ``repeat`` runs (the least disturbed by a noisy machine)."""
    best = float("inf")
    gc.collect()
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return ops / best


def _parse_run(core: Any, size: int, frames: int) -> Callable[[], None]:
    stream = (b"MSG bench.subject 1 %d\r\n%b\r\n" % (size, b"x" * size)) * frames
    parser = core.Parser(_NullHandler())
    # A C-level sink that keeps only the last message: the figure is the parser's own cost.
    parser.subs[1] = deque(maxlen=1).append
    return lambda: parser.feed(stream)


def _encode_run(core: Any, size: int, frames: int) -> Callable[[], None]:
    payload = b"x" * size
    wb = core.WriteBuffer()
    publish = wb.publish

    def run() -> None:
        for _ in range(frames):
            if publish("bench.subject", payload) > 65536:
                wb.take()
        wb.take()

    return run


def run_protocol_bench(frames: int = 100_000, repeat: int = 5) -> list[ProtocolFigure]:
    """Parse and encode rates of both protocol cores for 16 B and 1 KiB payloads."""
    python = importlib.import_module("cnats._protocol_py")
    try:
        cython: Any = importlib.import_module("cnats._protocol")
    except ImportError:
        cython = None
    figures = []
    for label, make in (("parse MSG", _parse_run), ("encode PUB", _encode_run)):
        for size in (16, 1024):
            rates = [
                None if core is None else _best_rate(make(core, size, frames), frames, repeat)
                for core in (cython, python)
            ]
            assert rates[1] is not None
            figures.append(ProtocolFigure(f"{label} {size} B", rates[0], rates[1]))
    return figures


def format_protocol_table(figures: list[ProtocolFigure]) -> str:
    def rate(value: float | None) -> str:
        return "not built" if value is None else f"{value / 1e6:.2f} M/s"

    rows = [f"{'workload':<18} {'cython core':>12} {'python core':>12} {'ratio':>7}"]
    for f in figures:
        ratio = "-" if f.ratio is None else f"{f.ratio:.1f}x"
        rows.append(f"{f.workload:<18} {rate(f.cython):>12} {rate(f.python):>12} {ratio:>7}")
    return "\n".join(rows)
