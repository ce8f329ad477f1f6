"""The ADR-32 wire vocabulary: discovery subjects, response types and the JSON documents of PING, INFO and STATS.

The dataclasses are written by hand rather than on the JetStream ``JsonModel`` so that ``cnats.services`` never
imports JetStream. ``to_dict()`` renders exactly the documents of ADR-32 (``metadata`` always present, ``data`` only
when set); ``from_dict()`` is lenient so it reads what other clients send (nats-py sends ``null`` for absent values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, Final

__all__ = [
    "SERVICE_API_PREFIX",
    "SERVICE_ERROR_CODE_HEADER",
    "SERVICE_ERROR_HEADER",
    "EndpointInfo",
    "EndpointStats",
    "ServiceIdentity",
    "ServiceInfo",
    "ServiceResponseType",
    "ServiceStats",
    "ServiceVerb",
    "format_started",
    "parse_started",
]

SERVICE_API_PREFIX: Final = "$SRV"
"""The subject prefix of service discovery (`$SRV.PING`, `$SRV.INFO.<name>`...)."""
SERVICE_ERROR_HEADER: Final = "Nats-Service-Error"
"""The header of a service error response that carries the error description."""
SERVICE_ERROR_CODE_HEADER: Final = "Nats-Service-Error-Code"
"""The header of a service error response that carries the error code."""


class ServiceVerb(str, Enum):
    """The discovery verbs a service answers: PING, STATS and INFO."""

    PING = "PING"
    STATS = "STATS"
    INFO = "INFO"


class ServiceResponseType(str, Enum):
    """The `type` field of a service's PING, STATS and INFO responses."""

    STATS = "io.nats.micro.v1.stats_response"
    INFO = "io.nats.micro.v1.info_response"
    PING = "io.nats.micro.v1.ping_response"


