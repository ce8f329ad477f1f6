"""Core messaging between cnats and nats-py (the other asyncio client) on one real nats-server: payloads,
headers, request/reply both ways, queue groups shared by both clients, ordered delivery of many messages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
from helpers.nats_py import py_subscribe
from nats.aio.client import Client as NatsPyClient
from nats.aio.msg import Msg as NatsPyMsg

import cnats
from cnats import Headers, Msg, NatsConnection, create_inbox
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


# -- publish / subscribe ----------------------------------------------------------------------------------------


async def test_cnats_payload_and_headers_reach_nats_py(
    nats_server: NatsServer, nc: NatsConnection, py: NatsPyClient
) -> None:
    subject = create_inbox("interop.pub")
    sub = await py_subscribe(nats_server, py, subject)

    h = Headers()
    h.append("X-Single", "one")
    h.append("X-Multi", "first")
    h.append("X-Multi", "second")
    h.append("mixed-Case", "kept")
    payload = bytes(range(256)) + "ünïcode".encode()
    nc.publish(subject, payload, headers=h)
    await nc.flush()

    msg: NatsPyMsg = await sub.next_msg(timeout=2)
    assert msg.data == payload
    assert msg.headers is not None
    # nats-py keeps one value per key (a dict): the last of a repeated key
    assert msg.headers == {"X-Single": "one", "X-Multi": "second", "mixed-Case": "kept"}


async def test_cnats_multi_valued_headers_arrive_at_cnats_and_nats_py_alike(
    nats_server: NatsServer, nc: NatsConnection, py: NatsPyClient
) -> None:
    subject = create_inbox("interop.multi")
    py_sub = await py_subscribe(nats_server, py, subject)
    cn_sub = nc.subscribe(subject)
    await nc.flush()

    nc.publish(subject, b"m", headers={"X-Multi": ["a", "b", "c"]})
    cn_msg = await cn_sub.next_msg(timeout=2)
    py_msg: NatsPyMsg = await py_sub.next_msg(timeout=2)
    assert cn_msg.headers is not None
    assert cn_msg.headers.values("X-Multi") == ["a", "b", "c"]
    assert py_msg.headers == {"X-Multi": cn_msg.headers.last("X-Multi")}


async def test_cnats_message_without_headers_reaches_nats_py_without_headers(
    nats_server: NatsServer, nc: NatsConnection, py: NatsPyClient
) -> None:
    subject = create_inbox("interop.nohdr")
    sub = await py_subscribe(nats_server, py, subject)
    nc.publish(subject, "plain text")
    msg: NatsPyMsg = await sub.next_msg(timeout=2)
    assert msg.data == b"plain text"
    assert not msg.headers


async def test_cnats_reply_subject_reaches_nats_py(
    nats_server: NatsServer, nc: NatsConnection, py: NatsPyClient
) -> None:
    subject = create_inbox("interop.reply")
    sub = await py_subscribe(nats_server, py, subject)
    nc.publish(subject, b"x", reply="some.reply.subject")
    msg: NatsPyMsg = await sub.next_msg(timeout=2)
    assert msg.reply == "some.reply.subject"


async def test_nats_py_payload_and_headers_reach_cnats(nc: NatsConnection, py: NatsPyClient) -> None:
    subject = create_inbox("interop.pyhdr")
    sub = nc.subscribe(subject)
    await nc.flush()

    payload = b"\x00\x01binary\r\n" * 10
    await py.publish(subject, payload, reply="py.reply", headers={"X-From": "nats-py", "Camel-Case": "  padded  "})
    await py.flush()

    msg = await sub.next_msg(timeout=2)
    assert msg.data == payload
    assert msg.reply == "py.reply"
    assert msg.headers is not None
    assert msg.headers.to_dict() == {"X-From": ["nats-py"], "Camel-Case": ["padded"]}
    assert msg.headers.code == 0


async def test_nats_py_message_without_headers_reaches_cnats_without_headers(
    nc: NatsConnection, py: NatsPyClient
) -> None:
    subject = create_inbox("interop.pyplain")
    sub = nc.subscribe(subject)
    await nc.flush()
    await py.publish(subject, b"no headers")
    msg = await sub.next_msg(timeout=2)
    assert msg.data == b"no headers"
    assert msg.reply is None
    assert msg.headers is None


# -- request / reply ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("no_mux", [False, True])
async def test_cnats_request_answered_by_nats_py(
    nats_server: NatsServer, nc: NatsConnection, py: NatsPyClient, no_mux: bool
) -> None:
    async def responder(msg: NatsPyMsg) -> None:
        await py.publish(msg.reply, b"py says: " + msg.data, headers={"X-Responder": "nats-py"})

    await py_subscribe(nats_server, py, "interop.svc.py", cb=responder)

    msg = await nc.request("interop.svc.py", b"hi", timeout=2, headers={"X-Req": "cnats"}, no_mux=no_mux)
    assert msg.data == b"py says: hi"
    assert msg.headers is not None
    assert msg.headers.get("X-Responder") == "nats-py"


async def test_cnats_request_headers_reach_nats_py_responder(
    nats_server: NatsServer, nc: NatsConnection, py: NatsPyClient
) -> None:
    seen: list[dict[str, str] | None] = []

    async def responder(msg: NatsPyMsg) -> None:
        seen.append(msg.headers)
        await msg.respond(b"ok")

    await py_subscribe(nats_server, py, "interop.svc.hdr", cb=responder)
    msg = await nc.request("interop.svc.hdr", b"", timeout=2, headers={"X-Req": "cnats"})
    assert msg.data == b"ok"
    assert seen == [{"X-Req": "cnats"}]


async def test_nats_py_request_answered_by_cnats(nc: NatsConnection, py: NatsPyClient) -> None:
    async def responder(msg: Msg) -> None:
        got = msg.headers.get("X-Req") if msg.headers else ""
        msg.respond(b"cnats says: " + msg.data, headers={"X-Responder": "cnats", "X-Echo": got})

    nc.subscribe("interop.svc.cnats", callback=responder)
    await nc.flush()

    msg: NatsPyMsg = await py.request("interop.svc.cnats", b"hello", timeout=2, headers={"X-Req": "nats-py"})
    assert msg.data == b"cnats says: hello"
    assert msg.headers == {"X-Responder": "cnats", "X-Echo": "nats-py"}


async def test_many_concurrent_nats_py_requests_answered_by_cnats(nc: NatsConnection, py: NatsPyClient) -> None:
    nc.subscribe("interop.svc.echo", callback=lambda m: m.respond(m.data))
    await nc.flush()
    payloads = [f"req-{i}".encode() for i in range(50)]
    replies = await asyncio.gather(*(py.request("interop.svc.echo", p, timeout=5) for p in payloads))
    assert [r.data for r in replies] == payloads


async def test_cnats_request_many_collects_cnats_and_nats_py_responders(
    nats_server: NatsServer, nc: NatsConnection, py: NatsPyClient
) -> None:
    async def py_responder(msg: NatsPyMsg) -> None:
        await py.publish(msg.reply, b"from nats-py")

    await py_subscribe(nats_server, py, "interop.svc.all", cb=py_responder)
    responder = await cnats.connect(nats_server.url)
    try:
        responder.subscribe("interop.svc.all", callback=lambda m: m.respond(b"from cnats"))
        await responder.flush()
        it = await nc.request_many("interop.svc.all", b"", strategy=cnats.RequestStrategy.COUNT, max_messages=2)
        got = await asyncio.wait_for(_collect(it), 5)
    finally:
        await responder.close()
    assert sorted(m.data for m in got) == [b"from cnats", b"from nats-py"]


async def _collect(it: AsyncIterator[Msg]) -> list[Msg]:
    return [m async for m in it]


# -- queue groups -------------------------------------------------------------------------------------------------


async def test_queue_group_splits_messages_between_cnats_and_nats_py(
    nats_server: NatsServer, nc: NatsConnection, py: NatsPyClient
) -> None:
    subject = "interop.queue"
    cn_got: list[bytes] = []
    py_got: list[bytes] = []

    async def py_cb(msg: NatsPyMsg) -> None:
        py_got.append(msg.data)

    nc.subscribe(subject, queue="workers", callback=lambda m: cn_got.append(m.data))
    await nc.flush()
    await py_subscribe(nats_server, py, subject, queue="workers", cb=py_cb)

    publisher = await cnats.connect(nats_server.url)
    try:
        for i in range(200):
            publisher.publish(subject, str(i).encode())
        await publisher.flush()
    finally:
        await publisher.close()

    await eventually(lambda: len(cn_got) + len(py_got) >= 200)
    assert len(cn_got) + len(py_got) == 200  # each message went to exactly one member
    assert sorted(cn_got + py_got, key=int) == [str(i).encode() for i in range(200)]
    assert cn_got and py_got  # both members took a share


async def test_queue_group_published_by_nats_py_splits_between_clients(
    nats_server: NatsServer, nc: NatsConnection, py: NatsPyClient
) -> None:
    subject = "interop.queue.py"
    cn_got: list[bytes] = []
    py_got: list[bytes] = []

    async def py_cb(msg: NatsPyMsg) -> None:
        py_got.append(msg.data)

    nc.subscribe(subject, queue="q", callback=lambda m: cn_got.append(m.data))
    await nc.flush()
    await py_subscribe(nats_server, py, subject, queue="q", cb=py_cb)
    for i in range(200):
        await py.publish(subject, str(i).encode())
    await py.flush()

    await eventually(lambda: len(cn_got) + len(py_got) >= 200)
    assert sorted(cn_got + py_got, key=int) == [str(i).encode() for i in range(200)]
    assert cn_got and py_got


# -- volume and order ---------------------------------------------------------------------------------------------


async def test_ten_thousand_cnats_messages_arrive_at_nats_py_in_order(
    nats_server: NatsServer, nc: NatsConnection, py: NatsPyClient
) -> None:
    subject = create_inbox("interop.bulk")
    received: list[bytes] = []

    async def cb(msg: NatsPyMsg) -> None:
        received.append(msg.data)

    await py_subscribe(nats_server, py, subject, cb=cb)

    count = 10_000
    for i in range(count):
        nc.publish(subject, b"%d" % i)
    await nc.flush()

    await eventually(lambda: len(received) >= count, timeout=20)
    assert received == [b"%d" % i for i in range(count)]


async def test_ten_thousand_nats_py_messages_arrive_at_cnats_in_order(nc: NatsConnection, py: NatsPyClient) -> None:
    subject = create_inbox("interop.bulk.py")
    sub = nc.subscribe(subject)
    await nc.flush()

    count = 10_000
    for i in range(count):
        await py.publish(subject, b"%d" % i)
    await py.flush()

    async def read_all() -> list[bytes]:
        return [(await sub.next_msg(timeout=5)).data for _ in range(count)]

    received = await asyncio.wait_for(read_all(), 20)
    assert received == [b"%d" % i for i in range(count)]
