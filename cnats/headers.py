"""NATS message headers: ``Headers``, ``Match``, ``headers()`` and the header-block parser.

On the wire a header block is ``NATS/1.0[ <code>[ <description>]]\\r\\n``, then ``Key: value\\r\\n`` lines,
then a final ``\\r\\n``. The compiled protocol core builds and reads ``Headers`` objects through their three
slots (``_code``, ``_description``, ``_map``) and implements :func:`parse_header_block` in C with the same
rules, so every method here must rely on those three attributes only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from enum import IntEnum

from cnats.errors import BadHeaderError, InvalidOptionError

__all__ = ["Headers", "Match", "canonical_mime_header_key", "headers", "parse_header_block"]

_HEADER = "NATS/1.0"
_HEADER_LEN = len(_HEADER)
_CRLF = "\r\n"
_BLANKS = " \t"  # the only whitespace the wire grammar strips (as the C parser does)


class Match(IntEnum):
    """How a header key given to a lookup or update is compared with the stored keys."""

    EXACT = 0  # case-sensitive, stored as given
    CANONICAL_MIME = 1  # key canonicalised ("content-type" -> "Content-Type") before storing and matching
    IGNORE_CASE = 2  # case-insensitive lookups; append reuses the first case-insensitive match


def canonical_mime_header_key(key: str) -> str:
    """Canonical MIME form of ``key``: first letter and letters after ``-`` upper-cased, the rest lower-cased.

    Keys holding any character outside ``[A-Za-z0-9-]`` are returned unchanged (as Go's textproto does for
    keys it cannot canonicalise), so the function never fails.

    Raises:
        Nothing: a key that cannot be canonicalised is returned as it is.
    """
    # isalnum() of an ASCII string is exactly [A-Za-z0-9]
    if not key.isascii() or not key.replace("-", "").isalnum():
        return key
    return "-".join([part[:1].upper() + part[1:].lower() for part in key.split("-")])


def _check_key(key: str) -> None:
    # printable ASCII 33..126 without ':' - anything else would corrupt the wire line
    if not (isinstance(key, str) and key and key.isascii() and key.isprintable() and " " not in key and ":" not in key):
        raise BadHeaderError(f"invalid header key: {key!r}")


def _clean_value(value: str) -> str:
    if not isinstance(value, str):
        raise BadHeaderError(f"header values must be str, not {type(value).__name__}")
    if "\r" in value or "\n" in value:
        raise BadHeaderError(f"invalid header value (contains CR or LF): {value!r}")
    return value.strip()


def _check_status(code: int, description: str) -> str:
    """Validate a status code/description pair for the constructors; returns the stripped description."""
    if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 999:
        raise InvalidOptionError(f"header status code must be an int in 0..999, got {code!r}")
    if not isinstance(description, str):
        raise InvalidOptionError("header status description must be a str")
    if "\r" in description or "\n" in description:
        raise BadHeaderError(f"invalid header status description (contains CR or LF): {description!r}")
    # stripped because the wire grammar strips it too: otherwise encode/decode would not round-trip
    description = description.strip(_BLANKS)
    if description and not code:
        # "NATS/1.0 <description>" could not be parsed back (the status must start with the code)
        raise InvalidOptionError("a header status description requires a status code")
    return description


class Headers:
    """Multi-valued, insertion-ordered message headers plus the optional status of the ``NATS/1.0`` line."""

    __slots__ = ("_code", "_description", "_map")

    _code: int
    _description: str
    _map: dict[str, list[str]]  # key as stored -> non-empty list of values

    def __init__(self, code: int = 0, description: str = "") -> None:
        self._description = _check_status(code, description)
        self._code = code
        self._map = {}

    # -- status ----------------------------------------------------------------------------------------

    @property
    def code(self) -> int:
        """Status code of the ``NATS/1.0`` line; 0 when there is none."""
        return self._code

    @property
    def description(self) -> str:
        """Status description of the ``NATS/1.0`` line; "" when there is none."""
        return self._description

    @property
    def status(self) -> str:
        """``f"{code} {description}".strip()``, e.g. ``"503"`` or ``"100 Idle Heartbeat"``."""
        return f"{self._code} {self._description}".strip()

    @property
    def has_error(self) -> bool:
        """True when the status code is 300 or more."""
        return self._code >= 300

    # -- lookups ---------------------------------------------------------------------------------------

    def _find_keys(self, key: str, match: Match) -> list[str]:
        """The stored keys that ``key`` designates under ``match`` (several only with IGNORE_CASE)."""
        if match == Match.EXACT:
            return [key] if key in self._map else []
        if match == Match.CANONICAL_MIME:
            key = canonical_mime_header_key(key)
            return [key] if key in self._map else []
        if match == Match.IGNORE_CASE:
            lowered = key.lower()
            return [k for k in self._map if k.lower() == lowered]
        raise InvalidOptionError(f"unknown header match mode: {match!r}")

    def get(self, key: str, match: Match = Match.EXACT) -> str:
        """First value of the first matching key; "" if absent.

        Raises:
            InvalidOptionError: ``match`` is not a ``Match`` member.
        """
        if match == Match.EXACT:  # hot path: one dict lookup
            values = self._map.get(key)
            return values[0] if values else ""
        found = self._find_keys(key, match)
        return self._map[found[0]][0] if found else ""

    def last(self, key: str, match: Match = Match.EXACT) -> str:
        """Last value of the first matching key; "" if absent.

        Raises:
            InvalidOptionError: ``match`` is not a ``Match`` member.
        """
        if match == Match.EXACT:
            values = self._map.get(key)
            return values[-1] if values else ""
        found = self._find_keys(key, match)
        return self._map[found[0]][-1] if found else ""

    def values(self, key: str, match: Match = Match.EXACT) -> list[str]:
        """All values of all matching keys (a new list); [] if absent.

        Raises:
            InvalidOptionError: ``match`` is not a ``Match`` member.
        """
        result: list[str] = []
        for k in self._find_keys(key, match):
            result.extend(self._map[k])
        return result

    def has(self, key: str, match: Match = Match.EXACT) -> bool:
        """True if some stored key matches ``key``.

        Raises:
            InvalidOptionError: ``match`` is not a ``Match`` member.
        """
        if match == Match.EXACT:
            return key in self._map
        return bool(self._find_keys(key, match))

    # -- updates ---------------------------------------------------------------------------------------

    def set(self, key: str, value: str, match: Match = Match.EXACT) -> None:
        """Replace every matching key by ``key`` with the single value ``value``.

        Raises:
            BadHeaderError: ``key`` is not a valid header name (empty, non-ASCII, with a space, a colon or a control
                character), or ``value`` is not a str or holds CR or LF. The headers are left unchanged.
            InvalidOptionError: ``match`` is not a ``Match`` member.
        """
        # validate first so that a rejected set leaves the headers untouched
        _check_key(key)
        value = _clean_value(value)
        self.delete(key, match)
        self._append(key, value, match)

    def append(self, key: str, value: str, match: Match = Match.EXACT) -> None:
        """Add ``value`` to the values of ``key`` (see ``Match`` for which stored key receives it).

        Raises:
            BadHeaderError: ``key`` is not a valid header name (empty, non-ASCII, with a space, a colon or a control
                character), or ``value`` is not a str or holds CR or LF.
            InvalidOptionError: ``match`` is not a ``Match`` member.
        """
        _check_key(key)
        self._append(key, _clean_value(value), match)

    def _append(self, key: str, value: str, match: Match) -> None:
        if match == Match.CANONICAL_MIME:
            key = canonical_mime_header_key(key)
        elif match == Match.IGNORE_CASE:
            found = self._find_keys(key, match)
            if found:
                key = found[0]
        elif match != Match.EXACT:
            raise InvalidOptionError(f"unknown header match mode: {match!r}")
        values = self._map.get(key)
        if values is None:
            self._map[key] = [value]
        else:
            values.append(value)

    def delete(self, key: str, match: Match = Match.EXACT) -> None:
        """Remove every matching key with all its values; no-op if absent.

        Raises:
            InvalidOptionError: ``match`` is not a ``Match`` member.
        """
        for k in self._find_keys(key, match):
            del self._map[k]

    # -- container protocol ----------------------------------------------------------------------------

    def keys(self) -> list[str]:
        """The stored keys, in insertion order.

        Raises:
            Nothing: it copies the keys.
        """
        return list(self._map)

    def items(self) -> Iterator[tuple[str, list[str]]]:
        """``(key, values)`` pairs in insertion order; the lists are copies.

        Raises:
            Nothing: it iterates over a snapshot, so changing the headers meanwhile is safe.
        """
        for key, values in list(self._map.items()):
            yield key, list(values)

    def __iter__(self) -> Iterator[str]:
        # iterate a snapshot so that deleting while iterating is safe
        return iter(list(self._map))

    def __len__(self) -> int:
        return len(self._map)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._map

    def __bool__(self) -> bool:
        return bool(self._map) or self._code != 0

    def __eq__(self, other: object) -> bool:
        # as nats.js MsgHdrsImpl.equals: the description and the order of values do not take part
        if not isinstance(other, Headers):
            return NotImplemented
        if self._code != other._code or self._map.keys() != other._map.keys():
            return False
        for key, values in self._map.items():
            theirs = other._map[key]
            if values != theirs and (len(values) != len(theirs) or sorted(values) != sorted(theirs)):
                return False
        return True

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        parts = []
        if self._code:
            parts.append(f"code={self._code}")
        if self._description:
            parts.append(f"description={self._description!r}")
        parts.append(repr(self._map))
        return f"Headers({', '.join(parts)})"

    # -- wire format -----------------------------------------------------------------------------------

    def encode(self) -> bytes:
        """The wire header block; ``b""`` when there are no keys and no status code.

        Raises:
            Nothing: keys and values were validated when they were added.
        """
        code = self._code
        if not self._map and not code:
            return b""
        status = _HEADER
        if code:
            status += f" {code}"
        if self._description:
            status += " " + self._description
        lines = [status]
        for key, values in self._map.items():
            prefix = key + ": "
            lines.extend([prefix + value for value in values])
        lines.append(_CRLF)  # with the join below this yields the final empty line
        return _CRLF.join(lines).encode()

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> Headers:
        """Parse a wire header block (see :func:`parse_header_block`).

        Raises:
            BadHeaderError: the block is not valid UTF-8, does not start with ``NATS/1.0`` or end with an empty
                line, has a malformed status or a line without a key and colon.
        """
        return parse_header_block(data)

    def to_dict(self) -> dict[str, list[str]]:
        """A copy of the headers as ``{key: [values]}`` in insertion order (the status is not included).

        Raises:
            Nothing: it copies the stored values.
        """
        return {key: list(values) for key, values in self._map.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, str | Sequence[str]]) -> Headers:
        """Headers holding ``d`` (keys validated as by ``append``); a value is a str or a sequence of str.

        Raises:
            BadHeaderError: a key is not a valid header name, or a value is neither a str nor a sequence of str
                (bytes are refused), or holds CR or LF.
        """
        h = cls()
        for key, value in d.items():
            if isinstance(value, str):
                h.append(key, value)
            elif isinstance(value, (bytes, bytearray, memoryview)) or not isinstance(value, Sequence):
                # bytes are a Sequence too, but of ints: reject them explicitly
                raise BadHeaderError(f"header {key!r}: value must be a str or a sequence of str")
            else:
                for v in value:
                    h.append(key, v)
        return h


def headers(code: int = 0, description: str = "") -> Headers:
    """New empty headers, optionally with a status (nats.js rule: both code and description, or neither).

    Raises:
        InvalidOptionError: only one of ``code`` and ``description`` is given, ``code`` is not an int in 0..999, or
            ``description`` is not a str.
        BadHeaderError: ``description`` holds CR or LF.
    """
    if (code == 0) != (description == ""):
        raise InvalidOptionError("setting status requires both code and description")
    return Headers(code, description)


def parse_header_block(data: bytes | bytearray | memoryview) -> Headers:
    """Parse a complete header block (``NATS/1.0...\\r\\n\\r\\n``) into ``Headers``.

    Keys are kept exactly as received, values stripped of surrounding spaces/tabs; repeated keys accumulate.
    Raises ``BadHeaderError`` saying what is wrong. The C core implements the same rules; keep them in step.
    """
    try:
        # one strict decode of the whole block: CR and LF never occur inside a multi-byte sequence
        text = data.tobytes().decode() if isinstance(data, memoryview) else data.decode()
    except UnicodeDecodeError as err:
        raise BadHeaderError(f"header block is not valid UTF-8: {err}") from None
    if not text.startswith(_HEADER):
        raise BadHeaderError("header block does not start with NATS/1.0")
    if not text.endswith("\r\n\r\n"):
        raise BadHeaderError("header block does not end with an empty line")
    # Cutting the final CRLF CRLF and splitting once equals scanning lines up to the first empty one: a CRLF
    # cannot straddle the cut (the kept text would have to end with CR and the cut part start with LF).
    lines = text[:-4].split(_CRLF)

    h = Headers.__new__(Headers)
    status = lines[0]
    if len(status) == _HEADER_LEN:
        h._code = 0
        h._description = ""
    else:
        _parse_status(h, status)

    hmap: dict[str, list[str]] = {}
    h._map = hmap
    for line in lines[1:]:
        key, colon, value = line.partition(":")
        if not colon:
            if not line:
                raise BadHeaderError("unexpected data after the end of the header block")
            raise BadHeaderError(f"malformed header line (no ':'): {line!r}")
        key = key.strip(_BLANKS)
        if not key:
            raise BadHeaderError(f"malformed header line (empty key): {line!r}")
        value = value.strip(_BLANKS)
        values = hmap.get(key)
        if values is None:
            hmap[key] = [value]
        else:
            values.append(value)
    return h


def _parse_status(h: Headers, status: str) -> None:
    """Set ``h._code``/``h._description`` from a status line longer than ``NATS/1.0``."""
    rest = status[_HEADER_LEN:]
    if rest[0] not in _BLANKS:
        raise BadHeaderError(f"malformed header status line: {status!r}")
    rest = rest.strip(_BLANKS)
    # the code token runs up to the first space or tab
    end = len(rest)
    space = rest.find(" ")
    if space >= 0:
        end = space
    tab = rest.find("\t", 0, end)
    if tab >= 0:
        end = tab
    token = rest[:end]
    if not rest:
        h._code = 0
    elif len(token) <= 3 and token.isascii() and token.isdigit():
        h._code = int(token)
    else:
        raise BadHeaderError(f"malformed header status code: {token!r}")
    h._description = rest[end:].strip(_BLANKS)
