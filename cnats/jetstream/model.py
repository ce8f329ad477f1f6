"""JSON <-> dataclass conversion for the JetStream API types (the JetStream API conventions).

Every wire type derives from :class:`JsonModel`. Field names are the server's JSON names. Conversions follow the
field annotations: nested models, lists and dicts of them, enums, ``datetime`` (RFC 3339, UTC, microseconds; Go's
zero time is ``None``) and durations: the fields a class lists in ``_DURATIONS`` are seconds (``float``) in Python
and nanoseconds on the wire. Keys the server sends that a class does not know are kept in ``extra`` and sent back
by ``to_dict()`` (they live in the instance attribute ``_extra``, outside the dataclass fields), so an update never
drops a setting a newer server added.
"""

from __future__ import annotations

import dataclasses
import re
import types
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin, get_type_hints

__all__ = ["JsonModel", "format_time", "ns_to_seconds", "parse_time", "seconds_to_ns"]

M = TypeVar("M", bound="JsonModel")

_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$")


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp (any number of fractional digits) as an aware UTC datetime; Go's zero time is None."""
    if not value or value.startswith("0001-01-01T00:00:00"):
        return None
    m = _TIME.match(value)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}")
    year, month, day, hour, minute, second, frac, zone = m.groups()
    micros = int((frac or "0")[:6].ljust(6, "0"))
    dt = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tzinfo=timezone.utc)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        offset = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
        dt = dt - timedelta(seconds=offset)
    return dt


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds and ``Z``, as the server accepts it."""
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    utc = value.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}Z"


def seconds_to_ns(value: float) -> int:
    return round(value * 1e9)


def ns_to_seconds(value: int) -> float:
    return value / 1e9


class JsonModel:
    """Base of the JetStream wire dataclasses: ``from_dict`` / ``to_dict`` with the conversions above."""

    _DURATIONS: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_dict(cls: type[M], data: dict[str, Any]) -> M:
        """An instance built from its JSON form; unknown keys are kept for ``to_dict``, missing required fields get
        neutral values (0, "", empty containers).

        Raises:
            ValueError: a timestamp is not in RFC 3339 form.
            TypeError: a value has the wrong JSON shape for its field (a scalar where a list is expected...).
            AttributeError: a value has the wrong JSON shape for its field (a list where an object is expected...).
        """
        hints = _hints(cls)
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            if key in hints and not key.startswith("_"):
                kwargs[key] = _decode(hints[key], value, key in cls._DURATIONS)
            else:
                extra[key] = value
        for f in _required(cls):
            if f not in kwargs:
                kwargs[f] = _neutral(hints[f])
        obj = cls(**kwargs)
        obj._extra = extra  # type: ignore[attr-defined]  # not a dataclass field: invisible to __init__, repr, ==
        return obj

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: fields that are None are left out, the unknown keys kept from ``from_dict`` are included.

        Raises:
            ValueError: a datetime field holds a naive (timezone-less) datetime.
        """
        out: dict[str, Any] = dict(getattr(self, "_extra", None) or {})
        durations = self._DURATIONS
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None:
                out.pop(f.name, None)
                continue
            out[f.name] = _encode(value, f.name in durations)
        return out


_HINTS: dict[type, dict[str, Any]] = {}
_REQUIRED: dict[type, list[str]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = get_type_hints(cls)
    return hints


def _required(cls: type) -> list[str]:
    req = _REQUIRED.get(cls)
    if req is None:
        req = _REQUIRED[cls] = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.init
        ]
    return req


def _neutral(hint: Any) -> Any:
    """A value for a required field the server left out (older servers omit some)."""
    hint = _strip_optional(hint)
    origin = get_origin(hint)
    if hint in (int, float):
        return hint()
    if hint is str:
        return ""
    if hint is bool:
        return False
    if origin is list:
        return []
    if origin is dict:
        return {}
    if isinstance(hint, type) and issubclass(hint, JsonModel):
        return hint.from_dict({})
    return None


def _strip_optional(hint: Any) -> Any:
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _decode(hint: Any, value: Any, duration: bool) -> Any:
    if value is None:
        return None
    hint = _strip_optional(hint)
    origin = get_origin(hint)
    if origin is list:
        (item,) = get_args(hint)
        return [_decode(item, v, duration) for v in value]
    if origin is dict:
        _, item = get_args(hint)
        return {k: _decode(item, v, duration) for k, v in value.items()}
    if hint is datetime:
        return parse_time(value)
    if duration:
        return ns_to_seconds(value)
    if isinstance(hint, type):
        if issubclass(hint, JsonModel):
            return hint.from_dict(value)
        if issubclass(hint, Enum):
            try:
                return hint(value)
            except ValueError:
                return value  # a value newer than this client: kept as is
    return value


def _encode(value: Any, duration: bool) -> Any:
    if isinstance(value, JsonModel):
        return value.to_dict()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, list):
        return [_encode(v, duration) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v, duration) for k, v in value.items()}
    if duration and isinstance(value, (int, float)) and not isinstance(value, bool):
        return seconds_to_ns(value)
    return value
