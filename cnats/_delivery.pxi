# The per-message part of JetStream consumption, compiled (included by _protocol.pyx; its twin is
# cnats/_delivery_py.py). A pull consumer's inbox subscription hands each message to a ``PullerBase``, which builds
# the ``JsMsg``, keeps the pull accounting, checks an ordered consumer's sequence and queues or delivers the message
# without a Python frame; ``MessagesBase.__anext__`` hands out a queued one without a coroutine. Everything off the
# per-message path (pulling, status messages, timers, recovery, ending) stays in cnats/jetstream/consumer.py.
# A Key-Value watcher reads through the same path: ``KvWatchBase.__anext__`` turns a queued message into a
# ``KvEntryBase`` in C (cnats/kv.py keeps the rare cases and the waiting).

from cpython.unicode cimport PyUnicode_DecodeUTF8 as _decode_utf8

cdef bytes ACK_BODY = b"+ACK"
cdef bytes WPI_BODY = b"+WPI"

cdef enum:
    REPLY_TOKENS = 13  # $JS.ACK.<domain>.<account>.<stream>.<consumer>.<5 numbers>.<token>: 12, one spare


cdef inline long long _number(const char* p, Py_ssize_t a, Py_ssize_t b) noexcept:
    """The decimal number in p[a:b], or -1 when it is empty, not all ASCII digits or beyond a signed 64-bit integer
    (a nanosecond timestamp has 19 digits; leading zeros do not count)."""
    cdef unsigned long long v = 0
    cdef unsigned int d
    cdef Py_ssize_t i
    if b <= a:
        return -1
    while a < b - 1 and p[a] == 48:
        a += 1
    if b - a > 19:
        return -1
    for i in range(a, b):
        d = <unsigned char>p[i] - 48
        if d > 9:
            return -1
        v = v * 10 + d  # 19 digits stay below 2**64
    if v > 9223372036854775807ULL:
        return -1
    return <long long>v


cdef long long _wire_size(object subject, object data, object reply, object headers) except -1:
    """A message's size as the server counts it against a pull's max_bytes: the bytes of subject, reply, headers
    and data (UTF-8 lengths, not characters)."""
    cdef Py_ssize_t n
    PyUnicode_AsUTF8AndSize(subject, &n)
    cdef long long size = n + len(data)
    if reply is not None:
        PyUnicode_AsUTF8AndSize(reply, &n)
        size += n
    if headers is not None:
        size += len(headers.encode())
    return size


