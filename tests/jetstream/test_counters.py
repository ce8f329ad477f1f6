"""Distributed counters (server 2.12+) through ``js.views.counters``, against a real server: adds are summed by the
server, the acknowledgement carries the value, and the last message of a subject holds it."""

from __future__ import annotations

import pytest

from cnats.errors import InvalidNameError, InvalidOptionError, JetStreamApiError
from cnats.jetstream import JetStreamClient, JetStreamManager


@pytest.fixture
async def counters_stream(jsm: JetStreamManager) -> str:
    await jsm.streams.add(name="COUNTERS", subjects=["count.>"], storage="memory", allow_msg_counter=True)
    return "COUNTERS"


async def test_adds_are_summed_and_read_back(js: JetStreamClient, counters_stream: str) -> None:
    counters = js.views.counters(counters_stream)
    assert await counters.get("count.hits") is None  # never added to
    assert await counters.add("count.hits", 5) == 5
    assert await counters.add("count.hits", -2) == 3
    assert await counters.add("count.other", 10) == 10
    assert (await counters.get("count.hits"), await counters.get("count.other")) == (3, 10)


async def test_a_publish_with_an_increment_acknowledges_the_value(js: JetStreamClient, counters_stream: str) -> None:
    ack = await js.publish("count.raw", b"", headers={"Nats-Incr": "+7"})
    assert (ack.stream, ack.val) == (counters_stream, "7")
    assert await js.views.counters(counters_stream).get("count.raw") == 7


async def test_bad_input_and_a_stream_that_counts_nothing(js: JetStreamClient, jsm: JetStreamManager) -> None:
    with pytest.raises(InvalidNameError):
        js.views.counters("a.b")
    await jsm.streams.add(name="PLAIN", subjects=["plain.>"], storage="memory")
    counters = js.views.counters("PLAIN")
    for delta in (1.5, True, "1"):
        with pytest.raises(InvalidOptionError):
            await counters.add("plain.x", delta)  # type: ignore[arg-type]
    with pytest.raises(JetStreamApiError):
        await counters.add("plain.x", 1)  # the stream was not made with allow_msg_counter
