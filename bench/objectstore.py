"""Object store throughput: put and get of one object, cnats against nats-py, from one run.

    python bench/objectstore.py [--size-mib 64] [--rounds 3] [--storage file|memory] [--chunk-kib 128]

A nats-server with JetStream is started for the run. Each client runs in its own child process (cnats with its
compiled core, cnats with the pure-Python core, nats-py), putting and getting the same amount of random data in a
bucket of its own; the clients take turns for ``--rounds`` rounds and the best time of each is kept. ``get`` reads
the whole object into memory (cnats ``get_blob``, nats-py ``get``), so both do the same work: fetch every chunk and
check the digest. The machine's other load shows in the figures: compare the ratios, not the absolute rates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parents[1])
CLIENTS: dict[str, dict[str, str]] = {
    "cnats": {"CNATS_NO_EXTENSIONS": ""},
    "cnats-pure": {"CNATS_NO_EXTENSIONS": "1"},
    "nats-py": {},
}


async def _cnats_round(url: str, data: bytes, storage: str, chunk: int, bucket: str) -> tuple[float, float]:
    import cnats
    from cnats.jetstream import ObjectStoreMeta, ObjectStoreMetaOptions, StorageType

    nc = await cnats.connect(url)
    try:
        js = nc.jetstream()
        store = await js.views.os(bucket, storage=StorageType(storage))
        meta = ObjectStoreMeta(name="blob", options=ObjectStoreMetaOptions(max_chunk_size=chunk))
        start = time.perf_counter()
        await store.put(meta, data)
        put = time.perf_counter() - start
        start = time.perf_counter()
        got = await store.get_blob("blob")
        get = time.perf_counter() - start
        assert got is not None and len(got) == len(data)
        await store.destroy()
    finally:
        await nc.close()
    return put, get


async def _nats_py_round(url: str, data: bytes, storage: str, chunk: int, bucket: str) -> tuple[float, float]:
    import nats
    from nats.js.api import ObjectMeta, ObjectMetaOptions, StorageType

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        store = await js.create_object_store(bucket, storage=StorageType(storage))
        meta = ObjectMeta(name="blob", options=ObjectMetaOptions(max_chunk_size=chunk))
        start = time.perf_counter()
        await store.put("blob", data, meta=meta)
        put = time.perf_counter() - start
        start = time.perf_counter()
        result = await store.get("blob")
        get = time.perf_counter() - start
        assert result.data is not None and len(result.data) == len(data)
        await js.delete_object_store(bucket)
    finally:
        await nc.close()
    return put, get


def child(client: str, url: str, size: int, rounds: int, storage: str, chunk: int) -> None:
    """Runs in a child process: prints the best put and get time (seconds) as JSON."""
    data = os.urandom(size)
    run = _nats_py_round if client == "nats-py" else _cnats_round
    best_put = best_get = float("inf")
    for i in range(rounds):
        put, get = asyncio.run(run(url, data, storage, chunk, f"bench_{client.replace('-', '_')}_{i}"))
        best_put, best_get = min(best_put, put), min(best_get, get)
    print(json.dumps({"put": best_put, "get": best_get}))


def _run_child(client: str, url: str, args: argparse.Namespace) -> dict[str, float]:
    env = {**os.environ, **CLIENTS[client]}
    if not env.get("CNATS_NO_EXTENSIONS"):
        env.pop("CNATS_NO_EXTENSIONS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_ROOT, env.get("PYTHONPATH")]))
    command = [sys.executable, __file__, "--child", client, "--url", url, "--size-mib", str(args.size_mib)]
    command += ["--rounds", "1", "--storage", args.storage, "--chunk-kib", str(args.chunk_kib)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{client} failed:\n{out.stderr}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--storage", choices=["file", "memory"], default="file")
    parser.add_argument("--chunk-kib", type=int, default=128)
    parser.add_argument("--child", choices=list(CLIENTS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    chunk = args.chunk_kib * 1024
    if args.child:
        child(args.child, args.url, size, args.rounds, args.storage, chunk)
        return

    sys.path.insert(0, _ROOT)
    from cnats.benchmark.harness import environment
    from cnats.testing import NatsServer

    best: dict[str, dict[str, float]] = {client: {"put": float("inf"), "get": float("inf")} for client in CLIENTS}
    with NatsServer(jetstream=True, config='max_pending: 1GB\nwrite_deadline: "30s"\n') as server:
        for _ in range(args.rounds):
            for client in CLIENTS:  # rounds interleaved: a change in the machine's load hits every client alike
                times = _run_child(client, server.url, args)
                for op, seconds in times.items():
                    best[client][op] = min(best[client][op], seconds)
    figures = {client: {op: args.size_mib / seconds for op, seconds in ops.items()} for client, ops in best.items()}

    def mbs(client: str, op: str) -> str:
        return f"{figures[client][op]:.0f} MB/s"

    def ratio(a: str, op: str) -> str:
        return f"{figures[a][op] / figures['nats-py'][op]:.2f}x"

    rows = [["op", "cnats", "cnats-pure", "nats-py", "cnats/nats-py", "pure/nats-py"]]
    for op in ("put", "get"):
        rows.append([op, *(mbs(c, op) for c in CLIENTS), ratio("cnats", op), ratio("cnats-pure", op)])
    env: dict[str, Any] = environment(uvloop=False)
    print(f"object store, {args.size_mib} MiB object, {args.chunk_kib} KiB chunks, {args.storage} storage, ", end="")
    print(f"best of {args.rounds} ({env['processor']}, {env['cpus']} CPUs, Python {env['python']})")
    print("(MB/s here means MiB/s)")
    print(_table(rows))


if __name__ == "__main__":
    main()
