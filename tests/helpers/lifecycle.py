"""Shared helpers of the lifecycle tests (tests/lifecycle): cnats' pending tasks, a connection's end, callback errors,
a reader that records what an iterator hands out, a service handler that holds its requests, JetStream consumers and
the API requests made for them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

import pytest
from helpers.core import eventually

from cnats import Events
from cnats.errors import CallbackError, NatsError
from cnats.nuid import nuid

if TYPE_CHECKING:
    from cnats import Msg, NatsConnection, Status
    from cnats.jetstream import JetStreamManager
    from cnats.services import ServiceMsg
    from cnats.testing import NatsServer

T = TypeVar("T")


# -- tasks and the connection's end --------------------------------------------------------------------------------


def cnats_tasks() -> list[asyncio.Task[Any]]:
    """The running loop's pending tasks named ``cnats...`` (every background task cnats starts is)."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("cnats") and not t.done()]


async def closed_result(future: asyncio.Future[Exception | None], timeout: float = 5.0) -> Exception | None:
    """What a ``closed`` future resolves with (shielded: waiting for it never cancels it)."""
    return await asyncio.wait_for(asyncio.shield(future), timeout)


async def stop_server(server: NatsServer, nc: NatsConnection) -> NatsError:
    """Stops ``server`` under ``nc`` (connected with ``reconnect=False``): the error ``nc`` closed with."""
    await asyncio.to_thread(server.stop, 0)
    error = await closed_result(nc.closed)
    assert isinstance(error, NatsError)
    return error


async def stop_during_anext(server: NatsServer, nc: NatsConnection, iterator: AsyncIterator[Any]) -> NatsError:
    """Stops ``server`` under ``nc`` while a ``__anext__`` of ``iterator`` waits: that call raises the error ``nc``
    closed with (returned)."""
    waiting = asyncio.ensure_future(iterator.__anext__())
    await asyncio.sleep(0)
    error = await stop_server(server, nc)
    with pytest.raises(NatsError) as raised:
        await asyncio.wait_for(waiting, 5)
    assert raised.value is error
    return error


async def next_callback_error(statuses: AsyncIterable[Status], timeout: float = 5.0) -> CallbackError:
    """The next ``CALLBACK_ERROR`` status of a status iterator: its error."""

    async def find() -> CallbackError:
        async for status in statuses:
            if status.type == Events.ERROR and isinstance(status.error, CallbackError):
                return status.error
        raise AssertionError("the status iterator ended")

    return await asyncio.wait_for(find(), timeout)


# -- readers and handlers ------------------------------------------------------------------------------------------


class Reader(Generic[T]):
    """Iterates ``iterator`` on a task, recording what it yields (``got``) and the ``NatsError`` that ended it
    (``error``); with ``hold_at`` it waits after that many items until ``release()``."""

    def __init__(self, iterator: AsyncIterable[T], hold_at: int | None = None) -> None:
        self.got: list[T] = []
        self.error: NatsError | None = None
        self._gate = asyncio.Event()
        self._hold_at = hold_at
        self.task = asyncio.get_running_loop().create_task(self._run(iterator))

    async def _run(self, iterator: AsyncIterable[T]) -> None:
        try:
            async for item in iterator:
                self.got.append(item)
                if len(self.got) == self._hold_at:
                    await self._gate.wait()
        except NatsError as exc:
            self.error = exc

    def release(self) -> None:
        self._gate.set()

    async def ended(self, timeout: float = 5.0) -> list[T]:
        """Releases the reader and waits for its ``async for`` to end; what it got."""
        self.release()
        await asyncio.wait_for(self.task, timeout)
        return self.got


class HeldHandler:
    """A service handler (``handle``) that holds every request until ``release()`` is called, if ever, then answers
    ``answer`` followed by the request's data; ``started`` is set once a request reached it, ``cancelled`` once a
    call was cancelled."""

    def __init__(self, answer: bytes = b"") -> None:
        self.answer = answer
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self._released = asyncio.Event()

    async def handle(self, msg: ServiceMsg) -> None:
        self.started.set()
        try:
            await self._released.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        msg.respond(self.answer + msg.data)

    def release(self) -> None:
        self._released.set()


# -- JetStream consumers -------------------------------------------------------------------------------------------


async def consumer_names(jsm: JetStreamManager, stream: str) -> list[str]:
    return [info.name async for info in jsm.consumers.list(stream)]


async def no_consumers(jsm: JetStreamManager, stream: str, what: str) -> None:
    """The stream's consumers are all gone within a few seconds (far below any inactive threshold)."""

    async def none_left() -> bool:
        return not await consumer_names(jsm, stream)

    await eventually(none_left, timeout=5.0, interval=0.02, what=what)


class ApiRequest(NamedTuple):
    subject: str
    reply: str


class ApiSpy:
    """Records, through ``nc`` (a connection of the test's other side), the JetStream consumer API requests of the
    kinds ``apis`` (``MSG.NEXT``: the pull requests, whose reply subject is the consumer's inbox; ``CREATE``;
    ``INFO``...) made on ``stream`` (on any stream when None); ``settle(other)`` returns once everything ``other``
    sent before has reached the spy."""

    def __init__(self, nc: NatsConnection, stream: str | None = None, apis: Iterable[str] = ("MSG.NEXT",)) -> None:
        self.nc = nc
        self.stream = stream
        self.requests: list[ApiRequest] = []
        self._markers: set[str] = set()
        self._prefix = f"lifecycle.marker.{nuid.next()}"
        where = ">" if stream is None else f"{stream}.>"
        for api in apis:
            nc.subscribe(f"$JS.API.CONSUMER.{api}.{where}", callback=self._request)
        nc.subscribe(f"{self._prefix}.*", callback=lambda m: self._markers.add(m.subject))

    def _request(self, msg: Msg) -> None:
        self.requests.append(ApiRequest(msg.subject, msg.reply or ""))

    async def start(self) -> ApiSpy:
        await self.nc.flush()
        return self

    def pulls(self) -> list[ApiRequest]:
        return [r for r in self.requests if r.subject.startswith("$JS.API.CONSUMER.MSG.NEXT.")]

    async def settle(self, nc: NatsConnection) -> int:
        """How many requests the spy has seen once every message ``nc`` sent before this call has reached it."""
        subject = f"{self._prefix}.{nuid.next()}"
        nc.publish(subject, b"")
        await nc.flush()
        await eventually(lambda: subject in self._markers, what="the marker went through the server")
        return len(self.requests)


#: The ``stopped_for_good`` fixture (tests/lifecycle/conftest.py): ``assert_stopped_for_good`` but for ``what``.
StoppedCheck = Callable[[str], Awaitable[None]]


async def assert_stopped_for_good(
    nc: NatsConnection, jsm: JetStreamManager, spy: ApiSpy, what: str, poke: Callable[[], Awaitable[object]]
) -> None:
    """The consumers of the spy's stream are gone and, from a settle point on, the spy sees no more request even
    when ``poke()`` gives a live iterator something new to deliver."""
    assert spy.stream is not None
    await no_consumers(jsm, spy.stream, what)
    before = await spy.settle(nc)
    assert spy.pulls(), "the spy saw the pulls"
    await poke()
    after = await spy.settle(nc)
    assert after == before, f"{what}: requests after it was left: {spy.requests[before:]}"
    assert await consumer_names(jsm, spy.stream) == []
