"""JetStreamClient: publishing with acknowledgements, one at a time or pipelined."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import (
    InvalidOptionError,
    JetStreamApiError,
    JetStreamInvalidAckError,
    NatsTimeoutError,
    NoRespondersError,
)
from ..headers import Headers
from ..msg import Msg, to_headers
from ..nuid import nuid
from ..protocol import AckWindow, PubAckReader
from ..request import check_no_responders
from .api import BatchAck, ConsumerConfig, PubAck, PubHeaders, PublishExpect
from .consumer import Consumers
from .context import JetStreamContext, JetStreamOptions, api_error
from .jsmsg import JsMsg
from .manager import JetStreamManager, Stream, StreamAPI
from .push import JetStreamPullSubscription, JetStreamSubscription, pull_subscribe, push_subscribe
from .views import Views

if TYPE_CHECKING:
    from ..connection import NatsConnection

__all__ = ["JetStreamClient", "PublishBatch", "Streams"]

Payload = bytes | bytearray | memoryview | str
_json_decode = json.JSONDecoder().decode  # bound once: json.loads re-checks the encoding of every ack


def ttl_header(ttl: object) -> str:
    """The ``Nats-TTL`` value of a message TTL: whole seconds, or ``never`` for -1 (``InvalidOptionError`` else)."""
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, (int, float))
        or not math.isfinite(ttl)
        or not (ttl == -1 or (ttl >= 1 and ttl == int(ttl)))
    ):
        raise InvalidOptionError(f"ttl must be a whole number of seconds (at least 1), or -1 for never; got {ttl!r}")
    return "never" if ttl == -1 else str(int(ttl))


def publish_headers(
    headers: Headers | Mapping[str, Any] | None,
    msg_id: str | None,
    expect: PublishExpect | None,
    ttl: float | None = None,
) -> Headers | None:
    """The headers of a JetStream publish: the user's, plus the de-duplication, expectation and TTL headers."""
    if msg_id is None and expect is None and ttl is None:
        return to_headers(headers)
    ttl_value = ttl_header(ttl) if ttl is not None else None  # checked before anything is built
    given = to_headers(headers)
    out = Headers.from_dict(given.to_dict()) if given is not None else Headers()  # a copy: the caller's stays as is
    if ttl_value is not None:
        out.set(PubHeaders.TTL.value, ttl_value)
    if msg_id is not None:
        out.set(PubHeaders.MSG_ID.value, msg_id)
    if expect is not None:
        if expect.stream_name is not None:
            out.set(PubHeaders.EXPECTED_STREAM.value, expect.stream_name)
        if expect.last_msg_id is not None:
            out.set(PubHeaders.EXPECTED_LAST_MSG_ID.value, expect.last_msg_id)
        if expect.last_sequence is not None:
            out.set(PubHeaders.EXPECTED_LAST_SEQ.value, str(expect.last_sequence))
        if expect.last_subject_sequence is not None:
            out.set(PubHeaders.EXPECTED_LAST_SUBJECT_SEQ.value, str(expect.last_subject_sequence))
    return out


def pub_ack_fields(msg: Msg, subject: str) -> dict[str, Any]:
    """The fields of the PubAck in a publish's answer (checked to name a stream), or the error it carries."""
    check_no_responders(msg, subject)
    try:
        data = _json_decode(msg.data.decode())
    except ValueError as exc:
        raise JetStreamInvalidAckError(f"invalid publish acknowledgement: {exc}") from exc
    if not isinstance(data, dict):
        raise JetStreamInvalidAckError("invalid publish acknowledgement")
    if isinstance(data.get("error"), dict):
        raise api_error(data["error"])
    if not data.get("stream"):
        raise JetStreamInvalidAckError("invalid publish acknowledgement: no stream")
    return data


_ACK_HEAD = b'{"stream":"'
_ACK_SEQ = b'","seq":'


# The head of the last usual acknowledgement and its stream: acknowledgements come in runs from one stream, so the
# next one is mostly a prefix check and one int() (one tuple, replaced whole: never a head with another's stream).
_last_ack_head: tuple[bytes, str] = (b"\x00", "")


