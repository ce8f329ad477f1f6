# cython: language_level=3
"""The compiled protocol core: a zero-copy parser of the server's byte stream and an in-place frame encoder.

Its twin, cnats/_protocol_py.py, has the same interface and behaviour in pure Python; tests/protocol runs every
case against both, so a change here needs its counterpart there. Control lines are scanned in place (memchr for the
line end, digits parsed in C, tokens as pointer ranges); the only per-message allocations are the strings for subject
and reply, the payload ``bytes`` (the single copy of the data) and the message object.
"""

import json
from collections import deque
from types import MethodType

cimport cython

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize, PyByteArray_GET_SIZE
from cpython.bytearray cimport PyByteArray_Resize
from cpython.buffer cimport PyBUF_C_CONTIGUOUS, PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_Copy, PyDict_GetItem, PyDict_GetItemWithError
from cpython.list cimport PyList_Append
from cpython.object cimport PyObject, PyObject_GenericSetAttr, PyTypeObject
from cpython.ref cimport Py_INCREF
from cpython.unicode cimport PyUnicode_DecodeASCII, PyUnicode_DecodeUTF8
from libc.stdint cimport uint64_t
from libc.string cimport memchr, memcmp, memcpy, memmove

from .errors import BadPayloadError, BadSubjectError, MaxPayloadExceededError, OutboundBufferLimitError
from .errors import BadHeaderError, InvalidOptionError, ProtocolError, ServerOptionNotAvailableError
from .headers import Headers, parse_header_block


cdef extern from "Python.h":
    void PyObject_GC_UnTrack(void* op)
    void PyObject_GC_Track(void* op)
    bint PyObject_IS_GC(object op)
    bint PyObject_GC_IsTracked(object op)
    Py_ssize_t refcount_of "Py_REFCNT" (PyObject* op)
    bint PyWeakref_Check(object op)
    PyObject* list_item "PyList_GET_ITEM" (object lst, Py_ssize_t i)


cdef inline void untrack(object obj) noexcept:
    """Take ``obj`` out of the cyclic collector's lists (instances of Python subclasses are tracked, compiled
    no-GC classes are not)."""
    if PyObject_IS_GC(obj):
        PyObject_GC_UnTrack(<void*>obj)


def untrack_while_live(obj):
    """Keep a live subscription out of the cyclic collector's lists: its connection holds it, so a collection could
    free neither it nor anything it references, and walking 200,000 of them made every full collection slow.
    ``retrack`` gives it back when the connection lets go of it (a cycle through it is collectable again)."""
    untrack(obj)


def retrack(obj):
    """Undo ``untrack_while_live``."""
    track(obj)


cdef inline void track(object obj) noexcept:
    if PyObject_IS_GC(obj) and not PyObject_GC_IsTracked(obj):
        PyObject_GC_Track(<void*>obj)


_CONTAINERS = (dict, list, tuple, set, MethodType)


cdef inline bint _hideable(obj):
    """Tracked, and not a weak reference: when the referent of a weak reference with a callback becomes cyclic
    garbage, the collector moves that reference between its own lists, which it may only do with a tracked one
    (an untracked one crashes the interpreter there)."""
    return PyObject_IS_GC(obj) and PyObject_GC_IsTracked(obj) and not PyWeakref_Check(obj)


def hide_owned(roots, kinds):
    """Take off the collector's lists ``roots`` and what only they reach: the machinery a connection's scope holds
    while it runs (a consumer's puller, a KV read), on which each full collection would otherwise spend a walk per
    object however many of them are alive. The search goes through builtin containers and instances of ``kinds``;
    anything else, and anything also referenced from outside (with all it reaches), stays tracked. The same
    accounting as the collector's: an object is owned when the references from within the set explain its count.

    Returns the hidden objects (in a list hidden too), for ``reveal`` once the scope lets go of the roots (a cycle
    through them is collectable again then). The list holds them alive until that: replaced parts outlive their use
    by that long."""
    import gc
    cdef list order = [obj for obj in roots if _hideable(obj)]
    cdef Py_ssize_t n_roots = len(order), i, j, k, n
    cdef dict index = {id(obj): i for i, obj in enumerate(order)}
    allowed = _CONTAINERS + tuple(kinds)
    get_referents = gc.get_referents
    i = 0
    while i < len(order):
        for ref in get_referents(order[i]):
            if type(ref) is not type and _hideable(ref) and id(ref) not in index and isinstance(ref, allowed):
                index[id(ref)] = len(order)
                order.append(ref)
        i += 1
        if len(order) > 4096:
            return []  # not a small private graph: leave it to the collector
    n = len(order)
    cdef list internal = [0] * n
    cdef list edges = [[] for _ in range(n)]
    for j in range(n):
        for ref in get_referents(order[j]):
            found = index.get(id(ref))
            if found is not None:
                k = found
                internal[k] += 1
                (<list>edges[j]).append(k)
    ref = None
    found = None
    # referenced from outside (beyond the one reference of ``order``): shared, and so is all it reaches
    cdef list shared = [False] * n
    cdef list stack = []
    for j in range(n_roots, n):
        if refcount_of(list_item(order, j)) - 1 > <Py_ssize_t>internal[j]:
            shared[j] = True
            stack.append(j)
    while stack:
        j = stack.pop()
        for k in <list>edges[j]:
            if k >= n_roots and not shared[k]:
                shared[k] = True
                stack.append(k)
    cdef list hidden = []
    for j in range(n):
        if not shared[j]:
            obj = order[j]
            PyObject_GC_UnTrack(<void*>obj)
            hidden.append(obj)
    PyObject_GC_UnTrack(<void*>hidden)  # held by a root: as private as what it lists
    return hidden


def reveal(list hidden):
    """Give back to the collector what ``hide_owned`` took (empties ``hidden``)."""
    for obj in hidden:
        if not PyObject_GC_IsTracked(obj):
            PyObject_GC_Track(<void*>obj)
    hidden.clear()


cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL
    object PyUnicode_Substring(object s, Py_ssize_t start, Py_ssize_t end)
    const Py_ssize_t PY_SSIZE_T_MAX

DEFAULT_MAX_PAYLOAD = 1024 * 1024
DEFAULT_MAX_CONTROL_LINE = 64 * 1024
FRAME_SLACK = 64 * 1024 * 1024
READ_SIZE = 64 * 1024
INITIAL_READ_BUFFER = 256 * 1024
SMALL_TAKE = 4096
WRITE_CHUNK = 64 * 1024
cdef enum:
    C_FRAME_SLACK = 67108864
    C_READ_SIZE = 65536
    C_INITIAL_READ_BUFFER = 262144
    C_SMALL_TAKE = 4096
    C_INITIAL_WRITE_BUFFER = 65536
    C_WRITE_CHUNK = 65536
    MAX_TOKENS = 5
    SUBJECT_CACHE = 256

cdef tuple EMPTY_TUPLE = ()
cdef object json_loads = json.loads
cdef object json_dumps = json.dumps
cdef object HeadersType = Headers


cdef inline bint is_ws(char c) noexcept:
    # space, \t, \n, \v, \f, \r: one comparison decides for every character above the space (nearly all)
    return <unsigned char>c <= 32 and (0x100003E00ULL >> <unsigned char>c) & 1


cdef inline Py_ssize_t _token_end(const char* buf, Py_ssize_t i, Py_ssize_t stop) noexcept:
    """Where the token starting at ``i`` ends: the first whitespace at or after ``i``, or ``stop``.

    A protocol line's tokens and a publish's subjects (a JetStream reply subject is about 90 bytes) are skipped eight
    bytes at a time while no byte of a word is below ``!``: every whitespace character is, and so is nothing else a
    subject holds, but for control characters, which the byte loop then handles as before."""
    cdef uint64_t word
    while i + 8 <= stop:
        memcpy(&word, buf + i, 8)
        if (word - 0x2121212121212121ULL) & ~word & 0x8080808080808080ULL:
            break  # some byte of these eight is below 0x21
        i += 8
    while i < stop and not is_ws(buf[i]):
        i += 1
    return i


