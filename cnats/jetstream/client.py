"""JetStreamClient: publishing with acknowledgements, one at a time or pipelined."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import (
    InvalidOptionError,
    JetStreamInvalidAckError,
    NatsError,
    NatsTimeoutError,
)
from ..headers import Headers
from ..msg import Msg, to_headers
from ..nuid import nuid
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


def publish_headers(
    headers: Headers | Mapping[str, Any] | None, msg_id: str | None, expect: PublishExpect | None
) -> Headers | None:
    """The headers of a JetStream publish: the user's, plus the de-duplication and expectation headers."""
    if msg_id is None and expect is None:
        return to_headers(headers)
    given = to_headers(headers)
    out = Headers.from_dict(given.to_dict()) if given is not None else Headers()  # a copy: the caller's stays as is
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


def _simple_ack(data: bytes) -> tuple[str, int] | None:
    """Stream and sequence of the usual acknowledgement, ``{"stream":"S","seq":N}``, read without the JSON parser
    (which cost a KV put more than all of its own Python code); None for any other shape (errors, duplicates,
    domains), which the parser then reads."""
    if not data.startswith(_ACK_HEAD) or not data.endswith(b"}"):
        return None
    end = data.find(_ACK_SEQ, 11)
    if end <= 11:
        return None
    digits = data[end + 8 : -1]
    name = data[11:end].decode()
    if not digits.isdigit() or '"' in name or "\\" in name:  # (`in` on bytes first tries the needle as an int)
        return None
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
    )


