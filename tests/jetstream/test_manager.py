"""JetStreamManager against a real JetStream server: account info, stream and consumer administration
(add, update with merge, info, delete, purge, list/names with paging, find, message get/delete), name validation,
consumer pause/resume, direct gets, and a manager on a server without JetStream."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from helpers.core import eventually

from cnats import NatsConnection
from cnats.errors import (
    ConsumerNotFoundError,
    InvalidNameError,
    InvalidOptionError,
    JetStreamApiError,
    JetStreamError,
    JetStreamNotEnabledError,
    MessageNotFoundError,
    NatsError,
    StreamNotFoundError,
)
from cnats.jetstream import (
    AccountInfo,
    AckPolicy,
    ConsumerApiAction,
    ConsumerConfig,
    ConsumerInfo,
    DeliverPolicy,
    JetStreamManager,
    PersistMode,
    RetentionPolicy,
    StorageType,
    StoredMsg,
    Stream,
    StreamConfig,
    StreamInfo,
)

UTC = timezone.utc


@pytest.fixture
async def jsm(nc: NatsConnection) -> JetStreamManager:
    return await nc.jetstream_manager()


async def raw_api(nc: NatsConnection, subject: str, payload: dict[str, Any] | None = None) -> Any:
    """A JetStream API request made by hand (to see exactly what the server has, independent of cnats' models)."""
    body = b"" if payload is None else json.dumps(payload).encode()
    msg = await nc.request(f"$JS.API.{subject}", body, timeout=5)
    return json.loads(msg.data)


async def add_stream(
    jsm: JetStreamManager, name: str = "S", subjects: list[str] | None = None, **kw: Any
) -> StreamInfo:
    return await jsm.streams.add(name=name, subjects=subjects or [f"{name.lower()}.>"], storage="memory", **kw)


# -- account ------------------------------------------------------------------------------------------------------


async def test_account_info(jsm: JetStreamManager) -> None:
    before = await jsm.get_account_info()
    assert isinstance(before, AccountInfo)
    assert before.streams == 0
    assert before.limits.max_streams == -1
    await add_stream(jsm, "A")
    await jsm.consumers.add("A", durable_name="d")
    after = await jsm.get_account_info()
    assert after.streams == 1
    assert after.consumers == 1
    assert after.api.total > before.api.total


@pytest.mark.nats_server(jetstream=False)
async def test_manager_without_jetstream(nc: NatsConnection) -> None:
    with pytest.raises(JetStreamNotEnabledError) as err:
        await asyncio.wait_for(nc.jetstream_manager(), 10)
    assert isinstance(err.value, JetStreamApiError)
    assert err.value.code == "503"
    assert err.value.status == 503
    # check_api=False does no I/O; the first request fails the same way
    jsm = await nc.jetstream_manager(check_api=False)
    with pytest.raises(JetStreamNotEnabledError):
        await asyncio.wait_for(jsm.streams.info("S"), 10)


# -- streams: add / update ----------------------------------------------------------------------------------------


async def test_stream_add_with_config_object(jsm: JetStreamManager, nc: NatsConnection) -> None:
    cfg = StreamConfig(name="S", subjects=["s.>"], storage=StorageType.MEMORY, max_age=30, max_msgs=100)
    info = await jsm.streams.add(cfg)
    assert isinstance(info, StreamInfo)
    assert info.config.name == "S"
    assert info.config.subjects == ["s.>"]
    assert info.config.storage is StorageType.MEMORY
    assert info.config.max_age == 30.0
    assert info.config.max_msgs == 100
    assert info.config.retention is RetentionPolicy.LIMITS
    assert info.state.messages == 0
    assert info.created.tzinfo is not None
    # what the server stored is in ns
    raw = await raw_api(nc, "STREAM.INFO.S")
    assert raw["config"]["max_age"] == 30_000_000_000


async def test_stream_add_with_fields_and_fields_override_config(jsm: JetStreamManager) -> None:
    info = await jsm.streams.add(name="F", subjects=["f.*"], storage="memory", description="by fields")
    assert info.config.name == "F" and info.config.description == "by fields"
    base = StreamConfig(name="IGNORED", subjects=["g.>"], storage=StorageType.MEMORY, max_msgs=5)
    info = await jsm.streams.add(base, name="G", max_msgs=7)
    assert info.config.name == "G"
    assert info.config.max_msgs == 7
    assert info.config.subjects == ["g.>"]
    assert base.name == "IGNORED" and base.max_msgs == 5  # the caller's config is not modified
    with pytest.raises(InvalidOptionError):
        await jsm.streams.add(name="H", no_such_field=1)


async def test_stream_add_existing_with_other_config_fails(jsm: JetStreamManager) -> None:
    await add_stream(jsm, "S")
    again = await add_stream(jsm, "S")  # same config: idempotent
    assert again.config.name == "S"
    with pytest.raises(JetStreamApiError) as err:
        await jsm.streams.add(name="S", subjects=["other"], storage="memory")
    assert err.value.status == 400
    assert err.value.err_code == 10058  # stream name already in use with a different configuration


async def test_stream_update_merges_fields(jsm: JetStreamManager) -> None:
    await jsm.streams.add(name="U", subjects=["u.>"], storage="memory", max_msgs=10, description="one")
    info = await jsm.streams.update("U", max_age=600)
    assert info.config.max_age == 600.0
    assert info.config.max_msgs == 10  # kept from the current config
    assert info.config.description == "one"
    assert info.config.subjects == ["u.>"]
    info = await jsm.streams.update("U", StreamConfig(description="two"), max_msgs=20)
    assert info.config.description == "two"
    assert info.config.max_msgs == 20
    assert info.config.max_age == 600.0
    fetched = await jsm.streams.info("U")
    assert (fetched.config.description, fetched.config.max_msgs, fetched.config.max_age) == ("two", 20, 600.0)


async def test_stream_update_keeps_server_fields_cnats_does_not_know(jsm: JetStreamManager, nc: NatsConnection) -> None:
    # a stream made by another tool: every key the server sends back, known to StreamConfig or not, survives
    created = await raw_api(
        nc,
        "STREAM.CREATE.SCHED",
        {"name": "SCHED", "subjects": ["sched.>"], "storage": "memory", "allow_msg_schedules": True},
    )
    assert "error" not in created, created
    server_keys = set(created["config"])
    info = await jsm.streams.info("SCHED")
    assert info.config.to_dict()["allow_msg_schedules"] is True
    await jsm.streams.update("SCHED", description="updated")
    raw = await raw_api(nc, "STREAM.INFO.SCHED")
    assert raw["config"]["description"] == "updated"
    assert raw["config"]["allow_msg_schedules"] is True
    assert server_keys <= set(raw["config"])  # every key the server had is still there
    for key in server_keys - {"description"}:
        if key != "metadata":
            assert raw["config"][key] == created["config"][key], key


async def test_stream_settings_of_servers_2_11_to_2_14(jsm: JetStreamManager) -> None:
    ttl = await jsm.streams.add(
        name="TTL", subjects=["ttl.>"], storage=StorageType.MEMORY, allow_msg_ttl=True, subject_delete_marker_ttl=5
    )
    assert (ttl.config.allow_msg_ttl, ttl.config.subject_delete_marker_ttl) == (True, 5.0)
    counter = await jsm.streams.add(name="COUNT", subjects=["count.>"], allow_msg_counter=True)
    assert counter.config.allow_msg_counter is True
    others = await jsm.streams.add(
        name="OTHERS",
        subjects=["others.>"],
        allow_msg_schedules=True,
        allow_batched=True,
        persist_mode=PersistMode.ASYNC,
    )
    config = others.config
    assert (config.allow_msg_schedules, config.allow_batched, config.persist_mode) == (True, True, PersistMode.ASYNC)
    # and they survive an update of something else
    updated = await jsm.streams.update("OTHERS", description="kept")
    assert (updated.config.allow_batched, updated.config.persist_mode) == (True, PersistMode.ASYNC)


async def test_stream_update_missing_stream(jsm: JetStreamManager) -> None:
    with pytest.raises(StreamNotFoundError):
        await jsm.streams.update("NOPE", max_msgs=1)


# -- streams: info / delete / purge -------------------------------------------------------------------------------


async def test_stream_info_state_and_deleted_details(jsm: JetStreamManager, nc: NatsConnection) -> None:
    await add_stream(jsm, "D")
    js = nc.jetstream()
    for i in range(5):
        await js.publish(f"d.{i}", f"m{i}")
    assert await jsm.streams.delete_message("D", 2) is True
    assert await jsm.streams.delete_message("D", 4, erase=False) is True
    info = await jsm.streams.info("D")
    assert info.state.messages == 3
    assert info.state.first_seq == 1 and info.state.last_seq == 5
    assert info.state.num_deleted == 2
    assert info.state.deleted is None
    assert info.state.first_ts is not None and info.state.last_ts is not None
    detailed = await jsm.streams.info("D", deleted_details=True)
    assert sorted(detailed.state.deleted or []) == [2, 4]


async def test_stream_info_subjects_filter(jsm: JetStreamManager, nc: NatsConnection) -> None:
    await add_stream(jsm, "SUBJ", ["subj.>"])
    n = 1500
    for i in range(n):
        nc.publish(f"subj.a.{i}", b"")
    nc.publish("subj.b.x", b"")
    nc.publish("subj.b.x", b"")
    await nc.flush()

    async def all_stored() -> bool:
        return (await jsm.streams.info("SUBJ")).state.messages == n + 2

    await eventually(all_stored, timeout=10, interval=0.05)
    info = await jsm.streams.info("SUBJ", subjects_filter="subj.a.*")
    assert info.state.subjects is not None
    assert len(info.state.subjects) == n
    assert info.state.subjects["subj.a.0"] == 1
    assert set(info.state.subjects) == {f"subj.a.{i}" for i in range(n)}
    only_b = await jsm.streams.info("SUBJ", subjects_filter="subj.b.>")
    assert only_b.state.subjects == {"subj.b.x": 2}
    everything = await jsm.streams.info("SUBJ", subjects_filter=">")
    assert everything.state.subjects is not None and len(everything.state.subjects) == n + 1
    plain = await jsm.streams.info("SUBJ")
    assert plain.state.subjects is None
    assert plain.state.num_subjects == n + 1


# nats-server returns at most 100,000 subjects per stream info (JSMaxSubjectDetails) and pages the rest by offset.
# That answer is over 1 MB: the bigger max_payload keeps it under the client's frame limit (see the next test).
@pytest.mark.nats_server(jetstream=True, config="max_payload: 8MB")
async def test_stream_info_subjects_filter_pages_past_server_limit(jsm: JetStreamManager, nc: NatsConnection) -> None:
    await add_stream(jsm, "MANY", ["m.*"])
    n = 100_050
    for i in range(n):
        nc.publish(f"m.{i}", b"")
    await nc.flush()

    async def all_stored() -> bool:
        return (await jsm.streams.info("MANY")).state.messages == n

    await eventually(all_stored, timeout=30, interval=0.05)
    first_page = await raw_api(nc, "STREAM.INFO.MANY", {"subjects_filter": "m.*"})
    assert first_page["total"] == n
    assert len(first_page["state"]["subjects"]) < n  # the server did page
    info = await asyncio.wait_for(jsm.streams.info("MANY", subjects_filter="m.*"), 30)
    assert info.state.subjects is not None
    assert len(info.state.subjects) == n
    assert set(info.state.subjects) == {f"m.{i}" for i in range(n)}


# The server does not bound its own answers by max_payload: a stream info listing many subjects is bigger than that.
@pytest.mark.nats_server(jetstream=True, config="max_payload: 4096")
async def test_api_answer_larger_than_max_payload(jsm: JetStreamManager, nc: NatsConnection) -> None:
    await add_stream(jsm, "BIG", ["big.*"])
    n = 10_000
    for i in range(n):
        nc.publish(f"big.{i}", b"")
    await nc.flush()

    async def all_stored() -> bool:
        return (await jsm.streams.info("BIG")).state.messages == n

    await eventually(all_stored, timeout=10, interval=0.05)
    raw_size = 12 * n  # '"big.1234":1,' per subject: well past max_payload + 64 KiB
    assert raw_size > 4096 + 64 * 1024
    quick = await nc.jetstream_manager(timeout=2)
    info = await asyncio.wait_for(quick.streams.info("BIG", subjects_filter="big.*"), 10)
    assert info.state.subjects is not None and len(info.state.subjects) == n


async def test_stream_delete(jsm: JetStreamManager) -> None:
    await add_stream(jsm, "X")
    assert await jsm.streams.delete("X") is True
    with pytest.raises(StreamNotFoundError) as err:
        await jsm.streams.info("X")
    assert err.value.status == 404
    assert err.value.err_code == 10059
    assert err.value.code == "404"
    assert isinstance(err.value, JetStreamApiError) and isinstance(err.value, JetStreamError)
    assert str(err.value) == err.value.description  # the server's description verbatim
    with pytest.raises(StreamNotFoundError) as err2:
        await jsm.streams.delete("X")
    assert (err2.value.status, err2.value.err_code) == (404, 10059)


async def test_purge_all_filter_seq_keep(jsm: JetStreamManager, nc: NatsConnection) -> None:
    js = nc.jetstream()
    await add_stream(jsm, "P")

    async def fill() -> None:
        for i in range(10):
            await js.publish("p.a" if i % 2 == 0 else "p.b", str(i))

    await fill()  # seqs 1..10: p.a on odd seqs, p.b on even
    resp = await jsm.streams.purge("P")
    assert resp.success is True and resp.purged == 10
    assert (await jsm.streams.info("P")).state.messages == 0

    await fill()  # seqs 11..20
    resp = await jsm.streams.purge("P", filter="p.a")
    assert resp.purged == 5
    state = (await jsm.streams.info("P")).state
    assert state.messages == 5
    assert (await jsm.streams.get_message("P", last_by_subj="p.b")).seq == 20
    with pytest.raises(MessageNotFoundError):
        await jsm.streams.get_message("P", last_by_subj="p.a")

    await jsm.streams.purge("P")
    await fill()  # seqs 21..30
    resp = await jsm.streams.purge("P", seq=25)  # everything below 25
    assert resp.purged == 4
    assert (await jsm.streams.info("P")).state.first_seq == 25

    resp = await jsm.streams.purge("P", keep=2)
    assert resp.purged == 4
    state = (await jsm.streams.info("P")).state
    assert (state.messages, state.first_seq, state.last_seq) == (2, 29, 30)

    resp = await jsm.streams.purge("P", filter="p.a", keep=0)
    assert resp.purged == 1
    assert (await jsm.streams.info("P")).state.messages == 1

    out_before = nc.stats().out_msgs
    with pytest.raises(InvalidOptionError):
        await jsm.streams.purge("P", seq=3, keep=1)
    assert nc.stats().out_msgs == out_before


async def test_purge_missing_stream(jsm: JetStreamManager) -> None:
    with pytest.raises(StreamNotFoundError):
        await jsm.streams.purge("NONE")


# -- streams: list / names / find ---------------------------------------------------------------------------------


async def test_list_and_names_page_through_all_streams(jsm: JetStreamManager, nc: NatsConnection) -> None:
    # the server pages STREAM.LIST by 256 (and STREAM.NAMES by 1024): 260 streams need a second list page
    n = 260

    async def create(i: int) -> None:
        await jsm.streams.add(name=f"L{i}", subjects=[f"l.{i}"], storage="memory", max_msgs=1)

    await asyncio.wait_for(asyncio.gather(*(create(i) for i in range(n))), 30)
    page = await raw_api(nc, "STREAM.LIST", {"offset": 0})
    assert page["total"] == n and len(page["streams"]) < n
    infos = [info async for info in jsm.streams.list()]
    assert all(isinstance(info, StreamInfo) for info in infos)
    assert sorted(info.config.name or "" for info in infos) == sorted(f"L{i}" for i in range(n))
    names = [name async for name in jsm.streams.names()]
    assert sorted(names) == sorted(f"L{i}" for i in range(n))
    assert len(names) == len(set(names))
    # a subject filter
    assert [name async for name in jsm.streams.names("l.7")] == ["L7"]
    assert [info.config.name async for info in jsm.streams.list("l.12")] == ["L12"]
    assert [name async for name in jsm.streams.names("nothing.here")] == []


async def test_list_is_lazy_and_empty_without_streams(jsm: JetStreamManager) -> None:
    assert [name async for name in jsm.streams.names()] == []
    assert [info async for info in jsm.streams.list()] == []
    await add_stream(jsm, "ONE")
    iterator = jsm.streams.names()
    assert await iterator.__anext__() == "ONE"
    with pytest.raises(StopAsyncIteration):
        await iterator.__anext__()


async def test_find(jsm: JetStreamManager) -> None:
    await add_stream(jsm, "FA", ["fa.*"])
    await add_stream(jsm, "FB", ["fb.>"])
    assert await jsm.streams.find("fa.x") == "FA"
    assert await jsm.streams.find("fb.x.y") == "FB"
    with pytest.raises(StreamNotFoundError) as err:
        await jsm.streams.find("fc.x")
    assert str(err.value) == "no stream matches subject"


# -- messages -----------------------------------------------------------------------------------------------------


async def test_get_message_by_seq_and_last_by_subject(jsm: JetStreamManager, nc: NatsConnection) -> None:
    js = nc.jetstream()
    await add_stream(jsm, "G")
    await js.publish("g.a", b"first", headers={"X-Key": "v1", "X-Multi": ["1", "2"]})
    await js.publish("g.b", "second")
    await js.publish("g.a", b'{"n": 3}', headers={"X-Key": "v3"})
    msg = await jsm.streams.get_message("G", 1)
    assert isinstance(msg, StoredMsg)
    assert (msg.subject, msg.seq, msg.data) == ("g.a", 1, b"first")
    assert msg.headers is not None
    assert msg.headers.get("X-Key") == "v1"
    assert msg.headers.values("X-Multi") == ["1", "2"]
    assert msg.time.tzinfo is not None
    assert abs((datetime.now(UTC) - msg.time).total_seconds()) < 60
    assert isinstance(msg.timestamp, str) and msg.timestamp.endswith("Z")
    second = await jsm.streams.get_message("G", seq=2)
    assert second.string() == "second" and second.headers is None
    last = await jsm.streams.get_message("G", last_by_subj="g.a")
    assert last.seq == 3 and last.json() == {"n": 3}
    assert last.headers is not None and last.headers.get("X-Key") == "v3"


async def test_get_message_errors(jsm: JetStreamManager, nc: NatsConnection) -> None:
    await add_stream(jsm, "G")
    await nc.jetstream().publish("g.a", b"x")
    with pytest.raises(MessageNotFoundError) as err:
        await jsm.streams.get_message("G", 99)
    assert (err.value.status, err.value.err_code) == (404, 10037)
    with pytest.raises(MessageNotFoundError):
        await jsm.streams.get_message("G", last_by_subj="g.none")
    with pytest.raises(InvalidOptionError):
        await jsm.streams.get_message("G")
    with pytest.raises(InvalidOptionError):
        await jsm.streams.get_message("G", 1, last_by_subj="g.a")
    with pytest.raises(StreamNotFoundError):
        await jsm.streams.get_message("NOSTREAM", 1)


async def test_delete_message_with_and_without_erase(jsm: JetStreamManager, nc: NatsConnection) -> None:
    js = nc.jetstream()
    await add_stream(jsm, "DM")
    for i in range(3):
        await js.publish("dm.x", str(i))
    assert await jsm.streams.delete_message("DM", 1) is True
    assert await jsm.streams.delete_message("DM", 2, erase=False) is True
    for seq in (1, 2):
        with pytest.raises(MessageNotFoundError):
            await jsm.streams.get_message("DM", seq)
    assert (await jsm.streams.get_message("DM", 3)).data == b"2"
    assert (await jsm.streams.info("DM")).state.messages == 1
    with pytest.raises(JetStreamApiError):
        await jsm.streams.delete_message("DM", 1)  # already gone


async def test_stream_handle(jsm: JetStreamManager, nc: NatsConnection) -> None:
    js = nc.jetstream()
    await add_stream(jsm, "H")
    await js.publish("h.a", b"one")
    stream = await js.streams.get("H")
    assert isinstance(stream, Stream)
    assert stream.name == "H"
    cached = await stream.info(cached=True)
    assert cached.state.messages == 1
    await js.publish("h.a", b"two")
    assert (await stream.info(cached=True)).state.messages == 1
    assert (await stream.info()).state.messages == 2
    assert (await stream.get_message(2)).data == b"two"
    assert (await stream.get_message(last_by_subj="h.a")).seq == 2
    assert await stream.delete_message(1) is True
    assert isinstance(await stream.alternates(), list)
    assert (await stream.best()).name == "H"
    assert (await jsm.streams.get("H")).name == "H"
    with pytest.raises(StreamNotFoundError):
        await js.streams.get("MISSING")


async def test_stream_handle_get_consumer(jsm: JetStreamManager, nc: NatsConnection) -> None:
    js = nc.jetstream()
    await add_stream(jsm, "HC")
    await jsm.consumers.add("HC", durable_name="dur")
    await js.publish("hc.a", b"x")
    stream = await js.streams.get("HC")
    consumer = await stream.get_consumer("dur")
    assert consumer.name == "dur" and consumer.stream == "HC"
    msg = await consumer.next(expires=2)
    assert msg is not None and msg.data == b"x"
    msg.ack()
    ordered = await stream.get_consumer()
    msg = await ordered.next(expires=2)
    assert msg is not None and msg.seq == 1
    info = await jsm.consumers.info("HC", "dur")
    assert stream.get_consumer_from_info(info).name == "dur"


# -- names --------------------------------------------------------------------------------------------------------


BAD_NAMES = ["a.b", "", "a b", "a*", "a>", "a/b", "a\\b", "a\tb", "a\nb", "a\rb"]


async def test_invalid_stream_names_rejected_before_any_request(jsm: JetStreamManager, nc: NatsConnection) -> None:
    out_before = nc.stats().out_msgs
    for bad in BAD_NAMES:
        calls = [
            lambda n: jsm.streams.add(name=n, subjects=["x"]),
            lambda n: jsm.streams.add(StreamConfig(name=n)),
            lambda n: jsm.streams.update(n, max_msgs=1),
            lambda n: jsm.streams.info(n),
            lambda n: jsm.streams.delete(n),
            lambda n: jsm.streams.purge(n),
            lambda n: jsm.streams.get_message(n, 1),
            lambda n: jsm.streams.delete_message(n, 1),
            lambda n: jsm.consumers.add(n, durable_name="d"),
            lambda n: jsm.consumers.info(n, "d"),
            lambda n: jsm.consumers.delete(n, "d"),
            lambda n: jsm.direct.get_message(n, seq=1),
            lambda n: nc.jetstream().consumers.get(n, "d"),
        ]
        for call in calls:
            with pytest.raises(InvalidNameError) as err:
                await call(bad)
            assert isinstance(err.value, InvalidOptionError) and isinstance(err.value, ValueError)
            if bad:
                assert str(err.value) == f"invalid stream name - stream name cannot contain '{bad[1]}'"
            else:
                assert str(err.value) == "stream name required"
    assert nc.stats().out_msgs == out_before


async def test_invalid_consumer_names_rejected(jsm: JetStreamManager, nc: NatsConnection) -> None:
    await add_stream(jsm, "S")
    out_before = nc.stats().out_msgs
    for bad in ["a.b", "a b", "a*", "a>", "a/b", "a\tb"]:
        for call in (
            lambda n: jsm.consumers.add("S", durable_name=n),
            lambda n: jsm.consumers.add("S", name=n),
            lambda n: jsm.consumers.info("S", n),
            lambda n: jsm.consumers.delete("S", n),
            lambda n: nc.jetstream().consumers.get("S", n),
        ):
            with pytest.raises(InvalidNameError) as err:
                await call(bad)
            assert "cannot contain" in str(err.value)
    with pytest.raises(InvalidNameError):
        await jsm.consumers.info("S", "")
    assert nc.stats().out_msgs == out_before


# -- consumers ----------------------------------------------------------------------------------------------------


async def test_consumer_add_durable_named_and_server_named(jsm: JetStreamManager) -> None:
    await add_stream(jsm, "C")
    durable = await jsm.consumers.add("C", durable_name="dur", ack_policy=AckPolicy.EXPLICIT)
    assert isinstance(durable, ConsumerInfo)
    assert durable.name == "dur" and durable.stream_name == "C"
    assert durable.config.durable_name == "dur"
    assert durable.config.ack_policy is AckPolicy.EXPLICIT
    assert durable.created.tzinfo is not None

    named = await jsm.consumers.add("C", ConsumerConfig(name="eph", inactive_threshold=30))
    assert named.name == "eph"
    assert named.config.durable_name is None  # a named ephemeral consumer
    assert named.config.inactive_threshold == 30.0

    anonymous = await jsm.consumers.add("C", ack_policy=AckPolicy.NONE)
    assert anonymous.name  # chosen by the server
    assert anonymous.config.durable_name is None

    both = await jsm.consumers.add("C", name="same", durable_name="same")
    assert both.name == "same"

    names = sorted([c.name async for c in jsm.consumers.list("C")])
    assert names == sorted(["dur", "eph", anonymous.name, "same"])


async def test_consumer_add_with_filter_subject(jsm: JetStreamManager, nc: NatsConnection) -> None:
    await add_stream(jsm, "CF")
    js = nc.jetstream()
    await js.publish("cf.a", b"a")
    await js.publish("cf.b", b"b")
    info = await jsm.consumers.add("CF", durable_name="only_b", filter_subject="cf.b")
    assert info.config.filter_subject == "cf.b"
    assert info.num_pending == 1
    multi = await jsm.consumers.add("CF", name="ab", filter_subjects=["cf.a", "cf.b"])
    assert multi.config.filter_subjects == ["cf.a", "cf.b"]
    assert multi.num_pending == 2
    wild = await jsm.consumers.add("CF", durable_name="wild", filter_subject="cf.*")
    assert wild.config.filter_subject == "cf.*" and wild.num_pending == 2


async def test_consumer_action_create_and_update(jsm: JetStreamManager) -> None:
    await add_stream(jsm, "CA")
    with pytest.raises(JetStreamApiError):
        await jsm.consumers.add("CA", durable_name="d", action=ConsumerApiAction.UPDATE)  # does not exist
    await jsm.consumers.add("CA", durable_name="d", action=ConsumerApiAction.CREATE, description="x")
    with pytest.raises(JetStreamApiError):
        await jsm.consumers.add("CA", durable_name="d", action=ConsumerApiAction.CREATE, description="y")
    info = await jsm.consumers.add("CA", durable_name="d", action=ConsumerApiAction.UPDATE, description="y")
    assert info.config.description == "y"


async def test_consumer_update_merges(jsm: JetStreamManager) -> None:
    await add_stream(jsm, "CU")
    await jsm.consumers.add(
        "CU", durable_name="d", description="one", max_deliver=5, ack_wait=10, filter_subject="cu.a"
    )
    info = await jsm.consumers.update("CU", "d", description="two")
    assert info.config.description == "two"
    assert info.config.max_deliver == 5
    assert info.config.ack_wait == 10.0
    assert info.config.filter_subject == "cu.a"
    info = await jsm.consumers.update("CU", "d", ConsumerConfig(max_deliver=7), ack_wait=20)
    assert (info.config.description, info.config.max_deliver, info.config.ack_wait) == ("two", 7, 20.0)
    fetched = await jsm.consumers.info("CU", "d")
    assert fetched.config.max_deliver == 7 and fetched.config.ack_wait == 20.0
    with pytest.raises(ConsumerNotFoundError):
        await jsm.consumers.update("CU", "missing", description="x")


async def test_consumer_update_keeps_server_fields_cnats_does_not_know(
    jsm: JetStreamManager, nc: NatsConnection
) -> None:
    await add_stream(jsm, "CK")
    created = await raw_api(
        nc,
        "CONSUMER.CREATE.CK.grp",
        {
            "stream_name": "CK",
            "config": {
                "durable_name": "grp",
                "ack_policy": "explicit",
                "priority_policy": "overflow",
                "priority_groups": ["jobs"],
            },
        },
    )
    assert "error" not in created, created
    await jsm.consumers.update("CK", "grp", description="changed")
    raw = await raw_api(nc, "CONSUMER.INFO.CK.grp")
    assert raw["config"]["description"] == "changed"
    assert raw["config"]["priority_groups"] == ["jobs"]
    assert raw["config"]["priority_policy"] == "overflow"


async def test_consumer_info_delete_list(jsm: JetStreamManager, nc: NatsConnection) -> None:
    await add_stream(jsm, "CI")
    js = nc.jetstream()
    for _ in range(3):
        await js.publish("ci.x", b"x")
    await jsm.consumers.add("CI", durable_name="a", deliver_policy=DeliverPolicy.LAST)
    await jsm.consumers.add("CI", durable_name="b")
    info = await jsm.consumers.info("CI", "b")
    assert info.num_pending == 3
    assert info.delivered.stream_seq == 0 and info.ack_floor.consumer_seq == 0
    assert (await jsm.consumers.info("CI", "a")).num_pending == 1
    assert sorted([c.name async for c in jsm.consumers.list("CI")]) == ["a", "b"]
    assert await jsm.consumers.delete("CI", "a") is True
    assert [c.name async for c in jsm.consumers.list("CI")] == ["b"]
    with pytest.raises(ConsumerNotFoundError) as err:
        await jsm.consumers.info("CI", "a")
    assert (err.value.status, err.value.err_code) == (404, 10014)
    with pytest.raises(ConsumerNotFoundError):
        await jsm.consumers.delete("CI", "a")
    with pytest.raises(StreamNotFoundError):
        await jsm.consumers.info("NOSTREAM", "a")
    with pytest.raises(StreamNotFoundError):
        [c async for c in jsm.consumers.list("NOSTREAM")]


async def test_consumer_list_pages(jsm: JetStreamManager) -> None:
    await add_stream(jsm, "CL")
    n = 260  # the server pages CONSUMER.LIST by 256
    await asyncio.wait_for(
        asyncio.gather(*(jsm.consumers.add("CL", name=f"c{i}", inactive_threshold=60) for i in range(n))), 30
    )
    names = [c.name async for c in jsm.consumers.list("CL")]
    assert sorted(names) == sorted(f"c{i}" for i in range(n))


async def test_consumer_pause_and_resume(jsm: JetStreamManager) -> None:
    await add_stream(jsm, "PA")
    await jsm.consumers.add("PA", durable_name="p")
    until = datetime.now(UTC) + timedelta(minutes=5)
    resp = await jsm.consumers.pause("PA", "p", until)
    assert resp.paused is True
    assert resp.pause_until is not None
    assert abs((resp.pause_until - until).total_seconds()) < 1
    assert resp.pause_remaining is not None and 250 < resp.pause_remaining <= 300
    info = await jsm.consumers.info("PA", "p")
    assert info.paused is True
    assert info.config.pause_until is not None
    resumed = await jsm.consumers.resume("PA", "p")
    assert resumed.paused is False
    assert (await jsm.consumers.info("PA", "p")).paused is False
    # a time in the past does not pause
    past = await jsm.consumers.pause("PA", "p", datetime.now(UTC) - timedelta(minutes=1))
    assert past.paused is False
    with pytest.raises(ConsumerNotFoundError):
        await jsm.consumers.pause("PA", "nope", until)


async def test_consumer_deliver_group_with_flow_control_or_heartbeat(jsm: JetStreamManager, nc: NatsConnection) -> None:
    await add_stream(jsm, "DG")
    out_before = nc.stats().out_msgs
    with pytest.raises(InvalidOptionError):
        await jsm.consumers.add(
            "DG", durable_name="q", deliver_subject="deliver.q", deliver_group="g", flow_control=True
        )
    with pytest.raises(InvalidOptionError):
        await jsm.consumers.add(
            "DG", durable_name="q", deliver_subject="deliver.q", deliver_group="g", idle_heartbeat=5
        )
    assert nc.stats().out_msgs == out_before
    ok = await jsm.consumers.add("DG", durable_name="q", deliver_subject="deliver.q", deliver_group="g")
    assert ok.config.deliver_group == "g"


async def test_consumer_on_missing_stream(jsm: JetStreamManager) -> None:
    with pytest.raises(StreamNotFoundError):
        await jsm.consumers.add("NOSTREAM", durable_name="d")


# -- direct get ---------------------------------------------------------------------------------------------------


async def direct_stream(jsm: JetStreamManager, nc: NatsConnection) -> None:
    await add_stream(jsm, "DIR", ["dir.>"], allow_direct=True)
    js = nc.jetstream()
    # seq: 1 dir.a, 2 dir.b, 3 dir.a, 4 dir.c, 5 dir.b, 6 dir.a
    for i, subject in enumerate(["dir.a", "dir.b", "dir.a", "dir.c", "dir.b", "dir.a"], start=1):
        await js.publish(subject, f"m{i}", headers={"X-I": str(i)})


async def test_direct_get_message(jsm: JetStreamManager, nc: NatsConnection) -> None:
    await direct_stream(jsm, nc)
    msg = await jsm.direct.get_message("DIR", seq=2)
    assert (msg.subject, msg.seq, msg.data, msg.stream) == ("dir.b", 2, b"m2", "DIR")
    assert msg.headers is not None and msg.headers.get("X-I") == "2"
    assert msg.time.tzinfo is not None
    last = await jsm.direct.get_message("DIR", last_by_subj="dir.b")
    assert (last.seq, last.data) == (5, b"m5")
    nxt = await jsm.direct.get_message("DIR", next_by_subj="dir.a", seq=2)
    assert nxt.seq == 3
    first = await jsm.direct.get_message("DIR", next_by_subj="dir.c")
    assert first.seq == 4
    with pytest.raises(MessageNotFoundError):
        await jsm.direct.get_message("DIR", seq=100)
    with pytest.raises(MessageNotFoundError):
        await jsm.direct.get_message("DIR", last_by_subj="dir.none")
    with pytest.raises(InvalidOptionError):
        await jsm.direct.get_message("DIR")
    with pytest.raises(InvalidOptionError):
        await jsm.direct.get_message("DIR", seq=1, last_by_subj="dir.a")


async def test_direct_get_batch(jsm: JetStreamManager, nc: NatsConnection) -> None:
    await direct_stream(jsm, nc)
    batch = [m async for m in await jsm.direct.get_batch("DIR", batch=3, seq=2)]
    assert [m.seq for m in batch] == [2, 3, 4]
    assert [m.data for m in batch] == [b"m2", b"m3", b"m4"]
    assert all(m.stream == "DIR" for m in batch)
    assert batch[0].headers is not None and batch[0].headers.get("X-I") == "2"
    tail = [m.seq async for m in await jsm.direct.get_batch("DIR", batch=10, seq=5)]
    assert tail == [5, 6]
    only_a = [m.seq async for m in await jsm.direct.get_batch("DIR", batch=5, next_by_subj="dir.a")]
    assert only_a == [1, 3, 6]
    multi = [m async for m in await jsm.direct.get_batch("DIR", multi_last=["dir.a", "dir.b", "dir.c"])]
    assert sorted((m.subject, m.seq) for m in multi) == [("dir.a", 6), ("dir.b", 5), ("dir.c", 4)]
    wildcard = [m.seq async for m in await jsm.direct.get_batch("DIR", multi_last=["dir.>"])]
    assert sorted(wildcard) == [4, 5, 6]
    as_of_4 = [m.seq async for m in await jsm.direct.get_batch("DIR", multi_last=["dir.>"], up_to_seq=4)]
    assert sorted(as_of_4) == [2, 3, 4]
    with pytest.raises(InvalidOptionError):
        await jsm.direct.get_batch("DIR")


async def test_direct_get_batch_ends_on_empty_result(jsm: JetStreamManager, nc: NatsConnection) -> None:
    await direct_stream(jsm, nc)
    none = [m async for m in await jsm.direct.get_batch("DIR", batch=3, seq=50)]
    assert none == []


# -- misc ---------------------------------------------------------------------------------------------------------


async def test_manager_jetstream_and_options(jsm: JetStreamManager, nc: NatsConnection) -> None:
    js = jsm.jetstream()
    assert js.options == jsm.options
    await add_stream(jsm, "O")
    ack = await js.publish("o.a", b"x")
    assert ack.stream == "O"
    jsm2 = await js.jetstream_manager()
    assert (await jsm2.streams.info("O")).state.messages == 1
    custom = await nc.jetstream_manager(timeout=2, api_prefix="$JS.API.")
    assert custom.options.api_prefix == "$JS.API" and custom.options.timeout == 2
    with pytest.raises(InvalidOptionError):
        await nc.jetstream_manager(api_prefix="")
    in_domain = nc.jetstream(domain="hub", api_prefix="$JS.other.API")
    assert in_domain.api_prefix == "$JS.hub.API"  # the domain wins
    assert in_domain.options.domain == "hub"
    assert nc.jetstream(api_prefix="$JS.x.API.").api_prefix == "$JS.x.API"


async def test_api_errors_are_nats_errors_with_server_text(jsm: JetStreamManager) -> None:
    await add_stream(jsm, "E")
    with pytest.raises(JetStreamApiError) as err:
        await jsm.streams.add(name="E2", subjects=["e.>"], storage="memory")  # overlaps stream E
    assert isinstance(err.value, NatsError)
    assert err.value.status == 400
    assert err.value.err_code == 10065
    assert "overlap" in err.value.description
    assert str(err.value) == err.value.description


async def test_consumer_reset_moves_the_next_delivery(jsm: JetStreamManager, nc: NatsConnection) -> None:
    await jsm.streams.add(name="RESET", subjects=["reset.>"], storage="memory")
    js = nc.jetstream()
    for i in range(5):
        await js.publish("reset.x", b"%d" % i)
    await jsm.consumers.add("RESET", durable_name="c", ack_policy=AckPolicy.EXPLICIT)
    consumer = await js.consumers.get("RESET", "c")
    for expected in (1, 2, 3):
        msg = await consumer.next(expires=5)
        assert msg is not None and msg.seq == expected
        msg.ack()
    await nc.flush()
    info = await jsm.consumers.reset("RESET", "c", 2)  # back: 2 again
    assert info.name == "c" and info.config.durable_name == "c"
    again = await consumer.next(expires=5)
    assert again is not None and again.seq == 2
    again.ack()
    with pytest.raises(InvalidOptionError):
        await jsm.consumers.reset("RESET", "c", 0)
