"""The JetStream delivery classes both cores hold (``_delivery.pxi`` compiled, ``_delivery_py.py`` its twin):
``JsMsgBase`` (reply-subject parsing, acks), ``OrderedCursor``, ``PullerBase`` (per-message pull accounting),
``MessagesBase`` (the iterator's fast path) and ``KvEntryBase``/``KvWatchBase`` (a Key-Value watcher's entries). No
server and no connection: a puller subclass records the Python hooks the core calls back, a watcher subclass
records kv.py's hooks, and acks land in the write buffer of a socketless publisher.

The compiled ``OrderedCursor.check`` is a cdef method, so the cursor is exercised through a puller's ``_cursor``.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from types import ModuleType
from typing import Any

import pytest
from helpers.protocol import load_core, make_parser, publisher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnats.errors import InvalidOptionError, OutboundBufferLimitError
from cnats.headers import Headers, parse_header_block

CYTHON = load_core("cython")
PYTHON = load_core("python")

TS = 1_700_000_000_123_456_789  # a nanosecond timestamp: 19 digits
INT64_MAX = 2**63 - 1


def ack_reply(
    stream: str = "ORDERS",
    consumer: str = "worker",
    delivered: int | str = 1,
    sseq: int | str = 1,
    dseq: int | str = 1,
    ts: int | str = TS,
    pending: int | str = 0,
    *,
    domain: str | None = None,
    account: str = "ACCHASH",
    token: str | None = "rnd",
) -> str:
    """A ``$JS.ACK`` reply subject: the 9-token form, or (with ``domain``) the 11/12-token one."""
    numbers = [str(n) for n in (delivered, sseq, dseq, ts, pending)]
    if domain is None:
        return ".".join(["$JS", "ACK", stream, consumer, *numbers])
    tail = [token] if token is not None else []
    return ".".join(["$JS", "ACK", domain, account, stream, consumer, *numbers, *tail])


@functools.cache
def jsmsg_type(core: ModuleType) -> type:
    class J(core.JsMsgBase):  # type: ignore[name-defined,misc]
        __slots__ = ()

    return J


def jsmsg(
    core: ModuleType,
    reply: str | None,
    *,
    subject: str = "orders.new",
    data: bytes = b"payload",
    headers: Headers | None = None,
    nc: Any = None,
) -> Any:
    msg = jsmsg_type(core)()
    msg._init(subject, data, reply, headers, 7, nc, 5.0)
    return msg


def incoming(core: ModuleType, subject: str, data: bytes, reply: str | None, headers: Headers | None = None) -> Any:
    """A message as the parser hands it to a subscription's sink."""
    msg = core.MsgBase()
    msg._init(subject, data, reply, headers, 3, None)
    return msg


def shown(msg: Any) -> tuple[str, bytes, str]:
    return (msg.subject, msg.data, msg.reply)


def status_headers(code: int, description: str = "", pending_msgs: int | None = None) -> Headers:
    block = f"NATS/1.0 {code} {description}".rstrip() + "\r\n"
    if pending_msgs is not None:
        block += f"Nats-Pending-Messages: {pending_msgs}\r\n"
    return parse_header_block((block + "\r\n").encode())


class Waiter:
    """What ``_waiter`` holds: a future the puller resolves when it queues a message."""

    def __init__(self) -> None:
        self.woken = 0

    def done(self) -> bool:
        return self.woken > 0

    def set_result(self, value: Any) -> None:
        assert value is None
        self.woken += 1


@functools.cache
def puller_type(core: ModuleType) -> type:
    """A puller whose hooks record their calls (in ``calls``) and do what ``_Puller`` does to the counters."""

    class Puller(core.PullerBase):  # type: ignore[name-defined,misc]
        calls: list[tuple[Any, ...]]

        def _on_status(self, code: int, description: str, headers: Any) -> None:
            self.calls.append(("status", code, description, headers.to_dict()))

        def _ordered_gap(self, delivery_sequence: int) -> None:
            self.calls.append(("gap", delivery_sequence))
            self._pending_msgs = 0
            self._pending_bytes = 0
            self._cursor.resetting = True

        def _deliver_inline(self, msg: Any) -> None:
            assert type(msg) is jsmsg_type(core)
            self.calls.append(("inline", shown(msg)))
            self.processed += 1
            self._refill()

        def _pull(self, batch: int, max_bytes: int | None) -> None:
            self.calls.append(("pull", batch, max_bytes))
            self._activity += 1
            self._pending_msgs += batch
            if max_bytes is not None:
                self._pending_bytes += max_bytes

        def _end(self, error: BaseException | None) -> None:
            self.calls.append(("end", error))
            self._done = True
            self._refilling = False

        def _queue_done(self) -> None:
            self.calls.append(("queue_done",))

        async def _anext_slow(self) -> Any:
            self.calls.append(("slow",))
            raise StopAsyncIteration

    return Puller


def make_puller(core: ModuleType, **fields: Any) -> Any:
    """A puller with every public field set (a continuous consume of 100 messages, one pull outstanding)."""
    puller = puller_type(core)()
    puller.calls = []
    defaults: dict[str, Any] = {
        "_queue": core.MessageQueue(),
        "_waiter": None,
        "_nc": None,
        "_jsmsg_type": jsmsg_type(core),
        "_js_timeout": 5.0,
        "_adapter": None,
        "_on_arrival": None,
        "_max_bytes": None,
        "_cursor": None,
        "received": 0,
        "processed": 0,
        "_pending_msgs": 100,
        "_pending_bytes": 0,
        "_queued_bytes": 0,
        "_last_size": 0,
        "_max_messages": 100,
        "_threshold_messages": 75,
        "_threshold_bytes": 0,
        "_activity": 0,
        "_done": False,
        "_refilling": True,
        "_continuous": True,
        "_queue_callbacks": False,
    }
    defaults.update(fields)
    for name, value in defaults.items():
        setattr(puller, name, value)
    return puller


def cursor_state(cursor: Any) -> tuple[str, int, int, bool]:
    return (cursor.name, cursor.expected, cursor.next_stream_seq, cursor.resetting)


def ordered_puller(core: ModuleType, name: str = "ord", **fields: Any) -> Any:
    cursor = core.OrderedCursor(0)
    cursor.name = name
    return make_puller(core, _cursor=cursor, **fields)


def messages_of(core: ModuleType, puller: Any) -> Any:
    class Messages(core.MessagesBase):  # type: ignore[name-defined,misc]
        __slots__ = ()

    messages = Messages()
    messages._pull = puller
    return messages


# -- JsMsgBase: the reply subject -------------------------------------------------------------------------------


def test_nine_token_reply_subject(core: ModuleType) -> None:
    msg = jsmsg(core, ack_reply("ORDERS", "worker", 3, 1042, 17, TS, 5))
    assert msg._delivery() == ("", None, "ORDERS", "worker", 3, 1042, 17, TS, 5)
    assert msg.seq == 1042
    assert msg.redelivered is True
    assert msg._position() == (1042, TS, 5)  # what a Key-Value watcher reads for every entry
    assert msg._delivery() == ("", None, "ORDERS", "worker", 3, 1042, 17, TS, 5)  # parsed once, read twice


@pytest.mark.parametrize(
    ("domain", "token", "expected_domain"),
    [("hub", "rnd", "hub"), ("_", "rnd", ""), ("", "rnd", ""), ("hub", None, "hub"), ("hub", "rnd.spare", "hub")],
    ids=["12-tokens", "underscore-domain", "empty-domain", "11-tokens", "13-tokens"],
)
def test_reply_subject_with_domain_and_account(
    core: ModuleType, domain: str, token: str | None, expected_domain: str
) -> None:
    reply = ack_reply("KV_cfg", "ořdered", 1, INT64_MAX, 1, TS, 0, domain=domain, account="AH", token=token)
    msg = jsmsg(core, reply)
    assert msg._delivery() == (expected_domain, "AH", "KV_cfg", "ořdered", 1, INT64_MAX, 1, TS, 0)
    assert msg.seq == INT64_MAX
    assert msg.redelivered is False


