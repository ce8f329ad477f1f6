"""``ObjectStore.watch``: the infos of a store's meta entries as they change, read with an ordered consumer."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ..kv import OrderedRead, OrderedView
from .model import ObjectInfo, decode_info

if TYPE_CHECKING:
    from ..jetstream.jsmsg import JsMsg

__all__ = ["ObjectWatcher", "info_from_jsmsg"]


def info_from_jsmsg(msg: JsMsg) -> ObjectInfo:
    delivery = msg.info
    stored = datetime.fromtimestamp(delivery.timestamp_nanos / 1e9, tz=timezone.utc)
    return decode_info(msg.data, delivery.stream_sequence, stored)


class ObjectWatcher(OrderedView):
    """An async iterator of ``ObjectInfo`` with one ``None`` once the initial state is delivered.

    ``stop()`` (or ``await aclose()``, or leaving ``async with``) ends it: what it holds is handed out, then the
    iterator ends, and its server consumer is deleted. Leaving an ``async for`` by ``break`` or an exception and
    dropping the watcher does the same once it is collected; closing the connection ends it too."""

    def __init__(self, read: OrderedRead, *, initial: bool, ignore_deletes: bool) -> None:
        self._read = read
        self._messages = read.messages
        self._ignore_deletes = ignore_deletes
        self._marker_due = not initial  # no initial state to wait for: the None marker comes first
        self._initial = initial
        read.watch_over()

    def __aiter__(self) -> ObjectWatcher:
        return self

    async def __anext__(self) -> ObjectInfo | None:
        while True:
            if self._marker_due:
                self._marker_due = False
                return None
            try:
                msg = await self._messages.__anext__()
            except Exception:  # StopAsyncIteration included
                self._read.stop()  # over (stopped, or failed): the server consumer goes too
                raise
            info = info_from_jsmsg(msg)
            if self._initial and msg.info.pending == 0:
                self._initial = False
                self._marker_due = True  # after this entry (yielded or skipped), the initial state is complete
            if self._ignore_deletes and info.deleted:
                continue
            return info

    async def __aenter__(self) -> ObjectWatcher:
        return self
