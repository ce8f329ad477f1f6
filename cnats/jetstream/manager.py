"""JetStreamManager: streams, consumers, direct gets and account info (API.md section 5.3)."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import InvalidOptionError, MessageNotFoundError, NatsError, StreamNotFoundError
from ..headers import Headers, parse_header_block
from ..msg import Msg
from ..nuid import nuid
from .api import (
    AccountInfo,
    Advisory,
    AdvisoryKind,
    ConsumerApiAction,
    ConsumerConfig,
    ConsumerInfo,
    ConsumerPauseResponse,
    PurgeResponse,
    StoredMsg,
    StreamAlternate,
    StreamConfig,
    StreamInfo,
)
from .context import JetStreamContext, check_name
from .model import format_time

if TYPE_CHECKING:
    from ..kv import KvStatus
    from ..objectstore import ObjectStoreStatus
    from .client import JetStreamClient
    from .consumer import Consumer, OrderedConsumerOptions

__all__ = ["ConsumerAPI", "DirectStreamAPI", "JetStreamManager", "Stream", "StreamAPI"]


def _merge(config: Any, cls: type, fields: dict[str, Any]) -> Any:
    """``config`` (or an empty one) with ``fields`` applied; unknown field names are an InvalidOptionError."""
    if config is not None and not isinstance(config, cls):
        raise InvalidOptionError(f"config must be a {cls.__name__}")
    base: Any = config if config is not None else cls()
    known = {f.name for f in dataclasses.fields(base)}
    unknown = set(fields) - known
    if unknown:
        raise InvalidOptionError(f"unknown {cls.__name__} fields: {', '.join(sorted(unknown))}")
    merged: Any = dataclasses.replace(base, **fields)
    merged._extra = dict(getattr(base, "_extra", {}) or {})
    return merged


async def _paged(ctx: JetStreamContext, subject: str, key: str, payload: dict[str, Any]) -> AsyncIterator[Any]:
    """Offset paging over a JetStream list API: yields the items of ``key`` page by page."""
    offset = 0
    while True:
        data = await ctx._api(subject, {**payload, "offset": offset})
        items = data.get(key) or []
        for item in items:
            yield item
        offset += len(items)
        total = data.get("total", 0)
        if not items or offset >= total:
            return


class StreamAPI:
    def __init__(self, ctx: JetStreamContext) -> None:
        self._ctx = ctx

    async def add(self, config: StreamConfig | None = None, /, **fields: Any) -> StreamInfo:
        cfg: StreamConfig = _merge(config, StreamConfig, fields)
        name = check_name(cfg.name, "stream")
        return StreamInfo.from_dict(await self._ctx._api(f"STREAM.CREATE.{name}", cfg.to_dict()))

    async def update(self, name: str, config: StreamConfig | None = None, /, **fields: Any) -> StreamInfo:
        check_name(name, "stream")
        current = (await self.info(name)).config
        if config is not None:
            changes = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
            changes = {k: v for k, v in changes.items() if v is not None}
            current = _merge(current, StreamConfig, changes)
        cfg: StreamConfig = _merge(current, StreamConfig, fields)
        cfg = dataclasses.replace(cfg, name=name)
        cfg._extra = dict(getattr(current, "_extra", {}) or {})  # type: ignore[attr-defined]
        return StreamInfo.from_dict(await self._ctx._api(f"STREAM.UPDATE.{name}", cfg.to_dict()))

    async def info(self, name: str, *, deleted_details: bool = False, subjects_filter: str | None = None) -> StreamInfo:
        check_name(name, "stream")
        payload: dict[str, Any] = {}
        if deleted_details:
            payload["deleted_details"] = True
        if subjects_filter:
            payload["subjects_filter"] = subjects_filter
        data = await self._ctx._api(f"STREAM.INFO.{name}", payload or None)
        if subjects_filter:
            # The server pages the subjects map: ask for the rest until every matching subject is in.
            subjects: dict[str, int] = dict((data.get("state") or {}).get("subjects") or {})
            total = data.get("total", len(subjects))
            while len(subjects) < total:
                more = await self._ctx._api(f"STREAM.INFO.{name}", {**payload, "offset": len(subjects)})
                page = (more.get("state") or {}).get("subjects") or {}
                if not page:
                    break
                subjects.update(page)
            data.setdefault("state", {})["subjects"] = subjects
        return StreamInfo.from_dict(data)

    async def delete(self, name: str) -> bool:
        check_name(name, "stream")
        return bool((await self._ctx._api(f"STREAM.DELETE.{name}")).get("success"))

    async def purge(
        self, name: str, *, filter: str | None = None, seq: int | None = None, keep: int | None = None
    ) -> PurgeResponse:
        check_name(name, "stream")
        if seq is not None and keep is not None:
            raise InvalidOptionError("seq and keep are mutually exclusive")
        payload: dict[str, Any] = {}
        if filter:
            payload["filter"] = filter
        if seq is not None:
            payload["seq"] = seq
        if keep is not None:
            payload["keep"] = keep
        return PurgeResponse.from_dict(await self._ctx._api(f"STREAM.PURGE.{name}", payload or None))

    async def list(self, subject: str | None = None) -> AsyncIterator[StreamInfo]:
        payload = {"subject": subject} if subject else {}
        async for item in _paged(self._ctx, "STREAM.LIST", "streams", payload):
            yield StreamInfo.from_dict(item)

    async def names(self, subject: str | None = None) -> AsyncIterator[str]:
        payload = {"subject": subject} if subject else {}
        async for item in _paged(self._ctx, "STREAM.NAMES", "streams", payload):
            yield item

    async def find(self, subject: str) -> str:
        names = [n async for n in self.names(subject)]
        if len(names) != 1:
            raise StreamNotFoundError("no stream matches subject", description="no stream matches subject")
        return names[0]

    async def get_message(self, stream: str, seq: int | None = None, *, last_by_subj: str | None = None) -> StoredMsg:
        check_name(stream, "stream")
        if (seq is None) == (last_by_subj is None):
            raise InvalidOptionError("exactly one of seq or last_by_subj is required")
        payload = {"seq": seq} if seq is not None else {"last_by_subj": last_by_subj}
        data = (await self._ctx._api(f"STREAM.MSG.GET.{stream}", payload))["message"]
        hdrs = data.get("hdrs")
        headers = parse_header_block(base64.b64decode(hdrs)) if hdrs else None
        return StoredMsg(
            data["subject"], int(data["seq"]), base64.b64decode(data.get("data") or b""), headers, data["time"]
        )

    async def delete_message(self, stream: str, seq: int, erase: bool = True) -> bool:
        check_name(stream, "stream")
        payload = {"seq": seq, "no_erase": not erase}
        return bool((await self._ctx._api(f"STREAM.MSG.DELETE.{stream}", payload)).get("success"))

    async def get(self, name: str) -> Stream:
        info = await self.info(name)
        return Stream(self._ctx, info)

    async def _info_or_add(self, name: str, config: Callable[[], StreamConfig]) -> StreamInfo:
        """The stream's info, adding it from ``config()`` when it does not exist (the views' create-or-bind). A
        stream another client adds meanwhile is used; a stream the server refuses raises the server's reason."""
        try:
            return await self.info(name)
        except StreamNotFoundError:
            pass
        try:
            return await self.add(config())
        except NatsError as exc:
            try:
                return await self.info(name)
            except StreamNotFoundError:
                raise exc from None

    async def list_kvs(self) -> AsyncIterator[KvStatus]:
        """The status of every KV bucket (the streams named ``KV_*``)."""
        from ..kv import kv_status

        async for info in self.list():
            name = info.config.name or ""
            if name.startswith("KV_"):
                yield kv_status(name[3:], info)

    async def list_object_stores(self) -> AsyncIterator[ObjectStoreStatus]:
        """The status of every object store (the streams named ``OBJ_*``)."""
        from ..objectstore import object_store_status

        async for info in self.list():
            name = info.config.name or ""
            if name.startswith("OBJ_"):
                yield object_store_status(name[4:], info)


