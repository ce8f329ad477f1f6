"""``ObjectStore.watch``: the infos of a store's meta entries as they change, read with an ordered consumer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..jetstream.consumer import ConsumerMessages
from .model import ObjectInfo, decode_info

if TYPE_CHECKING:
    from ..jetstream.jsmsg import JsMsg

__all__ = ["ObjectWatcher", "info_from_jsmsg"]


def info_from_jsmsg(msg: JsMsg) -> ObjectInfo:
    from datetime import datetime, timezone

    delivery = msg.info
    stored = datetime.fromtimestamp(delivery.timestamp_nanos / 1e9, tz=timezone.utc)
    return decode_info(msg.data, delivery.stream_sequence, stored)


class ObjectWatcher:
    """An async iterator of ``ObjectInfo`` with one ``None`` once the initial state is delivered; ``stop()`` or
    leaving ``async with`` ends it."""

    def __init__(self, messages: ConsumerMessages, *, initial: bool, ignore_deletes: bool) -> None:
        self._messages = messages
        self._ignore_deletes = ignore_deletes
        self._marker_due = not initial  # no initial state to wait for: the None marker comes first
        self._initial = initial

    def __aiter__(self) -> ObjectWatcher:
        return self

    async def __anext__(self) -> ObjectInfo | None:
        while True:
            if self._marker_due:
                self._marker_due = False
                return None
            msg = await self._messages.__anext__()
            info = info_from_jsmsg(msg)
            if self._initial and msg.info.pending == 0:
                self._initial = False
                self._marker_due = True  # after this entry (yielded or skipped), the initial state is complete
            if self._ignore_deletes and info.deleted:
                continue
            return info

    def stop(self) -> None:
        self._messages.stop()

    async def __aenter__(self) -> ObjectWatcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
