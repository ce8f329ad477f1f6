"""Distributed counters (server 2.12+): on a stream made with ``allow_msg_counter``, each subject holds a number. An
add is a publish with the ``Nats-Incr`` header (``+5``, ``-2``) and no payload; the server sums and answers with
the new value, and the subject's last message holds it as ``{"val":"3"}``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..errors import InvalidOptionError, JetStreamInvalidAckError, MessageNotFoundError
from .apis import StreamAPI
from .context import check_name

if TYPE_CHECKING:
    from .client import JetStreamClient

__all__ = ["Counters"]

_INCREMENT = "Nats-Incr"


class Counters:
    """``js.views.counters(stream)``: the counters of one stream, by subject (no I/O until used)."""

    def __init__(self, js: JetStreamClient, stream: str) -> None:
        self._js = js
        self.stream = check_name(stream, "stream")

    async def add(self, subject: str, delta: int) -> int:
        """Add ``delta`` (negative to subtract) to the counter of ``subject``; its value after the add.

        Raises:
            InvalidOptionError: ``delta`` is not an integer.
            NoRespondersError: no stream listens on ``subject``.
            JetStreamApiError: the stream refused the add (it is not a counter stream, say).
            JetStreamInvalidAckError: the acknowledgement carries no counter value.
            NatsTimeoutError: no acknowledgement within the JetStream timeout.
            BadSubjectError: ``subject`` is not valid.
            ConnectionClosedError: the connection is closed.
            ConnectionDrainingError: the connection is draining (publishing has stopped).
        """
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise InvalidOptionError(f"a counter's delta must be an integer, got {delta!r}")
        ack = await self._js.publish(subject, b"", headers={_INCREMENT: f"{delta:+d}"})
        if ack.val is None:
            raise JetStreamInvalidAckError(f"the acknowledgement of an add to {subject!r} carries no counter value")
        return int(ack.val)

    async def get(self, subject: str) -> int | None:
        """The counter of ``subject``; None when it was never added to.

        Raises:
            StreamNotFoundError: the stream does not exist.
            JetStreamInvalidAckError: the subject's last message holds no counter value.
            NatsTimeoutError: no answer within the JetStream timeout.
            ConnectionClosedError: the connection is closed (also while waiting).
            ConnectionDrainingError: the connection is draining.
            JetStreamNotEnabledError: JetStream is not enabled for the account, or nothing answers the API.
        """
        try:
            stored = await StreamAPI(self._js).get_message(self.stream, last_by_subj=subject)
        except MessageNotFoundError:
            return None
        try:
            return int(json.loads(stored.data)["val"])
        except (ValueError, KeyError, TypeError):
            raise JetStreamInvalidAckError(f"the last message of {subject!r} holds no counter value") from None
