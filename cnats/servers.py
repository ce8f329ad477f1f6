"""Server URLs and the server pool the client connects and reconnects through."""

from __future__ import annotations

import random
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .errors import InvalidOptionError

__all__ = ["DEFAULT_PORT", "ServerAddress", "ServerPool", "parse_server_url"]

DEFAULT_PORT = 4222
#: the port a URL without one gets, by scheme (WebSocket URLs take the HTTP ports)
_DEFAULT_PORTS = {"nats": DEFAULT_PORT, "tls": DEFAULT_PORT, "ws": 80, "wss": 443}


@dataclass(eq=False)
class ServerAddress:
    """One server of the pool, with the bookkeeping of the reconnect policy."""

    host: str
    port: int
    tls_required: bool = False  # tls:// or wss:// URL
    websocket: bool = False  # ws:// or wss:// URL: the protocol runs inside WebSocket frames
    path: str = "/"  # the WebSocket URL's path (and query)
    username: str | None = None  # URL userinfo (nats://user:pass@host or nats://token@host)
    password: str | None = None
    discovered: bool = False  # learned from INFO connect_urls
    failed_attempts: int = 0  # consecutive failed connects
    last_attempt: float | None = None  # loop time of the last connect attempt
    did_connect: bool = False
    last_error: BaseException | None = field(default=None, repr=False)

    @property
    def hostport(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def scheme(self) -> str:
        if self.websocket:
            return "wss" if self.tls_required else "ws"
        return "tls" if self.tls_required else "nats"

    def __repr__(self) -> str:  # never show the URL's credentials
        return f"ServerAddress({self.scheme}://{self.hostport})"


def parse_server_url(url: str, default_scheme: str = "nats") -> ServerAddress:
    """``host``, ``host:port``, ``nats://host:port``, ``tls://host:port``, ``ws://host[:port][/path]`` or
    ``wss://...`` (userinfo allowed) as an address; a bare ``host:port`` takes ``default_scheme``."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidOptionError(f"invalid server URL: {url!r}")
    text = url.strip()
    if "://" not in text:
        text = f"{default_scheme}://{text}"
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidOptionError(f"invalid server URL {_redact(url)!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidOptionError(
            f"invalid server URL {_redact(url)!r}: scheme must be nats://, tls://, ws:// or wss://"
        )
    if not parts.hostname:
        raise InvalidOptionError(f"invalid server URL {_redact(url)!r}: no host")
    websocket = scheme in ("ws", "wss")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return ServerAddress(
        host=parts.hostname,
        port=port if port is not None else _DEFAULT_PORTS[scheme],
        tls_required=scheme in ("tls", "wss"),
        websocket=websocket,
        path=path if websocket else "/",
        username=urllib.parse.unquote(parts.username) if parts.username else None,
        password=urllib.parse.unquote(parts.password) if parts.password else None,
    )


def _redact(url: str) -> str:
    """The URL with any userinfo replaced, for error messages."""
    scheme, sep, rest = url.rpartition("://")
    at = rest.rfind("@")
    if at < 0:
        return url
    return f"{scheme}{sep}***@{rest[at + 1 :]}"


class ServerPool:
    """The servers to try, in order: the given ones (shuffled unless ``no_randomize``), then discovered ones."""

    def __init__(self, urls: Sequence[str], *, randomize: bool = True) -> None:
        servers = [parse_server_url(u) for u in urls]
        kinds = {s.websocket for s in servers}
        if len(kinds) > 1:
            raise InvalidOptionError("a server pool cannot mix ws:// or wss:// servers with nats:// or tls:// ones")
        #: every server of the pool speaks WebSocket (discovered ones then do too)
        self.websocket = kinds == {True}
        if randomize:
            random.shuffle(servers)
        self._servers: list[ServerAddress] = servers
        self._randomize = randomize
        self.current: ServerAddress | None = None

    def __len__(self) -> int:
        return len(self._servers)

    def __iter__(self) -> Iterable[ServerAddress]:
        return iter(list(self._servers))

    @property
    def servers(self) -> list[ServerAddress]:
        return list(self._servers)

    def next_server(self) -> ServerAddress | None:
        """The next server to try: the pool rotates, so the one just used goes to the back."""
        if not self._servers:
            return None
        if self.current is not None and self.current in self._servers and len(self._servers) > 1:
            self._servers.remove(self.current)
            self._servers.append(self.current)
        self.current = self._servers[0]
        return self.current

    def remove(self, server: ServerAddress) -> None:
        if server in self._servers:
            self._servers.remove(server)
        if self.current is server:
            self.current = None

    def update_discovered(self, urls: Iterable[str], tls_required: bool) -> tuple[list[str], list[str]]:
        """Merge a server's ``connect_urls``; returns the added and deleted ``host:port`` entries.

        Discovered servers the cluster no longer lists are dropped (unless they are the current one); servers the
        user gave are never dropped.
        """
        seen: dict[str, ServerAddress] = {}
        # A WebSocket pool stays one: the cluster's client URLs are bare host:port, taken with the pool's scheme.
        default_scheme = ("wss" if tls_required else "ws") if self.websocket else "nats"
        for url in urls:
            try:
                addr = parse_server_url(url, default_scheme)
            except InvalidOptionError:
                continue
            if addr.websocket != self.websocket:
                continue
            addr.tls_required = addr.tls_required or tls_required
            addr.discovered = True
            seen[addr.hostport] = addr
        known = {s.hostport: s for s in self._servers}
        added = [hp for hp in seen if hp not in known]
        deleted = [
            s.hostport for s in self._servers if s.discovered and s.hostport not in seen and s is not self.current
        ]
        self._servers = [s for s in self._servers if s.hostport not in deleted]
        fresh = [seen[hp] for hp in added]
        if self._randomize:
            random.shuffle(fresh)
        self._servers.extend(fresh)
        return added, deleted
