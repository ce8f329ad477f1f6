"""Request/reply against a real nats-server: ``request``, ``request_many``, ``Msg.respond``,
``respond_message``, the shared ("muxed") reply subscription and the errors of each."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import cnats
from cnats import Headers, Msg, NatsConnection, RequestStrategy
from cnats.errors import ConnectionClosedError, InvalidOptionError, NatsTimeoutError, NoRespondersError
from cnats.testing import NatsServer

pytestmark = pytest.mark.nats_server(jetstream=False)


# -- helpers ---------------------------------------------------------------------------------------------------


async def eventually(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``pred`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def _get_json(url: str) -> Any:
    # straight to loopback: an http_proxy in the environment must not intercept the monitoring request
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as resp:
        return json.loads(resp.read())


async def server_subscriptions(server: NatsServer, nc: NatsConnection) -> list[str]:
    """The subjects the server holds for ``nc`` (monitoring ``/connz?subs=1``, matched on the client id)."""
    assert nc.info is not None
    cid = nc.info.client_id
    data = await asyncio.to_thread(_get_json, f"{server.monitor_urls[0]}/connz?subs=1&cid={cid}")
    conns = [c for c in data["connections"] if c["cid"] == cid]
    assert len(conns) == 1, data
    return list(conns[0].get("subscriptions_list", []))


async def collect(it: AsyncIterator[Msg]) -> list[Msg]:
    return [m async for m in it]


def echo_responder(prefix: bytes) -> Callable[[Msg], None]:
    def respond(msg: Msg) -> None:
        msg.respond(prefix + msg.data)

    return respond


# -- request: answers ------------------------------------------------------------------------------------------


async def test_request_answered_by_plain_callback_responder(nc: NatsConnection, nc2: NatsConnection) -> None:
    nc2.subscribe("svc.plain", callback=echo_responder(b"re:"))
    await nc2.flush()
    msg = await nc.request("svc.plain", b"hello", timeout=2)
    assert msg.data == b"re:hello"
    assert msg.subject.startswith("_INBOX.")


async def test_request_answered_by_coroutine_callback_responder(nc: NatsConnection, nc2: NatsConnection) -> None:
    async def respond(msg: Msg) -> None:
        await asyncio.sleep(0)
        assert msg.respond(msg.data.upper()) is True

    nc2.subscribe("svc.coro", callback=respond)
    await nc2.flush()
    msg = await nc.request("svc.coro", "hello", timeout=2)
    assert msg.data == b"HELLO"


async def test_request_answered_by_responder_on_same_connection(nc: NatsConnection) -> None:
    nc.subscribe("svc.self", callback=echo_responder(b"me:"))
    msg = await nc.request("svc.self", b"x", timeout=2)
    assert msg.data == b"me:x"


async def test_concurrent_requests_share_one_wildcard_inbox_subscription(
    nats_server: NatsServer, nc: NatsConnection, nc2: NatsConnection
) -> None:
    async def respond(msg: Msg) -> None:
        # answer in a scrambled order, so that routing by arrival order would give wrong answers
        await asyncio.sleep((hash(msg.data) % 7) / 1000)
        msg.respond(b"answer-" + msg.data)

    nc2.subscribe("svc.many", callback=respond)
    await nc2.flush()

    payloads = [str(i).encode() for i in range(50)]
    replies = await asyncio.gather(*(nc.request("svc.many", p, timeout=5) for p in payloads))
    assert [r.data for r in replies] == [b"answer-" + p for p in payloads]

    inbox_subs = [s for s in await server_subscriptions(nats_server, nc) if s.startswith("_INBOX.")]
    assert len(inbox_subs) == 1, inbox_subs
    assert inbox_subs[0].endswith(".*")
    # every answer came in on that one wildcard
    prefix = inbox_subs[0][:-1]
    assert all(r.subject.startswith(prefix) for r in replies)
    assert len({r.subject for r in replies}) == 50

    # a second batch reuses the same subscription
    await asyncio.gather(*(nc.request("svc.many", p, timeout=5) for p in payloads[:10]))
    assert [s for s in await server_subscriptions(nats_server, nc) if s.startswith("_INBOX.")] == inbox_subs


async def test_mux_inbox_uses_the_connection_inbox_prefix(nats_server: NatsServer, nc2: NatsConnection) -> None:
    nc2.subscribe("svc.prefix", callback=echo_responder(b""))
    await nc2.flush()
    conn = await cnats.connect(nats_server.url, inbox_prefix="_MY.inbox")
    try:
        msg = await conn.request("svc.prefix", b"p", timeout=2)
        assert msg.subject.startswith("_MY.inbox.")
    finally:
        await conn.close()


# -- request: no_mux -----------------------------------------------------------------------------------------


async def test_no_mux_request_uses_a_fresh_inbox_per_request(
    nats_server: NatsServer, nc: NatsConnection, nc2: NatsConnection
) -> None:
    seen_replies: list[str] = []

    def respond(msg: Msg) -> None:
        assert msg.reply is not None
        seen_replies.append(msg.reply)
        msg.respond(b"nm:" + msg.data)

    nc2.subscribe("svc.nomux", callback=respond)
    await nc2.flush()

    first = await nc.request("svc.nomux", b"1", timeout=2, no_mux=True)
    second = await nc.request("svc.nomux", b"2", timeout=2, no_mux=True)
    assert (first.data, second.data) == (b"nm:1", b"nm:2")
    # "_INBOX.<nuid>": a plain inbox, not a token under the muxed wildcard "_INBOX.<nuid>.*"
    assert len(set(seen_replies)) == 2
    assert all(r.startswith("_INBOX.") and r.count(".") == 1 for r in seen_replies)
    # the dedicated subscriptions are gone once the requests are answered
    await nc.flush()
    subs = await server_subscriptions(nats_server, nc)
    assert not [s for s in subs if s.startswith("_INBOX.")], subs


async def test_no_mux_request_with_explicit_reply_subject(nc: NatsConnection, nc2: NatsConnection) -> None:
    seen: list[str | None] = []

    def respond(msg: Msg) -> None:
        seen.append(msg.reply)
        msg.respond(b"to-you")

    nc2.subscribe("svc.reply", callback=respond)
    await nc2.flush()
    msg = await nc.request("svc.reply", b"", timeout=2, no_mux=True, reply="my.own.reply.subject")
    assert msg.data == b"to-you"
    assert msg.subject == "my.own.reply.subject"
    assert seen == ["my.own.reply.subject"]


async def test_reply_without_no_mux_is_an_invalid_option(nc: NatsConnection) -> None:
    with pytest.raises(InvalidOptionError, match="reply can only be used with noMux"):
        await nc.request("svc.x", b"", reply="my.reply")


@pytest.mark.parametrize("timeout", [0, -1, -0.5])
async def test_request_timeout_not_positive_is_an_invalid_option(nc: NatsConnection, timeout: float) -> None:
    with pytest.raises(InvalidOptionError):
        await nc.request("svc.x", b"", timeout=timeout)


# -- request: errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("no_mux", [False, True])
async def test_request_without_subscriber_raises_no_responders_quickly(nc: NatsConnection, no_mux: bool) -> None:
    start = time.monotonic()
    with pytest.raises(NoRespondersError) as info:
        await nc.request("nobody.listens", b"?", timeout=5, no_mux=no_mux)
    assert time.monotonic() - start < 2.5
    assert info.value.code == "503"


@pytest.mark.parametrize("no_mux", [False, True])
async def test_request_to_silent_subscriber_times_out_after_the_timeout(
    nc: NatsConnection, nc2: NatsConnection, no_mux: bool
) -> None:
    nc2.subscribe("svc.silent")
    await nc2.flush()
    start = time.monotonic()
    with pytest.raises(NatsTimeoutError) as info:
        await nc.request("svc.silent", b"?", timeout=0.4, no_mux=no_mux)
    elapsed = time.monotonic() - start
    assert isinstance(info.value, TimeoutError)
    assert 0.35 <= elapsed < 2.0


async def test_concurrent_requests_with_different_timeouts_each_expire_on_time(
    nc: NatsConnection, nc2: NatsConnection
) -> None:
    """Timeouts share one timer per timeout value: a short one made after a long one still expires first, and an
    answered request in front of the queue does not hold back the ones behind it."""
    nc2.subscribe("svc.silent2")
    nc2.subscribe("svc.echo2", callback=lambda m: m.respond(m.data))
    await nc2.flush()
    loop = asyncio.get_running_loop()
    start = loop.time()
    ended: dict[str, float] = {}

    async def timed(name: str, subject: str, timeout: float) -> None:
        try:
            await nc.request(subject, b"?", timeout=timeout)
            ended[name] = -1.0
        except NatsTimeoutError as exc:
            assert f"after {timeout} s" in str(exc)
            ended[name] = loop.time() - start

    await asyncio.gather(
        timed("answered", "svc.echo2", 0.3),
        timed("long", "svc.silent2", 0.6),
        timed("short", "svc.silent2", 0.15),
        timed("same-as-answered", "svc.silent2", 0.3),
    )
    assert ended["answered"] == -1.0
    assert 0.1 <= ended["short"] < ended["same-as-answered"] < ended["long"] < 2.0
    assert ended["same-as-answered"] >= 0.25 and ended["long"] >= 0.55


async def test_answered_requests_do_not_accumulate_deadlines(nc: NatsConnection, nc2: NatsConnection) -> None:
    nc2.subscribe("svc.echo3", callback=lambda m: m.respond(m.data))
    await nc2.flush()
    for _ in range(500):
        await nc.request("svc.echo3", b"x", timeout=30)
    assert nc._mux.deadlines_pending() <= 1  # only the last one may still wait to be dropped


async def test_late_answer_to_timed_out_request_is_not_given_to_the_next_request(
    nc: NatsConnection, nc2: NatsConnection
) -> None:
    async def slow(msg: Msg) -> None:
        await asyncio.sleep(float(msg.data))
        msg.respond(b"answer after " + msg.data)

    nc2.subscribe("svc.slow", callback=slow)  # one coroutine callback at a time: answers come in order
    await nc2.flush()
    with pytest.raises(NatsTimeoutError):
        await nc.request("svc.slow", b"0.3", timeout=0.1)
    # the late answer to the first request arrives while this one is pending
    msg = await nc.request("svc.slow", b"0.1", timeout=3)
    assert msg.data == b"answer after 0.1"


async def test_request_on_closed_connection_raises_connection_closed(nats_server: NatsServer) -> None:
    conn = await cnats.connect(nats_server.url)
    await conn.close()
    with pytest.raises(ConnectionClosedError):
        await conn.request("svc.x", b"", timeout=1)
    with pytest.raises(ConnectionClosedError):
        await conn.request("svc.x", b"", timeout=1, no_mux=True)
    with pytest.raises(ConnectionClosedError):
        await conn.request_many("svc.x", b"")


@pytest.mark.parametrize("no_mux", [False, True])
async def test_pending_request_fails_with_connection_closed_when_connection_closes(
    nats_server: NatsServer, nc2: NatsConnection, no_mux: bool
) -> None:
    received: list[Msg] = []
    nc2.subscribe("svc.hold", callback=received.append)
    await nc2.flush()
    conn = await cnats.connect(nats_server.url)
    try:
        task = asyncio.ensure_future(conn.request("svc.hold", b"wait", timeout=10, no_mux=no_mux))
        await eventually(lambda: len(received) == 1)
        await conn.close()
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(task, 5)
    finally:
        await conn.close()


@pytest.mark.parametrize("no_mux", [False, True])
async def test_pending_request_many_ends_when_the_connection_closes(
    nats_server: NatsServer, nc2: NatsConnection, no_mux: bool
) -> None:
    received: list[Msg] = []

    def respond_once(msg: Msg) -> None:
        received.append(msg)
        msg.respond(b"first")

    nc2.subscribe("svc.hold.many", callback=respond_once)
    await nc2.flush()
    conn = await cnats.connect(nats_server.url)
    try:
        it = await conn.request_many("svc.hold.many", b"", max_wait=10, no_mux=no_mux)
        first = await asyncio.wait_for(it.__anext__(), 5)
        assert first.data == b"first"
        start = time.monotonic()
        await conn.close()
        with pytest.raises(StopAsyncIteration):  # a close asked for ends iterators normally
            await asyncio.wait_for(it.__anext__(), 3)
        assert time.monotonic() - start < 2.5  # ended by the close, not by max_wait
    finally:
        await conn.close()


async def test_many_pending_requests_all_fail_when_connection_closes(
    nats_server: NatsServer, nc2: NatsConnection
) -> None:
    received: list[Msg] = []
    nc2.subscribe("svc.hold", callback=received.append)
    await nc2.flush()
    conn = await cnats.connect(nats_server.url)
    try:
        tasks = [asyncio.ensure_future(conn.request("svc.hold", b"w", timeout=10)) for _ in range(5)]
        await eventually(lambda: len(received) == 5)
        await conn.close()
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
        assert all(isinstance(r, ConnectionClosedError) for r in results), results
    finally:
        await conn.close()


# -- headers on requests -------------------------------------------------------------------------------------


async def test_request_headers_reach_responder_and_response_headers_reach_requester(
    nc: NatsConnection, nc2: NatsConnection
) -> None:
    seen: list[Headers | None] = []

    def respond(msg: Msg) -> None:
        seen.append(msg.headers)
        h = Headers()
        h.append("X-Answer", "42")
        h.append("X-Echo", msg.headers.get("X-Question") if msg.headers else "")
        msg.respond(b"ok", headers=h)

    nc2.subscribe("svc.hdr", callback=respond)
    await nc2.flush()
    req = Headers()
    req.append("X-Question", "life")
    req.append("X-Multi", "a")
    req.append("X-Multi", "b")
    msg = await nc.request("svc.hdr", b"q", timeout=2, headers=req)

    assert seen[0] is not None
    assert seen[0].get("X-Question") == "life"
    assert seen[0].values("X-Multi") == ["a", "b"]
    assert msg.data == b"ok"
    assert msg.headers is not None
    assert msg.headers.get("X-Answer") == "42"
    assert msg.headers.get("X-Echo") == "life"


async def test_request_headers_given_as_mapping(nc: NatsConnection, nc2: NatsConnection) -> None:
    def respond(msg: Msg) -> None:
        assert msg.headers is not None
        msg.respond(",".join(msg.headers.values("K")).encode(), headers={"R": ["1", "2"]})

    nc2.subscribe("svc.maphdr", callback=respond)
    await nc2.flush()
    msg = await nc.request("svc.maphdr", b"", timeout=2, headers={"K": ["x", "y"]}, no_mux=True)
    assert msg.data == b"x,y"
    assert msg.headers is not None
    assert msg.headers.values("R") == ["1", "2"]


async def test_response_without_headers_has_headers_none(nc: NatsConnection, nc2: NatsConnection) -> None:
    nc2.subscribe("svc.nohdr", callback=echo_responder(b""))
    await nc2.flush()
    msg = await nc.request("svc.nohdr", b"plain", timeout=2)
    assert msg.headers is None


# -- respond / respond_message -------------------------------------------------------------------------------


async def test_msg_respond_returns_false_without_reply(nc: NatsConnection) -> None:
    sub = nc.subscribe("no.reply")
    await nc.flush()
    nc.publish("no.reply", b"fire and forget")
    msg = await sub.next_msg(timeout=2)
    assert msg.reply is None
    assert msg.respond(b"nobody to answer") is False


async def test_msg_respond_returns_false_for_user_built_message() -> None:
    assert Msg("some.subject", b"x").respond(b"y") is False


async def test_respond_message_publishes_data_and_headers_to_reply(nc: NatsConnection, nc2: NatsConnection) -> None:
    results: list[bool] = []

    def respond(msg: Msg) -> None:
        assert msg.reply is not None
        answer = Msg("ignored.subject", b"via respond_message", reply=msg.reply, headers={"X-Via": "respond_message"})
        results.append(nc2.respond_message(answer))

    nc2.subscribe("svc.rm", callback=respond)
    await nc2.flush()
    msg = await nc.request("svc.rm", b"", timeout=2)
    assert results == [True]
    assert msg.data == b"via respond_message"
    assert msg.headers is not None
    assert msg.headers.get("X-Via") == "respond_message"


async def test_respond_message_returns_false_without_reply(nc: NatsConnection) -> None:
    sub = nc.subscribe("rm.target")
    await nc.flush()
    assert nc.respond_message(Msg("rm.target", b"x")) is False
    await nc.flush()
    with pytest.raises(NatsTimeoutError):
        await sub.next_msg(timeout=0.1)


# -- request_many ---------------------------------------------------------------------------------------------


def start_responders(conn: NatsConnection, subject: str, count: int) -> None:
    for i in range(count):
        conn.subscribe(subject, callback=echo_responder(f"r{i}:".encode()))


@pytest.mark.parametrize("no_mux", [False, True])
async def test_request_many_timer_collects_all_responses_within_max_wait(
    nc: NatsConnection, nc2: NatsConnection, no_mux: bool
) -> None:
    start_responders(nc2, "many.timer", 3)
    await nc2.flush()
    start = time.monotonic()
    msgs = await asyncio.wait_for(
        collect(await nc.request_many("many.timer", b"q", max_wait=0.5, no_mux=no_mux)),
        5,
    )
    elapsed = time.monotonic() - start
    assert sorted(m.data for m in msgs) == [b"r0:q", b"r1:q", b"r2:q"]
    assert 0.45 <= elapsed < 2.5


@pytest.mark.parametrize("no_mux", [False, True])
async def test_request_many_count_stops_after_max_messages(
    nc: NatsConnection, nc2: NatsConnection, no_mux: bool
) -> None:
    start_responders(nc2, "many.count", 5)
    await nc2.flush()
    start = time.monotonic()
    it = await nc.request_many(
        "many.count", b"q", strategy=RequestStrategy.COUNT, max_messages=2, max_wait=5, no_mux=no_mux
    )
    msgs = await asyncio.wait_for(collect(it), 5)
    assert len(msgs) == 2
    assert time.monotonic() - start < 2.5


async def test_request_many_count_ends_at_max_wait_with_fewer_responses(
    nc: NatsConnection, nc2: NatsConnection
) -> None:
    start_responders(nc2, "many.count.few", 2)
    await nc2.flush()
    start = time.monotonic()
    it = await nc.request_many("many.count.few", b"q", strategy=RequestStrategy.COUNT, max_messages=10, max_wait=0.4)
    msgs = await asyncio.wait_for(collect(it), 5)
    assert len(msgs) == 2
    assert 0.35 <= time.monotonic() - start < 2.5


@pytest.mark.parametrize("no_mux", [False, True])
async def test_request_many_jitter_timer_stops_jitter_after_last_response(
    nc: NatsConnection, nc2: NatsConnection, no_mux: bool
) -> None:
    start_responders(nc2, "many.jitter", 3)
    await nc2.flush()
    start = time.monotonic()
    it = await nc.request_many(
        "many.jitter", b"q", strategy=RequestStrategy.JITTER_TIMER, jitter=0.2, max_wait=5, no_mux=no_mux
    )
    msgs = await asyncio.wait_for(collect(it), 6)
    elapsed = time.monotonic() - start
    assert len(msgs) == 3
    assert 0.15 <= elapsed < 2.0  # about jitter after the last response, far from max_wait


async def test_request_many_jitter_timer_waits_max_wait_for_first_response(
    nc: NatsConnection, nc2: NatsConnection
) -> None:
    async def late(msg: Msg) -> None:
        await asyncio.sleep(0.4)
        msg.respond(b"late")

    nc2.subscribe("many.jitter.late", callback=late)
    await nc2.flush()
    it = await nc.request_many("many.jitter.late", b"q", strategy=RequestStrategy.JITTER_TIMER, jitter=0.1, max_wait=3)
    msgs = await asyncio.wait_for(collect(it), 5)
    assert [m.data for m in msgs] == [b"late"]


@pytest.mark.parametrize("no_mux", [False, True])
async def test_request_many_sentinel_stops_after_empty_payload_yielded_last(
    nc: NatsConnection, nc2: NatsConnection, no_mux: bool
) -> None:
    async def stream(msg: Msg) -> None:
        for chunk in (b"part1", b"part2", b"part3"):
            msg.respond(chunk)
        msg.respond(b"")
        await asyncio.sleep(0.05)
        msg.respond(b"after-sentinel")

    nc2.subscribe("many.sentinel", callback=stream)
    await nc2.flush()
    start = time.monotonic()
    it = await nc.request_many("many.sentinel", b"q", strategy=RequestStrategy.SENTINEL_MSG, max_wait=5, no_mux=no_mux)
    msgs = await asyncio.wait_for(collect(it), 6)
    assert [m.data for m in msgs] == [b"part1", b"part2", b"part3", b""]
    assert time.monotonic() - start < 2.5


@pytest.mark.parametrize("no_mux", [False, True])
async def test_request_many_without_responders_raises_no_responders(nc: NatsConnection, no_mux: bool) -> None:
    start = time.monotonic()
    it = await nc.request_many("many.nobody", b"q", max_wait=5, no_mux=no_mux)
    with pytest.raises(NoRespondersError):
        await asyncio.wait_for(collect(it), 6)
    assert time.monotonic() - start < 2.5


@pytest.mark.parametrize("max_wait", [0, -1])
async def test_request_many_max_wait_not_positive_is_an_invalid_option(nc: NatsConnection, max_wait: float) -> None:
    with pytest.raises(InvalidOptionError):
        await nc.request_many("many.x", b"", max_wait=max_wait)


async def test_request_many_headers_reach_responders(nc: NatsConnection, nc2: NatsConnection) -> None:
    def respond(msg: Msg) -> None:
        assert msg.headers is not None
        msg.respond(msg.headers.get("X-Id").encode(), headers={"X-Seen": "yes"})

    nc2.subscribe("many.hdr", callback=respond)
    nc2.subscribe("many.hdr", callback=respond)
    await nc2.flush()
    it = await nc.request_many(
        "many.hdr", b"", strategy=RequestStrategy.COUNT, max_messages=2, max_wait=3, headers={"X-Id": "abc"}
    )
    msgs = await asyncio.wait_for(collect(it), 5)
    assert [m.data for m in msgs] == [b"abc", b"abc"]
    assert all(m.headers is not None and m.headers.get("X-Seen") == "yes" for m in msgs)


async def test_request_many_and_request_share_the_mux_subscription(
    nats_server: NatsServer, nc: NatsConnection, nc2: NatsConnection
) -> None:
    start_responders(nc2, "many.mux", 2)
    await nc2.flush()
    single, many = await asyncio.gather(
        nc.request("many.mux", b"one", timeout=3),
        collect(await nc.request_many("many.mux", b"all", strategy=RequestStrategy.COUNT, max_messages=2)),
    )
    assert single.data in (b"r0:one", b"r1:one")
    assert sorted(m.data for m in many) == [b"r0:all", b"r1:all"]
    inbox_subs = [s for s in await server_subscriptions(nats_server, nc) if s.startswith("_INBOX.")]
    assert len(inbox_subs) == 1, inbox_subs
