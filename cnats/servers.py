"""Server URLs and the server pool the client connects and reconnects through."""

from __future__ import annotations

import random
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .errors import InvalidOptionError

__all__ = ["DEFAULT_PORT", "ServerAddress", "ServerPool", "parse_server_url"]

DEFAULT_PORT = 4222
_SCHEMES = {"nats", "tls"}


@dataclass(eq=False)
class ServerAddress:
    """One server of the pool, with the bookkeeping of the reconnect policy."""

    host: str
    port: int
    tls_required: bool = False  # tls:// URL
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

    def __repr__(self) -> str:  # never show the URL's credentials
        return f"ServerAddress({self.hostport!r}, tls_required={self.tls_required})"


def parse_server_url(url: str) -> ServerAddress:
    """``host``, ``host:port``, ``nats://host:port`` or ``tls://host:port`` (userinfo allowed) as an address."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidOptionError(f"invalid server URL: {url!r}")
    text = url.strip()
    if "://" not in text:
        text = "nats://" + text
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidOptionError(f"invalid server URL {_redact(url)!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise InvalidOptionError(f"invalid server URL {_redact(url)!r}: scheme must be nats:// or tls://")
    if not parts.hostname:
        raise InvalidOptionError(f"invalid server URL {_redact(url)!r}: no host")
    return ServerAddress(
        host=parts.hostname,
        port=port if port is not None else DEFAULT_PORT,
        tls_required=scheme == "tls",
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
        for url in urls:
            try:
                addr = parse_server_url(url)
            except InvalidOptionError:
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
