"""Blocking JetStream consumers: ``next()``, and ``fetch()``/``consume()`` as blocking iterators of `SyncJsMsg`.

``consume(callback=...)`` runs the callback on a worker thread of its own, fed by the same iterator.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ..jetstream.api import ConsumerInfo
from ..jetstream.consumer import Consumer, ConsumerMessages, Consumers, ConsumerStatus, OrderedConsumerOptions
from .bridge import SyncIterator
from .context import Context
from .messages import SyncJsMsg
from .runner import check_blocking_allowed
from .worker import CallbackWorker

__all__ = ["SyncConsumer", "SyncConsumerMessages", "SyncConsumers"]

_DEFAULT_BATCH = 100  # the asyncio consumers' default max_messages


class SyncConsumerMessages(SyncIterator[SyncJsMsg]):
    """The messages of a ``fetch()`` or ``consume()``: a blocking iterator of `SyncJsMsg` (or, with a callback, the
    handle to stop it). It pulls ahead of the reader as the asyncio `ConsumerMessages` does, and pauses while the
    reader is a batch behind."""

    _callback_worker: CallbackWorker[SyncJsMsg] | None = None

    @property
    def _source(self) -> ConsumerMessages:
        source = self._pump.source
        assert isinstance(source, ConsumerMessages)
        return source

    @property
    def received(self) -> int:
        """Messages received from the server so far."""
        return self._source.received

    @property
    def processed(self) -> int:
        """Messages handed on by the asyncio consumer (to this iterator's queue)."""
        return self._source.processed

    def status(self) -> SyncIterator[ConsumerStatus]:
        """The status events of these messages (missed heartbeats, a consumer gone...), as a blocking iterator that
        ends when the messages end.

        Raises:
            ConnectionClosedError: the connection is closed.
            InvalidOptionError: this thread runs an event loop.
        """
        return SyncIterator(self._pump.runner, self._source.status)

    def __iter__(self) -> SyncConsumerMessages:
        if self._callback_worker is not None:
            raise RuntimeError("messages delivered to a callback cannot be iterated")
        return self

    # -- Owned, when a callback takes the messages --------------------------------------------------------------
    async def _stop_feeding(self) -> None:
        source = self._pump.source
        if isinstance(source, ConsumerMessages):
            source.stop()  # no more pulls; what it holds still reaches the callback, then the end

    def _wait_callbacks(self, timeout: float | None) -> bool:
        return self._callback_worker is None or self._callback_worker.join(timeout)

    def _drop_callbacks(self) -> None:
        if self._callback_worker is not None:
            self._callback_worker.drop_rest()

    def _join_callbacks(self, timeout: float | None) -> None:
        if self._callback_worker is not None:
            self._callback_worker.join(timeout)


def _messages(
    ctx: Context, open_source: Callable[[], Any], window: int, callback: Callable[[SyncJsMsg], Any] | None
) -> SyncConsumerMessages:
    messages = SyncConsumerMessages(ctx.runner, open_source, ctx.wrap_js, window=window)
    if callback is not None:
        worker = messages._callback_worker = CallbackWorker(
            "cnats-sync consume",
            _take_all(messages),
            callback,
            functools.partial(_report, ctx),
            on_exit=functools.partial(ctx.disown, messages),
        )
        ctx.own(messages)
        worker.start()
    return messages


def _take_all(messages: SyncConsumerMessages) -> Any:
    """Every message, for the callback worker (the iterator itself refuses iteration once it has a callback)."""
    while True:
        try:
            yield SyncIterator.__next__(messages)
        except StopIteration:
            return
        except Exception:  # noqa: BLE001 - the end of the messages (a fatal close): the worker ends too
            return


def _report(ctx: Context, exc: BaseException, msg: SyncJsMsg) -> None:
    ctx.report_callback_error(exc, msg.subject, msg.sid)


class SyncConsumer:
    """A consumer of a stream (``js.consumers.get(stream, name)``), or an ordered consumer, read with blocking calls."""

    def __init__(self, ctx: Context, consumer: Consumer) -> None:
        self._ctx = ctx
        self._consumer = consumer

    @property
    def name(self) -> str:
        """The consumer's name (an ordered consumer: its current server consumer, "" before the first read)."""
        return self._consumer.name

    @property
    def stream(self) -> str:
        """The stream it reads."""
        return self._consumer.stream

    def __repr__(self) -> str:
        return f"<SyncConsumer {self.stream}/{self.name}>"

    def info(self, cached: bool = False) -> ConsumerInfo:
        """The consumer's info (the last one fetched with ``cached``).

        Raises:
            StreamNotFoundError: the stream does not exist (any more).
            ConsumerNotFoundError: the consumer does not exist (any more).
            ConnectionClosedError: the connection is closed (also while waiting).
            NatsTimeoutError: no answer within the JetStream timeout.
            InvalidOptionError: this thread runs an event loop.
            NatsError: any other error of the asyncio `Consumer.info`.
        """
        return self._ctx.call(self._consumer.info(cached))

    def delete(self) -> bool:
        """Delete the consumer on the server; True when the server reports success.

        Raises:
            ConsumerNotFoundError: the consumer does not exist (any more).
            ConnectionClosedError: the connection is closed (also while waiting).
            NatsTimeoutError: no answer within the JetStream timeout.
            InvalidOptionError: this thread runs an event loop.
            NatsError: any other error of the asyncio `Consumer.delete`.
        """
        return self._ctx.call(self._consumer.delete())

    def next(
        self,
        *,
        expires: float = 30.0,
        idle_heartbeat: float | None = None,
        group: str | None = None,
        min_pending: int | None = None,
        min_ack_pending: int | None = None,
        priority: int | None = None,
    ) -> SyncJsMsg | None:
        """One message, or None when none arrived before ``expires`` seconds (``idle_heartbeat`` as for ``fetch``;
        ``group``, ``min_pending``, ``min_ack_pending`` and ``priority``: the priority group options of the asyncio
        `Consumer.next`).

        Raises:
            InvalidOptionError: ``expires`` is less than 1 second, an ordered consumer is already reading, a priority
                group option is not valid, or this thread runs an event loop.
            JetStreamApiError: the server refused the pull (a priority group missing or not the consumer's).
            ConsumerNotFoundError: the consumer was deleted.
            NoRespondersError: nothing took the pull request (the consumer or its stream is gone).
            ConnectionClosedError: the connection is closed (also while waiting).
            NatsError: any other error of the asyncio `Consumer.next`.
        """
        msg = self._ctx.call(
            self._consumer.next(
                expires=expires,
                idle_heartbeat=idle_heartbeat,
                group=group,
                min_pending=min_pending,
                min_ack_pending=min_ack_pending,
                priority=priority,
            )
        )
        return self._ctx.wrap_js(msg) if msg is not None else None

    def fetch(
        self,
        *,
        max_messages: int | None = None,
        max_bytes: int | None = None,
        expires: float = 30.0,
        idle_heartbeat: float | None = None,
        group: str | None = None,
        min_pending: int | None = None,
        min_ack_pending: int | None = None,
        priority: int | None = None,
    ) -> SyncConsumerMessages:
        """At most ``max_messages`` messages (or ``max_bytes`` bytes) with one pull request, as a blocking iterator that
        ends once they arrived or ``expires`` seconds passed (priority group options as for ``next``).

        Raises:
            InvalidOptionError: both ``max_messages`` and ``max_bytes`` are given, one is not positive, ``expires`` is
                less than 1 second, an ordered consumer is already reading, a priority group option is not valid, or
                this thread runs an event loop.
            JetStreamApiError: while iterating, the server refused the pull.
            StreamNotFoundError: an ordered consumer's stream does not exist.
            ConnectionClosedError: the connection is closed.
            NatsError: any other error of the asyncio `Consumer.fetch` (while iterating: a deleted consumer, missed
                heartbeats, a fatal close).
        """
        check_blocking_allowed()

        def open_fetch() -> Any:
            return self._consumer.fetch(
                max_messages=max_messages,
                max_bytes=max_bytes,
                expires=expires,
                idle_heartbeat=idle_heartbeat,
                group=group,
                min_pending=min_pending,
                min_ack_pending=min_ack_pending,
                priority=priority,
            )

        return _messages(self._ctx, open_fetch, max_messages or _DEFAULT_BATCH, None)

    def consume(
        self,
        *,
        max_messages: int | None = None,
        max_bytes: int | None = None,
        expires: float = 30.0,
        idle_heartbeat: float | None = None,
        threshold_messages: int | None = None,
        threshold_bytes: int | None = None,
        callback: Callable[[SyncJsMsg], Any] | None = None,
        abort_on_missing_resource: bool = False,
        bind: bool = False,
        group: str | None = None,
        min_pending: int | None = None,
        min_ack_pending: int | None = None,
        priority: int | None = None,
    ) -> SyncConsumerMessages:
        """Messages as they come, pulled ahead of the reader, as a blocking iterator; with ``callback`` (a plain
        function) each is passed to it on a worker thread of its own, one at a time and in order. Runs until
        ``stop()``/``close()`` or a fatal error (priority group options as for ``next``).

        Raises:
            InvalidOptionError: both ``max_messages`` and ``max_bytes`` are given, one is not positive, ``expires`` is
                less than 1 second, an ordered consumer is given ``bind`` or is already reading, ``callback`` is not
                a plain function, a priority group option is not valid, or this thread runs an event loop.
            JetStreamApiError: while iterating, the server refused the pull.
            StreamNotFoundError: an ordered consumer's stream does not exist.
            ConnectionClosedError: the connection is closed.
            NatsError: any other error of the asyncio `Consumer.consume` (while iterating: a fatal close, or with
                ``abort_on_missing_resource`` a deleted consumer or stream).
        """
        check_blocking_allowed()
        _check_plain_callback(callback)

        def open_consume() -> Any:
            return self._consumer.consume(
                max_messages=max_messages,
                max_bytes=max_bytes,
                expires=expires,
                idle_heartbeat=idle_heartbeat,
                threshold_messages=threshold_messages,
                threshold_bytes=threshold_bytes,
                abort_on_missing_resource=abort_on_missing_resource,
                bind=bind,
                group=group,
                min_pending=min_pending,
                min_ack_pending=min_ack_pending,
                priority=priority,
            )

        return _messages(self._ctx, open_consume, max_messages or _DEFAULT_BATCH, callback)


def _check_plain_callback(callback: object) -> None:
    from ..callbacks import is_async_callable
    from ..errors import InvalidOptionError

    if callback is not None and (not callable(callback) or is_async_callable(callback)):
        raise InvalidOptionError("callback must be a plain function (cnats.sync runs it on a thread)")


class SyncConsumers:
    """``js.consumers`` of a `SyncJetStream`: the consumers to read from."""

    def __init__(self, ctx: Context, consumers: Consumers) -> None:
        self._ctx = ctx
        self._consumers = consumers

    def get(self, stream: str, name: str | OrderedConsumerOptions | None = None) -> SyncConsumer:
        """The consumer ``name`` of ``stream``, or an ordered consumer (no name, or its options).

        Raises:
            InvalidNameError: ``stream`` or ``name`` is not valid.
            InvalidOptionError: the consumer is a push consumer, or this thread runs an event loop.
            StreamNotFoundError: the stream does not exist.
            ConsumerNotFoundError: the consumer does not exist.
            ConnectionClosedError: the connection is closed (also while waiting).
            NatsTimeoutError: no answer within the JetStream timeout.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        return SyncConsumer(self._ctx, self._ctx.call(self._consumers.get(stream, name)))

    def get_pull_consumer_for(self, info: ConsumerInfo) -> SyncConsumer:
        """The pull consumer ``info`` describes, without a request.

        Raises:
            InvalidOptionError: the consumer is a push consumer.
        """
        return SyncConsumer(self._ctx, self._consumers.get_pull_consumer_for(info))
