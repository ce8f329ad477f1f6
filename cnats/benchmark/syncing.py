"""Workloads of the blocking client (``cnats.sync``): publishing from one thread, from eight threads at once, and
sequential requests to the harness's responder.

The benchmark worker runs each workload in an event loop, and cnats.sync will not block a thread whose loop is
running, so the blocking part runs in a thread of its own. Its private loop is uvloop when the worker's is. Rows to
read them against: ``pub`` (the asyncio publish) and ``request`` (the asyncio request).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from .sessions import REQUEST_SUBJECT

if TYPE_CHECKING:
    from .workloads import Measurement

__all__ = ["SYNCING"]

THREADS = 8
WARM_UP = 2_000  # untimed publishes (or requests, a tenth of it) first: the loop and the caches are warm
REQUESTS_PER_MESSAGE = 40  # sequential requests are this much slower than publishes: as many as the harness asks


def _measurement(msgs: int, elapsed: float, latencies: list[float] | None = None) -> Measurement:
    from .workloads import Measurement  # workloads imports this module: resolved at run time

    return Measurement(msgs, elapsed, latencies or [])


def _loop_factory() -> Any:
    """uvloop for the private loop when the worker runs on uvloop (the comparison stays like for like)."""
    if type(asyncio.get_running_loop()).__module__.startswith("uvloop"):
        import uvloop

        return uvloop.new_event_loop
    return None


def _publish(nc: Any, subject: str, payload: bytes, n: int) -> None:
    import cnats

    publish = nc.publish
    for _ in range(n):
        try:
            publish(subject, payload)
        except cnats.OutboundBufferLimitError:  # the documented answer to a producer outrunning the socket
            nc.flush()
            publish(subject, payload)


def _publishing(threads: int) -> Callable[[str, int, int], Coroutine[Any, Any, Measurement]]:
    async def run(url: str, msgs: int, size: int) -> Measurement:
        import cnats.sync

        factory = _loop_factory()

        def measure() -> float:
            with cnats.sync.connect(url, loop_factory=factory) as nc:
                payload = b"x" * size
                subject = "cnats.bench.sync"
                _publish(nc, subject, payload, WARM_UP)
                nc.flush()
                shares = [msgs // threads + (1 if i < msgs % threads else 0) for i in range(threads)]
                start = threading.Barrier(threads + 1)

                def produce(n: int) -> None:
                    start.wait()
                    _publish(nc, subject, payload, n)

                workers = [threading.Thread(target=produce, args=(n,)) for n in shares]
                for worker in workers:
                    worker.start()
                start.wait()
                began = time.perf_counter()
                for worker in workers:
                    worker.join()
                nc.flush(timeout=60)
                return time.perf_counter() - began

        return _measurement(msgs, await asyncio.to_thread(measure))

    return run


async def sync_request(url: str, msgs: int, size: int) -> Measurement:
    import cnats.sync

    factory = _loop_factory()
    count = max(100, msgs // REQUESTS_PER_MESSAGE)

    def measure() -> tuple[float, list[float]]:
        with cnats.sync.connect(url, loop_factory=factory) as nc:
            payload = b"x" * size
            request = nc.request
            for _ in range(WARM_UP // 10):
                request(REQUEST_SUBJECT, payload, timeout=5)
            clock = time.perf_counter
            latencies = []
            began = clock()
            for _ in range(count):
                t0 = clock()
                request(REQUEST_SUBJECT, payload, timeout=5)
                latencies.append((clock() - t0) * 1e6)
            return clock() - began, latencies

    elapsed, latencies = await asyncio.to_thread(measure)
    return _measurement(count, elapsed, latencies)


# workload name -> client -> function (url, msgs, payload size): the blocking client has cnats columns only
SYNCING: dict[str, dict[str, Callable[[str, int, int], Coroutine[Any, Any, Measurement]]]] = {
    "sync pub": {"cnats": _publishing(1)},
    f"sync pub x{THREADS} threads": {"cnats": _publishing(THREADS)},
    "sync request": {"cnats": sync_request},
}
