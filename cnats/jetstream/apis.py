"""The JetStream API requests for streams and consumers (``StreamAPI``, ``ConsumerAPI``, ``DirectStreamAPI``).

The bottom of the JetStream package: it builds on the context (the connection's port and the API request) and the
API types only, so that the consumers, the manager and the client above it all import it at module level.
``cnats.jetstream.manager`` re-exports these names (the manager's ``StreamAPI`` adds ``get`` and the listings of
Key-Value buckets and object stores).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import functools
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from ..errors import (
    InvalidOptionError,
    JetStreamApiError,
    MessageNotFoundError,
    NatsError,
    NoRespondersError,
    ServerOptionNotAvailableError,
    StreamNotFoundError,
    SubscriptionClosedError,
)
from ..headers import Headers, parse_header_block
from ..msg import Msg
from .api import (
    ConsumerApiAction,
    ConsumerConfig,
    ConsumerInfo,
    ConsumerPauseResponse,
    PurgeResponse,
    StoredMsg,
    StreamConfig,
    StreamInfo,
)
from .context import JetStreamContext, check_name, not_enabled
from .model import format_time

if TYPE_CHECKING:
    from ..subscription import Subscription

__all__ = ["ConsumerAPI", "DirectStreamAPI", "StreamAPI", "check_group", "stored_from_direct"]

_GROUP_NAME = re.compile(r"[A-Za-z0-9/_=-]{1,16}")


def check_group(group: object) -> str:
    """A priority group name: 1 to 16 of ``A-Z a-z 0-9 - _ / =`` (``InvalidOptionError`` otherwise)."""
    if not isinstance(group, str) or _GROUP_NAME.fullmatch(group) is None:
        raise InvalidOptionError(
            f"invalid priority group {group!r}: 1 to 16 characters of A-Z, a-z, 0-9, '-', '_', '/' and '='"
        )
    return group


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
    """Stream administration (``jsm.streams``; the manager's subclass adds ``get`` and the view listings)."""

    def __init__(self, ctx: JetStreamContext) -> None:
        self._ctx = ctx

    async def add(self, config: StreamConfig | None = None, /, **fields: Any) -> StreamInfo:
        """Create a stream from ``config`` and/or ``fields`` (``StreamConfig`` field names); its info.

        Raises:
            InvalidOptionError: ``config`` is not a ``StreamConfig``, or ``fields`` names a field it does not have.
            InvalidNameError: the stream name is missing or not valid.
            JetStreamApiError: the server refused the stream (one of that name exists with another configuration, a
                subject overlaps another stream's, a limit is exceeded...).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        cfg: StreamConfig = _merge(config, StreamConfig, fields)
        name = check_name(cfg.name, "stream")
        return StreamInfo.from_dict(await self._ctx._api(f"STREAM.CREATE.{name}", cfg.to_dict()))

    async def update(self, name: str, config: StreamConfig | None = None, /, **fields: Any) -> StreamInfo:
        """Change a stream: ``config`` (its fields that are not None) and ``fields`` are applied to its current
        configuration.

        Raises:
            InvalidNameError: ``name`` is not a valid stream name.
            InvalidOptionError: ``config`` or ``fields`` name a field ``StreamConfig`` does not have.
            StreamNotFoundError: the stream does not exist.
            JetStreamApiError: the server refused the change (a setting that cannot be changed, a limit...).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
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
        """The stream's configuration and state; with ``subjects_filter``, also its matching subjects (every page).

        Raises:
            InvalidNameError: ``name`` is not a valid stream name.
            StreamNotFoundError: the stream does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
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
        """Delete a stream with all its messages and consumers; True when the server reports success.

        Raises:
            InvalidNameError: ``name`` is not a valid stream name.
            StreamNotFoundError: the stream does not exist.
            JetStreamApiError: the server refused (the stream is a sealed or otherwise protected one...).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        check_name(name, "stream")
        return bool((await self._ctx._api(f"STREAM.DELETE.{name}")).get("success"))

    async def purge(
        self, name: str, *, filter: str | None = None, seq: int | None = None, keep: int | None = None
    ) -> PurgeResponse:
        """Remove messages from a stream: all, those on ``filter``, those below ``seq``, or all but the last ``keep``.

        Raises:
            InvalidNameError: ``name`` is not a valid stream name.
            InvalidOptionError: both ``seq`` and ``keep`` are given.
            StreamNotFoundError: the stream does not exist.
            JetStreamApiError: the server refused (the stream denies purges, or is sealed).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
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
        """The info of every stream (or of those listening on ``subject``), fetched page by page as the iteration goes.

        Raises:
            JetStreamApiError: the server refused the listing (raised while iterating, as are the errors below).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        payload = {"subject": subject} if subject else {}
        async for item in _paged(self._ctx, "STREAM.LIST", "streams", payload):
            yield StreamInfo.from_dict(item)

    async def names(self, subject: str | None = None) -> AsyncIterator[str]:
        """The names of every stream (or of those listening on ``subject``), fetched page by page as the iteration goes.

        Raises:
            JetStreamApiError: the server refused the listing (raised while iterating, as are the errors below).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        payload = {"subject": subject} if subject else {}
        async for item in _paged(self._ctx, "STREAM.NAMES", "streams", payload):
            yield item

    async def find(self, subject: str) -> str:
        """The name of the one stream that listens on ``subject``.

        Raises:
            StreamNotFoundError: no stream listens on ``subject``, or more than one does.
            JetStreamApiError: the server refused the listing.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        names = [n async for n in self.names(subject)]
        if len(names) != 1:
            raise StreamNotFoundError("no stream matches subject", description="no stream matches subject")
        return names[0]

    async def get_message(self, stream: str, seq: int | None = None, *, last_by_subj: str | None = None) -> StoredMsg:
        """A stored message, by sequence or as the last one on a subject (exactly one of ``seq`` and ``last_by_subj``).

        Raises:
            InvalidNameError: ``stream`` is not a valid stream name.
            InvalidOptionError: neither or both of ``seq`` and ``last_by_subj`` are given.
            StreamNotFoundError: the stream does not exist.
            MessageNotFoundError: there is no such message.
            BadHeaderError: the stored headers cannot be parsed.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
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
        """Delete one message; with ``erase`` its data is overwritten too. True when the server reports success.

        Raises:
            InvalidNameError: ``stream`` is not a valid stream name.
            StreamNotFoundError: the stream does not exist.
            JetStreamApiError: the server could not delete it (no such message, or the stream denies deletes).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        check_name(stream, "stream")
        payload = {"seq": seq, "no_erase": not erase}
        return bool((await self._ctx._api(f"STREAM.MSG.DELETE.{stream}", payload)).get("success"))

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


class ConsumerAPI:
    """Consumer administration (`jsm.consumers`): add, update, inspect, list, pause and delete consumers."""

    def __init__(self, ctx: JetStreamContext) -> None:
        self._ctx = ctx

    def _create_request(
        self, stream: str, config: ConsumerConfig | None, action: ConsumerApiAction, fields: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """The subject and payload of a consumer create/update (validated)."""
        check_name(stream, "stream")
        cfg: ConsumerConfig = _merge(config, ConsumerConfig, fields)
        if cfg.deliver_group and (cfg.flow_control or cfg.idle_heartbeat):
            raise InvalidOptionError("jetstream idle heartbeat and flow control are not supported with deliver_group")
        name = cfg.name or cfg.durable_name
        if cfg.name and cfg.durable_name and cfg.name != cfg.durable_name:
            raise InvalidOptionError("name and durable_name must be the same when both are given")
        for group in cfg.priority_groups or ():
            check_group(group)
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
        return subject, payload

    async def add(
        self,
        stream: str,
        config: ConsumerConfig | None = None,
        /,
        *,
        action: ConsumerApiAction = ConsumerApiAction.CREATE_OR_UPDATE,
        **fields: Any,
    ) -> ConsumerInfo:
        """Create (or with ``action``, only create or only update) a consumer of ``stream`` from ``config`` and/or
        ``fields`` (``ConsumerConfig`` field names); its info. A consumer without a name is ephemeral.

        Raises:
            InvalidNameError: ``stream``, or the consumer's ``name`` or ``durable_name``, is not valid.
            InvalidOptionError: ``config`` is not a ``ConsumerConfig``, ``fields`` names a field it does not have,
                ``name`` and ``durable_name`` differ, ``deliver_group`` is combined with flow control or idle
                heartbeats, or a priority group name is not valid (1 to 16 of ``A-Z a-z 0-9 - _ / =``).
            ValueError: ``action`` is not a ``ConsumerApiAction`` value.
            StreamNotFoundError: the stream does not exist.
            ServerOptionNotAvailableError: the server does not know the ``priority_policy`` given (one newer than
                the server).
            JetStreamApiError: the server refused the consumer (it exists with another configuration and ``action`` is
                CREATE, it does not exist and ``action`` is UPDATE, the configuration is not valid...).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        subject, payload = self._create_request(stream, config, action, fields)
        try:
            return ConsumerInfo.from_dict(await self._ctx._api(subject, payload))
        except JetStreamApiError as exc:
            _check_unknown_option(exc)
            raise

    async def add_owned(self, stream: str, config: ConsumerConfig) -> ConsumerInfo:
        """``add`` on behalf of an owner that may stop meanwhile (an ordered consumer's recreation, a fetch or consume
        being set up). When the caller is cancelled while the request is in flight (its owner stopped), the answer
        is still awaited in the background and a consumer the server created anyway is deleted, best-effort.
        After the connection closed nothing can be deleted: an ephemeral consumer then ends by its inactive
        threshold.

        Raises:
            InvalidNameError: ``stream``, or the consumer's ``name`` or ``durable_name``, is not valid.
            InvalidOptionError: ``config`` is not a ``ConsumerConfig``, ``name`` and ``durable_name`` differ,
                ``deliver_group`` is combined with flow control or idle heartbeats, or a priority group name is not
                valid.
            StreamNotFoundError: the stream does not exist.
            ServerOptionNotAvailableError: the server does not know the ``priority_policy`` given.
            JetStreamApiError: the server refused the consumer.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        subject, payload = self._create_request(stream, config, ConsumerApiAction.CREATE_OR_UPDATE, {})
        # the shared inbox's own future (not a task): tracked, so a user close() waits for its answer to clean up
        future = cast("asyncio.Future[Msg]", self._ctx._api_future(subject, payload))
        self._ctx.port.scope.track(future)
        try:
            msg = await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(functools.partial(self._delete_orphan, stream))
            raise
        except NoRespondersError:
            raise not_enabled() from None
        try:
            return ConsumerInfo.from_dict(self._ctx._api_answer(msg))
        except JetStreamApiError as exc:
            _check_unknown_option(exc)
            raise

    def _delete_orphan(self, stream: str, future: asyncio.Future[Msg]) -> None:
        """The answer of an ``add_owned`` whose caller gave up: delete what it created."""
        if future.cancelled() or future.exception() is not None:
            return
        try:
            name = self._ctx._api_answer(future.result()).get("name")
        except Exception:  # noqa: BLE001 - an error answer: nothing was created
            return
        if name:
            self.delete_later(stream, name)

    def delete_later(self, stream: str, name: str) -> None:
        """Delete a consumer in the background, best-effort (nothing is started on a closed connection).

        Raises:
            Nothing: the deletion runs as a task, and its errors are dropped.
        """
        self._ctx.port.scope.spawn(self._delete_quietly(stream, name), f"delete consumer {stream}/{name}")

    async def _delete_quietly(self, stream: str, name: str) -> None:
        with contextlib.suppress(NatsError):
            await self.delete(stream, name)

    async def update(
        self, stream: str, name: str, config: ConsumerConfig | None = None, /, **fields: Any
    ) -> ConsumerInfo:
        """Change a consumer: ``config`` (its fields that are not None) and ``fields`` are applied to its current
        configuration, sent as an update (the consumer must exist).

        Raises:
            InvalidNameError: ``stream`` or ``name`` is not valid.
            InvalidOptionError: ``config`` or ``fields`` name a field ``ConsumerConfig`` does not have, or the result
                is not a valid combination (see ``add``).
            StreamNotFoundError: the stream does not exist.
            ConsumerNotFoundError: the consumer does not exist.
            ServerOptionNotAvailableError: the server does not know the ``priority_policy`` given.
            JetStreamApiError: the server refused the change (a setting that cannot be changed...).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        current = (await self.info(stream, name)).config
        if config is not None:
            changes = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
            current = _merge(current, ConsumerConfig, {k: v for k, v in changes.items() if v is not None})
        cfg: ConsumerConfig = _merge(current, ConsumerConfig, fields)
        return await self.add(stream, cfg, action=ConsumerApiAction.UPDATE)

    async def info(self, stream: str, name: str) -> ConsumerInfo:
        """The consumer's configuration and state.

        Raises:
            InvalidNameError: ``stream`` or ``name`` is not valid.
            StreamNotFoundError: the stream does not exist.
            ConsumerNotFoundError: the consumer does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        check_name(stream, "stream")
        check_name(name, "consumer")
        return ConsumerInfo.from_dict(await self._ctx._api(f"CONSUMER.INFO.{stream}.{name}"))

    async def reset(self, stream: str, name: str, seq: int | None = None) -> ConsumerInfo:
        """Move the consumer back (or on): its next delivery is stream sequence ``seq``, or with None the message
        after its ack floor (server 2.14+); its info afterwards.

        Raises:
            InvalidNameError: ``stream`` or ``name`` is not valid.
            InvalidOptionError: ``seq`` is not a positive integer.
            StreamNotFoundError: the stream does not exist.
            ConsumerNotFoundError: the consumer does not exist.
            JetStreamApiError: the server refused the reset.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout (a server before 2.14, or one that does not
                answer for a consumer it does not have).
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        check_name(stream, "stream")
        check_name(name, "consumer")
        if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 1):
            raise InvalidOptionError(f"seq must be a positive stream sequence, got {seq!r}")
        payload = {"seq": seq} if seq is not None else None
        return ConsumerInfo.from_dict(await self._ctx._api(f"CONSUMER.RESET.{stream}.{name}", payload))

    async def delete(self, stream: str, name: str) -> bool:
        """Delete a consumer; True when the server reports success.

        Raises:
            InvalidNameError: ``stream`` or ``name`` is not valid.
            StreamNotFoundError: the stream does not exist.
            ConsumerNotFoundError: the consumer does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        check_name(stream, "stream")
        check_name(name, "consumer")
        return bool((await self._ctx._api(f"CONSUMER.DELETE.{stream}.{name}")).get("success"))

    async def list(self, stream: str) -> AsyncIterator[ConsumerInfo]:
        """The info of every consumer of ``stream``, fetched page by page as the iteration goes.

        Raises:
            InvalidNameError: ``stream`` is not valid (raised by the first step of the iteration, as are the errors
                below).
            StreamNotFoundError: the stream does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        check_name(stream, "stream")
        async for item in _paged(self._ctx, f"CONSUMER.LIST.{stream}", "consumers", {}):
            yield ConsumerInfo.from_dict(item)

    async def pause(self, stream: str, name: str, until: datetime) -> ConsumerPauseResponse:
        """Pause a consumer until ``until`` (a timezone-aware datetime): it delivers nothing before then.

        Raises:
            InvalidNameError: ``stream`` or ``name`` is not valid.
            ValueError: ``until`` has no timezone.
            StreamNotFoundError: the stream does not exist.
            ConsumerNotFoundError: the consumer does not exist.
            JetStreamApiError: the server refused (it does not support pausing...).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        check_name(stream, "stream")
        check_name(name, "consumer")
        payload = {"pause_until": format_time(until)}
        return ConsumerPauseResponse.from_dict(await self._ctx._api(f"CONSUMER.PAUSE.{stream}.{name}", payload))

    async def resume(self, stream: str, name: str) -> ConsumerPauseResponse:
        """Resume a paused consumer at once.

        Raises:
            InvalidNameError: ``stream`` or ``name`` is not valid.
            StreamNotFoundError: the stream does not exist.
            ConsumerNotFoundError: the consumer does not exist.
            JetStreamApiError: the server refused (it does not support pausing...).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        check_name(stream, "stream")
        check_name(name, "consumer")
        return ConsumerPauseResponse.from_dict(await self._ctx._api(f"CONSUMER.PAUSE.{stream}.{name}"))

    async def unpin(self, stream: str, consumer: str, group: str) -> None:
        """Unpin the client pinned in ``group`` of a ``pinned_client`` consumer (server 2.11+): the server pins
        another waiting pull (or the same client's next pull) and refuses the old pin id from now on.

        Raises:
            InvalidNameError: ``stream`` or ``consumer`` is not valid.
            InvalidOptionError: ``group`` is not a valid priority group name.
            StreamNotFoundError: the stream does not exist.
            ConsumerNotFoundError: the consumer does not exist.
            JetStreamApiError: the server refused (``group`` is not one of the consumer's priority groups: status
                400, err_code 10160).
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout (a server before 2.11 does not answer).
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        check_name(stream, "stream")
        check_name(consumer, "consumer")
        check_group(group)
        await self._ctx._api(f"CONSUMER.UNPIN.{stream}.{consumer}", {"group": group})


def _check_unknown_option(exc: JetStreamApiError) -> None:
    """A consumer create refused because the server does not know a value it was given (a priority policy newer
    than the server) raises ``ServerOptionNotAvailableError`` (the server's error as its cause); any other refusal
    is left to the caller."""
    if exc.err_code == 10025 and "unknown priority policy" in exc.description:
        raise ServerOptionNotAvailableError(f"the server does not support this option: {exc.description}") from exc


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
    num_pending = headers.get("Nats-Num-Pending")  # only the answers of a batch carry these two
    last_sequence = headers.get("Nats-Last-Sequence")
    return StoredMsg(
        headers.get("Nats-Subject"),
        int(headers.get("Nats-Sequence") or 0),
        msg.data,
        clean if clean else None,
        headers.get("Nats-Time-Stamp"),
        headers.get("Nats-Stream") or stream_hint,
        num_pending=int(num_pending) if num_pending else None,
        last_sequence=int(last_sequence) if last_sequence else None,
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
        """A stored message read by a direct get: by ``seq``, as the last on ``last_by_subj``, or as the first on
        ``next_by_subj`` at or after ``seq``.

        Raises:
            InvalidNameError: ``stream`` is not a valid stream name.
            InvalidOptionError: not exactly one of ``seq`` and ``last_by_subj`` is given (without ``next_by_subj``), or
                ``next_by_subj`` is combined with ``last_by_subj``.
            MessageNotFoundError: there is no such message (the server answered with an error status).
            NoRespondersError: nothing answers: the stream does not exist or does not allow direct gets.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: no answer within the JetStream timeout.
        """
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
        msg = await ctx.port.request_future(
            f"{ctx.api_prefix}.DIRECT.GET.{stream}", json.dumps(payload).encode(), None, ctx.options.timeout
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
        """Sends one batch request; the iterator yields the answers until the server's end-of-batch marker.

        ``multi_last`` asks for the last message of each of those subjects (at or after ``seq`` when given, at or
        before ``up_to_seq``); otherwise ``batch`` messages from ``seq`` (on ``next_by_subj`` if given). Each answer
        says how many matching messages follow it (``StoredMsg.num_pending``) and which sequence came before it
        (``StoredMsg.last_sequence``): a batch cut by ``batch`` or ``max_bytes`` goes on with a request from the
        last sequence + 1 (and, for ``multi_last``, the same ``up_to_seq``). The iteration ends quietly if the
        connection closes.

        Raises:
            InvalidNameError: ``stream`` is not a valid stream name.
            InvalidOptionError: ``batch`` is missing without ``multi_last``.
            ValueError: ``up_to_time`` has no timezone.
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining.
            NatsTimeoutError: while iterating, no next answer within the JetStream timeout.
            MessageNotFoundError: while iterating, the server answered with an error status (a stream that does not
                allow direct gets included).
        """
        check_name(stream, "stream")
        payload: dict[str, Any] = {}
        if multi_last:
            payload["multi_last"] = list(multi_last)
            if batch is not None:
                payload["batch"] = batch
            if seq is not None:
                payload["seq"] = seq  # the lower bound of a next page
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
        port = ctx.port
        sub = port.subscribe(port.new_inbox(), None, None)
        try:
            ctx._nc.publish(f"{ctx.api_prefix}.DIRECT.GET.{stream}", json.dumps(payload).encode(), reply=sub.subject)
        except BaseException:
            sub.unsubscribe()
            raise
        return self._batch_answers(sub, stream)

    async def _batch_answers(self, sub: Subscription, stream: str) -> AsyncIterator[StoredMsg]:
        try:
            while True:
                try:
                    msg = await sub.next_msg(self._ctx.options.timeout)
                except SubscriptionClosedError:
                    return  # the connection closed (a fatal close raises its error instead)
                headers = msg.headers
                if headers is not None and headers.code in (204, 404) and not msg.data:
                    return  # 204: end of batch; 404: nothing (more) to send
                yield stored_from_direct(msg, stream)
        finally:
            sub.unsubscribe()