cdef class JsMsgBase:
    """The fields of a JetStream message and its acknowledgements; ``cnats.jetstream.JsMsg`` subclasses it.

    The numbers of the ``$JS.ACK`` reply subject are parsed once, in place, on first need (an ordered consumer needs
    them for every message; an acking consumer never does)."""

    cdef readonly object subject
    cdef readonly object data
    cdef readonly object headers
    cdef readonly long long sid
    cdef readonly object _reply  # None when the message has none (``reply`` says "")
    cdef public object _nc
    cdef public double _js_timeout
    cdef public bint _acked
    cdef public object _info
    cdef bint _wire_reply  # _reply is a str the parser read off the wire: valid without a check
    cdef int _parsed  # 0 not yet, 1 parsed, -1 not a JetStream reply subject
    cdef long long _wire  # its size as its pull's max_bytes counted it (0 when that pull counts no bytes)
    cdef long long _delivered, _sseq, _dseq, _ts, _left
    # token ranges (UTF-8 byte offsets into the reply) of the domain, account, stream and consumer; -1: none
    cdef Py_ssize_t _dom_a, _dom_b, _acc_a, _acc_b, _str_a, _str_b, _con_a, _con_b

    def _init(self, subject, data, reply, headers, long long sid, nc, double js_timeout):
        """Fill the fields (``JsMsg(msg, nc, js_timeout)`` does it from a received message)."""
        self.subject = subject
        self.data = data
        self.headers = headers
        self.sid = sid
        self._reply = reply
        self._nc = nc
        self._js_timeout = js_timeout

    @property
    def reply(self):
        return self._reply if self._reply is not None else ""

    cdef int _parse(self) except -2:
        """Parse the reply subject (its original 9-token form, or the 12-token form with domain and account hash);
        1 when it is a JetStream one, -1 when not. The dots are found with ``memchr``; only the five numbers are
        read digit by digit."""
        cdef Py_ssize_t n, count, base
        cdef Py_ssize_t starts[REPLY_TOKENS + 1]
        cdef const char* p
        cdef const char* dot
        if self._parsed != 0:
            return self._parsed
        self._parsed = -1
        if self._reply is None:
            return -1
        p = PyUnicode_AsUTF8AndSize(self._reply, &n)
        if n < 8 or memcmp(p, b"$JS.ACK.", 8) != 0:
            return -1
        starts[0], starts[1], starts[2] = 0, 4, 8
        count = 3  # tokens begun so far
        dot = <const char*>memchr(p + 8, 46, n - 8)
        while dot != NULL:
            if count == REPLY_TOKENS:
                return -1
            starts[count] = dot - p + 1
            count += 1
            dot = <const char*>memchr(dot + 1, 46, n - (dot - p) - 1)
        starts[count] = n + 1  # so that token k is p[starts[k] : starts[k + 1] - 1]
        if count < 9 or count == 10:
            return -1
        if count == 9:
            base = 2
            self._dom_a = self._acc_a = -1
        else:
            base = 4
            self._dom_a, self._dom_b = starts[2], starts[3] - 1
            self._acc_a, self._acc_b = starts[3], starts[4] - 1
        self._str_a, self._str_b = starts[base], starts[base + 1] - 1
        self._con_a, self._con_b = starts[base + 1], starts[base + 2] - 1
        self._delivered = _number(p, starts[base + 2], starts[base + 3] - 1)
        self._sseq = _number(p, starts[base + 3], starts[base + 4] - 1)
        self._dseq = _number(p, starts[base + 4], starts[base + 5] - 1)
        self._ts = _number(p, starts[base + 5], starts[base + 6] - 1)
        self._left = _number(p, starts[base + 6], starts[base + 7] - 1)
        if self._delivered < 0 or self._sseq < 0 or self._dseq < 0 or self._ts < 0 or self._left < 0:
            return -1
        self._parsed = 1
        return 1

    cdef object _token(self, Py_ssize_t a, Py_ssize_t b):
        cdef Py_ssize_t n
        cdef const char* p = PyUnicode_AsUTF8AndSize(self._reply, &n)
        return _decode_utf8(p + a, b - a, NULL)

    def _delivery(self):
        """(domain, account hash, stream, consumer, delivered, stream seq, consumer seq, timestamp, pending) of the
        reply subject; InvalidOptionError when it is not a JetStream one."""
        if self._parse() < 0:
            raise InvalidOptionError(f"not a JetStream reply subject: {self._reply!r}")
        if self._dom_a < 0:
            domain, account = "", None
        else:
            domain = self._token(self._dom_a, self._dom_b)
            if domain == "_":
                domain = ""
            account = self._token(self._acc_a, self._acc_b)
        return (
            domain, account, self._token(self._str_a, self._str_b), self._token(self._con_a, self._con_b),
            self._delivered, self._sseq, self._dseq, self._ts, self._left,
        )

    def _position(self):
        """(stream sequence, timestamp in nanoseconds, messages pending) of the reply subject, without building the
        whole ``DeliveryInfo`` (what a Key-Value watcher needs for every entry); InvalidOptionError when it is not a
        JetStream one."""
        if self._parse() < 0:
            raise InvalidOptionError(f"not a JetStream reply subject: {self._reply!r}")
        return (self._sseq, self._ts, self._left)

    @property
    def seq(self):
        """The message's sequence in its stream."""
        if self._parse() < 0:
            raise InvalidOptionError(f"not a JetStream reply subject: {self._reply!r}")
        return self._sseq

    @property
    def redelivered(self):
        """True when the server delivered it before."""
        if self._parse() < 0:
            raise InvalidOptionError(f"not a JetStream reply subject: {self._reply!r}")
        return self._delivered > 1

    cdef int _send_c(self, bytes body, bint terminal) except -1:
        if self._acked or not self._reply:
            return 0
        nc = self._nc
        if isinstance(nc, PublisherBase):
            if self._wire_reply:
                (<PublisherBase>nc)._publish_checked(<str>self._reply, body)
            else:
                (<PublisherBase>nc)._publish(self._reply, body, None, None)
        else:
            nc.publish(self._reply, body)
        # only once it is buffered: an ack refused (a closed connection, a full buffer) may be tried again
        if terminal:
            self._acked = True
        return 0

    def _send(self, bytes body, bint terminal=True):
        """Publish ``body`` to the reply subject, once for a terminal one (later calls are silent no-ops)."""
        self._send_c(body, terminal)

    def ack(self):
        """Acknowledge the message (once; later calls do nothing).

        Raises:
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining (publishing has stopped).
            OutboundBufferLimitError: the outbound buffer is full.
        """
        self._send_c(ACK_BODY, True)

    def working(self):
        """Tell the server the message is still being worked on (resets its ack wait; may be sent many times).

        Raises:
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining (publishing has stopped).
            OutboundBufferLimitError: the outbound buffer is full.
        """
        self._send_c(WPI_BODY, False)


