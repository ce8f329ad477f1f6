"""The benchmark workloads, one function per (client, workload); each runs in a worker process of its own.

Clients: ``cnats`` (whichever core the worker's environment selects), ``nats-py`` (the baseline) and ``raw`` (a
blocking socket writing pre-encoded frames and counting received ones with no per-message work: the bound a
Python client can approach). Every function returns a :class:`Measurement`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

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


# -- raw socket helpers --------------------------------------------------------------------------------------------


def _host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[-1]
    host, _, port = rest.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def raw_connect(url: str) -> socket.socket:
    """A blocking socket past the INFO/CONNECT/PING/PONG handshake."""
    sock = socket.create_connection(_host_port(url))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _read_line(sock)  # INFO
    sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true}\r\nPING\r\n')
    _wait_for(sock, b"PONG\r\n")
    return sock


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("server closed the connection")
        data += chunk
    return data


def _wait_for(sock: socket.socket, marker: bytes) -> None:
    tail = b""
    while marker not in tail:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        tail = (tail + chunk)[-4096:]


def raw_publish_stream(url: str, msgs: int, size: int, subject: str = SUBJECT) -> float:
    """Write ``msgs`` pre-encoded PUB frames as fast as the socket takes them; seconds until the server has them."""
    frame = b"PUB %s %d\r\n%s\r\n" % (subject.encode(), size, b"x" * size)
    per_chunk = max(1, 65536 // len(frame))
    chunk = frame * per_chunk
    sock = raw_connect(url)
    try:
        start = time.perf_counter()
        sent = 0
        while sent + per_chunk <= msgs:
            sock.sendall(chunk)
            sent += per_chunk
        if sent < msgs:
            sock.sendall(frame * (msgs - sent))
        sock.sendall(b"PING\r\n")
        _wait_for(sock, b"PONG\r\n")
        return time.perf_counter() - start
    finally:
        sock.close()


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
    return Measurement(msgs, raw_publish_stream(url, msgs, size))


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
    _wait_for(sock, b"PONG\r\n")
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

REQUEST_SUBJECT = "cnats.bench.req"


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


async def _timed_requests(request: Callable[[], Awaitable[Any]], msgs: int) -> Measurement:
    latencies = []
    clock = time.perf_counter
    start = clock()
    for _ in range(msgs):
        t0 = clock()
        await request()
        latencies.append((clock() - t0) * 1e6)
    return Measurement(msgs, clock() - start, latencies)


async def request_cnats(url: str, msgs: int, size: int) -> Measurement:
    import cnats

    nc = await cnats.connect(url)
    payload = b"x" * size
    result = await _timed_requests(lambda: nc.request(REQUEST_SUBJECT, payload, timeout=5), msgs)
    await nc.close()
    return result


async def request_nats_py(url: str, msgs: int, size: int) -> Measurement:
    import nats

    nc = await nats.connect(url)
    payload = b"x" * size
    result = await _timed_requests(lambda: nc.request(REQUEST_SUBJECT, payload, timeout=5), msgs)
    await nc.close()
    return result


async def request_raw(url: str, msgs: int, size: int) -> Measurement:
    sock = raw_connect(url)
    sock.sendall(b"SUB _RAW.reply 1\r\nPING\r\n")
    _wait_for(sock, b"PONG\r\n")
    frame = b"PUB %s _RAW.reply %d\r\n%s\r\n" % (REQUEST_SUBJECT.encode(), size, b"x" * size)
    reply_len = len(b"MSG _RAW.reply 1 %d\r\n" % size) + size + 2
    latencies = []
    clock = time.perf_counter

    def run() -> float:
        start = clock()
        for _ in range(msgs):
            t0 = clock()
            sock.sendall(frame)
            got = 0
            while got < reply_len:
                n = len(sock.recv(65536))
                if not n:
                    raise ConnectionError("server closed the connection")
                got += n
            latencies.append((clock() - t0) * 1e6)
        return clock() - start

    elapsed = await asyncio.get_running_loop().run_in_executor(None, run)
    sock.close()
    return Measurement(msgs, elapsed, latencies)


async def _concurrent(request: Callable[[], Awaitable[Any]], msgs: int, in_flight: int = 100) -> Measurement:
    remaining = msgs

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await request()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return Measurement(msgs, time.perf_counter() - start)


async def request_concurrent_cnats(url: str, msgs: int, size: int) -> Measurement:
    import cnats

    nc = await cnats.connect(url)
    payload = b"x" * size
    result = await _concurrent(lambda: nc.request(REQUEST_SUBJECT, payload, timeout=10), msgs)
    await nc.close()
    return result


async def request_concurrent_nats_py(url: str, msgs: int, size: int) -> Measurement:
    import nats

    nc = await nats.connect(url)
    payload = b"x" * size
    result = await _concurrent(lambda: nc.request(REQUEST_SUBJECT, payload, timeout=10), msgs)
    await nc.close()
    return result


# -- JetStream: pipelined publish (cnats publish_async) against nats-py's sequential js.publish ------------------

JS_SUBJECT = "cnats.bench.js"


async def js_pub_cnats(url: str, msgs: int, size: int) -> Measurement:
    import cnats

    nc = await cnats.connect(url)
    jsm = await nc.jetstream_manager()
    stream = f"BENCH_{cnats.nuid.next()}"
    await jsm.streams.add(name=stream, subjects=[f"{JS_SUBJECT}.{stream}"], storage="memory")
    js = nc.jetstream()
    payload = b"x" * size
    subject = f"{JS_SUBJECT}.{stream}"
    start = time.perf_counter()
    for _ in range(msgs):
        await js.publish_async(subject, payload)
    await js.publish_async_completed()
    elapsed = time.perf_counter() - start
    await jsm.streams.delete(stream)
    await nc.close()
    return Measurement(msgs, elapsed)


async def js_pub_nats_py(url: str, msgs: int, size: int) -> Measurement:
    import nats
    from nats.js.api import StorageType

    nc = await nats.connect(url)
    js = nc.jetstream()
    stream = f"BENCHPY_{time.monotonic_ns()}"
    subject = f"{JS_SUBJECT}.{stream}"
    await js.add_stream(name=stream, subjects=[subject], storage=StorageType.MEMORY)
    payload = b"x" * size
    start = time.perf_counter()
    for _ in range(msgs):
        await js.publish(subject, payload)
    elapsed = time.perf_counter() - start
    await js.delete_stream(stream)
    await nc.close()
    return Measurement(msgs, elapsed)


# -- Key-Value: sequential put and get, and a watcher draining a bucket's history ------------------------------

KV_HISTORY = 64  # the watcher replays up to this many revisions per key


async def _cnats_kv(url: str) -> tuple[Any, Any, Any]:
    import cnats
    from cnats.jetstream import StorageType

    nc = await cnats.connect(url)
    js = nc.jetstream()
    bucket = f"bench_{cnats.nuid.next()}"
    kv = await js.views.kv(bucket, storage=StorageType.MEMORY, history=KV_HISTORY)
    return nc, js, kv


async def _nats_py_kv(url: str) -> tuple[Any, Any, Any]:
    import nats
    from nats.js.api import KeyValueConfig, StorageType

    nc = await nats.connect(url)
    js = nc.jetstream()
    bucket = f"benchpy_{time.monotonic_ns()}"
    kv = await js.create_key_value(KeyValueConfig(bucket=bucket, storage=StorageType.MEMORY, history=KV_HISTORY))
    return nc, js, kv


async def kv_put_cnats(url: str, msgs: int, size: int) -> Measurement:
    nc, _js, kv = await _cnats_kv(url)
    value = b"x" * size
    start = time.perf_counter()
    for i in range(msgs):
        await kv.put(f"k{i & 63}", value)
    elapsed = time.perf_counter() - start
    await kv.destroy()
    await nc.close()
    return Measurement(msgs, elapsed)


async def kv_put_nats_py(url: str, msgs: int, size: int) -> Measurement:
    nc, js, kv = await _nats_py_kv(url)
    value = b"x" * size
    start = time.perf_counter()
    for i in range(msgs):
        await kv.put(f"k{i & 63}", value)
    elapsed = time.perf_counter() - start
    await js.delete_key_value(kv._name)
    await nc.close()
    return Measurement(msgs, elapsed)


async def kv_get_cnats(url: str, msgs: int, size: int) -> Measurement:
    nc, _js, kv = await _cnats_kv(url)
    await kv.put("key", b"x" * size)
    start = time.perf_counter()
    for _ in range(msgs):
        await kv.get("key")
    elapsed = time.perf_counter() - start
    await kv.destroy()
    await nc.close()
    return Measurement(msgs, elapsed)


async def kv_get_nats_py(url: str, msgs: int, size: int) -> Measurement:
    nc, js, kv = await _nats_py_kv(url)
    await kv.put("key", b"x" * size)
    start = time.perf_counter()
    for _ in range(msgs):
        await kv.get("key")
    elapsed = time.perf_counter() - start
    await js.delete_key_value(kv._name)
    await nc.close()
    return Measurement(msgs, elapsed)


async def _fill_bucket(js: Any, bucket: str, msgs: int, size: int) -> None:
    """Write ``msgs`` revisions quickly (cnats pipelined publishes straight to the key subjects)."""
    value = b"x" * size
    for i in range(msgs):
        await js.publish_async(f"$KV.{bucket}.k{i % 1024}", value)
    await js.publish_async_completed()


async def kv_watch_cnats(url: str, msgs: int, size: int) -> Measurement:
    nc, js, kv = await _cnats_kv(url)
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
    nc, js, kv = await _nats_py_kv(url)
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

# workload name -> client -> function; a missing client shows as "-" in the table
WORKLOADS: dict[str, dict[str, Workload]] = {
    "pub": {"cnats": pub_cnats, "nats-py": pub_nats_py, "raw": pub_raw},
    "sub (callback)": {"cnats": sub_callback_cnats, "nats-py": sub_callback_nats_py, "raw": sub_raw},
    "sub (coroutine)": {"cnats": sub_coroutine_cnats, "nats-py": sub_coroutine_nats_py},
    "sub (async for)": {"cnats": sub_iterator_cnats, "nats-py": sub_iterator_nats_py},
    "pub+sub": {"cnats": pubsub_cnats, "nats-py": pubsub_nats_py},
    "request": {"cnats": request_cnats, "nats-py": request_nats_py, "raw": request_raw},
    "request x100": {"cnats": request_concurrent_cnats, "nats-py": request_concurrent_nats_py},
    # cnats pipelines (publish_async); nats-py awaits each ack, as its users do
    "js publish": {"cnats": js_pub_cnats, "nats-py": js_pub_nats_py},
    "kv put": {"cnats": kv_put_cnats, "nats-py": kv_put_nats_py},
    "kv get": {"cnats": kv_get_cnats, "nats-py": kv_get_nats_py},
    "kv watch": {"cnats": kv_watch_cnats, "nats-py": kv_watch_nats_py},
    "responder": {"cnats": serve_responder},
}


def run_workload(workload: str, client: str, url: str, msgs: int, size: int, uvloop: bool) -> dict[str, Any]:
    func = WORKLOADS[workload][client]
    result: Measurement
    if uvloop:
        import uvloop as _uvloop

        result = _uvloop.run(func(url, msgs, size))
    else:
        result = asyncio.run(func(url, msgs, size))
    return result.to_dict()


def main_worker(argv: list[str]) -> None:
    """``python -m cnats.benchmark.worker WORKLOAD CLIENT URL MSGS SIZE UVLOOP SUBJECT``: prints one JSON line."""
    global SUBJECT
    workload, client, url, msgs, size, uvloop, subject = argv
    if not workload.startswith("request") and workload != "responder":
        SUBJECT = subject  # a worker process runs one workload: a module-level setting is enough
    print(json.dumps(run_workload(workload, client, url, int(msgs), int(size), uvloop == "1")), flush=True)
