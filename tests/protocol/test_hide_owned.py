"""``hide_owned`` and ``reveal``: what only a running consumer references is kept off the collector's lists, and
given back when it ends. The compiled core hides exactly what the roots own (the collector's own accounting over
the subgraph); the pure-Python core cannot untrack anything and hides nothing."""

from __future__ import annotations

import gc
import weakref
from types import ModuleType

from helpers.protocol import load_core

CYTHON = load_core("cython")


class Machine:
    """A stand-in for a consumer's machinery: its private parts, and a reference to something shared."""

    def __init__(self, shared: list[object]) -> None:
        self.queue: list[object] = [[1], {"a": [2]}]
        self.state = {"n": 0, "pending": [3]}
        self.tick = self.step  # a bound method only it references
        self.shared = shared  # the caller keeps it too
        self.part = Part()

    def step(self) -> None:
        pass


class Part:
    def __init__(self) -> None:
        self.items = [object()]


class Stranger:
    """A type the search does not go into."""

    def __init__(self) -> None:
        self.items = [object()]


def test_what_only_the_roots_reach_is_hidden_and_given_back(core: ModuleType) -> None:
    shared: list[object] = [[4]]
    machine = Machine(shared)
    machine.stranger = Stranger()  # type: ignore[attr-defined]
    hidden = core.hide_owned((machine,), (Part,))
    if core is not CYTHON:
        assert hidden == []  # nothing can be untracked from Python
        assert gc.is_tracked(machine)
        return
    private = [machine, machine.queue, machine.queue[0], machine.queue[1], machine.state, machine.state["pending"]]
    private += [machine.tick, machine.part, machine.part.items]
    assert all(not gc.is_tracked(obj) for obj in private)
    assert not gc.is_tracked(hidden)
    # referenced from outside (and what that reaches), or of a type not searched: left to the collector
    assert gc.is_tracked(shared) and gc.is_tracked(shared[0])
    assert gc.is_tracked(machine.stranger) and gc.is_tracked(machine.stranger.items)  # type: ignore[attr-defined]
    core.reveal(hidden)
    assert hidden == []
    assert all(gc.is_tracked(obj) for obj in private)


def test_a_root_may_be_referenced_from_outside(core: ModuleType) -> None:
    machine = Machine([])
    listed_by_the_connection = [machine.tick]
    hidden = core.hide_owned((machine, machine.tick), ())
    if core is CYTHON:
        assert not gc.is_tracked(machine.tick) and not gc.is_tracked(machine.state)
    core.reveal(hidden)
    assert gc.is_tracked(machine.tick) and listed_by_the_connection == [machine.tick]


def test_a_cycle_through_revealed_objects_is_collected(core: ModuleType) -> None:
    machine = Machine([])
    machine.state["self"] = machine  # a cycle: machine -> state -> machine
    hidden = core.hide_owned((machine,), ())
    gone = weakref.ref(machine)
    del machine
    gc.collect()
    # hidden, the list keeps it (as the scope would while it runs); the pure core hid nothing
    assert (gone() is not None) is (core is CYTHON)
    core.reveal(hidden)
    del hidden
    gc.collect()
    assert gone() is None


def test_a_large_graph_is_left_alone(core: ModuleType) -> None:
    machine = Machine([])
    machine.queue.extend([i] for i in range(5000))
    assert core.hide_owned((machine,), ()) == []
    assert gc.is_tracked(machine)


def test_weak_references_stay_tracked(core: ModuleType) -> None:
    """When the referent of a weak reference with a callback becomes cyclic garbage, the collector moves the
    reference between its own lists: an untracked one would crash the interpreter there."""
    machine = Machine([])
    target = Part()
    machine.ref = weakref.ref(target, lambda _: None)  # type: ignore[attr-defined]
    hidden = core.hide_owned((machine, machine.ref), (weakref.ref,))  # type: ignore[attr-defined]
    assert gc.is_tracked(machine.ref)  # type: ignore[attr-defined]
    core.reveal(hidden)