cdef class OrderedCursor:
    """Where an ordered consumer stands: the server consumer it reads (``name``), the consumer sequence it expects
    next, and the stream sequence to restart from. Shared by the consumer and its pullers."""

    cdef public str name
    cdef public long long expected  # the next consumer (delivery) sequence
    cdef public long long next_stream_seq
    cdef public bint resetting  # a gap was seen: nothing more from the current server consumer is accepted

    def __init__(self, long long next_stream_seq=0):
        self.name = ""
        self.expected = 1
        self.next_stream_seq = next_stream_seq
        self.resetting = False

    cdef int check(self, JsMsgBase msg) except -2:
        """1: in order (and counted); 0: from a server consumer being replaced, or not a JetStream message; -1: a
        gap (or a repeat), the caller resets."""
        cdef Py_ssize_t n, name_n
        cdef const char* p
        cdef const char* name_p
        if self.resetting or msg._parse() < 0:
            return 0
        p = PyUnicode_AsUTF8AndSize(msg._reply, &n)
        name_p = PyUnicode_AsUTF8AndSize(self.name, &name_n)
        if msg._con_b - msg._con_a != name_n or memcmp(p + msg._con_a, name_p, name_n) != 0:
            return 0
        if msg._dseq != self.expected:
            return -1
        self.expected += 1
        self.next_stream_seq = msg._sseq + 1
        return 1


@cython.final
cdef class MessageQueue:
    """The FIFO of a puller's received, untaken messages (the pure core uses a ``deque``): a ring over a list, so
    that adding and taking are a few C operations instead of a method call each."""

    cdef list _items  # capacity a power of two; free slots hold None
    cdef Py_ssize_t _head
    cdef Py_ssize_t _count

    def __cinit__(self):
        self._items = [None] * 16
        self._head = 0
        self._count = 0

    def __len__(self):
        return self._count

    def __getitem__(self, Py_ssize_t index):
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError("MessageQueue index out of range")
        return self._items[(self._head + index) & (len(self._items) - 1)]

    def __iter__(self):
        return iter([self[i] for i in range(self._count)])

    cdef int _grow(self) except -1:
        cdef Py_ssize_t cap = len(self._items), i
        items = [None] * (cap * 2)
        for i in range(self._count):
            items[i] = self._items[(self._head + i) & (cap - 1)]
        self._items = items
        self._head = 0
        return 0

    cdef inline int push(self, object item) except -1:
        if self._count == len(self._items):
            self._grow()
        self._items[(self._head + self._count) & (len(self._items) - 1)] = item
        self._count += 1
        return 0

    cdef inline object pop(self):
        """The oldest message, or None when there is none."""
        if self._count == 0:
            return None
        items = self._items
        item = items[self._head]
        items[self._head] = None
        self._head = (self._head + 1) & (len(items) - 1)
        self._count -= 1
        return item

    def append(self, item):
        self.push(item)

    def appendleft(self, item):
        if self._count == len(self._items):
            self._grow()
        self._head = (self._head - 1) & (len(self._items) - 1)
        self._items[self._head] = item
        self._count += 1

    def popleft(self):
        if self._count == 0:
            raise IndexError("pop from an empty MessageQueue")
        return self.pop()

    def clear(self):
        self._items = [None] * 16
        self._head = 0
        self._count = 0


