"""Checks of what a user passes to the services API, done before anything reaches the wire (ADR-32 rules)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import BadSubjectError, InvalidNameError, InvalidOptionError

__all__ = [
    "check_endpoint_subject",
    "check_group_name",
    "check_metadata",
    "check_name",
    "check_queue_group",
    "check_version",
]

_NAME_CHARS = frozenset("-_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_WHITESPACE = frozenset(" \t\r\n\x0b\x0c")

# Semantic Versioning 2.0.0 (semver.org): MAJOR.MINOR.PATCH[-prerelease][+build], no leading zeros in numbers
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$",
    re.ASCII,
)


def check_name(what: str, name: object) -> str:
    """A service or endpoint name: ``^[-A-Za-z0-9_]+$``."""
    if not isinstance(name, str):
        raise InvalidNameError(f"{what} name must be a str, not {type(name).__name__}")
    if not name:
        raise InvalidNameError(f"{what} name required")
    for ch in name:
        if ch not in _NAME_CHARS:
            raise InvalidNameError(f"invalid {what} name - {what} name cannot contain {ch!r}")
    return name


def check_version(version: object) -> str:
    if not isinstance(version, str) or not _SEMVER.match(version):
        raise InvalidOptionError(f"service version {version!r} is not a semver value")
    return version


def check_queue_group(what: str, queue_group: object) -> str:
    """A queue group of a group or an endpoint: a non-empty token list without whitespace or wildcards."""
    if not isinstance(queue_group, str) or not queue_group:
        raise InvalidNameError(f"{what} queue group must be a non-empty str, got {queue_group!r}")
    for ch in queue_group:
        if ch in _WHITESPACE or ch in "*>":
            raise InvalidNameError(f"invalid {what} queue group {queue_group!r} - cannot contain {ch!r}")
    return queue_group


def check_group_name(name: object) -> str:
    """A group name becomes a subject prefix: "" (no prefix) or tokens without whitespace and without ``>``."""
    if not isinstance(name, str):
        raise InvalidNameError(f"group name must be a str, not {type(name).__name__}")
    if not name:
        return name
    for ch in name:
        if ch in _WHITESPACE or ch == ">":
            raise InvalidNameError(f"invalid group name {name!r} - cannot contain {ch!r}")
    if "" in name.split("."):
        raise InvalidNameError(f"invalid group name {name!r} - empty subject token")
    return name


def check_endpoint_subject(subject: str) -> str:
    """An endpoint subject: no whitespace, no empty token, ``>`` only as the whole last token."""
    tokens = subject.split(".")
    for i, token in enumerate(tokens):
        if not token:
            raise BadSubjectError(f"invalid endpoint subject {subject!r} - empty token")
        for ch in token:
            if ch in _WHITESPACE:
                raise BadSubjectError(f"invalid endpoint subject {subject!r} - cannot contain whitespace")
        if ">" in token and (token != ">" or i != len(tokens) - 1):
            raise BadSubjectError(f"invalid endpoint subject {subject!r} - '>' may only be the last token")
    return subject


def check_metadata(metadata: object) -> dict[str, str] | None:
    """A copy of the metadata mapping (str -> str); None stays None."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise InvalidOptionError(f"metadata must be a mapping of str to str, not {type(metadata).__name__}")
    out: dict[str, str] = {}
    items: Any = metadata.items()
    for key, value in items:
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidOptionError(f"metadata must map str to str, got {key!r}: {value!r}")
        out[key] = value
    return out
