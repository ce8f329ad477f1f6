# The interface of the protocol core, shared by the compiled module (_protocol.pyx) and its pure-Python twin
# (_protocol_py.py). cnats.protocol picks one of them at import time.
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from ._delivery_py import JsMsgBase as JsMsgBase  # JetStream delivery: one interface, typed in the twin
from ._delivery_py import KvEntryBase as KvEntryBase
from ._delivery_py import KvWatchBase as KvWatchBase
from ._delivery_py import MessageQueue as MessageQueue
from ._delivery_py import MessagesBase as MessagesBase
from ._delivery_py import OrderedCursor as OrderedCursor
from ._delivery_py import PullerBase as PullerBase
from .errors import ProtocolError
from .headers import Headers

DEFAULT_MAX_PAYLOAD: int
DEFAULT_MAX_CONTROL_LINE: int
FRAME_SLACK: int  # a received frame may exceed max_payload by this much before it is refused
READ_SIZE: int
INITIAL_READ_BUFFER: int
SMALL_TAKE: int
WRITE_CHUNK: int

class ParserHandler(Protocol):
    """What the parser calls for control lines (messages go to Parser.subs)."""

    def on_info(self, info: dict[str, Any]) -> None: ...
    def on_ping(self) -> None: ...
    def on_pong(self) -> None: ...
    def on_ok(self) -> None: ...
    def on_err(self, text: str) -> None: ...  # the -ERR text without its quotes
    def on_protocol_error(self, error: ProtocolError) -> None: ...  # malformed input seen by received()

class MsgBase:
    @property
    def subject(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def reply(self) -> str | None: ...
    @property
    def headers(self) -> Headers | None: ...
    @property
    def sid(self) -> int: ...
    _client: Any
    def respond(
        self,
        data: bytes | bytearray | memoryview | str = b"",
        *,
        headers: Headers | Mapping[str, Any] | None = None,
        reply: str | None = None,
    ) -> bool:
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
    def _init(
        self, subject: str, data: bytes, reply: str | None, headers: Headers | None, sid: int, client: Any
    ) -> None: ...

class Parser:
    subs: dict[int, Callable[[Any], object]]  # sid -> sink called with each message of that sid
    max_payload: int
    def __init__(
        self,
        handler: ParserHandler,
        *,
        msg_class: type[MsgBase] = ...,
        client: Any = None,
        max_payload: int = ...,
        max_control_line: int = ...,
    ) -> None: ...
    @property
    def max_control_line(self) -> int: ...
    @property
    def in_msgs(self) -> int: ...
    @property
    def in_bytes(self) -> int: ...
    @property
    def position(self) -> int: ...
    def reset(self) -> None: ...
    def get_buffer(self, sizehint: int = -1) -> memoryview: ...
    def buffer_updated(self, nbytes: int) -> None: ...  # raises ProtocolError on malformed input
    def received(self, nbytes: int) -> None: ...  # buffer_updated, reporting ProtocolError to the handler
    def feed(self, data: bytes | bytearray | memoryview) -> None: ...

class PublisherBase:
    """Base of NatsConnection: the compiled publish path (see the class docstring in either core)."""

    _wb: WriteBuffer
    _pub_open: bool
    _headers_ok: bool
    _flush_scheduled: bool
    _call_soon: Any
    _transport: Any
    _write_paused: bool
    _debug: bool
    def _flush_pending(self) -> None: ...
    def publish(
        self,
        subject: str,
        payload: bytes | bytearray | memoryview | str = b"",
        *,
        reply: str | None = None,
        headers: Headers | Mapping[str, Any] | None = None,
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

class AckWindow:
    """The acknowledgements a pipelined publisher has outstanding (see the class docstring in either core)."""

    pending: int
    max_pending: int
    def __init__(self, loop: Any, max_pending: int) -> None: ...
    @property
    def full(self) -> bool: ...
    def room(self) -> Awaitable[None]: ...
    def idle(self) -> Awaitable[None]: ...

def untrack_while_live(obj: object) -> None: ...
def retrack(obj: object) -> None: ...
def hide_owned(roots: Iterable[object], kinds: tuple[type, ...]) -> list[object]: ...
def reveal(hidden: list[object]) -> None: ...

class HandOff:
    """A blocking connection's publish fast path (see the class docstring in either core)."""

    open: bool
    def __init__(
        self,
        items: Any,
        known: set[str],
        publish: Callable[..., Any],
        outbox: Any,
        slow: Callable[[Any, Any, Any, Any], None],
        small: int,
        crowded: int,
    ) -> None: ...
    def __call__(self, subject: Any, payload: Any = b"", *, reply: Any = None, headers: Any = None) -> None: ...

class PubAckReader:
    """What a pipelined publish's acknowledgement becomes (see the class docstring in either core)."""

    def __init__(self, ack_type: type, defaults: dict[str, Any], slow: Callable[[Any, str], Any]) -> None: ...
    def __call__(self, msg: Any, subject: str) -> Any: ...

class ReplyMux:
    """The shared response inbox of request/reply (see the class docstring in either core)."""

    prefix: str
    waiters: dict[str, Any]  # token -> a pending request, or an object with deliver(msg) and fail(error)
    ready: bool
    def __init__(self, loop: Any, prefix: str, timeout_error: type, no_responders_error: type) -> None: ...
    def next_token(self) -> str: ...
    def bind(self, publisher: PublisherBase, prepare: Callable[[], None]) -> None: ...
    def publish_acked(
        self,
        subject: str,
        payload: Any,
        headers: Any,
        timeout: float,
        window: AckWindow,
        transform: Callable[[Any, str], Any],
    ) -> Awaitable[Any]: ...
    def request(
        self,
        publisher: PublisherBase,
        subject: str,
        payload: Any,
        headers: Any,
        timeout: float,
        window: AckWindow | None = None,
        transform: Callable[[Any, str], Any] | None = None,
    ) -> Awaitable[Any]: ...
    def add(self, token: str, waiter: Any) -> None: ...
    def forget(self, token: str) -> None: ...
    def __call__(self, msg: MsgBase) -> None: ...
    def deadlines_pending(self) -> int: ...
    def fail_all(self, error: BaseException) -> None: ...

class SubscriptionBase:
    """Base of Subscription: the compiled per-message delivery (the parser's sink)."""

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
    def __call__(self, msg: MsgBase) -> None: ...
    def __anext__(self) -> Awaitable[Any]: ...  # a queued message at once, else the subclass's _anext_slow()

class WriteBuffer:
    max_payload: int  # 0 = unchecked
    limit: int  # 0 = unlimited; bounds publish() only
    def __init__(self, *, max_payload: int = 0, limit: int = 0) -> None: ...
    @property
    def pending(self) -> int: ...
    def __len__(self) -> int: ...
    @property
    def out_msgs(self) -> int: ...
    @property
    def out_bytes(self) -> int: ...
    def publish(
        self, subject: str, payload: object = b"", reply: str | None = None, headers: Headers | None = None
    ) -> int: ...  # returns the pending size after the append
    def subscribe(self, subject: str, sid: int, queue: str | None = None) -> None: ...
    def unsubscribe(self, sid: int, max: int | None = None) -> None: ...
    def connect(self, options: dict[str, Any]) -> None: ...
    def ping(self) -> None: ...
    def pong(self) -> None: ...
    def write_raw(self, data: bytes | bytearray | memoryview) -> None: ...
    def take(self) -> bytes | bytearray: ...
    def clear(self) -> None: ...