class _AckWaiter:
    """One pipelined publish: resolves its future with the PubAck (or the error) routed by the inbox mux."""

    __slots__ = ("client", "deadline", "future", "subject", "timer", "token")

    def __init__(self, client: JetStreamClient, token: str, subject: str, future: asyncio.Future[PubAck]) -> None:
        self.client = client
        self.token = token
        self.subject = subject
        self.future = future
        self.timer: asyncio.TimerHandle | None = None  # only for a timeout other than the client's default
        self.deadline = 0.0

    def deliver(self, msg: Msg) -> None:
        try:
            ack = parse_pub_ack(msg, self.subject)
        except NatsError as exc:
            self._settle(exc, None)
        else:
            self._settle(None, ack)

    def fail(self, error: BaseException) -> None:
        """The connection closed (or its inbox was refused) with the acknowledgement outstanding. A caller who still
        awaits the future gets ``error``; one who let it go is not warned about it: the close was its own doing."""
        self._settle(error, None)
        if self.future.done() and not self.future.cancelled():
            self.future.exception()  # marks it retrieved

    def expire(self) -> None:
        self._settle(NatsTimeoutError(f"no publish acknowledgement for {self.subject!r}"), None)

    def _settle(self, error: BaseException | None, ack: PubAck | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.client._ack_done(self.token)
        if self.future.done():
            return
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(ack)  # type: ignore[arg-type]


_BATCH_ID = "Nats-Batch-Id"
_BATCH_SEQ = "Nats-Batch-Sequence"
_BATCH_COMMIT = "Nats-Batch-Commit"


class PublishBatch:
    """An atomic batch (server 2.12+, streams with ``allow_atomic``): stored whole at ``commit`` or not at all."""

    def __init__(self, client: JetStreamClient, timeout: float | None) -> None:
        self._client = client
        self._timeout = timeout or client.options.timeout
        self.id = nuid.next()
        self.size = 0
        self._finished = False

    def _headers(
        self, headers: Headers | Mapping[str, Any] | None, expect: PublishExpect | None, commit: bool
    ) -> Headers:
        given = publish_headers(headers, None, expect)
        out = Headers.from_dict(given.to_dict()) if given is not None else Headers()
        out.set(_BATCH_ID, self.id)
        out.set(_BATCH_SEQ, str(self.size + 1))
        if commit:
            out.set(_BATCH_COMMIT, "1")
        return out

    def _check_open(self) -> None:
        if self._finished:
            raise InvalidOptionError("batch is already committed or discarded")

    async def add(
        self,
        subject: str,
        payload: Payload = b"",
        *,
        headers: Headers | Mapping[str, Any] | None = None,
        expect: PublishExpect | None = None,
    ) -> None:
        """Add a message. The first goes as a request, so a stream that refuses batches says so at once.

        Raises:
            InvalidOptionError: the batch is already committed or discarded (or its first message was refused).
            JetStreamApiError: the stream refused the batch (it does not allow atomic batches, or the server does not
                support them); the batch is then finished.
            NoRespondersError: the first message reached no stream.
            NatsTimeoutError: no answer to the first message within the batch's timeout.
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
        hdrs = self._headers(headers, expect, commit=False)
        nc = self._client._nc
        if self.size == 0:
            msg = await nc.request(subject, payload, headers=hdrs, timeout=self._timeout)
            check_no_responders(msg, subject)
            if msg.data:  # an empty answer is the server's "batch started"
                data = json.loads(msg.data)
                if isinstance(data, dict) and isinstance(data.get("error"), dict):
                    self._finished = True
                    raise api_error(data["error"])
        else:
            nc.publish(subject, payload, headers=hdrs)
        self.size += 1

    async def commit(
        self,
        subject: str,
        payload: Payload = b"",
        *,
        headers: Headers | Mapping[str, Any] | None = None,
        expect: PublishExpect | None = None,
    ) -> BatchAck:
        """Add the last message and store the batch; the ack names the batch and counts its messages.

        The batch is finished from this call on, whatever its outcome.

        Raises:
            InvalidOptionError: the batch is already committed or discarded.
            JetStreamApiError: the server refused the batch (a message is missing, an expectation failed, the stream
                does not allow atomic batches...); nothing of it is stored.
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
        hdrs = self._headers(headers, expect, commit=True)
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
        """Abandon the batch: nothing of it is stored (the server drops it after its inactivity timeout).

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

    def __init__(self, nc: NatsConnection, options: JetStreamOptions, *, publish_async_max_pending: int = 4000) -> None:
        super().__init__(nc, options)
        if publish_async_max_pending <= 0:
            raise InvalidOptionError("publish_async_max_pending must be greater than 0")
        self._max_pending = publish_async_max_pending
        self._pending: dict[str, _AckWaiter] = {}
        self._room: asyncio.Future[None] | None = None
        self._idle: asyncio.Future[None] | None = None
        self._reaper: asyncio.TimerHandle | None = None
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
    ) -> PubAck:
        """Publish to a stream and wait for its acknowledgement.

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
        """
        hdrs = publish_headers(headers, msg_id, expect)
        msg = await self._nc.request(subject, payload, headers=hdrs, timeout=timeout or self._options.timeout)
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
        """A new atomic publish batch.

        Raises:
            Nothing: nothing is sent until ``add`` or ``commit``.
        """
        return PublishBatch(self, timeout)

    @property
    def publish_async_pending(self) -> int:
        return len(self._pending)

    async def publish_async(
        self,
        subject: str,
        payload: Payload = b"",
        *,
        msg_id: str | None = None,
        expect: PublishExpect | None = None,
        headers: Headers | Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> asyncio.Future[PubAck]:
        """Send now; the future resolves with the PubAck. Waits only while too many acks are outstanding.

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
        """
        port = self.port
        loop = port.loop
        while len(self._pending) >= self._max_pending:
            if self._room is None or self._room.done():
                self._room = loop.create_future()
            await asyncio.shield(self._room)
        hdrs = publish_headers(headers, msg_id, expect) if headers or msg_id or expect else None
        prefix = port.reply_prefix()
        token = port.reply_token()
        future: asyncio.Future[PubAck] = loop.create_future()
        waiter = _AckWaiter(self, token, subject, future)
        self._nc.publish(subject, payload, reply=prefix + token, headers=hdrs)  # raises before anything is recorded
        self._pending[token] = waiter
        port.wait_reply(token, waiter)
        if timeout is None or timeout == self._options.timeout:
            # The default timeout: acks are pending in publish order, so one timer for the oldest serves all.
            waiter.deadline = loop.time() + self._options.timeout
            if self._reaper is None:
                self._reaper = loop.call_at(waiter.deadline, self._reap)
        else:
            waiter.timer = loop.call_later(timeout, waiter.expire)
        return future

    def _reap(self) -> None:
        """Expire the default-timeout acks whose deadline passed; re-arm for the next one."""
        self._reaper = None
        loop = self.port.loop
        now = loop.time()
        for waiter in list(self._pending.values()):
            if waiter.timer is not None:
                continue  # has its own timer
            if waiter.deadline > now:
                self._reaper = loop.call_at(waiter.deadline, self._reap)
                return
            waiter.expire()

    def _ack_done(self, token: str) -> None:
        if self._pending.pop(token, None) is None:
            return
        self.port.forget_reply(token)
        if self._room is not None and not self._room.done() and len(self._pending) < self._max_pending:
            self._room.set_result(None)
        if not self._pending:
            if self._reaper is not None:
                self._reaper.cancel()
                self._reaper = None
            if self._idle is not None and not self._idle.done():
                self._idle.set_result(None)

    async def publish_async_completed(self, timeout: float | None = None) -> None:
        """Wait until no acknowledgement is outstanding (at most ``timeout`` seconds; None waits without limit).

        Raises:
            NatsTimeoutError: acknowledgements are still outstanding after ``timeout`` seconds.
        """
        if not self._pending:
            return
        if self._idle is None or self._idle.done():
            self._idle = self.port.loop.create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._idle), timeout)
        except asyncio.TimeoutError:
            raise NatsTimeoutError(f"{len(self._pending)} publish acknowledgements still pending") from None
