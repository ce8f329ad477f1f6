"""TLS settings for a client connection.

Only the plain options holder lives here; the code that turns it into an :class:`ssl.SSLContext` belongs to
the connection layer.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["TlsOptions", "client_ssl_context"]


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
    #: False: accept any server certificate and name (Node's ``rejectUnauthorized``; for tests, never production).
    reject_unauthorized: bool = True


def client_ssl_context(tls: TlsOptions | ssl.SSLContext | bool | None) -> ssl.SSLContext:
    """The SSL context a client uses: the given one, or a default context with the ``TlsOptions`` applied.

    PEM text (``ca``, ``cert``, ``key``) is loaded without touching the disk for the CA; a client certificate
    given as text goes through a private temporary file (the ``ssl`` module only loads those from files), removed
    right after loading.
    """
    if isinstance(tls, ssl.SSLContext):
        return tls
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if not isinstance(tls, TlsOptions):
        return ctx
    if tls.ca_file or tls.ca:
        ctx.load_verify_locations(cafile=tls.ca_file, cadata=tls.ca)
    if not tls.reject_unauthorized:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.cert_file or tls.cert:
        with _pem_file(tls.cert_file, tls.cert) as certfile, _pem_file(tls.key_file, tls.key) as keyfile:
            assert certfile is not None  # given as a file or as text, checked above
            ctx.load_cert_chain(certfile, keyfile)
    return ctx


@contextlib.contextmanager
def _pem_file(path: str | None, text: str | None) -> Iterator[str | None]:
    if path is not None or text is None:
        yield path
        return
    fd, name = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        yield name
    finally:
        os.unlink(name)
