"""The per-message part of JetStream consumption in pure Python: the twin of ``_delivery.pxi`` (compiled into
``_protocol``), with the same classes, fields and behaviour; ``_protocol_py`` exports them with the rest of the core.

A pull consumer's inbox subscription hands each message to a ``PullerBase``, which builds the ``JsMsg``, keeps the
pull accounting, checks an ordered consumer's sequence and queues or delivers the message; ``MessagesBase`` is the
iterator's fast path. Everything off the per-message path stays in cnats/jetstream/consumer.py. ``KvWatchBase``
turns a Key-Value watcher's messages into ``KvEntryBase`` entries (cnats/kv.py keeps the rare cases and the waiting).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .errors import InvalidOptionError

__all__ = ["JsMsgBase", "KvEntryBase", "KvWatchBase", "MessageQueue", "MessagesBase", "OrderedCursor", "PullerBase"]

MessageQueue = deque
"""The FIFO of a puller's received, untaken messages (compiled: a ring over a list with the same methods)."""

_ACK = b"+ACK"
_WPI = b"+WPI"
_NUMBER_MAX = 2**63 - 1  # as the compiled parse: a number of the reply subject fits a signed 64-bit integer


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def _wire_size(subject: str, data: bytes, reply: str | None, headers: Any) -> int:
    """A message's size as the server counts it against a pull's max_bytes: the bytes of subject, reply, headers
    and data (UTF-8 lengths, not characters)."""
    size = _utf8_len(subject) + len(data)
    if reply is not None:
        size += _utf8_len(reply)
    if headers is not None:
        size += len(headers.encode())
    return size


class JsMsgBase:
    """The fields of a JetStream message and its acknowledgements; ``cnats.jetstream.JsMsg`` subclasses it.

    The numbers of the ``$JS.ACK`` reply subject are parsed once, on first need."""

    __slots__ = (
        "_acked",
        "_info",
        "_js_timeout",
        "_nc",
        "_parts",
        "_reply",
        "_wire",
        "data",
        "headers",
        "sid",
        "subject",
    )

    subject: str
    data: bytes
    headers: Any
    sid: int
    _reply: str | None
    _nc: Any
    _js_timeout: float
    _acked: bool
    _info: Any
    _parts: tuple[Any, ...] | None
    _wire: int

    def _init(
        self, subject: str, data: bytes, reply: str | None, headers: Any, sid: int, nc: Any, js_timeout: float
    ) -> None:
        """Fill the fields (``JsMsg(msg, nc, js_timeout)`` does it from a received message)."""
        self.subject = subject
        self.data = data
        self.headers = headers
        self.sid = sid
        self._reply = reply
        self._nc = nc
        self._js_timeout = js_timeout
        self._acked = False
        self._info = None
        self._parts = None
        self._wire = 0

    @property
    def reply(self) -> str:
        return self._reply if self._reply is not None else ""

    def _parse(self) -> tuple[Any, ...] | None:
        """(domain, account, stream, consumer, delivered, stream seq, consumer seq, timestamp, pending), or None when
        the reply is not a JetStream one (its 9-token form, or the 12-token form with domain and account hash)."""
        parts = self._parts
        if parts is not None:
            return parts or None
        self._parts = ()
        reply = self._reply
        if reply is None or not reply.startswith("$JS.ACK."):
            return None
        tokens = reply.split(".")
        count = len(tokens)
        if count < 9 or count == 10 or count > 13:
            return None
        if count == 9:
            domain, account, base = "", None, 2
        else:
            domain, account, base = ("" if tokens[2] == "_" else tokens[2]), tokens[3], 4
        numbers = tokens[base + 2 : base + 7]
        delivered, sseq, cseq, ts, left = numbers
        digits = delivered + sseq + cseq + ts + left
        # as the compiled parse: ASCII digits each (at least one), within a signed 64-bit integer
        if not (digits.isascii() and digits.isdigit() and delivered and sseq and cseq and ts and left):
            return None
        values = (int(delivered), int(sseq), int(cseq), int(ts), int(left))
        if max(values) > _NUMBER_MAX:
            return None
        self._parts = parts = (domain, account, tokens[base], tokens[base + 1], *values)
        return parts

    def _delivery(self) -> tuple[Any, ...]:
        """(domain, account hash, stream, consumer, delivered, stream seq, consumer seq, timestamp, pending) of the
        reply subject; InvalidOptionError when it is not a JetStream one."""
        parts = self._parse()
        if parts is None:
            raise InvalidOptionError(f"not a JetStream reply subject: {self._reply!r}")
        return parts

    def _position(self) -> tuple[int, int, int]:
        """(stream sequence, timestamp in nanoseconds, messages pending) of the reply subject, without building the
        whole ``DeliveryInfo`` (what a Key-Value watcher needs for every entry); InvalidOptionError when it is not a
        JetStream one."""
        parts = self._delivery()
        return (parts[5], parts[7], parts[8])

    @property
    def seq(self) -> int:
        """The message's sequence in its stream."""
        return int(self._delivery()[5])

    @property
    def redelivered(self) -> bool:
        """True when the server delivered it before."""
        return int(self._delivery()[4]) > 1

    def _send(self, body: bytes, terminal: bool = True) -> None:
        """Publish ``body`` to the reply subject, once for a terminal one (later calls are silent no-ops)."""
        if self._acked or not self._reply:
            return
        self._nc.publish(self._reply, body)
        # only once it is buffered: an ack refused (a closed connection, a full buffer) may be tried again
        if terminal:
            self._acked = True

    def ack(self) -> None:
        """Acknowledge the message (once; later calls do nothing).

        Raises:
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining (publishing has stopped).
            OutboundBufferLimitError: the outbound buffer is full.
        """
        self._send(_ACK, True)

    def working(self) -> None:
        """Tell the server the message is still being worked on (resets its ack wait; may be sent many times).

        Raises:
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining (publishing has stopped).
            OutboundBufferLimitError: the outbound buffer is full.
        """
        self._send(_WPI, False)


