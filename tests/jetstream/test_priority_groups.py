"""Pull consumer priority groups (server 2.11+) against a real server: the consumer configuration (groups, policy,
``priority_timeout`` seconds <-> nanoseconds, the pinned state in the info), ``pinned_client`` (a standby gets
nothing while another client is pinned; ``unpin`` moves the pin; a pull with a stale pin id gets 423, forgets it and
pulls again without it, pinned again when nobody else is), ``overflow`` (``min_pending``, ``min_ack_pending``),
``prioritized`` (priority 0 served before 1), through ``next``, ``fetch`` and ``consume``; the options checked before
anything is sent, the server's refusals (status 400 on a pull, an unknown policy), and ``unpin``'s errors.

Two clients pull from two connections whose inboxes have their own prefixes, so that a spy subscribed to the
consumer's pull subject sees each client's pull requests as the server does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers.core import eventually, stays

import cnats
from cnats import Msg, NatsConnection
from cnats.errors import (
    ConsumerNotFoundError,
    InvalidNameError,
    InvalidOptionError,
    JetStreamApiError,
    ServerOptionNotAvailableError,
    StreamNotFoundError,
)
from cnats.jetstream import (
    AckPolicy,
    Consumer,
    ConsumerConfig,
    ConsumerDebugEvents,
    ConsumerInfo,
    ConsumerMessages,
    ConsumerStatus,
    JetStreamClient,
    JetStreamManager,
    JsMsg,
    PriorityGroupState,
    PriorityPolicy,
)
from cnats.testing import NatsServer


class PullSpy:
    """The pull requests of consumer ``S/<name>`` as the server gets them, by the inbox prefix of the client."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, msg: Msg) -> None:
        self.requests.append((msg.reply, json.loads(msg.data)))

    def of(self, prefix: str) -> list[dict[str, Any]]:
        return [request for reply, request in self.requests if reply.startswith(prefix + ".")]

    async def wait(self, prefix: str, count: int) -> list[dict[str, Any]]:
        await eventually(lambda: len(self.of(prefix)) >= count, what=f"{count} pulls from {prefix}")
        return self.of(prefix)


@pytest.fixture
async def one(nats_server: NatsServer) -> AsyncIterator[NatsConnection]:
    async with await cnats.connect(nats_server.url, inbox_prefix="_INBOX.one") as conn:
        yield conn


@pytest.fixture
async def two(nats_server: NatsServer) -> AsyncIterator[NatsConnection]:
    async with await cnats.connect(nats_server.url, inbox_prefix="_INBOX.two") as conn:
        yield conn


@pytest.fixture
async def spy(nc2: NatsConnection) -> PullSpy:
    seen = PullSpy()
    nc2.subscribe("$JS.API.CONSUMER.MSG.NEXT.S.*", callback=seen)
    await nc2.flush()
    return seen


async def publish_n(js: JetStreamClient, n: int, subject: str = "s.x") -> None:
    for i in range(n):
        await js.publish_async(subject, f"{i}")
    await asyncio.wait_for(js.publish_async_completed(), 10)


async def grouped(jsm: JetStreamManager, name: str, policy: PriorityPolicy, **config: Any) -> ConsumerInfo:
    config.setdefault("ack_policy", AckPolicy.EXPLICIT)
    config.setdefault("priority_groups", ["g"])
    return await jsm.consumers.add("S", durable_name=name, priority_policy=policy, **config)


async def collect(messages: ConsumerMessages, timeout: float = 10) -> list[JsMsg]:
    async def run() -> list[JsMsg]:
        return [m async for m in messages]

    return await asyncio.wait_for(run(), timeout)


def pin_of(msg: JsMsg | None) -> str:
    assert msg is not None and msg.headers is not None
    pin = msg.headers.get("Nats-Pin-Id")
    assert pin
    return pin


