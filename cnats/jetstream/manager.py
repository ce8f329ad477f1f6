"""JetStreamManager: streams, consumers, direct gets and account info.

The API requests themselves are in ``cnats.jetstream.apis`` (re-exported here)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .api import (
    AccountInfo,
    Advisory,
    AdvisoryKind,
    ConsumerInfo,
    StoredMsg,
    StreamAlternate,
    StreamInfo,
)
from .apis import ConsumerAPI, DirectStreamAPI, stored_from_direct
from .apis import StreamAPI as _StreamRequests
from .consumer import Consumer, Consumers, OrderedConsumerOptions
from .context import JetStreamContext

if TYPE_CHECKING:
    from ..kv import KvStatus
    from ..objectstore import ObjectStoreStatus
    from .client import JetStreamClient

__all__ = ["ConsumerAPI", "DirectStreamAPI", "JetStreamManager", "Stream", "StreamAPI", "stored_from_direct"]


class StreamAPI(_StreamRequests):
    """``jsm.streams``: stream administration, stream handles, and the Key-Value buckets and object stores."""

    async def get(self, name: str) -> Stream:
        """A handle on the stream ``name`` (its info is fetched now).

        Raises:
            InvalidNameError: ``name`` is not a valid stream name.
            StreamNotFoundError: the stream does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        info = await self.info(name)
        return Stream(self._ctx, info)

    async def list_kvs(self) -> AsyncIterator[KvStatus]:
        """The status of every KV bucket (the streams named ``KV_*``).

        Raises:
            JetStreamApiError: the server refused the listing (raised while iterating, as are the errors below).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        from ..kv import kv_status  # the Key-Value layer builds on this package: resolved on first use

        async for info in self.list():
            name = info.config.name or ""
            if name.startswith("KV_"):
                yield kv_status(name[3:], info)

    async def list_object_stores(self) -> AsyncIterator[ObjectStoreStatus]:
        """The status of every object store (the streams named ``OBJ_*``).

        Raises:
            JetStreamApiError: the server refused the listing (raised while iterating, as are the errors below).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        from ..objectstore import object_store_status  # the object store builds on this package

        async for info in self.list():
            name = info.config.name or ""
            if name.startswith("OBJ_"):
                yield object_store_status(name[4:], info)


class Stream:
    """A stream handle (``js.streams.get(name)``)."""

    def __init__(self, ctx: JetStreamContext, info: StreamInfo) -> None:
        self._ctx = ctx
        self._info = info
        self.name: str = info.config.name or ""

    async def info(
        self, cached: bool = False, *, deleted_details: bool = False, subjects_filter: str | None = None
    ) -> StreamInfo:
        """The stream's info: the one fetched last with ``cached``, else fetched now (see ``StreamAPI.info``).

        Raises:
            StreamNotFoundError: the stream does not exist (any more).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        if not cached:
            self._info = await StreamAPI(self._ctx).info(
                self.name, deleted_details=deleted_details, subjects_filter=subjects_filter
            )
        return self._info

    async def alternates(self) -> list[StreamAlternate]:
        """The stream's alternates (mirrors in other clusters or domains), as its info reports them now.

        Raises:
            StreamNotFoundError: the stream does not exist (any more).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        return list((await self.info()).alternates or [])

    async def best(self) -> Stream:
        """The first alternate the server lists (the one it considers nearest), or this stream when it comes first or
        there is none.

        Raises:
            StreamNotFoundError: the stream, or the alternate, does not exist (any more).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        alternates = await self.alternates()
        if alternates and alternates[0].name != self.name:
            return await StreamAPI(self._ctx).get(alternates[0].name)
        return self

    async def get_message(self, seq: int | None = None, *, last_by_subj: str | None = None) -> StoredMsg:
        """A stored message, by sequence or as the last one on a subject (exactly one of ``seq`` and ``last_by_subj``).

        Raises:
            InvalidOptionError: neither or both of ``seq`` and ``last_by_subj`` are given.
            StreamNotFoundError: the stream does not exist (any more).
            MessageNotFoundError: there is no such message.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        return await StreamAPI(self._ctx).get_message(self.name, seq, last_by_subj=last_by_subj)

    async def delete_message(self, seq: int, erase: bool = True) -> bool:
        """Delete one message; with ``erase`` its data is overwritten too. True when the server reports success.

        Raises:
            StreamNotFoundError: the stream does not exist (any more).
            JetStreamApiError: the server could not delete it (no such message, or the stream denies deletes).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        return await StreamAPI(self._ctx).delete_message(self.name, seq, erase)

    async def get_consumer(self, name: str | OrderedConsumerOptions | None = None) -> Consumer:
        """A consumer of this stream by name, or an ordered consumer (no name, or its options).

        Raises:
            InvalidNameError: ``name`` is not a valid consumer name.
            InvalidOptionError: the consumer is a push consumer.
            StreamNotFoundError: the stream does not exist (any more).
            ConsumerNotFoundError: the consumer does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        return await Consumers(self._ctx).get(self.name, name)

    def get_consumer_from_info(self, info: ConsumerInfo) -> Consumer:
        """The pull consumer ``info`` describes, without a request.

        Raises:
            InvalidOptionError: the consumer is a push consumer.
        """
        return Consumers(self._ctx).get_pull_consumer_for(info)

    def __repr__(self) -> str:
        return f"<Stream {self.name!r}>"


class JetStreamManager(JetStreamContext):
    """Administers streams and consumers; create it with ``await nc.jetstream_manager()``."""

    def __init__(self, nc: Any, options: Any) -> None:
        super().__init__(nc, options)
        self.streams = StreamAPI(self)
        self.consumers = ConsumerAPI(self)
        self.direct = DirectStreamAPI(self)

    async def get_account_info(self) -> AccountInfo:
        """The account's JetStream usage and limits.

        Raises:
            JetStreamApiError: the server refused the request.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        return AccountInfo.from_dict(await self._api("INFO"))

    async def advisories(self) -> AsyncIterator[Advisory]:
        """The JetStream advisories of the account as they are published (``$JS.EVENT.ADVISORY.>``), until the iteration
        stops or the connection closes. Advisories of a kind cnats does not know, and payloads that are not JSON, are
        skipped.

        Raises:
            ConnectionClosedError: the connection is closed (at the first step of the iteration).
            ConnectionDrainingError: the connection is draining (at the first step of the iteration).
            NatsError: the connection closed with an error (a fatal close) while iterating: that error.
        """
        sub = self._nc.subscribe("$JS.EVENT.ADVISORY.>", pending_msgs_limit=None, pending_bytes_limit=None)
        try:
            async for msg in sub:
                try:
                    data = msg.json()
                except ValueError:
                    continue
                kind = _advisory_kind(str(data.get("type", "")))
                if kind is not None:
                    yield Advisory(kind, data)
        finally:
            sub.unsubscribe()

    def jetstream(self) -> JetStreamClient:
        """A JetStream client with this manager's options (the client module builds on this one: the connection
        makes it).

        Raises:
            Nothing: the options were checked when this manager was made.
        """
        opts = self._options
        return self._nc.jetstream(domain=opts.domain, api_prefix=opts.api_prefix, timeout=opts.timeout)


def _advisory_kind(type_name: str) -> AdvisoryKind | None:
    # "io.nats.jetstream.advisory.v1.consumer_action" -> "consumer_action"
    tail = type_name.rsplit(".", 1)[-1]
    try:
        return AdvisoryKind(tail)
    except ValueError:
        return None
