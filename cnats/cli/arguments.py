"""Argument types shared by the commands: argparse turns their ``ArgumentTypeError`` into a usage error (exit 2)."""

from __future__ import annotations

import argparse

__all__ = ["count", "header", "pause", "timeout"]


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None


def timeout(text: str) -> float:
    """Seconds, greater than 0."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text!r}")
    return value


def pause(text: str) -> float:
    """Seconds, 0 or more."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def count(text: str) -> int:
    """A whole number, 0 or more (0 usually meaning "no limit")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def header(text: str) -> tuple[str, str]:
    """``KEY:VALUE`` (the Go tool's ``-H`` form); whitespace around either part is dropped."""
    key, sep, value = text.partition(":")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"a header is KEY:VALUE, got {text!r}")
    return key.strip(), value.strip()