@cython.no_gc
cdef class MsgBase:
    """The fields of a message; ``cnats.msg.Msg`` subclasses it with the user-facing methods."""

    def _init(self, subject, data, reply, headers, long long sid, client):
        self.subject = subject
        self.data = data
        self.reply = reply
        self.headers = headers
        self.sid = sid
        self._client = client

    def respond(self, data=b"", *, headers=None, reply=None):
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
        if self.reply is None or client is None:
            return False
        if isinstance(client, PublisherBase):
            (<PublisherBase>client)._publish(self.reply, data, reply, headers)
        else:
            client.publish(self.reply, data, reply=reply, headers=headers)
        return True


# -- outbound ----------------------------------------------------------------------------------------------------

cdef const char* subject_utf8(object subject, str what, Py_ssize_t* size) except NULL:
    cdef const char* p
    if type(subject) is not str:
        if not isinstance(subject, str):
            raise BadSubjectError(f"{what} must be a str, not {type(subject).__name__}")
    try:
        p = PyUnicode_AsUTF8AndSize(subject, size)
    except UnicodeEncodeError:
        raise BadSubjectError(f"{what} is not valid UTF-8: {subject!r}") from None
    if size[0] == 0:
        raise BadSubjectError(f"{what} cannot be empty")
    if _token_end(p, 0, size[0]) != size[0]:
        raise BadSubjectError(f"{what} cannot contain whitespace: {subject!r}")
    return p


@cython.final
cdef class WriteBuffer:
    """Encodes outbound protocol frames into one growing buffer that the connection hands to its transport."""

    def __init__(self, *, Py_ssize_t max_payload=0, Py_ssize_t limit=0):
        self._buf = PyByteArray_FromStringAndSize(NULL, C_INITIAL_WRITE_BUFFER)
        self._len = 0
        self.max_payload = max_payload
        self.limit = limit

    @property
    def pending(self):
        return self._len

    def __len__(self):
        return self._len

    cdef int _reserve(self, Py_ssize_t extra) except -1:
        cdef Py_ssize_t need = self._len + extra
        cdef Py_ssize_t cap = PyByteArray_GET_SIZE(self._buf)
        if need > cap:
            cap = cap * 2
            if cap < need:
                cap = need
            PyByteArray_Resize(self._buf, cap)
        return 0

    cdef void _put(self, const char* data, Py_ssize_t n) noexcept:
        memcpy(PyByteArray_AS_STRING(self._buf) + self._len, data, n)
        self._len += n

    cdef void _put_int(self, long long value) noexcept:
        cdef char digits[24]
        cdef int i = 24
        if value == 0:
            self._put(b"0", 1)
            return
        if value < 0:
            self._put(b"-", 1)
            value = -value
        while value > 0:
            i -= 1
            digits[i] = <char>(48 + value % 10)
            value //= 10
        self._put(&digits[i], 24 - i)

    cdef Py_ssize_t _headers_size(self, object headers) except -1:
        """Size of the encoded header block (0 when it would be empty), computed without encoding it."""
        cdef dict hmap = headers._map
        cdef long long code = headers._code
        cdef str description = headers._description
        cdef Py_ssize_t size, n, kn
        cdef long long c
        if code == 0 and not hmap:
            return 0
        size = 8 + 2 + 2  # "NATS/1.0" CRLF ... CRLF
        if code:
            size += 1
            c = code
            while c > 0:
                size += 1
                c //= 10
        if description:
            PyUnicode_AsUTF8AndSize(description, &n)
            size += 1 + n
        for key, values in hmap.items():
            PyUnicode_AsUTF8AndSize(key, &kn)
            for value in values:
                PyUnicode_AsUTF8AndSize(value, &n)
                size += kn + 2 + n + 2
        return size

    cdef void _put_headers(self, object headers) noexcept:
        # Only called after _headers_size() succeeded on the same object, so the UTF-8 forms exist (cached).
        cdef dict hmap = headers._map
        cdef long long code = headers._code
        cdef str description = headers._description
        cdef const char* p
        cdef Py_ssize_t n
        self._put(b"NATS/1.0", 8)
        if code:
            self._put(b" ", 1)
            self._put_int(code)
        if description:
            p = PyUnicode_AsUTF8AndSize(description, &n)
            self._put(b" ", 1)
            self._put(p, n)
        self._put(b"\r\n", 2)
        for key, values in hmap.items():
            for value in values:
                p = PyUnicode_AsUTF8AndSize(key, &n)
                self._put(p, n)
                self._put(b": ", 2)
                p = PyUnicode_AsUTF8AndSize(value, &n)
                self._put(p, n)
                self._put(b"\r\n", 2)
        self._put(b"\r\n", 2)

    cpdef Py_ssize_t publish(self, object subject, object payload=b"", object reply=None,
                             object headers=None) except -1:
        cdef Py_ssize_t subj_n, rep_n = 0, size, hlen = 0, total, frame
        cdef const char* subj = subject_utf8(subject, "subject", &subj_n)
        cdef const char* rep = NULL
        cdef const char* data
        cdef Py_buffer view
        cdef bint have_view = False
        if reply:
            rep = subject_utf8(reply, "reply subject", &rep_n)
        if type(payload) is bytes:
            data = PyBytes_AS_STRING(payload)
            size = PyBytes_GET_SIZE(payload)
        elif isinstance(payload, str):
            try:
                data = PyUnicode_AsUTF8AndSize(payload, &size)
            except UnicodeEncodeError:
                raise BadPayloadError("payload str is not valid UTF-8") from None
        elif isinstance(payload, (bytes, bytearray, memoryview)):
            try:
                PyObject_GetBuffer(payload, &view, PyBUF_C_CONTIGUOUS)
            except BufferError:
                raise BadPayloadError("payload memoryview must be C-contiguous") from None
            have_view = True
            data = <const char*>view.buf
            size = view.len
        else:
            raise BadPayloadError(
                f"payload must be bytes, bytearray, memoryview or str, not {type(payload).__name__}")
        try:
            if headers is not None:
                hlen = self._headers_size(headers)
            total = hlen + size
            if self.max_payload and total > self.max_payload:
                raise MaxPayloadExceededError(f"message size {total} exceeds max_payload {self.max_payload}")
            # control line: verb, subject, reply, two numbers of at most 20 digits, spaces and CRLF
            frame = 5 + subj_n + 1 + rep_n + 1 + 42 + total + 2
            if self.limit and self._len + frame > self.limit:
                frame = _frame_size(subj_n, rep_n, hlen, total)
                if self._len + frame > self.limit:
                    raise OutboundBufferLimitError(
                        f"outbound buffer would exceed pending_bytes_limit ({self.limit} bytes); flush and retry")
            self._reserve(frame)
            if hlen:
                self._put(b"HPUB ", 5)
            else:
                self._put(b"PUB ", 4)
            self._put(subj, subj_n)
            self._put(b" ", 1)
            if rep_n:
                self._put(rep, rep_n)
                self._put(b" ", 1)
            if hlen:
                self._put_int(hlen)
                self._put(b" ", 1)
            self._put_int(total)
            self._put(b"\r\n", 2)
            if hlen:
                self._put_headers(headers)
            self._put(data, size)
            self._put(b"\r\n", 2)
        finally:
            if have_view:
                PyBuffer_Release(&view)
        self.out_msgs += 1
        self.out_bytes += total
        return self._len

    cdef Py_ssize_t _publish_checked(self, str subject, bytes body) except -1:
        """``publish(subject, body)`` for a subject known to be valid (a reply subject the parser read off the wire:
        one token, no whitespace), such as a JetStream acknowledgement's: no check per character."""
        cdef Py_ssize_t subj_n, size = PyBytes_GET_SIZE(body), frame
        cdef const char* subj = PyUnicode_AsUTF8AndSize(subject, &subj_n)
        if self.max_payload and size > self.max_payload:
            raise MaxPayloadExceededError(f"message size {size} exceeds max_payload {self.max_payload}")
        frame = _frame_size(subj_n, 0, 0, size)
        if self.limit and self._len + frame > self.limit:
            raise OutboundBufferLimitError(
                f"outbound buffer would exceed pending_bytes_limit ({self.limit} bytes); flush and retry")
        self._reserve(frame)
        self._put(b"PUB ", 4)
        self._put(subj, subj_n)
        self._put(b" ", 1)
        self._put_int(size)
        self._put(b"\r\n", 2)
        self._put(PyBytes_AS_STRING(body), size)
        self._put(b"\r\n", 2)
        self.out_msgs += 1
        self.out_bytes += size
        return self._len

    def subscribe(self, subject, long long sid, queue=None):
        cdef Py_ssize_t subj_n, q_n = 0
        cdef const char* subj = subject_utf8(subject, "subject", &subj_n)
        cdef const char* q = NULL
        if queue:
            q = subject_utf8(queue, "queue group", &q_n)
        self._reserve(4 + subj_n + 1 + q_n + 1 + 22)
        self._put(b"SUB ", 4)
        self._put(subj, subj_n)
        self._put(b" ", 1)
        if q_n:
            self._put(q, q_n)
            self._put(b" ", 1)
        self._put_int(sid)
        self._put(b"\r\n", 2)

    def unsubscribe(self, long long sid, max=None):
        self._reserve(6 + 44)
        self._put(b"UNSUB ", 6)
        self._put_int(sid)
        if max:
            self._put(b" ", 1)
            self._put_int(max)
        self._put(b"\r\n", 2)

    def connect(self, dict options):
        cdef bytes body = json_dumps(options, separators=(",", ":")).encode()
        self._reserve(8 + PyBytes_GET_SIZE(body) + 2)
        self._put(b"CONNECT ", 8)
        self._put(PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body))
        self._put(b"\r\n", 2)

    def ping(self):
        self._reserve(6)
        self._put(b"PING\r\n", 6)

    def pong(self):
        self._reserve(6)
        self._put(b"PONG\r\n", 6)

    def write_raw(self, data):
        """Append already-encoded bytes (e.g. a buffer taken from another WriteBuffer)."""
        cdef Py_buffer view
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self._reserve(view.len)
            self._put(<const char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    def take(self):
        """Everything buffered, emptying the buffer. Large buffers are handed over whole, not copied."""
        cdef object out
        if self._len <= C_SMALL_TAKE:
            out = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(self._buf), self._len)
            self._len = 0
            return out
        out = self._buf
        PyByteArray_Resize(out, self._len)
        self._buf = PyByteArray_FromStringAndSize(NULL, C_INITIAL_WRITE_BUFFER)
        self._len = 0
        return out

    def clear(self):
        self._buf = PyByteArray_FromStringAndSize(NULL, C_INITIAL_WRITE_BUFFER)
        self._len = 0