class OrderedCursor:
    """Where an ordered consumer stands: the server consumer it reads (``name``), the consumer sequence it expects
    next, and the stream sequence to restart from. Shared by the consumer and its pullers."""

    __slots__ = ("expected", "name", "next_stream_seq", "resetting")

    def __init__(self, next_stream_seq: int = 0) -> None:
        self.name = ""
        self.expected = 1  # the next consumer (delivery) sequence
        self.next_stream_seq = next_stream_seq
        self.resetting = False  # a gap was seen: nothing more from the current server consumer is accepted

    def check(self, msg: JsMsgBase) -> int:
        """1: in order (and counted); 0: from a server consumer being replaced, or not a JetStream message; -1: a
        gap (or a repeat), the caller resets."""
        if self.resetting:
            return 0
        parts = msg._parse()
        if parts is None or parts[3] != self.name:
            return 0
        if parts[6] != self.expected:
            return -1
        self.expected += 1
        self.next_stream_seq = parts[5] + 1
        return 1


class PullerBase:
    """The per-message part of a pull consumer's machinery (``_Puller`` in cnats/jetstream/consumer.py derives from
    it): the inbox subscription calls it with each message. The Python methods it calls back: ``_on_status``,
    ``_ordered_gap``, ``_deliver_inline``, ``_pull``, ``_end``, ``_queue_done``."""

    _queue: deque[Any]
    _waiter: Any
    _nc: Any
    _jsmsg_type: type[JsMsgBase]
    _js_timeout: float
    _adapter: Any
    _on_arrival: Any
    _max_bytes: int | None
    _cursor: OrderedCursor | None
    received: int
    processed: int
    _pending_msgs: int
    _pending_bytes: int
    _queued_bytes: int
    _last_size: int
    _max_messages: int
    _threshold_messages: int
    _threshold_bytes: int
    _activity: int
    _hb_watched: bool
    _hb_seen: int
    _hb_since: float
    _hb_misses: int
    _done: bool
    _refilling: bool
    _continuous: bool
    _queue_callbacks: bool

    def _hide_front(self, front: object) -> None:
        """Nothing can be taken off the collector's lists from Python (the compiled core does it)."""

    def _front_gone(self) -> None:
        """The iterator is being freed (nothing to forget here)."""

    def _show_front(self) -> None:
        """Undo ``_hide_front`` (nothing to undo here)."""

    def _hide_view(self, view: object) -> None:
        """Nothing can be taken off the collector's lists from Python (the compiled core does it)."""

    def _view_gone(self, view: object) -> None:
        """``view`` is being freed (nothing to forget here)."""

    def _show_view(self) -> None:
        """Undo ``_hide_view`` (nothing to undo here)."""

    def __call__(self, msg: Any) -> None:
        if self._done:
            return
        self._activity += 1
        headers = msg.headers
        data = msg.data
        if headers is not None and not data:
            code = headers.code
            if code:
                self._on_status(code, headers.description, headers)  # type: ignore[attr-defined]
                return
        self.received += 1
        self._pending_msgs -= 1
        size = 0
        if self._max_bytes is not None:  # bytes are only counted for pulls that ask by bytes
            size = _wire_size(msg.subject, data, msg.reply, headers)
            self._pending_bytes -= size
            self._last_size = size
        jsmsg = self._jsmsg_type.__new__(self._jsmsg_type)
        jsmsg.subject = msg.subject
        jsmsg.data = data
        jsmsg.headers = headers
        jsmsg.sid = msg.sid
        jsmsg._reply = msg.reply
        jsmsg._nc = self._nc
        jsmsg._js_timeout = self._js_timeout
        jsmsg._acked = False
        jsmsg._info = None
        jsmsg._parts = None
        jsmsg._wire = size  # its size as counted against the pull's max_bytes (0 when none is counted)
        cursor = self._cursor
        if cursor is not None:
            order = cursor.check(jsmsg)
            if order <= 0:
                if order < 0:
                    self._ordered_gap(jsmsg._delivery()[6])  # type: ignore[attr-defined]
                return
        if self._on_arrival is not None:
            self._on_arrival(jsmsg)
        if self._adapter is not None and not self._queue_callbacks:
            self._deliver_inline(jsmsg)  # type: ignore[attr-defined]
        else:
            self._queue.append(jsmsg)
            self._queued_bytes += size
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            if self._refilling and (self._pending_msgs < self._threshold_messages or self._max_bytes is not None):
                # credit as messages arrive, not only as they are taken (see _refill)
                self._refill()
        if not self._continuous and (
            self.received >= self._max_messages or (self._max_bytes is not None and self._pending_bytes <= 0)
        ):
            self._end(None)  # type: ignore[attr-defined]

    def _refill(self) -> None:
        """Pull again when what the server may still send falls under the threshold, unless the reader is a whole
        window behind (what waits unread stays under one window, what is on its way under another)."""
        if not self._refilling:
            if self._done and not self._queue:
                self._queue_done()  # type: ignore[attr-defined]  # a drain waits for the last queued message
            return
        if len(self._queue) >= self._max_messages:
            return  # the reader is a whole window behind: pulls resume as it takes
        max_bytes = self._max_bytes
        if max_bytes is not None:
            if self._queued_bytes >= max_bytes:
                return
            pending_bytes = max(0, self._pending_bytes)
            pending_msgs = max(0, self._pending_msgs)
            # either limit running low asks again (bytes for large messages, the count for small ones), but not for
            # less than two messages of the last one's size unless for the whole window (see the compiled core)
            if pending_bytes < self._threshold_bytes or pending_msgs < self._threshold_messages:
                if pending_bytes and max_bytes - pending_bytes < 2 * self._last_size:
                    return
                self._pending_bytes = pending_bytes
                self._pending_msgs = pending_msgs
                self._pull(  # type: ignore[attr-defined]
                    max(1, self._max_messages - pending_msgs), max(1, max_bytes - pending_bytes)
                )
        elif self._pending_msgs < self._threshold_messages:
            self._pull(self._max_messages - self._pending_msgs, None)  # type: ignore[attr-defined]

    def _take_nowait(self) -> Any:
        """The next queued message, if any (no coroutine when one is waiting)."""
        queue = self._queue
        if not queue:
            return None
        self.processed += 1
        msg = queue.popleft()
        self._queued_bytes -= msg._wire  # 0 unless bytes are counted
        self._refill()  # (a reader a whole window behind pulls again from here)
        return msg

    def _give_back(self, msg: Any) -> None:
        """A message handed out by ``__anext__`` was never taken (its task was cancelled first): it is next again."""
        self._queue.appendleft(msg)
        self.processed -= 1
        self._queued_bytes += msg._wire


