"""The connection's heartbeat clock (cnats/heartbeats.py), with stand-in pulls: what it reports and when, on one
timer per connection. The real pulls on it are tested against a server (tests/jetstream)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from helpers.core import eventually

from cnats.events import DebugEvents, Events, Status
from cnats.heartbeats import HeartbeatClock


class Pull:
    """What the clock needs of a puller."""

    def __init__(self, heartbeat: float) -> None:
        self._heartbeat = heartbeat
        self._activity = 0
        self._hb_watched = False
        self._hb_seen = 0
        self._hb_since = 0.0
        self._hb_misses = 0
        self.missed: list[tuple[float, int]] = []  # (loop time, misses in a row)
        self.statuses: list[str] = []

    def _heartbeats_missed(self) -> None:
        self.missed.append((asyncio.get_running_loop().time(), self._hb_misses))
        self._hb_watched = False  # as a puller does: watched again from its next pull

    def _on_connection_status(self, status: Status) -> None:
        self.statuses.append(status.type)


def _clock() -> tuple[HeartbeatClock, list[Callable[[Status], None]]]:
    observers: list[Callable[[Status], None]] = []
    return HeartbeatClock(asyncio.get_running_loop(), observers.append), observers


async def test_a_silent_pull_misses_after_two_intervals_and_an_active_one_never() -> None:
    clock, _ = _clock()
    silent, active = Pull(0.05), Pull(0.05)
    for pull in (silent, active):
        clock.join(pull)
        clock.watch(pull)
    watched_at = asyncio.get_running_loop().time()
    stop = asyncio.Event()

    async def keep_active() -> None:
        while not stop.is_set():
            active._activity += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(keep_active())
    try:
        await eventually(lambda: silent.missed, timeout=10)
    finally:
        stop.set()
        await task
    (when, in_a_row), *_ = silent.missed
    assert when - watched_at >= 0.1 and in_a_row == 1
    assert active.missed == []


async def test_misses_in_a_row_count_until_something_arrives() -> None:
    clock, _ = _clock()
    pull = Pull(0.02)
    clock.join(pull)
    clock.watch(pull)
    await eventually(lambda: len(pull.missed) == 1, timeout=10)
    pull._activity += 1  # a pull of its own (a recovery's) is not something heard
    clock.watch(pull)
    await eventually(lambda: len(pull.missed) == 2, timeout=10)
    assert [n for _, n in pull.missed] == [1, 2]
    clock.watch(pull)
    pull._activity += 1  # something arrived: the next miss starts a new row
    await eventually(lambda: len(pull.missed) == 3, timeout=10)
    assert pull.missed[2][1] == 1


async def test_an_unwatched_pull_is_not_reported_and_one_that_left_is_forgotten() -> None:
    clock, _ = _clock()
    unwatched, leaving, watched = Pull(0.02), Pull(0.02), Pull(0.02)
    for pull in (unwatched, leaving, watched):
        clock.join(pull)
    clock.watch(leaving)
    clock.watch(watched)
    clock.leave(leaving)
    clock.leave(leaving)  # idempotent
    await eventually(lambda: watched.missed, timeout=10)
    assert unwatched.missed == [] and leaving.missed == []
    assert clock.listening == 2


async def test_one_timer_follows_the_shortest_interval_and_stops_with_the_last_pull() -> None:
    clock, _ = _clock()
    slow, fast = Pull(30.0), Pull(0.02)
    clock.join(slow)
    assert clock._tick_every == 15.0
    clock.join(fast)
    assert clock._tick_every == 0.01
    clock.watch(fast)
    await eventually(lambda: fast.missed, timeout=10)
    clock.leave(fast)
    clock.leave(slow)
    assert clock._timer is None and clock.listening == 0
    clock.join(Pull(0))  # no heartbeats asked for: listed (for the status relay), no timer
    assert clock._timer is None and clock.listening == 1


async def test_disconnects_and_reconnects_are_relayed_to_every_pull() -> None:
    clock, observers = _clock()
    pulls = [Pull(5.0) for _ in range(3)]
    for pull in pulls:
        clock.join(pull)
    (relay,) = observers
    for kind in (Events.DISCONNECT, DebugEvents.PING_TIMER, Events.RECONNECT):
        relay(Status(kind, ""))
    clock.leave(pulls[0])
    relay(Status(Events.DISCONNECT, ""))
    assert [pull.statuses for pull in pulls] == [
        [Events.DISCONNECT, Events.RECONNECT],
        [Events.DISCONNECT, Events.RECONNECT, Events.DISCONNECT],
        [Events.DISCONNECT, Events.RECONNECT, Events.DISCONNECT],
    ]
    for pull in pulls:
        clock.leave(pull)