cdef inline PyObject* _hide_borrowed(obj) noexcept:
    """Take ``obj`` off the collector's lists; the borrowed pointer to keep (NULL: it was not on them)."""
    if PyObject_IS_GC(obj) and PyObject_GC_IsTracked(obj):
        PyObject_GC_UnTrack(<void*>obj)
        return <PyObject*>obj
    return NULL


cdef inline void _show_borrowed(PyObject* obj) noexcept:
    """Undo ``_hide_borrowed`` (``obj`` NULL: nothing hidden, or it was freed meanwhile)."""
    if obj is not NULL and not PyObject_GC_IsTracked(<object>obj):
        PyObject_GC_Track(<void*>obj)


cdef class PullerBase:
    """The per-message part of a pull consumer's machinery (``_Puller`` in cnats/jetstream/consumer.py derives from
    it): the inbox subscription calls it with each message. The Python methods it calls back: ``_on_status``,
    ``_ordered_gap``, ``_deliver_inline``, ``_pull``, ``_end``, ``_queue_done``."""

    cdef public MessageQueue _queue
    cdef public object _waiter
    cdef public object _nc
    cdef public object _jsmsg_type
    cdef public double _js_timeout
    cdef public object _adapter
    cdef public object _on_arrival
    cdef public object _max_bytes  # None, or what each pull asks for by bytes
    cdef public OrderedCursor _cursor  # None unless ordered
    cdef public long long received
    cdef public long long processed
    cdef public long long _pending_msgs
    cdef public long long _pending_bytes
    cdef public long long _queued_bytes
    cdef public long long _last_size  # the last message's counted size (pulls by bytes): about the next one's
    cdef public long long _max_messages
    cdef public long long _threshold_messages
    cdef public long long _threshold_bytes
    cdef public long long _activity  # bumped by every arrival and pull: the heartbeat clock compares it
    # the heartbeat clock's fields (cnats/heartbeats.py): watched or not, the count it saw last and since when, and
    # the misses in a row
    cdef public bint _hb_watched
    cdef public long long _hb_seen
    cdef public double _hb_since
    cdef public long long _hb_misses
    cdef public bint _done
    cdef public bint _refilling
    cdef public bint _continuous
    cdef public bint _queue_callbacks
    cdef newfunc _jsmsg_new
    # the user's iterator while it is off the collector's lists: a borrowed reference, which its finalizer clears
    # (``_front_gone``) before it is freed
    cdef PyObject* _front_hidden
    # the same for the view in front of an iterator the library reads itself (a KV watcher): borrowed, cleared by the
    # view's finalizer (``_view_gone``)
    cdef PyObject* _view_hidden

    def __call__(self, msg):
        cdef MsgBase m = <MsgBase?>msg
        self._arrive(m.subject, m.data, m.reply, m.headers, m.sid, False, -1)

    def _hide_front(self, front):
        """Take the user's iterator off the collector's lists while this pull runs. It references only this pull,
        which the connection holds meanwhile, so no collection could free it through that reference, and each full
        collection would walk it (thousands of consumes may be open). ``_show_front`` gives it back at the end, so
        that a cycle through it is collectable again; until then it is freed when its last reference goes."""
        if self._front_hidden is NULL:
            self._front_hidden = _hide_borrowed(front)

    def _front_gone(self):
        """The iterator is being freed (its finalizer calls this): forget it."""
        self._front_hidden = NULL

    def _show_front(self):
        """Give the iterator taken off by ``_hide_front`` back to the collector, if it is still alive."""
        cdef PyObject* front = self._front_hidden
        self._front_hidden = NULL
        _show_borrowed(front)

    def _hide_view(self, view):
        """As ``_hide_front``, for a view that reads this pull's iterator and references nothing the user gave
        (a KV watcher): ``_show_view`` gives it back when the read ends."""
        if self._view_hidden is NULL:
            self._view_hidden = _hide_borrowed(view)

    def _view_gone(self, view):
        """``view`` is being freed (its finalizer calls this): forget it, if it is the one hidden."""
        if self._view_hidden == <PyObject*>view:
            self._view_hidden = NULL

    def _show_view(self):
        """Give the view taken off by ``_hide_view`` back to the collector, if it is still alive."""
        cdef PyObject* view = self._view_hidden
        self._view_hidden = NULL
        _show_borrowed(view)

    cdef int _arrive(self, subject, data, reply, headers, long long sid, bint from_wire, long long wire) except -1:
        """One message of the inbox, as its fields (the parser calls this without building a ``Msg`` first;
        ``from_wire``: the reply subject is as the parser read it, a valid subject; ``wire``: its size as a pull's
        ``max_bytes`` counts it, which the parser read off the line, or -1 to count it here)."""
        cdef JsMsgBase jsmsg
        cdef long long size = 0
        cdef int order
        cdef object jsmsg_type
        if self._done:
            return 0
        self._activity += 1
        if headers is not None and not data:
            code = headers.code
            if code:
                self._on_status(code, headers.description, headers)
                return 0
        self.received += 1
        self._pending_msgs -= 1
        if self._max_bytes is not None:  # bytes are only counted for pulls that ask by bytes
            size = wire if wire >= 0 else _wire_size(subject, data, reply, headers)
            self._pending_bytes -= size
            self._last_size = size
        jsmsg_type = self._jsmsg_type
        if self._jsmsg_new == NULL:
            self._jsmsg_new = (<PyTypeObject*>jsmsg_type).tp_new
        jsmsg = <JsMsgBase>self._jsmsg_new(jsmsg_type, <PyObject*>EMPTY_TUPLE, NULL)
        untrack(jsmsg)  # as a Msg (Parser._new_msg): queued in bulk, part of no cycle
        jsmsg.subject = subject
        jsmsg.data = data
        jsmsg.headers = headers
        jsmsg.sid = sid
        jsmsg._reply = reply
        jsmsg._wire_reply = from_wire and type(reply) is str
        jsmsg._nc = self._nc
        jsmsg._js_timeout = self._js_timeout
        jsmsg._wire = size
        if self._cursor is not None:
            order = self._cursor.check(jsmsg)
            if order <= 0:
                if order < 0:
                    self._ordered_gap(jsmsg._dseq)
                return 0
        if self._on_arrival is not None:
            self._on_arrival(jsmsg)
        if self._adapter is not None and not self._queue_callbacks:
            self._deliver_inline(jsmsg)
        else:
            self._queue.push(jsmsg)
            self._queued_bytes += size
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            if self._refilling:
                # credit as messages arrive, not only as they are taken: the server goes on sending while the
                # reader works through what came in one read
                self._refill_c()
        if not self._continuous and (
            self.received >= self._max_messages or (self._max_bytes is not None and self._pending_bytes <= 0)
        ):
            self._end(None)
        return 0

    cdef int _refill_c(self) except -1:
        cdef long long max_bytes, pending_bytes, pending_msgs
        if not self._refilling:
            if self._done and self._queue._count == 0:
                self._queue_done()  # a drain waits for the last queued message to be taken
            return 0
        if self._queue._count >= self._max_messages:
            return 0  # the reader is a whole window behind: pulls resume as it takes
        if self._max_bytes is not None:
            max_bytes = self._max_bytes
            if self._queued_bytes >= max_bytes:
                return 0
            pending_bytes = self._pending_bytes if self._pending_bytes > 0 else 0
            pending_msgs = self._pending_msgs if self._pending_msgs > 0 else 0
            # either limit running low asks again: bytes for large messages, the count for small ones; but not for
            # less than about two messages of the size that came last (unless for the whole window): the server
            # refuses a pull its next message does not fit in, so pulls for less would only be refused in turn
            if pending_bytes < self._threshold_bytes or pending_msgs < self._threshold_messages:
                if pending_bytes and max_bytes - pending_bytes < 2 * self._last_size:
                    return 0  # (what is on its way gives its unused bytes back as it ends)
                self._pending_bytes = pending_bytes
                self._pending_msgs = pending_msgs
                self._pull(max(1, self._max_messages - pending_msgs), max(1, max_bytes - pending_bytes))
        elif self._pending_msgs < self._threshold_messages:
            self._pull(self._max_messages - self._pending_msgs, None)
        return 0

    def _refill(self):
        """Pull again when what the server may still send falls under the threshold, unless the reader is a whole
        window behind (what waits unread stays under one window, what is on its way under another)."""
        self._refill_c()

    cdef object _take(self):
        cdef JsMsgBase msg
        item = self._queue.pop()
        if item is None:
            return None
        self.processed += 1
        msg = <JsMsgBase>item
        self._queued_bytes -= msg._wire  # 0 unless bytes are counted
        self._refill_c()  # (a reader a whole window behind pulls again from here)
        return msg

    def _take_nowait(self):
        """The next queued message, if any (no coroutine when one is waiting)."""
        return self._take()

    def _give_back(self, msg):
        """A message handed out by ``__anext__`` was never taken (its task was cancelled first): it is next again."""
        self._queue.appendleft(msg)
        self.processed -= 1
        self._queued_bytes += (<JsMsgBase?>msg)._wire


