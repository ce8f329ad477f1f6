"""Unique identifiers (NUIDs) and reply inboxes.

A NUID is 22 base-62 characters: a 12-character random prefix, then a 10-character sequence that starts at a
random value and grows by a random increment on every call. Only the rare prefix renewal (when the sequence
overflows) touches the system's random source, so ``next()`` costs a few additions and table lookups.
"""

from __future__ import annotations

import os
import secrets
import weakref

from cnats.errors import InvalidOptionError

__all__ = ["Nuid", "create_inbox", "nuid"]

_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BASE = len(_DIGITS)  # 62
_PREFIX_LEN = 12
_SEQ_LEN = 10
_MIN_INC = 33
_MAX_INC = 333

# The 10-digit sequence is kept as an 8-digit high part, whose text is cached together with the prefix, and a
# 2-digit low part rendered from a table. The increment (< 62**2) carries into the high part only about every
# 20 calls, so the common path of next() is one addition, one comparison and one table lookup.
_PAIR = _BASE**2
_HIGH_MAX = _BASE ** (_SEQ_LEN - 2)
_TWO = tuple(a + b for a in _DIGITS for b in _DIGITS)


def _eight_digits(n: int) -> str:
    """``n`` (< 62**8) as exactly eight base-62 digits."""
    n, d4 = divmod(n, _PAIR)
    n, d3 = divmod(n, _PAIR)
    d1, d2 = divmod(n, _PAIR)
    return _TWO[d1] + _TWO[d2] + _TWO[d3] + _TWO[d4]


class Nuid:
    """A generator of 22-character identifiers, unique within a process (in practice across processes too)."""

    __slots__ = ("__weakref__", "_head", "_high", "_inc", "_low", "_prefix")

    _prefix: str
    _high: int  # sequence // 62**2
    _low: int  # sequence % 62**2
    _inc: int
    _head: str  # _prefix + the 8 digits of _high

    def __init__(self) -> None:
        self.reset()
        _instances.add(self)

    def next(self) -> str:
        """The next identifier.

        Raises:
            Nothing: the sequence never runs out (a new prefix is drawn when it overflows).
        """
        low = self._low + self._inc
        if low >= _PAIR:
            low -= _PAIR
            self._carry()
        self._low = low
        return self._head + _TWO[low]

    def _carry(self) -> None:
        high = self._high + 1
        if high >= _HIGH_MAX:
            # the sequence space is exhausted: a new prefix makes every later id distinct from earlier ones
            self.reset()
        else:
            self._high = high
            self._head = self._prefix + _eight_digits(high)

    def reset(self) -> None:
        """Pick a new random prefix and a new random sequence start and increment.

        Raises:
            Nothing: it only draws new random values.
        """
        rand = secrets.SystemRandom()
        self._prefix = "".join([rand.choice(_DIGITS) for _ in range(_PREFIX_LEN)])
        self._high, self._low = divmod(rand.randrange(_BASE**_SEQ_LEN), _PAIR)
        self._inc = rand.randrange(_MIN_INC, _MAX_INC)
        self._head = self._prefix + _eight_digits(self._high)

    def __repr__(self) -> str:
        return f"Nuid(prefix={self._prefix!r})"


# Every generator gets a fresh prefix in a forked child, so that parent and child never produce the same ids.
_instances: weakref.WeakSet[Nuid] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for gen in list(_instances):
        gen.reset()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_reset_after_fork)

nuid = Nuid()
"""The shared generator used by cnats (inboxes, request ids, ...)."""


def create_inbox(prefix: str = "_INBOX") -> str:
    """A new inbox subject ``f"{prefix}.{nuid.next()}"``; an empty prefix means ``_INBOX``.

    Raises:
        InvalidOptionError: ``prefix`` is not a str, or one of its tokens is a wildcard (``*`` or ``>``).
    """
    if not prefix or prefix == "_INBOX":  # the common case needs no validation
        return "_INBOX." + nuid.next()
    if not isinstance(prefix, str):
        raise InvalidOptionError("inbox prefix must be a str")
    if ("*" in prefix or ">" in prefix) and any(t in ("*", ">") for t in prefix.split(".")):
        raise InvalidOptionError(f"inbox prefixes cannot have wildcards '{prefix}'")
    return prefix + "." + nuid.next()
