"""Shared helpers of the protocol conformance suite (imported by the test modules)."""

from __future__ import annotations

import asyncio
import importlib
from types import ModuleType
from typing import Any

CORES = ["cython", "python"]


def load_core(name: str) -> ModuleType:
    return importlib.import_module("cnats._protocol" if name == "cython" else "cnats._protocol_py")


class Recorder:
    """A parser handler and message sink that writes every event into one list, comparable across cores."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_info(self, info: dict[str, Any]) -> None:
        self.events.append(("info", info))

    def on_ping(self) -> None:
        self.events.append(("ping",))

    def on_pong(self) -> None:
        self.events.append(("pong",))

    def on_ok(self) -> None:
        self.events.append(("ok",))

    def on_err(self, text: str) -> None:
        self.events.append(("err", text))

    def on_msg(self, msg: Any) -> None:
        hdrs = msg.headers
        shown = None if hdrs is None else (hdrs.code, hdrs.description, hdrs.to_dict())
        self.events.append(("msg", msg.sid, msg.subject, msg.reply, msg.data, shown))


def make_parser(core: ModuleType, sids: tuple[int, ...] = (1, 2, 3), **kwargs: Any) -> tuple[Any, Recorder]:
    rec = Recorder()
    parser = core.Parser(rec, **kwargs)
    for sid in sids:
        parser.subs[sid] = rec.on_msg
    return parser, rec


def run(core: ModuleType, chunks: list[bytes], **kwargs: Any) -> tuple[list[tuple[Any, ...]], str | None]:
    """Feed the chunks in order; the events seen and the ProtocolError message (None when there was none)."""
    from cnats.errors import ProtocolError

    parser, rec = make_parser(core, **kwargs)
    try:
        for chunk in chunks:
            parser.feed(chunk)
    except ProtocolError as exc:
        return rec.events, str(exc)
    return rec.events, None


def publisher(core: ModuleType, loop: asyncio.AbstractEventLoop) -> Any:
    """A PublisherBase with the fields NatsConnection keeps, and no socket: frames stay in its write buffer."""

    class Publisher(core.PublisherBase):  # type: ignore[name-defined,misc]
        def _raise_closed_or_draining(self) -> None:
            raise RuntimeError("closed")

        def _to_headers(self, headers: Any) -> Any:
            return headers

    pub = Publisher()
    pub._wb = core.WriteBuffer()
    pub._pub_open = True
    pub._headers_ok = True
    pub._flush_scheduled = False
    pub._call_soon = loop.call_soon
    pub._transport = None
    pub._write_paused = False
    pub._debug = False
    return pub