cdef class MessagesBase:
    """The iterator's fast path of ``ConsumerMessages`` (cnats/jetstream/consumer.py derives from it)."""

    cdef public PullerBase _pull
    cdef object __weakref__

    def __anext__(self):
        """The next message: straight from the queue when one is there, else the puller's slow path."""
        cdef _Ready ready
        pull = self._pull
        if pull._adapter is not None:
            raise RuntimeError("messages delivered to a callback cannot be iterated")
        msg = pull._take()
        if msg is not None:
            ready = _Ready.__new__(_Ready)
            ready.value = msg
            ready.sub = pull
            return ready
        return pull._anext_slow()

    def _take_nowait(self):
        """The next queued message, if any, without waiting."""
        return self._pull._take()


# -- Key-Value watching ------------------------------------------------------------------------------------------

cdef enum:
    # the fields of a KvEntryBase, as bits of its _set and _numbers
    KV_BUCKET = 1
    KV_KEY = 2
    KV_VALUE = 4
    KV_OPERATION = 8
    KV_REVISION = 16
    KV_CREATED = 32
    KV_DELTA = 64
    KV_LENGTH = 128
    KV_ALL = 255


cdef int _no_field(KvEntryBase entry, str name) except -1:
    raise AttributeError(f"'{type(entry).__name__}' object has no attribute '{name}'", name=name, obj=entry)