def test_dots_are_found_at_every_offset_of_a_word(core: ModuleType) -> None:
    """The dots are searched eight bytes at a time: names of every length put them at every offset of a word."""
    for length in range(1, 20):
        stream, consumer = "S" * length, "ř" * (length % 7 + 1)
        msg = jsmsg(core, ack_reply(stream, consumer, 2, 10 + length, 3, TS, length))
        assert msg._delivery() == ("", None, stream, consumer, 2, 10 + length, 3, TS, length)
        reply = ack_reply(stream, consumer, 1, 5, 6, TS, 0, domain="d" * length, account="AH", token="t" * length)
        assert jsmsg(core, reply)._delivery() == ("d" * length, "AH", stream, consumer, 1, 5, 6, TS, 0)
        with pytest.raises(InvalidOptionError):  # a 14th token
            jsmsg(core, reply + ".x.y")._delivery()


def test_numbers_may_have_leading_zeros_and_nineteen_digits(core: ModuleType) -> None:
    reply = ack_reply("S", "C", "0001", "0000000000000000009", "9999999999999999", "9223372036854775807", "0")
    assert jsmsg(core, reply)._delivery() == ("", None, "S", "C", 1, 9, 9999999999999999, INT64_MAX, 0)
    reply = ack_reply("S", "C", "1", "2", "3", "0" * 30 + "9223372036854775807", "0" * 30)
    assert jsmsg(core, reply)._delivery() == ("", None, "S", "C", 1, 2, 3, INT64_MAX, 0)


@pytest.mark.parametrize(
    "reply",
    [
        "$JS.ACK.S.C.1.2.3.4",  # 8 tokens
        "$JS.ACK.hub.AH.S.C.1.2.3.4",  # 10 tokens
        "$JS.ACK.hub.AH.S.C.1.2.3.4.5.rnd.x.y",  # 14 tokens
        "$JS.NAK.S.C.1.2.3.4.5",
        "$js.ack.S.C.1.2.3.4.5",
        "JS.ACK.S.C.1.2.3.4.5.6",
        "$JSX.ACK.S.C.1.2.3.4",
        "$JS.ACKS.C.1.2.3.4.5.6",
        "$JS.ACK.S.C.1.2..4.5",  # an empty number
        "$JS.ACK.S.C.1.2.3.4.",
        "$JS.ACK.S.C.1.2.x.4.5",
        "$JS.ACK.S.C.1.-2.3.4.5",
        "$JS.ACK.S.C.1.+2.3.4.5",
        "$JS.ACK.S.C.1.2.3.4.\u0665",  # a digit, but not an ASCII one
        "$JS.ACK.S.C.1.².3.4.5",
        "$JS.ACK.S.C.1.2.3.9223372036854775808.5",  # above 2**63 - 1
        "$JS.ACK.S.C.1.2.3.18446744073709551617.5",  # above 2**64
        "_INBOX.abc",
        "",
    ],
)
def test_not_a_jetstream_reply_subject(core: ModuleType, reply: str) -> None:
    msg = jsmsg(core, reply)
    for read in (msg._delivery, msg._position, lambda: msg.seq, lambda: msg.redelivered):
        with pytest.raises(InvalidOptionError, match="not a JetStream reply subject"):
            read()


def test_no_reply_subject(core: ModuleType) -> None:
    msg = jsmsg(core, None)
    assert msg.reply == "" and msg._reply is None
    with pytest.raises(InvalidOptionError):
        msg._delivery()
    assert jsmsg(core, "$JS.ACK.S.C.1.1.1.1.0").reply == "$JS.ACK.S.C.1.1.1.1.0"


def test_fields(core: ModuleType) -> None:
    headers = Headers.from_dict({"Nats-Msg-Id": "m1"})
    nc = object()
    msg = jsmsg(core, "r", subject="a.b", data=b"xyz", headers=headers, nc=nc)
    assert (msg.subject, msg.data, msg.headers, msg.sid, msg._nc, msg._js_timeout) == (
        "a.b",
        b"xyz",
        headers,
        7,
        nc,
        5.0,
    )
    assert msg._acked is False


# -- JsMsgBase: acknowledgements ---------------------------------------------------------------------------------

REPLY = "$JS.ACK.ORDERS.worker.1.5.5.1700000000000000000.0"


async def test_ack_is_published_once(core: ModuleType) -> None:
    pub = publisher(core, asyncio.get_running_loop())
    msg = jsmsg(core, REPLY, nc=pub)
    msg.ack()
    assert bytes(pub._wb.take()) == f"PUB {REPLY} 4\r\n+ACK\r\n".encode()
    assert msg._acked is True
    msg.ack()
    msg._send(b"-NAK")  # any terminal body: the message is already acknowledged
    assert pub._wb.pending == 0


async def test_working_may_repeat_until_the_ack(core: ModuleType) -> None:
    pub = publisher(core, asyncio.get_running_loop())
    msg = jsmsg(core, REPLY, nc=pub)
    msg.working()
    msg.working()
    assert msg._acked is False
    msg.ack()
    msg.working()
    assert bytes(pub._wb.take()) == (f"PUB {REPLY} 4\r\n+WPI\r\n" * 2 + f"PUB {REPLY} 4\r\n+ACK\r\n").encode()


async def test_nothing_is_sent_without_a_reply_subject(core: ModuleType) -> None:
    pub = publisher(core, asyncio.get_running_loop())
    for reply in (None, ""):
        msg = jsmsg(core, reply, nc=pub)
        msg.working()
        msg.ack()
        assert msg._acked is False
    assert pub._wb.pending == 0


def test_ack_through_a_connection_that_is_not_a_publisher_base(core: ModuleType) -> None:
    sent: list[tuple[str, bytes]] = []

    class Connection:
        def publish(self, subject: str, payload: bytes) -> None:
            sent.append((subject, payload))

    msg = jsmsg(core, REPLY, nc=Connection())
    msg.working()
    msg.ack()
    msg.ack()
    assert sent == [(REPLY, b"+WPI"), (REPLY, b"+ACK")]


async def test_a_closed_publisher_refuses_the_ack_which_may_be_tried_again(core: ModuleType) -> None:
    pub = publisher(core, asyncio.get_running_loop())
    pub._pub_open = False
    msg = jsmsg(core, REPLY, nc=pub)
    with pytest.raises(RuntimeError, match="closed"):
        msg.ack()
    assert pub._wb.pending == 0 and not msg._acked  # refused: not counted as acknowledged
    pub._pub_open = True  # (reconnected, say)
    msg.ack()
    msg.ack()
    assert bytes(pub._wb.take()) == b"PUB %s 4\r\n+ACK\r\n" % REPLY.encode()


# -- PullerBase: building and queueing -----------------------------------------------------------------------------


def test_a_message_is_built_queued_and_wakes_the_waiter(core: ModuleType) -> None:
    nc = object()
    waiter = Waiter()
    headers = Headers.from_dict({"K": "v"})
    puller = make_puller(core, _nc=nc, _waiter=waiter, _js_timeout=2.5)
    raw = incoming(core, "orders.new", b"abc", REPLY, headers)
    puller(raw)
    assert len(puller._queue) == 1
    msg = puller._queue[0]
    assert type(msg) is jsmsg_type(core)
    assert (msg.subject, msg.data, msg.reply, msg.headers, msg.sid) == ("orders.new", b"abc", REPLY, headers, 3)
    assert msg._nc is nc and msg._js_timeout == 2.5 and msg._acked is False
    assert msg.seq == 5
    assert (puller.received, puller.processed, puller._pending_msgs, puller._activity) == (1, 0, 99, 1)
    assert puller._queued_bytes == 0 and puller._pending_bytes == 0  # no byte accounting without max_bytes
    assert waiter.woken == 1
    puller(incoming(core, "orders.new", b"def", REPLY))
    assert waiter.woken == 1  # an already resolved waiter is left alone
    assert puller.calls == []


def test_a_message_without_reply_is_queued_too(core: ModuleType) -> None:
    puller = make_puller(core)
    puller(incoming(core, "orders.new", b"abc", None))
    assert [shown(m) for m in puller._queue] == [("orders.new", b"abc", "")]
    assert puller._queue[0]._reply is None


@pytest.mark.parametrize(
    ("code", "description", "pending"),
    [
        (100, "Idle Heartbeat", None),
        (404, "No Messages", None),
        (408, "Request Timeout", 3),
        (409, "x", 1),
        (503, "", None),
    ],
)
def test_a_status_message_goes_to_on_status(core: ModuleType, code: int, description: str, pending: int | None) -> None:
    seen: list[Any] = []
    puller = make_puller(core, _waiter=Waiter())
    puller._on_status = lambda c, d, m: seen.append((c, d, m))
    raw = incoming(core, "_INBOX.pull", b"", None, status_headers(code, description, pending))
    puller(raw)
    assert len(seen) == 1 and seen[0][:2] == (code, description) and seen[0][2] is raw.headers
    assert (raw.headers.code, raw.headers.description) == (code, description)
    assert raw.headers.to_dict() == ({} if pending is None else {"Nats-Pending-Messages": [str(pending)]})
    assert (puller.received, puller._pending_msgs, puller._activity, len(puller._queue)) == (0, 100, 1, 0)
    assert puller._waiter.woken == 0