cdef Py_ssize_t _digits(long long v) noexcept:
    cdef Py_ssize_t n = 1
    while v >= 10:
        v //= 10
        n += 1
    return n


cdef Py_ssize_t _frame_size(Py_ssize_t subj_n, Py_ssize_t rep_n, Py_ssize_t hlen, Py_ssize_t total) noexcept:
    """Exact encoded size of a PUB/HPUB frame (the same figure the pure-Python core computes)."""
    cdef Py_ssize_t n = subj_n + 1 + _digits(total) + 2 + total + 2
    if rep_n:
        n += rep_n + 1
    if hlen:
        n += 5 + _digits(hlen) + 1
    else:
        n += 4
    return n


cdef class PublisherBase:
    """The hot path of ``NatsConnection.publish``, compiled: check, encode, schedule one flush per loop turn.

    NatsConnection derives from it and keeps these fields current: ``_pub_open`` (False once closed or while
    draining publishes), ``_headers_ok`` (the server takes headers), ``_flush_scheduled`` (a flush is queued with
    ``_call_soon``; ``_flush_pending()`` clears it), ``_transport`` (None while disconnected), ``_write_paused``
    (the socket asked us to wait) and ``_debug`` (``_log_out(data)`` sees what is written). Everything off the hot
    path stays in Python.
    """

    def _flush_pending(self):
        """Hand what is buffered to the socket (unless disconnected or the socket asked us to pause)."""
        self._flush_scheduled = False
        transport = self._transport
        if transport is not None and not self._write_paused and self._wb._len:
            data = self._wb.take()
            if self._debug:
                self._log_out(data)
            transport.write(data)

    def publish(self, subject, payload=b"", *, reply=None, headers=None):
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
        self._publish(subject, payload, reply, headers)

    cdef int _publish(self, object subject, object payload, object reply, object headers) except -1:
        cdef Py_ssize_t pending
        if not self._pub_open:
            self._raise_closed_or_draining()
        if headers is not None:
            if type(headers) is not HeadersType:
                headers = self._to_headers(headers)
            if not self._headers_ok and headers:
                raise ServerOptionNotAvailableError("the server does not support headers")
        self._scheduled_flush(self._wb.publish(subject, payload, reply, headers))
        return 0

    cdef int _publish_checked(self, str subject, bytes body) except -1:
        """``_publish(subject, body)`` for a subject known to be valid (see ``WriteBuffer._publish_checked``)."""
        if not self._pub_open:
            self._raise_closed_or_draining()
        self._scheduled_flush(self._wb._publish_checked(subject, body))
        return 0

    cdef int _scheduled_flush(self, Py_ssize_t pending) except -1:
        if pending >= C_WRITE_CHUNK:
            self._flush_pending()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._call_soon(self._flush_pending)
        return 0


@cython.final
@cython.freelist(16)
cdef class _Ready:
    """An awaitable that is already done: ``await`` gives ``value`` at once (what ``__anext__`` returns when a
    message is queued; much cheaper than a coroutine, and taken from a free list). It is also a coroutine as far as
    asyncio is concerned (send/throw/close), so ``create_task(anext(sub))`` works; a task cancelled before its first
    step throws into it, and the message goes back to the front of the subscription's queue."""

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        # Only reached where ``await`` does not use am_send (below): the result travels in a StopIteration.
        value = self.value
        self.value = None
        self.sub = None
        raise StopIteration(value)

    def send(self, arg):
        return self.__next__()

    def throw(self, typ, val=None, tb=None):
        self.close()
        if val is None:
            raise typ
        raise val

    def close(self):
        """Never awaited (or cancelled first): the message is handed back, the next ``__anext__`` returns it."""
        value = self.value
        sub = self.sub
        self.value = None
        self.sub = None
        if value is not None and sub is not None:
            sub._give_back(value)


cdef extern from *:
    """
    /* `await` hands the result back through am_send when the type has one (Python 3.10+): no StopIteration to
       create and no traceback entry to add, which is what `raise StopIteration(value)` costs per message. */
    #define CNATS_SET_AM_SEND(type, fn) (((PyTypeObject *)(type))->tp_as_async->am_send = (sendfunc)(fn))
    """
    ctypedef enum PySendResult:
        PYGEN_RETURN
    void CNATS_SET_AM_SEND(object type, void *fn)


cdef PySendResult _ready_send(PyObject *self, PyObject *arg, PyObject **result) noexcept:
    cdef _Ready ready = <_Ready>self
    value = ready.value
    ready.value = None
    ready.sub = None
    Py_INCREF(value)
    result[0] = <PyObject *>value
    return PYGEN_RETURN


CNATS_SET_AM_SEND(_Ready, <void *>_ready_send)


# -- JetStream delivery (before SubscriptionBase, which hands a pull consumer's messages straight to it) ---------

include "_delivery.pxi"

cdef class ReplyMux  # defined below; the request inbox's subscription calls it directly


