"""``js.views``: the Key-Value store and the object store, built on the JetStream client."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .api import Placement, Republish, StorageType, StreamSource

if TYPE_CHECKING:
    from ..kv import KV
    from ..objectstore import ObjectStore
    from .client import JetStreamClient
    from .counters import Counters

__all__ = ["Views"]


class Views:
    """Key-Value and object-store views of a JetStream client (`js.views`): open a bucket or store by name."""

    def __init__(self, js: JetStreamClient) -> None:
        self._js = js

    def counters(self, stream: str) -> Counters:
        """The distributed counters of ``stream`` (server 2.12+, a stream made with ``allow_msg_counter``).

        Raises:
            InvalidNameError: ``stream`` is not a valid stream name.
        """
        from .counters import Counters

        return Counters(self._js, stream)

    async def kv(
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
    ) -> KV:
        """The bucket's KV, creating its stream (``KV_<bucket>``) if missing; an existing one is used as is. With
        ``bind_only`` the bucket must exist (it is never created). ``limit_marker_ttl`` (seconds, at least 1; server
        2.11+) allows per-key TTLs (``kv.create(..., ttl=)``, ``kv.purge(..., ttl=)``) and makes the server leave a
        PURGE marker, kept that long, when a key expires.

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
        from ..kv import open_kv

        return await open_kv(
            self._js,
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
            metadata=dict(metadata) if metadata is not None else None,
            allow_direct=allow_direct,
            mirror=mirror,
            sources=sources,
            limit_marker_ttl=limit_marker_ttl,
        )

    async def os(
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
    ) -> ObjectStore:
        """The bucket's object store, creating its stream (``OBJ_<bucket>``) if missing; with ``bind_only`` the store
        must exist (it is never created).

        Raises:
            InvalidNameError: ``bucket`` is not a valid bucket name.
            InvalidOptionError: ``ttl`` is negative or ``replicas`` is less than 1.
            JetStreamApiError: the server refused to create the store's stream.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
            BucketNotFoundError: ``bind_only`` and the store does not exist.
        """
        from ..objectstore import open_object_store

        return await open_object_store(
            self._js,
            bucket,
            description=description,
            ttl=ttl,
            storage=storage,
            replicas=replicas,
            max_bytes=max_bytes,
            placement=placement,
            metadata=dict(metadata) if metadata is not None else None,
            compression=compression,
            bind_only=bind_only,
        )