async def waiting(jsm: JetStreamManager, name: str, count: int) -> None:
    """Until the server holds ``count`` pulls of the consumer."""

    async def held() -> bool:
        return (await jsm.consumers.info("S", name)).num_waiting == count

    await eventually(held, what=f"{count} waiting pulls")


# -- configuration ------------------------------------------------------------------------------------------------


async def test_config_round_trip(nc: NatsConnection, jsm: JetStreamManager) -> None:
    config = ConsumerConfig(
        durable_name="P",
        ack_policy=AckPolicy.EXPLICIT,
        priority_groups=["g-1/x=y_z"],
        priority_policy=PriorityPolicy.PINNED_CLIENT,
        priority_timeout=2.5,
    )
    assert config.to_dict()["priority_timeout"] == 2_500_000_000
    assert config.to_dict()["priority_policy"] == "pinned_client"
    info = await jsm.consumers.add("S", config)
    assert info.config.priority_groups == ["g-1/x=y_z"]
    assert info.config.priority_policy is PriorityPolicy.PINNED_CLIENT
    assert info.config.priority_timeout == 2.5
    raw = json.loads((await nc.request("$JS.API.CONSUMER.INFO.S.P", b"", timeout=5)).data)["config"]
    assert (raw["priority_policy"], raw["priority_timeout"]) == ("pinned_client", 2_500_000_000)
    assert ConsumerConfig.from_dict(raw).priority_timeout == 2.5
    # the timeout may change; the server keeps it in nanoseconds
    updated = await jsm.consumers.update("S", "P", priority_timeout=90.0)
    assert updated.config.priority_timeout == 90.0
    raw = json.loads((await nc.request("$JS.API.CONSUMER.INFO.S.P", b"", timeout=5)).data)["config"]
    assert raw["priority_timeout"] == 90_000_000_000
    for name, policy in (("O", PriorityPolicy.OVERFLOW), ("R", PriorityPolicy.PRIORITIZED)):
        added = await grouped(jsm, name, policy)
        assert (added.config.priority_groups, added.config.priority_policy) == (["g"], policy)
        assert added.config.priority_timeout is None


