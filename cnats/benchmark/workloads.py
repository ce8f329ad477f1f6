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

from .rawsocket import publish_stream, raw_connect, wait_for
from .sessions import REQUEST_SUBJECT, SESSIONS, Session, SessionFactory, cnats_kv, nats_py_kv

__all__ = ["WORKLOADS", "Measurement", "run_workload"]

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


# -- publish -------------------------------------------------------------------------------------------------------


async def pub_cnats(url: str, msgs: int, size: int) -> Measurement:
    import cnats

    nc = await cnats.connect(url)
    payload = b"x" * size
    publish = nc.publish
    start = time.perf_counter()
    for i in range(msgs):
        try:
            publish(SUBJECT, payload)
        except cnats.OutboundBufferLimitError:  # the documented answer to a producer outrunning the socket
            await nc.flush()
            publish(SUBJECT, payload)
        if i & 0xFFF == 0:
            await asyncio.sleep(0)  # let the event loop write (uvloop writes only between callbacks)
    await nc.flush()
    elapsed = time.perf_counter() - start
    await nc.close()
    return Measurement(msgs, elapsed)


async def pub_nats_py(url: str, msgs: int, size: int) -> Measurement:
    import nats

    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
    payload = b"x" * size
    publish = nc.publish
    start = time.perf_counter()
    for _ in range(msgs):
        await publish(SUBJECT, payload)
    await nc.flush()
    elapsed = time.perf_counter() - start
    await nc.close()
    return Measurement(msgs, elapsed)


async def pub_raw(url: str, msgs: int, size: int) -> Measurement:
    return Measurement(msgs, publish_stream(url, msgs, size, SUBJECT))


# -- subscribe (the publisher is another process, started by the harness once the worker says READY) ------------


def _ready() -> None:
    print("READY", flush=True)


async def _sub_cnats(url: str, msgs: int, mode: str) -> Measurement:
    import cnats

    nc = await cnats.connect(url)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    marks = [0.0, 0.0]
    count = 0
    tasks: list[asyncio.Task[None]] = []

    def on_msg(msg: Any) -> None:
        nonlocal count
        count += 1
        if count == msgs:
            marks[1] = time.perf_counter()
            done.set_result(None)

    async def on_msg_async(msg: Any) -> None:
        on_msg(msg)

    if mode == "callback":
        nc.subscribe(SUBJECT, callback=on_msg)
    elif mode == "coroutine":
        nc.subscribe(SUBJECT, callback=on_msg_async, pending_msgs_limit=None, pending_bytes_limit=None)
    else:
        sub = nc.subscribe(SUBJECT, pending_msgs_limit=None, pending_bytes_limit=None)

        async def consume() -> None:
            async for msg in sub:
                on_msg(msg)
                if done.done():
                    return

        tasks.append(loop.create_task(consume()))
    await nc.flush()
    marks[0] = time.perf_counter()  # the publisher starts now: a late consumer must not shorten the measurement
    _ready()
    await done
    for task in tasks:
        task.cancel()
    await nc.close()
    return Measurement(msgs, marks[1] - marks[0])


async def sub_callback_cnats(url: str, msgs: int, size: int) -> Measurement:
    return await _sub_cnats(url, msgs, "callback")


async def sub_coroutine_cnats(url: str, msgs: int, size: int) -> Measurement:
    return await _sub_cnats(url, msgs, "coroutine")


async def sub_iterator_cnats(url: str, msgs: int, size: int) -> Measurement:
    return await _sub_cnats(url, msgs, "iterator")


async def _sub_nats_py(url: str, msgs: int, mode: str) -> Measurement:
    import nats

    nc = await nats.connect(url)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    marks = [0.0, 0.0]
    count = 0
    tasks: list[asyncio.Task[None]] = []

    def on_msg(msg: Any) -> None:
        nonlocal count
        count += 1
        if count == msgs:
            marks[1] = time.perf_counter()
            done.set_result(None)

    async def on_msg_async(msg: Any) -> None:
        on_msg(msg)

    limit_msgs, limit_bytes = msgs * 2, 1 << 40
    if mode in ("callback", "coroutine"):  # nats-py only takes coroutine callbacks
        await nc.subscribe(SUBJECT, cb=on_msg_async, pending_msgs_limit=limit_msgs, pending_bytes_limit=limit_bytes)
    else:
        sub = await nc.subscribe(SUBJECT, pending_msgs_limit=limit_msgs, pending_bytes_limit=limit_bytes)

        async def consume() -> None:
            async for msg in sub.messages:
                on_msg(msg)
                if done.done():
                    return

        tasks.append(loop.create_task(consume()))
    await nc.flush()
    marks[0] = time.perf_counter()  # the publisher starts now: a late consumer must not shorten the measurement
    _ready()
    await done
    for task in tasks:
        task.cancel()
    await nc.close()
    return Measurement(msgs, marks[1] - marks[0])


async def sub_callback_nats_py(url: str, msgs: int, size: int) -> Measurement:
    return await _sub_nats_py(url, msgs, "callback")


async def sub_coroutine_nats_py(url: str, msgs: int, size: int) -> Measurement:
    return await _sub_nats_py(url, msgs, "coroutine")


async def sub_iterator_nats_py(url: str, msgs: int, size: int) -> Measurement:
    return await _sub_nats_py(url, msgs, "iterator")


