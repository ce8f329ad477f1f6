"""Bad input to the services API is refused with the documented error before anything reaches the wire: service
names and versions (ADR-32: name pattern, SemVer 2.0), queue groups, metadata, endpoint names and subjects, group
names, handlers, and the discovery client's options."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cnats import NatsConnection
from cnats.errors import BadSubjectError, InvalidNameError, InvalidOptionError, NoRespondersError
from cnats.services import ServiceMsg


def noop(msg: ServiceMsg) -> None:
    msg.respond(b"")


async def assert_no_service(nc: NatsConnection) -> None:
    """Nothing answers the discovery subjects: the refused service never subscribed."""
    with pytest.raises(NoRespondersError):
        await nc.request("$SRV.PING", timeout=2)


@pytest.mark.parametrize("name", ["", "a b", "a.b", "a*", "a>", "ünïcode", "tab\t"])
async def test_service_name_must_match_the_adr_pattern(nc: NatsConnection, name: str) -> None:
    with pytest.raises(InvalidNameError):
        await nc.services.add(name, "1.0.0")
    await assert_no_service(nc)


async def test_service_name_must_be_a_string(nc: NatsConnection) -> None:
    bad: Any = 42
    with pytest.raises(InvalidNameError):
        await nc.services.add(bad, "1.0.0")


@pytest.mark.parametrize("version", ["", "1", "1.0", "v1.0.0", "01.0.0", "1.0.0-", "1.0.0+", "1.0.0-01", "1.0.0.0"])
async def test_version_must_be_semver(nc: NatsConnection, version: str) -> None:
    with pytest.raises(InvalidOptionError) as info:
        await nc.services.add("svc", version)
    assert not isinstance(info.value, InvalidNameError)
    await assert_no_service(nc)


@pytest.mark.parametrize("version", ["0.0.0", "1.2.3", "10.20.30-alpha.1", "1.0.0-rc.1+build.5", "2.0.0+20240101"])
async def test_valid_semver_versions_are_accepted(nc: NatsConnection, version: str) -> None:
    service = await nc.services.add("svc", version)
    assert service.version == version
    await service.stop()


@pytest.mark.parametrize("queue_group", ["", "a b", "q.1", "*"])
async def test_service_queue_group_must_match_the_name_pattern(nc: NatsConnection, queue_group: str) -> None:
    with pytest.raises(InvalidNameError):
        await nc.services.add("svc", "1.0.0", queue_group=queue_group)
    await assert_no_service(nc)


@pytest.mark.parametrize("metadata", [{"a": 1}, {1: "a"}, ["a"], "a=b"])
async def test_metadata_must_map_strings_to_strings(nc: NatsConnection, metadata: Any) -> None:
    with pytest.raises(InvalidOptionError):
        await nc.services.add("svc", "1.0.0", metadata=metadata)


async def test_description_and_stats_handler_types(nc: NatsConnection) -> None:
    bad: Any = 3
    with pytest.raises(InvalidOptionError):
        await nc.services.add("svc", "1.0.0", description=bad)
    with pytest.raises(InvalidOptionError):
        await nc.services.add("svc", "1.0.0", stats_handler=bad)
    await assert_no_service(nc)


@pytest.mark.parametrize("name", ["", "a b", "a.b", "a*", ">"])
async def test_endpoint_name_must_match_the_adr_pattern(nc: NatsConnection, name: str) -> None:
    service = await nc.services.add("svc", "1.0.0")
    with pytest.raises(InvalidNameError):
        service.add_endpoint(name, noop)
    assert service.info().endpoints == []
    await service.stop()


@pytest.mark.parametrize("subject", ["a b", "a.>.b", "a..b", ".a", "a.", "a>", "a.b>"])
async def test_endpoint_subject_rules(nc: NatsConnection, subject: str) -> None:
    service = await nc.services.add("svc", "1.0.0")
    with pytest.raises(BadSubjectError):
        service.add_endpoint("e", noop, subject=subject)
    assert service.info().endpoints == []
    await service.stop()


async def test_wildcard_endpoint_subjects_are_allowed(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")
    service.add_endpoint("all", lambda m: m.respond(m.subject), subject="orders.>")
    service.add_endpoint("one", lambda m: m.respond(m.subject), subject="items.*.get")
    assert (await nc.request("orders.eu.42", timeout=2)).data == b"orders.eu.42"
    assert (await nc.request("items.7.get", timeout=2)).data == b"items.7.get"
    await service.stop()


@pytest.mark.parametrize("name", ["a b", "a>", "a..b", ".a", "a."])
async def test_group_name_rules(nc: NatsConnection, name: str) -> None:
    service = await nc.services.add("svc", "1.0.0")
    with pytest.raises(InvalidNameError):
        service.add_group(name)
    await service.stop()


@pytest.mark.parametrize("queue_group", ["", "a b", "q.*", ">"])
async def test_endpoint_and_group_queue_groups(nc: NatsConnection, queue_group: str) -> None:
    service = await nc.services.add("svc", "1.0.0")
    with pytest.raises(InvalidNameError):
        service.add_endpoint("e", noop, queue_group=queue_group)
    with pytest.raises(InvalidNameError):
        service.add_group("g", queue_group=queue_group)
    await service.stop()


async def test_handler_and_endpoint_metadata_types(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")
    bad: Any = "not callable"
    with pytest.raises(InvalidOptionError):
        service.add_endpoint("e", bad)
    with pytest.raises(InvalidOptionError):
        service.add_endpoint("e", noop, metadata={"k": 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidOptionError):
        service.add_endpoint("e", noop, subject="")
    assert service.info().endpoints == []
    await service.stop()


async def test_a_stopped_service_takes_no_endpoint(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")
    await service.stop()
    with pytest.raises(InvalidOptionError):
        service.add_endpoint("e", noop)


async def test_respond_error_code_must_be_an_int(nc: NatsConnection) -> None:
    service = await nc.services.add("svc", "1.0.0")
    failures: list[BaseException] = []

    def handler(msg: ServiceMsg) -> None:
        try:
            msg.respond_error("500", "text")  # type: ignore[arg-type]
        except InvalidOptionError as exc:
            failures.append(exc)
            msg.respond(b"refused")

    service.add_endpoint("e", handler)
    assert (await nc.request("e", timeout=2)).data == b"refused"
    assert len(failures) == 1
    await service.stop()


@pytest.mark.parametrize(
    "options",
    [
        {"max_wait": 0},
        {"max_wait": -1.0},
        {"jitter": 0},
        {"strategy": "nope"},
        {"strategy": "count"},  # count needs max_messages > 0
        {"prefix": ""},
        {"prefix": "a b"},
        {"prefix": "$SRV.>"},
        {"prefix": "a..b"},
    ],
)
def test_client_options(nc: NatsConnection, options: dict[str, Any]) -> None:
    with pytest.raises(InvalidOptionError):
        nc.services.client(**options)


async def test_client_name_and_id_filters(nc: NatsConnection) -> None:
    client = nc.services.client()
    with pytest.raises(InvalidNameError):
        await client.ping(None, "abc")  # an id needs a name
    with pytest.raises(InvalidNameError):
        await client.info("a.b")
    with pytest.raises(InvalidNameError):
        await client.stats("svc", "a b")


async def test_add_on_a_closed_connection(nc: NatsConnection) -> None:
    from cnats.errors import ConnectionClosedError

    await nc.close()
    with pytest.raises(ConnectionClosedError):
        await asyncio.wait_for(nc.services.add("svc", "1.0.0"), 5)
