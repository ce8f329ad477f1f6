"""Chooses the protocol core once, at import: the compiled one when it is built and allowed, else the twin.

``CNATS_NO_EXTENSIONS`` set to anything but "" or "0" forces the pure-Python twin; so does a missing extension
(no compiler at install time) or an interpreter other than CPython. ``USES_CYTHON`` says which one is in use.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING

from . import _protocol_py


def _extensions_disabled() -> bool:
    return os.environ.get("CNATS_NO_EXTENSIONS", "") not in ("", "0")


def _load() -> tuple[ModuleType, bool]:
    if not _extensions_disabled():
        try:
            from . import _protocol
        except ImportError:
            pass
        else:
            return _protocol, True
    return _protocol_py, False


USES_CYTHON: bool
"""True when the compiled (Cython) protocol core is in use, False when the pure-Python twin is."""

core, USES_CYTHON = _load()

if TYPE_CHECKING:  # both cores share one interface (_protocol.pyi); type-check against the twin's
    from ._protocol import (
        AckWindow,
        HandOff,
        JsMsgBase,
        KvEntryBase,
        KvWatchBase,
        MessageQueue,
        MessagesBase,
        MsgBase,
        OrderedCursor,
        Parser,
        PubAckReader,
        PublisherBase,
        PullerBase,
        ReplyMux,
        SubscriptionBase,
        WriteBuffer,
        hide_owned,
        retrack,
        reveal,
        untrack_while_live,
    )
else:
    AckWindow = core.AckWindow
    HandOff = core.HandOff
    JsMsgBase = core.JsMsgBase
    KvEntryBase = core.KvEntryBase
    KvWatchBase = core.KvWatchBase
    MessageQueue = core.MessageQueue
    MessagesBase = core.MessagesBase
    OrderedCursor = core.OrderedCursor
    PullerBase = core.PullerBase
    MsgBase = core.MsgBase
    Parser = core.Parser
    PubAckReader = core.PubAckReader
    PublisherBase = core.PublisherBase
    ReplyMux = core.ReplyMux
    SubscriptionBase = core.SubscriptionBase
    WriteBuffer = core.WriteBuffer
    hide_owned = core.hide_owned
    retrack = core.retrack
    reveal = core.reveal
    untrack_while_live = core.untrack_while_live
DEFAULT_MAX_PAYLOAD: int = core.DEFAULT_MAX_PAYLOAD
DEFAULT_MAX_CONTROL_LINE: int = core.DEFAULT_MAX_CONTROL_LINE

__all__ = [
    "DEFAULT_MAX_CONTROL_LINE",
    "DEFAULT_MAX_PAYLOAD",
    "USES_CYTHON",
    "AckWindow",
    "HandOff",
    "JsMsgBase",
    "KvEntryBase",
    "KvWatchBase",
    "MessageQueue",
    "MessagesBase",
    "MsgBase",
    "OrderedCursor",
    "Parser",
    "PubAckReader",
    "PublisherBase",
    "PullerBase",
    "ReplyMux",
    "SubscriptionBase",
    "WriteBuffer",
    "core",
    "hide_owned",
    "retrack",
    "reveal",
    "untrack_while_live",
]