def test_headers_with_data_or_without_a_code_make_a_message(core: ModuleType) -> None:
    puller = make_puller(core)
    puller(incoming(core, "s", b"busy", REPLY, status_headers(503)))  # a status code with data: a message
    puller(incoming(core, "s", b"", REPLY, Headers.from_dict({"K": "v"})))  # no code: a message with no data
    puller(incoming(core, "s", b"", REPLY))  # no headers and no data: a message too
    assert [m.data for m in puller._queue] == [b"busy", b"", b""]
    assert puller.calls == [] and puller.received == 3


def test_a_finished_puller_ignores_everything(core: ModuleType) -> None:
    puller = make_puller(core, _done=True)
    puller(incoming(core, "s", b"x", REPLY))
    puller(incoming(core, "_INBOX.p", b"", None, status_headers(408, "Request Timeout")))
    assert (puller.received, puller._activity, len(puller._queue), puller.calls) == (0, 0, 0, [])


def test_a_plain_callback_gets_the_message_inline(core: ModuleType) -> None:
    waiter = Waiter()
    puller = make_puller(core, _adapter=object(), _waiter=waiter)
    arrivals: list[Any] = []
    puller._on_arrival = lambda m: (arrivals.append(m), puller.calls.append(("arrival", shown(m))))
    puller(incoming(core, "a", b"1", REPLY))
    assert puller.calls == [("arrival", ("a", b"1", REPLY)), ("inline", ("a", b"1", REPLY))]
    assert len(puller._queue) == 0 and waiter.woken == 0 and puller.processed == 1
    assert type(arrivals[0]) is jsmsg_type(core)


def test_an_async_callback_is_fed_through_the_queue(core: ModuleType) -> None:
    waiter = Waiter()
    puller = make_puller(core, _adapter=object(), _queue_callbacks=True, _waiter=waiter)
    puller(incoming(core, "a", b"1", REPLY))
    assert [shown(m) for m in puller._queue] == [("a", b"1", REPLY)]
    assert puller.calls == [] and waiter.woken == 1


# -- PullerBase: the ordered cursor -------------------------------------------------------------------------------


def test_ordered_cursor_defaults(core: ModuleType) -> None:
    assert cursor_state(core.OrderedCursor()) == ("", 1, 0, False)
    assert cursor_state(core.OrderedCursor(42)) == ("", 1, 42, False)


def test_ordered_cursor_accepts_in_order_deliveries(core: ModuleType) -> None:
    puller = ordered_puller(core)
    puller(incoming(core, "k.a", b"1", ack_reply("S", "ord", 1, 10, 1)))
    assert cursor_state(puller._cursor) == ("ord", 2, 11, False)
    puller(incoming(core, "k.b", b"2", ack_reply("S", "ord", 1, 15, 2, domain="hub")))
    assert cursor_state(puller._cursor) == ("ord", 3, 16, False)
    assert [m.data for m in puller._queue] == [b"1", b"2"]
    assert puller.calls == []


def test_ordered_cursor_ignores_other_consumers_and_foreign_replies(core: ModuleType) -> None:
    puller = ordered_puller(core, name="ořd")
    for reply in (
        ack_reply("S", "old", 1, 10, 1),
        ack_reply("S", "oř", 1, 10, 1),  # a prefix of the name
        ack_reply("S", "ořd2", 1, 10, 1),
        "_INBOX.not.jetstream",
        None,
    ):
        puller(incoming(core, "k", b"x", reply))
    assert cursor_state(puller._cursor) == ("ořd", 1, 0, False)
    assert len(puller._queue) == 0 and puller.calls == []
    puller(incoming(core, "k", b"mine", ack_reply("S", "ořd", 1, 3, 1)))
    assert [m.data for m in puller._queue] == [b"mine"] and cursor_state(puller._cursor) == ("ořd", 2, 4, False)


@pytest.mark.parametrize("dseq", [3, 1], ids=["gap", "repeat"])
def test_ordered_cursor_reports_a_gap_then_refuses_until_reset(core: ModuleType, dseq: int) -> None:
    puller = ordered_puller(core)
    puller(incoming(core, "k", b"1", ack_reply("S", "ord", 1, 10, 1)))
    puller(incoming(core, "k", b"bad", ack_reply("S", "ord", 1, 12, dseq)))
    assert puller.calls == [("gap", dseq)]
    assert cursor_state(puller._cursor) == ("ord", 2, 11, True)
    puller(incoming(core, "k", b"2", ack_reply("S", "ord", 1, 11, 2)))  # in order, but the cursor is resetting
    assert puller.calls == [("gap", dseq)] and [m.data for m in puller._queue] == [b"1"]
    # the consumer is recreated from the next stream sequence: a new name, counting from 1 again
    cursor = puller._cursor
    cursor.name, cursor.expected, cursor.resetting = "ord-2", 1, False
    puller(incoming(core, "k", b"2", ack_reply("S", "ord-2", 1, 11, 1)))
    assert [m.data for m in puller._queue] == [b"1", b"2"]
    assert cursor_state(cursor) == ("ord-2", 2, 12, False)


def test_a_resetting_cursor_refuses_everything(core: ModuleType) -> None:
    puller = ordered_puller(core)
    puller._cursor.resetting = True
    puller(incoming(core, "k", b"1", ack_reply("S", "ord", 1, 10, 1)))
    assert len(puller._queue) == 0 and puller.calls == [] and cursor_state(puller._cursor) == ("ord", 1, 0, True)


# -- PullerBase: pull accounting ------------------------------------------------------------------------------------


def test_refill_asks_for_what_is_missing_once_under_the_threshold(core: ModuleType) -> None:
    puller = make_puller(core, _max_messages=100, _threshold_messages=75, _pending_msgs=100)
    for i in range(25):
        puller(incoming(core, "s", b"%d" % i, REPLY))
    assert (puller._pending_msgs, len(puller._queue)) == (75, 25)
    puller._refill()
    assert puller.calls == []  # 75 still on their way: not under the threshold
    puller(incoming(core, "s", b"25", REPLY))
    assert puller.calls == [("pull", 26, None)]  # asked for as they arrive: nothing was taken
    assert (puller._pending_msgs, puller.processed, puller.received) == (100, 0, 26)
    for _ in range(26):
        puller._take_nowait()
    assert puller.calls == [("pull", 26, None)]  # all 100 on their way again: taking adds nothing


def test_no_refill_while_a_window_waits_unread(core: ModuleType) -> None:
    puller = make_puller(core, _max_messages=10, _threshold_messages=8, _pending_msgs=10, _refilling=False)
    for i in range(10):
        puller(incoming(core, "s", b"%d" % i, REPLY))
    puller._refilling = True
    puller._refill()
    assert puller.calls == []  # nothing on its way, but a whole window unread: the server waits for the reader
    assert puller._take_nowait().data == b"0"
    assert puller.calls == [("pull", 10, None)]  # under a window: the server may send a window again
    assert (puller._pending_msgs, len(puller._queue)) == (10, 9)


def test_a_refill_only_when_refilling(core: ModuleType) -> None:
    puller = make_puller(core, _refilling=False, _pending_msgs=0)
    puller._refill()
    assert puller.calls == []
    puller._done = True
    puller._refill()
    assert puller.calls == [("queue_done",)]  # ended, nothing queued: a drain can finish
    puller.calls.clear()
    puller._queue.append(jsmsg(core, REPLY))
    puller._refill()
    assert puller.calls == []


def test_a_fetch_ends_after_max_messages(core: ModuleType) -> None:
    puller = make_puller(core, _continuous=False, _refilling=False, _max_messages=3, _pending_msgs=3)
    for i in range(2):
        puller(incoming(core, "s", b"%d" % i, REPLY))
    assert puller.calls == []
    puller(incoming(core, "s", b"2", REPLY))
    assert puller.calls == [("end", None)]
    puller(incoming(core, "s", b"late", REPLY))  # ended: ignored
    assert [m.data for m in puller._queue] == [b"0", b"1", b"2"] and puller.received == 3
    assert puller._take_nowait().data == b"0"
    assert puller._take_nowait().data == b"1"
    assert puller.calls == [("end", None)]
    assert puller._take_nowait().data == b"2"
    assert puller.calls == [("end", None), ("queue_done",)]
    assert puller._take_nowait() is None and puller.processed == 3


