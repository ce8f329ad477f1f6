"""The argument checks a publish needs before it leaves the calling thread: the asyncio API's own rules (subjects,
payloads, headers), applied early so that bad input raises where it was given, before anything is queued.

What is checked is also snapshotted: a ``bytearray``/``memoryview`` payload is copied and a ``Headers`` object
re-read, so that the caller may reuse its buffer as soon as ``publish`` returns.
"""

from __future__ import annotations

from typing import Any

from ..errors import BadPayloadError, MaxPayloadExceededError
from ..headers import Headers
from ..msg import payload_bytes, to_headers
from ..subjects import check_subject

__all__ = ["check_size", "checked_headers", "checked_payload", "checked_subject"]


def checked_subject(subject: object, what: str = "subject") -> str:
    """``subject`` when it is a valid subject; else ``BadSubjectError``."""
    check_subject(subject, what)
    return subject  # type: ignore[return-value]


def checked_payload(payload: object) -> bytes:
    """The payload as ``bytes`` the caller can no longer change; else ``BadPayloadError``."""
    if payload.__class__ is bytes:
        return payload
    try:
        return payload_bytes(payload)
    except UnicodeEncodeError:
        raise BadPayloadError("payload str is not valid UTF-8") from None


def checked_headers(headers: Any) -> tuple[Headers | None, int]:
    """A private copy of ``headers`` (None when empty) and the length of its encoded block; ``BadHeaderError`` or
    ``TypeError`` as the asyncio publish raises them."""
    source = to_headers(headers)
    if source is None:
        return None, 0
    block = source.encode()
    if not block:
        return None, 0
    return Headers.decode(block), len(block)


def check_size(size: int, max_payload: int) -> None:
    """``MaxPayloadExceededError`` when a message of ``size`` bytes (headers included) exceeds ``max_payload``."""
    if max_payload and size > max_payload:
        raise MaxPayloadExceededError(f"message size {size} exceeds max_payload {max_payload}")