async def test_info_says_who_is_pinned(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await grouped(jsm, "P", PriorityPolicy.PINNED_CLIENT)
    await publish_n(js, 1)
    consumer = await js.consumers.get("S", "P")
    msg = await consumer.next(group="g", expires=2)
    info = await jsm.consumers.info("S", "P")
    assert info.priority_groups is not None and len(info.priority_groups) == 1
    state = info.priority_groups[0]
    assert isinstance(state, PriorityGroupState)
    assert (state.group, state.pinned_client_id) == ("g", pin_of(msg))
    assert state.pinned_ts is not None and state.pinned_ts.tzinfo is not None


async def test_config_errors(jsm: JetStreamManager) -> None:
    for bad in ("", "a.b", "x" * 17, "sp ace", "é"):
        with pytest.raises(InvalidOptionError):
            await grouped(jsm, "P", PriorityPolicy.OVERFLOW, priority_groups=[bad])
    # a policy the server does not know: refused by the server, not guessed from its version
    with pytest.raises(ServerOptionNotAvailableError) as err:
        await jsm.consumers.add(
            "S", durable_name="F", ack_policy=AckPolicy.EXPLICIT, priority_groups=["g"], priority_policy="future"
        )
    cause = err.value.__cause__
    assert isinstance(cause, JetStreamApiError) and (cause.status, cause.err_code) == (400, 10025)
    # what the server says about a combination it does not take stays its own error
    with pytest.raises(JetStreamApiError) as api_err:
        await jsm.consumers.add("S", durable_name="N", priority_policy=PriorityPolicy.OVERFLOW)
    assert api_err.value.err_code == 10159  # a policy without a group
    assert not isinstance(api_err.value, ServerOptionNotAvailableError)


# -- pinned_client ------------------------------------------------------------------------------------------------


async def test_pinned_client_next(
    one: NatsConnection, two: NatsConnection, jsm: JetStreamManager, spy: PullSpy
) -> None:
    await grouped(jsm, "P", PriorityPolicy.PINNED_CLIENT, priority_timeout=60.0)
    await publish_n(one.jetstream(), 10)
    first = await one.jetstream().consumers.get("S", "P")
    second = await two.jetstream().consumers.get("S", "P")

    msg = await first.next(group="g", expires=2)
    pin1 = pin_of(msg)
    assert msg is not None and msg.seq == 1
    msg.ack()
    assert await second.next(group="g", expires=1) is None  # a standby gets nothing while the first is pinned
    again = await first.next(group="g", expires=2)
    assert pin_of(again) == pin1 and again is not None and again.seq == 2
    again.ack()
    pulls = await spy.wait("_INBOX.one", 2)
    assert "id" not in pulls[0] and pulls[1]["id"] == pin1  # the pin goes with every later pull
    assert all(p["group"] == "g" for p in pulls)

    await jsm.consumers.unpin("S", "P", "g")
    taken = await second.next(group="g", expires=2)  # now the second client can be pinned
    pin2 = pin_of(taken)
    assert pin2 != pin1
    assert taken is not None and taken.seq == 3
    taken.ack()

    # the first pulls with its old pin: refused (423), it forgets the pin and pulls again without it, a standby
    # while the second is pinned
    assert await first.next(group="g", expires=2) is None
    pulls = await spy.wait("_INBOX.one", 4)
    assert pulls[2]["id"] == pin1 and "id" not in pulls[3]
    assert pulls[3]["batch"] == 1 and 0 < pulls[3]["expires"] <= 2_000_000_000

    # nobody pinned: its next pull (without a pin id) is pinned again
    await jsm.consumers.unpin("S", "P", "g")
    back = await first.next(group="g", expires=2)
    pin3 = pin_of(back)
    assert pin3 not in (pin1, pin2) and back is not None and back.seq == 4
    back.ack()
    assert "id" not in (await spy.wait("_INBOX.one", 5))[4]
    # and the second, whose pin is stale now, is refused, forgets it and waits as a standby
    assert await second.next(group="g", expires=1.5) is None
    second_pulls = await spy.wait("_INBOX.two", 4)
    assert "id" not in second_pulls[0] and "id" not in second_pulls[1]  # a standby, then pinned by its first pull
    assert second_pulls[2]["id"] == pin2 and "id" not in second_pulls[3]
    assert pin_of(await first.next(group="g", expires=2)) == pin3


async def test_pin_refused_while_waiting_is_asked_again_within_one_fetch(
    one: NatsConnection, jsm: JetStreamManager, spy: PullSpy
) -> None:
    await grouped(jsm, "P", PriorityPolicy.PINNED_CLIENT, priority_timeout=60.0)
    js = one.jetstream()
    consumer = await js.consumers.get("S", "P")
    await publish_n(js, 1)
    pin1 = pin_of(await consumer.next(group="g", expires=2))
    await jsm.consumers.unpin("S", "P", "g")
    # the pull with the old pin waits (nobody is pinned), is ended with 423 when a message comes, and the fetch
    # pulls again without the pin: that pull is pinned and gets both messages
    messages = await consumer.fetch(group="g", max_messages=2, expires=5)
    statuses: list[ConsumerStatus] = []
    reader = asyncio.get_running_loop().create_task(_record(messages, statuses))
    await waiting(jsm, "P", 1)
    await publish_n(js, 2)
    got = await collect(messages)
    await reader
    assert [m.seq for m in got] == [2, 3]
    pin2 = pin_of(got[0])
    assert pin2 != pin1 and pin_of(got[1]) == pin2
    pulls = await spy.wait("_INBOX.one", 3)
    assert pulls[1]["id"] == pin1 and "id" not in pulls[2] and pulls[2]["batch"] == 2
    assert any(s.type == ConsumerDebugEvents.DEBUG_EVENT and str(s.data).startswith("423") for s in statuses)


async def _record(messages: ConsumerMessages, into: list[ConsumerStatus]) -> None:
    async for status in messages.status():
        into.append(status)


async def test_pinned_client_consume(
    one: NatsConnection, two: NatsConnection, jsm: JetStreamManager, spy: PullSpy
) -> None:
    await grouped(jsm, "P", PriorityPolicy.PINNED_CLIENT, priority_timeout=60.0)
    js = one.jetstream()
    worker = await js.consumers.get("S", "P")
    standby = await two.jetstream().consumers.get("S", "P")
    got: list[JsMsg] = []

    def work(msg: JsMsg) -> None:
        got.append(msg)
        msg.ack()

    messages = await worker.consume(group="g", max_messages=4, expires=2, callback=work)
    statuses: list[ConsumerStatus] = []
    recorder = asyncio.get_running_loop().create_task(_record(messages, statuses))
    await waiting(jsm, "P", 1)  # the worker's pull is first in line
    standby_got: list[JsMsg] = []
    standby_messages = await standby.consume(group="g", max_messages=4, expires=2, callback=standby_got.append)
    await waiting(jsm, "P", 2)

    await publish_n(js, 6)
    await eventually(lambda: len(got) == 6, what="6 messages")
    pin1 = pin_of(got[0])
    assert {pin_of(m) for m in got} == {pin1}
    await eventually(lambda: any(p.get("id") == pin1 for p in spy.of("_INBOX.one")), what="a refill with the pin")
    await stays(lambda: not standby_got, 0.3, what="the standby gets nothing")

    # unpinned: the worker's waiting pulls get 423 when the next message comes, it pulls again without the pin and
    # one of the two is pinned; between them they get every message once
    await jsm.consumers.unpin("S", "P", "g")
    await publish_n(js, 6)
    await eventually(lambda: len(got) + len(standby_got) == 12, timeout=10, what="12 messages")
    assert sorted(m.seq for m in got + standby_got) == list(range(1, 13))
    pins = {pin_of(m) for m in got[6:] + standby_got}
    assert len(pins) == 1 and pins != {pin1}  # one new pin for all that came after
    await eventually(lambda: any(str(s.data).startswith("423") for s in statuses), what="423 reported")
    await eventually(lambda: any("id" not in p for p in spy.of("_INBOX.one")[1:]), what="a pull without the pin")
    for m in standby_got:
        m.ack()
    await standby_messages.close()
    await messages.close()
    await recorder


# -- overflow -----------------------------------------------------------------------------------------------------


async def test_overflow_min_pending(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await grouped(jsm, "O", PriorityPolicy.OVERFLOW)
    consumer = await js.consumers.get("S", "O")
    await publish_n(js, 3)
    assert await consumer.next(group="g", min_pending=5, expires=1) is None  # 3 pending
    # a waiting pull is served once enough is pending
    messages = await consumer.fetch(group="g", min_pending=5, max_messages=1, expires=10)
    await waiting(jsm, "O", 1)
    await publish_n(js, 1)
    await stays(lambda: messages.received == 0, 0.3, what="nothing while 4 are pending")
    await publish_n(js, 1)
    got = await collect(messages)
    assert [m.seq for m in got] == [1]
    got[0].ack()
    # consume: served while at least 3 are pending (4 now): two messages, then the pulls wait
    received: list[JsMsg] = []
    consuming = await consumer.consume(group="g", min_pending=3, max_messages=10, expires=2, callback=received.append)
    await eventually(lambda: len(received) == 2, what="2 messages")
    await stays(lambda: len(received) == 2, 0.3, what="no more while 2 are pending")
    await consuming.close()
    assert [m.seq for m in received] == [2, 3]
    assert (await jsm.consumers.info("S", "O")).num_pending == 2


async def test_overflow_min_ack_pending(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await grouped(jsm, "O", PriorityPolicy.OVERFLOW)
    consumer = await js.consumers.get("S", "O")
    await publish_n(js, 10)
    unacked = await collect(await consumer.fetch(group="g", max_messages=2, expires=2))  # no condition: served
    assert [m.seq for m in unacked] == [1, 2]
    assert await consumer.next(group="g", min_ack_pending=3, expires=1) is None  # 2 unacknowledged
    third = await consumer.next(group="g", expires=2)
    assert third is not None and third.seq == 3
    served = await consumer.next(group="g", min_ack_pending=3, expires=2)  # 3 unacknowledged now
    assert served is not None and served.seq == 4
    # either condition suffices
    either = await consumer.next(group="g", min_pending=1000, min_ack_pending=1, expires=2)
    assert either is not None and either.seq == 5


# -- prioritized --------------------------------------------------------------------------------------------------


async def test_prioritized(js: JetStreamClient, jsm: JetStreamManager, spy: PullSpy) -> None:
    await grouped(jsm, "R", PriorityPolicy.PRIORITIZED)
    consumer = await js.consumers.get("S", "R")
    low = await consumer.fetch(group="g", priority=1, max_messages=1, expires=10)  # waiting first
    await waiting(jsm, "R", 1)
    high = await consumer.fetch(group="g", priority=0, max_messages=1, expires=10)
    await waiting(jsm, "R", 2)
    await publish_n(js, 1)
    assert [m.seq for m in await collect(high)] == [1]
    assert low.received == 0
    await publish_n(js, 1)
    assert [m.seq for m in await collect(low)] == [2]
    await eventually(lambda: len(spy.requests) == 2)
    assert [r["priority"] for _, r in spy.requests] == [1, 0]
    # next and consume take a priority too
    await publish_n(js, 2)
    nxt = await consumer.next(group="g", priority=9, expires=2)
    assert nxt is not None and nxt.seq == 3
    received: list[JsMsg] = []
    consuming = await consumer.consume(group="g", priority=2, max_messages=5, expires=2, callback=received.append)
    await eventually(lambda: len(received) == 1)
    await consuming.close()
    assert received[0].seq == 4
    await eventually(lambda: len(spy.requests) >= 4)
    assert [r["priority"] for _, r in spy.requests[2:4]] == [9, 2]


# -- checks and refusals ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"min_pending": 5},
        {"min_ack_pending": 5},
        {"priority": 1},
        {"group": ""},
        {"group": "a.b"},
        {"group": "x" * 17},
        {"group": "with space"},
        {"group": 7},
        {"group": "g", "priority": 10},
        {"group": "g", "priority": -1},
        {"group": "g", "priority": True},
        {"group": "g", "priority": 1.0},
        {"group": "g", "min_pending": 0},
        {"group": "g", "min_pending": -3},
        {"group": "g", "min_ack_pending": False},
        {"group": "g", "min_ack_pending": 2.5},
    ],
)
async def test_options_checked_before_sending(
    options: dict[str, Any], js: JetStreamClient, jsm: JetStreamManager, spy: PullSpy
) -> None:
    await grouped(jsm, "O", PriorityPolicy.OVERFLOW)
    consumer = await js.consumers.get("S", "O")
    with pytest.raises(InvalidOptionError):
        await consumer.next(expires=1, **options)
    with pytest.raises(InvalidOptionError):
        await consumer.fetch(expires=1, **options)
    with pytest.raises(InvalidOptionError):
        await consumer.consume(expires=1, **options)
    ordered = await js.consumers.get("S")
    with pytest.raises(InvalidOptionError):
        await ordered.fetch(expires=1, **options)
    with pytest.raises(InvalidOptionError):
        await ordered.consume(expires=1, **options)
    await consumer.info()  # a round trip: a pull sent would have reached the spy by now
    assert spy.requests == []


async def test_ordered_consumer_takes_no_group(js: JetStreamClient) -> None:
    ordered = await js.consumers.get("S")
    with pytest.raises(InvalidOptionError):
        await ordered.next(group="g", expires=1)
    with pytest.raises(InvalidOptionError):
        await ordered.consume(group="g")
    await publish_n(js, 1)
    msg = await ordered.next(expires=2)  # not spoiled by the refusals
    assert msg is not None and msg.seq == 1


async def test_server_refusals_end_the_pull(js: JetStreamClient, jsm: JetStreamManager) -> None:
    await grouped(jsm, "P", PriorityPolicy.PINNED_CLIENT)
    consumer = await js.consumers.get("S", "P")
    await publish_n(js, 1)
    with pytest.raises(JetStreamApiError) as err:
        await asyncio.wait_for(consumer.next(expires=5), 3)  # at once, not at expiry
    assert (err.value.status, err.value.description) == (400, "Bad Request - Priority Group missing")
    with pytest.raises(JetStreamApiError) as err:
        await collect(await consumer.fetch(group="other", expires=5), timeout=3)
    assert err.value.description == "Bad Request - Invalid Priority Group"
    with pytest.raises(JetStreamApiError) as err:
        await collect(await consumer.fetch(group="g", min_pending=1, expires=5), timeout=3)
    assert err.value.description == "Bad Request - Not a Overflow Priority consumer"
    messages = await consumer.consume(expires=5)
    with pytest.raises(JetStreamApiError) as err:
        await collect(messages, timeout=3)
    assert err.value.description == "Bad Request - Priority Group missing"
    assert isinstance(await messages.closed, JetStreamApiError)
    # the group it has works
    msg = await consumer.next(group="g", expires=2)
    assert msg is not None and msg.seq == 1


async def test_no_group_reads_no_headers(js: JetStreamClient, jsm: JetStreamManager, spy: PullSpy) -> None:
    await jsm.consumers.add("S", durable_name="plain", ack_policy=AckPolicy.EXPLICIT)
    await grouped(jsm, "O", PriorityPolicy.OVERFLOW)
    await grouped(jsm, "P", PriorityPolicy.PINNED_CLIENT)
    plain = await js.consumers.get("S", "plain")
    overflow = await js.consumers.get("S", "O")
    pinned = await js.consumers.get("S", "P")
    cases: list[tuple[Consumer, dict[str, Any], bool]] = [
        (plain, {}, False),
        (overflow, {"group": "g"}, False),
        (pinned, {"group": "g"}, True),
    ]
    for consumer, options, reads in cases:
        messages = await consumer.fetch(expires=1, **options)
        assert (messages._pull._on_arrival is not None) is reads
        await messages.close()
    plain_request = (await spy.wait("_INBOX", 3))[0]
    assert set(plain_request) == {"batch", "expires", "idle_heartbeat"}


# -- unpin --------------------------------------------------------------------------------------------------------


async def test_unpin_errors(jsm: JetStreamManager) -> None:
    await grouped(jsm, "P", PriorityPolicy.PINNED_CLIENT)
    await jsm.consumers.unpin("S", "P", "g")  # nobody pinned: fine
    with pytest.raises(ConsumerNotFoundError) as missing:
        await jsm.consumers.unpin("S", "MISSING", "g")
    assert (missing.value.status, missing.value.err_code) == (404, 10014)
    with pytest.raises(StreamNotFoundError):
        await jsm.consumers.unpin("NOSTREAM", "P", "g")
    with pytest.raises(JetStreamApiError) as not_its:
        await jsm.consumers.unpin("S", "P", "other")
    assert (not_its.value.status, not_its.value.err_code) == (400, 10160)
    for bad in ("", "a.b", "x" * 17):
        with pytest.raises(InvalidOptionError):
            await jsm.consumers.unpin("S", "P", bad)
    with pytest.raises(InvalidNameError):
        await jsm.consumers.unpin("S", "a.b", "g")
    with pytest.raises(InvalidNameError):
        await jsm.consumers.unpin("", "P", "g")
