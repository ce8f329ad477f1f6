"""cnats: the fast asyncio NATS client (a Cython protocol core under a nats.js-style API)."""

from __future__ import annotations

from .errors import *  # noqa: F403 - the error classes are part of the top-level API
from .errors import __all__ as _errors_all
from .headers import Headers, Match, canonical_mime_header_key, headers
from .msg import Msg
from .protocol import USES_CYTHON

__version__ = "0.1.0.dev0"

__all__ = [
    *_errors_all,
    "USES_CYTHON",
    "Headers",
    "Match",
    "Msg",
    "__version__",
    "canonical_mime_header_key",
    "headers",
]
