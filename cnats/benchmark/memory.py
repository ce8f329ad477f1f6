"""Memory figures: peak RSS growth while publishing as fast as possible, and the cost of subscriptions.

Each runs in this process against a given server URL; ``cnats bench --memory`` starts a server and prints them.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import time
import tracemalloc
from dataclasses import dataclass

__all__ = ["MemoryFigures", "measure_memory"]


@dataclass(frozen=True)
class MemoryFigures:
    publishes: int
    publish_seconds: float
    rss_before_mib: float
    rss_after_mib: float
    subscriptions: int
    callback_sub_bytes: float  # traced Python memory per subscription with a plain callback
    iterator_sub_bytes: float  # ... per subscription consumed by iteration (queue, futures)

    @property
    def rss_growth_mib(self) -> float:
        return self.rss_after_mib - self.rss_before_mib


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def measure_memory(url: str, *, publishes: int = 10_000_000, subscriptions: int = 10_000) -> MemoryFigures:
    import cnats

    nc = await cnats.connect(url)
    try:
        gc.collect()
        before = _peak_rss_mib()
        payload = b"x" * 16
        publish = nc.publish
        start = time.perf_counter()
        for i in range(publishes):
            try:
                publish("cnats.bench.memory", payload)
            except cnats.OutboundBufferLimitError:
                await nc.flush()
                publish("cnats.bench.memory", payload)
            if i & 0xFFF == 0:
                await asyncio.sleep(0)
        await nc.flush()
        elapsed = time.perf_counter() - start
        after = _peak_rss_mib()

        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            callback_subs = [nc.subscribe(f"cnats.bench.cb.{i}", callback=lambda m: None) for i in range(subscriptions)]
            await nc.flush()
            with_callbacks = tracemalloc.get_traced_memory()[0]
            iterator_subs = [nc.subscribe(f"cnats.bench.it.{i}") for i in range(subscriptions)]
            await nc.flush()
            with_iterators = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        del callback_subs, iterator_subs
        return MemoryFigures(
            publishes=publishes,
            publish_seconds=elapsed,
            rss_before_mib=before,
            rss_after_mib=after,
            subscriptions=subscriptions,
            callback_sub_bytes=(with_callbacks - base) / subscriptions,
            iterator_sub_bytes=(with_iterators - with_callbacks) / subscriptions,
        )
    finally:
        await nc.close()


def format_memory(f: MemoryFigures) -> str:
    return (
        f"publishing {f.publishes:,} messages of 16 B as fast as possible ({f.publishes / f.publish_seconds / 1e6:.2f}"
        f" M/s): peak RSS {f.rss_before_mib:.1f} -> {f.rss_after_mib:.1f} MiB (+{f.rss_growth_mib:.1f} MiB)\n"
        f"{f.subscriptions:,} subscriptions: {f.callback_sub_bytes:,.0f} B each with a plain callback, "
        f"{f.iterator_sub_bytes:,.0f} B each as iterators"
    )