def test_max_bytes_counts_the_wire_size(core: ModuleType) -> None:
    headers = Headers.from_dict({"Nats-Msg-Id": "m-1"})
    size = len("orders.eu") + len(REPLY) + len(b"0123456789") + len(headers.encode())
    puller = make_puller(core, _max_bytes=10_000, _threshold_bytes=0, _pending_bytes=10_000)
    puller(incoming(core, "orders.eu", b"0123456789", REPLY, headers))
    puller(incoming(core, "orders.eu", b"", None))
    assert puller._pending_bytes == 10_000 - size - len("orders.eu")
    assert puller._queued_bytes == size + len("orders.eu")
    puller._take_nowait()
    assert puller._queued_bytes == len("orders.eu")
    puller._take_nowait()
    assert puller._queued_bytes == 0


def test_max_bytes_counts_utf8_bytes_of_non_ascii_subjects(core: ModuleType) -> None:
    # The server counts len() of Go strings against a pull's max_bytes: bytes, not characters.
    subject, reply, data = "zakázky.čr", ack_reply("ZÁKAZKY", "čtenář", 1, 1, 1), b"1234"
    size = len(subject.encode()) + len(reply.encode()) + len(data)
    puller = make_puller(core, _max_bytes=1000, _pending_bytes=1000)
    puller(incoming(core, subject, data, reply))
    assert (puller._pending_bytes, puller._queued_bytes) == (1000 - size, size)


def test_a_fetch_by_bytes_ends_when_its_bytes_have_arrived(core: ModuleType) -> None:
    data = b"x" * 40
    size = len("s") + len(REPLY) + len(data)
    puller = make_puller(
        core, _continuous=False, _refilling=False, _max_messages=100, _max_bytes=2 * size + 1, _pending_msgs=100
    )
    puller._pending_bytes = 2 * size + 1
    puller(incoming(core, "s", data, REPLY))
    puller(incoming(core, "s", data, REPLY))
    assert puller.calls == [] and puller._pending_bytes == 1
    puller(incoming(core, "s", data, REPLY))
    assert puller.calls == [("end", None)] and puller._pending_bytes == 1 - size


def test_refill_by_bytes(core: ModuleType) -> None:
    puller = make_puller(
        core, _max_messages=100, _max_bytes=1000, _threshold_bytes=750, _threshold_messages=25, _pending_msgs=50
    )

    def refill(pending_msgs: int, pending_bytes: int, queued_bytes: int) -> list[tuple[Any, ...]]:
        """The pulls ``_refill`` makes with these messages and bytes on their way and bytes queued unread."""
        puller._pending_msgs, puller._pending_bytes, puller._queued_bytes = pending_msgs, pending_bytes, queued_bytes
        puller.calls.clear()
        puller._refill()
        return list(puller.calls)

    assert refill(50, 750, 250) == []  # 750 bytes and 50 messages on their way: neither under its threshold
    assert refill(50, 749, 250) == [("pull", 50, 251)]  # topped up to 100 messages and 1,000 bytes
    # more arrived than asked for: the negative remainders are forgotten
    assert refill(-3, -80, 0) == [("pull", 100, 1000)]
    assert (puller._pending_msgs, puller._pending_bytes) == (100, 1000)
    # few messages on their way, bytes aplenty (small messages): the count asks again, for the bytes that arrived
    assert refill(24, 900, 400) == [("pull", 76, 100)]
    # nothing pending by count: pull again even above the byte threshold (by at least one byte)
    assert refill(0, 1000, 400) == [("pull", 100, 1)]
    # a whole window of bytes unread: the server waits for the reader
    assert refill(0, 0, 1000) == []
    # messages of 400 bytes came last: a pull for less than two of them would be refused (the server answers a pull
    # its next message does not fit in with a 409), so it waits for what is on its way to give its bytes back
    puller._last_size = 400
    assert refill(10, 201, 0) == []
    assert refill(10, 200, 0) == [("pull", 90, 800)]
    # nothing on its way: the whole window, even when it holds fewer than two such messages
    puller._last_size = 700
    assert refill(0, 0, 0) == [("pull", 100, 1000)]


def test_give_back_puts_the_message_first_and_restores_the_counters(core: ModuleType) -> None:
    puller = make_puller(core, _max_bytes=10_000, _pending_bytes=10_000, _refilling=False)
    puller(incoming(core, "a", b"first", REPLY, Headers.from_dict({"K": "v"})))
    puller(incoming(core, "b", b"second", REPLY))
    before = (puller.received, puller.processed, puller._pending_msgs, puller._pending_bytes, puller._queued_bytes)
    first = puller._take_nowait()
    assert first.data == b"first" and puller.processed == 1
    puller._give_back(first)
    assert [m.data for m in puller._queue] == [b"first", b"second"] and puller._queue[0] is first
    assert (puller.received, puller.processed, puller._pending_msgs, puller._pending_bytes, puller._queued_bytes) == (
        before
    )


# -- MessagesBase ------------------------------------------------------------------------------------------------


async def test_anext_hands_out_a_queued_message_at_once(core: ModuleType) -> None:
    puller = make_puller(core, _refilling=False)
    messages = messages_of(core, puller)
    puller(incoming(core, "a", b"1", REPLY))
    puller(incoming(core, "b", b"2", REPLY))
    first = messages.__anext__()
    assert asyncio.iscoroutine(first)
    if core is CYTHON:
        assert type(first).__name__ == "_Ready"
        assert puller.processed == 1  # the fast path took it already: no coroutine runs
    assert shown(await first) == ("a", b"1", REPLY)
    assert shown(await anext(messages)) == ("b", b"2", REPLY)
    assert puller.processed == 2
    with pytest.raises(StopAsyncIteration):
        await anext(messages)  # empty: the puller's slow path
    assert puller.calls == [("slow",)]


def test_messages_take_nowait(core: ModuleType) -> None:
    puller = make_puller(core, _refilling=False)
    messages = messages_of(core, puller)
    assert messages._take_nowait() is None
    puller(incoming(core, "a", b"1", REPLY))
    assert shown(messages._take_nowait()) == ("a", b"1", REPLY)
    assert puller.processed == 1 and puller.calls == []


async def test_a_callback_puller_cannot_be_iterated(core: ModuleType) -> None:
    puller = make_puller(core, _adapter=object(), _queue_callbacks=True)
    puller(incoming(core, "a", b"1", REPLY))
    messages = messages_of(core, puller)
    with pytest.raises(RuntimeError, match="callback"):
        await messages.__anext__()
    assert len(puller._queue) == 1 and puller.processed == 0


async def test_an_anext_closed_unawaited_gives_the_message_back(core: ModuleType) -> None:
    puller = make_puller(core, _refilling=False)
    messages = messages_of(core, puller)
    puller(incoming(core, "a", b"1", REPLY))
    puller(incoming(core, "b", b"2", REPLY))
    pending = messages.__anext__()
    pending.close()
    assert [m.data for m in puller._queue] == [b"1", b"2"] and puller.processed == 0
    assert (await messages.__anext__()).data == b"1"


async def test_a_cancelled_anext_task_gives_the_message_back(core: ModuleType) -> None:
    puller = make_puller(core, _max_bytes=10_000, _pending_bytes=10_000, _refilling=False)
    messages = messages_of(core, puller)
    puller(incoming(core, "a", b"1", REPLY))
    queued_bytes = puller._queued_bytes
    task = asyncio.create_task(anext(messages))
    task.cancel()  # before its first step
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [shown(m) for m in puller._queue] == [("a", b"1", REPLY)]
    assert (puller.processed, puller._queued_bytes, puller.calls) == (0, queued_bytes, [])
    assert shown(await anext(messages)) == ("a", b"1", REPLY)
    assert puller.processed == 1


