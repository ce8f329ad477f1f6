"""Putting and getting a 256 MiB object keeps the client's memory bounded by the chunk size and the windows, not by
the object's size. Peak RSS is per process, so the transfer runs in a child interpreter of its own; the child reads
its high-water mark from /proc (``ru_maxrss`` would include the peak of the pytest process that spawned it)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from cnats.testing import NatsServer

OBJECT_MIB = 256
LIMIT_MIB = 64

CHILD = textwrap.dedent(
    """
    import asyncio, hashlib, json, os, sys, time

    import cnats
    from cnats.jetstream import StorageType

    MIB = 1024 * 1024

    def status_mib(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
        raise LookupError(field)

    def reset_peak():
        # VmHWM is this process image's peak RSS (ru_maxrss would start at the spawning parent's); reset it to the
        # current RSS (Linux >= 4.0) so the peak read afterwards is the transfer's
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return status_mib("VmRSS")

    def peak_mib():
        return status_mib("VmHWM")

    async def main(url, size):
        nc = await cnats.connect(url)
        store = await nc.jetstream().views.os("big", storage=StorageType.MEMORY)
        block = os.urandom(MIB)
        await store.put("warmup", block[: 300 * 1024])  # a few chunks: imports done, still a small peak
        await store.get_blob("warmup")
        await store.delete("warmup")
        baseline = reset_peak()
        expected = hashlib.sha256()

        async def produce():
            for i in range(size // MIB):
                piece = i.to_bytes(8, "big") + block[8:]  # distinct pieces, made one at a time
                expected.update(piece)
                yield piece

        start = time.monotonic()
        info = await store.put("object", produce())
        put_s = time.monotonic() - start
        got = hashlib.sha256()
        received = 0
        start = time.monotonic()
        result = await store.get("object")
        async for chunk in result:  # digest verified by the iterator after the last chunk
            got.update(chunk)
            received += len(chunk)
        get_s = time.monotonic() - start
        await nc.close()
        print(json.dumps({
            "size": info.size, "received": received, "same": got.digest() == expected.digest(),
            "baseline_mib": baseline, "peak_mib": peak_mib(), "growth_mib": peak_mib() - baseline,
            "put_s": put_s, "get_s": get_s,
        }))

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


def test_a_256_mib_object_keeps_memory_bounded(nats_server: NatsServer) -> None:
    size = OBJECT_MIB * 1024 * 1024
    out = subprocess.run(
        [sys.executable, "-c", CHILD, nats_server.url, str(size)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"256 MiB object: {report}")
    assert report["size"] == report["received"] == size
    assert report["same"] is True
    assert report["growth_mib"] < LIMIT_MIB