def _simple_ack(data: bytes) -> tuple[str, int] | None:
    """Stream and sequence of the usual acknowledgement, ``{"stream":"S","seq":N}``, read without the JSON parser
    (which cost a KV put more than all of its own Python code); None for any other shape (errors, duplicates,
    domains), which the parser then reads."""
    global _last_ack_head
    head, stream = _last_ack_head
    if data.startswith(head) and data.endswith(b"}"):
        digits = data[len(head) : -1]
        if digits.isdigit():
            return stream, int(digits)
    if not data.startswith(_ACK_HEAD) or not data.endswith(b"}"):
        return None
    end = data.find(_ACK_SEQ, 11)
    if end <= 11:
        return None
    digits = data[end + 8 : -1]
    name = data[11:end].decode()
    if not digits.isdigit() or '"' in name or "\\" in name:  # (`in` on bytes first tries the needle as an int)
        return None
    _last_ack_head = (data[: end + 8], name)
    return name, int(digits)


def ack_head(stream: str) -> bytes:
    """How the usual acknowledgement from ``stream`` starts: ``{"stream":"<stream>","seq":``."""
    return _ACK_HEAD + stream.encode() + _ACK_SEQ


def ack_sequence(msg: Msg, subject: str, head: bytes) -> int:
    """The stream sequence an acknowledgement gives (what a KV write returns), or the error it carries. ``head``
    (from ``ack_head``) makes the usual acknowledgement a prefix check and one ``int()``."""
    data = msg.data
    if data.startswith(head) and data.endswith(b"}"):
        digits = data[len(head) : -1]
        if digits.isdigit():
            return int(digits)
    return int(pub_ack_fields(msg, subject).get("seq", 0))


def parse_pub_ack(msg: Msg, subject: str) -> PubAck:
    """The PubAck in a publish's answer, or the error it carries."""
    simple = _simple_ack(msg.data)
    if simple is not None:
        return PubAck(stream=simple[0], seq=simple[1])
    data = pub_ack_fields(msg, subject)
    stream = data["stream"]
    return PubAck(
        stream=stream,
        seq=int(data.get("seq", 0)),
        duplicate=bool(data.get("duplicate", False)),
        domain=data.get("domain") or None,
        val=data.get("val"),
    )


# What publish_async's acknowledgements become: the compiled core reads the usual answer and builds the PubAck itself
# (its dataclass __init__ and the Python parse cost a pipelined publish more than the rest of its bookkeeping).
_READ_PUB_ACK = PubAckReader(
    PubAck, {f.name: f.default for f in dataclasses.fields(PubAck) if f.name not in ("stream", "seq")}, parse_pub_ack
)

_BATCH_ID = "Nats-Batch-Id"
_BATCH_SEQ = "Nats-Batch-Sequence"
_BATCH_COMMIT = "Nats-Batch-Commit"


