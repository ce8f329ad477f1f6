"""``SyncJetStream``: JetStream publishing (acknowledged, and pipelined into ``concurrent.futures`` futures),
consumers, and the Key-Value and object-store views, for threads."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidOptionError
from ..headers import Headers
from ..jetstream.api import Placement, PubAck, PublishExpect, Republish, StorageType, StreamSource
from ..jetstream.client import JetStreamClient, ttl_header
from ..jetstream.views import Views
from .checks import checked_headers, checked_payload, checked_subject
from .consumer import SyncConsumers
from .context import Context
from .pipeline import Pipeline

if TYPE_CHECKING:
    from .kv import SyncKV
    from .manager import SyncJetStreamManager
    from .objectstore import SyncObjectStore

__all__ = ["SyncJetStream", "SyncViews"]


class SyncJetStream:
    """A JetStream client for threads (``nc.jetstream()`` of a `SyncConnection`)."""

    def __init__(
        self, ctx: Context, js: JetStreamClient, publish_async_max_pending: int, publish_async_stall_wait: float = 5.0
    ) -> None:
        self._ctx = ctx
        self._js = js
        self._pipeline = Pipeline(ctx.runner, js, publish_async_max_pending, publish_async_stall_wait)
        self.consumers = SyncConsumers(ctx, js.consumers)
        """The consumers to read from (``consumers.get(stream, name)``)."""
        self.views = SyncViews(ctx, js.views)
        """The Key-Value and object-store views (``views.kv(bucket)``, ``views.os(bucket)``)."""

    @property
    def api_prefix(self) -> str:
        """The JetStream API prefix (``$JS.API``, or the domain's)."""
        return self._js.api_prefix

    def jetstream_manager(self, check_api: bool = True) -> SyncJetStreamManager:
        """A blocking manager with this client's options.

        Raises:
            JetStreamNotEnabledError: with ``check_api``, JetStream is not enabled, or nothing answers the API.
            ConnectionClosedError: the connection is closed (also while waiting).
            NatsTimeoutError: with ``check_api``, no answer within the JetStream timeout.
            InvalidOptionError: this thread runs an event loop.
        """
        from .manager import SyncJetStreamManager

        return SyncJetStreamManager(self._ctx, self._ctx.call(self._js.jetstream_manager(check_api)))

    def publish(
        self,
        subject: str,
        payload: bytes | bytearray | memoryview | str = b"",
        *,
        msg_id: str | None = None,
        expect: PublishExpect | None = None,
        headers: Headers | Mapping[str, Any] | None = None,
        timeout: float | None = None,
        ttl: float | None = None,
    ) -> PubAck:
        """Publish to a stream and wait for its acknowledgement (``ttl`` as for the asyncio ``publish``).

        Raises:
            NoRespondersError: no stream listens on ``subject``.
            NatsTimeoutError: no acknowledgement within ``timeout`` (by default the client's).
            WrongLastSequenceError: an ``expect`` on the last sequence failed.
            JetStreamApiError: the stream refused the message.
            ConnectionClosedError: the connection is closed.
            BadSubjectError: ``subject`` is not valid.
            BadPayloadError: ``payload`` is not bytes, bytearray, memoryview or a UTF-8 encodable str.
            InvalidOptionError: ``timeout`` is not positive, ``ttl`` is not valid, or this thread runs an event loop.
            NatsError: any other error of the asyncio `JetStreamClient.publish`.
        """
        return self._ctx.call(
            self._js.publish(subject, payload, msg_id=msg_id, expect=expect, headers=headers, timeout=timeout, ttl=ttl)
        )

    def publish_async(
        self,
        subject: str,
        payload: bytes | bytearray | memoryview | str = b"",
        *,
        msg_id: str | None = None,
        expect: PublishExpect | None = None,
        headers: Headers | Mapping[str, Any] | None = None,
        timeout: float | None = None,
        ttl: float | None = None,
    ) -> concurrent.futures.Future[PubAck]:
        """Send without waiting for the acknowledgement: the returned future resolves with the `PubAck` or fails with
        the error `publish` would raise. Waits only while ``publish_async_max_pending`` acknowledgements are
        outstanding, and then at most ``publish_async_stall_wait`` seconds. Publishes of one thread are sent in order.

        Raises:
            NatsTimeoutError: no room within the stall wait (nothing was sent).
            ConnectionClosedError: the connection is closed.
            BadSubjectError: ``subject`` is not valid.
            BadPayloadError: ``payload`` is not bytes, bytearray, memoryview or a UTF-8 encodable str.
            BadHeaderError: a header name or value is not valid.
            TypeError: ``headers`` is neither ``Headers`` nor a mapping.
            InvalidOptionError: ``timeout`` is not positive, ``ttl`` is not valid, or the call would wait on a thread
                that runs an event loop.
        """
        checked_subject(subject)
        if ttl is not None:
            ttl_header(ttl)  # checked here, in the caller
        data = checked_payload(payload)
        snapshot = checked_headers(headers)[0] if headers is not None else None
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
            raise InvalidOptionError(f"timeout must be a positive number of seconds, got {timeout!r}")
        options: dict[str, Any] = {}
        if msg_id is not None:
            options["msg_id"] = msg_id
        if expect is not None:
            options["expect"] = expect
        if snapshot is not None:
            options["headers"] = snapshot
        if timeout is not None:
            options["timeout"] = timeout
        if ttl is not None:
            options["ttl"] = ttl
        return self._pipeline.submit(subject, data, options)

    @property
    def publish_async_pending(self) -> int:
        """Pipelined publishes whose acknowledgement has not arrived yet."""
        return len(self._pipeline.outstanding)

    def publish_async_completed(self, timeout: float | None = None) -> None:
        """Wait until every pipelined publish made so far is acknowledged (or failed).

        Raises:
            NatsTimeoutError: acknowledgements are still outstanding after ``timeout`` seconds.
            InvalidOptionError: this thread runs an event loop.
        """
        self._pipeline.completed(timeout)


class SyncViews:
    """``js.views`` of a `SyncJetStream`: open a Key-Value bucket or an object store by name."""

    def __init__(self, ctx: Context, views: Views) -> None:
        self._ctx = ctx
        self._views = views

    def kv(
        self,
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
        mirror: StreamSource | None = None,
        sources: Sequence[StreamSource] | None = None,
        allow_direct: bool | None = None,
        metadata: Mapping[str, str] | None = None,
        limit_marker_ttl: float | None = None,
    ) -> SyncKV:
        """The bucket's Key-Value store, creating it if missing (options as `Views.kv`).

        Raises:
            InvalidNameError: ``bucket`` is not a valid bucket name.
            InvalidOptionError: ``history`` is not in 1..64, both ``mirror`` and ``sources`` are given,
                ``limit_marker_ttl`` is not a number of seconds of at least 1 (nor None or 0), or this thread runs
                an event loop.
            JetStreamApiError: the server refused to create the bucket's stream.
            ConnectionClosedError: the connection is closed (also while waiting).
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
            BucketNotFoundError: ``bind_only`` and the bucket does not exist.
        """
        from .kv import SyncKV

        kv = self._ctx.call(
            self._views.kv(
                bucket,
                history=history,
                ttl=ttl,
                max_bytes=max_bytes,
                max_value_size=max_value_size,
                storage=storage,
                replicas=replicas,
                description=description,
                bind_only=bind_only,
                compression=compression,
                placement=placement,
                republish=republish,
                mirror=mirror,
                sources=sources,
                allow_direct=allow_direct,
                metadata=metadata,
                limit_marker_ttl=limit_marker_ttl,
            )
        )
        return SyncKV(self._ctx, kv)

    def os(
        self,
        bucket: str,
        *,
        description: str | None = None,
        ttl: float = 0.0,
        storage: StorageType = StorageType.FILE,
        replicas: int = 1,
        max_bytes: int = -1,
        placement: Placement | None = None,
        metadata: Mapping[str, str] | None = None,
        compression: bool = False,
        bind_only: bool = False,
    ) -> SyncObjectStore:
        """The bucket's object store, creating it if missing unless ``bind_only`` (options as `Views.os`).

        Raises:
            InvalidNameError: ``bucket`` is not a valid bucket name.
            InvalidOptionError: ``ttl`` is negative, ``replicas`` is less than 1, or this thread runs an event loop.
            JetStreamApiError: the server refused to create the store's stream.
            ConnectionClosedError: the connection is closed (also while waiting).
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
            BucketNotFoundError: ``bind_only`` and the store does not exist.
        """
        from .objectstore import SyncObjectStore

        store = self._ctx.call(
            self._views.os(
                bucket,
                description=description,
                ttl=ttl,
                storage=storage,
                replicas=replicas,
                max_bytes=max_bytes,
                placement=placement,
                metadata=metadata,
                compression=compression,
                bind_only=bind_only,
            )
        )
        return SyncObjectStore(self._ctx, store)
