"""Subject validation for the calls that check a subject without encoding a frame (subscribe, inboxes).

The rule is the protocol core's (a non-empty str without ASCII whitespace); publish checks it inside the core.
"""

from __future__ import annotations

from .errors import BadSubjectError

__all__ = ["check_subject"]

_WHITESPACE = " \t\r\n\x0b\x0c"


def check_subject(subject: object, what: str = "subject") -> None:
    if not isinstance(subject, str):
        raise BadSubjectError(f"{what} must be a str, not {type(subject).__name__}")
    if not subject:
        raise BadSubjectError(f"{what} cannot be empty")
    for ch in _WHITESPACE:
        if ch in subject:
            raise BadSubjectError(f"{what} cannot contain whitespace: {subject!r}")
