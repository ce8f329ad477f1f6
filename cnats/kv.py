"""Key-Value store on JetStream (ADR-8): a bucket is the stream ``KV_<bucket>``, a key the
subject ``$KV.<bucket>.<key>``, a revision the stream sequence of a write."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import TYPE_CHECKING, Any

from .callbacks import FAILED, Callback
from .errors import (
    BadJsonError,
    BucketNotFoundError,
    InvalidKeyError,
    InvalidNameError,
    InvalidOptionError,
    MessageNotFoundError,
    NatsError,
    StreamNotFoundError,
    WrongLastSequenceError,
)
from .headers import Headers
from .jetstream.api import (
    DeliverPolicy,
    DiscardPolicy,
    Placement,
    PubHeaders,
    PurgeResponse,
    Republish,
    StorageType,
    StoreCompression,
    StreamConfig,
    StreamInfo,
    StreamSource,
    SubjectTransformConfig,
)
from .jetstream.client import ack_head, ack_sequence, ttl_header
from .jetstream.consumer import (
    ConsumerMessages,
    OrderedConsumer,
    OrderedConsumerOptions,
    consume_window,
    held_internally,
    hide_view,
    show_view,
    view_gone,
)
from .jetstream.manager import DirectStreamAPI, StreamAPI
from .jetstream.model import JsonModel, parse_time
from .protocol import KvEntryBase, KvWatchBase, OrderedCursor, hide_owned, reveal

if TYPE_CHECKING:
    from .jetstream.client import JetStreamClient
    from .jetstream.context import JetStreamContext
    from .jetstream.jsmsg import JsMsg
    from .port import Port

__all__ = ["KV", "KvEntry", "KvKeys", "KvOperation", "KvStatus", "KvWatcher", "kv_status", "open_kv"]

_BUCKET = re.compile(r"^[-A-Za-z0-9_]+$")
_KEY = re.compile(r"^[-/=.A-Za-z0-9_]+$")
_OPERATION = "KV-Operation"
_MARKER_REASON = "Nats-Marker-Reason"
_MAX_HISTORY = 64
# what an OrderedRead keeps to itself, besides builtin containers (see hide_owned): its consumer's options and info
_READ_PARTS = (OrderedConsumer, OrderedConsumerOptions, JsonModel, OrderedCursor)
# A watcher's or listing's pull window, in entries and in bytes, pulled again at half of either: replaying a long
# history is paced by the server's handling of pull requests, so fewer, larger ones for small values, while the
# bytes bound large ones. At most a window waits unread and another is on its way (docs/kv.md, "Watching").
_WATCH_WINDOW = 4096
_WATCH_WINDOW_BYTES = 4 * 1024 * 1024
# what a message's size counts besides headers and data (at most max_payload): its subject and reply subject
_WIRE_OVERHEAD = 64 * 1024


class KvOperation(str, Enum):
    """The operation an entry records: a put, a delete, or a purge."""

    PUT = "PUT"
    DEL = "DEL"
    PURGE = "PURGE"


# What a marker the server writes itself (ADR-48: a bucket with limit markers) records, by its Nats-Marker-Reason
_MARKER_OPERATIONS = {"MaxAge": KvOperation.PURGE, "Purge": KvOperation.PURGE, "Remove": KvOperation.DEL}


def check_bucket(bucket: object) -> str:
    if not isinstance(bucket, str) or not _BUCKET.match(bucket):
        raise InvalidNameError(f"invalid bucket name: {bucket}")
    return bucket


_valid_keys: set[str] = set()  # keys already checked: most programs write the same keys again and again
_VALID_KEYS_KEPT = 4096


def check_key(key: object, *, filter: bool = False) -> str:
    """ADR-8 keys: ``[-/=.A-Za-z0-9_]``, not starting or ending with ``.``; filters also allow ``*`` and a final
    ``>`` token."""
    if not filter and type(key) is str and key in _valid_keys:
        return key
    if not isinstance(key, str) or not key or key.startswith(".") or key.endswith("."):
        raise InvalidKeyError(f"invalid key: {key}")
    if filter:
        tokens = key.split(".")
        for i, token in enumerate(tokens):
            if token == "*" or (token == ">" and i == len(tokens) - 1):
                continue
            if not token or not _KEY.match(token):
                raise InvalidKeyError(f"invalid key: {key}")
        return key
    if not _KEY.match(key) or ".." in key:
        raise InvalidKeyError(f"invalid key: {key}")
    if len(_valid_keys) >= _VALID_KEYS_KEPT:
        _valid_keys.clear()
    _valid_keys.add(key)
    return key


class KvEntry(KvEntryBase):
    """One revision of a key (a PUT, or a DEL/PURGE marker: a client's, or one the server left for a key its TTL or
    the bucket's maximum age removed)."""

    __slots__ = ()  # the fields are the protocol core's (a watcher fills them without calling __init__)

    bucket: str
    key: str
    value: bytes
    revision: int
    _created: datetime | str | int
    delta: int
    operation: KvOperation
    length: int

    def __init__(
        self,
        bucket: str,
        key: str,
        value: bytes,
        revision: int,
        created: datetime | str | int,
        delta: int,
        operation: KvOperation,
        length: int,
    ) -> None:
        # (one call into the protocol core sets them all; a direct get's RFC 3339 text or a delivery's nanoseconds
        # become a datetime only if asked for)
        self._init(bucket, key, value, revision, created, delta, operation, length)

    @property
    def created(self) -> datetime:
        created = self._created
        if isinstance(created, str):
            created = self._created = parse_time(created) or datetime.fromtimestamp(0, tz=timezone.utc)
        elif isinstance(created, int):
            created = self._created = datetime.fromtimestamp(created / 1e9, tz=timezone.utc)
        return created

    def json(self, **loads_kwargs: Any) -> Any:
        """The value parsed as JSON; ``loads_kwargs`` are passed to ``json.loads``.

        Raises:
            BadJsonError: the value is not valid JSON (or not in a JSON encoding); the original error is ``__cause__``.
            TypeError: ``loads_kwargs`` holds an argument ``json.loads`` does not take.
        """
        try:
            return json.loads(self.value, **loads_kwargs)
        except ValueError as exc:
            raise BadJsonError(f"value is not valid JSON: {exc}") from exc

    def string(self) -> str:
        """The value decoded as UTF-8, invalid bytes replaced by U+FFFD.

        Raises:
            Nothing: every byte sequence decodes.
        """
        return self.value.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return f"<KvEntry {self.bucket}/{self.key} rev={self.revision} {self.operation.value} {self.value[:32]!r}>"


def _operation(headers: Headers | None) -> KvOperation:
    """The operation of a stored message: its ``KV-Operation`` (PUT when absent or unknown); a message without one
    that the server wrote as a limit marker is a PURGE (``MaxAge``, ``Purge``) or a DEL (``Remove``)."""
    if headers is None:
        return KvOperation.PUT
    op = headers.get(_OPERATION)
    if op:
        try:
            return KvOperation(op)
        except ValueError:
            return KvOperation.PUT
    reason = headers.get(_MARKER_REASON)
    return _MARKER_OPERATIONS.get(reason, KvOperation.PUT) if reason else KvOperation.PUT


def _key_ttl(ttl: object) -> str:
    """The ``Nats-TTL`` value of a key's (or a purge marker's) time to live: whole seconds, at least 1 (a message's
    -1, "never", is not a key's)."""
    try:
        if ttl == -1:
            raise InvalidOptionError("never")
        return ttl_header(ttl)
    except InvalidOptionError:
        raise InvalidOptionError(f"ttl must be a whole number of seconds, at least 1; got {ttl!r}") from None


def _limit_marker_ttl(value: object) -> float | None:
    """A bucket's ``limit_marker_ttl`` as the stream's ``subject_delete_marker_ttl``: None (or 0) for none, else at
    least 1 second."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidOptionError(f"limit_marker_ttl must be a number of seconds (at least 1); got {value!r}")
    if value == 0:
        return None
    if value < 1:
        raise InvalidOptionError(f"limit_marker_ttl must be at least 1 second; got {value!r}")
    return float(value)


def _length(data: bytes, headers: Headers | None) -> int:
    if headers is not None:
        size = headers.get("Nats-Msg-Size")
        if size:
            return int(size)
    return len(data)


@dataclass(kw_only=True)
class KvStatus:
    """The status of a Key-Value bucket (`kv.status()`): values, history, TTL, storage, replicas, size.
    ``limit_marker_ttl`` is how long the markers of keys removed by a TTL or the bucket's maximum age are kept (0: the
    bucket has no such markers)."""

    bucket: str
    values: int
    history: int
    ttl: float
    limit_marker_ttl: float
    bucket_location: str
    storage: StorageType
    replicas: int
    description: str
    max_bytes: int
    max_value_size: int
    placement: Placement | None
    republish: Republish | None
    size: int
    metadata: dict[str, str] | None
    compression: bool
    stream_info: StreamInfo


def kv_status(bucket: str, info: StreamInfo) -> KvStatus:
    """A bucket's status from its stream's info.

    Raises:
        Nothing: it only reads ``info``.
    """
    cfg = info.config
    return KvStatus(
        bucket=bucket,
        values=info.state.messages,
        history=cfg.max_msgs_per_subject or 1,
        ttl=cfg.max_age or 0.0,
        limit_marker_ttl=cfg.subject_delete_marker_ttl or 0.0,
        bucket_location=(info.cluster.name if info.cluster and info.cluster.name else ""),
        storage=cfg.storage or StorageType.FILE,
        replicas=cfg.num_replicas or 1,
        description=cfg.description or "",
        max_bytes=cfg.max_bytes if cfg.max_bytes is not None else -1,
        max_value_size=cfg.max_msg_size if cfg.max_msg_size is not None else -1,
        placement=cfg.placement,
        republish=cfg.republish,
        size=info.state.bytes,
        metadata=cfg.metadata,
        compression=cfg.compression == StoreCompression.S2,
        stream_info=info,
    )


class OrderedRead:
    """An ordered consumer and its messages as a view reads them (a KV watcher or listing, an object read or
    watch), with what ends them, once: stop pulling (the iterator hands out what it holds, then ends), cancel the
    view's timer, and delete the server consumer (best-effort, in a task of the connection's scope; ``aclose``
    waits for it) rather than leave it to its inactive threshold.

    A child of the connection's scope: closing the connection ends it (without an API call). Nothing here refers
    to the view, so a view left early is collected, and its finalizer stops the read then (``watch_over``)."""

    __slots__ = ("_cleanup", "_ended", "_hidden", "_port", "_watched", "consumer", "messages", "timer")

    def __init__(self, port: Port, consumer: OrderedConsumer, messages: ConsumerMessages) -> None:
        self._port = port
        self.consumer = consumer
        self.messages = messages
        self.timer: asyncio.TimerHandle | None = None  # a view's timer (the object reader's stall watchdog)
        self._ended = False
        self._cleanup: asyncio.Task[None] | None = None
        port.scope.adopt(self)
        self._watched = False
        self._hidden: list[object] = []

    @property
    def ended(self) -> bool:
        return self._ended

    def watch_over(self, view: object = None) -> None:
        """A view reads through this from now on, and calls ``view_collected`` from its finalizer (a weak reference
        to it would be one more object for every full collection to walk). From now on, what only this read
        references (its consumer, that consumer's data, its messages) is hidden from the collector until the read
        ends, as a consumer's puller is. So is ``view``, if given: a view that references nothing the user gave
        (this read does not reference it: the pull keeps a borrowed pointer, which its finalizer clears)."""
        self._watched = True
        held_internally(self.messages)  # the view is watched instead
        if not self._ended:
            # its messages are the view's to read, never the user's to drop: hidden with the rest
            self._hidden = hide_owned((self, self.consumer, self.messages), _READ_PARTS)
            if view is not None:
                hide_view(self.messages, view)

    def view_collected(self, view: object) -> None:
        """``view`` was collected: stop, on the loop (a collection may happen anywhere, even in the middle of the
        connection's own bookkeeping, or on another thread)."""
        view_gone(self.messages, view)
        if self._ended or not self._watched:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs any more
            self._port.loop.call_soon_threadsafe(self.stop)

    def stop(self, error: Exception | None = None) -> None:
        """End now: the iterator hands out what it holds, then ends (raising ``error`` if given); the server
        consumer is deleted in the background. Idempotent, never raises."""
        if self._ended:
            return
        self._end(error)
        port = self._port
        scope = port.scope
        scope.release(self)
        consumer = self.consumer
        if consumer.name and not scope.is_closed and _running_loop() is port.loop:
            # (a view collected outside its loop leaves the consumer to its inactive threshold)
            self._cleanup = scope.spawn(_delete_consumer(consumer), f"delete consumer {consumer.name}")

    async def aclose(self) -> None:
        """``stop()``, and wait until the server consumer is deleted (or could not be)."""
        self.stop()
        cleanup = self._cleanup
        if cleanup is not None and not cleanup.done():
            await asyncio.wait([cleanup])

    def connection_closed(self, error: Exception | None) -> None:
        if not self._ended:
            self._end(error)

    def _end(self, error: Exception | None) -> None:
        self._ended = True
        reveal(self._hidden)
        show_view(self.messages)
        timer, self.timer = self.timer, None
        if timer is not None:
            timer.cancel()
        self.messages.stop(error)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _delete_consumer(consumer: OrderedConsumer) -> None:
    name = consumer.name
    try:
        await consumer.delete()
        if consumer.name != name:  # replaced meanwhile (a recreation that was under way)
            await consumer.delete()
    except NatsError:
        pass  # gone already, or unreachable: its inactive threshold removes it


async def open_ordered(
    js: JetStreamContext,
    stream: str,
    options: OrderedConsumerOptions,
    *,
    max_messages: int,
    expires: float,
    idle_heartbeat: float | None = None,
    max_bytes: int | None = None,
) -> OrderedRead:
    """An ordered consumer of ``stream``, consuming (a child of the connection's scope from now on): a window of
    ``max_messages``, and of ``max_bytes`` too when given (both pulled again at half)."""
    consumer = OrderedConsumer(js, stream, options)
    if max_bytes is None:
        messages = await consumer.consume(max_messages=max_messages, expires=expires, idle_heartbeat=idle_heartbeat)
    else:
        messages = await consume_window(
            consumer,
            max_messages=max_messages,
            max_bytes=max_bytes,
            expires=expires,
            idle_heartbeat=idle_heartbeat,
        )
    return OrderedRead(js.port, consumer, messages)


class OrderedView:
    """How a view that reads through an ``OrderedRead`` (``self._read``) is ended: ``stop()``, ``await aclose()``,
    or leaving ``async with``."""

    __slots__ = ()

    _read: OrderedRead

    def __del__(self) -> None:
        # collected (left unfinished, say): the read stops (a KvKeys shares its watcher's read, which stops either way)
        read = getattr(self, "_read", None)
        if read is not None:
            read.view_collected(self)

    def stop(self) -> None:
        """Stop now (the server consumer is deleted in the background).

        Raises:
            Nothing: stopping twice does nothing, and the deletion's errors are dropped.
        """
        self._read.stop()

    async def aclose(self) -> None:
        """Stop, and return once the server consumer is deleted.

        Raises:
            Nothing: a deletion that fails is given up (the consumer then ends by its inactive threshold).
        """
        await self._read.aclose()

    async def __aexit__(self, *exc: object) -> None:
        await self._read.aclose()


class KvWatcher(OrderedView, KvWatchBase):
    """Entries of a watch (live) or a history (ends once caught up); an async iterator of ``KvEntry``.

    ``stop()`` (or ``await aclose()``, or leaving ``async with``) ends it: what it holds is handed out, then the
    iterator ends, and its server consumer is deleted. Leaving an ``async for`` by ``break`` or an exception and
    dropping the watcher does the same once it is collected; closing the connection ends it too."""

    __slots__ = ("__weakref__", "_read")  # no __dict__: one object fewer for the collector per watcher

    def __init__(self, kv: KV, read: OrderedRead, *, ignore_deletes: bool, ends: bool) -> None:
        super().__init__()
        self._read = read
        # what the protocol core's __anext__ reads: it builds each entry from a queued message
        self._messages = read.messages
        self._entry_type = KvEntry
        self._bucket = kv.bucket
        self._prefix_len = len(kv._prefix)
        self._put = KvOperation.PUT
        self._ignore_deletes = ignore_deletes
        self._ends = ends  # history/keys: stop once caught up
        read.watch_over(self)  # its fields are all the library's: hidden too while the read runs

    def __aiter__(self) -> KvWatcher:
        return self

    # __anext__ is KvWatchBase's: an entry built at once from a queued message (no coroutine), else _anext_slow
    if TYPE_CHECKING:

        async def __anext__(self) -> KvEntry: ...

    async def _anext_slow(self) -> KvEntry:
        """Nothing is queued: wait for the next message (the same rules apply to it)."""
        messages = self._messages
        while True:
            try:
                msg = await messages.__anext__()
            except Exception:  # StopAsyncIteration included
                self._read.stop()  # over (stopped, caught up, or failed): the server consumer goes too
                raise
            entry: KvEntry | None = self._accept(msg)
            if entry is not None:
                return entry

    def _marker(self, data: bytes, headers: Headers) -> tuple[KvOperation, int]:
        """The operation and length of a message with headers (a marker, or a value read with ``headers_only``)."""
        return _operation(headers), _length(data, headers)

    def _caught_up(self) -> None:
        self._read.stop()  # a listing saw its last entry: what is queued is handed out, then it ends

    async def __aenter__(self) -> KvWatcher:
        return self


class KvKeys(OrderedView):
    """The iterator of ``kv.keys()``: the keys whose latest entry is a PUT, then the end. ``stop()``,
    ``await aclose()``, leaving ``async with``, or leaving an ``async for`` early and dropping it ends the listing
    and deletes its server consumer."""

    def __init__(self, watcher: KvWatcher) -> None:
        self._watcher = watcher
        self._read = watcher._read

    def __aiter__(self) -> KvKeys:
        return self

    async def __anext__(self) -> str:
        return (await self._watcher.__anext__()).key

    async def __aenter__(self) -> KvKeys:
        return self


class KV:
    """A bucket. Get one with ``await js.views.kv(bucket, ...)``."""

    def __init__(
        self, js: JetStreamClient, bucket: str, *, direct: bool, origin: str | None = None, write_api: str | None = None
    ) -> None:
        self._js = js
        self._port = port = js.port
        # the hot paths (put, get) call the connection's request directly, with the timeout read once
        self._request = port.request_future
        self._timeout = js.options.timeout
        self._streams = StreamAPI(js)
        self.bucket = bucket
        self._stream = f"KV_{bucket}"
        # A mirror stores the origin bucket's subjects, and writes must reach the origin: through its external API
        # prefix when it has one, else (as for any bucket) through this client's own, when not the default one.
        # Reads use one prefix, writes another.
        self._prefix = f"$KV.{origin or bucket}."
        self._write_prefix = (f"{write_api}." if write_api else js.write_prefix) + self._prefix
        self._direct = direct
        self._direct_get_subject = f"{js.api_prefix}.DIRECT.GET.{self._stream}"
        self._ack_head = ack_head(f"KV_{origin or bucket}")  # the stream that acknowledges writes

    def _subject(self, key: str) -> str:
        return self._prefix + key

    def _write_subject(self, key: str) -> str:
        return self._write_prefix + key

    # -- writes ---------------------------------------------------------------------------------------------------
    async def put(
        self, key: str, value: bytes | bytearray | memoryview | str, *, previous_seq: int | None = None
    ) -> int:
        """Write ``value`` under ``key``; the new revision. With ``previous_seq`` the write is only done if the key's
        latest revision is that one (0: the key has never been written, or was purged).

        Raises:
            InvalidKeyError: ``key`` is not a valid key.
            WrongLastSequenceError: ``previous_seq`` is given and is not the key's latest revision.
            NoRespondersError: the bucket's stream does not exist (nothing stores the write).
            JetStreamApiError: the bucket refused the write (a value larger than its maximum, the bucket is full...).
            JetStreamInvalidAckError: the acknowledgement names no stream.
            BadPayloadError: ``value`` is not bytes, bytearray, a C-contiguous memoryview or a UTF-8 encodable str.
            MaxPayloadExceededError: the value exceeds the server's `max_payload`.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
        """
        check_key(key)
        headers = None
        if previous_seq is not None:
            headers = Headers()
            headers.set(PubHeaders.EXPECTED_LAST_SUBJECT_SEQ.value, str(previous_seq))
        # a JetStream publish, minus the PubAck object: the revision is all a put returns (the hot path of put)
        subject = self._write_prefix + key
        msg = await self._request(subject, value, headers, self._timeout)
        return ack_sequence(msg, subject, self._ack_head)

    async def create(self, key: str, value: bytes | bytearray | memoryview | str, *, ttl: float | None = None) -> int:
        """Write ``key`` only if it does not exist (a deleted or purged key counts as not existing); the new revision.
        ``ttl``: the key's own time to live in whole seconds (header ``Nats-TTL``), on a bucket made with
        ``limit_marker_ttl``; once it passes, the server removes the value and leaves a PURGE marker. The server
        keeps a key at least as long as the bucket's ``limit_marker_ttl``.

        Raises:
            InvalidOptionError: ``ttl`` is not a whole number of seconds of at least 1.
            InvalidKeyError: ``key`` is not a valid key.
            WrongLastSequenceError: the key exists (or was written meanwhile by someone else).
            NoRespondersError: the bucket's stream does not exist (nothing stores the write).
            JetStreamApiError: the bucket refused the write (a value larger than its maximum, the bucket is full...;
                err_code 10166 for a ``ttl`` on a bucket without per-key TTLs).
            JetStreamInvalidAckError: the acknowledgement names no stream.
            BadPayloadError: ``value`` is not bytes, bytearray, a C-contiguous memoryview or a UTF-8 encodable str.
            MaxPayloadExceededError: the value exceeds the server's `max_payload`.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
        """
        if ttl is None:
            try:
                return await self.put(key, value, previous_seq=0)
            except WrongLastSequenceError:
                current = await self.get(key)
                if current is not None and current.operation is not KvOperation.PUT:
                    return await self.update(key, value, current.revision)
                raise
        ttl_value = _key_ttl(ttl)
        try:
            return await self._write_with_ttl(key, value, 0, ttl_value)
        except WrongLastSequenceError:
            current = await self.get(key)
            if current is not None and current.operation is not KvOperation.PUT:
                return await self._write_with_ttl(key, value, current.revision, ttl_value)
            raise

    async def _write_with_ttl(
        self, key: str, value: bytes | bytearray | memoryview | str, previous_seq: int, ttl: str
    ) -> int:
        """A put expecting ``previous_seq`` as the key's latest revision, with the ``Nats-TTL`` value ``ttl``."""
        check_key(key)
        headers = Headers()
        headers.set(PubHeaders.EXPECTED_LAST_SUBJECT_SEQ.value, str(previous_seq))
        headers.set(PubHeaders.TTL.value, ttl)
        subject = self._write_prefix + key
        msg = await self._request(subject, value, headers, self._timeout)
        return ack_sequence(msg, subject, self._ack_head)

    async def update(self, key: str, value: bytes | bytearray | memoryview | str, version: int) -> int:
        """Write ``key`` only if its latest revision is ``version``; the new revision.

        Raises:
            InvalidOptionError: ``version`` is not positive.
            InvalidKeyError: ``key`` is not a valid key.
            WrongLastSequenceError: ``version`` is not the key's latest revision.
            NoRespondersError: the bucket's stream does not exist (nothing stores the write).
            JetStreamApiError: the bucket refused the write (a value larger than its maximum, the bucket is full...).
            JetStreamInvalidAckError: the acknowledgement names no stream.
            BadPayloadError: ``value`` is not bytes, bytearray, a C-contiguous memoryview or a UTF-8 encodable str.
            MaxPayloadExceededError: the value exceeds the server's `max_payload`.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
        """
        if version <= 0:
            raise InvalidOptionError("version must be greater than 0")
        return await self.put(key, value, previous_seq=version)

    async def _marker(
        self, key: str, operation: KvOperation, previous_seq: int | None, ttl: float | None = None
    ) -> None:
        if "*" in key or ">" in key.split(".")[-1:]:
            check_key(key, filter=True)
            for matching in [k async for k in await self.keys(key)]:
                await self._marker(matching, operation, None, ttl)
            return
        check_key(key)
        headers = Headers()
        headers.set(_OPERATION, operation.value)
        if operation is KvOperation.PURGE:
            headers.set("Nats-Rollup", "sub")
        if previous_seq is not None:
            headers.set(PubHeaders.EXPECTED_LAST_SUBJECT_SEQ.value, str(previous_seq))
        await self._js.publish(self._write_subject(key), b"", headers=headers, ttl=ttl)

    async def delete(self, key: str, *, previous_seq: int | None = None) -> None:
        """Write a DEL marker (earlier revisions stay in the history). A key with wildcards marks every key that matches
        it (``previous_seq`` is then not checked).

        Raises:
            InvalidKeyError: ``key`` is not a valid key (or key filter).
            WrongLastSequenceError: ``previous_seq`` is given and is not the key's latest revision.
            StreamNotFoundError: with wildcards, the bucket does not exist.
            NoRespondersError: the bucket's stream does not exist (nothing stores the write).
            JetStreamApiError: the bucket refused the write (a value larger than its maximum, the bucket is full...).
            JetStreamInvalidAckError: the acknowledgement names no stream.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
        """
        await self._marker(key, KvOperation.DEL, previous_seq)

    async def purge(self, key: str, *, previous_seq: int | None = None, ttl: float | None = None) -> None:
        """Write a PURGE marker and remove every earlier revision of the key. A key with wildcards purges every key that
        matches it (``previous_seq`` is then not checked). ``ttl``: the marker's own time to live in whole seconds
        (header ``Nats-TTL``), on a bucket made with ``limit_marker_ttl``: once it passes, the key leaves no trace.

        Raises:
            InvalidOptionError: ``ttl`` is not a whole number of seconds of at least 1.
            InvalidKeyError: ``key`` is not a valid key (or key filter).
            WrongLastSequenceError: ``previous_seq`` is given and is not the key's latest revision.
            StreamNotFoundError: with wildcards, the bucket does not exist.
            NoRespondersError: the bucket's stream does not exist (nothing stores the write).
            JetStreamApiError: the bucket refused the write (a value larger than its maximum, the bucket is full...;
                err_code 10166 for a ``ttl`` on a bucket without per-key TTLs).
            JetStreamInvalidAckError: the acknowledgement names no stream.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
        """
        if ttl is not None:
            _key_ttl(ttl)  # checked before anything is sent (a wildcard purge lists the keys first)
        await self._marker(key, KvOperation.PURGE, previous_seq, ttl)

    # -- reads ----------------------------------------------------------------------------------------------------
    async def get(self, key: str, *, revision: int | None = None) -> KvEntry | None:
        """The key's latest entry, or the one at ``revision``; None when there is none (a DEL or PURGE marker is an
        entry: check its ``operation``; so is a marker the server left for a key whose TTL passed, a PURGE).

        Raises:
            InvalidKeyError: ``key`` is not a valid key.
            NoRespondersError: read by a direct get, the bucket does not exist.
            StreamNotFoundError: read through the JetStream API, the bucket does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        check_key(key)
        subject = self._prefix + key
        if revision is None and self._direct:
            return await self._get_direct(key, subject)
        try:
            if revision is not None:
                stored = await self._streams.get_message(self._stream, revision)
                if stored.subject != subject:
                    return None
            elif self._direct:
                stored = await DirectStreamAPI(self._js).get_message(self._stream, last_by_subj=subject)
            else:
                stored = await self._streams.get_message(self._stream, last_by_subj=subject)
        except MessageNotFoundError:
            return None
        return KvEntry(
            self.bucket,
            key,
            stored.data,
            stored.seq,
            stored.time,
            0,
            _operation(stored.headers),
            _length(stored.data, stored.headers),
        )

    async def _get_direct(self, key: str, subject: str) -> KvEntry | None:
        """The latest entry by a direct get, read straight from the answer's headers (the hot path of ``get``)."""
        # a valid key needs no JSON escaping
        payload = b'{"last_by_subj":"' + subject.encode() + b'"}'
        msg = await self._request(self._direct_get_subject, payload, None, self._timeout)
        headers = msg.headers
        if headers is None or headers.code >= 300:  # 404: no such key
            return None
        return KvEntry(
            self.bucket,
            key,
            msg.data,
            int(headers.get("Nats-Sequence") or 0),
            headers.get("Nats-Time-Stamp"),
            0,
            _operation(headers),
            _length(msg.data, headers),
        )

    async def _ordered(
        self,
        keys: str | Sequence[str],
        deliver: DeliverPolicy,
        *,
        headers_only: bool = False,
        start_seq: int | None = None,
    ) -> OrderedRead:
        filters = [keys] if isinstance(keys, str) else list(keys)
        for k in filters:
            check_key(k, filter=True)
        options = OrderedConsumerOptions(
            filter_subjects=[self._subject(k) for k in filters],
            deliver_policy=deliver,
            opt_start_seq=start_seq,
            headers_only=headers_only or None,
        )
        return await open_ordered(
            self._js,
            self._stream,
            options,
            max_messages=_WATCH_WINDOW,
            max_bytes=self._window_bytes(),
            expires=10.0,
            idle_heartbeat=5.0,
        )

    def _window_bytes(self) -> int:
        """The byte window of a watcher: the usual one, or more where the server takes larger messages (a pull that
        cannot hold the next message gets none of it, so a larger value would never come)."""
        server = self._js._nc.info
        largest = server.max_payload + _WIRE_OVERHEAD if server is not None and server.max_payload else 0
        return max(_WATCH_WINDOW_BYTES, largest)

    async def _listing(
        self, keys: str | Sequence[str], deliver: DeliverPolicy, *, headers_only: bool, ignore_deletes: bool
    ) -> KvWatcher:
        """A watcher that ends once caught up (history, keys): at once when there is nothing to list."""
        read = await self._ordered(keys, deliver, headers_only=headers_only)
        if _initially_empty(read.consumer):
            read.stop()
        return KvWatcher(self, read, ignore_deletes=ignore_deletes, ends=True)

    async def watch(
        self,
        key: str | Sequence[str] = ">",
        *,
        include_history: bool = False,
        ignore_deletes: bool = False,
        headers_only: bool = False,
        updates_only: bool = False,
        resume_from_revision: int | None = None,
        on_initialized: Callable[[], object] | None = None,
    ) -> KvWatcher:
        """Latest entry per key, then live updates (or all history first, or only updates); a key removed by its TTL
        or the bucket's maximum age shows as a PURGE entry on a bucket with ``limit_marker_ttl``. ``on_initialized`` is
        called once the initial state is delivered (at once when there is none); a coroutine (or any awaitable) it
        returns is awaited on a task of the connection, and an exception it raises is reported as a
        ``CALLBACK_ERROR`` status.

        Raises:
            InvalidOptionError: both ``include_history`` and ``updates_only`` are given.
            InvalidKeyError: a key filter is not valid.
            StreamNotFoundError: the bucket does not exist.
            JetStreamApiError: the server refused the consumer that reads the bucket.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
            NatsError: while iterating, the connection closed with an error (a fatal close): that error.
        """
        if include_history and updates_only:
            raise InvalidOptionError("include_history and updates_only are mutually exclusive")
        if resume_from_revision is not None:
            deliver, start = DeliverPolicy.START_SEQUENCE, resume_from_revision
        elif updates_only:
            deliver, start = DeliverPolicy.NEW, None
        elif include_history:
            deliver, start = DeliverPolicy.ALL, None
        else:
            deliver, start = DeliverPolicy.LAST_PER_SUBJECT, None
        read = await self._ordered(key, deliver, headers_only=headers_only, start_seq=start)
        watcher = KvWatcher(self, read, ignore_deletes=ignore_deletes, ends=False)
        if on_initialized is not None:
            first = key if isinstance(key, str) else (key[0] if key else ">")
            callback = _initialized_callback(on_initialized, self._port, self._subject(first))
            if updates_only or _initially_empty(read.consumer):
                _fire(callback, self._port)
            else:
                _fire_when_caught_up(read.messages, callback, self._port)
        return watcher

    async def history(self, key: str | Sequence[str] = ">", *, headers_only: bool = False) -> KvWatcher:
        """Every retained entry (markers included) for the key(s), then the iterator ends.

        Raises:
            InvalidKeyError: a key filter is not valid.
            StreamNotFoundError: the bucket does not exist.
            JetStreamApiError: the server refused the consumer that reads the bucket.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
            NatsError: while iterating, the connection closed with an error (a fatal close): that error.
        """
        return await self._listing(key, DeliverPolicy.ALL, headers_only=headers_only, ignore_deletes=False)

    async def keys(self, filter: str | Sequence[str] = ">") -> KvKeys:
        """The keys whose latest entry is a PUT; the iterator ends once they are all listed.

        Raises:
            InvalidKeyError: a key filter is not valid.
            StreamNotFoundError: the bucket does not exist.
            JetStreamApiError: the server refused the consumer that reads the bucket.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
            NatsError: while iterating, the connection closed with an error (a fatal close): that error.
        """
        watcher = await self._listing(filter, DeliverPolicy.LAST_PER_SUBJECT, headers_only=True, ignore_deletes=True)
        return KvKeys(watcher)

    async def status(self) -> KvStatus:
        """The bucket's status (values, history, TTL, size...), from its stream's info.

        Raises:
            StreamNotFoundError: the bucket does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        return kv_status(self.bucket, await self._streams.info(self._stream))

    async def purge_deletes(self, *, older_than: float = 1800.0) -> Any:
        """Remove DEL/PURGE markers; a marker younger than ``older_than`` seconds keeps itself (only).

        Raises:
            StreamNotFoundError: the bucket does not exist.
            JetStreamApiError: the server refused a purge or the listing of the markers.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=older_than)
        purged = 0
        for entry in await self._latest_markers():
            keep = 1 if older_than > 0 and entry.created > cutoff else 0
            response = await self._streams.purge(
                self._stream, filter=self._subject(entry.key), keep=keep if keep else None
            )
            purged += response.purged
        return PurgeResponse(success=True, purged=purged)

    async def _latest_markers(self) -> list[KvEntry]:
        watcher = await self._listing(">", DeliverPolicy.LAST_PER_SUBJECT, headers_only=True, ignore_deletes=False)
        async with watcher:
            return [entry async for entry in watcher if entry.operation is not KvOperation.PUT]

    async def destroy(self) -> bool:
        """Delete the bucket (its stream) with every key; True when the server reports success.

        Raises:
            StreamNotFoundError: the bucket does not exist.
            JetStreamApiError: the server refused the deletion.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        return await self._streams.delete(self._stream)

    async def close(self) -> None:
        """Nothing to release (kept for nats.js parity).

        Raises:
            Nothing: it does nothing.
        """

    def __repr__(self) -> str:
        return f"<KV {self.bucket!r}>"


def _initially_empty(consumer: OrderedConsumer) -> bool:
    info = consumer._info
    return info is not None and info.num_pending == 0


def _initialized_callback(fn: Callable[[], object], port: Port, subject: str) -> Callback[None]:
    """``on_initialized`` through the callback adapter; what it raises is reported for the watched subject."""

    def report(exc: BaseException, _: None) -> None:
        port.report_callback_error(exc, subject, 0)

    return Callback(lambda _: fn(), report)


def _fire(callback: Callback[None], port: Port) -> None:
    """Call now; an awaitable it returns is awaited on a task of the connection's scope."""
    pending = callback.call_inline(None)
    if pending is None or pending is FAILED:
        return
    if port.scope.spawn(callback.call(None, pending), "kv on_initialized") is None and asyncio.iscoroutine(pending):
        pending.close()  # the connection is closed: nothing starts any more


def _fire_when_caught_up(messages: ConsumerMessages, callback: Callback[None], port: Port) -> None:
    """Call ``callback`` once, when the entry that completes the initial state arrives (its delta is 0). The hook
    refers to neither the watcher nor (strongly) the messages."""
    messages_ref = weakref.ref(messages)

    def on_arrival(msg: JsMsg) -> None:
        if msg.info.pending == 0:
            arrived = messages_ref()
            if arrived is not None:
                arrived._on_arrival = None
            _fire(callback, port)

    messages._on_arrival = on_arrival


async def open_kv(
    js: JetStreamClient,
    bucket: str,
    *,
    history: int = 1,
    ttl: float = 0.0,
    max_bytes: int = -1,
    max_value_size: int = -1,
    storage: StorageType = StorageType.FILE,
    replicas: int = 1,
    description: str | None = None,
    bind_only: bool = False,
    compression: bool = False,
    placement: Placement | None = None,
    republish: Republish | None = None,
    metadata: dict[str, str] | None = None,
    allow_direct: bool | None = None,
    mirror: StreamSource | None = None,
    sources: Sequence[StreamSource] | None = None,
    limit_marker_ttl: float | None = None,
) -> KV:
    """Bind to the bucket, creating its stream with the ADR-8 configuration when it does not exist. With
    ``bind_only`` the bucket must exist: it is never created (a misspelt name raises instead). ``limit_marker_ttl``
    (seconds, at least 1; None or 0: none) allows per-key TTLs and makes the server leave a marker, kept that long,
    when a key's TTL or the bucket's ``ttl`` removes it (ADR-48): the stream gets ``allow_msg_ttl`` and
    ``subject_delete_marker_ttl``.

    Raises:
        InvalidNameError: ``bucket`` is not a valid bucket name.
        InvalidOptionError: ``history`` is not in 1..64, both ``mirror`` and ``sources`` are given, or
            ``limit_marker_ttl`` is not a number of seconds of at least 1 (nor None or 0).
        JetStreamApiError: the server refused to create the bucket's stream.
        ConnectionClosedError: the connection is closed (also while waiting).
        ConnectionDrainingError: the connection is draining.
        NatsTimeoutError: no answer within the JetStream timeout.
        JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        BucketNotFoundError: ``bind_only`` and the bucket does not exist.
    """
    check_bucket(bucket)
    if history < 1 or history > _MAX_HISTORY:
        raise InvalidOptionError(f"history must be between 1 and {_MAX_HISTORY}")
    if mirror is not None and sources:
        raise InvalidOptionError("a bucket is either a mirror or has sources, not both")
    marker_ttl = _limit_marker_ttl(limit_marker_ttl)
    streams = StreamAPI(js)
    name = f"KV_{bucket}"
    if bind_only:
        return _bound(js, bucket, await existing_bucket(streams, name, f"bucket not found: {bucket}"))

    def config() -> StreamConfig:
        created = StreamConfig(
            name=name,
            description=description,
            subjects=None if mirror is not None else [f"$KV.{bucket}.>"],
            max_msgs_per_subject=history,
            max_age=ttl,
            max_bytes=max_bytes,
            max_msg_size=max_value_size,
            storage=storage,
            num_replicas=replicas,
            discard=DiscardPolicy.NEW,
            allow_rollup_hdrs=True,
            deny_delete=True,
            deny_purge=False,
            duplicate_window=min(ttl, 120.0) if ttl > 0 else 120.0,
            allow_direct=True if allow_direct is None else allow_direct,
            compression=StoreCompression.S2 if compression else StoreCompression.NONE,
            placement=placement,
            republish=republish,
            metadata=metadata,
        )
        if marker_ttl is not None:
            created.allow_msg_ttl = True
            created.subject_delete_marker_ttl = marker_ttl
        if mirror is not None:
            created.mirror = _kv_source(mirror, None)
            created.mirror_direct = True
        elif sources:
            created.sources = [_kv_source(source, bucket) for source in sources]
        return created

    return _bound(js, bucket, await streams._info_or_add(name, config))


async def existing_bucket(streams: StreamAPI, stream: str, missing: str) -> StreamInfo:
    """The info of a bucket's stream (a KV's or an object store's), or ``BucketNotFoundError(missing)``."""
    try:
        return await streams.info(stream)
    except StreamNotFoundError:
        raise BucketNotFoundError(missing) from None


def _kv_source(source: StreamSource, bucket: str | None) -> StreamSource:
    """A mirror or source given by bucket name (``KV_`` added when missing); a source from another local bucket
    gets its keys moved into this bucket's subjects."""
    name = source.name if source.name.startswith("KV_") else f"KV_{source.name}"
    copy = replace(source, name=name)
    origin = name[3:]
    if bucket is not None and source.external is None and origin != bucket and not source.subject_transforms:
        copy.subject_transforms = [SubjectTransformConfig(src=f"$KV.{origin}.>", dest=f"$KV.{bucket}.>")]
    return copy


def _bound(js: JetStreamClient, bucket: str, info: StreamInfo) -> KV:
    direct = bool(info.config.allow_direct)
    mirror = info.config.mirror
    if mirror is None:
        return KV(js, bucket, direct=direct)
    origin = mirror.name[3:] if mirror.name.startswith("KV_") else mirror.name
    write_api = mirror.external.api if mirror.external is not None and mirror.external.api else None
    return KV(js, bucket, direct=direct or bool(info.config.mirror_direct), origin=origin, write_api=write_api)