def format_started(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds and ``Z`` (what nats.go and nats-py parse)."""
    utc = value.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}Z"


def parse_started(value: object) -> datetime:
    """An RFC 3339 timestamp (any number of fractional digits, ``Z`` or an offset) as an aware UTC datetime."""
    if not isinstance(value, str) or len(value) < 19:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}")
    base, rest = value[:19], value[19:]
    micros = 0
    if rest.startswith("."):
        digits = len(rest) - len(rest[1:].lstrip("0123456789"))
        micros = int(rest[1:digits][:6].ljust(6, "0"))
        rest = rest[digits:]
    parsed = datetime.strptime(base.replace("t", "T").replace(" ", "T"), "%Y-%m-%dT%H:%M:%S")
    parsed = parsed.replace(microsecond=micros, tzinfo=timezone.utc)
    if rest in ("Z", "z", ""):  # nats-py writes naive UTC times with a "Z"; a bare time is read as UTC too
        return parsed
    if len(rest) != 6 or rest[0] not in "+-" or rest[3] != ":":
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}")
    offset = timedelta(hours=int(rest[1:3]), minutes=int(rest[4:6]))
    return parsed - offset if rest[0] == "+" else parsed + offset


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _int(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _metadata(data: dict[str, Any]) -> dict[str, str] | None:
    value = data.get("metadata")
    return dict(value) if isinstance(value, dict) else None


def _response_type(data: dict[str, Any], default: ServiceResponseType) -> ServiceResponseType:
    try:
        return ServiceResponseType(data.get("type"))
    except ValueError:
        return default


@dataclass(kw_only=True)
class ServiceIdentity:
    """Who a service instance is: the PING response."""

    type: ServiceResponseType = ServiceResponseType.PING
    name: str
    id: str
    version: str
    metadata: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of the PING response, as the discovery protocol sends it.

        Raises:
            Nothing: the fields are copied.
        """
        return {
            "type": self.type.value,
            "name": self.name,
            "id": self.id,
            "version": self.version,
            "metadata": dict(self.metadata) if self.metadata else {},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServiceIdentity:
        """Read a PING response from its JSON document: a missing or mistyped field gets a neutral value.

        Raises:
            Nothing: nothing is required of the document.
        """
        return cls(**_identity_fields(data, ServiceResponseType.PING))


def _identity_fields(data: dict[str, Any], default: ServiceResponseType) -> dict[str, Any]:
    return {
        "type": _response_type(data, default),
        "name": _str(data, "name"),
        "id": _str(data, "id"),
        "version": _str(data, "version"),
        "metadata": _metadata(data),
    }


@dataclass(kw_only=True)
class EndpointInfo:
    """An endpoint as INFO describes it."""

    name: str
    subject: str
    queue_group: str
    metadata: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of the endpoint, as the discovery protocol sends it.

        Raises:
            Nothing: the fields are copied.
        """
        return {
            "name": self.name,
            "subject": self.subject,
            "queue_group": self.queue_group,
            "metadata": dict(self.metadata) if self.metadata else {},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EndpointInfo:
        """Read a endpoint from its JSON document: a missing or mistyped field gets a neutral value.

        Raises:
            Nothing: nothing is required of the document.
        """
        return cls(
            name=_str(data, "name"),
            subject=_str(data, "subject"),
            queue_group=_str(data, "queue_group"),
            metadata=_metadata(data),
        )


@dataclass(kw_only=True)
class ServiceInfo(ServiceIdentity):
    """The INFO response: the identity, the description and every endpoint."""

    type: ServiceResponseType = ServiceResponseType.INFO
    description: str = ""
    endpoints: list[EndpointInfo] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of the INFO response, as the discovery protocol sends it.

        Raises:
            Nothing: the fields are copied.
        """
        out = super().to_dict()
        out["description"] = self.description
        out["endpoints"] = [e.to_dict() for e in self.endpoints]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServiceInfo:
        """Read a INFO response from its JSON document: a missing or mistyped field gets a neutral value.

        Raises:
            Nothing: nothing is required of the document.
        """
        endpoints = data.get("endpoints")
        return cls(
            **_identity_fields(data, ServiceResponseType.INFO),
            description=_str(data, "description"),
            endpoints=[EndpointInfo.from_dict(e) for e in endpoints if isinstance(e, dict)]
            if isinstance(endpoints, list)
            else [],
        )


@dataclass(kw_only=True)
class EndpointStats:
    """An endpoint's counters as STATS reports them; times are integer nanoseconds."""

    name: str
    subject: str
    queue_group: str
    num_requests: int = 0
    num_errors: int = 0
    last_error: str = ""
    processing_time: int = 0
    average_processing_time: int = 0
    data: Any = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of the endpoint's counters, as the discovery protocol sends it.

        Raises:
            Nothing: the fields are copied.
        """
        out: dict[str, Any] = {
            "name": self.name,
            "subject": self.subject,
            "queue_group": self.queue_group,
            "num_requests": self.num_requests,
            "num_errors": self.num_errors,
            "last_error": self.last_error,
            "processing_time": self.processing_time,
            "average_processing_time": self.average_processing_time,
        }
        if self.data is not None:
            out["data"] = self.data
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EndpointStats:
        """Read a endpoint's counters from its JSON document: a missing or mistyped field gets a neutral value.

        Raises:
            Nothing: nothing is required of the document.
        """
        return cls(
            name=_str(data, "name"),
            subject=_str(data, "subject"),
            queue_group=_str(data, "queue_group"),
            num_requests=_int(data, "num_requests"),
            num_errors=_int(data, "num_errors"),
            last_error=_str(data, "last_error"),
            processing_time=_int(data, "processing_time"),
            average_processing_time=_int(data, "average_processing_time"),
            data=data.get("data"),
        )


def _epoch() -> datetime:
    return datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(kw_only=True)
class ServiceStats(ServiceIdentity):
    """The STATS response: the identity, when the counters started, and every endpoint's counters."""

    type: ServiceResponseType = ServiceResponseType.STATS
    started: datetime = field(default_factory=_epoch)
    endpoints: list[EndpointStats] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of the STATS response, as the discovery protocol sends it.

        Raises:
            Nothing: the fields are copied.
        """
        out = super().to_dict()
        out["started"] = format_started(self.started)
        out["endpoints"] = [e.to_dict() for e in self.endpoints]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServiceStats:
        """Read a STATS response from its JSON document: a missing or mistyped field gets a neutral value.

        Raises:
            ValueError: ``started`` is given but is not an RFC 3339 timestamp.
        """
        endpoints = data.get("endpoints")
        started = data.get("started")
        return cls(
            **_identity_fields(data, ServiceResponseType.STATS),
            started=parse_started(started) if started else _epoch(),
            endpoints=[EndpointStats.from_dict(e) for e in endpoints if isinstance(e, dict)]
            if isinstance(endpoints, list)
            else [],
        )