cdef class SubscriptionBase:
    """The per-message part of ``Subscription``, compiled: counting, limits, and the hand-over to the callback or
    the queue. The parser calls it directly (no Python frame); ``cnats.subscription.Subscription`` derives from it
    and owns everything else. Rare paths (timer, max reached, drops, blocking) call back into Python methods."""

    def __call__(self, msg):
        self._deliver(msg)

    def __anext__(self):
        """The next message: straight from the queue when one is there, else the slow path (a coroutine)."""
        cdef _Ready ready
        queue = self._queue
        if type(queue) is MessageQueue:  # what Subscription makes (a test may give a deque)
            msg = (<MessageQueue>queue).pop()
        elif queue:
            msg = queue.popleft()
        else:
            msg = None
        if msg is not None:
            self._pending_bytes -= len((<MsgBase>msg).data)
            self.processed += 1
            if self._blocking:
                self._unblock_if_room()
            ready = _Ready.__new__(_Ready)
            ready.value = msg
            ready.sub = self
            return ready
        return self._anext_slow()

    cdef int _deliver(self, object msg) except -1:
        cdef long long received
        cdef long long max_n = -1
        cdef Py_ssize_t size
        self.received += 1
        received = self.received
        if self._timer is not None:
            self._cancel_timer()
        if self._max is not None:
            max_n = self._max
            if received > max_n:
                return 0
        if self._queue is None:
            callback = self._callback
            if type(callback) is ReplyMux:  # the request inbox: no Python call in between either
                try:
                    (<ReplyMux>callback)._answer(<MsgBase>msg)
                except Exception as exc:
                    self._callback_failed(exc, msg)
            elif isinstance(callback, PullerBase):  # a pull consumer's inbox: no Python call in between
                try:
                    (<PullerBase>callback)._arrive(
                        (<MsgBase>msg).subject, (<MsgBase>msg).data, (<MsgBase>msg).reply, (<MsgBase>msg).headers,
                        (<MsgBase>msg).sid, False, -1,
                    )
                except Exception as exc:
                    self._callback_failed(exc, msg)
            else:
                try:
                    result = callback(msg)
                except Exception as exc:
                    self._callback_failed(exc, msg)
                else:
                    if result is not None and result is not True and result is not False:  # maybe an awaitable
                        self._callback_returned(result, msg)
            self.processed += 1
        else:
            size = len((<MsgBase>msg).data)
            if (self._msgs_limit is not None and len(self._queue) >= self._msgs_limit) or (
                self._bytes_limit is not None and self._pending_bytes + size > self._bytes_limit
            ):
                if not self._block_policy:
                    self._drop()
                    return 0
                if not self._blocking:
                    self._blocking = True
                    self._port.block_reading(self)
            if type(self._queue) is MessageQueue:
                (<MessageQueue>self._queue).push(msg)
            else:
                self._queue.append(msg)
            self._pending_bytes += size
            self._slow_reported = False
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        if max_n >= 0 and received >= max_n:
            self._finish(None)
        return 0


# -- inbound -----------------------------------------------------------------------------------------------------

cdef inline bint verb_is(const char* p, Py_ssize_t n, const char* verb, Py_ssize_t vn) noexcept:
    cdef Py_ssize_t i
    cdef char c
    if n != vn:
        return False
    for i in range(n):
        c = p[i]
        if 97 <= c <= 122:
            c -= 32
        if c != verb[i]:
            return False
    return True


cdef inline Py_ssize_t find_crlf(const char* p, Py_ssize_t start, Py_ssize_t end) noexcept:
    """Index of the first CR LF pair in p[start:end], or -1."""
    cdef const char* hit
    while start < end - 1:
        hit = <const char*>memchr(p + start, 13, end - 1 - start)
        if hit == NULL:
            return -1
        start = hit - p
        if p[start + 1] == 10:
            return start
        start += 1
    return -1


cdef inline void strip_sp_tab(const char* p, Py_ssize_t* a, Py_ssize_t* b) noexcept:
    while a[0] < b[0] and (p[a[0]] == 32 or p[a[0]] == 9):
        a[0] += 1
    while b[0] > a[0] and (p[b[0] - 1] == 32 or p[b[0] - 1] == 9):
        b[0] -= 1


cdef object parse_headers_fast(const char* p, Py_ssize_t n):
    """The header block as Headers, or None when it is not well formed (the pure-Python parser then names the
    fault). Same grammar as cnats.headers.parse_header_block."""
    cdef Py_ssize_t eol, a, b, colon, ka, kb, va, vb, pos, i
    cdef long long code = 0
    cdef dict hmap = {}
    cdef str description = ""
    cdef PyObject* existing
    if n < 12 or memcmp(p, b"NATS/1.0", 8) != 0 or memcmp(p + n - 4, b"\r\n\r\n", 4) != 0:
        return None
    eol = find_crlf(p, 8, n)
    a = 8
    b = eol
    if a < b and p[a] != 32 and p[a] != 9:
        return None
    strip_sp_tab(p, &a, &b)
    if a < b:
        i = a
        while i < b and p[i] != 32 and p[i] != 9:
            if not (48 <= p[i] <= 57):
                return None
            code = code * 10 + (p[i] - 48)
            i += 1
        if i - a > 3:
            return None
        a = i
        strip_sp_tab(p, &a, &b)
        if a < b:
            try:
                description = PyUnicode_DecodeUTF8(p + a, b - a, NULL)
            except UnicodeDecodeError:
                return None
    pos = eol + 2
    while pos < n - 2:
        eol = find_crlf(p, pos, n)
        if eol == pos:  # an empty line before the end of the block
            return None
        colon = pos
        while colon < eol and p[colon] != 58:
            colon += 1
        if colon == eol:
            return None
        ka = pos
        kb = colon
        strip_sp_tab(p, &ka, &kb)
        if ka == kb:
            return None
        va = colon + 1
        vb = eol
        strip_sp_tab(p, &va, &vb)
        try:
            key = PyUnicode_DecodeUTF8(p + ka, kb - ka, NULL)
            value = PyUnicode_DecodeUTF8(p + va, vb - va, NULL)
        except UnicodeDecodeError:
            return None
        existing = PyDict_GetItem(hmap, key)
        if existing == NULL:
            hmap[key] = [value]
        else:
            PyList_Append(<object>existing, value)
        pos = eol + 2
    h = (<PyTypeObject*>HeadersType).tp_new(HeadersType, <PyObject*>EMPTY_TUPLE, NULL)
    h._code = code
    h._description = description
    h._map = hmap
    return h


