"""Test support for cnats: real ``nats-server`` processes, test certificates and a pytest plugin.

See API.md section 9.1. The pytest plugin (``cnats.testing.pytest_plugin``) is registered through the
``pytest11`` entry point and provides the ``nats_server`` and ``nats_server_factory`` fixtures.
"""

from __future__ import annotations

from .certs import CertBundle, make_test_certs
from .server import NatsServer, ServerTls, find_server_binary

__all__ = ["CertBundle", "NatsServer", "ServerTls", "find_server_binary", "make_test_certs"]