@pytest.mark.parametrize(
    "fields",
    [{"_done": True, "_refilling": False}, {"_refilling": True, "_pending_msgs": 0}],
    ids=["ended-puller", "refilling-puller"],
)
async def test_a_cancelled_anext_task_keeps_the_message(core: ModuleType, fields: dict[str, Any]) -> None:
    """A task cancelled before it ran leaves the message first in the queue and the counters as they were. (The
    compiled fast path takes the message when ``__anext__()`` is called, as a core subscription's does, so the pull
    or the end of the queue that this take triggered stands; the twin's coroutine takes nothing until it runs.)"""
    puller = make_puller(core)
    messages = messages_of(core, puller)
    puller(incoming(core, "a", b"1", REPLY))
    for name, value in fields.items():
        setattr(puller, name, value)
    task = asyncio.create_task(anext(messages))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [m.data for m in puller._queue] == [b"1"] and puller.processed == 0
    assert shown(await anext(messages)) == ("a", b"1", REPLY)


# -- both cores, random input -------------------------------------------------------------------------------------

token_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters=".")
name_tokens = st.text(alphabet=token_chars, min_size=1, max_size=8)  # stream and consumer names, any script
valid_numbers = st.integers(min_value=0, max_value=INT64_MAX) | st.sampled_from([0, 1, 10**18, TS, INT64_MAX])
bad_numbers = st.sampled_from([INT64_MAX + 1, 10**19 - 1, 10**19, 2**64 - 1, 2**64, 10**25]).map(str) | st.sampled_from(
    ["", "-1", "+1", "1a", " 1", "0x1", "1_0", "\u0661\u0662", "\u00b2", "\uff11", "1.5", "0" * 25 + str(2**63)]
)


@st.composite
def number_text(draw: st.DrawFn) -> str:
    """A valid number, sometimes with leading zeros (which do not count against the 64 bits)."""
    text = str(draw(valid_numbers))
    return "0" * draw(st.integers(min_value=0, max_value=30)) + text


@st.composite
def reply_subjects(draw: st.DrawFn) -> str:
    """A ``$JS.ACK`` reply subject in one of its forms, left well-formed about half the time, else broken."""
    nums = draw(st.lists(number_text(), min_size=5, max_size=5))
    stream, consumer = draw(name_tokens), draw(name_tokens)
    form = draw(st.sampled_from([9, 9, 11, 12, 12, 13]))
    if form == 9:
        tokens = ["$JS", "ACK", stream, consumer, *nums]
    else:
        domain = draw(st.sampled_from(["_", ""]) | name_tokens)
        tail = draw(st.lists(st.text(alphabet=token_chars, max_size=5), min_size=form - 11, max_size=form - 11))
        tokens = ["$JS", "ACK", domain, draw(name_tokens), stream, consumer, *nums, *tail]
    mutation = draw(st.sampled_from(["none"] * 6 + ["number", "prefix", "drop", "insert", "append", "empty"]))
    if mutation == "number":
        tokens[len(tokens) - 1 - draw(st.integers(0, 4)) - (form - 11 if form > 9 else 0)] = draw(bad_numbers)
    elif mutation == "prefix":
        tokens[draw(st.integers(0, 1))] = draw(st.sampled_from(["$js", "ack", "$JS ", "", "JS", "$JSX", "NAK"]))
    elif mutation == "drop":
        del tokens[draw(st.integers(0, len(tokens) - 1))]
    elif mutation == "insert":
        tokens.insert(draw(st.integers(0, len(tokens))), draw(st.text(alphabet=token_chars, max_size=3)))
    elif mutation == "append":
        tokens.extend(draw(st.lists(st.just("9"), min_size=1, max_size=4)))
    elif mutation == "empty":
        tokens[draw(st.integers(0, len(tokens) - 1))] = ""
    return ".".join(tokens)


def reply_outcome(core: ModuleType, reply: str | None) -> list[Any]:
    msg = jsmsg(core, reply)
    outcome: list[Any] = []
    for read in (msg._delivery, lambda: msg.seq, lambda: msg.redelivered, msg._position, msg._delivery):
        try:
            outcome.append(read())
        except InvalidOptionError as exc:
            outcome.append(("InvalidOptionError", str(exc)))
    return outcome


def expected_delivery(reply: str) -> tuple[Any, ...] | None:
    """What the reply subject stands for, by the rules (None: not a JetStream reply subject)."""
    tokens = reply.split(".")
    if tokens[:2] != ["$JS", "ACK"] or len(tokens) not in (9, 11, 12, 13):
        return None
    if len(tokens) == 9:
        domain, account, rest = "", None, tokens[2:]
    else:
        domain, account, rest = ("" if tokens[2] == "_" else tokens[2]), tokens[3], tokens[4:]
    values = []
    for text in rest[2:7]:
        if not (text and all("0" <= c <= "9" for c in text)) or int(text) > INT64_MAX:
            return None
        values.append(int(text))
    return (domain, account, rest[0], rest[1], *values)


queue_operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 999)),
        st.tuples(st.just("appendleft"), st.integers(0, 999)),
        st.just(("popleft",)),
        st.just(("clear",)),
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(queue_operations)
def test_message_queue_behaves_as_a_deque_in_both_cores(operations: list[tuple[Any, ...]]) -> None:
    """The compiled ring (growing past its first 16 slots, wrapping round) keeps the order a deque keeps."""
    model: deque[int] = deque()
    queues = [CYTHON.MessageQueue(), PYTHON.MessageQueue()]
    for operation in operations:
        for queue in [model, *queues]:
            if operation[0] == "popleft" and not queue:
                with pytest.raises(IndexError):
                    queue.popleft()
            else:
                getattr(queue, operation[0])(*operation[1:])
        for queue in queues:
            assert len(queue) == len(model) and bool(queue) == bool(model)
            assert list(queue) == list(model)
            if model:
                assert (queue[0], queue[-1]) == (model[0], model[-1])


@settings(max_examples=1000, deadline=None)
@given(reply_subjects() | st.text(alphabet=st.sampled_from("$JSACK._12x9ř"), max_size=40))
def test_reply_subjects_parse_the_same_in_both_cores(reply: str) -> None:
    outcome = reply_outcome(CYTHON, reply)
    assert outcome == reply_outcome(PYTHON, reply)
    expected = expected_delivery(reply)
    if expected is None:
        assert outcome[0] == ("InvalidOptionError", f"not a JetStream reply subject: {reply!r}")
    else:
        assert outcome == [expected, expected[5], expected[4] > 1, (expected[5], expected[7], expected[8]), expected]


@st.composite
def puller_settings(draw: st.DrawFn) -> dict[str, Any]:
    max_messages = draw(st.integers(min_value=1, max_value=12))
    max_bytes = draw(st.none() | st.integers(min_value=1, max_value=3000))
    continuous = draw(st.booleans())
    mode = draw(st.sampled_from(["iterator", "inline", "queued-callback"]))
    return {
        "_continuous": continuous,
        "_refilling": continuous,
        "_max_messages": max_messages,
        "_threshold_messages": draw(st.integers(min_value=0, max_value=max_messages + 1)),
        "_max_bytes": max_bytes,
        "_threshold_bytes": draw(st.integers(min_value=0, max_value=max_bytes)) if max_bytes else 0,
        "_pending_msgs": draw(st.integers(min_value=0, max_value=max_messages)),
        "_pending_bytes": max_bytes or 0,
        "_adapter": None if mode == "iterator" else "callback",
        "_queue_callbacks": mode == "queued-callback",
        "ordered": draw(st.booleans()),
        "arrival_hook": draw(st.booleans()),
        "waiter": draw(st.booleans()),
    }


subjects = st.sampled_from(["orders.new", "kv.bucket.key", "zakázky.č", "a"])
headers_maps = st.none() | st.dictionaries(
    st.sampled_from(["Nats-Msg-Id", "K", "X-Key"]), st.sampled_from(["v", "", "ẅ"]), min_size=1, max_size=2
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("msg"), subjects, st.binary(max_size=40), headers_maps),
        st.tuples(
            st.just("status"),
            st.sampled_from([100, 404, 408, 409, 503]),
            st.sampled_from(["", "Idle Heartbeat", "Request Timeout", "Consumer Deleted"]),
            st.none() | st.integers(min_value=0, max_value=5),
            st.sampled_from([b"", b"", b"x"]),
        ),
        st.tuples(st.just("foreign"), subjects, st.binary(max_size=10)),
        st.tuples(st.just("gap"), st.sampled_from([-1, 1, 2, 5])),
        st.tuples(st.just("not-js"), st.sampled_from([None, "_INBOX.x.y", "$JS.ACK.S.C.1.x.1.1.0"])),
        st.just(("take",)),
        st.just(("give-back",)),
        st.just(("refill",)),
        st.just(("reset",)),
        st.just(("waiter",)),
    ),
    max_size=40,
)


