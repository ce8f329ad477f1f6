"""Micro-benchmarks of the two protocol cores (pytest-benchmark).

The test suite runs each once with benchmarking disabled, so they cannot rot; measure with
    pytest bench/bench_protocol.py --benchmark-enable
Each group holds the compiled core and its pure-Python twin side by side, so the ratio is read off one run.
"""

from __future__ import annotations

import importlib
from collections import deque
from types import ModuleType
from typing import Any

import pytest

from cnats.headers import Headers

CORES = ["cython", "python"]
FRAMES = 10_000


def load_core(name: str) -> ModuleType:
    return importlib.import_module("cnats._protocol" if name == "cython" else "cnats._protocol_py")


class NullHandler:
    def on_info(self, info: dict[str, Any]) -> None: ...
    def on_ping(self) -> None: ...
    def on_pong(self) -> None: ...
    def on_ok(self) -> None: ...
    def on_err(self, text: str) -> None: ...


@pytest.mark.parametrize("core_name", CORES)
@pytest.mark.parametrize("size", [16, 1024])
def bench_parse_msg_stream(benchmark: Any, core_name: str, size: int) -> None:
    core = load_core(core_name)
    benchmark.group = f"parse {FRAMES} MSG frames of {size} B"
    stream = (b"MSG foo.bar 1 %d\r\n%b\r\n" % (size, b"x" * size)) * FRAMES
    parser = core.Parser(NullHandler())
    seen: deque[Any] = deque(maxlen=1)  # a C-level sink: the figure is the parser's own cost
    parser.subs[1] = seen.append
    benchmark.extra_info["frames"] = FRAMES

    def parse() -> None:
        parser.feed(stream)

    benchmark(parse)
    assert parser.in_msgs >= FRAMES


@pytest.mark.parametrize("core_name", CORES)
def bench_parse_hmsg_stream(benchmark: Any, core_name: str) -> None:
    core = load_core(core_name)
    benchmark.group = f"parse {FRAMES} HMSG frames (2 headers, 16 B)"
    block = b"NATS/1.0\r\nNats-Msg-Id: 1234567890\r\nKV-Operation: PUT\r\n\r\n"
    stream = (b"HMSG $KV.b.key 1 %d %d\r\n%b%b\r\n" % (len(block), len(block) + 16, block, b"x" * 16)) * FRAMES
    parser = core.Parser(NullHandler())
    seen: deque[Any] = deque(maxlen=1)  # a C-level sink: the figure is the parser's own cost
    parser.subs[1] = seen.append

    def parse() -> None:
        parser.feed(stream)

    benchmark(parse)
    assert parser.in_msgs >= FRAMES


@pytest.mark.parametrize("core_name", CORES)
@pytest.mark.parametrize("size", [16, 1024])
def bench_encode_pub(benchmark: Any, core_name: str, size: int) -> None:
    core = load_core(core_name)
    benchmark.group = f"encode {FRAMES} PUB frames of {size} B"
    payload = b"x" * size
    wb = core.WriteBuffer(max_payload=1024 * 1024, limit=64 * 1024 * 1024)
    publish = wb.publish

    def encode() -> None:
        for _ in range(FRAMES):
            publish("foo.bar", payload)
        wb.take()

    benchmark(encode)


@pytest.mark.parametrize("core_name", CORES)
def bench_encode_hpub(benchmark: Any, core_name: str) -> None:
    core = load_core(core_name)
    benchmark.group = f"encode {FRAMES} HPUB frames (2 headers, 16 B)"
    headers = Headers.from_dict({"Nats-Msg-Id": "1234567890", "KV-Operation": "PUT"})
    wb = core.WriteBuffer()
    publish = wb.publish

    def encode() -> None:
        for _ in range(FRAMES):
            publish("$KV.b.key", b"x" * 16, None, headers)
        wb.take()

    benchmark(encode)
