"""Workloads of operations that each wait for the server (request/reply, JetStream publish, KV put and get), set up
once and then run in as many slices as the harness asks for.

Slicing is what makes these rows comparable on a small shared machine: a round trip crosses three processes, so a
slow spell of the host moves a whole run by half. The harness keeps one session per client open and lets the clients
take turns in short slices, so every client meets the same spells."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .rawsocket import raw_connect, wait_for

__all__ = ["REQUEST_SUBJECT", "ROUND_TRIPS", "Session", "SessionFactory"]

REQUEST_SUBJECT = "cnats.bench.req"
JS_SUBJECT = "cnats.bench.js"
KV_HISTORY = 64  # a watcher replays up to this many revisions per key
IN_FLIGHT = 100  # the concurrent request row
PUBLISH_WINDOW = 4_000  # unacknowledged pipelined publishes: the default of cnats and nats-py
SCALE_SUBSCRIPTIONS = 200_000  # idle subscriptions beside the requests of the scale row


class Session:
    """One client's open workload: ``run(n)`` performs ``n`` operations and returns (seconds, latencies in us)."""

    def __init__(
        self,
        op: Callable[[], Awaitable[Any]] | None = None,
        *,
        close: Callable[[], Awaitable[Any]] | None = None,
        timed: bool = True,
    ) -> None:
        self._op = op
        self._close = close
        self._timed = timed

    async def run(self, n: int) -> tuple[float, list[float]]:
        assert self._op is not None
        op = self._op
        clock = time.perf_counter
        latencies: list[float] = []
        start = clock()
        if self._timed:
            for _ in range(n):
                t0 = clock()
                await op()
                latencies.append((clock() - t0) * 1e6)
        else:
            for _ in range(n):
                await op()
        return clock() - start, latencies

    async def close(self) -> None:
        if self._close is not None:
            await self._close()


SessionFactory = Callable[[str, int, str], Awaitable[Session]]  # (server url, payload size, subject) -> open session


class _ConcurrentSession(Session):
    """``IN_FLIGHT`` callers sharing ``n`` operations."""

    async def run(self, n: int) -> tuple[float, list[float]]:
        assert self._op is not None
        op = self._op
        remaining = n

        async def caller() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await op()

        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(IN_FLIGHT)))
        return time.perf_counter() - start, []


class _BatchSession(Session):
    """Operations whose slice ends with one wait for all of them (pipelined JetStream publishes)."""

    def __init__(self, op: Callable[[], Awaitable[Any]], settle: Callable[[], Awaitable[Any]], **kw: Any) -> None:
        super().__init__(op, **kw)
        self._settle = settle

    async def run(self, n: int) -> tuple[float, list[float]]:
        assert self._op is not None
        op = self._op
        start = time.perf_counter()
        for _ in range(n):
            await op()
        await self._settle()
        return time.perf_counter() - start, []


class _RawSession(Session):
    """The raw-socket bound: a blocking socket in a worker thread, one pre-encoded frame per operation."""

    def __init__(self, sock: socket.socket, frame: Callable[[int], bytes], close: Callable[[], Any]) -> None:
        super().__init__()
        self._sock = sock
        self._frame = frame
        self._reader = _FrameReader(sock)
        self._close_raw = close

    async def run(self, n: int) -> tuple[float, list[float]]:
        return await asyncio.get_running_loop().run_in_executor(None, self._run, n)

    def _run(self, n: int) -> tuple[float, list[float]]:
        sock, frame, reader = self._sock, self._frame, self._reader
        clock = time.perf_counter
        latencies = []
        start = clock()
        for i in range(n):
            t0 = clock()
            sock.sendall(frame(i))
            reader.next_payload()
            latencies.append((clock() - t0) * 1e6)
        return clock() - start, latencies

    async def close(self) -> None:
        self._close_raw()
        self._sock.close()


