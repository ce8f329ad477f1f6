"""cnats: the fast asyncio NATS client (a Cython protocol core under a nats.js-style API)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from ._version import __version__
from .auth import (
    creds_authenticator,
    jwt_authenticator,
    nkey_authenticator,
    token_authenticator,
    user_password_authenticator,
)
from .codecs import Codec, JSONCodec, StringCodec
from .connection import NatsConnection, connect
from .errors import *  # noqa: F403 - the error classes are part of the top-level API
from .errors import __all__ as _errors_all
from .events import DebugEvents, Events, PermissionContext, ServersChanged, Stats, Status
from .headers import Headers, Match, canonical_mime_header_key, headers
from .info import ServerInfo
from .msg import Msg
from .nuid import Nuid, create_inbox, nuid
from .options import DEFAULT_HOST, DEFAULT_PORT, Authenticator
from .protocol import USES_CYTHON
from .request import RequestStrategy
from .subscription import PendingPolicy, Subscription
from .tls import TlsOptions

Payload = bytes | bytearray | memoryview | str
"""What a message body may be given as: bytes-like, or `str` (encoded as UTF-8)."""
HeadersLike = Headers | Mapping[str, str | Sequence[str]]
"""What headers may be given as: `Headers`, or a mapping of names to a value or a sequence of values."""


def __getattr__(name: str) -> Any:
    """JetStream, Key-Value, object-store and service names are importable from here too, loaded on
    first use."""
    if not name.startswith("_") and name not in ("jetstream", "services"):
        for module_name in ("cnats.jetstream", "cnats.services"):
            module = importlib.import_module(module_name)
            if name in module.__all__:
                return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    *_errors_all,
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "USES_CYTHON",
    "Authenticator",
    "Codec",
    "DebugEvents",
    "Events",
    "Headers",
    "HeadersLike",
    "JSONCodec",
    "Match",
    "Msg",
    "NatsConnection",
    "Nuid",
    "Payload",
    "PendingPolicy",
    "PermissionContext",
    "RequestStrategy",
    "ServerInfo",
    "ServersChanged",
    "Stats",
    "Status",
    "StringCodec",
    "Subscription",
    "TlsOptions",
    "__version__",
    "canonical_mime_header_key",
    "connect",
    "create_inbox",
    "creds_authenticator",
    "jwt_authenticator",
    "nkey_authenticator",
    "token_authenticator",
    "user_password_authenticator",
    "headers",
    "nuid",
]