class MessagesBase:
    """The iterator's fast path of ``ConsumerMessages`` (cnats/jetstream/consumer.py derives from it)."""

    __slots__ = ("__weakref__", "_pull")

    _pull: PullerBase

    async def __anext__(self) -> Any:
        """The next message: straight from the queue when one is there, else the puller's slow path."""
        pull = self._pull
        if pull._adapter is not None:
            raise RuntimeError("messages delivered to a callback cannot be iterated")
        msg = pull._take_nowait()
        if msg is not None:
            return msg
        return await pull._anext_slow()  # type: ignore[attr-defined]

    def _take_nowait(self) -> Any:
        """The next queued message, if any, without waiting."""
        return self._pull._take_nowait()


class KvEntryBase:
    """The fields of a Key-Value entry; ``cnats.kv.KvEntry`` subclasses it. A watcher fills them directly, without
    calling the subclass's ``__init__``."""

    __slots__ = ("_created", "bucket", "delta", "key", "length", "operation", "revision", "value")

    bucket: str
    key: str
    value: bytes
    revision: int
    _created: Any  # a datetime, or what it is made from on demand (nanoseconds, RFC 3339 text)
    delta: int
    operation: Any
    length: int

    def _init(
        self, bucket: Any, key: Any, value: Any, revision: Any, created: Any, delta: Any, operation: Any, length: Any
    ) -> None:
        """Set every field (``KvEntry.__init__`` does it with its arguments)."""
        self.bucket = bucket
        self.key = key
        self.value = value
        self.revision = revision
        self._created = created
        self.delta = delta
        self.operation = operation
        self.length = length


