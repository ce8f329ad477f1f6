"""Unit tests of cnats.nuid: Nuid, the shared nuid and create_inbox."""

from __future__ import annotations

import importlib
import os
import string
import sys
import timeit

import pytest

from cnats.errors import InvalidOptionError
from cnats.nuid import Nuid, create_inbox, nuid

nuid_module = importlib.import_module("cnats.nuid")  # `cnats.nuid` is the shared instance
ALPHABET = set(string.digits + string.ascii_letters)


def test_length_and_alphabet() -> None:
    gen = Nuid()
    for _ in range(10_000):
        n = gen.next()
        assert len(n) == 22
        assert set(n) <= ALPHABET


def test_uniqueness_100k() -> None:
    gen = Nuid()
    ids = [gen.next() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)


def test_two_generators_differ() -> None:
    a, b = Nuid(), Nuid()
    ids = {a.next() for _ in range(1000)} | {b.next() for _ in range(1000)}
    assert len(ids) == 2000
    assert a.next()[:12] != b.next()[:12]


def test_prefix_is_stable_between_resets() -> None:
    gen = Nuid()
    prefixes = {gen.next()[:12] for _ in range(10_000)}
    assert len(prefixes) == 1


def test_sequence_increases() -> None:
    gen = Nuid()
    digits = string.digits + string.ascii_uppercase + string.ascii_lowercase

    def seq(n: str) -> int:
        value = 0
        for c in n[12:]:
            value = value * 62 + digits.index(c)
        return value

    previous = seq(gen.next())
    for _ in range(5000):
        current = seq(gen.next())
        assert 33 <= current - previous < 333
        previous = current


def test_reset_changes_prefix() -> None:
    gen = Nuid()
    before = gen.next()
    gen.reset()
    after = gen.next()
    assert before[:12] != after[:12]
    assert before != after


def test_sequence_overflow_renews_prefix() -> None:
    gen = Nuid()
    prefix = gen.next()[:12]
    # jump to the very end of the 10-digit sequence space
    gen._high = 62**8 - 1
    gen._head = gen._prefix + "z" * 8
    gen._low = 62**2 - 1
    seen = {gen.next() for _ in range(10)}
    assert len(seen) == 10
    assert gen.next()[:12] != prefix
    assert all(len(n) == 22 and set(n) <= ALPHABET for n in seen)


def test_carry_into_high_part() -> None:
    gen = Nuid()
    gen._low = 62**2 - 1
    high = gen._high
    n = gen.next()
    assert gen._high == high + 1
    assert len(n) == 22
    assert n[:20] == gen._head


def test_shared_instance() -> None:
    assert isinstance(nuid, Nuid)
    assert nuid_module.nuid is nuid
    assert len(nuid.next()) == 22
    assert "Nuid(" in repr(nuid)


@pytest.mark.skipif(sys.gettrace() is not None, reason="timing is meaningless under a tracer (coverage)")
def test_next_is_fast() -> None:
    # generous bound so slow CI machines pass; typical cost is ~0.1-0.2 µs
    per_call = min(timeit.repeat(nuid.next, number=20_000, repeat=5)) / 20_000
    assert per_call < 2e-6


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_renews_prefix() -> None:
    before = nuid.next()[:12]
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its prefix and leave without running pytest's cleanup
        try:
            os.write(write_fd, nuid.next()[:12].encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    child = os.read(read_fd, 64).decode()
    os.close(read_fd)
    os.waitpid(pid, 0)
    assert len(child) == 12
    assert child != before
    assert nuid.next()[:12] == before


# -- create_inbox ------------------------------------------------------------------------------------------


def test_create_inbox_default() -> None:
    inbox = create_inbox()
    prefix, _, tail = inbox.partition(".")
    assert prefix == "_INBOX"
    assert len(tail) == 22 and set(tail) <= ALPHABET
    assert create_inbox() != create_inbox()


def test_create_inbox_empty_prefix() -> None:
    assert create_inbox("").startswith("_INBOX.")
    assert len(create_inbox("")) == len("_INBOX.") + 22


@pytest.mark.parametrize("prefix", ["foo", "a.b.c", "_INBOX.me", "x-y_z", "star*ish", "gt>ish", "a.*b", "a.b>"])
def test_create_inbox_custom_prefix(prefix: str) -> None:
    inbox = create_inbox(prefix)
    assert inbox.startswith(prefix + ".")
    assert len(inbox) == len(prefix) + 1 + 22


@pytest.mark.parametrize("prefix", ["*", ">", "a.*", "a.>", "*.a", "a.*.b", ">.x", "a.b.>"])
def test_create_inbox_rejects_wildcard_tokens(prefix: str) -> None:
    with pytest.raises(InvalidOptionError):
        create_inbox(prefix)


def test_create_inbox_rejects_non_str() -> None:
    with pytest.raises(InvalidOptionError):
        create_inbox(123)  # type: ignore[arg-type]


def test_inboxes_are_unique() -> None:
    inboxes = {create_inbox("p") for _ in range(10_000)}
    assert len(inboxes) == 10_000


def test_module_exports() -> None:
    assert set(nuid_module.__all__) == {"Nuid", "create_inbox", "nuid"}
