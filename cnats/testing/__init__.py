"""Test support for cnats: real ``nats-server`` processes, test certificates and a pytest plugin.

See docs/testing.md. The pytest plugin (``cnats.testing.pytest_plugin``) is registered through the
``pytest11`` entry point and provides the ``nats_server``, ``nats_cluster``, ``nats_server_factory`` and
``chaos_proxy`` fixtures.
"""

from __future__ import annotations

from .certs import CertBundle, make_test_certs
from .chaos import ChaosProxy
from .server import NatsServer, ServerTls, find_server_binary

__all__ = ["CertBundle", "ChaosProxy", "NatsServer", "ServerTls", "find_server_binary", "make_test_certs"]
