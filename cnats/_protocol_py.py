"""The pure-Python protocol core: the twin of ``_protocol.pyx``, with the same interface and behaviour.

It is used where the compiled core cannot be built or when ``CNATS_NO_EXTENSIONS`` is set. Every behaviour here has a
counterpart in the Cython file; the conformance suite in ``tests/protocol`` feeds both the same bytes and demands the
same events, so change them together. The compiled core is the fast one; this one favours the C-implemented builtins
(``bytearray.find``, ``bytes.split``) over Python-level loops, which is what is fast in pure Python.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any

from ._delivery_py import (
    JsMsgBase,
    KvEntryBase,
    KvWatchBase,
    MessageQueue,
    MessagesBase,
    OrderedCursor,
    PullerBase,
)
from .errors import (
    BadHeaderError,
    BadPayloadError,
    BadSubjectError,
    MaxPayloadExceededError,
    OutboundBufferLimitError,
    ProtocolError,
    ServerOptionNotAvailableError,
)
from .headers import Headers, parse_header_block

__all__ = [
    "DEFAULT_MAX_CONTROL_LINE",
    "DEFAULT_MAX_PAYLOAD",
    "FRAME_SLACK",
    "AckWindow",
    "HandOff",
    "JsMsgBase",
    "KvEntryBase",
    "KvWatchBase",
    "MessageQueue",
    "MessagesBase",
    "MsgBase",
    "OrderedCursor",
    "Parser",
    "PubAckReader",
    "PublisherBase",
    "PullerBase",
    "ReplyMux",
    "SubscriptionBase",
    "WriteBuffer",
    "hide_owned",
    "retrack",
    "reveal",
    "untrack_while_live",
]

DEFAULT_MAX_PAYLOAD = 1024 * 1024  # until the server's INFO says otherwise
DEFAULT_MAX_CONTROL_LINE = 64 * 1024  # INFO lines of big clusters run to several KiB
FRAME_SLACK = 64 * 1024 * 1024  # a received frame may exceed max_payload by this much (see the docs)
READ_SIZE = 64 * 1024  # the least free space get_buffer() offers
INITIAL_READ_BUFFER = 256 * 1024
WRITE_CHUNK = 64 * 1024  # a publish that leaves this much buffered hands it to the socket at once
SMALL_TAKE = 4096  # take(): at or below this many bytes copy out and keep the buffer; above, hand the buffer over
_WHITESPACE = b" \t\r\x0b\x0c\n"
_VERB_END = frozenset(_WHITESPACE)


class MsgBase:
    """The fields of a message; ``cnats.msg.Msg`` subclasses it with the user-facing methods."""

    __slots__ = ("_client", "_data", "_headers", "_reply", "_sid", "_subject")

    subject = property(attrgetter("_subject"))
    data = property(attrgetter("_data"))
    reply = property(attrgetter("_reply"))
    headers = property(attrgetter("_headers"))
    sid = property(attrgetter("_sid"))

    def _init(
        self, subject: str, data: bytes, reply: str | None, headers: Headers | None, sid: int, client: Any
    ) -> None:
        self._subject = subject
        self._data = data
        self._reply = reply
        self._headers = headers
        self._sid = sid
        self._client = client

    def respond(self, data: Any = b"", *, headers: Any = None, reply: str | None = None) -> bool:
        """Publish ``data`` to this message's reply subject; ``False`` (nothing sent) when it has none.

        Also ``False`` for a message that did not come from a connection (built by the user), or whose connection is
        gone. ``headers`` and ``reply`` are those of the response, as in ``publish``.

        Raises:
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining (publishing has stopped).
            BadSubjectError: ``reply`` is not a valid subject.
            BadPayloadError: ``data`` is not bytes, bytearray, a C-contiguous memoryview or a UTF-8 encodable str.
            BadHeaderError: a header name or value in a mapping given as ``headers`` is not valid.
            TypeError: ``headers`` is neither ``Headers`` nor a mapping.
            ServerOptionNotAvailableError: the response has headers and the server does not support them.
            MaxPayloadExceededError: the response exceeds the server's `max_payload`.
            OutboundBufferLimitError: the outbound buffer (`pending_bytes_limit`) is full.
        """
        # _client is a weak reference to the connection (None for messages built by the user)
        client = self._client() if self._client is not None else None
        if self._reply is None or client is None:
            return False
        client.publish(self._reply, data, reply=reply, headers=headers)
        return True


def _as_bytes_view(payload: object) -> bytes | bytearray | memoryview:
    """The payload as something ``bytearray +=`` accepts, or BadPayloadError."""
    if isinstance(payload, (bytes, bytearray)):
        return payload
    if isinstance(payload, str):
        try:
            return payload.encode()
        except UnicodeEncodeError:
            raise BadPayloadError("payload str is not valid UTF-8") from None
    if isinstance(payload, memoryview):
        if not payload.c_contiguous:
            raise BadPayloadError("payload memoryview must be C-contiguous")
        return payload.cast("B") if payload.format != "B" or payload.ndim != 1 else payload
    raise BadPayloadError(f"payload must be bytes, bytearray, memoryview or str, not {type(payload).__name__}")


_SUBJECTS: dict[str, bytes] = {}  # valid subjects already encoded: most publishes repeat a few subjects
_SUBJECTS_MAX = 4096


def _encode_subject(subject: object, what: str) -> bytes:
    raw = _SUBJECTS.get(subject) if type(subject) is str else None
    if raw is not None:
        return raw
    raw = _check_subject(subject, what)
    if len(_SUBJECTS) >= _SUBJECTS_MAX:
        _SUBJECTS.clear()
    _SUBJECTS[subject] = raw  # type: ignore[index]
    return raw


def _check_subject(subject: object, what: str) -> bytes:
    if not isinstance(subject, str):
        raise BadSubjectError(f"{what} must be a str, not {type(subject).__name__}")
    if not subject:
        raise BadSubjectError(f"{what} cannot be empty")
    try:
        raw = subject.encode()
    except UnicodeEncodeError:
        raise BadSubjectError(f"{what} is not valid UTF-8: {subject!r}") from None
    for ch in _WHITESPACE:
        if ch in raw:
            raise BadSubjectError(f"{what} cannot contain whitespace: {subject!r}")
    return raw


class WriteBuffer:
    """Encodes outbound protocol frames into one growing buffer that the connection hands to its transport."""

    def __init__(self, *, max_payload: int = 0, limit: int = 0) -> None:
        self._buf = bytearray()
        self.max_payload = max_payload
        self.limit = limit
        self._out_msgs = 0
        self._out_bytes = 0

    @property
    def pending(self) -> int:
        return len(self._buf)

    def __len__(self) -> int:
        return len(self._buf)

    @property
    def out_msgs(self) -> int:
        return self._out_msgs

    @property
    def out_bytes(self) -> int:
        return self._out_bytes

    def publish(
        self, subject: str, payload: object = b"", reply: str | None = None, headers: Headers | None = None
    ) -> int:
        subj = _encode_subject(subject, "subject")
        rep = _check_subject(reply, "reply subject") if reply else None
        data = _as_bytes_view(payload)
        size = len(data) if not isinstance(data, memoryview) else data.nbytes
        hdr = headers.encode() if headers is not None else b""
        hlen = len(hdr)
        total = hlen + size
        if self.max_payload and total > self.max_payload:
            raise MaxPayloadExceededError(f"message size {total} exceeds max_payload {self.max_payload}")
        if hlen:
            if rep is None:
                line = b"HPUB %b %d %d\r\n" % (subj, hlen, total)
            else:
                line = b"HPUB %b %b %d %d\r\n" % (subj, rep, hlen, total)
        elif rep is None:
            line = b"PUB %b %d\r\n" % (subj, size)
        else:
            line = b"PUB %b %b %d\r\n" % (subj, rep, size)
        buf = self._buf
        if self.limit and len(buf) + len(line) + total + 2 > self.limit:
            raise OutboundBufferLimitError(
                f"outbound buffer would exceed pending_bytes_limit ({self.limit} bytes); flush and retry"
            )
        buf += line
        if hlen:
            buf += hdr
        buf += data
        buf += b"\r\n"
        self._out_msgs += 1
        self._out_bytes += total
        return len(buf)

    def subscribe(self, subject: str, sid: int, queue: str | None = None) -> None:
        subj = _encode_subject(subject, "subject")
        if queue:
            self._buf += b"SUB %b %b %d\r\n" % (subj, _encode_subject(queue, "queue group"), sid)
        else:
            self._buf += b"SUB %b %d\r\n" % (subj, sid)

    def unsubscribe(self, sid: int, max: int | None = None) -> None:
        if max:
            self._buf += b"UNSUB %d %d\r\n" % (sid, max)
        else:
            self._buf += b"UNSUB %d\r\n" % sid

    def connect(self, options: dict[str, Any]) -> None:
        self._buf += b"CONNECT %b\r\n" % json.dumps(options, separators=(",", ":")).encode()

    def ping(self) -> None:
        self._buf += b"PING\r\n"

    def pong(self) -> None:
        self._buf += b"PONG\r\n"

    def write_raw(self, data: bytes | bytearray | memoryview) -> None:
        """Append already-encoded bytes (e.g. a buffer taken from another WriteBuffer)."""
        self._buf += data

    def take(self) -> bytes | bytearray:
        """Everything buffered, emptying the buffer. Large buffers are handed over whole, not copied."""
        buf = self._buf
        if len(buf) <= SMALL_TAKE:
            out = bytes(buf)
            buf.clear()
            return out
        self._buf = bytearray()
        return buf

    def clear(self) -> None:
        self._buf = bytearray()


class PublisherBase:
    """The hot path of ``NatsConnection.publish``: check, encode, schedule one flush per loop turn.

    NatsConnection derives from it and keeps these fields current: ``_pub_open`` (False once closed or while
    draining publishes), ``_headers_ok`` (the server takes headers), ``_flush_scheduled`` (a flush is queued with
    ``_call_soon``; ``_flush_pending()`` clears it), ``_transport`` (None while disconnected), ``_write_paused``
    (the socket asked us to wait) and ``_debug`` (``_log_out(data)`` sees what is written). Everything off the hot
    path stays in Python.
    """

    _wb: WriteBuffer
    _pub_open: bool
    _headers_ok: bool
    _flush_scheduled: bool
    _call_soon: Any
    _transport: Any
    _write_paused: bool
    _debug: bool

    def _flush_pending(self) -> None:
        """Hand what is buffered to the socket (unless disconnected or the socket asked us to pause)."""
        self._flush_scheduled = False
        transport = self._transport
        if transport is not None and not self._write_paused and self._wb.pending:
            data = self._wb.take()
            if self._debug:
                self._log_out(data)  # type: ignore[attr-defined]
            transport.write(data)

    def publish(
        self,
        subject: str,
        payload: bytes | bytearray | memoryview | str = b"",
        *,
        reply: str | None = None,
        headers: Any = None,
    ) -> None:
        """Buffer one message for the server; it is written within this event-loop turn. Never blocks.

        ``headers`` may be ``Headers`` or a mapping (converted as by ``Headers.from_dict``).

        Raises:
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining (publishing has stopped).
            BadSubjectError: the subject or reply subject is not valid.
            BadPayloadError: the payload is not bytes, bytearray, a C-contiguous memoryview or a UTF-8 encodable str.
            BadHeaderError: a header name or value in a mapping given as ``headers`` is not valid.
            TypeError: ``headers`` is neither ``Headers`` nor a mapping.
            ServerOptionNotAvailableError: the message has headers and the server does not support them.
            MaxPayloadExceededError: the message exceeds the server's `max_payload`.
            OutboundBufferLimitError: the outbound buffer (`pending_bytes_limit`) is full.
        """
        if not self._pub_open:
            self._raise_closed_or_draining()  # type: ignore[attr-defined]
        if headers is not None:
            if type(headers) is not Headers:
                headers = self._to_headers(headers)  # type: ignore[attr-defined]
            if not self._headers_ok and headers:
                raise ServerOptionNotAvailableError("the server does not support headers")
        if self._wb.publish(subject, payload, reply, headers) >= WRITE_CHUNK:
            self._flush_pending()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._call_soon(self._flush_pending)


class SubscriptionBase:
    """The per-message part of ``Subscription``: counting, limits, and the hand-over to the callback or the queue.
    The parser calls the subscription itself; ``cnats.subscription.Subscription`` derives from this class and owns
    everything else. Rare paths (timer, max reached, drops, blocking) call back into its methods."""

    # the compiled core's C fields: slots here, so that a subclass with slots has no __dict__ either
    __slots__ = (
        "_block_policy",
        "_blocking",
        "_bytes_limit",
        "_callback",
        "_max",
        "_msgs_limit",
        "_pending_bytes",
        "_port",
        "_queue",
        "_slow_reported",
        "_timer",
        "_waiter",
        "dropped",
        "processed",
        "received",
    )

    received: int
    processed: int
    dropped: int
    _pending_bytes: int
    _callback: Any
    _queue: Any
    _max: int | None
    _timer: Any
    _waiter: Any
    _msgs_limit: int | None
    _bytes_limit: int | None
    _port: Any
    _block_policy: bool
    _blocking: bool
    _slow_reported: bool

    async def __anext__(self) -> Any:
        """The next message: straight from the queue when one is there, else the slow path."""
        queue = self._queue
        if queue:
            msg = queue.popleft()
            self._pending_bytes -= len(msg._data)
            self.processed += 1
            if self._blocking:
                self._unblock_if_room()  # type: ignore[attr-defined]
            return msg
        return await self._anext_slow()  # type: ignore[attr-defined]

    def __call__(self, msg: MsgBase) -> None:
        self.received = received = self.received + 1
        if self._timer is not None:
            self._cancel_timer()  # type: ignore[attr-defined]
        max_n = self._max
        if max_n is not None and received > max_n:
            return
        queue = self._queue
        if queue is None:
            try:
                result = self._callback(msg)
            except Exception as exc:  # noqa: BLE001 - a callback error is reported, the subscription goes on
                self._callback_failed(exc, msg)  # type: ignore[attr-defined]
            else:
                if result is not None and result is not True and result is not False:  # maybe an awaitable
                    self._callback_returned(result, msg)  # type: ignore[attr-defined]
            self.processed += 1
        else:
            size = len(msg._data)
            if (self._msgs_limit is not None and len(queue) >= self._msgs_limit) or (
                self._bytes_limit is not None and self._pending_bytes + size > self._bytes_limit
            ):
                if not self._block_policy:
                    self._drop()  # type: ignore[attr-defined]
                    return
                if not self._blocking:
                    self._blocking = True
                    self._port.block_reading(self)
            queue.append(msg)
            self._pending_bytes += size
            self._slow_reported = False
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        if max_n is not None and received >= max_n:
            self._finish(None)  # type: ignore[attr-defined]


class Parser:
    """Parses the server's byte stream, fed through ``asyncio.BufferedProtocol``, into handler calls and messages.

    Messages go to ``subs[sid](msg)``; a sid not in ``subs`` is dropped. Control lines go to the handler's
    ``on_info(dict)``, ``on_ping()``, ``on_pong()``, ``on_ok()`` and ``on_err(str)``. Malformed input raises
    ``ProtocolError``; the parser then stays failed until ``reset()``.
    """

    def __init__(
        self,
        handler: Any,
        *,
        msg_class: type[MsgBase] = MsgBase,
        client: Any = None,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        max_control_line: int = DEFAULT_MAX_CONTROL_LINE,
    ) -> None:
        if not (isinstance(msg_class, type) and issubclass(msg_class, MsgBase)):
            raise TypeError("msg_class must be a subclass of MsgBase")
        self._handler = handler
        self._msg_class = msg_class
        self._client = client
        self.subs: dict[int, Callable[[Any], object]] = {}
        self.max_payload = max_payload
        self._max_control_line = max_control_line
        self._in_msgs = 0
        self._in_bytes = 0
        self.reset()

    # -- state --------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget buffered bytes and any failure: the next byte is the start of a new connection's stream."""
        self._buf = bytearray(INITIAL_READ_BUFFER)
        self._start = 0
        self._end = 0
        self._offset = 0  # stream position of _buf[0]
        self._failed: ProtocolError | None = None
        # a MSG/HMSG whose control line is parsed and whose payload is still arriving
        self._need = 0  # bytes needed from _start: payload + CRLF (0 = parsing control lines)
        self._p_subject = ""
        self._p_reply: str | None = None
        self._p_sid = 0
        self._p_hdr = -1  # header length, -1 for MSG
        self._last_subject_raw: bytes | bytearray = b""
        self._last_subject = ""

    @property
    def max_control_line(self) -> int:
        return self._max_control_line

    @property
    def in_msgs(self) -> int:
        return self._in_msgs

    @property
    def in_bytes(self) -> int:
        return self._in_bytes

    @property
    def position(self) -> int:
        """Stream offset of the next unparsed byte."""
        return self._offset + self._start

    # -- buffer protocol ------------------------------------------------------------------------------------------
    def get_buffer(self, sizehint: int = -1) -> memoryview:
        pending = self._end - self._start
        if pending == 0:
            self._offset += self._start
            self._start = self._end = 0
            if len(self._buf) > 4 * INITIAL_READ_BUFFER:  # give back what a big frame made us allocate
                self._buf = bytearray(INITIAL_READ_BUFFER)
        want = max(READ_SIZE, self._need - pending)
        cap = len(self._buf)
        if cap - self._end < want:
            if cap - pending >= want and self._start > 0:
                # Move the unparsed tail to the front (same-size slice assignment: no resize).
                self._buf[0:pending] = self._buf[self._start : self._end]
            else:
                new = bytearray(max(cap * 2, pending + want))
                new[0:pending] = self._buf[self._start : self._end]
                self._buf = new
            self._offset += self._start
            self._start = 0
            self._end = pending
        return memoryview(self._buf)[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        self._end += nbytes
        self._parse()

    def received(self, nbytes: int) -> None:
        """``buffer_updated`` for a transport to call directly: a ProtocolError goes to the handler's
        ``on_protocol_error`` instead of into the event loop."""
        self._end += nbytes
        try:
            self._parse()
        except ProtocolError as exc:
            self._handler.on_protocol_error(exc)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Copy ``data`` in and parse it: for data_received-style transports and tests."""
        view = memoryview(data).cast("B")
        done = 0
        total = len(view)
        while done < total:
            room = self.get_buffer(total - done)
            n = min(len(room), total - done)
            room[:n] = view[done : done + n]
            room.release()
            done += n
            self.buffer_updated(n)

    # -- parsing --------------------------------------------------------------------------------------------------
    def _fail(self, at: int, what: str) -> ProtocolError:
        err = ProtocolError(f"protocol error at stream position {self._offset + at}: {what}")
        self._failed = err
        return err

    def _parse(self) -> None:
        if self._failed is not None:
            raise ProtocolError(f"parser failed earlier: {self._failed}")
        buf = self._buf
        while True:
            start = self._start
            end = self._end
            if self._need:
                if end - start < self._need:
                    return
                self._deliver(buf, start)
                continue
            lf = buf.find(b"\n", start, end)
            if lf < 0:
                if end - start > self._max_control_line:
                    raise self._fail(start, f"control line longer than {self._max_control_line} bytes")
                return
            stop = lf - 1 if lf > start and buf[lf - 1] == 13 else lf
            if stop - start > self._max_control_line:
                raise self._fail(start, f"control line longer than {self._max_control_line} bytes")
            if buf.startswith(b"MSG ", start) and self._whole_msg(buf, start, lf, stop, end):
                continue
            self._start = lf + 1
            self._control_line(buf, start, stop)

    def _whole_msg(self, buf: bytearray, start: int, lf: int, stop: int, end: int) -> bool:
        """The common case in one go: a well-formed MSG whose payload is already buffered. Anything else returns
        False and takes the general path, which also produces the errors (so both paths agree)."""
        args = buf[start + 4 : stop].split()
        n = len(args)
        if n == 3:
            subject, sid, size_b = args
            reply = None
        elif n == 4:
            subject, sid, reply_b, size_b = args
            try:
                reply = reply_b.decode()
            except UnicodeDecodeError:
                return False
        else:
            return False
        if not (sid.isdigit() and size_b.isdigit() and len(sid) <= 18 and len(size_b) <= 18):
            return False
        size = int(size_b)
        body = lf + 1
        tail = body + size
        if tail + 2 > end or size > self.max_payload + FRAME_SLACK or buf[tail] != 13 or buf[tail + 1] != 10:
            return False
        if subject == self._last_subject_raw:  # subjects repeat: reuse the decoded one
            subj = self._last_subject
        else:
            try:
                subj = subject.decode()
            except UnicodeDecodeError:
                return False
            self._last_subject_raw = subject
            self._last_subject = subj
        self._start = tail + 2
        self._in_msgs += 1
        self._in_bytes += size
        sid_n = int(sid)
        sink = self.subs.get(sid_n)
        if sink is not None:
            cls = self._msg_class
            msg = cls.__new__(cls)
            msg._subject = subj
            msg._data = bytes(buf[body:tail])
            msg._reply = reply
            msg._headers = None
            msg._sid = sid_n
            msg._client = self._client
            sink(msg)
        return True

    def _control_line(self, buf: bytearray, start: int, stop: int) -> None:
        if buf.startswith(b"MSG ", start):  # the common case, without the verb scan below
            self._msg_line(buf, start, start + 3, stop, False)
            return
        if stop == start:
            raise self._fail(start, "empty control line")
        verb_end = start
        while verb_end < stop and buf[verb_end] not in _VERB_END:
            verb_end += 1
        verb = bytes(buf[start:verb_end]).upper()
        if verb == b"MSG" or verb == b"HMSG":
            self._msg_line(buf, start, verb_end, stop, verb == b"HMSG")
        elif verb == b"PING":
            self._handler.on_ping()
        elif verb == b"PONG":
            self._handler.on_pong()
        elif verb == b"+OK":
            self._handler.on_ok()
        elif verb == b"-ERR":
            text = bytes(buf[verb_end:stop]).strip(_WHITESPACE)
            if len(text) >= 2 and text[0] == 0x27 and text[-1] == 0x27:  # '...'
                text = text[1:-1]
            self._handler.on_err(text.decode("utf-8", "replace"))
        elif verb == b"INFO":
            try:
                info = json.loads(bytes(buf[verb_end:stop]))
            except ValueError as exc:
                raise self._fail(start, f"INFO is not valid JSON ({exc})") from None
            if not isinstance(info, dict):
                raise self._fail(start, "INFO is not a JSON object")
            self._handler.on_info(info)
        else:
            shown = bytes(buf[start : min(verb_end, start + 16)])
            raise self._fail(start, f"unknown protocol verb {shown!r}")

    def _msg_line(self, buf: bytearray, start: int, args_at: int, stop: int, with_headers: bool) -> None:
        # bytes.split() is the fastest tokenizer available to pure Python; the compiled core scans in place.
        args = bytes(buf[args_at:stop]).split()
        n = len(args)
        what = "HMSG" if with_headers else "MSG"
        if with_headers:
            if n == 4:
                subject, sid, hdr, total = args
                reply = None
            elif n == 5:
                subject, sid, reply, hdr, total = args
            else:
                raise self._fail(start, f"{what} needs 4 or 5 arguments, got {n}")
        elif n == 3:
            subject, sid, total = args
            reply = None
            hdr = None
        elif n == 4:
            subject, sid, reply, total = args
            hdr = None
        else:
            raise self._fail(start, f"{what} needs 3 or 4 arguments, got {n}")
        sid_n = self._number(sid, start, "sid")
        size = self._number(total, start, "size")
        limit = self.max_payload + FRAME_SLACK
        if size > limit:
            raise self._fail(start, f"{what} size {size} exceeds the limit {limit}")
        if hdr is not None:
            hdr_n = self._number(hdr, start, "header size")
            if hdr_n > size:
                raise self._fail(start, f"HMSG header size {hdr_n} exceeds total size {size}")
        else:
            hdr_n = -1
        try:
            self._p_subject = subject.decode()
            self._p_reply = reply.decode() if reply is not None else None
        except UnicodeDecodeError:
            raise self._fail(start, f"{what} subject is not valid UTF-8") from None
        self._p_sid = sid_n
        self._p_hdr = hdr_n
        self._need = size + 2

    def _number(self, token: bytes, at: int, what: str) -> int:
        if not token.isdigit() or len(token) > 18:
            raise self._fail(at, f"invalid {what} {token[:24]!r}")
        return int(token)

    def _deliver(self, buf: bytearray, start: int) -> None:
        end = start + self._need - 2
        if buf[end] != 13 or buf[end + 1] != 10:
            raise self._fail(end, "missing CRLF after message payload")
        self._start = end + 2
        self._need = 0
        hdr_n = self._p_hdr
        self._in_msgs += 1
        self._in_bytes += end - start
        sink = self.subs.get(self._p_sid)
        if sink is None:
            return
        headers = None
        if hdr_n >= 0:
            try:
                headers = parse_header_block(bytes(buf[start : start + hdr_n]))
            except BadHeaderError as exc:
                raise self._fail(start, f"bad header block: {exc}") from None
            start += hdr_n
        msg = self._msg_class.__new__(self._msg_class)
        msg._subject = self._p_subject
        msg._data = bytes(buf[start:end])
        msg._reply = self._p_reply
        msg._headers = headers
        msg._sid = self._p_sid
        msg._client = self._client
        sink(msg)


def untrack_while_live(obj: object) -> None:
    """The compiled core takes a live subscription off the cyclic collector's lists; Python code cannot."""


def retrack(obj: object) -> None:
    """Undo ``untrack_while_live`` (nothing to undo here)."""


def hide_owned(roots: Iterable[object], kinds: tuple[type, ...]) -> list[object]:
    """The compiled core takes a running consumer's private objects off the collector's lists; Python code cannot
    (nothing is hidden)."""
    return []


def reveal(hidden: list[object]) -> None:
    """Undo ``hide_owned`` (nothing to undo here)."""
    hidden.clear()


class HandOff:
    """The common case of a blocking connection's ``publish`` (cnats.sync): a small ``bytes`` payload, no reply and
    no headers, to a subject already checked on this connection is appended to the outbox; anything else goes to
    ``slow``. (The compiled core runs it without a Python frame.)"""

    __slots__ = ("_crowded", "_items", "_known", "_outbox", "_publish", "_slow", "_small", "open")

    def __init__(
        self,
        items: Any,
        known: set[str],
        publish: Callable[..., Any],
        outbox: Any,
        slow: Callable[[Any, Any, Any, Any], None],
        small: int,
        crowded: int,
    ) -> None:
        self.open = True
        self._items = items
        self._known = known
        self._publish = publish
        self._outbox = outbox
        self._slow = slow
        self._small = small
        self._crowded = crowded

    def __call__(self, subject: Any, payload: Any = b"", *, reply: Any = None, headers: Any = None) -> None:
        if (
            self.open
            and reply is None
            and headers is None
            and type(payload) is bytes
            and len(payload) <= self._small
            and type(subject) is str
            and subject in self._known
        ):
            items = self._items
            items.append((self._publish, subject, payload))
            outbox = self._outbox
            if not outbox.waking:
                outbox.wake()
            elif len(items) >= self._crowded:
                outbox.wait_for_room()
            return
        self._slow(subject, payload, reply, headers)


class PubAckReader:
    """Turns a pipelined publish's acknowledgement into its ``PubAck``: ``slow(msg, subject)`` reads every answer
    here (the compiled core reads the usual one itself and builds the same ack)."""

    __slots__ = ("_slow",)

    def __init__(self, ack_type: type, defaults: dict[str, Any], slow: Callable[[Any, str], Any]) -> None:
        self._slow = slow

    def __call__(self, msg: Any, subject: str) -> Any:
        return self._slow(msg, subject)


def _unbound() -> None:
    raise RuntimeError("ReplyMux.publish_acked before bind()")


class ReplyMux:
    """The shared response inbox of request/reply: one wildcard subscription (``prefix + "*"``) whose messages are
    routed by their last token to what waits for them.

    A plain request is a future registered by :meth:`request`: its response resolves it (a no-responders status
    fails it with ``no_responders_error``) and its deadline fails it with ``timeout_error``. Requests made with the
    same timeout expire in the order they were made, so one FIFO and one timer per distinct timeout serve them all
    (a timer per request costs more than the rest of a request's bookkeeping). Other waiters (``request_many``
    iterators, JetStream acks) are added with :meth:`add` and get ``deliver(msg)``/``fail(error)`` calls; they
    remove themselves with :meth:`forget`."""

    def __init__(self, loop: Any, prefix: str, timeout_error: type, no_responders_error: type) -> None:
        self.prefix = prefix
        self.waiters: dict[str, Any] = {}
        self._plen = len(prefix)
        self._loop = loop
        self._seq = 0
        self._queues: dict[float, _DeadlineQueue] = {}
        self._timeout_error = timeout_error
        self._no_responders_error = no_responders_error
        self.ready = False  # the inbox is subscribed and answers can still arrive (kept by the connection)
        self._publisher: Any = None
        self._prepare: Callable[[], None] = _unbound

    def next_token(self) -> str:
        """A token no other waiter of this inbox has had (the prefix is unique per connection)."""
        self._seq += 1
        return str(self._seq)

    def bind(self, publisher: PublisherBase, prepare: Callable[[], None]) -> None:
        """What ``publish_acked`` publishes through, and what it calls when the inbox is not ``ready`` (it subscribes
        the inbox and sets ``ready``, or raises)."""
        self._publisher = publisher
        self._prepare = prepare

    def publish_acked(
        self, subject: str, payload: Any, headers: Any, timeout: float, window: AckWindow, transform: Any
    ) -> Any:
        """A pipelined JetStream publish: ``request`` through the bound publisher (the future of
        ``transform(ack, subject)``, counted in ``window`` until it is settled)."""
        if not self.ready:
            self._prepare()
        return self.request(self._publisher, subject, payload, headers, timeout, window, transform)

    def request(
        self,
        publisher: PublisherBase,
        subject: str,
        payload: Any,
        headers: Any,
        timeout: float,
        window: AckWindow | None = None,
        transform: Any = None,
    ) -> Any:  # asyncio.Future[Msg], or of what transform makes
        """Publish a request with a reply subject of this inbox and return the future of its response: the message,
        or ``transform(msg, subject)`` (a pipelined publish's PubAck, counted in ``window`` until it is settled)."""
        token = self.next_token()
        publisher.publish(subject, payload, reply=self.prefix + token, headers=headers)  # raises before recording
        future = self._loop.create_future()
        pending = _PendingRequest(future, token, subject, timeout, window, transform)
        if window is not None:
            window.pending += 1
        self.waiters[token] = pending
        queue = self._queues.get(timeout)
        if queue is None:
            queue = self._queues[timeout] = _DeadlineQueue(self, timeout)
        queue.add(pending)
        return future

    def add(self, token: str, waiter: Any) -> None:
        self.waiters[token] = waiter

    def forget(self, token: str) -> None:
        self.waiters.pop(token, None)

    def __call__(self, msg: MsgBase) -> None:
        token = msg._subject[self._plen :]
        waiter = self.waiters.get(token)
        if waiter is None:
            return
        if type(waiter) is not _PendingRequest:
            waiter.deliver(msg)
            return
        del self.waiters[token]
        future = waiter.future
        waiter.future = _SETTLED
        window = waiter.window
        if window is not None:
            waiter.window = None
            window._settled()
        if future.done():
            return
        headers = msg._headers
        if headers is not None and headers.code == 503 and not msg._data:
            future.set_exception(self._no_responders_error(f"no responders for {waiter.subject!r}"))
        elif waiter.transform is not None:
            try:
                value = waiter.transform(msg, waiter.subject)
            except Exception as exc:  # noqa: BLE001 - the future carries it to whoever awaits the publish
                future.set_exception(exc)
            else:
                future.set_result(value)
        else:
            future.set_result(msg)

    def deadlines_pending(self) -> int:
        """How many requests the deadline queues hold (answered ones leave them lazily)."""
        return sum(len(queue.entries) for queue in self._queues.values())

    def fail_all(self, error: BaseException) -> None:
        """Fail everything waiting (the connection closed, or the inbox subscription was refused)."""
        waiters = list(self.waiters.values())
        self.waiters.clear()
        queues, self._queues = self._queues, {}
        for queue in queues.values():
            queue.cancel()
        for waiter in waiters:
            if type(waiter) is _PendingRequest:
                future, window = waiter.future, waiter.window
                if window is not None:
                    waiter.window = None
                    window._settled()
                if not future.done():
                    future.set_exception(error)
                    if window is not None:
                        # a pipelined publish whose caller let the future go is not warned: the close was theirs
                        future.exception()
            else:
                waiter.fail(error)

    def _expire(self, pending: _PendingRequest) -> None:
        if self.waiters.get(pending.token) is pending:
            del self.waiters[pending.token]
        window = pending.window
        if window is not None:
            pending.window = None
            window._settled()
            if not pending.future.done():
                pending.future.set_exception(self._timeout_error(f"no publish acknowledgement for {pending.subject!r}"))
        elif not pending.future.done():
            pending.future.set_exception(
                self._timeout_error(f"request to {pending.subject!r} timed out after {pending.timeout} s")
            )


class _Settled:
    """Stands in for the future of an answered request still queued for its deadline (bounded retention)."""

    __slots__ = ()

    def done(self) -> bool:
        return True


_SETTLED = _Settled()


class AckWindow:
    """The acknowledgements a pipelined publisher has outstanding: how many (at most ``max_pending`` before
    ``publish_async`` waits), and the futures of whoever waits for room or for none. The mux counts them in and out."""

    __slots__ = ("_create_future", "_idle", "_room", "max_pending", "pending")

    def __init__(self, loop: Any, max_pending: int) -> None:
        self.pending = 0
        self.max_pending = max_pending
        self._create_future = loop.create_future
        self._room: Any = None
        self._idle: Any = None

    @property
    def full(self) -> bool:
        return self.pending >= self.max_pending

    def room(self) -> Any:  # asyncio.Future[None]
        """A future resolved once fewer than ``max_pending`` are outstanding."""
        if self._room is None or self._room.done():
            self._room = self._create_future()
        return self._room

    def idle(self) -> Any:  # asyncio.Future[None]
        """A future resolved once none is outstanding."""
        if self._idle is None or self._idle.done():
            self._idle = self._create_future()
        return self._idle

    def _settled(self) -> None:
        self.pending -= 1
        room = self._room
        if room is not None and self.pending < self.max_pending:
            self._room = None
            if not room.done():
                room.set_result(None)
        idle = self._idle
        if idle is not None and self.pending == 0:
            self._idle = None
            if not idle.done():
                idle.set_result(None)


class _PendingRequest:
    __slots__ = ("deadline", "future", "subject", "timeout", "token", "transform", "window")

    def __init__(
        self, future: Any, token: str, subject: str, timeout: float, window: AckWindow | None, transform: Any
    ) -> None:
        self.future = future
        self.token = token
        self.subject = subject
        self.timeout = timeout
        self.deadline = 0.0
        self.window = window  # a pipelined publish: counted out of its window once settled
        self.transform = transform  # what the response becomes (a publish's PubAck), or None for the message


class _DeadlineQueue:
    """The requests of one timeout value, oldest first, and the one timer for the oldest."""

    __slots__ = ("entries", "mux", "timeout", "timer")

    def __init__(self, mux: ReplyMux, timeout: float) -> None:
        self.mux = mux
        self.timeout = timeout
        self.entries: deque[_PendingRequest] = deque()
        self.timer: Any = None

    def add(self, pending: _PendingRequest) -> None:
        entries = self.entries
        # answered requests leave from the front, so the queue stays about as long as what is in flight (one that
        # was cancelled instead leaves at its deadline)
        while entries and entries[0].future is _SETTLED:
            entries.popleft()
        loop = self.mux._loop
        pending.deadline = loop.time() + self.timeout
        entries.append(pending)
        if self.timer is None:
            self.timer = loop.call_at(pending.deadline, self._fire)

    def _fire(self) -> None:
        self.timer = None
        loop = self.mux._loop
        now = loop.time()
        entries = self.entries
        while entries:
            pending = entries[0]
            if pending.deadline > now:
                self.timer = loop.call_at(pending.deadline, self._fire)
                return
            entries.popleft()
            self.mux._expire(pending)
        self.mux._queues.pop(self.timeout, None)  # nothing in flight with this timeout: forget it

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
