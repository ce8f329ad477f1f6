"""Message headers through a real nats-server: what a subscriber receives is what
the publisher built, status lines included; key/value rules; header bytes count toward max_payload."""

from __future__ import annotations

import asyncio
import json

import pytest

from cnats import Headers, Match, Msg, NatsConnection, create_inbox
from cnats.errors import BadHeaderError, MaxPayloadExceededError, NoRespondersError
from cnats.testing import NatsServer

pytestmark = pytest.mark.nats_server(jetstream=False)


# -- helpers ---------------------------------------------------------------------------------------------------


async def round_trip(nc: NatsConnection, headers: Headers | None, payload: bytes = b"data") -> Msg:
    """Publish ``payload`` with ``headers`` to a fresh subject and return the message the server delivers back."""
    subject = create_inbox("hdr.wire")
    sub = nc.subscribe(subject)
    try:
        await nc.flush()
        nc.publish(subject, payload, headers=headers)
        return await sub.next_msg(timeout=2)
    finally:
        sub.unsubscribe()


async def raw_hpub(server: NatsServer, subject: str, header_block: bytes, payload: bytes) -> None:
    """Publish one HPUB written byte for byte (input cnats itself would never produce), then wait for the PONG."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        info = await asyncio.wait_for(reader.readline(), 5)
        assert info.startswith(b"INFO ")
        connect = json.dumps({"verbose": False, "pedantic": False, "headers": True, "protocol": 1})
        total = len(header_block) + len(payload)
        writer.write(f"CONNECT {connect}\r\n".encode())
        writer.write(f"HPUB {subject} {len(header_block)} {total}\r\n".encode() + header_block + payload + b"\r\n")
        writer.write(b"PING\r\n")
        await writer.drain()
        while True:
            line = await asyncio.wait_for(reader.readline(), 5)
            assert not line.startswith(b"-ERR"), line
            if line == b"PONG\r\n":
                break
    finally:
        writer.close()
        await writer.wait_closed()


# -- round trips ------------------------------------------------------------------------------------------------


async def test_multi_valued_header_round_trips_in_order(nc: NatsConnection) -> None:
    h = Headers()
    h.append("X-Multi", "first")
    h.append("X-Multi", "second")
    h.append("X-Multi", "third")
    h.append("X-Single", "only")
    msg = await round_trip(nc, h)
    assert msg.data == b"data"
    assert msg.headers is not None
    assert msg.headers.values("X-Multi") == ["first", "second", "third"]
    assert msg.headers.get("X-Multi") == "first"
    assert msg.headers.last("X-Multi") == "third"
    assert msg.headers.values("X-Single") == ["only"]
    assert msg.headers == h


async def test_header_key_order_is_preserved(nc: NatsConnection) -> None:
    h = Headers()
    for key in ("Zeta", "Alpha", "Mid"):
        h.append(key, key.lower())
    msg = await round_trip(nc, h)
    assert msg.headers is not None
    assert msg.headers.keys() == ["Zeta", "Alpha", "Mid"]


async def test_header_key_case_is_preserved(nc: NatsConnection) -> None:
    h = Headers()
    h.append("lowercase-key", "1")
    h.append("UPPERCASE-KEY", "2")
    h.append("mIxEd-CaSe", "3")
    msg = await round_trip(nc, h)
    assert msg.headers is not None
    assert msg.headers.keys() == ["lowercase-key", "UPPERCASE-KEY", "mIxEd-CaSe"]
    assert msg.headers.get("mIxEd-CaSe") == "3"
    assert msg.headers.get("Mixed-Case") == ""


async def test_keys_differing_only_in_case_stay_distinct(nc: NatsConnection) -> None:
    h = Headers()
    h.append("trace", "a")
    h.append("Trace", "b")
    msg = await round_trip(nc, h)
    assert msg.headers is not None
    assert msg.headers.to_dict() == {"trace": ["a"], "Trace": ["b"]}


async def test_headers_given_as_mapping_round_trip(nc: NatsConnection) -> None:
    subject = create_inbox("hdr.map")
    sub = nc.subscribe(subject)
    await nc.flush()
    nc.publish(subject, b"", headers={"K1": "v1", "K2": ["a", "b"]})
    msg = await sub.next_msg(timeout=2)
    assert msg.headers is not None
    assert msg.headers.to_dict() == {"K1": ["v1"], "K2": ["a", "b"]}
    assert msg.data == b""


async def test_utf8_header_value_round_trips(nc: NatsConnection) -> None:
    h = Headers()
    h.append("X-Text", "héllo wörld ✓")
    msg = await round_trip(nc, h)
    assert msg.headers is not None
    assert msg.headers.get("X-Text") == "héllo wörld ✓"


async def test_empty_header_value_round_trips(nc: NatsConnection) -> None:
    h = Headers()
    h.append("X-Empty", "")
    msg = await round_trip(nc, h)
    assert msg.headers is not None
    assert msg.headers.has("X-Empty")
    assert msg.headers.values("X-Empty") == [""]


async def test_message_without_headers_has_headers_none(nc: NatsConnection) -> None:
    msg = await round_trip(nc, None)
    assert msg.headers is None


async def test_empty_headers_object_sends_no_header_block(nc: NatsConnection) -> None:
    msg = await round_trip(nc, Headers())
    assert msg.headers is None


async def test_payload_is_intact_next_to_headers(nc: NatsConnection) -> None:
    payload = bytes(range(256)) * 4 + b"\r\n\r\nNATS/1.0\r\n"
    h = Headers()
    h.append("X-Len", str(len(payload)))
    msg = await round_trip(nc, h, payload)
    assert msg.data == payload
    assert msg.headers is not None
    assert msg.headers.get("X-Len") == str(len(payload))


# -- status line --------------------------------------------------------------------------------------------------


async def test_published_status_code_and_description_round_trip(nc: NatsConnection) -> None:
    h = Headers(418, "I'm a teapot")
    h.append("X-Brew", "tea")
    msg = await round_trip(nc, h)
    assert msg.headers is not None
    assert msg.headers.code == 418
    assert msg.headers.description == "I'm a teapot"
    assert msg.headers.status == "418 I'm a teapot"
    assert msg.headers.has_error
    assert msg.headers.get("X-Brew") == "tea"


async def test_published_status_code_without_description_or_keys_round_trips(nc: NatsConnection) -> None:
    msg = await round_trip(nc, Headers(201))
    assert msg.headers is not None
    assert msg.headers.code == 201
    assert msg.headers.description == ""
    assert msg.headers.keys() == []
    assert not msg.headers.has_error
    assert bool(msg.headers)


async def test_no_responders_status_arrives_as_code_503(nc: NatsConnection) -> None:
    inbox = create_inbox()
    sub = nc.subscribe(inbox)
    await nc.flush()
    nc.publish("hdr.nobody.listens", b"anyone?", reply=inbox)
    msg = await sub.next_msg(timeout=2)
    assert msg.data == b""
    assert msg.headers is not None
    assert msg.headers.code == 503
    assert msg.headers.description == ""
    assert msg.headers.has_error
    # recent servers name the subject nobody listens to; older ones send no keys at all
    assert msg.headers.keys() in ([], ["Nats-Subject"])
    if msg.headers.keys():
        assert msg.headers.get("Nats-Subject") == "hdr.nobody.listens"


async def test_request_turns_the_503_status_into_no_responders_error(nc: NatsConnection) -> None:
    with pytest.raises(NoRespondersError):
        await nc.request("hdr.nobody.listens", b"anyone?", timeout=5)


# -- key and value rules -----------------------------------------------------------------------------------------


async def test_header_values_are_stripped_of_surrounding_spaces(nc: NatsConnection) -> None:
    h = Headers()
    h.append("X-Padded", "   padded value \t ")
    msg = await round_trip(nc, h)
    assert msg.headers is not None
    assert msg.headers.get("X-Padded") == "padded value"


async def test_received_header_values_with_surrounding_spaces_are_stripped(
    nats_server: NatsServer, nc: NatsConnection
) -> None:
    subject = create_inbox("hdr.raw")
    sub = nc.subscribe(subject)
    await nc.flush()
    block = b"NATS/1.0\r\nX-Padded:    spaced out   \r\nX-Tight:tight\r\n\r\n"
    await raw_hpub(nats_server, subject, block, b"raw")
    msg = await sub.next_msg(timeout=2)
    assert msg.data == b"raw"
    assert msg.headers is not None
    assert msg.headers.get("X-Padded") == "spaced out"
    assert msg.headers.get("X-Tight") == "tight"


@pytest.mark.parametrize("key", ["Bad Key", "Bad:Key", "Trailing:", " Lead", "", "Tab\tKey", "Nön-ASCII"])
def test_invalid_header_key_is_rejected_at_append(key: str) -> None:
    h = Headers()
    with pytest.raises(BadHeaderError):
        h.append(key, "value")
    with pytest.raises(BadHeaderError):
        h.set(key, "value")
    assert h.keys() == []


@pytest.mark.parametrize("value", ["line\r\nInjected: yes", "cr\ronly", "lf\nonly"])
def test_header_value_with_line_break_is_rejected(value: str) -> None:
    with pytest.raises(BadHeaderError):
        Headers().append("X-Key", value)


async def test_invalid_key_in_mapping_headers_is_rejected_at_publish(nc: NatsConnection) -> None:
    with pytest.raises(BadHeaderError):
        nc.publish("hdr.bad", b"", headers={"Bad Key": "v"})


# -- Match modes on received messages -----------------------------------------------------------------------------


async def test_canonical_mime_lookup_on_received_message(nc: NatsConnection) -> None:
    h = Headers()
    h.append("content-type", "text/plain", Match.CANONICAL_MIME)  # stored (and sent) as "Content-Type"
    h.append("x-request-id", "r-1", Match.CANONICAL_MIME)
    msg = await round_trip(nc, h)
    assert msg.headers is not None
    assert msg.headers.keys() == ["Content-Type", "X-Request-Id"]
    assert msg.headers.get("content-type", Match.CANONICAL_MIME) == "text/plain"
    assert msg.headers.get("CONTENT-TYPE", Match.CANONICAL_MIME) == "text/plain"
    assert msg.headers.has("x-REQUEST-id", Match.CANONICAL_MIME)
    assert msg.headers.get("content-type") == ""  # EXACT: case-sensitive


async def test_ignore_case_lookup_on_received_message(nc: NatsConnection) -> None:
    h = Headers()
    h.append("X-Trace-ID", "t1")
    h.append("x-trace-id", "t2")
    msg = await round_trip(nc, h)
    assert msg.headers is not None
    assert msg.headers.get("X-TRACE-ID", Match.IGNORE_CASE) == "t1"
    assert msg.headers.values("x-Trace-Id", Match.IGNORE_CASE) == ["t1", "t2"]
    assert msg.headers.has("x-trace-ID", Match.IGNORE_CASE)
    assert not msg.headers.has("x-trace-ID")


async def test_received_headers_can_be_modified_and_republished(nc: NatsConnection) -> None:
    h = Headers()
    h.append("Hop", "1")
    first = await round_trip(nc, h)
    assert first.headers is not None
    first.headers.append("hop", "2", Match.IGNORE_CASE)
    second = await round_trip(nc, first.headers)
    assert second.headers is not None
    assert second.headers.values("Hop") == ["1", "2"]


# -- max_payload ----------------------------------------------------------------------------------------------------


@pytest.mark.nats_server(config="max_payload: 1024")
async def test_headers_count_toward_max_payload(nc: NatsConnection) -> None:
    assert nc.info is not None
    assert nc.info.max_payload == 1024
    h = Headers()
    h.append("X-Filler", "x" * 100)
    header_len = len(h.encode())
    subject = create_inbox("hdr.max")
    sub = nc.subscribe(subject)
    await nc.flush()

    nc.publish(subject, b"p" * 1024)  # payload alone may use all of max_payload
    nc.publish(subject, b"q" * (1024 - header_len), headers=h)  # headers + payload == max_payload
    with pytest.raises(MaxPayloadExceededError):
        nc.publish(subject, b"r" * (1024 - header_len + 1), headers=h)
    with pytest.raises(MaxPayloadExceededError):
        nc.publish(subject, b"s" * 1024, headers=h)

    got = [await sub.next_msg(timeout=2), await sub.next_msg(timeout=2)]
    assert [len(m.data) for m in got] == [1024, 1024 - header_len]
    assert got[1].headers is not None
    assert got[1].headers.get("X-Filler") == "x" * 100
    assert not nc.is_closed


@pytest.mark.nats_server(config="max_payload: 1024")
async def test_request_with_oversized_headers_raises_max_payload_exceeded(nc: NatsConnection) -> None:
    h = Headers()
    h.append("X-Big", "y" * 1100)
    with pytest.raises(MaxPayloadExceededError):
        await nc.request("hdr.max.req", b"", headers=h, timeout=1)
