"""TLS settings for a client connection (API.md section 1).

Only the plain options holder lives here; the code that turns it into an :class:`ssl.SSLContext` belongs to
the connection layer.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TlsOptions"]


@dataclass(kw_only=True)
class TlsOptions:
    """nats.js ``TlsOptions``: every item may be given as a file path (``*_file``) or as PEM text."""

    #: Certificate authorities to trust (PEM file path or PEM text); both ``None``: the system trust store.
    ca_file: str | None = None
    ca: str | None = None
    #: Client certificate presented for mutual TLS (PEM file path or PEM text).
    cert_file: str | None = None
    cert: str | None = None
    #: Private key of the client certificate (PEM file path or PEM text).
    key_file: str | None = None
    key: str | None = None
