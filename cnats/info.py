"""``ServerInfo``: the server's INFO message as a dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["ServerInfo"]


@dataclass(kw_only=True)
class ServerInfo:
    """The server's INFO (`nc.info`): identity, version, limits, and what it supports (headers, JetStream, TLS...)."""

    server_id: str
    server_name: str
    version: str
    proto: int
    go: str
    host: str
    port: int
    max_payload: int
    client_id: int
    headers: bool = False
    jetstream: bool = False
    auth_required: bool = False
    ldm: bool = False
    tls_required: bool = False
    tls_verify: bool = False
    tls_available: bool = False
    git_commit: str | None = None
    client_ip: str | None = None
    cluster: str | None = None
    connect_urls: list[str] | None = None
    nonce: str | None = None
    ip: str | None = None
    domain: str | None = None
    xkey: str | None = None
    ws_connect_urls: list[str] | None = None
    cluster_dynamic: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ServerInfo:
        """Build from the INFO JSON; unknown keys are ignored, missing required ones get neutral values.

        Raises:
            Nothing: the values are taken as they are, without type checks.
        """
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {k: v for k, v in d.items() if k in known}
        for name, default in _REQUIRED_DEFAULTS.items():
            kwargs.setdefault(name, default)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict for JSON, leaving out those that are None.

        Raises:
            Nothing: the fields are copied.
        """
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


# A server (or a test double) may leave out fields the dataclass requires; they get these values.
_REQUIRED_DEFAULTS: dict[str, Any] = {
    "server_id": "",
    "server_name": "",
    "version": "",
    "proto": 0,
    "go": "",
    "host": "",
    "port": 0,
    "max_payload": 1024 * 1024,
    "client_id": 0,
}