class PublishBatch:
    """An atomic batch (server 2.12+, streams with ``allow_atomic``): stored whole at ``commit`` or not at all.

    Messages get their place in the batch in the order the calls are made; while the first message awaits the
    server's answer, later ``add``/``commit`` calls wait for it (so concurrent calls do not both open the batch)."""

    def __init__(self, client: JetStreamClient, timeout: float) -> None:
        self._client = client
        self._timeout = timeout
        self.id = nuid.next()
        self.size = 0
        self._finished = False
        self._opening: asyncio.Event | None = None  # set while the first message awaits its answer

    def _headers(
        self,
        headers: Headers | Mapping[str, Any] | None,
        msg_id: str | None,
        expect: PublishExpect | None,
    ) -> Headers:
        """The caller's headers (a copy) with the de-duplication and expectation headers; the batch's own headers are
        the batch's to set (a commit header given to ``add`` is dropped)."""
        given = publish_headers(headers, msg_id, expect)
        out = Headers.from_dict(given.to_dict()) if given is not None else Headers()
        out.delete(_BATCH_COMMIT)
        out.set(_BATCH_ID, self.id)
        return out

    def _check_open(self) -> None:
        if self._finished:
            raise InvalidOptionError("batch is already committed or discarded")

    async def _wait_opened(self) -> None:
        """Wait while the first message awaits its answer; then the batch must still be open."""
        while self._opening is not None:
            await self._opening.wait()
        self._check_open()

    async def add(
        self,
        subject: str,
        payload: Payload = b"",
        *,
        headers: Headers | Mapping[str, Any] | None = None,
        msg_id: str | None = None,
        expect: PublishExpect | None = None,
    ) -> None:
        """Add a message. The first goes as a request, so a stream that refuses batches says so at once; the others
        are published without an answer (a problem with one of them is reported by ``commit``).

        ``msg_id`` de-duplicates as in ``publish``, except that an id the stream already holds refuses the whole batch
        at the commit. Expectations are checked at the commit, against the stream as it was before the batch.

        Raises:
            InvalidOptionError: the batch is already committed or discarded (or its first message failed).
            JetStreamApiError: the stream refused the first message (it does not allow atomic batches, the server does
                not support them, too many batches are open); the batch is then finished.
            NoRespondersError: the first message reached no stream; the batch is then finished.
            NatsTimeoutError: no answer to the first message within the batch's timeout; the batch is then finished.
            OutboundBufferLimitError: a later message does not fit in the outbound buffer.
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining (publishing has stopped).
            BadSubjectError: ``subject`` is not valid.
            BadPayloadError: ``payload`` is not bytes, bytearray, a C-contiguous memoryview or a UTF-8 encodable str.
            BadHeaderError: a header name or value (``msg_id`` and the expectations included) is not valid.
            TypeError: ``headers`` is neither ``Headers`` nor a mapping.
            ServerOptionNotAvailableError: the server does not support headers.
            MaxPayloadExceededError: the message exceeds the server's `max_payload`.
        """
        self._check_open()
        hdrs = self._headers(headers, msg_id, expect)
        await self._wait_opened()
        hdrs.set(_BATCH_SEQ, str(self.size + 1))
        nc = self._client._nc
        if self.size:
            nc.publish(subject, payload, headers=hdrs)
            self.size += 1
            return
        opening = self._opening = asyncio.Event()
        try:
            msg = await nc.request(subject, payload, headers=hdrs, timeout=self._timeout)
            check_no_responders(msg, subject)
            if msg.data:  # an empty answer is the server's "batch started"
                data = json.loads(msg.data)
                if isinstance(data, dict) and isinstance(data.get("error"), dict):
                    raise api_error(data["error"])
            self.size = 1
        except (JetStreamApiError, NoRespondersError, NatsTimeoutError, asyncio.CancelledError):
            self._finished = True  # sent: the server may hold the batch's start, so its id is spent
            raise
        finally:
            self._opening = None
            opening.set()

    async def commit(
        self,
        subject: str,
        payload: Payload = b"",
        *,
        headers: Headers | Mapping[str, Any] | None = None,
        msg_id: str | None = None,
        expect: PublishExpect | None = None,
    ) -> BatchAck:
        """Add the last message and store the batch; the ack names the batch and counts its messages, and its ``seq``
        is the last message's (the batch holds the ``count`` sequences up to it).

        The batch is finished from this call on, whatever its outcome.

        Raises:
            InvalidOptionError: the batch is already committed or discarded.
            WrongLastSequenceError: an ``expect`` on the last sequence failed; nothing of the batch is stored.
            JetStreamApiError: the server refused the batch (a message is missing or went to another stream, an
                expectation failed, a ``msg_id`` is a duplicate, the batch is larger than the server allows or was
                abandoned after a silence, the stream does not allow atomic batches...); nothing of it is stored.
            JetStreamInvalidAckError: the acknowledgement names no stream.
            NoRespondersError: the message reached no stream.
            NatsTimeoutError: no acknowledgement within the batch's timeout.
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining (publishing has stopped).
            BadSubjectError: ``subject`` is not valid.
            BadPayloadError: ``payload`` is not bytes, bytearray, a C-contiguous memoryview or a UTF-8 encodable str.
            BadHeaderError: a header name or value (``msg_id`` and the expectations included) is not valid.
            TypeError: ``headers`` is neither ``Headers`` nor a mapping.
            ServerOptionNotAvailableError: the server does not support headers.
            MaxPayloadExceededError: the message exceeds the server's `max_payload`.
        """
        self._check_open()
        hdrs = self._headers(headers, msg_id, expect)
        await self._wait_opened()
        hdrs.set(_BATCH_SEQ, str(self.size + 1))
        hdrs.set(_BATCH_COMMIT, "1")
        self._finished = True
        msg = await self._client._nc.request(subject, payload, headers=hdrs, timeout=self._timeout)
        ack = parse_pub_ack(msg, subject)
        data = json.loads(msg.data)
        self.size += 1
        return BatchAck(
            stream=ack.stream,
            seq=ack.seq,
            duplicate=ack.duplicate,
            domain=ack.domain,
            batch=str(data.get("batch", self.id)),
            count=int(data.get("count", self.size)),
        )

    def discard(self) -> None:
        """Abandon the batch: nothing of it is stored. Nothing is sent: the server drops the messages it received
        when the batch has been silent for its batch timeout (10 s by default), and until then the batch counts
        against the stream's limit of open batches (50 by default).

        Raises:
            Nothing: nothing is sent.
        """
        self._finished = True


