"""Test support for cnats: real ``nats-server`` processes, test certificates and a pytest plugin.

See docs/testing.md. The pytest plugin (``cnats.testing.pytest_plugin``) is registered through the
``pytest11`` entry point and provides the ``nats_server``, ``nats_cluster``, ``nats_server_factory``,
``chaos_proxy``, ``nats_supercluster`` and ``nats_leafnodes`` fixtures.
"""

from __future__ import annotations

from .certs import CertBundle, make_test_certs
from .chaos import ChaosProxy
from .server import NatsServer, ServerTls, find_server_binary
from .topology import NatsLeafnodes, NatsSupercluster

__all__ = [
    "CertBundle",
    "ChaosProxy",
    "NatsLeafnodes",
    "NatsServer",
    "NatsSupercluster",
    "ServerTls",
    "find_server_binary",
    "make_test_certs",
]