class Run:
    """One core's puller, driven by the operations."""

    def __init__(self, core: ModuleType, config: dict[str, Any]) -> None:
        fields = {k: v for k, v in config.items() if k not in ("ordered", "arrival_hook", "waiter")}
        self.core = core
        self.puller = make_puller(core, **fields)
        self.taken: list[Any] = []
        self.resets = 0
        if config["ordered"]:
            self.puller._cursor = core.OrderedCursor(0)
            self.puller._cursor.name = "ord"
        if config["arrival_hook"]:
            self.puller._on_arrival = lambda m: self.puller.calls.append(("arrival", shown(m)))
        if config["waiter"]:
            self.puller._waiter = Waiter()

    def deliver(self, subject: str, data: bytes, reply: str | None, headers: Headers | None) -> None:
        self.puller(incoming(self.core, subject, data, reply, headers))

    def snapshot(self) -> tuple[Any, ...]:
        p = self.puller
        return (
            list(p.calls),
            (p.received, p.processed, p._pending_msgs, p._pending_bytes, p._queued_bytes, p._last_size, p._activity),
            (p._done, p._refilling, p._queue_callbacks),
            [shown(m) for m in p._queue],
            None if p._cursor is None else cursor_state(p._cursor),
            None if p._waiter is None else p._waiter.woken,
        )


def step(runs: tuple[Run, Run], op: tuple[Any, ...], dseq: int) -> int:
    """Apply ``op`` to both runs (the reply subject is built from the twin's cursor, the same as the other's while
    they agree); the next delivery sequence of an unordered consumer."""
    kind = op[0]
    cursor = runs[1].puller._cursor
    name = cursor.name if cursor is not None else "worker"
    expected = cursor.expected if cursor is not None else dseq
    sseq = 100 + dseq
    if kind == "msg":
        _, subject, data, mapping = op
        reply = ack_reply("S", name, 1, sseq, expected, domain="hub" if dseq % 2 else None)
        for run in runs:
            run.deliver(subject, data, reply, None if mapping is None else Headers.from_dict(mapping))
        return dseq + 1
    if kind == "status":
        _, code, description, pending, data = op
        for run in runs:
            run.deliver("_INBOX.pull", data, None, status_headers(code, description, pending))
    elif kind == "foreign":
        for run in runs:
            run.deliver(op[1], op[2], ack_reply("S", "other", 2, sseq, expected), None)
    elif kind == "gap":
        for run in runs:
            run.deliver("s", b"gap", ack_reply("S", name, 1, sseq, max(0, expected + op[1])), None)
    elif kind == "not-js":
        for run in runs:
            run.deliver("s", b"?", op[1], None)
    elif kind == "take":
        taken = [run.puller._take_nowait() for run in runs]
        seen = [None if msg is None else shown(msg) for msg in taken]
        assert seen[0] == seen[1]
        for run, msg in zip(runs, taken, strict=True):
            if msg is not None:
                run.taken.append(msg)
    elif kind == "give-back":
        for run in runs:
            if run.taken:
                run.puller._give_back(run.taken.pop())
    elif kind == "refill":
        for run in runs:
            run.puller._refill()
    elif kind == "reset":
        for run in runs:
            c = run.puller._cursor
            if c is not None and c.resetting:
                run.resets += 1
                c.name, c.expected, c.resetting = f"ord{run.resets}", 1, False
    elif kind == "waiter":
        for run in runs:
            run.puller._waiter = Waiter()
    return dseq


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(puller_settings(), operations)
def test_random_deliveries_give_the_same_state_in_both_cores(
    config: dict[str, Any], ops: list[tuple[Any, ...]]
) -> None:
    runs = (Run(CYTHON, config), Run(PYTHON, config))
    dseq = 1
    assert runs[0].snapshot() == runs[1].snapshot()
    for i, op in enumerate(ops):
        dseq = step(runs, op, dseq)
        assert runs[0].snapshot() == runs[1].snapshot(), f"after operation {i}: {op}"


def parser_feeding(core: ModuleType, puller: Any) -> tuple[Any, Any]:
    """A parser whose sid 7 is a pull inbox subscription handing its messages to ``puller``, and that
    subscription."""

    class Subscription(core.SubscriptionBase):  # type: ignore[name-defined,misc]
        def _cancel_timer(self) -> None:
            raise AssertionError("no timer")

    sub = Subscription()
    for name, value in {"_callback": puller, "_queue": None, "_max": None, "_timer": None}.items():
        setattr(sub, name, value)
    sub.received = sub.processed = 0
    parser, _ = make_parser(core, sids=())
    parser.subs[7] = sub
    return parser, sub


async def test_a_pull_inbox_message_from_the_parser_is_acked_to_its_reply_subject(core: ModuleType) -> None:
    """The parser hands a pull inbox subscription's message to its puller as fields (no Msg in between); the ack
    goes to the reply subject as read off the wire, within the write buffer's limits like any publish."""
    puller = make_puller(core)
    parser, sub = parser_feeding(core, puller)
    reply = "$JS.ACK.ORDERS.w\u0151rker.1.5.5.1700000000000000000.0"  # a non-ASCII consumer name
    frame = f"MSG orders.new 7 {reply} 3\r\nabc\r\n".encode()
    parser.feed(frame + frame)
    assert (sub.received, sub.processed, len(puller._queue)) == (2, 2, 2)
    first, second = puller._queue[0], puller._queue[1]
    assert (first.subject, first.data, first.reply, first.seq) == ("orders.new", b"abc", reply, 5)
    pub = publisher(core, asyncio.get_running_loop())
    first._nc = second._nc = pub
    first.ack()
    assert bytes(pub._wb.take()) == f"PUB {reply} 4\r\n+ACK\r\n".encode()
    pub._wb.limit = len(f"PUB {reply} 4\r\n+ACK\r\n".encode()) - 1
    with pytest.raises(OutboundBufferLimitError):
        second.ack()
    assert second._acked is False and pub._wb.pending == 0
    pub._wb.limit = 0
    second.ack()
    assert bytes(pub._wb.take()) == f"PUB {reply} 4\r\n+ACK\r\n".encode()


def test_messages_from_the_parser_count_the_bytes_a_pull_by_bytes_counts(core: ModuleType) -> None:
    """A pull by bytes counts each message's subject, reply subject and body in UTF-8 bytes (the compiled parser
    hands over the sizes it read off the line); what is queued is uncounted again as it is taken or given back."""
    puller = make_puller(core, _max_bytes=10_000, _threshold_bytes=0, _pending_bytes=10_000)
    parser, _ = parser_feeding(core, puller)
    reply = "$JS.ACK.ORDERS.w\u0151rker.1.5.5.1700000000000000000.0"
    subject = "orders.caf\u00e9"
    plain = f"MSG {subject} 7 {reply} 3\r\nabc\r\n".encode()
    block = "NATS/1.0\r\nA: b\r\n\r\n"
    with_headers = f"HMSG {subject} 7 {reply} {len(block)} {len(block) + 3}\r\n{block}abc\r\n".encode()
    parser.feed(plain + with_headers)
    one = len(subject.encode()) + len(reply.encode()) + 3
    two = one + len(block)
    assert puller._pending_bytes == 10_000 - one - two
    assert puller._queued_bytes == one + two
    first = puller._take_nowait()
    assert puller._queued_bytes == two
    puller._give_back(first)
    assert puller._queued_bytes == one + two
    puller._take_nowait()
    puller._take_nowait()
    assert puller._queued_bytes == 0


# -- KvEntryBase and KvWatchBase: a Key-Value watcher's entries ---------------------------------------------------

KV_PREFIX = "$KV.bucket."


class ReadStopper:
    """What a watcher's ``_read`` is: ``stop()`` is recorded in the watcher's calls."""

    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.calls = calls

    def stop(self) -> None:
        self.calls.append(("stop",))


@functools.cache
def kv_entry_type(core: ModuleType) -> type:
    class Entry(core.KvEntryBase):  # type: ignore[name-defined,misc]
        __slots__ = ()

    return Entry


