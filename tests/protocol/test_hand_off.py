"""HandOff: the blocking client's publish fast path, in both cores. The common case (small bytes, no reply, no
headers, a subject checked before, still open) is queued as it is; every other call goes to the slow path."""

from __future__ import annotations

import gc
from collections import deque
from types import ModuleType
from typing import Any

import pytest


class Outbox:
    def __init__(self) -> None:
        self.waking = False
        self.wakes = 0
        self.waits = 0

    def wake(self) -> None:
        self.waking = True
        self.wakes += 1

    def wait_for_room(self) -> None:
        self.waits += 1


def publish(subject: str, payload: bytes) -> None:
    raise AssertionError("only the loop calls it")


def hand_off(core: ModuleType, **overrides: Any) -> tuple[Any, deque[Any], Outbox, list[tuple[Any, ...]]]:
    items: deque[Any] = deque()
    outbox = Outbox()
    slow: list[tuple[Any, ...]] = []
    fields: dict[str, Any] = {"known": {"a.b"}, "small": 8, "crowded": 3, **overrides}
    handoff = core.HandOff(
        items, fields["known"], publish, outbox, lambda *args: slow.append(args), fields["small"], fields["crowded"]
    )
    return handoff, items, outbox, slow


def test_the_common_case_is_queued_and_wakes_the_loop_once(core: ModuleType) -> None:
    handoff, items, outbox, slow = hand_off(core)
    handoff("a.b", b"1")
    handoff("a.b")  # the default payload: empty bytes
    assert list(items) == [(publish, "a.b", b"1"), (publish, "a.b", b"")]
    assert (outbox.wakes, outbox.waits, slow) == (1, 0, [])
    handoff("a.b", b"333")  # the third waiting item: the publisher waits for room
    assert (len(items), outbox.waits) == (3, 1)
    if core.__name__.endswith("_protocol"):
        assert not any(gc.is_tracked(item) for item in items)  # in no cycle: kept off the collector's lists


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("other", b"1"), {}),  # not checked before
        (("a.b", bytearray(b"1")), {}),
        (("a.b", "text"), {}),
        (("a.b", b"123456789"), {}),  # larger than small
        (("a.b", b"1"), {"reply": "r"}),
        (("a.b", b"1"), {"headers": {"K": "v"}}),
    ],
)
def test_everything_else_goes_to_the_slow_path(core: ModuleType, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    handoff, items, outbox, slow = hand_off(core)
    handoff(*args, **kwargs)
    assert slow == [(*args, kwargs.get("reply"), kwargs.get("headers"))]
    assert (len(items), outbox.wakes) == (0, 0)


def test_once_closed_every_publish_goes_to_the_slow_path(core: ModuleType) -> None:
    handoff, items, _, slow = hand_off(core)
    handoff.open = False
    handoff("a.b", b"1")
    assert (len(items), slow) == (0, [("a.b", b"1", None, None)])
