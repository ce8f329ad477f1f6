"""How commands print: messages in the default, ``--raw`` and ``--json`` formats, dataclasses as JSON lines, small
tables, and a progress line that only appears on a terminal."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from datetime import datetime
from enum import Enum
from typing import IO, Any

from ..headers import Headers
from ..msg import Msg

__all__ = [
    "Progress",
    "add_format_options",
    "format_size",
    "json_line",
    "message_dict",
    "print_message",
    "print_table",
    "to_jsonable",
    "write_bytes",
    "write_line",
]


def add_format_options(parser: argparse.ArgumentParser, *, raw: bool = True) -> None:
    """``--json`` (one object per line), and ``--raw`` (payload only) where a command prints payloads."""
    group = parser.add_mutually_exclusive_group()
    if raw:
        group.add_argument("--raw", action="store_true", help="print only the payloads")
    group.add_argument("--json", action="store_true", help="print one JSON object per line")


def write_line(text: str = "") -> None:
    # Flushed at once: streaming commands (sub, watch) are read line by line through pipes.
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def write_bytes(data: bytes) -> None:
    """Binary output (payloads, objects) goes to the byte stream under ``sys.stdout``."""
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def to_jsonable(value: Any) -> Any:
    """A value as plain JSON types: dataclasses through their ``to_dict()`` when they have one (else field by field,
    ``None`` fields omitted as ``to_dict`` does), enums as their value, timestamps as RFC 3339, bytes as UTF-8 text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, Headers):
        return value.to_dict()
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_jsonable(to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
        return {name: to_jsonable(v) for name, v in fields if v is not None}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    return str(value)


def json_line(value: Any) -> None:
    write_line(json.dumps(to_jsonable(value), separators=(",", ":"), ensure_ascii=False))


def message_dict(msg: Msg) -> dict[str, Any]:
    """The JSON form of a message (``--json``)."""
    return {
        "subject": msg.subject,
        "reply": msg.reply,
        "headers": msg.headers.to_dict() if msg.headers is not None else {},
        "data": msg.data.decode("utf-8", errors="replace"),
    }


def print_message(msg: Msg, *, number: int | None, headers: bool, raw: bool, as_json: bool) -> None:
    """One received message. Default: ``[#<n>] <subject>``, the headers (when asked and present), the payload and a
    blank line; unnumbered (a single reply), only the headers and the payload. ``raw``: the payload and a newline;
    ``as_json``: one JSON object."""
    if as_json:
        json_line(message_dict(msg))
        return
    if raw:
        write_bytes(msg.data + b"\n")
        return
    lines: list[str] = []
    if number is not None:
        lines.append(f"[#{number}] {msg.subject}" + (f" (reply: {msg.reply})" if msg.reply else ""))
    if headers and msg.headers:
        if msg.headers.code:
            lines.append(f"NATS/1.0 {msg.headers.status}")
        lines.extend(f"{key}: {value}" for key, values in msg.headers.items() for value in values)
    lines.append(msg.string())
    write_line("\n".join(lines) + ("\n" if number is not None else ""))


def print_table(header: list[str], rows: list[list[str]], indent: str = "") -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        write_line(indent + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def format_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # unreachable


class Progress:
    """A ``label: done / total (pct)`` line rewritten in place on stderr, at most ten times a second; nothing at all
    when stderr is not a terminal, so piped and scripted runs stay quiet."""

    def __init__(self, label: str, total: int | None, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = self._stream is not None and self._stream.isatty()
        self._label = label
        self._total = total
        self._done = 0
        self._shown_at = 0.0

    def advance(self, amount: int) -> None:
        self._done += amount
        if self._enabled and time.monotonic() - self._shown_at >= 0.1:
            self._show()

    def _show(self) -> None:
        self._shown_at = time.monotonic()
        text = f"{self._label}: {format_size(self._done)}"
        if self._total:
            text += f" / {format_size(self._total)} ({100 * self._done // self._total}%)"
        self._stream.write("\r" + text + "\x1b[K")
        self._stream.flush()

    def finish(self) -> None:
        if self._enabled:
            self._show()
            self._stream.write("\n")
            self._stream.flush()