@functools.cache
def kv_watch_type(core: ModuleType) -> type:
    """A watcher with kv.py's rare-case hooks and slow path; the hooks' calls are recorded in ``calls``."""
    from cnats import kv

    class Watch(core.KvWatchBase):  # type: ignore[name-defined,misc]
        calls: list[tuple[Any, ...]]
        _anext_slow = kv.KvWatcher._anext_slow  # the real slow path: it awaits the messages' __anext__

        def _marker(self, data: bytes, headers: Headers) -> tuple[Any, int]:
            self.calls.append(("marker", data, headers.to_dict()))
            return kv.KvWatcher._marker(self, data, headers)  # type: ignore[arg-type]

        def _caught_up(self) -> None:
            self.calls.append(("caught_up",))

    return Watch


def make_watch(core: ModuleType, messages: Any, *, ignore_deletes: bool = False, ends: bool = False) -> Any:
    from cnats.kv import KvOperation

    watch = kv_watch_type(core)()
    watch.calls = []
    watch._read = ReadStopper(watch.calls)
    watch._messages = messages
    watch._entry_type = kv_entry_type(core)
    watch._bucket = "bucket"
    watch._prefix_len = len(KV_PREFIX)
    watch._put = KvOperation.PUT
    watch._ignore_deletes = ignore_deletes
    watch._ends = ends
    return watch


def watch_of(core: ModuleType, **fields: Any) -> tuple[Any, Any]:
    """A watcher over a plain (unordered) puller that stays quiet: (watcher, puller)."""
    puller = make_puller(core, _refilling=False)
    return make_watch(core, messages_of(core, puller), **fields), puller


def kv_reply(sseq: int, pending: int, ts: int = TS) -> str:
    return ack_reply("KV_bucket", "watch", 1, sseq, sseq, ts, pending)


def put_kv(core: ModuleType, puller: Any, key: str, data: bytes, sseq: int, pending: int, **headers: str) -> None:
    mapping = {name.replace("_", "-"): value for name, value in headers.items()}
    puller(incoming(core, KV_PREFIX + key, data, kv_reply(sseq, pending), Headers.from_dict(mapping) or None))


def fields(entry: Any) -> tuple[Any, ...]:
    return (
        entry.bucket,
        entry.key,
        entry.value,
        entry.revision,
        entry._created,
        entry.delta,
        entry.operation,
        entry.length,
    )


def run_now(awaitable: Any) -> Any:
    """The result of an awaitable that does not suspend (a ``_Ready``, or a coroutine that finishes at once)."""
    try:
        awaitable.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("suspended")


def test_entry_fields_behave_as_slots(core: ModuleType) -> None:
    entry = kv_entry_type(core)()
    names = ["bucket", "key", "value", "revision", "_created", "delta", "operation", "length"]
    for name in names:
        # (Python 3.13 names the class by its qualified name: '...<locals>.Entry')
        with pytest.raises(AttributeError, match=rf"'([\w.<>]+\.)?Entry' object has no attribute '{name}'"):
            getattr(entry, name)
        with pytest.raises(AttributeError):
            delattr(entry, name)
        setattr(entry, name, [name])  # any object, as a slot takes it
    assert [getattr(entry, name) for name in names] == [[name] for name in names]
    del entry.revision
    assert not hasattr(entry, "revision") and entry.key == ["key"]
    with pytest.raises(AttributeError):
        entry.other = 1


def test_init_sets_every_field_to_what_it_is_given(core: ModuleType) -> None:
    entry = kv_entry_type(core)()
    values = ("b", "k", b"v", "7", "2024-01-01T00:00:00Z", None, "DEL", 3.5)  # kept as given, whatever they are
    entry._init(*values)
    assert fields(entry) == values and entry.revision is values[3]
    del entry.delta
    entry._init(*values)  # again, over a deleted field
    assert fields(entry) == values


async def test_a_watch_builds_an_entry_from_each_queued_message(core: ModuleType) -> None:
    from cnats.kv import KvOperation

    watch, puller = watch_of(core)
    put_kv(core, puller, "a.b", b"v1", 42, 3)
    put_kv(core, puller, "ключ", b"", 43, 2)  # a key is cut off its subject by characters, not bytes
    first = watch.__anext__()
    if core is CYTHON:
        assert type(first).__name__ == "_Ready" and puller.processed == 1  # built already: no coroutine runs
    entry = await first
    assert type(entry) is kv_entry_type(core)
    assert fields(entry) == ("bucket", "a.b", b"v1", 42, TS, 3, KvOperation.PUT, 2)
    assert fields(await anext(watch)) == ("bucket", "ключ", b"", 43, TS, 2, KvOperation.PUT, 0)
    assert watch.calls == [] and puller.calls == []
    # the numbers are made once: read again, they are the same objects
    assert entry.revision is entry.revision and entry._created is entry._created
    entry.revision = 7
    assert entry.revision == 7 and entry.delta == 3
    with pytest.raises(StopAsyncIteration):
        await anext(watch)  # nothing queued: kv.py's slow path, which ends the read when the messages end
    assert watch.calls == [("stop",)] and puller.calls == [("slow",)]


async def test_markers_take_their_operation_and_length_from_the_headers(core: ModuleType) -> None:
    from cnats.kv import KvOperation

    watch, puller = watch_of(core)
    put_kv(core, puller, "k", b"", 1, 3, KV_Operation="DEL")
    put_kv(core, puller, "k", b"", 2, 2, KV_Operation="PURGE", Nats_Rollup="sub")
    put_kv(core, puller, "k", b"", 3, 1, Nats_Msg_Size="1024")  # a value read with headers_only
    put_kv(core, puller, "k", b"x", 4, 0, KV_Operation="SOMETHING")
    entries = [await anext(watch) for _ in range(4)]
    assert [(e.revision, e.operation, e.length) for e in entries] == [
        (1, KvOperation.DEL, 0),
        (2, KvOperation.PURGE, 0),
        (3, KvOperation.PUT, 1024),
        (4, KvOperation.PUT, 1),
    ]
    assert [call[0] for call in watch.calls] == ["marker"] * 4
    assert watch.calls[0] == ("marker", b"", {"KV-Operation": ["DEL"]})


@pytest.mark.parametrize("ignore_deletes", [False, True])
async def test_ignore_deletes_skips_markers(core: ModuleType, ignore_deletes: bool) -> None:
    watch, puller = watch_of(core, ignore_deletes=ignore_deletes)
    put_kv(core, puller, "a", b"1", 1, 4)
    put_kv(core, puller, "a", b"", 2, 3, KV_Operation="DEL")
    put_kv(core, puller, "b", b"", 3, 2, KV_Operation="PURGE")
    put_kv(core, puller, "c", b"2", 4, 1)
    put_kv(core, puller, "c", b"", 5, 0, KV_Operation="DEL")
    revisions = [(await anext(watch)).revision for _ in range(2 if ignore_deletes else 5)]
    assert revisions == ([1, 4] if ignore_deletes else [1, 2, 3, 4, 5])
    assert puller.processed == (4 if ignore_deletes else 5)  # the markers in between are taken, not handed out
    with pytest.raises(StopAsyncIteration):
        await anext(watch)
    assert puller.processed == 5


@pytest.mark.parametrize("ignore_deletes", [False, True])
async def test_a_listing_is_told_when_it_is_caught_up(core: ModuleType, ignore_deletes: bool) -> None:
    """``_caught_up`` is called when the entry with delta 0 is built (even a marker that is then skipped); a watch
    that does not end (``_ends`` false) is never told."""
    for ends in (True, False):
        watch, puller = watch_of(core, ends=ends, ignore_deletes=ignore_deletes)
        put_kv(core, puller, "a", b"1", 1, 1)
        put_kv(core, puller, "b", b"", 2, 0, KV_Operation="DEL")
        assert (await anext(watch)).revision == 1
        assert watch.calls == []
        if ignore_deletes:
            with pytest.raises(StopAsyncIteration):
                await anext(watch)
        else:
            assert (await anext(watch)).revision == 2
        told = [call for call in watch.calls if call[0] == "caught_up"]
        assert told == ([("caught_up",)] if ends else [])


@pytest.mark.parametrize("reply", ["_INBOX.x.y", None, "$JS.ACK.S.C.1.x.1.1.0"])
async def test_a_reply_subject_that_is_not_a_jetstream_one_raises(core: ModuleType, reply: str | None) -> None:
    watch, puller = watch_of(core)
    puller(incoming(core, KV_PREFIX + "a", b"1", reply))
    put_kv(core, puller, "b", b"2", 9, 0)
    with pytest.raises(InvalidOptionError) as raised:
        await watch.__anext__()
    assert str(raised.value) == f"not a JetStream reply subject: {reply!r}"
    assert puller.processed == 1 and watch.calls == []  # the message is taken, the read goes on
    assert (await anext(watch)).key == "b"


