"""The messages cnats.sync hands out: the asyncio API's message classes, whose replies and acknowledgements go
through the connection's thread-safe hand-off instead of touching the connection from the calling thread.

Each one is a subclass (``isinstance(msg, cnats.Msg)`` holds) filled from the message the loop received; the
acknowledgement of a JetStream message is carried out on the loop by that original message, so its "only the
first acknowledgement is sent" rule is the asyncio one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

from ..errors import InvalidOptionError
from ..headers import Headers
from ..jetstream.jsmsg import JsMsg
from ..jetstream.model import seconds_to_ns
from ..msg import Msg
from ..services.msg import ServiceMsg, error_headers
from .checks import checked_payload, checked_subject

__all__ = ["SyncJsMsg", "SyncMsg", "SyncServiceMsg", "js_msg_wrapper", "msg_wrapper", "service_msg_wrapper"]

T = TypeVar("T")
Publish = Callable[..., None]  # SyncConnection.publish: checks, then hands over
Submit = Callable[[Callable[[], object]], None]  # runs a call on the loop, in order with the publishes
Call = Callable[[Coroutine[Any, Any, Any]], Any]  # runs a coroutine on the loop and waits for it


class SyncMsg(Msg):
    """A message received through `cnats.sync`: a `Msg` whose `respond()` may be called from any thread."""

    __slots__ = ("_publish",)

    _publish: Publish

    def respond(
        self,
        data: bytes | bytearray | memoryview | str = b"",
        *,
        headers: Headers | Mapping[str, Any] | None = None,
        reply: str | None = None,
    ) -> bool:
        """Publish ``data`` to this message's reply subject, as `SyncConnection.publish` does; False (nothing sent)
        when the message has no reply subject.

        Raises:
            ConnectionClosedError: the connection is closed.
            BadSubjectError: ``reply`` is not a valid subject.
            BadPayloadError: ``data`` is not bytes, bytearray, memoryview or a UTF-8 encodable str.
            BadHeaderError: a header name or value is not valid.
            MaxPayloadExceededError: the response exceeds the server's `max_payload`.
            OutboundBufferLimitError: the outbound buffer is full (disconnected, or the socket is backed up).
        """
        target = self.reply
        if not target:
            return False
        self._publish(target, data, reply=reply, headers=headers)
        return True


def msg_wrapper(publish: Publish) -> Callable[[Msg], SyncMsg]:
    """What turns a received `Msg` into a `SyncMsg` (on the thread that takes it, not on the loop)."""
    new = SyncMsg.__new__

    def wrap(msg: Msg) -> SyncMsg:
        out = new(SyncMsg)
        out._init(msg.subject, msg.data, msg.reply, msg.headers, msg.sid, None)
        out._publish = publish
        return out

    return wrap


class SyncJsMsg(JsMsg):
    """A JetStream message received through `cnats.sync`: its acknowledgements may be sent from any thread.

    ``ack()``, ``nak()``, ``term()``, ``working()`` and ``next()`` are queued with the publishes of the calling thread
    and carried out on the connection's loop; ``ack_ack()`` blocks until the server confirms.
    """

    __slots__ = ("_call", "_orig", "_submit")

    _orig: JsMsg
    _submit: Submit
    _call: Call

    def ack(self) -> None:
        """Acknowledge the message (only the first of ``ack``/``nak``/``term``/``ack_ack`` is sent).

        Raises:
            ConnectionClosedError: the connection is closed.
            OutboundBufferLimitError: the outbound buffer is full.
        """
        self._submit(self._orig.ack)

    def nak(self, delay: float | None = None) -> None:
        """Ask for a redelivery, after ``delay`` seconds if given.

        Raises:
            InvalidOptionError: ``delay`` is not a number of seconds.
            ConnectionClosedError: the connection is closed.
            OutboundBufferLimitError: the outbound buffer is full.
        """
        if delay is not None:
            _check_seconds(delay, "delay")
        self._submit(functools.partial(self._orig.nak, delay))

    def working(self) -> None:
        """Tell the server the message is still being worked on (resets its ack timer; may be repeated).

        Raises:
            ConnectionClosedError: the connection is closed.
            OutboundBufferLimitError: the outbound buffer is full.
        """
        self._submit(self._orig.working)

    def term(self, reason: str | None = None) -> None:
        """Tell the server never to redeliver the message, with an optional ``reason``.

        Raises:
            InvalidOptionError: ``reason`` is not a str.
            ConnectionClosedError: the connection is closed.
            OutboundBufferLimitError: the outbound buffer is full.
        """
        if reason is not None and not isinstance(reason, str):
            raise InvalidOptionError(f"reason must be a str, not {type(reason).__name__}")
        self._submit(functools.partial(self._orig.term, reason))

    def next(self, subject: str, *, batch: int = 1, no_wait: bool = False, expires: float | None = None) -> None:
        """Acknowledge and ask for the next ``batch`` messages to be delivered to ``subject`` (legacy pull).

        Raises:
            BadSubjectError: ``subject`` is not a valid subject.
            InvalidOptionError: ``expires`` is not a number of seconds.
            ConnectionClosedError: the connection is closed.
            OutboundBufferLimitError: the outbound buffer is full.
        """
        checked_subject(subject)
        if expires is not None:
            _check_seconds(expires, "expires")
        self._submit(functools.partial(self._orig.next, subject, batch=batch, no_wait=no_wait, expires=expires))

    def ack_ack(self, *, timeout: float | None = None) -> bool:  # type: ignore[override]
        """Acknowledge and wait until the server confirms: True when confirmed, False if already acknowledged.

        Raises:
            NatsTimeoutError: no confirmation within ``timeout`` (by default the JetStream timeout).
            NoRespondersError: nothing took the acknowledgement (the consumer is gone).
            InvalidOptionError: ``timeout`` is not positive, or this thread runs an event loop.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
        """
        result: bool = self._call(self._orig.ack_ack(timeout=timeout))
        return result


def _check_seconds(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidOptionError(f"{what} must be a number of seconds, got {value!r}")
    seconds_to_ns(value)


def js_msg_wrapper(submit: Submit, call: Call) -> Callable[[JsMsg], SyncJsMsg]:
    """What turns a received `JsMsg` into a `SyncJsMsg`."""
    new = SyncJsMsg.__new__

    def wrap(msg: JsMsg) -> SyncJsMsg:
        out = new(SyncJsMsg)
        out._init(msg.subject, msg.data, msg.reply or None, msg.headers, msg.sid, None, 0.0)
        out._orig = msg
        out._submit = submit
        out._call = call
        return out

    return wrap


class SyncServiceMsg(ServiceMsg):
    """A request received by a `cnats.sync` service endpoint: ``respond()`` and ``respond_error()`` may be called from
    any thread (the endpoint's handler runs on a worker thread)."""

    __slots__ = ("_orig", "_publish", "_submit")

    _orig: ServiceMsg
    _publish: Publish
    _submit: Submit

    def respond(
        self,
        data: bytes | bytearray | memoryview | str = b"",
        *,
        headers: Headers | Mapping[str, Any] | None = None,
        reply: str | None = None,
    ) -> bool:
        """Publish ``data`` to the request's reply subject; False (nothing sent) when it has none.

        Raises:
            ConnectionClosedError: the connection is closed.
            BadSubjectError: ``reply`` is not a valid subject.
            BadPayloadError: ``data`` is not bytes, bytearray, memoryview or a UTF-8 encodable str.
            BadHeaderError: a header name or value is not valid.
            MaxPayloadExceededError: the response exceeds the server's `max_payload`.
            OutboundBufferLimitError: the outbound buffer is full.
        """
        target = self.reply
        if not target:
            return False
        self._publish(target, data, reply=reply, headers=headers)
        return True

    def respond_error(
        self,
        code: int,
        description: str,
        data: bytes | bytearray | memoryview | str = b"",
        *,
        headers: Headers | Mapping[str, Any] | None = None,
    ) -> bool:
        """Respond with the service error headers (``Nats-Service-Error-Code``, ``Nats-Service-Error``); the
        endpoint counts it as an error. False (nothing sent) when the request has no reply subject.

        Raises:
            InvalidOptionError: ``code`` is not an int.
            BadHeaderError: ``description`` holds CR or LF, or a header in ``headers`` is not valid.
            TypeError: ``headers`` is neither ``Headers`` nor a mapping.
            BadPayloadError: ``data`` is not bytes, bytearray, memoryview or a UTF-8 encodable str.
            ConnectionClosedError: the connection is closed.
            OutboundBufferLimitError: the outbound buffer is full.
        """
        if isinstance(code, bool) or not isinstance(code, int):
            raise InvalidOptionError(f"service error code must be an int, got {code!r}")
        error_headers(code, description, headers)  # the checks it makes, here rather than on the loop
        payload = checked_payload(data)
        self._submit(functools.partial(self._orig.respond_error, code, description, payload, headers=headers))
        return bool(self.reply)


def service_msg_wrapper(publish: Publish, submit: Submit) -> Callable[[ServiceMsg], SyncServiceMsg]:
    """What turns a request an endpoint received into a `SyncServiceMsg`."""
    new = SyncServiceMsg.__new__

    def wrap(msg: ServiceMsg) -> SyncServiceMsg:
        out = new(SyncServiceMsg)
        out._init(msg.subject, msg.data, msg.reply, msg.headers, msg.sid, None)
        out._orig = msg
        out._publish = publish
        out._submit = submit
        return out

    return wrap
