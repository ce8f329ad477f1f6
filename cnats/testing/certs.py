"""A throw-away test PKI, made at run time.

The certificates are minted by ``trustme`` every time they are needed, so no private key ever ships in the
package and nothing expires on a shelf. ``trustme`` comes with the ``testing`` extra; it is imported inside
:func:`make_test_certs` so that ``import cnats.testing`` works without it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CertBundle", "make_test_certs"]

#: Names the server certificate is valid for: whatever a loopback test may dial.
SERVER_IDENTITIES = ("localhost", "127.0.0.1", "::1")
#: Subject of the client certificate (used for mutual TLS).
CLIENT_IDENTITY = "cnats-test-client"


@dataclass(frozen=True)
class CertBundle:
    """Paths of the PEM files written by :func:`make_test_certs`."""

    ca_file: str
    server_cert_file: str
    server_key_file: str
    client_cert_file: str
    client_key_file: str


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    # Private keys are created 0600 from the start rather than chmod-ed after the fact.
    mode = 0o600 if private else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def make_test_certs(directory: str | os.PathLike[str]) -> CertBundle:
    """Create a fresh CA, a server certificate and a client certificate in ``directory``.

    The server certificate has the SANs ``localhost``, ``127.0.0.1`` and ``::1``. The client certificate is
    signed by the same CA, so a server that trusts ``ca_file`` and verifies clients accepts it. The directory
    is created if needed; existing files of the same names are replaced. Requires ``trustme``
    (``pip install cnats[testing]``).

    Raises:
        ImportError: ``trustme`` is not installed.
        OSError: the directory or a file cannot be created or written.
    """
    try:
        import trustme
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "make_test_certs() needs the 'trustme' package: pip install trustme (or cnats[testing])"
        ) from exc

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="cnats test CA")
    server = ca.issue_cert(*SERVER_IDENTITIES, common_name="localhost")
    client = ca.issue_cert(CLIENT_IDENTITY, common_name=CLIENT_IDENTITY)

    bundle = CertBundle(
        ca_file=str(out / "ca.pem"),
        server_cert_file=str(out / "server-cert.pem"),
        server_key_file=str(out / "server-key.pem"),
        client_cert_file=str(out / "client-cert.pem"),
        client_key_file=str(out / "client-key.pem"),
    )
    _write(Path(bundle.ca_file), ca.cert_pem.bytes())
    _write(Path(bundle.server_cert_file), b"".join(b.bytes() for b in server.cert_chain_pems))
    _write(Path(bundle.server_key_file), server.private_key_pem.bytes(), private=True)
    _write(Path(bundle.client_cert_file), b"".join(b.bytes() for b in client.cert_chain_pems))
    _write(Path(bundle.client_key_file), client.private_key_pem.bytes(), private=True)
    return bundle