@cython.final
cdef class Parser:
    """Parses the server's byte stream, fed through ``asyncio.BufferedProtocol``, into handler calls and messages.

    Messages go to ``subs[sid](msg)``; a sid not in ``subs`` is dropped. Control lines go to the handler's
    ``on_info(dict)``, ``on_ping()``, ``on_pong()``, ``on_ok()`` and ``on_err(str)``. Malformed input raises
    ``ProtocolError``; the parser then stays failed until ``reset()``.
    """

    def __init__(self, handler, *, msg_class=MsgBase, client=None, Py_ssize_t max_payload=DEFAULT_MAX_PAYLOAD,
                 Py_ssize_t max_control_line=DEFAULT_MAX_CONTROL_LINE):
        if not (isinstance(msg_class, type) and issubclass(msg_class, MsgBase)):
            raise TypeError("msg_class must be a subclass of MsgBase")
        self._handler = handler
        self._msg_class = msg_class
        self._msg_new = (<PyTypeObject*>msg_class).tp_new
        self._client = client
        self.subs = {}
        self.max_payload = max_payload
        self.max_control_line = max_control_line
        self.in_msgs = 0
        self.in_bytes = 0
        self.reset()

    def reset(self):
        """Forget buffered bytes and any failure: the next byte is the start of a new connection's stream."""
        self._buf = PyByteArray_FromStringAndSize(NULL, C_INITIAL_READ_BUFFER)
        self._start = 0
        self._end = 0
        self._offset = 0
        self._failed = None
        self._need = 0
        self._p_subject = ""
        self._p_reply = None
        self._p_sid = 0
        self._p_sid_obj = None
        self._p_hdr = -1
        self._subj_len = -1
        self._subj_str = None

    @property
    def position(self):
        """Stream offset of the next unparsed byte."""
        return self._offset + self._start

    def get_buffer(self, Py_ssize_t sizehint=-1):
        cdef Py_ssize_t pending = self._end - self._start
        cdef Py_ssize_t want, cap, newcap
        cdef bytearray new
        if pending == 0:
            self._offset += self._start
            self._start = 0
            self._end = 0
            if PyByteArray_GET_SIZE(self._buf) > 4 * C_INITIAL_READ_BUFFER:
                self._buf = PyByteArray_FromStringAndSize(NULL, C_INITIAL_READ_BUFFER)
        want = self._need - pending
        if want < C_READ_SIZE:
            want = C_READ_SIZE
        cap = PyByteArray_GET_SIZE(self._buf)
        if cap - self._end < want:
            if cap - pending >= want and self._start > 0:
                # Move the unparsed tail to the front; the buffer object keeps its size (no resize).
                memmove(PyByteArray_AS_STRING(self._buf), PyByteArray_AS_STRING(self._buf) + self._start, pending)
            else:
                newcap = cap * 2
                if newcap < pending + want:
                    newcap = pending + want
                new = PyByteArray_FromStringAndSize(NULL, newcap)
                memcpy(PyByteArray_AS_STRING(new), PyByteArray_AS_STRING(self._buf) + self._start, pending)
                self._buf = new
            self._offset += self._start
            self._start = 0
            self._end = pending
        return memoryview(self._buf)[self._end:]

    def buffer_updated(self, Py_ssize_t nbytes):
        self._end += nbytes
        self._parse()

    def received(self, Py_ssize_t nbytes):
        """``buffer_updated`` for a transport to call directly: a ProtocolError goes to the handler's
        ``on_protocol_error`` instead of into the event loop."""
        self._end += nbytes
        try:
            self._parse()
        except ProtocolError as exc:
            self._handler.on_protocol_error(exc)

    def feed(self, data):
        """Copy ``data`` in and parse it: for data_received-style transports and tests."""
        cdef Py_buffer view
        cdef Py_ssize_t done = 0, n, room
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            while done < view.len:
                self.get_buffer(view.len - done)
                room = PyByteArray_GET_SIZE(self._buf) - self._end
                n = view.len - done
                if n > room:
                    n = room
                memcpy(PyByteArray_AS_STRING(self._buf) + self._end, <const char*>view.buf + done, n)
                done += n
                self.buffer_updated(n)
        finally:
            PyBuffer_Release(&view)

    cdef object _fail(self, Py_ssize_t at, str what):
        err = ProtocolError(f"protocol error at stream position {self._offset + at}: {what}")
        self._failed = err
        return err

    cdef int _parse(self) except -1:
        cdef char* buf
        cdef char* lf
        cdef Py_ssize_t start, end, stop, at
        if self._failed is not None:
            raise ProtocolError(f"parser failed earlier: {self._failed}")
        while True:
            # Reload on every frame: a callback may have reset the parser.
            buf = PyByteArray_AS_STRING(self._buf)
            start = self._start
            end = self._end
            if self._need:
                if end - start < self._need:
                    return 0
                self._deliver(buf, start)
                continue
            lf = <char*>memchr(buf + start, 10, end - start)
            if lf == NULL:
                if end - start > self.max_control_line:
                    raise self._fail(start, f"control line longer than {self.max_control_line} bytes")
                return 0
            at = lf - buf
            stop = at - 1 if at > start and buf[at - 1] == 13 else at
            if stop - start > self.max_control_line:
                raise self._fail(start, f"control line longer than {self.max_control_line} bytes")
            self._start = at + 1
            self._control_line(buf, start, stop)

    cdef int _control_line(self, char* buf, Py_ssize_t start, Py_ssize_t stop) except -1:
        cdef Py_ssize_t verb_end, shown_end, a, b
        cdef const char* p
        if stop - start >= 4 and memcmp(buf + start, b"MSG ", 4) == 0:
            return self._msg_line(buf, start, start + 3, stop, False)
        if stop == start:
            raise self._fail(start, "empty control line")
        verb_end = start
        while verb_end < stop and not is_ws(buf[verb_end]):
            verb_end += 1
        p = buf + start
        if verb_is(p, verb_end - start, b"MSG", 3):
            return self._msg_line(buf, start, verb_end, stop, False)
        if verb_is(p, verb_end - start, b"HMSG", 4):
            return self._msg_line(buf, start, verb_end, stop, True)
        if verb_is(p, verb_end - start, b"PING", 4):
            self._handler.on_ping()
        elif verb_is(p, verb_end - start, b"PONG", 4):
            self._handler.on_pong()
        elif verb_is(p, verb_end - start, b"+OK", 3):
            self._handler.on_ok()
        elif verb_is(p, verb_end - start, b"-ERR", 4):
            a = verb_end
            b = stop
            while a < b and is_ws(buf[a]):
                a += 1
            while b > a and is_ws(buf[b - 1]):
                b -= 1
            if b - a >= 2 and buf[a] == 39 and buf[b - 1] == 39:
                a += 1
                b -= 1
            self._handler.on_err(PyUnicode_DecodeUTF8(buf + a, b - a, "replace"))
        elif verb_is(p, verb_end - start, b"INFO", 4):
            try:
                info = json_loads(PyBytes_FromStringAndSize(buf + verb_end, stop - verb_end))
            except ValueError as exc:
                raise self._fail(start, f"INFO is not valid JSON ({exc})") from None
            if not isinstance(info, dict):
                raise self._fail(start, "INFO is not a JSON object")
            self._handler.on_info(info)
        else:
            shown_end = verb_end if verb_end < start + 16 else start + 16
            shown = PyBytes_FromStringAndSize(buf + start, shown_end - start)
            raise self._fail(start, f"unknown protocol verb {shown!r}")
        return 0

    cdef int _msg_line(self, char* buf, Py_ssize_t start, Py_ssize_t args_at, Py_ssize_t stop,
                       bint with_headers) except -1:
        cdef Py_ssize_t tok_a[MAX_TOKENS]
        cdef Py_ssize_t tok_b[MAX_TOKENS]
        cdef Py_ssize_t n = 0, i = args_at, s, limit, subject_i, sid_i, reply_i = -1, hdr_i = -1, total_i
        cdef long long sid, size, hdr = -1
        cdef str what = "HMSG" if with_headers else "MSG"
        while True:
            while i < stop and is_ws(buf[i]):
                i += 1
            if i >= stop:
                break
            s = i
            i = _token_end(buf, i, stop)
            if n < MAX_TOKENS:
                tok_a[n] = s
                tok_b[n] = i
            n += 1
        if with_headers:
            if n == 4:
                subject_i, sid_i, hdr_i, total_i = 0, 1, 2, 3
            elif n == 5:
                subject_i, sid_i, reply_i, hdr_i, total_i = 0, 1, 2, 3, 4
            else:
                raise self._fail(start, f"{what} needs 4 or 5 arguments, got {n}")
        elif n == 3:
            subject_i, sid_i, total_i = 0, 1, 2
        elif n == 4:
            subject_i, sid_i, reply_i, total_i = 0, 1, 2, 3
        else:
            raise self._fail(start, f"{what} needs 3 or 4 arguments, got {n}")
        sid = self._number(buf + tok_a[sid_i], tok_b[sid_i] - tok_a[sid_i], start, "sid")
        size = self._number(buf + tok_a[total_i], tok_b[total_i] - tok_a[total_i], start, "size")
        limit = self.max_payload + C_FRAME_SLACK
        if size > limit:
            raise self._fail(start, f"{what} size {size} exceeds the limit {limit}")
        if hdr_i >= 0:
            hdr = self._number(buf + tok_a[hdr_i], tok_b[hdr_i] - tok_a[hdr_i], start, "header size")
            if hdr > size:
                raise self._fail(start, f"HMSG header size {hdr} exceeds total size {size}")
        try:
            self._p_subject = self._subject(buf + tok_a[subject_i], tok_b[subject_i] - tok_a[subject_i])
            if reply_i >= 0:
                self._p_reply = PyUnicode_DecodeUTF8(buf + tok_a[reply_i], tok_b[reply_i] - tok_a[reply_i], NULL)
            else:
                self._p_reply = None
        except UnicodeDecodeError:
            raise self._fail(start, f"{what} subject is not valid UTF-8") from None
        if sid != self._p_sid or self._p_sid_obj is None:
            self._p_sid_obj = sid  # one int object for a run of messages of the same sid
        self._p_sid = sid
        self._p_hdr = hdr
        self._p_wire = tok_b[subject_i] - tok_a[subject_i] + size
        if reply_i >= 0:
            self._p_wire += tok_b[reply_i] - tok_a[reply_i]
        self._need = size + 2
        return 0

    cdef object _subject(self, const char* p, Py_ssize_t n):
        """The subject as str, reusing the previous one when the bytes repeat (they mostly do)."""
        if n == self._subj_len and memcmp(p, self._subj_raw, n) == 0:
            return self._subj_str
        subject = PyUnicode_DecodeUTF8(p, n, NULL)
        if n <= SUBJECT_CACHE:
            memcpy(self._subj_raw, p, n)
            self._subj_len = n
            self._subj_str = subject
        return subject

    cdef long long _number(self, char* p, Py_ssize_t n, Py_ssize_t at, str what) except -1:
        cdef long long v = 0
        cdef Py_ssize_t i
        cdef bint ok = 0 < n <= 18
        if ok:
            for i in range(n):
                if not (48 <= p[i] <= 57):
                    ok = False
                    break
                v = v * 10 + (p[i] - 48)
        if not ok:
            token = PyBytes_FromStringAndSize(p, n if n < 24 else 24)
            raise self._fail(at, f"invalid {what} {token!r}")
        return v

    cdef int _deliver(self, char* buf, Py_ssize_t start) except -1:
        cdef Py_ssize_t end = start + self._need - 2
        cdef Py_ssize_t hdr = self._p_hdr
        cdef PyObject* sink
        cdef SubscriptionBase sub
        if buf[end] != 13 or buf[end + 1] != 10:
            raise self._fail(end, "missing CRLF after message payload")
        self._start = end + 2
        self._need = 0
        self.in_msgs += 1
        self.in_bytes += end - start
        sink = PyDict_GetItemWithError(self.subs, self._p_sid_obj)  # no error-state save/restore
        if sink == NULL:
            return 0
        # Own the sink before anything allocates: a collection run by an allocation below may call a finalizer that
        # unsubscribes, removing the dict's (until now the only) reference.
        target = <object>sink
        headers = None
        if hdr >= 0:
            headers = parse_headers_fast(buf + start, hdr)
            if headers is None:
                try:
                    headers = parse_header_block(PyBytes_FromStringAndSize(buf + start, hdr))
                except BadHeaderError as exc:
                    raise self._fail(start, f"bad header block: {exc}") from None
            start += hdr
        data = PyBytes_FromStringAndSize(buf + start, end - start)
        if isinstance(target, SubscriptionBase):
            sub = <SubscriptionBase>target
            if sub._queue is None and sub._max is None and isinstance(sub._callback, PullerBase):
                # a pull consumer's inbox: the puller builds its JsMsg from the fields, no Msg in between
                sub.received += 1
                if sub._timer is not None:
                    sub._cancel_timer()
                try:
                    (<PullerBase>sub._callback)._arrive(
                        # (with headers, their size is counted from the Headers, as in the pure core)
                        self._p_subject, data, self._p_reply, headers, self._p_sid, True,
                        self._p_wire if headers is None else -1,
                    )
                except Exception as exc:
                    sub._callback_failed(exc, self._new_msg(data, headers))
                sub.processed += 1
            elif sub._queue is None and sub._max is None and type(sub._callback) is ReplyMux:
                # the shared reply inbox: a publish's acknowledgement needs no Msg (the mux makes one if it does)
                sub.received += 1
                if sub._timer is not None:
                    sub._cancel_timer()
                try:
                    (<ReplyMux>sub._callback)._answer_parts(self, self._p_subject, data, headers)
                except Exception as exc:
                    sub._callback_failed(exc, self._new_msg(data, headers))
                sub.processed += 1
            else:
                sub._deliver(self._new_msg(data, headers))
        else:
            target(self._new_msg(data, headers))
        return 0

    cdef MsgBase _new_msg(self, data, headers):
        cdef MsgBase msg = <MsgBase>self._msg_new(self._msg_class, <PyObject*>EMPTY_TUPLE, NULL)
        # A Msg subclass is a Python class, so its instances are tracked by the cyclic collector; its fixed fields
        # (strings, bytes, headers, a weak reference) can hold no cycle, and received messages kept in bulk (a
        # backlog, the results of many requests) would only lengthen every collection.
        untrack(msg)
        msg.subject = self._p_subject
        msg.data = data
        msg.reply = self._p_reply
        msg.headers = headers
        msg.sid = self._p_sid
        msg._client = self._client
        return msg