async def test_a_puller_with_a_callback_is_not_taken_from(core: ModuleType) -> None:
    puller = make_puller(core, _adapter=object(), _queue_callbacks=True)
    put_kv(core, puller, "a", b"1", 1, 0)
    watch = make_watch(core, messages_of(core, puller))
    with pytest.raises(RuntimeError, match="callback"):
        await anext(watch)
    assert len(puller._queue) == 1 and watch.calls == [("stop",)]


async def test_a_given_back_entry_is_handed_out_first(core: ModuleType) -> None:
    watch, puller = watch_of(core)
    put_kv(core, puller, "c", b"3", 3, 0)
    one, two = kv_entry_type(core)(), kv_entry_type(core)()
    watch._give_back(one)
    watch._give_back(two)  # given back last: it was handed out first
    assert await anext(watch) is two
    assert await anext(watch) is one
    assert (await anext(watch)).key == "c"


async def test_an_anext_closed_unawaited_loses_no_entry(core: ModuleType) -> None:
    watch, puller = watch_of(core)
    put_kv(core, puller, "a", b"1", 1, 1)
    put_kv(core, puller, "b", b"2", 2, 0)
    pending = watch.__anext__()
    pending.close()  # the compiled core took the message and built the entry: it keeps it for the next call
    assert [(await anext(watch)).key for _ in range(2)] == ["a", "b"]


async def test_a_cancelled_anext_task_loses_no_entry(core: ModuleType) -> None:
    watch, puller = watch_of(core, ends=True)
    put_kv(core, puller, "a", b"1", 1, 1)
    put_kv(core, puller, "b", b"2", 2, 0)
    task = asyncio.create_task(anext(watch))
    task.cancel()  # before its first step
    with pytest.raises(asyncio.CancelledError):
        await task
    first = await anext(watch)
    assert fields(first)[:4] == ("bucket", "a", b"1", 1)
    assert (await anext(watch)).key == "b"
    assert watch.calls == [("caught_up",)]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_the_slow_path_waits_for_the_next_entry(core: ModuleType) -> None:
    """Nothing queued: ``__anext__`` waits in kv.py's slow path, which skips what the rules skip and wakes up with
    the next entry; when the messages end, it stops the read and ends."""
    from cnats.kv import KvOperation

    watch, puller = watch_of(core, ignore_deletes=True)
    loop = asyncio.get_running_loop()

    async def wait_for_a_message() -> Any:  # what _Puller._anext_slow does
        while True:
            msg = puller._take_nowait()
            if msg is not None:
                return msg
            if puller._done:
                raise StopAsyncIteration
            puller._waiter = loop.create_future()
            await puller._waiter

    puller._anext_slow = wait_for_a_message
    task = asyncio.create_task(anext(watch))
    await settle()
    assert not task.done()
    put_kv(core, puller, "a", b"", 1, 1, KV_Operation="DEL")
    await settle()
    assert not task.done()  # the marker is skipped: still waiting
    put_kv(core, puller, "a", b"2", 2, 0)
    entry = await asyncio.wait_for(task, 5)
    assert fields(entry) == ("bucket", "a", b"2", 2, TS, 0, KvOperation.PUT, 1)
    assert puller.processed == 2 and watch.calls == [("marker", b"", {"KV-Operation": ["DEL"]})]
    task = asyncio.create_task(anext(watch))
    await settle()
    puller._done = True
    puller._waiter.set_result(None)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(task, 5)
    assert watch.calls[-1] == ("stop",)


async def test_the_slow_path_stops_the_read_when_the_messages_fail(core: ModuleType) -> None:
    watch, puller = watch_of(core)

    async def failing() -> Any:
        raise ConnectionError("gone")

    puller._anext_slow = failing
    with pytest.raises(ConnectionError, match="gone"):
        await anext(watch)
    assert watch.calls == [("stop",)]


def test_an_entry_type_must_derive_from_kv_entry_base(core: ModuleType) -> None:
    watch = kv_watch_type(core)()
    assert watch._entry_type is None

    class Other(core.KvEntryBase):  # type: ignore[name-defined,misc]
        __slots__ = ()

        def __new__(cls) -> Any:
            return object.__new__(cls)

    for cls in (object, kv_entry_type(CYTHON if core is PYTHON else PYTHON), Other, 1):
        with pytest.raises(TypeError, match="derives from KvEntryBase"):
            watch._entry_type = cls
    watch._entry_type = kv_entry_type(core)
    assert watch._entry_type is kv_entry_type(core)


async def test_a_watcher_without_an_entry_type_refuses_to_build(core: ModuleType) -> None:
    puller = make_puller(core, _refilling=False)
    watch = kv_watch_type(core)()
    watch._messages = messages_of(core, puller)
    put_kv(core, puller, "a", b"1", 1, 0)
    with pytest.raises(TypeError, match="no entry type"):
        await watch.__anext__()


def test_a_compiled_watchers_entries_are_off_the_collectors_lists() -> None:
    import gc

    watch, puller = watch_of(CYTHON)
    put_kv(CYTHON, puller, "a", b"1", 1, 0)
    entry = run_now(watch.__anext__())
    assert not gc.is_tracked(entry)


kv_keys = st.text(alphabet=st.sampled_from("ab.-_=/0ключ€z"), max_size=8)
kv_subjects = st.one_of(kv_keys.map(lambda key: KV_PREFIX + key), st.sampled_from(["$KV.b", "", "x"]), kv_keys)
kv_header_options = {
    "Nats-Msg-Size": st.sampled_from(["0", "17", "4096", "x"]),
    "Nats-Rollup": st.just("sub"),
}
kv_headers = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"KV-Operation": st.sampled_from(["DEL", "PURGE", "PUT", "del", "", "x"])}, optional=kv_header_options
    ),
    st.fixed_dictionaries({}, optional=kv_header_options),
)
valid_kv_replies = st.builds(
    lambda sseq, ts, pending: kv_reply(sseq, pending, ts),
    st.integers(0, INT64_MAX),
    st.integers(0, INT64_MAX),
    st.integers(0, 2) | st.integers(0, INT64_MAX),
)
kv_replies = st.one_of(valid_kv_replies, valid_kv_replies, valid_kv_replies, st.none(), reply_subjects())
kv_operations = st.lists(
    st.one_of(
        st.tuples(st.just("msg"), kv_subjects, st.binary(max_size=20), kv_replies, kv_headers),
        st.just(("take",)),
        st.just(("give-back",)),
    ),
    max_size=30,
)


class KvRun:
    """One core's watcher, driven by the operations; what it hands out is recorded as fields."""

    def __init__(self, core: ModuleType, ignore_deletes: bool, ends: bool) -> None:
        self.core = core
        self.watch, self.puller = watch_of(core, ignore_deletes=ignore_deletes, ends=ends)
        self.taken: list[Any] = []
        self.seen: list[Any] = []

    def apply(self, op: tuple[Any, ...]) -> None:
        if op[0] == "msg":
            _, subject, data, reply, mapping = op
            headers = None if mapping is None else Headers.from_dict(mapping)
            self.puller(incoming(self.core, subject, data, reply, headers))
        elif op[0] == "take":
            try:
                entry = run_now(self.watch.__anext__())
            except StopAsyncIteration:
                self.seen.append("end")
            except Exception as exc:  # noqa: BLE001 - compared across cores
                self.seen.append((type(exc).__name__, str(exc)))
            else:
                self.taken.append(entry)
                self.seen.append(fields(entry))
        elif self.taken:
            self.watch._give_back(self.taken.pop())

    def snapshot(self) -> tuple[Any, ...]:
        return (list(self.seen), list(self.watch.calls), list(self.puller.calls), len(self.puller._queue))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), st.booleans(), kv_operations)
def test_random_watches_give_the_same_entries_in_both_cores(
    ignore_deletes: bool, ends: bool, ops: list[tuple[Any, ...]]
) -> None:
    runs = (KvRun(CYTHON, ignore_deletes, ends), KvRun(PYTHON, ignore_deletes, ends))
    for i, op in enumerate(ops):
        for run in runs:
            run.apply(op)
        assert runs[0].snapshot() == runs[1].snapshot(), f"after operation {i}: {op}"
    for run in runs:  # every entry handed out is one the rules let through
        for seen in run.seen:
            if isinstance(seen, tuple) and len(seen) == 8 and ignore_deletes:
                assert seen[6] == "PUT"