class _FrameReader:
    """Reads one MSG/HMSG frame at a time from a blocking socket (answering the server's PINGs)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""

    def next_payload(self) -> bytes:
        while True:
            eol = self._buf.find(b"\r\n")
            if eol < 0:
                self._fill()
                continue
            line = self._buf[:eol]
            if line.startswith((b"MSG ", b"HMSG ")):
                total = int(line.rsplit(b" ", 1)[1])
                end = eol + 2 + total + 2
                while len(self._buf) < end:
                    self._fill()
                payload = self._buf[eol + 2 : eol + 2 + total]
                self._buf = self._buf[end:]
                return payload
            self._buf = self._buf[eol + 2 :]
            if line == b"PING":
                self._sock.sendall(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                raise ConnectionError(line.decode())

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self._buf += chunk


def _raw_socket(url: str) -> tuple[socket.socket, _FrameReader]:
    sock = raw_connect(url)
    sock.sendall(b"SUB _RAW.* 1\r\nPING\r\n")
    wait_for(sock, b"PONG\r\n")
    return sock, _FrameReader(sock)


def _raw_api(sock: socket.socket, reader: _FrameReader, subject: str, body: dict[str, Any] | None) -> Any:
    payload = json.dumps(body).encode() if body is not None else b""
    sock.sendall(b"PUB %s _RAW.api %d\r\n%s\r\n" % (subject.encode(), len(payload), payload))
    return json.loads(reader.next_payload())


# -- request/reply (the responder is a cnats process started by the harness) ---------------------------------------


async def _connect(client: str, url: str) -> Any:
    """A cnats or nats-py connection: both take ``request(subject, payload, timeout=...)`` and ``close()``."""
    if client == "cnats":
        import cnats

        return await cnats.connect(url)
    import nats

    return await nats.connect(url)


def _requests(client: str, kind: type[Session], timeout: float) -> SessionFactory:
    async def open_session(url: str, size: int, subject: str) -> Session:
        nc = await _connect(client, url)
        payload = b"x" * size
        return kind(lambda: nc.request(REQUEST_SUBJECT, payload, timeout=timeout), close=nc.close)

    return open_session


def _requests_among_idle_subscriptions(client: str) -> SessionFactory:
    """``request x100`` on a connection that also holds ``SCALE_SUBSCRIPTIONS`` idle subscriptions: what the request
    path costs once much is alive (the garbage collector walks every tracked object at each full collection)."""

    async def open_session(url: str, size: int, subject: str) -> Session:
        nc = await _connect(client, url)
        if client == "cnats":

            def ignore(msg: Any) -> None:
                pass

            for i in range(SCALE_SUBSCRIPTIONS):
                nc.subscribe(f"cnats.bench.idle.{i}", callback=ignore)
        else:

            async def ignore_async(msg: Any) -> None:
                pass

            for i in range(SCALE_SUBSCRIPTIONS):
                await nc.subscribe(f"cnats.bench.idle.{i}", cb=ignore_async)
        await nc.flush()
        payload = b"x" * size
        return _ConcurrentSession(lambda: nc.request(REQUEST_SUBJECT, payload, timeout=10), close=nc.close)

    return open_session


async def request_raw(url: str, size: int, subject: str) -> Session:
    sock, _ = _raw_socket(url)
    frame = b"PUB %s _RAW.reply %d\r\n%s\r\n" % (REQUEST_SUBJECT.encode(), size, b"x" * size)
    return _RawSession(sock, lambda i: frame, lambda: None)


# -- JetStream publish: each publish awaited (js publish), or pipelined (js publish (async)) ---------------------


async def _cnats_stream(url: str) -> tuple[Any, Any, str, Callable[[], Awaitable[None]]]:
    import cnats

    nc = await cnats.connect(url)
    jsm = await nc.jetstream_manager()
    stream = f"BENCH_{cnats.nuid.next()}"
    subject = f"{JS_SUBJECT}.{stream}"
    await jsm.streams.add(name=stream, subjects=[subject], storage="memory")

    async def close() -> None:
        await jsm.streams.delete(stream)
        await nc.close()

    return nc.jetstream(), subject, stream, close


async def _nats_py_stream(url: str) -> tuple[Any, str, Callable[[], Awaitable[None]]]:
    import nats
    from nats.js.api import StorageType

    nc = await nats.connect(url)
    js = nc.jetstream()
    stream = f"BENCHPY_{time.monotonic_ns()}"
    subject = f"{JS_SUBJECT}.{stream}"
    await js.add_stream(name=stream, subjects=[subject], storage=StorageType.MEMORY)

    async def close() -> None:
        await js.delete_stream(stream)
        await nc.close()

    return js, subject, close


async def js_pub_cnats(url: str, size: int, subject: str) -> Session:
    js, subject, _, close = await _cnats_stream(url)
    payload = b"x" * size
    return Session(lambda: js.publish(subject, payload), close=close)


async def js_pub_nats_py(url: str, size: int, subject: str) -> Session:
    js, subject, close = await _nats_py_stream(url)
    payload = b"x" * size
    return Session(lambda: js.publish(subject, payload), close=close)


async def js_pub_async_cnats(url: str, size: int, subject: str) -> Session:
    js, subject, _, close = await _cnats_stream(url)
    payload = b"x" * size
    return _BatchSession(lambda: js.publish_async(subject, payload), js.publish_async_completed, close=close)


async def js_pub_async_nats_py(url: str, size: int, subject: str) -> Session:
    js, subject, close = await _nats_py_stream(url)
    payload = b"x" * size
    return _BatchSession(lambda: js.publish_async(subject, payload), js.publish_async_completed, close=close)


def _raw_stream(url: str) -> tuple[socket.socket, _FrameReader, str, Callable[[], None]]:
    """A memory stream created over a raw socket, and its subject."""
    stream = f"BENCHRAW_{time.monotonic_ns()}"
    subject = f"{JS_SUBJECT}.{stream}"
    sock, reader, delete = _raw_created_stream(url, {"name": stream, "subjects": [subject], "storage": "memory"})
    return sock, reader, subject, delete


def _raw_created_stream(url: str, config: dict[str, Any]) -> tuple[socket.socket, _FrameReader, Callable[[], None]]:
    """A raw socket that created the stream ``config`` describes, and what deletes it again."""
    sock, reader = _raw_socket(url)
    name = config["name"]
    answer = _raw_api(sock, reader, f"$JS.API.STREAM.CREATE.{name}", config)
    if "error" in answer:
        raise RuntimeError(f"raw stream {name}: {answer['error']}")

    def delete() -> None:
        _raw_api(sock, reader, f"$JS.API.STREAM.DELETE.{name}", None)

    return sock, reader, delete


async def js_pub_raw(url: str, size: int, subject: str) -> Session:
    sock, _reader, subject, delete = _raw_stream(url)
    head, tail = b"PUB %s _RAW." % subject.encode(), b" %d\r\n%s\r\n" % (size, b"x" * size)
    tokens = itertools.count()  # a reply subject of its own per publish, as in the pipelined bound below
    return _RawSession(sock, lambda i: b"%s%d%s" % (head, next(tokens), tail), delete)


class _RawPipelined(Session):
    """The pipelined bound: pre-encoded PUBs, up to ``window`` unacknowledged (the clients' default), acks counted
    as they arrive; no client code per message. Each PUB has a reply subject of its own, as a client's must to tell
    its acknowledgements apart: a reply subject the server has not seen costs it a lookup that a repeated one skips
    (see docs/performance.md, "JetStream publishing")."""

    def __init__(self, sock: socket.socket, head: bytes, payload: bytes, window: int, close: Callable[[], Any]) -> None:
        super().__init__()
        self._sock = sock
        self._head = head  # b"PUB <subject> _RAW."
        self._tail = b" %d\r\n%s\r\n" % (len(payload), payload)
        self._window = window
        self._close_raw = close
        self._next_token = 0

    async def run(self, n: int) -> tuple[float, list[float]]:
        return await asyncio.get_running_loop().run_in_executor(None, self._run, n)

    def _frames(self, n: int) -> tuple[memoryview, list[int]]:
        """The slice's ``n`` frames in one buffer (tokens never repeat across slices), and where each starts."""
        head, tail, first = self._head, self._tail, self._next_token
        frames = [b"%s%d%s" % (head, first + i, tail) for i in range(n)]
        self._next_token = first + n
        offsets = [0]
        for frame in frames:
            offsets.append(offsets[-1] + len(frame))
        return memoryview(b"".join(frames)), offsets

    def _run(self, n: int) -> tuple[float, list[float]]:
        sock, window = self._sock, self._window
        wire, offsets = self._frames(n)  # built before the clock starts
        per_write = max(1, 65536 // (offsets[1] if n else 1))
        sent = acked = 0
        carry = b""
        start = time.perf_counter()
        while acked < n:
            room = min(n - sent, window - (sent - acked), per_write)
            if room > 0:
                sock.sendall(wire[offsets[sent] : offsets[sent + room]])
                sent += room
            try:  # wait for acks only when nothing more may be sent
                data = sock.recv(1 << 20, 0 if sent == n or sent - acked >= window else socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            if not data:
                raise ConnectionError("server closed the connection")
            data = carry + data
            acked += data.count(b"MSG ")
            carry = data[-3:]  # a "MSG " split across two reads is counted in the second
        return time.perf_counter() - start, []

    async def close(self) -> None:
        self._close_raw()
        self._sock.close()


async def js_pub_async_raw(url: str, size: int, subject: str) -> Session:
    sock, _reader, subject, delete = _raw_stream(url)
    return _RawPipelined(sock, b"PUB %s _RAW." % subject.encode(), b"x" * size, PUBLISH_WINDOW, delete)


# -- Key-Value: sequential put and get -----------------------------------------------------------------------------


async def cnats_kv(url: str) -> tuple[Any, Any, Any]:
    import cnats
    from cnats.jetstream import StorageType

    nc = await cnats.connect(url)
    js = nc.jetstream()
    bucket = f"bench_{cnats.nuid.next()}"
    kv = await js.views.kv(bucket, storage=StorageType.MEMORY, history=KV_HISTORY)
    return nc, js, kv


async def nats_py_kv(url: str) -> tuple[Any, Any, Any]:
    import nats
    from nats.js.api import KeyValueConfig, StorageType

    nc = await nats.connect(url)
    js = nc.jetstream()
    bucket = f"benchpy_{time.monotonic_ns()}"
    kv = await js.create_key_value(KeyValueConfig(bucket=bucket, storage=StorageType.MEMORY, history=KV_HISTORY))
    return nc, js, kv


def _key_cycle() -> Callable[[], str]:
    """The keys of sequential puts: 64 of them in turn (what the history limit then keeps is bounded)."""
    keys = [f"k{i}" for i in range(64)]
    state = [0]

    def next_key() -> str:
        state[0] = (state[0] + 1) & 63
        return keys[state[0]]

    return next_key


async def kv_put_cnats(url: str, size: int, subject: str) -> Session:
    nc, _js, kv = await cnats_kv(url)
    value = b"x" * size
    key = _key_cycle()

    async def close() -> None:
        await kv.destroy()
        await nc.close()

    return Session(lambda: kv.put(key(), value), close=close)


async def kv_put_nats_py(url: str, size: int, subject: str) -> Session:
    nc, js, kv = await nats_py_kv(url)
    value = b"x" * size
    key = _key_cycle()

    async def close() -> None:
        await js.delete_key_value(kv._name)
        await nc.close()

    return Session(lambda: kv.put(key(), value), close=close)


def _raw_bucket(url: str) -> tuple[socket.socket, _FrameReader, str, Callable[[], None]]:
    """A KV bucket's stream created over a raw socket (the ADR-8 settings the clients use)."""
    bucket = f"benchraw_{time.monotonic_ns()}"
    config = {
        "name": f"KV_{bucket}",
        "subjects": [f"$KV.{bucket}.>"],
        "storage": "memory",
        "max_msgs_per_subject": KV_HISTORY,
        "discard": "new",
        "allow_rollup_hdrs": True,
        "deny_delete": True,
        "allow_direct": True,
        "num_replicas": 1,
    }
    sock, reader, delete = _raw_created_stream(url, config)
    return sock, reader, bucket, delete


async def kv_put_raw(url: str, size: int, subject: str) -> Session:
    sock, _reader, bucket, delete = _raw_bucket(url)
    value = b"x" * size
    frames = [b"PUB $KV.%s.k%d _RAW.reply %d\r\n%s\r\n" % (bucket.encode(), i, size, value) for i in range(64)]
    return _RawSession(sock, lambda i: frames[i & 63], delete)


async def kv_get_cnats(url: str, size: int, subject: str) -> Session:
    nc, _js, kv = await cnats_kv(url)
    await kv.put("key", b"x" * size)

    async def close() -> None:
        await kv.destroy()
        await nc.close()

    return Session(lambda: kv.get("key"), close=close)


async def kv_get_nats_py(url: str, size: int, subject: str) -> Session:
    nc, js, kv = await nats_py_kv(url)
    await kv.put("key", b"x" * size)

    async def close() -> None:
        await js.delete_key_value(kv._name)
        await nc.close()

    return Session(lambda: kv.get("key"), close=close)


async def kv_get_raw(url: str, size: int, subject: str) -> Session:
    sock, reader, bucket, delete = _raw_bucket(url)
    value = b"x" * size
    sock.sendall(b"PUB $KV.%s.key _RAW.reply %d\r\n%s\r\n" % (bucket.encode(), size, value))
    reader.next_payload()
    body = b'{"last_by_subj":"$KV.%s.key"}' % bucket.encode()
    frame = b"PUB $JS.API.DIRECT.GET.KV_%s _RAW.reply %d\r\n%s\r\n" % (bucket.encode(), len(body), body)
    return _RawSession(sock, lambda i: frame, delete)


# workload name -> client -> factory (url, payload size, subject: unused, round trips have their own)
ROUND_TRIPS: dict[str, dict[str, SessionFactory]] = {
    "request": {
        "cnats": _requests("cnats", Session, 5),
        "nats-py": _requests("nats-py", Session, 5),
        "raw": request_raw,
    },
    "request x100": {
        "cnats": _requests("cnats", _ConcurrentSession, 10),
        "nats-py": _requests("nats-py", _ConcurrentSession, 10),
    },
    "request x100, 200k subs": {
        "cnats": _requests_among_idle_subscriptions("cnats"),
        "nats-py": _requests_among_idle_subscriptions("nats-py"),
    },
    # each publish awaits its ack; then pipelined (publish_async, both clients' default window of 4,000)
    "js publish": {"cnats": js_pub_cnats, "nats-py": js_pub_nats_py, "raw": js_pub_raw},
    "js publish (async)": {"cnats": js_pub_async_cnats, "nats-py": js_pub_async_nats_py, "raw": js_pub_async_raw},
    "kv put": {"cnats": kv_put_cnats, "nats-py": kv_put_nats_py, "raw": kv_put_raw},
    "kv get": {"cnats": kv_get_cnats, "nats-py": kv_get_nats_py, "raw": kv_get_raw},
}