class ConsumerAPI:
    def __init__(self, ctx: JetStreamContext) -> None:
        self._ctx = ctx

    async def add(
        self,
        stream: str,
        config: ConsumerConfig | None = None,
        /,
        *,
        action: ConsumerApiAction = ConsumerApiAction.CREATE_OR_UPDATE,
        **fields: Any,
    ) -> ConsumerInfo:
        check_name(stream, "stream")
        cfg: ConsumerConfig = _merge(config, ConsumerConfig, fields)
        if cfg.deliver_group and (cfg.flow_control or cfg.idle_heartbeat):
            raise InvalidOptionError("jetstream idle heartbeat and flow control are not supported with deliver_group")
        name = cfg.name or cfg.durable_name
        if cfg.name and cfg.durable_name and cfg.name != cfg.durable_name:
            raise InvalidOptionError("name and durable_name must be the same when both are given")
        payload: dict[str, Any] = {"stream_name": stream, "config": cfg.to_dict()}
        if action is not ConsumerApiAction.CREATE_OR_UPDATE:
            payload["action"] = ConsumerApiAction(action).value
        if name:
            check_name(name, "consumer")
            subject = f"CONSUMER.CREATE.{stream}.{name}"
            if cfg.filter_subject and not cfg.filter_subjects:
                subject += f".{cfg.filter_subject}"
        else:
            subject = f"CONSUMER.CREATE.{stream}"
        return ConsumerInfo.from_dict(await self._ctx._api(subject, payload))

    async def update(
        self, stream: str, name: str, config: ConsumerConfig | None = None, /, **fields: Any
    ) -> ConsumerInfo:
        current = (await self.info(stream, name)).config
        if config is not None:
            changes = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
            current = _merge(current, ConsumerConfig, {k: v for k, v in changes.items() if v is not None})
        cfg: ConsumerConfig = _merge(current, ConsumerConfig, fields)
        return await self.add(stream, cfg, action=ConsumerApiAction.UPDATE)

    async def info(self, stream: str, name: str) -> ConsumerInfo:
        check_name(stream, "stream")
        check_name(name, "consumer")
        return ConsumerInfo.from_dict(await self._ctx._api(f"CONSUMER.INFO.{stream}.{name}"))

    async def delete(self, stream: str, name: str) -> bool:
        check_name(stream, "stream")
        check_name(name, "consumer")
        return bool((await self._ctx._api(f"CONSUMER.DELETE.{stream}.{name}")).get("success"))

    async def list(self, stream: str) -> AsyncIterator[ConsumerInfo]:
        check_name(stream, "stream")
        async for item in _paged(self._ctx, f"CONSUMER.LIST.{stream}", "consumers", {}):
            yield ConsumerInfo.from_dict(item)

    async def pause(self, stream: str, name: str, until: datetime) -> ConsumerPauseResponse:
        check_name(stream, "stream")
        check_name(name, "consumer")
        payload = {"pause_until": format_time(until)}
        return ConsumerPauseResponse.from_dict(await self._ctx._api(f"CONSUMER.PAUSE.{stream}.{name}", payload))

    async def resume(self, stream: str, name: str) -> ConsumerPauseResponse:
        check_name(stream, "stream")
        check_name(name, "consumer")
        return ConsumerPauseResponse.from_dict(await self._ctx._api(f"CONSUMER.PAUSE.{stream}.{name}"))