class KvWatchBase:
    """The per-entry part of a Key-Value watcher (``KvWatcher`` in cnats/kv.py derives from it): ``__anext__`` takes
    the next queued message of the watcher's ordered consumer, builds its entry and applies the watcher's rules. The
    Python methods it calls back: ``_marker`` (the operation and length of a message with headers), ``_caught_up``
    (a listing saw its last entry), ``_anext_slow`` (nothing is queued: wait)."""

    __slots__ = ("_bucket", "_ends", "_entry_cls", "_held", "_ignore_deletes", "_messages", "_prefix_len", "_put")

    _messages: Any
    _entry_cls: type[KvEntryBase] | None
    _bucket: Any
    _prefix_len: int  # a message's key is its subject from this character on
    _put: Any  # the operation of a message without headers (KvOperation.PUT)
    _ignore_deletes: bool
    _ends: bool  # a listing: it is over once caught up
    _held: list[Any] | None  # entries given back (their hand-out was cancelled), the next one last

    def __init__(self) -> None:
        # what the compiled class starts with
        self._messages = None
        self._entry_cls = None
        self._bucket = None
        self._prefix_len = 0
        self._put = None
        self._ignore_deletes = False
        self._ends = False
        self._held = None

    @property
    def _entry_type(self) -> type[KvEntryBase] | None:
        """The class of the entries (a subclass of ``KvEntryBase``)."""
        return self._entry_cls

    @_entry_type.setter
    def _entry_type(self, cls: type[KvEntryBase]) -> None:
        # (as the compiled watcher, which makes entries with KvEntryBase's own __new__)
        if not (isinstance(cls, type) and issubclass(cls, KvEntryBase) and cls.__new__ is KvEntryBase.__new__):
            raise TypeError(f"an entry type derives from KvEntryBase (and keeps its __new__), not {cls!r}")
        self._entry_cls = cls

    async def __anext__(self) -> Any:
        """The next entry: built at once from a queued message when there is one, else the slow path."""
        if self._held:
            return self._held.pop()
        messages = self._messages
        if isinstance(messages, MessagesBase):
            pull = messages._pull
            if pull is not None and pull._adapter is None:
                while True:
                    msg = pull._take_nowait()
                    if msg is None:
                        break
                    entry = self._accept(msg)
                    if entry is not None:
                        return entry
        return await self._anext_slow()  # type: ignore[attr-defined]

    def _accept(self, msg: Any) -> Any:
        """The entry of a ``JsMsg``, or None when the watcher skips it (a DEL or PURGE marker, when it ignores
        deletes); a listing whose last entry this is is told so (``_caught_up``). InvalidOptionError when the reply
        subject is not a JetStream one."""
        revision, created, delta = msg._position()
        cls = self._entry_cls
        if cls is None:
            raise TypeError("the watcher has no entry type")
        entry = cls.__new__(cls)
        entry.bucket = self._bucket
        entry.key = msg.subject[self._prefix_len :]
        data = msg.data
        entry.value = data
        entry.revision = revision
        entry._created = created
        entry.delta = delta
        headers = msg.headers
        if headers is None:
            entry.operation = self._put
            entry.length = len(data)
        else:
            entry.operation, entry.length = self._marker(data, headers)  # type: ignore[attr-defined]
        if self._ends and delta == 0:
            self._caught_up()  # type: ignore[attr-defined]
        if self._ignore_deletes and entry.operation is not self._put:
            return None
        return entry

    def _give_back(self, entry: Any) -> None:
        """An entry handed out by ``__anext__`` was never taken (its task was cancelled first): it is next again."""
        if self._held is None:
            self._held = []
        self._held.append(entry)
