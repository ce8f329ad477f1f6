"""JetStream consumption workloads: draining a backlog already stored in a memory stream.

Each worker fills a stream of its own with ``msgs`` messages (untimed, pipelined cnats publishes), then times how
long its client takes to receive them all: an ordered consumer without acks (``js consume``), a durable pull
consumer acknowledging each message (``js consume (ack)``), each also with a window of 5,000 (the ``5k`` rows), and a
loop of ``fetch`` batches acknowledging each message (``js fetch (ack)``). Timing a stored backlog keeps the
publisher out of the figure.

The raw-socket bound pulls the whole backlog with one pull request on a blocking socket and only counts frames; its
acking form sends an empty ``PUB`` to each reply subject, once per received chunk. nats-py has no continuous pull
consumer: its ``js consume (ack)`` figure is its fetch loop, and its ``js consume`` is its ordered push consumer.
Beside the bound, both ``consume()`` rows have a reference shown under the table: the same raw socket pulling in
the window cnats's ``consume()`` is given, as ``consume()`` pulls (the server's pace depends on the window).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from .rawsocket import raw_connect, wait_for

__all__ = ["BATCH", "CONSUMING"]

BATCH = 500  # messages per pull (consume) or per fetch, for every client
# the window of the wide (5k) rows: large enough that the server keeps the pace of the one-pull bound
WIDE_WINDOW = 5_000
ACK_PENDING = 1_000_000  # the durable's window: the client, not the server's flow control, sets the pace
_Workload = Callable[[str, int, int], Coroutine[Any, Any, float]]


def _stream_name() -> str:
    return f"BENCH_CONSUME_{os.getpid()}"


async def _filled_stream(url: str, msgs: int, size: int) -> tuple[Any, Any, str]:
    """A cnats connection, its JetStream manager and the name of a memory stream holding ``msgs`` messages."""
    import cnats
    from cnats.jetstream import StorageType, StreamConfig

    nc = await cnats.connect(url)
    jsm = await nc.jetstream_manager()
    stream = _stream_name()
    await jsm.streams.add(StreamConfig(name=stream, subjects=[f"bench.{stream}"], storage=StorageType.MEMORY))
    js = nc.jetstream()
    payload = b"x" * size
    for _ in range(msgs):
        await js.publish_async(f"bench.{stream}", payload)
    await js.publish_async_completed()
    return nc, jsm, stream


@contextlib.asynccontextmanager
async def _backlog(url: str, msgs: int, size: int) -> AsyncIterator[tuple[Any, Any, str]]:
    """``_filled_stream`` for the length of a drain: the stream is deleted and the connection closed after it."""
    nc, jsm, stream = await _filled_stream(url, msgs, size)
    try:
        yield nc, jsm, stream
    finally:
        await jsm.streams.delete(stream)
        await nc.close()


async def _durable(jsm: Any, stream: str) -> str:
    from cnats.jetstream import AckPolicy, ConsumerConfig

    await jsm.consumers.add(
        stream, ConsumerConfig(durable_name="bench", ack_policy=AckPolicy.EXPLICIT, max_ack_pending=ACK_PENDING)
    )
    return "bench"


# -- cnats -----------------------------------------------------------------------------------------------------------


def _consume_cnats(window: int) -> _Workload:
    async def drain(url: str, msgs: int, size: int) -> float:
        async with _backlog(url, msgs, size) as (nc, _, stream):
            consumer = await nc.jetstream().consumers.get(stream)  # ordered
            start = time.perf_counter()
            seen = 0
            async with await consumer.consume(max_messages=window) as messages:
                async for _ in messages:
                    seen += 1
                    if seen == msgs:
                        break
            return time.perf_counter() - start

    return drain


consume_cnats = _consume_cnats(BATCH)


def _consume_ack_cnats(window: int) -> _Workload:
    async def drain(url: str, msgs: int, size: int) -> float:
        async with _backlog(url, msgs, size) as (nc, jsm, stream):
            consumer = await nc.jetstream().consumers.get(stream, await _durable(jsm, stream))
            start = time.perf_counter()
            seen = 0
            async with await consumer.consume(max_messages=window) as messages:
                async for msg in messages:
                    msg.ack()
                    seen += 1
                    if seen == msgs:
                        break
            await nc.flush()  # the last acks are on the wire
            return time.perf_counter() - start

    return drain


consume_ack_cnats = _consume_ack_cnats(BATCH)


async def fetch_ack_cnats(url: str, msgs: int, size: int) -> float:
    async with _backlog(url, msgs, size) as (nc, jsm, stream):
        consumer = await nc.jetstream().consumers.get(stream, await _durable(jsm, stream))
        start = time.perf_counter()
        seen = 0
        while seen < msgs:
            async for msg in await consumer.fetch(max_messages=min(BATCH, msgs - seen), expires=5.0):
                msg.ack()
                seen += 1
        await nc.flush()
        return time.perf_counter() - start


# -- nats-py ---------------------------------------------------------------------------------------------------------


async def _nats_py(url: str) -> tuple[Any, Any]:
    import nats

    nc = await nats.connect(url)
    return nc, nc.jetstream()


async def consume_nats_py(url: str, msgs: int, size: int) -> float:
    filler, jsm, stream = await _filled_stream(url, msgs, size)
    nc, js = await _nats_py(url)
    try:
        start = time.perf_counter()
        sub = await js.subscribe(f"bench.{stream}", ordered_consumer=True)
        seen = 0
        async for _ in sub.messages:
            seen += 1
            if seen == msgs:
                break
        elapsed = time.perf_counter() - start
        await sub.unsubscribe()
        return elapsed
    finally:
        await nc.close()
        await jsm.streams.delete(stream)
        await filler.close()


def _fetch_ack_nats_py(batch: int) -> _Workload:
    async def drain(url: str, msgs: int, size: int) -> float:
        filler, jsm, stream = await _filled_stream(url, msgs, size)
        durable = await _durable(jsm, stream)
        nc, js = await _nats_py(url)
        try:
            sub = await js.pull_subscribe_bind(durable, stream)
            start = time.perf_counter()
            seen = 0
            while seen < msgs:
                for msg in await sub.fetch(min(batch, msgs - seen), timeout=5.0):
                    await msg.ack()
                    seen += 1
            await nc.flush()
            return time.perf_counter() - start
        finally:
            await nc.close()
            await jsm.streams.delete(stream)
            await filler.close()

    return drain


fetch_ack_nats_py = _fetch_ack_nats_py(BATCH)


# -- the raw-socket bound --------------------------------------------------------------------------------------------


def _api_request(sock: Any, subject: str, body: dict[str, Any], marker: bytes) -> None:
    """One JetStream API request over the raw socket, waiting for its answer (and everything before a PONG)."""
    payload = json.dumps(body).encode()
    sock.sendall(b"PUB %s _RAW.api %d\r\n%s\r\n" % (subject.encode(), len(payload), payload))
    wait_for(sock, marker)
    sock.sendall(b"PING\r\n")
    wait_for(sock, b"PONG\r\n")


def _pull_frame(next_subject: bytes, batch: int) -> bytes:
    body = json.dumps({"batch": batch, "expires": 60_000_000_000}).encode()
    return b"PUB %s _RAW.msgs %d\r\n%s\r\n" % (next_subject, len(body), body)


def _raw_drain(url: str, stream: str, msgs: int, ack: bool, window: int = 0) -> float:
    """Drain ``msgs`` with one pull for them all; or, with ``window``, as ``consume(max_messages=window)`` pulls:
    that many first, then the rest of the window whenever what is asked for and not yet received falls under 75%
    of it (the window's own reference, not a bound: the server runs slower with a small window)."""
    sock = raw_connect(url)
    try:
        sock.sendall(b"SUB _RAW.api 1\r\nSUB _RAW.msgs 2\r\n")
        config: dict[str, Any] = {"name": "raw", "deliver_policy": "all", "mem_storage": True}
        config |= {"ack_policy": "explicit", "max_ack_pending": ACK_PENDING} if ack else {"ack_policy": "none"}
        _api_request(
            sock,
            f"$JS.API.CONSUMER.CREATE.{stream}.raw",
            {"stream_name": stream, "config": config},
            b"consumer_create_response",
        )
        next_subject = b"$JS.API.CONSUMER.MSG.NEXT.%s.raw" % stream.encode()
        start = time.perf_counter()
        asked = min(window, msgs) if window else msgs
        sock.sendall(_pull_frame(next_subject, asked))
        seen = 0
        carry = b""
        while seen < msgs:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("server closed the connection")
            data = carry + chunk
            out = b""
            if ack:
                # whole control lines only; what follows the last CRLF waits for the next chunk
                cut = data.rfind(b"\r\n") + 2
                lines, carry = data[:cut].split(b"\r\n"), data[cut:]
                replies = [line.split(b" ")[3] for line in lines if line.startswith(b"MSG ")]
                seen += len(replies)
                out = b"".join(b"PUB %s 0\r\n\r\n" % reply for reply in replies)
            else:
                seen += data.count(b"MSG ")
                carry = data[-3:]  # a "MSG " split across two chunks is counted in the second
            if asked < msgs and (asked - seen) * 4 < window * 3:
                more = min(window - (asked - seen), msgs - asked)
                out += _pull_frame(next_subject, more)
                asked += more
            if out:
                sock.sendall(out)
        if ack:
            sock.sendall(b"PING\r\n")
            wait_for(sock, b"PONG\r\n")
        return time.perf_counter() - start
    finally:
        sock.close()


def _raw(ack: bool, window: int = 0) -> _Workload:
    """The raw drain as a workload: its own filled stream, deleted afterwards."""

    async def drain(url: str, msgs: int, size: int) -> float:
        async with _backlog(url, msgs, size) as (_, _, stream):
            return _raw_drain(url, stream, msgs, ack=ack, window=window)

    return drain


consume_raw = _raw(ack=False)
consume_ack_raw = _raw(ack=True)


# workload -> client -> drain; the acking raw bound serves every acking row (one pull for everything)
CONSUMING: dict[str, dict[str, _Workload]] = {
    # "raw-window": the same raw socket pulling as consume() does, shown under the table (a reference, not a bound)
    "js consume": {
        "cnats": consume_cnats,
        "nats-py": consume_nats_py,
        "raw": consume_raw,
        "raw-window": _raw(ack=False, window=BATCH),
    },
    "js consume (ack)": {
        "cnats": consume_ack_cnats,
        "nats-py": fetch_ack_nats_py,
        "raw": consume_ack_raw,
        "raw-window": _raw(ack=True, window=BATCH),
    },
    # the two with a wide window: the client measured where the server does not slow down for the window (nats-py's
    # ordered push consumer has no window: its figure is measured as for the row above)
    "js consume (5k)": {"cnats": _consume_cnats(WIDE_WINDOW), "nats-py": consume_nats_py, "raw": consume_raw},
    "js consume (ack, 5k)": {
        "cnats": _consume_ack_cnats(WIDE_WINDOW),
        "nats-py": _fetch_ack_nats_py(WIDE_WINDOW),
        "raw": consume_ack_raw,
    },
    "js fetch (ack)": {"cnats": fetch_ack_cnats, "nats-py": fetch_ack_nats_py, "raw": consume_ack_raw},
}