# -- request/reply ----------------------------------------------------------------------------------------------

class _Settled:
    """Stands in for the future of an answered request that is still queued for its deadline: the queue then holds
    neither the response nor anything the caller made (bounded retention while older requests are still waiting)."""

    __slots__ = ()

    def done(self):
        return True


cdef object SETTLED = _Settled()


@cython.final
cdef class AckWindow:
    """The acknowledgements a pipelined publisher has outstanding: how many (at most ``max_pending`` before
    ``publish_async`` waits), and the futures of whoever waits for room or for none. The mux counts them in and out."""
    cdef readonly Py_ssize_t pending
    cdef readonly Py_ssize_t max_pending
    cdef object _create_future
    cdef object _room
    cdef object _idle

    def __init__(self, loop, Py_ssize_t max_pending):
        self.pending = 0
        self.max_pending = max_pending
        self._create_future = loop.create_future

    @property
    def full(self):
        return self.pending >= self.max_pending

    def room(self):
        """A future resolved once fewer than ``max_pending`` are outstanding."""
        if self._room is None or self._room.done():
            self._room = self._create_future()
        return self._room

    def idle(self):
        """A future resolved once none is outstanding."""
        if self._idle is None or self._idle.done():
            self._idle = self._create_future()
        return self._idle

    cdef int _settled(self) except -1:
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
        return 0


@cython.final
@cython.freelist(64)
@cython.no_gc  # in no cycle the collector could break: answered or expired, the mux lets go of it
cdef class _PendingRequest:
    cdef object future
    cdef str token
    cdef object subject
    cdef object timeout
    cdef double deadline
    cdef AckWindow window  # a pipelined publish: counted out of its window once settled
    cdef object transform  # what the response becomes (a publish's PubAck), or None for the message itself


