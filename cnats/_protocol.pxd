# Declarations of the compiled protocol core (cnats/_protocol.pyx). The Python-level interface is described in
# _protocol.pyi and mirrored by the pure-Python twin cnats/_protocol_py.py.
from cpython.object cimport newfunc


cdef class MsgBase:
    cdef readonly object subject
    cdef readonly object data
    cdef readonly object reply
    cdef readonly object headers
    cdef readonly long long sid
    cdef public object _client


cdef class WriteBuffer:
    cdef bytearray _buf
    cdef Py_ssize_t _len
    cdef public Py_ssize_t max_payload
    cdef public Py_ssize_t limit
    cdef readonly long long out_msgs
    cdef readonly long long out_bytes

    cpdef Py_ssize_t publish(self, object subject, object payload=*, object reply=*, object headers=*) except -1
    cdef Py_ssize_t _publish_checked(self, str subject, bytes body) except -1
    cdef int _reserve(self, Py_ssize_t extra) except -1
    cdef void _put(self, const char* data, Py_ssize_t n) noexcept
    cdef void _put_int(self, long long value) noexcept
    cdef Py_ssize_t _headers_size(self, object headers) except -1
    cdef void _put_headers(self, object headers) noexcept


cdef class PublisherBase:
    cdef public WriteBuffer _wb
    cdef public bint _pub_open
    cdef public bint _headers_ok
    cdef public bint _flush_scheduled
    cdef public object _call_soon
    cdef public object _transport
    cdef public bint _write_paused
    cdef public bint _debug

    cdef int _publish(self, object subject, object payload, object reply, object headers) except -1
    cdef int _publish_checked(self, str subject, bytes body) except -1
    cdef int _scheduled_flush(self, Py_ssize_t pending) except -1


cdef class SubscriptionBase


cdef class _Ready:
    cdef object value
    cdef object sub  # what takes the value back (``_give_back``) if it is never awaited


cdef class SubscriptionBase:
    cdef public long long received
    cdef public long long processed
    cdef public long long dropped
    cdef public Py_ssize_t _pending_bytes
    cdef public object _callback
    cdef public object _queue
    cdef public object _max
    cdef public object _timer
    cdef public object _waiter
    cdef public object _msgs_limit
    cdef public object _bytes_limit
    cdef public object _port
    cdef public bint _block_policy
    cdef public bint _blocking
    cdef public bint _slow_reported

    cdef int _deliver(self, object msg) except -1


cdef class Parser:
    cdef object _handler
    cdef object _msg_class
    cdef newfunc _msg_new
    cdef object _client
    cdef public dict subs
    cdef public Py_ssize_t max_payload
    cdef readonly Py_ssize_t max_control_line
    cdef readonly long long in_msgs
    cdef readonly long long in_bytes
    cdef bytearray _buf
    cdef Py_ssize_t _start
    cdef Py_ssize_t _end
    cdef long long _offset
    cdef object _failed
    cdef Py_ssize_t _need
    cdef object _p_subject
    cdef object _p_reply
    cdef long long _p_sid
    cdef object _p_sid_obj
    cdef char _subj_raw[256]
    cdef Py_ssize_t _subj_len
    cdef object _subj_str
    cdef Py_ssize_t _p_hdr
    cdef long long _p_wire  # the message's bytes as a pull's max_bytes counts them: subject, reply and body

    cdef int _parse(self) except -1
    cdef int _control_line(self, char* buf, Py_ssize_t start, Py_ssize_t stop) except -1
    cdef int _msg_line(self, char* buf, Py_ssize_t start, Py_ssize_t args_at, Py_ssize_t stop,
                       bint with_headers) except -1
    cdef object _subject(self, const char* p, Py_ssize_t n)
    cdef long long _number(self, char* p, Py_ssize_t n, Py_ssize_t at, str what) except -1
    cdef int _deliver(self, char* buf, Py_ssize_t start) except -1
    cdef MsgBase _new_msg(self, object data, object headers)
    cdef object _fail(self, Py_ssize_t at, str what)
