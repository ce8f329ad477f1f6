"""The options of ``connect()``, checked once up front."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidOptionError
from .tls import TlsOptions

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "Authenticator", "ConnectOptions"]

DEFAULT_HOST = "127.0.0.1"
"""The host `connect()` uses when no server is given."""
DEFAULT_PORT = 4222
"""The port of a server URL that names none (and of `connect()` without servers)."""

Authenticator = Callable[[str | None], Mapping[str, Any] | None]
"""A callable that returns the authentication fields of CONNECT (user, pass, token, jwt, nkey, sig) given the server's
nonce (None if it sent none).
"""


@dataclass(kw_only=True, repr=False)
class ConnectOptions:
    servers: list[str]
    user: str | None = None
    password: str | None = None
    token: str | None = None
    authenticators: list[Authenticator] = field(default_factory=list)
    nkey_seed: str | bytes | None = None
    user_credentials: str | os.PathLike[str] | None = None
    name: str | None = None
    timeout: float = 20.0
    reconnect: bool = True
    max_reconnect_attempts: int = 10
    reconnect_time_wait: float = 2.0
    reconnect_jitter: float = 0.1
    reconnect_jitter_tls: float = 1.0
    reconnect_delay_handler: Callable[[], float] | None = None
    wait_on_first_connect: bool = False
    ping_interval: float = 120.0
    max_ping_out: int = 2
    no_randomize: bool = False
    ignore_cluster_updates: bool = False
    ignore_auth_error_abort: bool = False
    resolve: bool = True
    no_echo: bool = False
    verbose: bool = False
    pedantic: bool = False
    inbox_prefix: str = "_INBOX"
    tls: TlsOptions | ssl.SSLContext | bool | None = None
    tls_handshake_first: bool = False
    tls_hostname: str | None = None  # the name the certificate must carry (and SNI), instead of the URL's host
    ws_headers: Mapping[str, str] | None = None  # extra HTTP headers of the WebSocket upgrade request
    pending_bytes_limit: int = 8 * 1024 * 1024
    debug: bool = False

    def __repr__(self) -> str:  # credentials never appear
        return f"ConnectOptions(servers={self.servers!r}, name={self.name!r})"

    @classmethod
    def build(cls, servers: str | Sequence[str] | None, port: int | None, **kw: Any) -> ConnectOptions:
        if port is not None:
            if servers:
                raise InvalidOptionError("port and servers options are mutually exclusive")
            _check_int("port", port, low=1, high=65535)
            urls = [f"{DEFAULT_HOST}:{port}"]
        elif servers is None or (not isinstance(servers, str) and len(servers) == 0):
            urls = [f"{DEFAULT_HOST}:{DEFAULT_PORT}"]
        elif isinstance(servers, str):
            urls = [servers]
        else:
            urls = list(servers)
            if not all(isinstance(u, str) for u in urls):
                raise InvalidOptionError("servers must be a string or a sequence of strings")
        auth = kw.pop("authenticator", None)
        if auth is None:
            authenticators: list[Authenticator] = []
        elif callable(auth):
            authenticators = [auth]
        else:
            authenticators = list(auth)
            if not all(callable(a) for a in authenticators):
                raise InvalidOptionError("authenticator must be a callable or a sequence of callables")
        opts = cls(servers=urls, authenticators=authenticators, **kw)
        opts._check()
        return opts

    def _check(self) -> None:
        _check_number("timeout", self.timeout, positive=True)
        _check_number("reconnect_time_wait", self.reconnect_time_wait)
        _check_number("reconnect_jitter", self.reconnect_jitter)
        _check_number("reconnect_jitter_tls", self.reconnect_jitter_tls)
        _check_number("ping_interval", self.ping_interval, positive=True)
        _check_int("max_ping_out", self.max_ping_out, low=1)
        _check_int("max_reconnect_attempts", self.max_reconnect_attempts, low=-1)
        _check_int("pending_bytes_limit", self.pending_bytes_limit, low=1)
        if self.tls_hostname is not None and (not isinstance(self.tls_hostname, str) or not self.tls_hostname):
            raise InvalidOptionError(f"tls_hostname must be a non-empty string, got {self.tls_hostname!r}")
        if self.reconnect_delay_handler is not None and not callable(self.reconnect_delay_handler):
            raise InvalidOptionError("reconnect_delay_handler must be callable")
        if not isinstance(self.inbox_prefix, str) or not self.inbox_prefix:
            raise InvalidOptionError("inbox_prefix must be a non-empty string")
        if any(tok in ("*", ">") for tok in self.inbox_prefix.split(".")) or any(
            c in self.inbox_prefix for c in " \t\r\n"
        ):
            raise InvalidOptionError(f"inbox_prefix cannot contain wildcards or whitespace: {self.inbox_prefix!r}")
        if self.name is not None and not isinstance(self.name, str):
            raise InvalidOptionError("name must be a string")
        for opt in ("user", "password", "token"):
            value = getattr(self, opt)
            if value is not None and not isinstance(value, str):
                raise InvalidOptionError(f"{opt} must be a string")
        if self.tls is not None and not isinstance(self.tls, (bool, TlsOptions, ssl.SSLContext)):
            raise InvalidOptionError("tls must be None, a bool, TlsOptions or an ssl.SSLContext")
        if self.ws_headers is not None:
            from .websocket import check_headers

            self.ws_headers = check_headers(self.ws_headers)


def _check_number(name: str, value: object, *, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidOptionError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if value < 0 or (positive and value == 0):
        raise InvalidOptionError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value}")


def _check_int(name: str, value: object, *, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOptionError(f"{name} must be an int, not {type(value).__name__}")
    if value < low or (high is not None and value > high):
        raise InvalidOptionError(f"{name} out of range: {value}")