@cython.final
cdef class _DeadlineQueue:
    """The requests of one timeout value, oldest first, and the one timer for the oldest. A list read from ``head``
    (compacted now and then) rather than a deque: appending and looking at the front are then C calls, not method
    calls, on the path of every request."""
    cdef ReplyMux mux
    cdef object timeout
    cdef double seconds
    cdef list entries
    cdef Py_ssize_t head  # entries[:head] have left the queue
    cdef object timer

    cdef inline void _compact(self):
        if self.head == len(self.entries):
            del self.entries[:]
            self.head = 0
        elif self.head > 1024 and 2 * self.head > len(self.entries):
            del self.entries[:self.head]
            self.head = 0

    cdef Py_ssize_t pending(self):
        return len(self.entries) - self.head

    cdef int add(self, _PendingRequest pending) except -1:
        cdef list entries = self.entries
        cdef Py_ssize_t n = len(entries)
        # answered requests leave from the front, so the queue stays about as long as what is in flight (one that
        # was cancelled instead leaves at its deadline)
        while self.head < n and (<_PendingRequest>entries[self.head]).future is SETTLED:
            self.head += 1
        if self.head:
            self._compact()
        pending.deadline = self.mux._time() + self.seconds
        entries.append(pending)
        if self.timer is None:
            self.timer = self.mux._call_at(pending.deadline, self._fire)
        return 0

    def _fire(self):
        cdef _PendingRequest pending
        cdef list entries = self.entries
        self.timer = None
        mux = self.mux
        now = mux._time()
        while self.head < len(entries):
            pending = <_PendingRequest>entries[self.head]
            if pending.deadline > now:
                self._compact()
                self.timer = mux._call_at(pending.deadline, self._fire)
                return
            self.head += 1
            mux._expire(pending)
        del entries[:]
        self.head = 0
        mux._queues.pop(self.timeout, None)  # nothing in flight with this timeout: forget it

    cdef cancel(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


@cython.final
cdef class HandOff:
    """The common case of a blocking connection's ``publish`` (cnats.sync), without a Python frame: a small ``bytes``
    payload, no reply and no headers, to a subject already checked on this connection is appended to the outbox
    (``items``) as ``(publish, subject, payload)``, and the loop is woken when no wake-up is pending. Anything else,
    or once ``open`` is False, goes to ``slow(subject, payload, reply, headers)``, which checks and raises."""

    cdef public bint open
    cdef object _items
    cdef object _known
    cdef object _publish
    cdef object _outbox
    cdef object _slow
    cdef Py_ssize_t _small
    cdef Py_ssize_t _crowded

    def __init__(self, items, set known, publish, outbox, slow, Py_ssize_t small, Py_ssize_t crowded):
        self.open = True
        self._items = items
        self._known = known
        self._publish = publish
        self._outbox = outbox
        self._slow = slow
        self._small = small
        self._crowded = crowded

    def __call__(self, subject, payload=b"", *, reply=None, headers=None):
        if (
            self.open and reply is None and headers is None and type(payload) is bytes
            and PyBytes_GET_SIZE(payload) <= self._small and type(subject) is str and subject in <set>self._known
        ):
            items = self._items
            item = (self._publish, subject, payload)
            # (a bound method, a str, bytes: in no cycle; thousands may wait, and walking them made every young
            # collection longer)
            untrack(item)
            items.append(item)
            outbox = self._outbox
            if not outbox.waking:
                outbox.wake()
            elif len(items) >= self._crowded:
                outbox.wait_for_room()
            return None
        return self._slow(subject, payload, reply, headers)


@cython.final
cdef class PubAckReader:
    """Turns a pipelined publish's acknowledgement into its ``PubAck`` (the pure core's twin always calls ``slow``).

    The usual answer, ``{"stream":"S","seq":N}`` without headers, is read here and its ack built without running the
    dataclass ``__init__`` (``stream`` and ``seq`` set; the other fields read their defaults from the class, or when
    the class does not hold them, its ``__dict__`` is ``defaults`` plus those two); every other answer
    (errors, duplicates, domains, a no-responders status) goes to ``slow(msg, subject)``. Answers come in runs from
    one stream, so the head of the last one is kept and the next is one comparison and a number."""

    cdef object _type
    cdef newfunc _new
    cdef dict _defaults
    cdef bint _defaults_on_class  # each default is the class attribute of its field: no instance dict needed
    cdef object _slow
    cdef bytes _head  # b'{"stream":"S","seq":' of the last usual answer
    cdef str _stream

    def __init__(self, ack_type, dict defaults, slow):
        self._type = ack_type
        self._new = (<PyTypeObject*>ack_type).tp_new
        self._defaults = defaults
        self._defaults_on_class = all(
            name in ack_type.__dict__ and ack_type.__dict__[name] is value for name, value in defaults.items()
        )
        self._slow = slow
        self._head = b"\x00"
        self._stream = ""

    def __call__(self, msg, subject):
        return self._read(<MsgBase?>msg, subject)

    cdef object _read(self, MsgBase msg, subject):
        ack = None
        if msg.headers is None and type(msg.data) is bytes:
            ack = self._usual(<bytes>msg.data)
        if ack is None:
            return self._slow(msg, subject)
        return ack

    cdef object _usual(self, bytes data):
        """The ack of a usual answer (no headers), or None for any other."""
        cdef long long seq = self._simple(data)
        if seq < 0:
            return None
        ack = self._new(self._type, <PyObject*>EMPTY_TUPLE, NULL)
        # object's own __setattr__: the dataclass is frozen
        if self._defaults_on_class:
            # two attributes set; the defaulted fields are read from the class, as for any dataclass field left
            # at its default (no instance dict is made)
            PyObject_GenericSetAttr(ack, "stream", self._stream)
            PyObject_GenericSetAttr(ack, "seq", seq)
        else:
            fields = PyDict_Copy(self._defaults)
            fields["stream"] = self._stream
            fields["seq"] = seq
            PyObject_GenericSetAttr(ack, "__dict__", fields)
        return ack

    cdef long long _simple(self, bytes data):
        """The sequence of a usual answer (remembering its stream), or -1."""
        cdef const char* p = PyBytes_AS_STRING(data)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data), hn = PyBytes_GET_SIZE(self._head), end, i
        cdef long long seq
        if n < 2 or p[n - 1] != 125:  # '}'
            return -1
        if n > hn and memcmp(p, PyBytes_AS_STRING(self._head), hn) == 0:
            return _decimal(p, hn, n - 1)
        if n < 21 or memcmp(p, b'{"stream":"', 11) != 0:
            return -1
        end = -1
        for i in range(11, n - 8):
            if p[i] == 34:  # the first '"' ends the name: no escapes to read
                if memcmp(p + i, b'","seq":', 8) == 0:
                    end = i
                break
            if p[i] == 92:  # '\\'
                return -1
        if end <= 11:
            return -1
        seq = _decimal(p, end + 8, n - 1)
        if seq >= 0:
            self._stream = PyUnicode_DecodeUTF8(p + 11, end - 11, NULL)
            self._head = PyBytes_FromStringAndSize(p, end + 8)
        return seq


cdef inline long long _decimal(const char* p, Py_ssize_t a, Py_ssize_t b) noexcept:
    """The number written in p[a:b] (ASCII digits, at most 18 of them), or -1."""
    cdef long long v = 0
    cdef Py_ssize_t i
    if b <= a or b - a > 18:
        return -1
    for i in range(a, b):
        if not 48 <= p[i] <= 57:
            return -1
        v = v * 10 + (p[i] - 48)
    return v


cdef inline object _release(_PendingRequest pending):
    """The inbox lets go of a request (answered, or failed by ``fail_all``): its future, tracked again. What stays in
    a deadline queue is a stand-in that holds nothing."""
    future = pending.future
    pending.future = SETTLED
    track(future)
    return future


