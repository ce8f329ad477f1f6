"""Pull consumers and JsMsg against a real JetStream server: consumers.get, next, fetch (by count,
by bytes, on an empty stream), option validation, consume with re-pulls (iterator, plain and coroutine callbacks),
stop/close/status, delivery info, ack/nak/term/working/ack_ack and redelivery, and reply-subject parsing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import time
from typing import Any

import pytest
from helpers.core import eventually

import cnats
from cnats import NatsConnection
from cnats.errors import (
    ConsumerNotFoundError,
    InvalidOptionError,
    JetStreamIdleHeartbeatError,
    NatsTimeoutError,
    StreamNotFoundError,
)
from cnats.jetstream import (
    AckPolicy,
    Consumer,
    ConsumerDebugEvents,
    ConsumerEvents,
    ConsumerMessages,
    ConsumerStatus,
    DeliveryInfo,
    JetStreamClient,
    JetStreamManager,
    JsMsg,
)
from cnats.jetstream import consumer as consumer_module
from cnats.jetstream.jsmsg import parse_delivery_info
from cnats.testing import ChaosProxy, NatsServer


async def publish_n(js: JetStreamClient, n: int, subject: str = "s.x", start: int = 0) -> None:
    for i in range(start, start + n):
        await js.publish_async(subject, f"{i}")
    await asyncio.wait_for(js.publish_async_completed(), 10)


async def durable(js: JetStreamClient, jsm: JetStreamManager, name: str = "d", **config: Any) -> Consumer:
    config.setdefault("ack_policy", AckPolicy.EXPLICIT)
    await jsm.consumers.add("S", durable_name=name, **config)
    return await js.consumers.get("S", name)


class StatusRecorder:
    """Collects the status events of a ConsumerMessages from now on."""

    def __init__(self, messages: ConsumerMessages) -> None:
        self.events: list[ConsumerStatus] = []
        self._it = messages.status()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for status in self._it:
            self.events.append(status)

    def of(self, kind: ConsumerEvents | ConsumerDebugEvents) -> list[ConsumerStatus]:
        return [e for e in self.events if e.type == kind]

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def collect(messages: ConsumerMessages, timeout: float = 10) -> list[JsMsg]:
    async def run() -> list[JsMsg]:
        return [m async for m in messages]

    return await asyncio.wait_for(run(), timeout)


async def take_acked(messages: ConsumerMessages, count: int, timeout: float) -> list[bytes]:
    """The data of the next ``count`` messages of a running consume, each acknowledged as it is read."""
    got: list[bytes] = []

    async def read() -> None:
        async for msg in messages:
            got.append(msg.data)
            msg.ack()
            if len(got) == count:
                return

    await asyncio.wait_for(read(), timeout)
    return got


# -- consumers.get ------------------------------------------------------------------------------------------------


async def test_get_existing_consumer(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await jsm.consumers.add("S", durable_name="d", ack_policy=AckPolicy.EXPLICIT)
    consumer = await js.consumers.get("S", "d")
    assert isinstance(consumer, Consumer)
    assert consumer.name == "d" and consumer.stream == "S"
    info = await consumer.info(cached=True)
    assert info.name == "d" and info.stream_name == "S"
    await publish_n(js, 2)

    # the consumer counts what is stored after it was made apart from the storing (a loaded run read 0 at once)
    async def counted() -> bool:
        return (await consumer.info()).num_pending == 2

    await eventually(counted, timeout=10)
    assert (await consumer.info(cached=True)).num_pending == 2
    assert await consumer.delete() is True
    with pytest.raises(ConsumerNotFoundError):
        await consumer.info()


async def test_get_missing_consumer_or_stream(js: JetStreamClient) -> None:
    with pytest.raises(ConsumerNotFoundError) as err:
        await js.consumers.get("S", "missing")
    assert (err.value.status, err.value.err_code) == (404, 10014)
    with pytest.raises(StreamNotFoundError) as err2:
        await js.consumers.get("NOSTREAM", "missing")
    assert (err2.value.status, err2.value.err_code) == (404, 10059)
    with pytest.raises(StreamNotFoundError):
        await js.consumers.get("NOSTREAM")  # ordered consumer: the stream is checked


async def test_get_push_consumer_refused(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await jsm.consumers.add("S", durable_name="push", deliver_subject="deliver.here")
    with pytest.raises(InvalidOptionError) as err:
        await js.consumers.get("S", "push")
    assert str(err.value) == "push consumer not supported"
    info = await jsm.consumers.info("S", "push")
    with pytest.raises(InvalidOptionError):
        js.consumers.get_pull_consumer_for(info)


async def test_get_pull_consumer_for_info(js: JetStreamClient, jsm: JetStreamManager) -> None:
    info = await jsm.consumers.add("S", durable_name="d", ack_policy=AckPolicy.EXPLICIT)
    consumer = js.consumers.get_pull_consumer_for(info)
    assert (consumer.name, consumer.stream) == ("d", "S")
    await publish_n(js, 1)
    msg = await consumer.next(expires=2)
    assert msg is not None and msg.data == b"0"


# -- next / fetch -------------------------------------------------------------------------------------------------


async def test_next(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    await publish_n(js, 2)
    first = await asyncio.wait_for(consumer.next(expires=5), 5)
    assert isinstance(first, JsMsg)
    assert (first.subject, first.data, first.seq) == ("s.x", b"0", 1)
    first.ack()
    second = await asyncio.wait_for(consumer.next(expires=5), 5)
    assert second is not None and second.seq == 2
    second.ack()


async def test_next_asks_for_the_idle_heartbeat_given(
    nc2: NatsConnection, js: JetStreamClient, jsm: JetStreamManager
) -> None:
    consumer = await durable(js, jsm)
    await publish_n(js, 1)
    pulls = nc2.subscribe("$JS.API.CONSUMER.MSG.NEXT.S.d")  # sees the pull requests as the server does
    await nc2.flush()
    msg = await asyncio.wait_for(consumer.next(expires=5, idle_heartbeat=0.5), 5)
    assert msg is not None and msg.seq == 1
    request = json.loads((await pulls.next_msg(timeout=5)).data)
    assert (request["batch"], request["expires"], request["idle_heartbeat"]) == (1, 5_000_000_000, 500_000_000)


async def test_next_returns_none_after_expires(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    start = time.monotonic()
    msg = await asyncio.wait_for(consumer.next(expires=1), 5)
    elapsed = time.monotonic() - start
    assert msg is None
    assert 0.8 < elapsed < 2.5


async def test_fetch_max_messages(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    await publish_n(js, 10)
    start = time.monotonic()
    messages = await consumer.fetch(max_messages=4, expires=5)
    got = await collect(messages)
    assert time.monotonic() - start < 2  # ends when 4 arrived, not at expiry
    assert [m.seq for m in got] == [1, 2, 3, 4]
    assert messages.received == 4
    for m in got:
        m.ack()
    rest = await collect(await consumer.fetch(max_messages=100, expires=1))
    assert [m.seq for m in rest] == [5, 6, 7, 8, 9, 10]


async def test_fetch_max_bytes(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    for _ in range(10):
        await js.publish("s.b", b"x" * 100)
    start = time.monotonic()
    got = await collect(await consumer.fetch(max_bytes=450, expires=5))
    assert time.monotonic() - start < 2.5
    assert 1 <= len(got) <= 4  # each message is over 100 bytes counted by the server
    assert sum(len(m.data) for m in got) <= 450
    assert [m.seq for m in got] == list(range(1, len(got) + 1))
    more = await collect(await consumer.fetch(max_bytes=10_000, expires=1))
    assert [m.seq for m in more] == list(range(len(got) + 1, 11))


async def test_fetch_on_empty_stream_ends_at_expires(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    start = time.monotonic()
    messages = await consumer.fetch(max_messages=10, expires=1)
    got = await collect(messages, timeout=5)
    elapsed = time.monotonic() - start
    assert got == []
    assert 0.8 < elapsed < 2.5
    assert await asyncio.wait_for(messages.closed, 1) is None


async def test_fetch_gets_messages_published_while_waiting(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    messages = await consumer.fetch(max_messages=3, expires=5)

    async def later() -> None:
        await asyncio.sleep(0.2)
        await publish_n(js, 3)

    task = asyncio.create_task(later())
    got = await collect(messages)
    await task
    assert [m.data for m in got] == [b"0", b"1", b"2"]


@pytest.mark.parametrize("method", ["fetch", "consume"])
async def test_pull_option_validation(js: JetStreamClient, jsm: JetStreamManager, method: str) -> None:
    consumer = await durable(js, jsm)
    call = getattr(consumer, method)
    with pytest.raises(InvalidOptionError) as err:
        await call(max_messages=10, max_bytes=1000)
    assert str(err.value) == "only specify one of max_messages or max_bytes"
    with pytest.raises(InvalidOptionError):
        await call(expires=0.5)
    with pytest.raises(InvalidOptionError):
        await consumer.next(expires=0.2)


# -- consume ------------------------------------------------------------------------------------------------------


async def test_consume_iterator_gets_everything_with_repulls(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    await publish_n(js, 500)
    messages = await consumer.consume(max_messages=50, expires=5)
    recorder = StatusRecorder(messages)
    publisher = asyncio.create_task(publish_n(js, 500, start=500))
    got = [int(data) for data in await take_acked(messages, 1000, 20)]
    messages.stop()
    await publisher
    assert got == list(range(1000))
    assert messages.received >= 1000
    assert len(recorder.of(ConsumerDebugEvents.NEXT)) >= 1000 // 50 // 2  # it pulled again and again
    for event in recorder.of(ConsumerDebugEvents.NEXT):
        assert event.data["batch"] <= 50
    await recorder.aclose()
    info = await jsm.consumers.info("S", "d")
    assert info.delivered.stream_seq == 1000


async def test_consume_by_bytes(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    for i in range(200):
        await js.publish_async("s.b", f"{i:0100d}")
    await asyncio.wait_for(js.publish_async_completed(), 10)
    messages = await consumer.consume(max_bytes=2000, expires=5)
    recorder = StatusRecorder(messages)
    got = [int(data) for data in await take_acked(messages, 200, 6)]
    messages.stop()
    assert got == list(range(200))
    pulls = recorder.of(ConsumerDebugEvents.NEXT)
    assert pulls and all(0 < e.data["max_bytes"] <= 2000 for e in pulls)
    await recorder.aclose()


async def test_a_message_larger_than_max_bytes_is_asked_for_again_with_a_back_off(
    js: JetStreamClient, jsm: JetStreamManager
) -> None:
    """Every pull of a consume by bytes gets a 409 while its next message is larger than ``max_bytes``: the consume
    asks again 50 ms later, then twice as long each time (at most a second apart), rather than at once; once the
    message is gone, what follows it arrives."""
    consumer = await durable(js, jsm)
    await js.publish("s.big", b"x" * 3000)
    for i in range(3):
        await js.publish("s.small", b"%d" % i)
    messages = await consumer.consume(max_bytes=1000, expires=5)
    recorder = StatusRecorder(messages)

    def oversize() -> list[ConsumerStatus]:
        return [e for e in recorder.of(ConsumerDebugEvents.DEBUG_EVENT) if "Exceeds MaxBytes" in str(e.data)]

    await eventually(lambda: len(oversize()) >= 4, timeout=5)
    await asyncio.sleep(1.0)  # asking at once, it would be thousands of answers by now
    assert len(oversize()) <= 9
    pulls = len(recorder.of(ConsumerDebugEvents.NEXT))
    assert pulls <= len(oversize()) + 1  # one pull per answer, and nothing pulled in between
    await jsm.streams.delete_message("S", 1)
    assert await take_acked(messages, 3, 5) == [b"0", b"1", b"2"]
    await recorder.aclose()


@pytest.mark.parametrize(("size", "count", "max_bytes"), [(300, 60, 1000), (1000, 40, 1500)])
async def test_a_consume_by_bytes_whose_window_holds_few_messages_goes_on(
    js: JetStreamClient, jsm: JetStreamManager, size: int, count: int, max_bytes: int
) -> None:
    """A window of a few messages (or one): the server refuses a pull its next message does not fit in (409), so
    the consume never asks for less than about two messages of the size that came last, and a refused pull that
    had delivered some is asked again at once, not backed off. Asking for what was left of the window used to make
    two pulls too small for any message, refused in turn for ever."""
    consumer = await durable(js, jsm)
    for i in range(count):
        await js.publish_async("s.m", b"%0*d" % (size, i))
    await asyncio.wait_for(js.publish_async_completed(), 10)
    messages = await consumer.consume(max_bytes=max_bytes, expires=5)
    recorder = StatusRecorder(messages)
    assert [int(data) for data in await take_acked(messages, count, 10)] == list(range(count))
    assert len(recorder.of(ConsumerDebugEvents.NEXT)) <= 2 * count  # (the livelock made ~25,000 a second)
    assert messages._pull._oversize_delay == 0.0  # never waited as for a message too large for the window
    messages.stop()
    await recorder.aclose()


async def test_consume_credits_the_server_as_messages_arrive(js: JetStreamClient, jsm: JetStreamManager) -> None:
    # the server is asked for more as messages arrive, not only as they are taken: a reader busy with what one read
    # brought in does not leave the server without credit meanwhile (up to a window unread, a window on its way)
    consumer = await durable(js, jsm)
    await publish_n(js, 100)
    messages = await consumer.consume(max_messages=10, expires=5)
    await eventually(lambda: messages.received > 10)  # more than the first pull, with nothing taken
    assert messages.processed == 0
    await eventually(lambda: messages.received == messages.pending >= 10)
    held = messages.pending
    assert held <= 20
    taken = [await messages.__anext__() for _ in range(held)]
    assert [m.seq for m in taken] == list(range(1, held + 1))
    await messages.close()


async def test_consume_pulls_only_what_the_reader_takes(js: JetStreamClient, jsm: JetStreamManager) -> None:
    # the re-pulls stop once the reader is a whole window behind: a slow reader must not get the whole stream
    # buffered (where the messages' ack_wait would run out before they are even looked at); at most a window waits
    # unread and another is on its way
    consumer = await durable(js, jsm, ack_wait=30)
    await publish_n(js, 1000)
    messages = await consumer.consume(max_messages=10, expires=5)
    first = await asyncio.wait_for(messages.__anext__(), 5)
    assert first.seq == 1
    await asyncio.sleep(0.5)  # the reader is busy
    assert messages.pending <= 20
    info = await consumer.info()
    assert info.num_ack_pending <= 21
    assert info.num_pending >= 1000 - 21
    await messages.close()


class _ThreadRelay:
    """A TCP relay in threads of its own: it sees what the client writes even while the client's event loop is
    busy, which an asyncio proxy could not."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit("//", 1)[-1].rsplit(":", 1)
        self._upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"nats://127.0.0.1:{self._listener.getsockname()[1]}"
        self.from_client = bytearray()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            client, _ = self._listener.accept()
            server = socket.create_connection(self._upstream)
            self._socks += [client, server]
            threading.Thread(target=self._copy, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._copy, args=(server, client, False), daemon=True).start()

    def _copy(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if record:
                    with self._lock:
                        self.from_client += data
                dst.sendall(data)

    def seen(self, needle: bytes) -> int:
        with self._lock:
            return self.from_client.count(needle)

    def credit(self) -> int:
        """The messages the client's pull requests asked for so far."""
        with self._lock:
            return sum(int(batch) for batch in re.findall(rb'"batch":(\d+)', self.from_client))

    def close(self) -> None:
        for sock in [self._listener, *self._socks]:
            sock.close()


async def test_a_refill_is_written_while_the_reader_is_still_taking(
    nats_server: NatsServer, js: JetStreamClient, jsm: JetStreamManager
) -> None:
    # a reader taking queued messages does not yield to the event loop between them; the refill it triggers must
    # reach the server then, not once the queue is empty (the server would sit idle without credit meanwhile)
    await durable(js, jsm)
    await publish_n(js, 100)
    relay = _ThreadRelay(nats_server.url)
    nc = await cnats.connect(relay.url)
    try:
        consumer = await nc.jetstream().consumers.get("S", "d")
        messages = await consumer.consume(max_messages=20, threshold_messages=10, expires=5)

        def window_behind() -> bool:
            # a whole window queued, and all the credit given used: nothing more comes until the reader takes
            return messages.pending >= 20 and messages.received == relay.credit()

        await eventually(window_behind)
        pulls = relay.seen(b"CONSUMER.MSG.NEXT")
        queued = messages.pending
        # from here on, no await that could yield: each take returns a ready awaitable; taking below a window pulls
        taken = [await messages.__anext__() for _ in range(queued - 15)]
        deadline = time.monotonic() + 5
        while relay.seen(b"CONSUMER.MSG.NEXT") == pulls and time.monotonic() < deadline:
            time.sleep(0.005)  # blocks the loop on purpose: only a write already made can arrive
        assert relay.seen(b"CONSUMER.MSG.NEXT") > pulls
        assert [m.seq for m in taken] == list(range(1, queued - 14))
        await messages.close()
    finally:
        await nc.close()
        relay.close()


async def test_consume_with_plain_callback(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    await publish_n(js, 300)
    got: list[int] = []

    def on_msg(msg: JsMsg) -> None:
        got.append(int(msg.data))
        msg.ack()

    messages = await consumer.consume(max_messages=50, callback=on_msg)
    await publish_n(js, 300, start=300)
    await eventually(lambda: len(got) >= 600, timeout=10)
    assert got == list(range(600))
    assert messages.processed >= 600
    with pytest.raises(RuntimeError):
        async for _ in messages:
            pass
    assert await asyncio.wait_for(messages.close(), 5) is None


async def test_consume_with_coroutine_callback(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    await publish_n(js, 200)
    got: list[int] = []
    running = 0
    overlap = False

    async def on_msg(msg: JsMsg) -> None:
        nonlocal running, overlap
        running += 1
        overlap = overlap or running > 1
        await asyncio.sleep(0)
        got.append(int(msg.data))
        msg.ack()
        running -= 1

    messages = await consumer.consume(max_messages=50, callback=on_msg)
    await publish_n(js, 200, start=200)
    await eventually(lambda: len(got) >= 400, timeout=10)
    assert got == list(range(400))
    assert not overlap  # coroutine callbacks run one at a time
    with pytest.raises(RuntimeError):
        await messages.__anext__()
    await asyncio.wait_for(messages.close(), 5)


async def test_callback_exception_does_not_stop_consume(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    got: list[int] = []

    def on_msg(msg: JsMsg) -> None:
        got.append(int(msg.data))
        msg.ack()
        if len(got) == 1:
            raise ValueError("boom")

    messages = await consumer.consume(callback=on_msg)
    await publish_n(js, 5)
    await eventually(lambda: len(got) == 5, timeout=5)
    await messages.close()


async def test_stop_ends_iterator(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    messages = await consumer.consume(expires=30)

    async def stop_soon() -> None:
        await asyncio.sleep(0.2)
        messages.stop()

    task = asyncio.create_task(stop_soon())
    start = time.monotonic()
    assert await collect(messages, timeout=5) == []
    assert time.monotonic() - start < 2
    await task
    assert await asyncio.wait_for(messages.closed, 1) is None


async def test_stop_with_error_yields_queued_then_raises(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    await publish_n(js, 3)
    messages = await consumer.consume(max_messages=10)
    await eventually(lambda: messages.pending == 3, timeout=5)
    boom = RuntimeError("stop here")
    messages.stop(boom)
    got = []
    with pytest.raises(RuntimeError, match="stop here"):
        async for msg in messages:
            got.append(msg.seq)
    assert got == [1, 2, 3]
    assert await asyncio.wait_for(messages.closed, 1) is boom


async def test_close_and_async_with(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    await publish_n(js, 2)
    messages = await consumer.consume()
    assert await asyncio.wait_for(messages.close(), 5) is None
    assert messages.closed.done() and messages.closed.result() is None
    assert await asyncio.wait_for(messages.close(), 1) is None  # idempotent
    async with await consumer.consume() as again:
        async for msg in again:
            msg.ack()
            if msg.seq == 2:
                break
    assert again.closed.done()
    info = await jsm.consumers.info("S", "d")
    assert info.delivered.stream_seq == 2


async def test_status_discard_when_pulls_expire(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    messages = await consumer.consume(max_messages=20, expires=1)
    recorder = StatusRecorder(messages)
    await eventually(lambda: len(recorder.of(ConsumerDebugEvents.DISCARD)) >= 1, timeout=5)
    discard = recorder.of(ConsumerDebugEvents.DISCARD)[0]
    assert discard.data == {"msgs_left": 20, "bytes_left": 0}
    await eventually(lambda: len(recorder.of(ConsumerDebugEvents.NEXT)) >= 1, timeout=3)  # pulled again
    # still consuming
    await publish_n(js, 1)
    msg = await asyncio.wait_for(messages.__anext__(), 5)
    assert msg.seq == 1
    await messages.close()
    await asyncio.wait_for(recorder._task, 2)  # the status iterator ends with the consumer


async def test_status_consumer_deleted_then_not_found(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    messages = await consumer.consume(max_messages=10, expires=2, idle_heartbeat=1)
    recorder = StatusRecorder(messages)
    await asyncio.sleep(0.1)
    await jsm.consumers.delete("S", "d")
    await eventually(lambda: len(recorder.of(ConsumerEvents.CONSUMER_DELETED)) >= 1, timeout=5)
    await eventually(lambda: len(recorder.of(ConsumerEvents.CONSUMER_NOT_FOUND)) >= 1, timeout=5)
    assert not messages.closed.done()  # it keeps trying
    # the consumer comes back: consuming resumes
    await jsm.consumers.add("S", durable_name="d", ack_policy=AckPolicy.EXPLICIT)
    await publish_n(js, 1)
    msg = await asyncio.wait_for(messages.__anext__(), 10)
    assert msg.seq == 1
    await messages.close()
    await recorder.aclose()


async def test_abort_on_missing_resource(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    messages = await consumer.consume(expires=2, abort_on_missing_resource=True)
    await asyncio.sleep(0.1)
    await jsm.consumers.delete("S", "d")
    with pytest.raises(ConsumerNotFoundError):
        await collect(messages, timeout=10)
    assert isinstance(await asyncio.wait_for(messages.closed, 1), ConsumerNotFoundError)


async def test_abort_on_missing_stream(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    messages = await consumer.consume(expires=2, idle_heartbeat=1, abort_on_missing_resource=True)
    await asyncio.sleep(0.1)
    await jsm.streams.delete("S")
    with pytest.raises((StreamNotFoundError, ConsumerNotFoundError)):
        await collect(messages, timeout=10)


async def test_fetch_without_responders_asks_again_then_fails(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    await jsm.streams.delete("S")  # the consumer's pull subject has nobody behind it now: the server answers 503
    started = time.monotonic()
    messages = await consumer.fetch(max_messages=5, expires=5)
    recorder = StatusRecorder(messages)
    with pytest.raises(cnats.NoRespondersError):
        await collect(messages, timeout=5)
    assert time.monotonic() - started < 2  # three more pulls 50, 100 and 200 ms apart, not `expires`
    await eventually(lambda: len(recorder.of(ConsumerEvents.NO_RESPONDERS)) == 4, timeout=2)
    with pytest.raises(cnats.NoRespondersError):
        await consumer.next(expires=5)
    await recorder.aclose()


async def test_a_fetch_gets_its_messages_once_its_consumer_is_known(
    js: JetStreamClient, jsm: JetStreamManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A consumer just made may not be known yet where the client is connected (its interest crossing routes or
    gateways): the fetch's pull, answered 503, is asked again until it is. Here the consumer is gone and made again
    while the fetch waits (more retries than by default, so that the test does not race the server)."""
    monkeypatch.setattr(consumer_module, "_UNANSWERED_RETRIES", 8)
    consumer = await durable(js, jsm)
    await js.publish("s.a", b"kept")
    await jsm.consumers.delete("S", "d")
    messages = await consumer.fetch(max_messages=1, expires=5)
    recorder = StatusRecorder(messages)
    await eventually(lambda: len(recorder.of(ConsumerEvents.NO_RESPONDERS)) >= 1, timeout=5)
    await jsm.consumers.add("S", durable_name="d", ack_policy=AckPolicy.EXPLICIT)
    assert [m.data for m in await collect(messages, timeout=10)] == [b"kept"]
    await recorder.aclose()


async def test_consume_without_responders_reports_and_keeps_trying(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    await jsm.consumers.delete("S", "d")
    messages = await consumer.consume(max_messages=10, expires=2, idle_heartbeat=0.5)
    recorder = StatusRecorder(messages)
    await eventually(lambda: len(recorder.of(ConsumerEvents.NO_RESPONDERS)) >= 1, timeout=5)
    await eventually(lambda: len(recorder.of(ConsumerEvents.CONSUMER_NOT_FOUND)) >= 1, timeout=5)
    assert not messages.closed.done()
    await jsm.consumers.add("S", durable_name="d", ack_policy=AckPolicy.EXPLICIT)
    await publish_n(js, 1)
    msg = await asyncio.wait_for(messages.__anext__(), 10)
    assert msg.seq == 1
    await messages.close()
    await recorder.aclose()


async def test_heartbeats_missed(chaos_proxy: ChaosProxy, jsm: JetStreamManager) -> None:
    nc = await cnats.connect(chaos_proxy.url, ping_interval=60)
    try:
        js = nc.jetstream(timeout=1)
        await jsm.consumers.add("S", durable_name="hb", ack_policy=AckPolicy.EXPLICIT)
        consumer = await js.consumers.get("S", "hb")
        consuming = await consumer.consume(expires=10, idle_heartbeat=0.5)
        recorder = StatusRecorder(consuming)
        fetching = await consumer.fetch(expires=10, idle_heartbeat=0.5)
        await asyncio.sleep(0.1)
        chaos_proxy.blackhole()
        await eventually(lambda: len(recorder.of(ConsumerEvents.HEARTBEATS_MISSED)) >= 2, timeout=5)
        counts = [e.data for e in recorder.of(ConsumerEvents.HEARTBEATS_MISSED)]
        assert counts[:2] == [1, 2]
        with pytest.raises(JetStreamIdleHeartbeatError):
            await collect(fetching, timeout=5)
        chaos_proxy.blackhole(False)
        await consuming.close()
        await recorder.aclose()
    finally:
        await nc.close()


# -- JsMsg --------------------------------------------------------------------------------------------------------


async def test_jsmsg_info(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm, name="info_c")
    await publish_n(js, 3)

    # The pending count a delivery carries is the consumer's own count, which the server updates apart from storing
    # (on a busy machine a first delivery right after the acks said 0): wait until the consumer counts all three.
    async def counted() -> bool:
        return (await consumer.info()).num_pending == 3

    await eventually(counted, timeout=10)
    before = time.time_ns()
    msg = await consumer.next(expires=5)
    assert msg is not None
    info = msg.info
    assert isinstance(info, DeliveryInfo)
    assert info.stream == "S"
    assert info.consumer == "info_c"
    assert info.stream_sequence == 1 and msg.seq == 1
    assert info.delivery_sequence == 1
    assert info.delivery_count == 1 and info.redelivery_count == 1
    assert info.redelivered is False and msg.redelivered is False
    assert info.pending == 2
    assert abs(info.timestamp_nanos - before) < 60 * 10**9
    assert info.domain == ""
    assert msg.reply.startswith("$JS.ACK.")
    assert msg.subject == "s.x" and msg.string() == "0" and msg.json() == 0
    assert msg.headers is None or not msg.headers.keys()
    msg.ack()
    second = await consumer.next(expires=5)
    assert second is not None
    assert (second.info.stream_sequence, second.info.delivery_sequence, second.info.pending) == (2, 2, 1)


async def test_ack_removes_from_pending(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    await publish_n(js, 1)
    msg = await consumer.next(expires=5)
    assert msg is not None
    assert (await consumer.info()).num_ack_pending == 1
    msg.ack()

    async def acked() -> bool:
        return (await consumer.info()).num_ack_pending == 0

    await eventually(acked, timeout=5, interval=0.05)
    assert (await consumer.info()).ack_floor.stream_seq == 1


async def test_nak_redelivers(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    await publish_n(js, 1)
    msg = await consumer.next(expires=5)
    assert msg is not None
    msg.nak()
    again = await asyncio.wait_for(consumer.next(expires=5), 5)
    assert again is not None
    assert again.seq == 1
    assert again.info.delivery_count == 2
    assert again.redelivered is True and again.info.redelivered is True
    assert again.info.delivery_sequence == 2
    again.ack()


async def test_nak_with_delay(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    await publish_n(js, 1)
    msg = await consumer.next(expires=5)
    assert msg is not None
    start = time.monotonic()
    msg.nak(delay=1.0)
    again = await asyncio.wait_for(consumer.next(expires=5), 6)
    elapsed = time.monotonic() - start
    assert again is not None and again.seq == 1 and again.redelivered
    assert 0.8 < elapsed < 3


async def test_term_is_not_redelivered(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm, ack_wait=1)
    await publish_n(js, 1)
    msg = await consumer.next(expires=5)
    assert msg is not None
    msg.term("bad data")
    assert await asyncio.wait_for(consumer.next(expires=1.5), 5) is None
    assert (await consumer.info()).num_ack_pending == 0


async def test_redelivery_after_ack_wait(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm, ack_wait=1)
    await publish_n(js, 1)
    msg = await consumer.next(expires=5)
    assert msg is not None
    start = time.monotonic()
    again = await asyncio.wait_for(consumer.next(expires=5), 6)  # not acked
    assert again is not None and again.seq == 1
    assert again.info.delivery_count == 2
    assert 0.7 < time.monotonic() - start < 3


async def test_working_extends_ack_wait(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm, ack_wait=1)
    await publish_n(js, 1)
    deliveries: list[tuple[float, JsMsg]] = []
    loop = asyncio.get_running_loop()
    messages = await consumer.consume(max_messages=10, callback=lambda m: deliveries.append((loop.time(), m)))
    await eventually(lambda: len(deliveries) == 1, timeout=5)
    first_at, first = deliveries[0]
    await asyncio.sleep(max(0.0, first_at + 0.6 - loop.time()))
    first.working()
    first.working()  # may be repeated
    await asyncio.sleep(max(0.0, first_at + 1.2 - loop.time()))
    assert len(deliveries) == 1  # the ack wait restarted at 0.6 s
    await eventually(lambda: len(deliveries) == 2, timeout=5)  # without more progress it comes back
    assert deliveries[1][0] - first_at > 1.4
    assert deliveries[1][1].redelivered
    deliveries[1][1].ack()
    await messages.close()


async def test_working_does_not_count_as_ack(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    await publish_n(js, 1)
    msg = await consumer.next(expires=5)
    assert msg is not None
    msg.working()
    msg.ack()  # still sent after working()

    async def acked() -> bool:
        return (await consumer.info()).num_ack_pending == 0

    await eventually(acked, timeout=5, interval=0.05)


async def test_ack_ack(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    await publish_n(js, 2)
    msg = await consumer.next(expires=5)
    assert msg is not None
    assert await msg.ack_ack() is True
    assert (await consumer.info()).num_ack_pending == 0  # confirmed: no polling needed
    assert await msg.ack_ack() is False
    other = await consumer.next(expires=5)
    assert other is not None
    other.ack()
    assert await other.ack_ack() is False  # already acknowledged


async def test_ack_ack_timeout_when_no_confirmation(chaos_proxy: ChaosProxy, jsm: JetStreamManager) -> None:
    nc = await cnats.connect(chaos_proxy.url, ping_interval=60)
    try:
        js = nc.jetstream()
        await js.publish("s.x", b"x")
        await jsm.consumers.add("S", durable_name="d", ack_policy=AckPolicy.EXPLICIT)
        consumer = await js.consumers.get("S", "d")
        msg = await consumer.next(expires=5)
        assert msg is not None
        chaos_proxy.blackhole()
        start = time.monotonic()
        with pytest.raises(NatsTimeoutError):
            await msg.ack_ack(timeout=0.3)
        assert time.monotonic() - start < 2
        assert await msg.ack_ack() is False  # it was sent (the first acknowledgement counts)
    finally:
        chaos_proxy.blackhole(False)
        await nc.close()


async def test_only_first_of_ack_nak_term_is_sent(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm, ack_wait=1)
    await publish_n(js, 2)
    first = await consumer.next(expires=5)
    assert first is not None
    first.term()
    first.nak()  # no-op: a nak would redeliver it
    first.ack()
    second = await consumer.next(expires=5)
    assert second is not None and second.seq == 2
    second.nak()
    second.ack()  # no-op: the nak was sent first
    second.term()
    again = await asyncio.wait_for(consumer.next(expires=5), 6)
    assert again is not None
    assert again.seq == 2 and again.info.delivery_count == 2
    assert await again.ack_ack() is True
    # nothing else comes back: seq 1 was terminated
    assert await asyncio.wait_for(consumer.next(expires=1.5), 5) is None


async def test_acks_on_messages_of_consume(js: JetStreamClient, jsm: JetStreamManager) -> None:
    consumer = await durable(js, jsm)
    await publish_n(js, 20)
    messages = await consumer.consume(max_messages=5)
    count = 0
    async for msg in messages:
        msg.ack()
        count += 1
        if count == 20:
            break
    await messages.close()

    async def all_acked() -> bool:
        info = await consumer.info()
        return info.num_ack_pending == 0 and info.ack_floor.stream_seq == 20

    await eventually(all_acked, timeout=5, interval=0.05)


# -- delivery info parsing -----------------------------------------------------------------------------------------


def test_parse_delivery_info_nine_tokens() -> None:
    info = parse_delivery_info("$JS.ACK.ORDERS.worker.3.1001.57.1700000000123456789.12")
    assert info == DeliveryInfo(
        domain="",
        account_hash=None,
        stream="ORDERS",
        consumer="worker",
        delivery_count=3,
        redelivery_count=3,
        stream_sequence=1001,
        delivery_sequence=57,
        timestamp_nanos=1700000000123456789,
        pending=12,
        redelivered=True,
    )


def test_parse_delivery_info_twelve_tokens_without_domain() -> None:
    info = parse_delivery_info("$JS.ACK._.ACCHASH123.ORDERS.worker.1.5.4.1700000000000000001.0.r4nd0m")
    assert info.domain == ""
    assert info.account_hash == "ACCHASH123"
    assert (info.stream, info.consumer) == ("ORDERS", "worker")
    assert (info.delivery_count, info.stream_sequence, info.delivery_sequence) == (1, 5, 4)
    assert info.timestamp_nanos == 1700000000000000001
    assert info.pending == 0
    assert info.redelivered is False


def test_parse_delivery_info_twelve_tokens_with_domain() -> None:
    info = parse_delivery_info("$JS.ACK.hub.Q7ACCOUNTHASH.S.c.2.10.9.1700000000000000000.3.tok")
    assert info.domain == "hub"
    assert info.account_hash == "Q7ACCOUNTHASH"
    assert (info.stream, info.consumer) == ("S", "c")
    assert info.delivery_count == 2 and info.redelivery_count == 2 and info.redelivered is True
    assert (info.stream_sequence, info.delivery_sequence, info.pending) == (10, 9, 3)


@pytest.mark.parametrize("bad", ["$JS.ACK.S.c.1.1.1", "foo.bar", "$JS.NOTACK.S.c.1.1.1.1.0", ""])
def test_parse_delivery_info_rejects_other_subjects(bad: str) -> None:
    with pytest.raises(InvalidOptionError):
        parse_delivery_info(bad)
