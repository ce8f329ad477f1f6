"""JetStream between cnats and nats-py on one real server: streams and durable pull consumers made by one client
are used by the other, acks from either side count, and msg_id de-duplication works across both clients."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client as NatsPyClient
from nats.js import api as py_api

from cnats import NatsConnection
from cnats.errors import ConsumerNotFoundError
from cnats.jetstream import AckPolicy, JetStreamClient, JetStreamManager, StorageType


@pytest.fixture
async def jsm(nc: NatsConnection) -> JetStreamManager:
    return await nc.jetstream_manager()


@pytest.fixture
def js(nc: NatsConnection) -> JetStreamClient:
    return nc.jetstream()


async def test_stream_and_consumer_from_nats_py_read_by_cnats(
    py: NatsPyClient, js: JetStreamClient, jsm: JetStreamManager
) -> None:
    pjs = py.jetstream()
    await pjs.add_stream(name="PY", subjects=["py.>"], storage=py_api.StorageType.MEMORY)
    await pjs.add_consumer("PY", durable_name="pyd", ack_policy=py_api.AckPolicy.EXPLICIT, ack_wait=30)
    for i in range(10):
        await pjs.publish(f"py.{i % 2}", f"m{i}".encode(), headers={"X-From": "nats-py"})

    info = await jsm.streams.info("PY")
    assert info.config.storage is StorageType.MEMORY
    assert info.state.messages == 10
    assert (await jsm.consumers.info("PY", "pyd")).config.ack_wait == 30.0

    consumer = await js.consumers.get("PY", "pyd")
    messages = await consumer.fetch(max_messages=6, expires=2)
    got = [m async for m in messages]
    assert [m.data for m in got] == [f"m{i}".encode() for i in range(6)]
    assert [m.subject for m in got] == ["py.0", "py.1"] * 3
    assert all(m.headers is not None and m.headers.get("X-From") == "nats-py" for m in got)
    for m in got:
        assert await m.ack_ack() is True

    # nats-py sees what cnats acknowledged: only the rest is left
    psub = await pjs.pull_subscribe("py.>", durable="pyd", stream="PY")
    rest = await psub.fetch(batch=10, timeout=2)
    assert [m.data for m in rest] == [f"m{i}".encode() for i in range(6, 10)]
    assert rest[0].metadata.sequence.stream == 7
    for m in rest:
        await m.ack()
    await psub.unsubscribe()
    pinfo = await pjs.consumer_info("PY", "pyd")
    assert pinfo.ack_floor.stream_seq >= 6


async def test_stream_and_consumer_from_cnats_used_by_nats_py(
    py: NatsPyClient, js: JetStreamClient, jsm: JetStreamManager
) -> None:
    await jsm.streams.add(name="CN", subjects=["cn.>"], storage="memory", max_age=3600)
    await jsm.consumers.add("CN", durable_name="cnd", ack_policy=AckPolicy.EXPLICIT, filter_subject="cn.keep")
    for i in range(8):
        await js.publish("cn.keep" if i % 2 == 0 else "cn.skip", f"c{i}", headers={"X-From": "cnats"})

    pjs = py.jetstream()
    sinfo = await pjs.stream_info("CN")
    assert sinfo.config.max_age == 3600
    assert sinfo.state.messages == 8
    psub = await pjs.pull_subscribe("cn.keep", durable="cnd", stream="CN")
    msgs = await psub.fetch(batch=2, timeout=2)
    assert [m.data for m in msgs] == [b"c0", b"c2"]
    assert msgs[0].headers is not None and msgs[0].headers.get("X-From") == "cnats"
    for m in msgs:
        await m.ack_sync()
    await psub.unsubscribe()

    consumer = await js.consumers.get("CN", "cnd")
    left = [m async for m in await consumer.fetch(max_messages=10, expires=1)]
    assert [m.data for m in left] == [b"c4", b"c6"]
    assert [m.seq for m in left] == [5, 7]
    for m in left:
        m.ack()

    # a consumer deleted by nats-py is gone for cnats
    await pjs.delete_consumer("CN", "cnd")
    with pytest.raises(ConsumerNotFoundError):
        await js.consumers.get("CN", "cnd")


async def test_msg_id_deduplicated_across_clients(py: NatsPyClient, js: JetStreamClient, jsm: JetStreamManager) -> None:
    await jsm.streams.add(name="DUP", subjects=["dup.>"], storage="memory", duplicate_window=60)
    pjs = py.jetstream()

    first = await js.publish("dup.a", b"from cnats", msg_id="id-1")
    assert first.duplicate is False
    py_again = await pjs.publish("dup.a", b"from nats-py", headers={"Nats-Msg-Id": "id-1"})
    assert py_again.duplicate is True
    assert py_again.seq == first.seq

    py_first = await pjs.publish("dup.b", b"from nats-py", headers={"Nats-Msg-Id": "id-2"})
    assert not py_first.duplicate
    cn_again = await js.publish("dup.b", b"from cnats", msg_id="id-2")
    assert cn_again.duplicate is True
    assert cn_again.seq == py_first.seq

    future = await js.publish_async("dup.c", b"async", msg_id="id-2")
    assert (await asyncio.wait_for(future, 5)).duplicate is True

    info = await jsm.streams.info("DUP")
    assert info.state.messages == 2
    assert (await jsm.streams.get_message("DUP", first.seq)).data == b"from cnats"
    assert (await jsm.streams.get_message("DUP", py_first.seq)).data == b"from nats-py"


async def test_ordered_consumer_reads_nats_py_stream(py: NatsPyClient, js: JetStreamClient) -> None:
    pjs = py.jetstream()
    await pjs.add_stream(name="ORD", subjects=["ord.>"], storage=py_api.StorageType.MEMORY)
    for i in range(50):
        await pjs.publish("ord.x", str(i).encode())
    oc = await js.consumers.get("ORD")
    got = [int(m.data) async for m in await oc.fetch(max_messages=50, expires=2)]
    assert got == list(range(50))