def stored_from_direct(msg: Msg, stream_hint: str) -> StoredMsg:
    """A direct-get answer (a message whose headers say where it came from) as a StoredMsg."""
    headers = msg.headers
    if headers is None:
        raise MessageNotFoundError("message not found", description="no direct get headers")
    if headers.code >= 300:
        raise MessageNotFoundError(headers.description or "message not found", description=headers.description)
    clean = Headers()
    for key, values in headers.items():
        if key in (
            "Nats-Stream",
            "Nats-Sequence",
            "Nats-Time-Stamp",
            "Nats-Subject",
            "Nats-Num-Pending",
            "Nats-Last-Sequence",
        ):
            continue
        for value in values:
            clean.append(key, value)
    return StoredMsg(
        headers.get("Nats-Subject"),
        int(headers.get("Nats-Sequence") or 0),
        msg.data,
        clean if clean else None,
        headers.get("Nats-Time-Stamp"),
        headers.get("Nats-Stream") or stream_hint,
    )


class DirectStreamAPI:
    """Direct gets: answered by any replica (the stream needs ``allow_direct``)."""

    def __init__(self, ctx: JetStreamContext) -> None:
        self._ctx = ctx

    async def get_message(
        self,
        stream: str,
        *,
        seq: int | None = None,
        last_by_subj: str | None = None,
        next_by_subj: str | None = None,
    ) -> StoredMsg:
        check_name(stream, "stream")
        if next_by_subj is not None:
            if last_by_subj is not None:
                raise InvalidOptionError("next_by_subj and last_by_subj are mutually exclusive")
            payload: dict[str, Any] = {"next_by_subj": next_by_subj, "seq": seq or 0}
        elif (seq is None) == (last_by_subj is None):
            raise InvalidOptionError("exactly one of seq, last_by_subj or next_by_subj is required")
        elif seq is not None:
            payload = {"seq": seq}
        else:
            payload = {"last_by_subj": last_by_subj}
        ctx = self._ctx
        msg = await ctx._nc.request(
            f"{ctx.api_prefix}.DIRECT.GET.{stream}",
            json.dumps(payload).encode(),
            timeout=ctx.options.timeout,
        )
        return stored_from_direct(msg, stream)

    async def get_batch(
        self,
        stream: str,
        *,
        multi_last: Sequence[str] | None = None,
        batch: int | None = None,
        max_bytes: int | None = None,
        seq: int | None = None,
        next_by_subj: str | None = None,
        up_to_seq: int | None = None,
        up_to_time: datetime | None = None,
    ) -> AsyncIterator[StoredMsg]:
        """Sends one batch request; the iterator yields the answers until the server's end-of-batch marker."""
        check_name(stream, "stream")
        payload: dict[str, Any] = {}
        if multi_last:
            payload["multi_last"] = list(multi_last)
            if batch is not None:
                payload["batch"] = batch
        else:
            if batch is None:
                raise InvalidOptionError("batch is required unless multi_last is given")
            payload["batch"] = batch
            payload["seq"] = seq or 1
            if next_by_subj:
                payload["next_by_subj"] = next_by_subj
        if max_bytes is not None:
            payload["max_bytes"] = max_bytes
        if up_to_seq is not None:
            payload["up_to_seq"] = up_to_seq
        if up_to_time is not None:
            payload["up_to_time"] = format_time(up_to_time)
        ctx = self._ctx
        nc = ctx._nc
        sub = nc._subscribe(f"{nc._opts.inbox_prefix}.{nuid.next()}", None, None)
        try:
            nc.publish(f"{ctx.api_prefix}.DIRECT.GET.{stream}", json.dumps(payload).encode(), reply=sub.subject)
        except BaseException:
            sub.unsubscribe()
            raise
        return self._batch_answers(sub, stream)

    async def _batch_answers(self, sub: Any, stream: str) -> AsyncIterator[StoredMsg]:
        try:
            while True:
                msg = await sub.next_msg(self._ctx.options.timeout)
                headers = msg.headers
                if headers is not None and headers.code in (204, 404) and not msg.data:
                    return  # 204: end of batch; 404: nothing (more) to send
                yield stored_from_direct(msg, stream)
        finally:
            sub.unsubscribe()


