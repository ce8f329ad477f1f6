"""``HeartbeatClock``: the one place a connection's running pulls are watched from.

A pull asks the server for an idle heartbeat every ``interval`` seconds while it has nothing to send; two intervals
without anything arriving mean the pull (or the server) is gone. Rather than a loop timer per pull, re-armed for as
long as it runs, and a status observer per pull (10,000 running consumers were 10,000 timer handles and 10,000
observers for the collector to walk), every pull of a connection joins one clock:

- one timer ticks every half of the shortest interval in use; each tick compares a watched pull's activity count
  (bumped by every arrival and pull, no clock read) with the one it saw last, and a pull silent for two of its
  intervals has missed its heartbeats (noticed after 2 to 2.5 intervals of silence);
- the clock is the pulls' one observer of the connection's status, and hands each of them the disconnects and
  reconnects.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Protocol

from .events import Events, Status
from .protocol import untrack_while_live

__all__ = ["HeartbeatClock", "Listener"]

_RELAYED = frozenset({Events.DISCONNECT, Events.RECONNECT})


class Listener(Protocol):
    """What a clock watches (a puller). ``_heartbeat`` is its interval (0: it asked for none) and ``_activity`` its
    own count; the ``_hb_*`` fields are the clock's, kept on the listener so that watching costs no object each."""

    _heartbeat: float
    _activity: int
    _hb_watched: bool
    _hb_seen: int
    _hb_since: float
    _hb_misses: int

    def _heartbeats_missed(self) -> None:
        """Two intervals passed without activity (``_hb_misses`` times in a row)."""

    def _on_connection_status(self, status: Status) -> None:
        """The connection disconnected or reconnected."""


class HeartbeatClock:
    """The pulls of one connection: each ``join``s when it starts and ``leave``s when it ends, and is ``watch``-ed
    while its heartbeats count; a pull clears its own ``_hb_watched`` when they stop counting (the connection is
    down, when nothing can arrive, or a miss was reported: its next pull watches again)."""

    __slots__ = ("_intervals", "_listeners", "_tick_every", "_timer", "context", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, observe_status: Callable[[Callable[[Status], None]], None]):
        self.loop = loop
        # what the ticks run in (a listener that needs its own context enters it: a miss is rare)
        self.context = contextvars.Context()
        self._listeners: dict[Listener, None] = {}
        self._intervals: dict[float, int] = {}  # the heartbeat intervals of the listeners, and how many use each
        self._tick_every = 0.0
        self._timer: asyncio.TimerHandle | None = None
        observe_status(self._relay)

    # -- membership ---------------------------------------------------------------------------------------------
    def join(self, listener: Listener) -> None:
        listener._hb_watched = False
        self._listeners[listener] = None
        untrack_while_live(self._listeners)  # held until they leave: a full collection need not walk them
        interval = listener._heartbeat
        if interval:
            self._intervals[interval] = self._intervals.get(interval, 0) + 1
            if self._timer is None or interval / 2 < self._tick_every:
                self._schedule()

    def leave(self, listener: Listener) -> None:
        """Idempotent."""
        if listener not in self._listeners:
            return
        del self._listeners[listener]
        listener._hb_watched = False
        interval = listener._heartbeat
        if interval:
            left = self._intervals[interval] - 1
            if left:
                self._intervals[interval] = left
            else:
                del self._intervals[interval]
                if not self._intervals and self._timer is not None:
                    self._timer.cancel()
                    self._timer = None

    def watch(self, listener: Listener) -> None:
        """Count ``listener``'s silence from now (it joined, and asked for heartbeats)."""
        listener._hb_seen = listener._activity
        listener._hb_since = self.loop.time()
        listener._hb_watched = True

    @property
    def listening(self) -> int:
        """How many pulls have joined (for tests and diagnostics)."""
        return len(self._listeners)

    # -- the tick -------------------------------------------------------------------------------------------------
    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._tick_every = min(self._intervals) / 2
        self._timer = self.loop.call_later(self._tick_every, self._tick, context=self.context)

    def _tick(self) -> None:
        self._timer = None
        now = self.loop.time()
        silent: list[Listener] = []
        for listener in self._listeners:
            if not listener._hb_watched:
                continue
            activity = listener._activity
            if activity != listener._hb_seen:
                listener._hb_seen = activity
                listener._hb_since = now
                listener._hb_misses = 0
            elif now - listener._hb_since >= 2 * listener._heartbeat:
                listener._hb_since = now
                listener._hb_misses += 1
                silent.append(listener)
        if self._intervals:
            self._schedule()
        for listener in silent:  # (after the walk: a listener may leave, or start watching again, from here)
            listener._heartbeats_missed()

    # -- the connection's status ----------------------------------------------------------------------------------
    def _relay(self, status: Status) -> None:
        if status.type in _RELAYED:
            for listener in list(self._listeners):
                listener._on_connection_status(status)