cdef class ReplyMux:
    """The shared response inbox of request/reply: one wildcard subscription (``prefix + "*"``) whose messages are
    routed by their last token to what waits for them.

    A plain request is a future registered by ``request()``: its response resolves it (a no-responders status fails
    it with ``no_responders_error``) and its deadline fails it with ``timeout_error``. Requests made with the same
    timeout expire in the order they were made, so one FIFO and one timer per distinct timeout serve them all (a
    timer per request costs more than the rest of a request's bookkeeping). Other waiters (``request_many``
    iterators, JetStream acks) are added with ``add()`` and get ``deliver(msg)``/``fail(error)`` calls; they remove
    themselves with ``forget()``."""
    cdef readonly str prefix
    cdef public dict waiters
    cdef Py_ssize_t _plen
    cdef object _loop
    cdef object _create_future
    cdef object _time
    cdef object _call_at
    cdef unsigned long long _seq
    cdef dict _queues
    cdef object _timeout_error
    cdef object _no_responders_error
    # publish_acked's fast path: whether the inbox is subscribed and answers can still arrive (kept by the
    # connection), the publisher, and what makes the inbox ready or refuses (the connection's, run when not ready)
    cdef public bint ready
    cdef PublisherBase _publisher
    cdef object _prepare

    def __init__(self, loop, str prefix, timeout_error, no_responders_error):
        self.prefix = prefix
        self.waiters = {}
        self._plen = len(prefix)
        self._loop = loop
        self._create_future = loop.create_future
        self._time = loop.time
        self._call_at = loop.call_at
        self._seq = 0
        self._queues = {}
        self._timeout_error = timeout_error
        self._no_responders_error = no_responders_error

    cdef str _token(self):
        cdef char digits[24]
        cdef int i = 24
        cdef unsigned long long n
        self._seq += 1
        n = self._seq
        while True:
            i -= 1
            digits[i] = <char>(48 + n % 10)
            n //= 10
            if n == 0:
                break
        return PyUnicode_DecodeASCII(digits + i, 24 - i, NULL)

    def next_token(self):
        """A token no other waiter of this inbox has had (the prefix is unique per connection)."""
        return self._token()

    def bind(self, PublisherBase publisher, prepare):
        """What ``publish_acked`` publishes through, and what it calls when the inbox is not ``ready`` (it subscribes
        the inbox and sets ``ready``, or raises)."""
        self._publisher = publisher
        self._prepare = prepare

    def publish_acked(self, subject, payload, headers, timeout, AckWindow window, transform):
        """A pipelined JetStream publish: ``request`` through the bound publisher, with no Python frame in between
        (the future of ``transform(ack, subject)``, counted in ``window`` until it is settled)."""
        if not self.ready:
            self._prepare()
        return self._request(self._publisher, subject, payload, headers, timeout, window, transform)

    def request(self, PublisherBase publisher, subject, payload, headers, timeout, AckWindow window=None,
                transform=None):
        """Publish a request with a reply subject of this inbox and return the future of its response: the message,
        or ``transform(msg, subject)`` (a pipelined publish's PubAck, counted in ``window`` until it is settled)."""
        return self._request(publisher, subject, payload, headers, timeout, window, transform)

    cdef object _request(self, PublisherBase publisher, subject, payload, headers, timeout, AckWindow window,
                         transform):
        cdef _PendingRequest pending
        cdef _DeadlineQueue queue
        cdef PyObject* found
        token = self._token()
        publisher._publish(subject, payload, self.prefix + token, headers)  # raises before anything is recorded
        future = self._create_future()
        # Off the collector's lists while this inbox holds it (until answered, expired or failed: see _release):
        # with 20,000 requests in flight every full collection walked each. No collection could have freed it
        # meanwhile, and once released it is tracked again, so a cycle through its outcome (a failure's traceback
        # that leads to a frame holding the future) is collected as usual.
        untrack(future)
        pending = _PendingRequest.__new__(_PendingRequest)
        pending.future = future
        pending.token = token
        pending.subject = subject
        pending.timeout = timeout
        pending.window = window
        pending.transform = transform
        if window is not None:
            window.pending += 1
        self.waiters[token] = pending
        found = PyDict_GetItemWithError(self._queues, timeout)
        if found is NULL:
            queue = _DeadlineQueue.__new__(_DeadlineQueue)
            queue.mux = self
            queue.timeout = timeout
            queue.seconds = timeout
            queue.entries = []
            self._queues[timeout] = queue
        else:
            queue = <_DeadlineQueue>found
        queue.add(pending)
        return future

    def add(self, str token, waiter):
        self.waiters[token] = waiter

    def forget(self, str token):
        self.waiters.pop(token, None)

    def __call__(self, MsgBase msg):
        self._answer(msg)

    cdef int _answer(self, MsgBase msg) except -1:
        cdef PyObject* found
        token = PyUnicode_Substring(msg.subject, self._plen, PY_SSIZE_T_MAX)
        found = PyDict_GetItemWithError(self.waiters, token)
        if found is NULL:
            return 0
        return self._settle(<object>found, token, msg, None)

    cdef int _answer_parts(self, Parser parser, str subject, bytes data, headers) except -1:
        """What the parser calls for this inbox's messages: a pipelined publish's usual acknowledgement (no
        headers) becomes its PubAck without a ``Msg`` in between; anything else gets its ``Msg`` made here."""
        cdef PyObject* found
        cdef _PendingRequest pending
        token = PyUnicode_Substring(subject, self._plen, PY_SSIZE_T_MAX)
        found = PyDict_GetItemWithError(self.waiters, token)
        if found is NULL:
            return 0
        waiter = <object>found
        if headers is None and type(waiter) is _PendingRequest:
            pending = <_PendingRequest>waiter
            if type(pending.transform) is PubAckReader:
                ack = (<PubAckReader>pending.transform)._usual(data)
                if ack is not None:
                    return self._settle(waiter, token, None, ack)
        return self._settle(waiter, token, parser._new_msg(data, headers), None)

    cdef int _settle(self, waiter, token, MsgBase msg, ack) except -1:
        """``waiter``'s answer: ``msg``, or (msg None) the PubAck already read from it."""
        cdef _PendingRequest pending
        if type(waiter) is not _PendingRequest:
            waiter.deliver(msg)
            return 0
        pending = <_PendingRequest>waiter
        del self.waiters[token]
        future = _release(pending)
        if pending.window is not None:
            window, pending.window = pending.window, None
            (<AckWindow>window)._settled()
        if future.done():
            return 0
        if msg is None:
            future.set_result(ack)
            return 0
        headers = msg.headers
        if headers is not None and headers.code == 503 and not msg.data:
            future.set_exception(self._no_responders_error(f"no responders for {pending.subject!r}"))
        elif pending.transform is not None:
            try:
                if type(pending.transform) is PubAckReader:
                    value = (<PubAckReader>pending.transform)._read(msg, pending.subject)
                else:
                    value = pending.transform(msg, pending.subject)
            except Exception as exc:
                future.set_exception(exc)
            else:
                future.set_result(value)
        else:
            future.set_result(msg)
        return 0

    def deadlines_pending(self):
        """How many requests the deadline queues hold (answered ones leave them lazily)."""
        cdef _DeadlineQueue queue
        cdef Py_ssize_t n = 0
        for queue in self._queues.values():
            n += queue.pending()
        return n

    def fail_all(self, error):
        """Fail everything waiting (the connection closed, or the inbox subscription was refused)."""
        cdef _DeadlineQueue queue
        waiters = list(self.waiters.values())
        self.waiters.clear()
        queues, self._queues = self._queues, {}
        for queue in queues.values():
            queue.cancel()
        for waiter in waiters:
            if type(waiter) is _PendingRequest:
                future = _release(<_PendingRequest>waiter)
                window = (<_PendingRequest>waiter).window
                if window is not None:
                    (<_PendingRequest>waiter).window = None
                    (<AckWindow>window)._settled()
                if not future.done():
                    future.set_exception(error)
                    if window is not None:
                        # a pipelined publish whose caller let the future go is not warned: the close was theirs
                        future.exception()
            else:
                waiter.fail(error)

    cdef _expire(self, _PendingRequest pending):
        cdef PyObject* found
        found = PyDict_GetItemWithError(self.waiters, pending.token)
        if found is not NULL and <object>found is pending:
            del self.waiters[pending.token]
        track(pending.future)  # leaving the deadline queue, the last of the inbox that held it
        window = pending.window
        if window is not None:
            pending.window = None
            (<AckWindow>window)._settled()
            if not pending.future.done():
                pending.future.set_exception(self._timeout_error(f"no publish acknowledgement for {pending.subject!r}"))
        elif not pending.future.done():
            pending.future.set_exception(
                self._timeout_error(f"request to {pending.subject!r} timed out after {pending.timeout} s")
            )