class Stream:
    """A stream handle (``js.streams.get(name)``)."""

    def __init__(self, ctx: JetStreamContext, info: StreamInfo) -> None:
        self._ctx = ctx
        self._info = info
        self.name: str = info.config.name or ""

    async def info(
        self, cached: bool = False, *, deleted_details: bool = False, subjects_filter: str | None = None
    ) -> StreamInfo:
        if not cached:
            self._info = await StreamAPI(self._ctx).info(
                self.name, deleted_details=deleted_details, subjects_filter=subjects_filter
            )
        return self._info

    async def alternates(self) -> list[StreamAlternate]:
        return list((await self.info()).alternates or [])

    async def best(self) -> Stream:
        alternates = await self.alternates()
        if alternates and alternates[0].name != self.name:
            return await StreamAPI(self._ctx).get(alternates[0].name)
        return self

    async def get_message(self, seq: int | None = None, *, last_by_subj: str | None = None) -> StoredMsg:
        return await StreamAPI(self._ctx).get_message(self.name, seq, last_by_subj=last_by_subj)

    async def delete_message(self, seq: int, erase: bool = True) -> bool:
        return await StreamAPI(self._ctx).delete_message(self.name, seq, erase)

    async def get_consumer(self, name: str | OrderedConsumerOptions | None = None) -> Consumer:
        """A consumer of this stream by name, or an ordered consumer (no name, or its options)."""
        from .consumer import Consumers

        return await Consumers(self._ctx).get(self.name, name)

    def get_consumer_from_info(self, info: ConsumerInfo) -> Consumer:
        from .consumer import Consumers

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
        return AccountInfo.from_dict(await self._api("INFO"))

    async def advisories(self) -> AsyncIterator[Advisory]:
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
        from .client import JetStreamClient

        return JetStreamClient(self._nc, self._options)


def _advisory_kind(type_name: str) -> AdvisoryKind | None:
    # "io.nats.jetstream.advisory.v1.consumer_action" -> "consumer_action"
    tail = type_name.rsplit(".", 1)[-1]
    try:
        return AdvisoryKind(tail)
    except ValueError:
        return None
