"""Faults a real nats-server never produces, played by a hand-written fake server (an asyncio TCP server).

The fake server sends a valid INFO, reads CONNECT + PING, answers PONG, then misbehaves: malformed or oversized
frames, unanswered PINGs, an ``-ERR`` followed by a close, a tiny ``max_payload``, a failed handshake. Every test is
bounded in time: the client must report the fault (status event, error class, ``closed``), never hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from cnats import DebugEvents, Events, NatsConnection, Status, connect
from cnats.errors import (
    AuthorizationError,
    ErrorCode,
    MaxPayloadExceededError,
    NatsError,
    NatsTimeoutError,
    ProtocolError,
)

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class FakeServer:
    """A one-purpose NATS server on 127.0.0.1:<free port>.

    For every client: send INFO (``info`` overrides merged into a valid default), then, when ``handshake`` is True,
    read lines up to the client's PING (CONNECT comes first) and answer PONG; then run ``behaviour``.
    """

    def __init__(self, behaviour: Behaviour, *, handshake: bool = True, **info: Any) -> None:
        self._behaviour = behaviour
        self._handshake = handshake
        self._info = info
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.port = 0
        self.connections = 0

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def info_line(self) -> bytes:
        info: dict[str, Any] = {
            "server_id": "FAKESERVER",
            "server_name": "fake",
            "version": "2.10.0",
            "proto": 1,
            "go": "go1.21",
            "host": "127.0.0.1",
            "port": self.port,
            "headers": True,
            "max_payload": 1048576,
            "client_id": 1,
        }
        info.update(self._info)
        return b"INFO " + json.dumps(info).encode() + b"\r\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            if self._handshake:
                writer.write(self.info_line())
                while True:
                    line = await reader.readline()
                    if not line:
                        return
                    if line == b"PING\r\n":
                        break
                writer.write(b"PONG\r\n")
            await self._behaviour(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def __aenter__(self) -> FakeServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.wait_for(self._server.wait_closed(), 5)


async def read_until_eof(reader: asyncio.StreamReader) -> None:
    """Keep the socket open, reading (and ignoring) whatever the client sends, until it closes."""
    while await reader.read(65536):
        pass


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """After the handshake: never answer anything (PINGs included), but keep the socket open."""
    await read_until_eof(reader)


def after_first_client_line(data: bytes, *, then_close: bool = False) -> Behaviour:
    """Wait for one line from the client (the test's trigger), send ``data``, then close or keep reading."""

    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(data)
        await writer.drain()
        if not then_close:
            await read_until_eof(reader)

    return behaviour


def right_after_pong(data: bytes, *, then_close: bool = False) -> Behaviour:
    """Send ``data`` immediately after the handshake PONG (same write burst), then close or keep reading."""

    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        if not then_close:
            await read_until_eof(reader)

    return behaviour


async def until_status(it: Any, type_: Events | DebugEvents, timeout: float = 3.0) -> Status:
    """The next status of ``type_`` from the iterator ``it`` (other events are skipped)."""

    async def find() -> Status:
        async for status in it:
            if status.type == type_:
                return status
        raise AssertionError(f"status iterator ended before a {type_!r} event")

    return await asyncio.wait_for(find(), timeout)


async def fake_connect(server: FakeServer, **kwargs: Any) -> NatsConnection:
    kwargs.setdefault("reconnect", False)
    kwargs.setdefault("timeout", 2.0)
    return await asyncio.wait_for(connect(server.url, **kwargs), 5)


# -- malformed input ------------------------------------------------------------------------------------------


async def test_malformed_msg_frame_emits_protocol_error_and_closes_with_it() -> None:
    async with FakeServer(after_first_client_line(b"MSG foo 1 notanumber\r\n")) as server:
        nc = await fake_connect(server)
        statuses = nc.status()
        nc.publish("trigger", b"x")
        status = await until_status(statuses, Events.ERROR)
        assert status.data == ErrorCode.PROTOCOL_ERROR == "NATS_PROTOCOL_ERR"
        assert isinstance(status.error, ProtocolError)
        assert status.permission_context is None
        result = await asyncio.wait_for(asyncio.shield(nc.closed), 3)
        assert isinstance(result, ProtocolError)
        assert nc.is_closed


async def test_oversized_msg_size_is_a_protocol_error_not_an_allocation() -> None:
    async with FakeServer(after_first_client_line(b"MSG foo 1 99999999999\r\n")) as server:
        nc = await fake_connect(server)
        statuses = nc.status()
        nc.publish("trigger", b"x")
        status = await until_status(statuses, Events.ERROR, timeout=1.0)
        assert isinstance(status.error, ProtocolError)
        assert isinstance(await asyncio.wait_for(asyncio.shield(nc.closed), 1.0), ProtocolError)


async def test_malformed_frame_right_after_handshake_pong_does_not_leave_a_dead_connection() -> None:
    # The garbage arrives in the same read as the handshake PONG: either connect() fails with the ProtocolError,
    # or it returns a connection whose `closed` resolves to it. It must not report a healthy connection forever.
    async with FakeServer(right_after_pong(b"MSG foo 1 notanumber\r\n")) as server:
        try:
            nc = await fake_connect(server)
        except ProtocolError:
            return
        try:
            result = await asyncio.wait_for(asyncio.shield(nc.closed), 3)
            assert isinstance(result, ProtocolError)
        finally:
            await nc.close()


async def test_server_closing_right_after_handshake_pong_closes_the_connection() -> None:
    async with FakeServer(right_after_pong(b"", then_close=True)) as server:
        try:
            nc = await fake_connect(server)
        except NatsError:
            return
        try:
            result = await asyncio.wait_for(asyncio.shield(nc.closed), 3)
            assert isinstance(result, NatsError)
            assert nc.is_closed
        finally:
            await nc.close()


async def test_unknown_protocol_err_then_close_emits_error_and_closed_resolves_to_it() -> None:
    behaviour = after_first_client_line(b"-ERR 'Unknown Protocol Operation'\r\n", then_close=True)
    async with FakeServer(behaviour) as server:
        nc = await fake_connect(server)
        statuses = nc.status()
        nc.publish("trigger", b"x")
        status = await until_status(statuses, Events.ERROR)
        assert status.data == "NATS_PROTOCOL_ERR"
        assert isinstance(status.error, ProtocolError)
        assert str(status.error) == "Unknown Protocol Operation"
        result = await asyncio.wait_for(asyncio.shield(nc.closed), 3)
        assert result is status.error
        assert nc.is_closed


# -- PING/PONG ------------------------------------------------------------------------------------------------


async def test_flush_with_timeout_raises_when_the_server_never_answers_ping() -> None:
    async with FakeServer(silent) as server:
        nc = await fake_connect(server)
        try:
            with pytest.raises(NatsTimeoutError):
                await asyncio.wait_for(nc.flush(timeout=0.2), 3)
            assert not nc.is_closed
        finally:
            await nc.close()


async def test_unanswered_pings_make_the_connection_stale_and_close_it() -> None:
    async with FakeServer(silent) as server:
        nc = await fake_connect(server, ping_interval=0.1, max_ping_out=2)
        statuses = nc.status()
        seen: list[Status] = []

        async def collect() -> None:
            async for status in statuses:
                seen.append(status)

        await asyncio.wait_for(collect(), 2.0)  # ends when the connection closes
        types = [s.type for s in seen]
        assert DebugEvents.STALE_CONNECTION in types
        stale_at = types.index(DebugEvents.STALE_CONNECTION)
        pings = [s.data for s in seen[:stale_at] if s.type == DebugEvents.PING_TIMER]
        assert pings[:2] == [1, 2]
        assert all(type(p) is int for p in pings)
        assert len(pings) <= 3  # stale once max_ping_out PINGs are outstanding (nats.js also reports the 3rd tick)
        assert seen[stale_at].data == ""
        assert nc.is_closed
        assert isinstance(nc.closed.result(), NatsError)


# -- server limits and handshake failures ----------------------------------------------------------------------


async def test_publish_over_the_servers_max_payload_raises() -> None:
    async with FakeServer(silent, max_payload=100) as server:
        nc = await fake_connect(server)
        try:
            assert nc.info is not None and nc.info.max_payload == 100
            nc.publish("ok", b"x" * 100)
            with pytest.raises(MaxPayloadExceededError):
                nc.publish("too.big", b"x" * 101)
            with pytest.raises(MaxPayloadExceededError):
                nc.publish("too.big", b"x" * 90, headers={"K": "a-value-long-enough"})
            assert not nc.is_closed
        finally:
            await nc.close()


async def test_authorization_violation_during_handshake_raises_authorization_error() -> None:
    async def deny(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(server.info_line())
        await reader.readline()  # CONNECT (PING may follow)
        writer.write(b"-ERR 'Authorization Violation'\r\n")
        await writer.drain()

    server = FakeServer(deny, handshake=False)
    async with server:
        with pytest.raises(AuthorizationError) as info:
            await fake_connect(server, user="u", password="wrong")
        assert info.value.code == ErrorCode.AUTHORIZATION_VIOLATION


@pytest.mark.parametrize("stage", ["before_info", "mid_info", "after_connect"])
async def test_server_closing_mid_handshake_raises_a_nats_error_quickly(stage: str) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if stage == "mid_info":
            writer.write(server.info_line()[:20])
            await writer.drain()
        elif stage == "after_connect":
            writer.write(server.info_line())
            await reader.readline()

    server = FakeServer(hang_up, handshake=False)
    async with server:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(NatsError):
            await fake_connect(server, timeout=10.0)
        assert loop.time() - start < 2.0  # not the connect timeout


async def test_failed_handshake_leaves_no_unretrieved_future_exception_behind() -> None:
    # asyncio logs "Future exception was never retrieved" for a failed future nobody awaited: pure noise for users.
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        return

    reported: list[str] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(str(context.get("message"))))
    try:
        async with FakeServer(hang_up, handshake=False) as server:
            with pytest.raises(NatsError):
                await fake_connect(server)
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert reported == []
