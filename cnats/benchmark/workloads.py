"""The benchmark workloads, one function per (client, workload); each runs in a worker process of its own.

Clients: ``cnats`` (whichever core the worker's environment selects), ``nats-py`` (the baseline) and ``raw`` (a
blocking socket writing pre-encoded frames and counting received ones with no per-message work: the bound a
Python client can approach). Every function returns a :class:`Measurement`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from .consuming import CONSUMING
from .sessions import KV_HISTORY, REQUEST_SUBJECT, ROUND_TRIPS, Session, SessionFactory, cnats_kv, nats_py_kv
from .streaming import STREAMING, Subscriber
from .syncing import SYNCING

__all__ = ["SESSIONS", "SUBJECT", "WORKLOADS", "Measurement", "run_workload"]

SUBJECT = "cnats.bench"


@dataclass
class Measurement:
    msgs: int
    elapsed_s: float
    latencies_us: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies_us)
        latency = None
        if lat:
            latency = {
                "p50": lat[len(lat) // 2],
                "p90": lat[int(len(lat) * 0.9)],
                "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
                "max": lat[-1],
            }
        return {"msgs": self.msgs, "elapsed_s": self.elapsed_s, "latency_us": latency}


def _ready() -> None:
    print("READY", flush=True)


# -- request/reply (the responder is a cnats process started by the harness) ---------------------------------------


async def serve_responder(url: str, msgs: int, size: int) -> Measurement:
    """Answers every request with its own payload until stopped (SIGTERM)."""
    import cnats

    nc = await cnats.connect(url)

    def echo(msg: cnats.Msg) -> None:
        msg.respond(msg.data)

    nc.subscribe(REQUEST_SUBJECT, callback=echo)
    await nc.flush()
    _ready()
    await asyncio.Event().wait()
    return Measurement(0, 0.0)


async def _fill_bucket(js: Any, bucket: str, msgs: int, size: int) -> None:
    """Write ``msgs`` revisions quickly (cnats pipelined publishes straight to the key subjects), over enough keys
    that the bucket's history limit keeps them all: a watcher then replays exactly ``msgs`` entries, however many."""
    value = b"x" * size
    keys = -(-msgs // KV_HISTORY)
    for i in range(msgs):
        await js.publish_async(f"$KV.{bucket}.k{i % keys}", value)
    await js.publish_async_completed()


async def kv_watch_cnats(url: str, msgs: int, size: int) -> Measurement:
    nc, js, kv = await cnats_kv(url)
    await _fill_bucket(js, kv.bucket, msgs, size)
    start = time.perf_counter()
    watcher = await kv.watch(include_history=True)
    seen = 0
    async for _ in watcher:
        seen += 1
        if seen == msgs:
            break
    elapsed = time.perf_counter() - start
    watcher.stop()
    await kv.destroy()
    await nc.close()
    return Measurement(msgs, elapsed)


async def kv_watch_nats_py(url: str, msgs: int, size: int) -> Measurement:
    import cnats

    filler = await cnats.connect(url)
    nc, js, kv = await nats_py_kv(url)
    await _fill_bucket(filler.jetstream(), kv._name, msgs, size)
    await filler.close()
    start = time.perf_counter()
    watcher = await kv.watchall(include_history=True)
    seen = 0
    async for entry in watcher:
        if entry is None:
            continue
        seen += 1
        if seen == msgs:
            break
    elapsed = time.perf_counter() - start
    await watcher.stop()
    await js.delete_key_value(kv._name)
    await nc.close()
    return Measurement(msgs, elapsed)


Workload = Callable[[str, int, int], Coroutine[Any, Any, Measurement]]


# Every workload but kv watch is a session: open once, then run in one go or in slices (clients taking turns).
SESSIONS: dict[str, dict[str, SessionFactory]] = {**STREAMING, **ROUND_TRIPS}


def _whole(factory: SessionFactory) -> Workload:
    """A session run in one go: ``cnats bench SUBJECT ...`` and the harness without slices."""

    async def run(url: str, msgs: int, size: int) -> Measurement:
        session = await factory(url, size, SUBJECT)
        try:
            if isinstance(session, Subscriber):
                received = session.arm(msgs)
                _ready()  # the harness publishes now
                return Measurement(msgs, await received)
            elapsed, latencies = await session.run(msgs)
        finally:
            await session.close()
        return Measurement(msgs, elapsed, latencies)

    return run


def _drained(drain: Callable[[str, int, int], Coroutine[Any, Any, float]]) -> Workload:
    """A consumption workload: the seconds its client took to receive ``msgs`` stored messages."""

    async def run(url: str, msgs: int, size: int) -> Measurement:
        return Measurement(msgs, await drain(url, msgs, size))

    return run


def _sessions(name: str) -> dict[str, Workload]:
    return {client: _whole(factory) for client, factory in SESSIONS[name].items()}


# workload name -> client -> function; a missing client shows as "-" in the table
WORKLOADS: dict[str, dict[str, Workload]] = {
    **{name: _sessions(name) for name in SESSIONS},
    **{name: {client: _drained(drain) for client, drain in clients.items()} for name, clients in CONSUMING.items()},
    "kv watch": {"cnats": kv_watch_cnats, "nats-py": kv_watch_nats_py},
    **SYNCING,
    "responder": {"cnats": serve_responder},
}


def _run(main: Coroutine[Any, Any, Any], uvloop: bool) -> Any:
    if uvloop:
        import uvloop as _uvloop

        return _uvloop.run(main)
    return asyncio.run(main)


def run_workload(workload: str, client: str, url: str, msgs: int, size: int, uvloop: bool) -> dict[str, Any]:
    """One measurement, with which protocol core this worker process runs on (its environment decides)."""
    from ..protocol import USES_CYTHON

    result: Measurement = _run(WORKLOADS[workload][client](url, msgs, size), uvloop)
    return {**result.to_dict(), "uses_cython": USES_CYTHON and client == "cnats"}


async def serve_slices(workload: str, client: str, url: str, size: int) -> None:
    """The sliced form: READY once the session is open, then for each line ``N`` on stdin run ``N`` operations and
    print ``{"elapsed_s", "latencies_us"}`` (a subscriber first prints ARMED and waits for the harness to publish);
    an empty line (or end of input) closes the session."""
    from ..protocol import USES_CYTHON

    session: Session = await SESSIONS[workload][client](url, size, SUBJECT)
    loop = asyncio.get_running_loop()
    try:
        _ready()
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if not line:
                break
            if isinstance(session, Subscriber):
                received = session.arm(int(line))
                print("ARMED", flush=True)
                elapsed, latencies = await received, list[float]()
            else:
                elapsed, latencies = await session.run(int(line))
            report = {"elapsed_s": elapsed, "latencies_us": latencies, "uses_cython": USES_CYTHON and client == "cnats"}
            print(json.dumps(report), flush=True)
    finally:
        await session.close()


def main_worker(argv: list[str]) -> None:
    """``python -m cnats.benchmark.worker WORKLOAD CLIENT URL MSGS SIZE UVLOOP SUBJECT [sliced]``: prints one JSON
    line (or, sliced, one per slice asked for on stdin)."""
    global SUBJECT
    workload, client, url, msgs, size, uvloop, subject, *mode = argv
    if workload not in ROUND_TRIPS and workload != "responder":
        SUBJECT = subject  # a worker process runs one workload: a module-level setting is enough
    if mode == ["sliced"]:
        _run(serve_slices(workload, client, url, int(size)), uvloop == "1")
        return
    print(json.dumps(run_workload(workload, client, url, int(msgs), int(size), uvloop == "1")), flush=True)
