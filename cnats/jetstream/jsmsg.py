"""``JsMsg``: a message delivered by a JetStream consumer, with its delivery info and acknowledgements (5.6)."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from ..errors import BadJsonError, NatsTimeoutError
from ..msg import Msg
from ..protocol import JsMsgBase
from .model import seconds_to_ns

__all__ = ["DeliveryInfo", "JsMsg", "parse_delivery_info"]

_ACK = b"+ACK"
_NAK = b"-NAK"
_TERM = b"+TERM"


class DeliveryInfo(NamedTuple):
    """Where a delivery stands, from its ``$JS.ACK`` reply subject. Immutable; a tuple because it is built for every
    message a consumer receives, and a tuple is the cheapest immutable record Python builds."""

    domain: str
    account_hash: str | None
    stream: str
    consumer: str
    delivery_count: int
    redelivery_count: int
    stream_sequence: int
    delivery_sequence: int
    timestamp_nanos: int
    pending: int
    redelivered: bool


_new_delivery_info = tuple.__new__  # positional, skipping NamedTuple's keyword-handling __new__


def parse_delivery_info(reply: str) -> DeliveryInfo:
    """Parse a ``$JS.ACK`` reply subject, in its original 9-token form or the 12-token form with domain and
    account hash (``_`` as the domain means none).

    Raises:
        InvalidOptionError: ``reply`` is not a JetStream reply subject.
    """
    msg = JsMsg.__new__(JsMsg)
    msg._init("", b"", reply, None, 0, None, 0.0)
    return msg.info


class JsMsg(JsMsgBase):
    """A message from a consumer. ``ack``/``nak``/``term`` are sent once: later calls are silent no-ops.

    Its fields (``subject``, ``data``, ``headers``, ``sid``), ``ack()`` and ``working()`` live in the protocol core
    (compiled when it is): a consumer builds one per message without a Python frame, and an ack is encoded straight
    into the write buffer.
    """

    __slots__ = ()

    def __init__(self, msg: Msg, nc: Any, js_timeout: float = 5.0) -> None:
        self._init(msg.subject, msg.data, msg.reply, msg.headers, msg.sid, nc, js_timeout)

    @property
    def info(self) -> DeliveryInfo:
        """Where the delivery stands, from the reply subject (parsed once).

        Raises:
            InvalidOptionError: the message has no JetStream reply subject.
        """
        info: DeliveryInfo | None = self._info
        if info is None:
            domain, account, stream, consumer, count, sseq, cseq, ts, pending = self._delivery()
            info = self._info = _new_delivery_info(
                DeliveryInfo, (domain, account, stream, consumer, count, count, sseq, cseq, ts, pending, count > 1)
            )
        return info

    def nak(self, delay: float | None = None) -> None:
        """Ask for the message to be redelivered, after ``delay`` seconds if given (once; later calls do nothing).

        Raises:
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining (publishing has stopped).
            OutboundBufferLimitError: the outbound buffer is full.
        """
        if delay is None:
            self._send(_NAK)
        else:
            self._send(_NAK + b" " + json.dumps({"delay": seconds_to_ns(delay)}).encode())

    def term(self, reason: str | None = None) -> None:
        """Tell the server never to redeliver the message, with an optional ``reason`` (once; later calls do nothing).

        Raises:
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining (publishing has stopped).
            OutboundBufferLimitError: the outbound buffer is full.
        """
        self._send(_TERM + (b" " + reason.encode() if reason else b""))

    async def ack_ack(self, *, timeout: float | None = None) -> bool:
        """Acknowledge and wait for the server to confirm it: True when confirmed, False if already acked.

        The message counts as acknowledged from this call on, confirmed or not.

        Raises:
            NatsTimeoutError: no confirmation within ``timeout`` (by default the JetStream timeout).
            NoRespondersError: nothing took the acknowledgement (the consumer is gone).
            InvalidOptionError: ``timeout`` is not positive.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
        """
        if self._acked or not self._reply:
            return False
        self._acked = True
        wait = timeout if timeout is not None else self._js_timeout
        try:
            await self._nc.request(self._reply, _ACK, timeout=wait)
        except NatsTimeoutError:
            raise NatsTimeoutError("no acknowledgement confirmation from the server") from None
        return True

    def next(self, subject: str, *, batch: int = 1, no_wait: bool = False, expires: float | None = None) -> None:
        """Ack and ask for the next ``batch`` messages to be delivered to ``subject`` (legacy pull).

        Raises:
            BadSubjectError: ``subject`` is not a valid subject.
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining (publishing has stopped).
            OutboundBufferLimitError: the outbound buffer is full.
        """
        if self._acked or not self._reply:
            return
        request: dict[str, Any] = {"batch": batch}
        if no_wait:
            request["no_wait"] = True
        if expires is not None:
            request["expires"] = seconds_to_ns(expires)
        self._nc.publish(self._reply, b"+NXT " + json.dumps(request).encode(), reply=subject)
        self._acked = True  # only once it is buffered: a refused one may be tried again

    def json(self, **loads_kwargs: Any) -> Any:
        """The data parsed as JSON; ``loads_kwargs`` are passed to ``json.loads``.

        Raises:
            BadJsonError: the data is not valid JSON (or not in a JSON encoding); the original error is ``__cause__``.
            TypeError: ``loads_kwargs`` holds an argument ``json.loads`` does not take.
        """
        try:
            return json.loads(self.data, **loads_kwargs)
        except ValueError as exc:
            raise BadJsonError(f"message data is not valid JSON: {exc}") from exc

    def string(self) -> str:
        """The data decoded as UTF-8, invalid bytes replaced by U+FFFD.

        Raises:
            Nothing: every byte sequence decodes.
        """
        return self.data.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return f"<JsMsg subject={self.subject!r} reply={self.reply!r} data={self.data[:64]!r}>"
