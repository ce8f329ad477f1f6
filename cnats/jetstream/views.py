"""``js.views``: the Key-Value store and (later) the object store, built on the JetStream client."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .api import Placement, Republish, StorageType, StreamSource

if TYPE_CHECKING:
    from ..kv import KV
    from .client import JetStreamClient

__all__ = ["Views"]


class Views:
    def __init__(self, js: JetStreamClient) -> None:
        self._js = js

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
    ) -> KV:
        """The bucket's KV, creating its stream (``KV_<bucket>``) if missing; an existing one is used as is."""
        from ..errors import InvalidOptionError
        from ..kv import open_kv

        if mirror is not None or sources:
            raise InvalidOptionError("KV mirrors and sources are not supported yet")
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
        )
