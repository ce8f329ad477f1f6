"""The ADR-32 dataclasses without a server: to_dict/from_dict round trips, lenient decoding of what other clients send,
RFC 3339 times, the public names, and the import cost (services never load JetStream)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone

import pytest

import cnats
import cnats.services as services
from cnats.services import (
    EndpointInfo,
    EndpointStats,
    ServiceIdentity,
    ServiceInfo,
    ServiceResponseType,
    ServiceStats,
    ServiceVerb,
)
from cnats.services.schema import format_started, parse_started

STARTED = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)


def test_round_trips() -> None:
    identity = ServiceIdentity(name="a", id="i", version="1.0.0", metadata={"k": "v"})
    info = ServiceInfo(
        name="a",
        id="i",
        version="1.0.0",
        metadata={"k": "v"},
        description="d",
        endpoints=[EndpointInfo(name="e", subject="s", queue_group="q", metadata={"m": "n"})],
    )
    stats = ServiceStats(
        name="a",
        id="i",
        version="1.0.0",
        metadata={"k": "v"},
        started=STARTED,
        endpoints=[
            EndpointStats(
                name="e",
                subject="s",
                queue_group="q",
                num_requests=4,
                num_errors=1,
                last_error="500:x",
                processing_time=400,
                average_processing_time=100,
                data={"z": [1]},
            )
        ],
    )
    assert ServiceIdentity.from_dict(identity.to_dict()) == identity
    assert ServiceInfo.from_dict(info.to_dict()) == info
    assert ServiceStats.from_dict(stats.to_dict()) == stats
    assert (identity.type, info.type, stats.type) == (
        ServiceResponseType.PING,
        ServiceResponseType.INFO,
        ServiceResponseType.STATS,
    )


def test_wire_field_order_and_presence() -> None:
    stats = ServiceStats(name="a", id="i", version="1.0.0", started=STARTED, endpoints=[])
    assert list(stats.to_dict()) == ["type", "name", "id", "version", "metadata", "started", "endpoints"]
    assert stats.to_dict()["started"] == "2024-05-06T07:08:09.123456Z"
    endpoint = EndpointStats(name="e", subject="s", queue_group="q")
    assert endpoint.to_dict() == {
        "name": "e",
        "subject": "s",
        "queue_group": "q",
        "num_requests": 0,
        "num_errors": 0,
        "last_error": "",
        "processing_time": 0,
        "average_processing_time": 0,
    }
    assert EndpointInfo(name="e", subject="s", queue_group="q").to_dict()["metadata"] == {}


def test_lenient_decoding_of_other_clients() -> None:
    """nats-py sends null for absent values and millisecond times; unknown keys are ignored."""
    info = ServiceInfo.from_dict(
        {
            "type": "io.nats.micro.v1.info_response",
            "id": "i",
            "name": "a",
            "version": "1.0.0",
            "description": None,
            "metadata": None,
            "endpoints": [{"name": "e", "subject": "s", "queue_group": "q", "metadata": None}],
            "future_field": 1,
        }
    )
    assert info.description == "" and info.metadata is None and info.endpoints[0].metadata is None
    stats = ServiceStats.from_dict(
        {
            "type": "io.nats.micro.v1.stats_response",
            "id": "i",
            "name": "a",
            "version": "1.0.0",
            "started": "2024-05-06T07:08:09.123Z",
            "endpoints": [{"name": "e", "last_error": None, "data": None, "num_requests": 2}],
        }
    )
    assert stats.started == datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=timezone.utc)
    assert stats.endpoints[0].last_error == "" and stats.endpoints[0].num_requests == 2
    assert ServiceIdentity.from_dict({"type": "something.else"}).type is ServiceResponseType.PING


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-06T07:08:09Z", datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)),
        ("2024-05-06T07:08:09.123456789Z", datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)),
        ("2024-05-06T09:08:09.5+02:00", datetime(2024, 5, 6, 7, 8, 9, 500000, tzinfo=timezone.utc)),
        ("2024-05-06T05:08:09-02:00", datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)),
    ],
)
def test_parse_started(text: str, expected: datetime) -> None:
    assert parse_started(text) == expected
    assert parse_started(format_started(expected)) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2024-05-06T07:08:09+0200", 12])
def test_parse_started_rejects_garbage(text: object) -> None:
    with pytest.raises(ValueError):
        parse_started(text)


def test_public_names() -> None:
    assert services.SERVICE_API_PREFIX == "$SRV"
    assert services.SERVICE_ERROR_HEADER == "Nats-Service-Error"
    assert services.SERVICE_ERROR_CODE_HEADER == "Nats-Service-Error-Code"
    assert ServiceVerb.PING == "PING" and ServiceResponseType.STATS == "io.nats.micro.v1.stats_response"
    for name in services.__all__:
        assert getattr(cnats, name) is getattr(services, name)


def test_import_cnats_services_does_not_load_jetstream() -> None:
    code = (
        "import sys, cnats; assert 'cnats.services' not in sys.modules; "
        "import cnats.services; assert not any(m.startswith('cnats.jetstream') for m in sys.modules), sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