cdef class KvEntryBase:
    """The fields of a Key-Value entry; ``cnats.kv.KvEntry`` subclasses it. They behave as the slots of a Python
    class do (one never set, or deleted, raises AttributeError). A watcher fills them directly, without calling the
    subclass's ``__init__``, and leaves the numbers (revision, timestamp, delta, length) as C integers until they
    are read: a replay's entries are seldom asked for all of them."""

    cdef object _bucket_v, _key_v, _value_v, _operation_v, _revision_v, _created_v, _delta_v, _length_v
    cdef long long _revision_n, _created_n, _delta_n, _length_n
    cdef int _set  # the KV_* fields that hold a value
    cdef int _numbers  # the KV_* fields whose value is still only their C number (in _set too)

    def _init(self, bucket, key, value, revision, created, delta, operation, length):
        """Set every field (``KvEntry.__init__`` does it with its arguments)."""
        self._bucket_v = bucket
        self._key_v = key
        self._value_v = value
        self._revision_v = revision
        self._created_v = created
        self._delta_v = delta
        self._operation_v = operation
        self._length_v = length
        self._set = KV_ALL
        self._numbers = 0

    @property
    def bucket(self):
        if not self._set & KV_BUCKET:
            _no_field(self, "bucket")
        return self._bucket_v

    @bucket.setter
    def bucket(self, value):
        self._bucket_v = value
        self._set |= KV_BUCKET

    @bucket.deleter
    def bucket(self):
        if not self._set & KV_BUCKET:
            raise AttributeError("bucket")
        self._bucket_v = None
        self._set &= ~KV_BUCKET

    @property
    def key(self):
        if not self._set & KV_KEY:
            _no_field(self, "key")
        return self._key_v

    @key.setter
    def key(self, value):
        self._key_v = value
        self._set |= KV_KEY

    @key.deleter
    def key(self):
        if not self._set & KV_KEY:
            raise AttributeError("key")
        self._key_v = None
        self._set &= ~KV_KEY

    @property
    def value(self):
        if not self._set & KV_VALUE:
            _no_field(self, "value")
        return self._value_v

    @value.setter
    def value(self, value):
        self._value_v = value
        self._set |= KV_VALUE

    @value.deleter
    def value(self):
        if not self._set & KV_VALUE:
            raise AttributeError("value")
        self._value_v = None
        self._set &= ~KV_VALUE

    @property
    def operation(self):
        if not self._set & KV_OPERATION:
            _no_field(self, "operation")
        return self._operation_v

    @operation.setter
    def operation(self, value):
        self._operation_v = value
        self._set |= KV_OPERATION

    @operation.deleter
    def operation(self):
        if not self._set & KV_OPERATION:
            raise AttributeError("operation")
        self._operation_v = None
        self._set &= ~KV_OPERATION

    @property
    def revision(self):
        if self._numbers & KV_REVISION:
            self._revision_v = self._revision_n
            self._numbers &= ~KV_REVISION
        elif not self._set & KV_REVISION:
            _no_field(self, "revision")
        return self._revision_v

    @revision.setter
    def revision(self, value):
        self._revision_v = value
        self._numbers &= ~KV_REVISION
        self._set |= KV_REVISION

    @revision.deleter
    def revision(self):
        if not self._set & KV_REVISION:
            raise AttributeError("revision")
        self._revision_v = None
        self._numbers &= ~KV_REVISION
        self._set &= ~KV_REVISION

    @property
    def _created(self):
        """A datetime, or what it is made from on demand (nanoseconds, RFC 3339 text)."""
        if self._numbers & KV_CREATED:
            self._created_v = self._created_n
            self._numbers &= ~KV_CREATED
        elif not self._set & KV_CREATED:
            _no_field(self, "_created")
        return self._created_v

    @_created.setter
    def _created(self, value):
        self._created_v = value
        self._numbers &= ~KV_CREATED
        self._set |= KV_CREATED

    @_created.deleter
    def _created(self):
        if not self._set & KV_CREATED:
            raise AttributeError("_created")
        self._created_v = None
        self._numbers &= ~KV_CREATED
        self._set &= ~KV_CREATED

    @property
    def delta(self):
        if self._numbers & KV_DELTA:
            self._delta_v = self._delta_n
            self._numbers &= ~KV_DELTA
        elif not self._set & KV_DELTA:
            _no_field(self, "delta")
        return self._delta_v

    @delta.setter
    def delta(self, value):
        self._delta_v = value
        self._numbers &= ~KV_DELTA
        self._set |= KV_DELTA

    @delta.deleter
    def delta(self):
        if not self._set & KV_DELTA:
            raise AttributeError("delta")
        self._delta_v = None
        self._numbers &= ~KV_DELTA
        self._set &= ~KV_DELTA

    @property
    def length(self):
        if self._numbers & KV_LENGTH:
            self._length_v = self._length_n
            self._numbers &= ~KV_LENGTH
        elif not self._set & KV_LENGTH:
            _no_field(self, "length")
        return self._length_v

    @length.setter
    def length(self, value):
        self._length_v = value
        self._numbers &= ~KV_LENGTH
        self._set |= KV_LENGTH

    @length.deleter
    def length(self):
        if not self._set & KV_LENGTH:
            raise AttributeError("length")
        self._length_v = None
        self._numbers &= ~KV_LENGTH
        self._set &= ~KV_LENGTH


