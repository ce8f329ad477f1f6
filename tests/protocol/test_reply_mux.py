"""The request/reply paths both cores hold: ReplyMux (the shared response inbox), MsgBase.respond and the parser's
received() entry point. A real event loop, no server: these are the core's own contracts."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import weakref
from types import ModuleType
from typing import Any

import pytest
from helpers.protocol import Recorder, publisher

from cnats.errors import BadSubjectError, NatsTimeoutError, NoRespondersError, ProtocolError
from cnats.headers import Headers

PREFIX = "_INBOX.test."


def response(core: ModuleType, subject: str, data: bytes = b"", headers: Headers | None = None) -> Any:
    msg = core.MsgBase()
    msg._init(subject, data, None, headers, 1, None)
    return msg


def mux_of(core: ModuleType, loop: asyncio.AbstractEventLoop) -> Any:
    return core.ReplyMux(loop, PREFIX, NatsTimeoutError, NoRespondersError)


async def test_request_publishes_with_a_fresh_reply_subject_and_resolves_with_its_response(core: ModuleType) -> None:
    loop = asyncio.get_running_loop()
    pub, mux = publisher(core, loop), mux_of(core, loop)
    first = mux.request(pub, "svc.a", b"one", None, 1.0)
    second = mux.request(pub, "svc.b", b"two", None, 1.0)
    assert bytes(pub._wb.take()) == (f"PUB svc.a {PREFIX}1 3\r\none\r\nPUB svc.b {PREFIX}2 3\r\ntwo\r\n".encode())
    assert mux.next_token() == "3"  # tokens never repeat within one inbox
    answer = response(core, PREFIX + "2", b"for b")
    mux(answer)
    assert await second is answer and not first.done()
    assert set(mux.waiters) == {"1"}
    mux(response(core, PREFIX + "2", b"late duplicate"))  # nobody waits for it any more: dropped
    mux(response(core, PREFIX + "1", b"for a"))
    assert (await first).data == b"for a"
    assert mux.waiters == {}


async def test_no_responders_status_fails_the_request(core: ModuleType) -> None:
    loop = asyncio.get_running_loop()
    pub, mux = publisher(core, loop), mux_of(core, loop)
    future = mux.request(pub, "nobody.home", b"", None, 1.0)
    mux(response(core, PREFIX + "1", b"", Headers(503, "")))
    with pytest.raises(NoRespondersError, match=r"no responders for 'nobody\.home'"):
        await future
    # a 503 that carries data is an answer like any other
    future = mux.request(pub, "svc", b"", None, 1.0)
    mux(response(core, PREFIX + "2", b"busy", Headers(503, "")))
    assert (await future).data == b"busy"


async def test_deadline_fails_late_requests_in_order_with_one_timer_per_timeout(core: ModuleType) -> None:
    loop = asyncio.get_running_loop()
    pub, mux = publisher(core, loop), mux_of(core, loop)
    short = [mux.request(pub, f"s.{i}", b"", None, 0.05) for i in range(3)]
    long = mux.request(pub, "l", b"", None, 5)
    mux(response(core, PREFIX + "2", b"in time"))
    assert mux.deadlines_pending() == 4
    results = await asyncio.gather(*short, return_exceptions=True)
    assert isinstance(results[0], NatsTimeoutError) and str(results[0]) == "request to 's.0' timed out after 0.05 s"
    assert results[1].data == b"in time"
    assert isinstance(results[2], NatsTimeoutError)
    assert set(mux.waiters) == {"4"} and not long.done()
    assert mux.deadlines_pending() == 1
    mux.fail_all(ConnectionError("gone"))  # also cancels the 5 s timer
    with pytest.raises(ConnectionError):
        await long


async def test_answered_requests_leave_the_deadline_queue_from_the_front(core: ModuleType) -> None:
    # answered requests stay queued until a later request finds them at the front of their queue
    loop = asyncio.get_running_loop()
    pub, mux = publisher(core, loop), mux_of(core, loop)
    first = [mux.request(pub, f"a.{i}", b"", None, 5.0) for i in range(2000)]
    then = [mux.request(pub, f"b.{i}", b"", None, 5.0) for i in range(10)]
    for i in range(2000):
        mux(response(core, f"{PREFIX}{i + 1}", b"ok"))
    assert all(f.done() for f in first) and mux.deadlines_pending() == 2010
    last = mux.request(pub, "c", b"", None, 5.0)
    assert mux.deadlines_pending() == 11  # the 2,000 answered ones left; ten and the new one wait
    for i in range(11):
        mux(response(core, f"{PREFIX}{2001 + i}", b"%d" % i))
    assert [(await f).data for f in [*then, last]] == [b"%d" % i for i in range(11)]
    assert mux.waiters == {}
    after = mux.request(pub, "d", b"", None, 5.0)
    assert mux.deadlines_pending() == 1
    mux.fail_all(ConnectionError("done"))  # cancels the 5 s timer
    with pytest.raises(ConnectionError):
        await after
    pub._wb.take()


async def test_a_refused_publish_records_nothing(core: ModuleType) -> None:
    loop = asyncio.get_running_loop()
    pub, mux = publisher(core, loop), mux_of(core, loop)
    with pytest.raises(BadSubjectError):
        mux.request(pub, "bad subject", b"", None, 1.0)
    assert mux.waiters == {} and mux.deadlines_pending() == 0 and pub._wb.pending == 0


async def test_cancelled_request_ignores_its_response(core: ModuleType) -> None:
    loop = asyncio.get_running_loop()
    pub, mux = publisher(core, loop), mux_of(core, loop)
    future = mux.request(pub, "svc", b"", None, 1.0)
    future.cancel()
    mux(response(core, PREFIX + "1", b"too late"))
    assert future.cancelled() and mux.waiters == {}


def ack_of(msg: Any, subject: str) -> tuple[str, bytes]:
    """A stand-in for the PubAck parse: what the future of a pipelined publish resolves with."""
    if msg.data == b"refused":
        raise ValueError(f"refused on {subject}")
    return subject, msg.data


async def test_pipelined_publishes_are_counted_in_their_window_until_settled(core: ModuleType) -> None:
    loop = asyncio.get_running_loop()
    pub, mux = publisher(core, loop), mux_of(core, loop)
    window = core.AckWindow(loop, 2)
    assert (window.pending, window.max_pending, window.full) == (0, 2, False)
    first = mux.request(pub, "js.a", b"1", None, 1.0, window, ack_of)
    second = mux.request(pub, "js.b", b"2", None, 1.0, window, ack_of)
    assert (window.pending, window.full) == (2, True)
    room, idle = window.room(), window.idle()
    assert window.room() is room and not room.done()
    mux(response(core, PREFIX + "1", b"seq 1"))
    assert await first == ("js.a", b"seq 1")  # the transform's result
    assert room.done() and not idle.done() and window.pending == 1
    mux(response(core, PREFIX + "2", b"refused"))
    with pytest.raises(ValueError, match=r"refused on js\.b"):  # what the transform raises fails the future
        await second
    assert idle.done() and window.pending == 0 and mux.waiters == {}
    assert window.room() is not room  # a new wait gets a new future


async def test_a_pipelined_publish_is_settled_by_its_deadline_or_by_fail_all(core: ModuleType) -> None:
    loop = asyncio.get_running_loop()
    pub, mux = publisher(core, loop), mux_of(core, loop)
    window = core.AckWindow(loop, 10)
    late = mux.request(pub, "js.late", b"", None, 0.02, window, ack_of)
    with pytest.raises(NatsTimeoutError, match=r"no publish acknowledgement for 'js\.late'"):
        await late
    assert window.pending == 0 and mux.waiters == {}
    cancelled = mux.request(pub, "js.x", b"", None, 1.0, window, ack_of)
    cancelled.cancel()  # the caller gave up: its acknowledgement still leaves the window when it comes
    mux(response(core, PREFIX + "2", b"seq 2"))
    assert window.pending == 0
    dropped = mux.request(pub, "js.y", b"", None, 1.0, window, ack_of)
    idle = window.idle()
    mux.fail_all(ConnectionError("closed"))
    assert window.pending == 0 and idle.done()
    # a future nobody awaits is marked retrieved (no "exception was never retrieved" report for a close)
    assert isinstance(dropped.exception(), ConnectionError)


async def test_other_waiters_get_every_response_until_they_leave(core: ModuleType) -> None:
    loop = asyncio.get_running_loop()
    mux = mux_of(core, loop)

    class Many:
        def __init__(self) -> None:
            self.got: list[bytes] = []
            self.error: BaseException | None = None

        def deliver(self, msg: Any) -> None:
            self.got.append(msg.data)

        def fail(self, error: BaseException) -> None:
            self.error = error

    many = Many()
    token = mux.next_token()
    mux.add(token, many)
    mux(response(core, PREFIX + token, b"a"))
    mux(response(core, PREFIX + token, b"b"))
    assert many.got == [b"a", b"b"]
    mux.forget(token)
    mux(response(core, PREFIX + token, b"c"))
    assert many.got == [b"a", b"b"]
    mux.add(token, many)
    error = ConnectionError("closed")
    mux.fail_all(error)
    assert many.error is error and mux.waiters == {}


async def test_respond_publishes_to_the_reply_subject(core: ModuleType) -> None:
    loop = asyncio.get_running_loop()
    pub = publisher(core, loop)
    msg = core.MsgBase()
    msg._init("svc", b"q", "_INBOX.r", None, 1, weakref.ref(pub))
    assert msg.respond(b"answer") is True
    assert msg.respond("again", headers=Headers.from_dict({"K": "v"}), reply="r2") is True
    assert bytes(pub._wb.take()) == (
        b"PUB _INBOX.r 6\r\nanswer\r\nHPUB _INBOX.r r2 18 23\r\nNATS/1.0\r\nK: v\r\n\r\nagain\r\n"
    )
    no_reply = core.MsgBase()
    no_reply._init("svc", b"q", None, None, 1, weakref.ref(pub))
    assert no_reply.respond(b"x") is False
    unattached = core.MsgBase()
    unattached._init("svc", b"q", "_INBOX.r", None, 0, None)
    assert unattached.respond(b"x") is False


def test_received_reports_protocol_errors_to_the_handler(core: ModuleType) -> None:
    class Handler(Recorder):
        def on_protocol_error(self, error: ProtocolError) -> None:
            self.events.append(("protocol_error", str(error)))

    handler = Handler()
    parser = core.Parser(handler)
    data = b"PING\r\nBOGUS\r\n"
    parser.get_buffer(len(data))[: len(data)] = data
    parser.received(len(data))  # does not raise
    assert handler.events[0] == ("ping",)
    kind, text = handler.events[1]
    assert kind == "protocol_error" and "protocol error at stream position 6" in text


# -- a request's future, to asyncio and to the cyclic collector ----------------------------------------------------


def compiled(core: ModuleType) -> bool:
    return core.__name__.endswith("._protocol")


async def test_a_request_future_works_with_asyncio_helpers(core: ModuleType) -> None:
    loop = asyncio.get_running_loop()
    pub, mux = publisher(core, loop), mux_of(core, loop)
    future = mux.request(pub, "svc", b"", None, 5.0)
    assert asyncio.isfuture(future) and future.get_loop() is loop and not future.done()
    with pytest.raises(asyncio.InvalidStateError):
        future.result()
    seen: list[tuple[Any, str]] = []
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="none")

    def note(done: Any) -> None:
        seen.append((done, marker.get()))

    def never(done: Any) -> None:
        seen.append((done, "removed"))

    future.add_done_callback(note)
    future.add_done_callback(never)
    context = contextvars.copy_context()
    context.run(marker.set, "given")
    future.add_done_callback(note, context=context)
    assert future.remove_done_callback(never) == 1 and future.remove_done_callback(never) == 0
    shielded = asyncio.shield(future)
    waited = asyncio.ensure_future(asyncio.wait_for(future, 5.0))
    mux(response(core, PREFIX + "1", b"ok"))
    answer = await shielded
    assert answer.data == b"ok" and (await waited) is answer
    assert future.result() is answer and future.exception() is None and not future.cancelled()
    await asyncio.sleep(0)
    assert [(done is future, where) for done, where in seen] == [(True, "none"), (True, "given")]
    future.add_done_callback(note)  # once settled, a callback is called soon, like any future's
    await asyncio.sleep(0)
    assert len(seen) == 3
    other = mux.request(pub, "other", b"", None, 0.01)
    done, pending = await asyncio.wait([future, other])
    assert done == {future, other} and not pending and isinstance(other.exception(), NatsTimeoutError)


async def test_a_cancelled_wait_cancels_the_request_and_says_why(core: ModuleType) -> None:
    loop = asyncio.get_running_loop()
    pub, mux = publisher(core, loop), mux_of(core, loop)
    future = mux.request(pub, "svc", b"", None, 5.0)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(future, 0.01)
    assert future.cancelled() and not future.cancel()
    with pytest.raises(asyncio.CancelledError):
        future.result()
    second = mux.request(pub, "svc", b"", None, 5.0)
    assert second.cancel("given up")
    with pytest.raises(asyncio.CancelledError, match="given up"):
        await second
    with pytest.raises(asyncio.CancelledError):
        second.exception()

    async def waits() -> Any:
        return await mux.request(pub, "svc", b"", None, 5.0)

    task = asyncio.ensure_future(waits())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for token in ("1", "2", "3"):
        mux(response(core, PREFIX + token, b"too late"))  # dropped: nobody waits
    assert mux.waiters == {}


async def test_a_request_future_steps_like_an_asyncio_future(core: ModuleType) -> None:
    # what ``yield from future`` (and an await that does not use am_send) sees: itself while waiting, then its result
    loop = asyncio.get_running_loop()
    pub, mux = publisher(core, loop), mux_of(core, loop)
    future = mux.request(pub, "svc", b"", None, 5.0)
    steps = future.__await__()
    assert next(steps) is future and future._asyncio_future_blocking
    future._asyncio_future_blocking = False
    answer = response(core, PREFIX + "1", b"ok")
    mux(answer)
    with pytest.raises(StopIteration) as stop:
        next(steps)
    assert stop.value.value is answer
    failed = mux.request(pub, "svc", b"", None, 0.01)
    with pytest.raises(NatsTimeoutError):
        await failed
    with pytest.raises(NatsTimeoutError):
        next(failed.__await__())
    assert isinstance(failed.exception(), NatsTimeoutError)


async def test_a_waiting_request_is_off_the_collectors_lists_until_the_inbox_lets_go(core: ModuleType) -> None:
    # with 20,000 requests in flight every full collection would walk each future; a released one is tracked again
    loop = asyncio.get_running_loop()
    pub, mux = publisher(core, loop), mux_of(core, loop)
    answered, failed, cancelled, expired = (mux.request(pub, "svc", b"", None, t) for t in (5.0, 0.01, 5.0, 0.02))
    for future in (answered, failed, cancelled, expired):
        assert gc.is_tracked(future) is not compiled(core)
    mux(response(core, PREFIX + "1", b"ok"))
    cancelled.cancel()
    expired.cancel()
    assert gc.is_tracked(cancelled) is not compiled(core)  # the inbox still holds it, until its answer or deadline
    with pytest.raises(NatsTimeoutError):
        await failed
    mux(response(core, PREFIX + "3", b"too late"))
    await asyncio.sleep(0.03)
    assert mux.waiters == {}  # answered ones stay queued until their deadline, holding nothing
    assert all(gc.is_tracked(future) for future in (answered, failed, cancelled, expired))
    closing = mux.request(pub, "svc", b"", None, 5.0)
    mux.fail_all(ConnectionError("closed"))
    assert gc.is_tracked(closing)
    with pytest.raises(ConnectionError):
        await closing


async def test_a_cycle_through_a_failed_requests_traceback_is_collected(core: ModuleType) -> None:
    # the exception's traceback leads to the frame that holds the future, which holds the exception
    loop = asyncio.get_running_loop()
    pub, mux = publisher(core, loop), mux_of(core, loop)

    class Holder:
        pass

    async def fails() -> Any:
        holder = Holder()
        future = mux.request(pub, "svc", b"", None, 0.01)
        try:
            await future
        except NatsTimeoutError as exc:
            return weakref.ref(holder), exc

    ref, exc = await fails()
    del exc
    for _ in range(3):
        await asyncio.sleep(0)  # the loop lets go of the handles it ran
    gc.collect()
    assert ref() is None


async def test_a_failure_nobody_reads_is_reported_to_the_loop_as_an_asyncio_futures_is(core: ModuleType) -> None:
    loop = asyncio.get_running_loop()
    pub, mux = publisher(core, loop), mux_of(core, loop)
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        unread = mux.request(pub, "svc", b"", None, 0.01)
        read = mux.request(pub, "svc", b"", None, 0.01)
        await asyncio.wait([unread, read])
        assert isinstance(read.exception(), NatsTimeoutError)
        del unread, read
        gc.collect()
        assert len(reported) == 1
        assert "exception was never retrieved" in reported[0]["message"]
        assert isinstance(reported[0]["exception"], NatsTimeoutError)
    finally:
        loop.set_exception_handler(None)