class Streams:
    """Stream views of a JetStream client (`js.streams`): `get()` a stream by name."""

    def __init__(self, ctx: JetStreamContext) -> None:
        self._ctx = ctx

    async def get(self, name: str) -> Stream:
        """A handle on the stream ``name`` (its info is fetched now).

        Raises:
            InvalidNameError: ``name`` is not a valid stream name.
            StreamNotFoundError: the stream does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        return await StreamAPI(self._ctx).get(name)


class JetStreamClient(JetStreamContext):
    """Publishes to streams and reads from them; create it with ``nc.jetstream()`` (no I/O)."""

    def __init__(
        self,
        nc: NatsConnection,
        options: JetStreamOptions,
        *,
        publish_async_max_pending: int = 4000,
        publish_async_stall_wait: float = 5.0,
    ) -> None:
        super().__init__(nc, options)
        if publish_async_max_pending <= 0:
            raise InvalidOptionError("publish_async_max_pending must be greater than 0")
        if isinstance(publish_async_stall_wait, bool) or not (
            isinstance(publish_async_stall_wait, (int, float)) and publish_async_stall_wait > 0
        ):
            raise InvalidOptionError(
                f"publish_async_stall_wait must be a positive number of seconds, got {publish_async_stall_wait!r}"
            )
        # the pipelined publishes awaiting their acknowledgement: counted by the connection's reply inbox
        self._window = AckWindow(self.port.loop, publish_async_max_pending)
        self._publish_acked = self.port.publish_acked
        self._stall_wait = publish_async_stall_wait
        self.streams = Streams(self)
        self.consumers = Consumers(self)
        self.views = Views(self)

    async def jetstream_manager(self, check_api: bool = True) -> JetStreamManager:
        """A manager with this client's options; with ``check_api``, the account info is requested first to make sure
        JetStream answers.

        Raises:
            JetStreamApiError: with ``check_api``, the server refused the account-info request.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        jsm = JetStreamManager(self._nc, self._options)
        if check_api:
            await jsm.get_account_info()
        return jsm

    async def publish(
        self,
        subject: str,
        payload: Payload = b"",
        *,
        msg_id: str | None = None,
        expect: PublishExpect | None = None,
        headers: Headers | Mapping[str, Any] | None = None,
        timeout: float | None = None,
        ttl: float | None = None,
    ) -> PubAck:
        """Publish to a stream and wait for its acknowledgement. ``ttl``: the message's own time to live in whole
        seconds (-1: never expires), on streams with ``allow_msg_ttl``.

        Raises:
            NoRespondersError: no stream listens on ``subject``.
            NatsTimeoutError: no acknowledgement within ``timeout`` (by default the client's).
            WrongLastSequenceError: an ``expect`` on the last sequence failed.
            JetStreamApiError: the stream refused the message (another expectation failed, a limit is reached, the
                stream is sealed...).
            JetStreamInvalidAckError: the acknowledgement names no stream.
            InvalidOptionError: ``timeout`` is not positive.
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining (publishing has stopped).
            BadSubjectError: ``subject`` is not valid.
            BadPayloadError: ``payload`` is not bytes, bytearray, a C-contiguous memoryview or a UTF-8 encodable str.
            BadHeaderError: a header name or value (``msg_id`` and the expectations included) is not valid.
            TypeError: ``headers`` is neither ``Headers`` nor a mapping.
            ServerOptionNotAvailableError: the server does not support headers.
            MaxPayloadExceededError: the message exceeds the server's `max_payload`.
            InvalidOptionError: ``ttl`` is not a whole number of seconds of at least 1, or -1.
        """
        hdrs = publish_headers(headers, msg_id, expect, ttl)
        msg = await self._nc.request(subject, payload, headers=hdrs, timeout=self._ack_timeout(timeout))
        return parse_pub_ack(msg, subject)

    async def subscribe(
        self,
        subject: str,
        *,
        stream: str | None = None,
        durable: str | None = None,
        name: str | None = None,
        deliver_subject: str | None = None,
        queue: str | None = None,
        config: ConsumerConfig | None = None,
        ordered: bool = False,
        flow_control: bool = False,
        idle_heartbeat: float | None = None,
        manual_ack: bool = False,
        bind: bool = False,
        callback: Callable[[JsMsg], Awaitable[None] | None] | None = None,
        max: int | None = None,
    ) -> JetStreamSubscription:
        """A legacy push subscription (deprecated in nats.js; prefer ``consumers.get(...).consume()``).

        Without ``bind`` a consumer is created (a durable one that exists is resumed, or joined by a queue member);
        without ``stream``, the stream is the one that listens on ``subject``.

        Raises:
            InvalidOptionError: the options do not fit together (``ordered`` with a durable, a deliver subject, a
                queue, manual acks, ``bind`` or an ack policy; ``bind`` without ``stream`` and a durable or name), the
                durable is delivered to another queue group or already bound, or the consumer bound to is a pull
                consumer.
            InvalidNameError: ``stream``, ``durable`` or ``name`` is not valid.
            StreamNotFoundError: the stream does not exist, or no single stream listens on ``subject``.
            ConsumerNotFoundError: with ``bind``, the consumer does not exist.
            JetStreamApiError: the server refused the consumer.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        return await push_subscribe(
            self,
            subject,
            stream=stream,
            durable=durable,
            name=name,
            deliver_subject=deliver_subject,
            queue=queue,
            config=config,
            ordered=ordered,
            flow_control=flow_control,
            idle_heartbeat=idle_heartbeat,
            manual_ack=manual_ack,
            bind=bind,
            callback=callback,
            max=max,
        )

    async def pull_subscribe(
        self,
        subject: str,
        *,
        stream: str | None = None,
        durable: str | None = None,
        name: str | None = None,
        config: ConsumerConfig | None = None,
        manual_ack: bool = False,
        bind: bool = False,
        callback: Callable[[JsMsg], Awaitable[None] | None] | None = None,
    ) -> JetStreamPullSubscription:
        """A legacy pull subscription: ``sub.pull(batch)`` asks for messages, which arrive on ``sub``.

        Raises:
            InvalidOptionError: ``bind`` without ``stream`` and a durable or name, or the consumer is a push consumer.
            InvalidNameError: ``stream``, ``durable`` or ``name`` is not valid.
            StreamNotFoundError: the stream does not exist, or no single stream listens on ``subject``.
            ConsumerNotFoundError: with ``bind``, the consumer does not exist.
            JetStreamApiError: the server refused the consumer.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        return await pull_subscribe(
            self,
            subject,
            stream=stream,
            durable=durable,
            name=name,
            config=config,
            manual_ack=manual_ack,
            bind=bind,
            callback=callback,
        )

    def batch(self, *, timeout: float | None = None) -> PublishBatch:
        """A new atomic publish batch; ``timeout`` bounds the wait for each answer (the first message's and the
        commit's), by default the client's. Nothing is sent until ``add`` or ``commit``.

        Raises:
            InvalidOptionError: ``timeout`` is not a positive number of seconds.
        """
        return PublishBatch(self, self._ack_timeout(timeout))

    @property
    def publish_async_pending(self) -> int:
        return self._window.pending

    async def publish_async(
        self,
        subject: str,
        payload: Payload = b"",
        *,
        msg_id: str | None = None,
        expect: PublishExpect | None = None,
        headers: Headers | Mapping[str, Any] | None = None,
        timeout: float | None = None,
        ttl: float | None = None,
    ) -> asyncio.Future[PubAck]:
        """Send now; the future resolves with the PubAck. Waits only while too many acks are outstanding. ``ttl`` as
        for ``publish``.

        The future fails with ``NatsTimeoutError`` (no acknowledgement within ``timeout``), ``NoRespondersError`` (no
        stream listens on ``subject``), ``JetStreamApiError`` (the stream refused the message),
        ``JetStreamInvalidAckError`` or ``ConnectionClosedError`` (the connection closed first).

        Raises:
            OutboundBufferLimitError: the outbound buffer (`pending_bytes_limit`) is full.
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining (publishing has stopped).
            BadSubjectError: ``subject`` is not valid.
            BadPayloadError: ``payload`` is not bytes, bytearray, a C-contiguous memoryview or a UTF-8 encodable str.
            BadHeaderError: a header name or value (``msg_id`` and the expectations included) is not valid.
            TypeError: ``headers`` is neither ``Headers`` nor a mapping.
            ServerOptionNotAvailableError: the server does not support headers.
            MaxPayloadExceededError: the message exceeds the server's `max_payload`.
            InvalidOptionError: ``timeout`` is not a positive number of seconds, or ``ttl`` is not a whole number of
                seconds of at least 1, or -1.
            NatsTimeoutError: ``publish_async_max_pending`` acknowledgements stayed outstanding for longer than
                ``publish_async_stall_wait`` (nothing was sent).
        """
        window = self._window
        if window.full:
            await self._room_within_stall_wait()
        extras = headers or msg_id or expect or ttl is not None
        hdrs = publish_headers(headers, msg_id, expect, ttl) if extras else None
        # the reply inbox publishes, then counts the acknowledgement in the window; its answer (parsed into the
        # PubAck there), its deadline or the connection's close settles the future
        return self._publish_acked(  # type: ignore[return-value]
            subject,
            payload,
            hdrs,
            self._options.timeout if timeout is None else self._ack_timeout(timeout),
            window,
            _READ_PUB_ACK,
        )

    async def _room_within_stall_wait(self) -> None:
        """Wait while ``publish_async_max_pending`` acknowledgements are outstanding, at most the stall wait."""
        window = self._window

        async def room() -> None:
            while window.full:
                await asyncio.shield(window.room())

        try:
            await asyncio.wait_for(room(), self._stall_wait)
        except asyncio.TimeoutError:
            raise NatsTimeoutError(
                f"publish_async waited {self._stall_wait} s for room: {window.pending} acknowledgements outstanding"
            ) from None

    def _ack_timeout(self, timeout: float | None) -> float:
        """How long a publish waits for its acknowledgement: ``timeout``, or the client's when None."""
        if timeout is None:
            return self._options.timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InvalidOptionError(f"timeout must be a positive number of seconds, got {timeout!r}")
        return timeout

    async def publish_async_completed(self, timeout: float | None = None) -> None:
        """Wait until no acknowledgement is outstanding (at most ``timeout`` seconds; None waits without limit).

        Raises:
            NatsTimeoutError: acknowledgements are still outstanding after ``timeout`` seconds.
        """
        window = self._window
        if not window.pending:
            return
        try:
            await asyncio.wait_for(asyncio.shield(window.idle()), timeout)
        except asyncio.TimeoutError:
            raise NatsTimeoutError(f"{window.pending} publish acknowledgements still pending") from None