cdef class KvWatchBase:
    """The per-entry part of a Key-Value watcher (``KvWatcher`` in cnats/kv.py derives from it): ``__anext__`` takes
    the next queued message of the watcher's ordered consumer, builds its entry and applies the watcher's rules
    without a Python frame. The Python methods it calls back: ``_marker`` (the operation and length of a message
    with headers), ``_caught_up`` (a listing saw its last entry), ``_anext_slow`` (nothing is queued: wait)."""

    cdef public object _messages
    cdef type _entry_cls
    cdef newfunc _entry_new
    cdef public object _bucket
    cdef public Py_ssize_t _prefix_len  # a message's key is its subject from this character on
    cdef public object _put  # the operation of a message without headers (KvOperation.PUT)
    cdef public bint _ignore_deletes
    cdef public bint _ends  # a listing: it is over once caught up
    cdef list _held  # entries given back (their hand-out was cancelled), the next one last

    @property
    def _entry_type(self):
        """The class of the entries (a subclass of ``KvEntryBase``)."""
        return self._entry_cls

    @_entry_type.setter
    def _entry_type(self, cls):
        # (the watcher makes entries with KvEntryBase's own tp_new: a subclass may not replace __new__)
        if not (
            isinstance(cls, type) and issubclass(cls, KvEntryBase)
            and (<PyTypeObject*>cls).tp_new == (<PyTypeObject*>KvEntryBase).tp_new
        ):
            raise TypeError(f"an entry type derives from KvEntryBase (and keeps its __new__), not {cls!r}")
        self._entry_cls = cls
        self._entry_new = (<PyTypeObject*>cls).tp_new

    def __anext__(self):
        """The next entry: built at once from a queued message when there is one, else the slow path."""
        cdef _Ready ready
        cdef PullerBase pull
        entry = None
        if self._held:
            entry = self._held.pop()
        else:
            messages = self._messages
            if isinstance(messages, MessagesBase):
                pull = (<MessagesBase>messages)._pull
                if pull is not None and pull._adapter is None:
                    while entry is None:
                        msg = pull._take()
                        if msg is None:
                            break
                        entry = self._accept_c(msg)
            if entry is None:
                return self._anext_slow()
        ready = _Ready.__new__(_Ready)
        ready.value = entry
        ready.sub = self
        return ready

    cdef object _accept_c(self, object item):
        cdef JsMsgBase msg = <JsMsgBase?>item
        cdef KvEntryBase entry
        if msg._parsed != 1 and msg._parse() < 0:  # (an ordered consumer's cursor parsed it already)
            raise InvalidOptionError(f"not a JetStream reply subject: {msg._reply!r}")
        if self._entry_new == NULL:
            raise TypeError("the watcher has no entry type")
        entry = <KvEntryBase>self._entry_new(self._entry_cls, <PyObject*>EMPTY_TUPLE, NULL)
        PyObject_GC_UnTrack(<void*>entry)  # as a Msg: made in bulk, part of no cycle (always a GC type)
        entry._bucket_v = self._bucket
        subject = msg.subject
        if type(subject) is str and self._prefix_len >= 0:
            entry._key_v = PyUnicode_Substring(subject, self._prefix_len, PY_SSIZE_T_MAX)
        else:
            entry._key_v = subject[self._prefix_len:]
        data = msg.data
        entry._value_v = data
        entry._revision_n = msg._sseq
        entry._created_n = msg._ts
        entry._delta_n = msg._left
        entry._set = KV_ALL
        headers = msg.headers
        if headers is None:
            entry._operation_v = self._put
            entry._length_n = PyBytes_GET_SIZE(data) if type(data) is bytes else len(data)
            entry._numbers = KV_REVISION | KV_CREATED | KV_DELTA | KV_LENGTH
        else:
            entry._numbers = KV_REVISION | KV_CREATED | KV_DELTA
            entry._operation_v, entry._length_v = self._marker(data, headers)
        if self._ends and msg._left == 0:
            self._caught_up()
        if self._ignore_deletes and entry._operation_v is not self._put:
            return None
        return entry

    def _accept(self, msg):
        """The entry of a ``JsMsg``, or None when the watcher skips it (a DEL or PURGE marker, when it ignores
        deletes); a listing whose last entry this is is told so (``_caught_up``). InvalidOptionError when the reply
        subject is not a JetStream one."""
        return self._accept_c(msg)

    def _give_back(self, entry):
        """An entry handed out by ``__anext__`` was never taken (its task was cancelled first): it is next again."""
        if self._held is None:
            self._held = []
        self._held.append(entry)