async def sub_raw(url: str, msgs: int, size: int) -> Measurement:
    """Counts frames by their trailing bytes with ``bytes.count``: no parsing, no objects per message."""
    loop = asyncio.get_running_loop()
    sock = raw_connect(url)
    sock.sendall(b"SUB %s 1\r\nPING\r\n" % SUBJECT.encode())
    wait_for(sock, b"PONG\r\n")
    frame_len = len(b"MSG %s 1 %d\r\n" % (SUBJECT.encode(), size)) + size + 2
    total = frame_len * msgs

    def receive() -> float:
        got = 0
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while got < total:
            n = sock.recv_into(view)
            if not n:
                raise ConnectionError("server closed the connection")
            got += n
        return time.perf_counter()

    first = time.perf_counter()
    _ready()
    last = await loop.run_in_executor(None, receive)
    sock.close()
    return Measurement(msgs, last - first)


# -- publish and subscribe in one process --------------------------------------------------------------------------


async def pubsub_cnats(url: str, msgs: int, size: int) -> Measurement:
    import cnats

    nc = await cnats.connect(url)
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    count = 0

    def on_msg(msg: Any) -> None:
        nonlocal count
        count += 1
        if count == msgs:
            done.set_result(None)

    nc.subscribe(SUBJECT, callback=on_msg)
    await nc.flush()
    payload = b"x" * size
    publish = nc.publish
    start = time.perf_counter()
    for i in range(msgs):
        try:
            publish(SUBJECT, payload)
        except cnats.OutboundBufferLimitError:
            await nc.flush()
            publish(SUBJECT, payload)
        if i & 0xFFF == 0:
            await asyncio.sleep(0)  # let the reader keep up: one process does both sides
    await done
    elapsed = time.perf_counter() - start
    await nc.close()
    return Measurement(msgs, elapsed)


async def pubsub_nats_py(url: str, msgs: int, size: int) -> Measurement:
    import nats

    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    count = 0

    async def on_msg(msg: Any) -> None:
        nonlocal count
        count += 1
        if count == msgs:
            done.set_result(None)

    await nc.subscribe(SUBJECT, cb=on_msg, pending_msgs_limit=msgs * 2, pending_bytes_limit=1 << 40)
    await nc.flush()
    payload = b"x" * size
    start = time.perf_counter()
    for i in range(msgs):
        await nc.publish(SUBJECT, payload)
        if i & 0x3FFF == 0:
            await asyncio.sleep(0)
    await done
    elapsed = time.perf_counter() - start
    await nc.close()
    return Measurement(msgs, elapsed)


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
    """Write ``msgs`` revisions quickly (cnats pipelined publishes straight to the key subjects)."""
    value = b"x" * size
    for i in range(msgs):
        await js.publish_async(f"$KV.{bucket}.k{i % 1024}", value)
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


def _whole(factory: SessionFactory) -> Workload:
    """A session workload run in one go (``cnats bench SUBJECT --request``, and a harness run of one slice)."""

    async def run(url: str, msgs: int, size: int) -> Measurement:
        session = await factory(url, size)
        try:
            elapsed, latencies = await session.run(msgs)
        finally:
            await session.close()
        return Measurement(msgs, elapsed, latencies)

    return run


def _sessions(name: str) -> dict[str, Workload]:
    return {client: _whole(factory) for client, factory in SESSIONS[name].items()}


# workload name -> client -> function; a missing client shows as "-" in the table
WORKLOADS: dict[str, dict[str, Workload]] = {
    "pub": {"cnats": pub_cnats, "nats-py": pub_nats_py, "raw": pub_raw},
    "sub (callback)": {"cnats": sub_callback_cnats, "nats-py": sub_callback_nats_py, "raw": sub_raw},
    "sub (coroutine)": {"cnats": sub_coroutine_cnats, "nats-py": sub_coroutine_nats_py},
    "sub (async for)": {"cnats": sub_iterator_cnats, "nats-py": sub_iterator_nats_py},
    "pub+sub": {"cnats": pubsub_cnats, "nats-py": pubsub_nats_py},
    "request": _sessions("request"),
    "request x100": _sessions("request x100"),
    "js publish": _sessions("js publish"),
    "kv put": _sessions("kv put"),
    "kv get": _sessions("kv get"),
    "kv watch": {"cnats": kv_watch_cnats, "nats-py": kv_watch_nats_py},
    "responder": {"cnats": serve_responder},
}


def _run(main: Coroutine[Any, Any, Any], uvloop: bool) -> Any:
    if uvloop:
        import uvloop as _uvloop

        return _uvloop.run(main)
    return asyncio.run(main)


def run_workload(workload: str, client: str, url: str, msgs: int, size: int, uvloop: bool) -> dict[str, Any]:
    result: Measurement = _run(WORKLOADS[workload][client](url, msgs, size), uvloop)
    return result.to_dict()


async def serve_slices(workload: str, client: str, url: str, size: int) -> None:
    """The sliced form: READY once the session is open, then for each line ``N`` on stdin run ``N`` operations and
    print ``{"elapsed_s", "latencies_us"}``; an empty line (or end of input) closes the session."""
    session: Session = await SESSIONS[workload][client](url, size)
    loop = asyncio.get_running_loop()
    try:
        _ready()
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if not line:
                break
            elapsed, latencies = await session.run(int(line))
            print(json.dumps({"elapsed_s": elapsed, "latencies_us": latencies}), flush=True)
    finally:
        await session.close()


def main_worker(argv: list[str]) -> None:
    """``python -m cnats.benchmark.worker WORKLOAD CLIENT URL MSGS SIZE UVLOOP SUBJECT [sliced]``: prints one JSON
    line (or, sliced, one per slice asked for on stdin)."""
    global SUBJECT
    workload, client, url, msgs, size, uvloop, subject, *mode = argv
    if workload not in SESSIONS and workload != "responder":
        SUBJECT = subject  # a worker process runs one workload: a module-level setting is enough
    if mode == ["sliced"]:
        _run(serve_slices(workload, client, url, int(size)), uvloop == "1")
        return
    print(json.dumps(run_workload(workload, client, url, int(msgs), int(size), uvloop == "1")), flush=True)
