"""NATS topologies beyond one cluster, for tests: a supercluster (clusters joined by gateways) and a hub with a
leaf node (two JetStream domains joined by a leafnode connection).

Each cluster (or single server) of a topology is a :class:`NatsServer`: it picks its ports, writes its configs,
runs and stops its processes and polls its nodes as any NatsServer does. The topology adds the gateway or leafnode
blocks to the configs, launches every node before waiting for any, and decides when the whole is ready, so that a
part's own ``start()`` or ``restart(i)`` waits for the whole topology as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .server import (
    _PORT_ATTEMPTS,
    NatsServer,
    _await_ready,
    _formation_problems,
    _hostport,
    _meta_problems,
    _Node,
    _PortTaken,
    _quote,
    _raw_api_call,
)

__all__ = ["NatsLeafnodes", "NatsSupercluster"]

#: Default startup timeout of a topology: a supercluster's meta group spans every node, and its leader is only
#: elected once the gateways are up (seconds on an idle machine, much more on a loaded one).
_TOPOLOGY_STARTUP_TIMEOUT = 45.0
_NAME = re.compile(r"^[-A-Za-z0-9_]+$")


class _Part(NatsServer):
    """One cluster (or server) of a topology: node names unique across the topology (JetStream needs that), the
    topology's listeners and config blocks, and the topology's idea of "ready"."""

    def __init__(
        self,
        topology: _Topology,
        *,
        name: str,
        nodes: int,
        jetstream: bool,
        domain: str | None,
        listeners: tuple[str, ...],
        config: str | None,
        binary: str | None,
        startup_timeout: float,
    ) -> None:
        # set before NatsServer.__init__, which picks the ports and writes the configs
        self._cluster_name = name
        self._jetstream_domain = domain
        self._listeners = listeners
        self._topology = weakref.ref(topology)  # the topology owns its parts, not the other way round
        super().__init__(
            jetstream=jetstream, cluster=nodes, config=config, binary=binary, startup_timeout=startup_timeout
        )

    def _node_names(self, count: int) -> list[str]:
        return [f"{self._cluster_name}-n{i + 1}" for i in range(count)]

    def _node_label(self, node: _Node) -> str:
        return node.name

    def _extra_config(self, node: _Node) -> list[str]:
        topology = self._topology()
        return topology._config_for(self, node) if topology is not None else []

    def _settled_problems(self, timeout: float) -> list[str]:
        topology = self._topology()
        return topology._problems(timeout) if topology is not None else super()._settled_problems(timeout)

    def _meta_leader_expected(self) -> bool:
        topology = self._topology()
        return topology._meta_leader_expected(self) if topology is not None else super()._meta_leader_expected()

    def _running(self) -> list[_Node]:
        return [n for n in self._nodes if n.alive()]

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<NatsServer {self._cluster_name}: {', '.join(self.urls)} {state}>"


_T = TypeVar("_T", bound="_Topology")


class _Topology:
    """What the topologies share: starting every part's nodes together, stopping them, the context managers."""

    _kind = "topology"

    def __init__(self, startup_timeout: float | None) -> None:
        if startup_timeout is None:
            startup_timeout = _TOPOLOGY_STARTUP_TIMEOUT
        if startup_timeout <= 0:
            raise ValueError("startup_timeout must be > 0")
        self._startup_timeout = startup_timeout
        self._parts: list[_Part] = []
        self._lock = threading.RLock()

    def __enter__(self: _T) -> _T:
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    async def __aenter__(self: _T) -> _T:
        # starting blocks while polling readiness; a worker thread keeps the event loop responsive.
        return await asyncio.to_thread(self.__enter__)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self._stop)

    def _add_part(
        self,
        name: str,
        *,
        nodes: int,
        jetstream: bool,
        domain: str | None,
        listeners: tuple[str, ...],
        config: str | None,
        binary: str | None,
    ) -> _Part:
        try:
            part = _Part(
                self,
                name=name,
                nodes=nodes,
                jetstream=jetstream,
                domain=domain,
                listeners=listeners,
                config=config,
                binary=binary,
                startup_timeout=self._startup_timeout,
            )
        except BaseException:
            for made in self._parts:  # their temporary directories
                made.stop()
            raise
        self._parts.append(part)
        return part

    # ------------------------------------------------------------------ what the parts ask

    def _config_for(self, part: _Part, node: _Node) -> list[str]:
        raise NotImplementedError

    def _problems(self, timeout: float) -> list[str]:
        raise NotImplementedError

    def _meta_leader_expected(self, part: _Part) -> bool:
        return NatsServer._meta_leader_expected(part)

    # ------------------------------------------------------------------ lifecycle

    @property
    def is_running(self) -> bool:
        """True while at least one node of the topology is alive."""
        return any(part.is_running for part in self._parts)

    @property
    def log_files(self) -> list[Path]:
        """The log file of each part (removed with its temporary directory by the final :meth:`stop`)."""
        return [part.log_file for part in self._parts]

    def _start(self) -> None:
        with self._lock, contextlib.ExitStack() as locks:
            for part in self._parts:
                locks.enter_context(part._lock)
            for attempt in range(_PORT_ATTEMPTS):
                try:
                    self._start_nodes()
                    return
                except _PortTaken:
                    # as NatsServer.start: a port picked as free was taken meanwhile; start over on fresh ones
                    if attempt == _PORT_ATTEMPTS - 1 or self.is_running:
                        raise
                    for part in self._parts:
                        part._pick_new_ports()

    def _waves(self) -> list[list[_Part]]:
        """The parts in launch order: a wave is launched once the nodes of the one before accept connections."""
        return [self._parts]

    def _start_nodes(self) -> None:
        launched: list[tuple[NatsServer, _Node]] = []
        since = time.monotonic()
        try:
            for part in self._parts:
                part._prepare_dir()  # every config with every part's current ports
            for wave in self._waves():
                if launched:
                    _await_ready(launched, self._startup_timeout, lambda _: [], since=since)
                for part in wave:
                    for node in part._nodes:
                        if not node.alive():
                            part._launch(node)
                            launched.append((part, node))
            if launched:
                not_formed = f"{self._kind} not formed"
                _await_ready(launched, self._startup_timeout, self._problems, not_formed=not_formed, since=since)
        except BaseException:
            for part in self._parts:
                part._res.terminate([n for p, n in launched if p is part], part.log_file)
            raise

    def _stop(self) -> None:
        with self._lock:
            if not self._parts:
                return
            # in parallel: a JetStream node takes a moment to shut down
            with ThreadPoolExecutor(max_workers=len(self._parts)) as pool:
                for done in [pool.submit(part.stop) for part in self._parts]:
                    done.result()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        parts = "; ".join(f"{p._cluster_name}: {', '.join(p.urls)}" for p in self._parts)
        return f"<{type(self).__name__} {parts} {state}>"


# ---------------------------------------------------------------------------------------------------- supercluster


@dataclass(frozen=True)
class _GatewayView:
    """What one node reports about its gateways (``/gatewayz``); remote servers are known there by server id."""

    server_id: str
    #: remote cluster -> id of the server this node's outbound gateway connection reaches
    outbound: Mapping[str, str]
    #: remote cluster -> ids of the servers whose outbound connections this node accepted
    inbound: Mapping[str, frozenset[str]]


def _gateway_view(doc: Mapping[str, object]) -> _GatewayView:
    def connection_name(entry: object) -> str | None:
        conn = entry.get("connection") if isinstance(entry, dict) else None
        name = conn.get("name") if isinstance(conn, dict) else None
        return str(name) if name else None

    outbound: dict[str, str] = {}
    out = doc.get("outbound_gateways")
    for cluster, entry in (out if isinstance(out, dict) else {}).items():
        name = connection_name(entry)
        if name:
            outbound[str(cluster)] = name
    inbound: dict[str, frozenset[str]] = {}
    into = doc.get("inbound_gateways")
    for cluster, entries in (into if isinstance(into, dict) else {}).items():
        names = (connection_name(e) for e in (entries if isinstance(entries, list) else ()))
        inbound[str(cluster)] = frozenset(n for n in names if n)
    return _GatewayView(server_id=str(doc.get("server_id", "")), outbound=outbound, inbound=inbound)


def _gateway_problems(clusters: Mapping[str, Sequence[str]], views: Mapping[str, _GatewayView]) -> list[str]:
    """What keeps the running nodes of ``clusters`` (cluster -> node names) from being fully joined by gateways;
    an empty list once they are.

    Each node opens one outbound gateway connection to some node of every other cluster, which that node lists as
    inbound: a given node may have no inbound connection at all. So: every node has an outbound connection to each
    other cluster, reaching a running node of it, and that node has accepted it (both ends agree)."""
    problems: list[str] = []
    node_by_id = {view.server_id: name for name, view in views.items()}
    cluster_of = {node: cluster for cluster, nodes in clusters.items() for node in nodes}
    for cluster, nodes in clusters.items():
        for node in nodes:
            for other in clusters:
                if other == cluster:
                    continue
                target_id = views[node].outbound.get(other)
                target = node_by_id.get(target_id) if target_id else None
                if target_id is None:
                    problems.append(f"{node}: no gateway to {other} yet")
                elif target is None or cluster_of.get(target) != other:
                    problems.append(f"{node}: its gateway to {other} reaches no running node of {other}")
                elif views[node].server_id not in views[target].inbound.get(cluster, frozenset()):
                    problems.append(f"{target}: gateway from {node} not accepted yet")
    return problems


class NatsSupercluster(_Topology):
    """Clusters of ``nats-server`` nodes joined by gateways into one supercluster, for tests, on free loopback ports.

    Each cluster is a :class:`NatsServer` (``clusters[name]``) with its nodes named ``<cluster>-n1``,
    ``<cluster>-n2``...; every node has a gateway to every other cluster and, with JetStream, the nodes of all the
    clusters form one JetStream meta group (one meta leader for the whole supercluster). Use it as a (sync or async)
    context manager, or call :meth:`start` / :meth:`stop`. A cluster's own ``stop(i)`` / ``restart(i)`` act on one
    node; its ``restart`` and ``start`` wait until the whole supercluster is formed again.

    :meth:`start` returns once the supercluster is fully formed, as every node's monitoring endpoints report it:
    in each cluster a full route mesh with every node's client URL advertised (``/routez``, ``/varz``); every
    node's outbound gateway to each other cluster up and accepted at its other end (``/gatewayz``); with JetStream,
    one elected meta leader that every node follows and that sees every node current (``/jsz``), and a stream
    replicated on every node of each cluster placed there (``placement.cluster``) when asked for from another
    cluster.
    """

    _kind = "supercluster"

    def __init__(
        self,
        *,
        clusters: Sequence[str] = ("east", "west"),
        nodes: int = 2,
        jetstream: bool = True,
        config: str | None = None,
        binary: str | None = None,
        startup_timeout: float | None = None,
    ) -> None:
        """Pick the ports and write the configs of every node (nothing runs before :meth:`start`).

        Args:
            clusters: the cluster names (at least two, distinct, letters, digits, ``-`` and ``_``).
            nodes: nodes per cluster (at least 2).
            jetstream: JetStream on every node (in a temporary directory per node).
            config: configuration text appended to every node's generated config.
            binary: the ``nats-server`` executable (default: :func:`find_server_binary`).
            startup_timeout: seconds :meth:`start` waits for the supercluster to form (default 45).

        Raises:
            ValueError: fewer than two clusters, a repeated or invalid cluster name, ``nodes`` below 2, or a
                ``startup_timeout`` that is not positive.
            FileNotFoundError: no ``nats-server`` binary was found.
            OSError: the temporary directory or a config file could not be written.
        """
        names = list(clusters)
        if isinstance(clusters, str) or len(names) < 2 or len(set(names)) != len(names):
            raise ValueError(f"clusters must be at least two distinct names, got {clusters!r}")
        bad = [n for n in names if not isinstance(n, str) or not _NAME.match(n)]
        if bad:
            raise ValueError(f"invalid cluster name {bad[0]!r}: use letters, digits, '-' and '_'")
        if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 2:
            raise ValueError(f"nodes must be an int >= 2, got {nodes!r}")
        super().__init__(startup_timeout)
        self._jetstream = jetstream
        for name in names:
            self._add_part(
                name,
                nodes=nodes,
                jetstream=jetstream,
                domain=None,
                listeners=("gateway",),
                config=config,
                binary=binary,
            )

    @property
    def clusters(self) -> dict[str, NatsServer]:
        """Each cluster by name (its ``urls``, ``monitor_urls``, ``stop(i)``, ``restart(i)``...)."""
        return {part._cluster_name: part for part in self._parts}

    @property
    def urls(self) -> list[str]:
        """Client URL of every node, cluster after cluster."""
        return [url for part in self._parts for url in part.urls]

    def start(self) -> NatsSupercluster:
        """Start every node that is not running and wait until the supercluster is fully formed; returns ``self``.

        Raises:
            RuntimeError: a node exited during startup (its ports stayed taken after retrying on fresh ones), or the
                supercluster was not formed within ``startup_timeout`` (the message says what was missing, with the
                end of each cluster's log).
            OSError: the binary could not be run, or a config file could not be written.
        """
        self._start()
        return self

    def stop(self) -> None:
        """Stop every node of every cluster and remove the temporary directories. Idempotent.

        Raises:
            Nothing: a node that does not stop on SIGTERM within 5 s is killed.
        """
        self._stop()

    # ------------------------------------------------------------------ topology

    def _config_for(self, part: _Part, node: _Node) -> list[str]:
        out = [
            "gateway {",
            f"  name: {_quote(part._cluster_name)}",
            f"  listen: {_quote(_hostport(part._host, node.extra_ports['gateway']))}",
            "  gateways: [",
        ]
        for other in self._parts:
            if other is not part:
                urls = ", ".join(
                    _quote(f"nats://{_hostport(other._host, n.extra_ports['gateway'])}") for n in other._nodes
                )
                out.append(f"    {{name: {_quote(other._cluster_name)}, urls: [{urls}]}}")
        return [*out, "  ]", "}"]

    def _meta_leader_expected(self, part: _Part) -> bool:
        # one meta group over every node of every cluster: a leader needs a majority of all of them
        running = sum(len(p._running()) for p in self._parts)
        total = sum(len(p._nodes) for p in self._parts)
        return self._jetstream and 2 * running > total

    def _problems(self, timeout: float) -> list[str]:
        running = {part: part._running() for part in self._parts}
        meta = self._meta_leader_expected(self._parts[0])
        views = {}
        gateways: dict[str, _GatewayView] = {}
        for part, nodes in running.items():
            got = part._views(nodes, timeout, meta=meta)
            if isinstance(got, str):
                return [got]
            views.update(got)
            for node in nodes:
                doc = part._monitor(node, "/gatewayz", timeout)
                if isinstance(doc, str):
                    return [doc]
                gateways[node.name] = _gateway_view(doc)
        problems: list[str] = []
        for part, nodes in running.items():
            if len(nodes) > 1:
                expected = {n.name: n.port for n in nodes}
                problems += _formation_problems(expected, views, check_connect_urls=part._advertises_client_urls())
        clusters = {part._cluster_name: [n.name for n in nodes] for part, nodes in running.items() if nodes}
        problems += _gateway_problems(clusters, gateways)
        if problems or not meta:
            return problems
        problems = _meta_problems([n.name for nodes in running.values() for n in nodes], views)
        if problems:
            return problems
        # every cluster takes a replicated stream asked for from the next one (as a client there would ask)
        asking = [part for part, nodes in running.items() if nodes]
        for i, part in enumerate(asking):
            placement = part._placement_problem(timeout, via=asking[(i + 1) % len(asking)])
            if placement is not None:
                return [placement]
        return []


# ---------------------------------------------------------------------------------------------------- leaf nodes


def _leaf_problems(
    leaf: str, hubs: Sequence[str], leaf_sees: frozenset[str], hub_sees: Mapping[str, frozenset[str]]
) -> list[str]:
    """What keeps the leaf node ``leaf`` from being connected to one of the running ``hubs``, given the remote
    server names each lists in ``/leafz`` (``leaf_sees``; ``hub_sees``: by hub node); empty once both ends agree."""
    reached = [hub for hub in hubs if hub in leaf_sees]
    if not reached:
        return [f"{leaf}: no leafnode connection to {' or '.join(hubs)} yet"]
    if not any(leaf in hub_sees.get(hub, frozenset()) for hub in reached):
        return [f"{', '.join(reached)}: leafnode connection from {leaf} not accepted yet"]
    return []


def _leaf_names(doc: Mapping[str, object]) -> frozenset[str]:
    """The server names at the other end of a node's leafnode connections (``/leafz``)."""
    leafs = doc.get("leafs")
    entries = leafs if isinstance(leafs, list) else []
    return frozenset(str(e["name"]) for e in entries if isinstance(e, dict) and e.get("name"))


class NatsLeafnodes(_Topology):
    """A hub and a leaf node, each with its own JetStream domain, joined by a leafnode connection, for tests.

    ``hub`` is a :class:`NatsServer` (one server, or a cluster of ``hub_nodes``) with the JetStream domain
    ``hub_domain`` that accepts leafnode connections; ``leaf`` is a single server with the JetStream domain
    ``leaf_domain`` connected to it as a leaf node. Both use the default account, so a client of either reaches
    the other's JetStream through its domain (``nc.jetstream(domain="hub")`` on the leaf). Nodes are named
    ``<domain>-n1``... Use it as a (sync or async) context manager, or call :meth:`start` / :meth:`stop`.

    :meth:`start` returns once both ends list the leafnode connection (``/leafz``), the hub (a cluster: fully
    formed, as :class:`NatsServer` waits for it) and the leaf have JetStream, and each domain answers an API
    request from the other side (``$JS.<hub_domain>.API.INFO`` asked on the leaf, ``$JS.<leaf_domain>.API.INFO``
    on the hub).
    """

    _kind = "leafnode topology"

    def __init__(
        self,
        *,
        hub_nodes: int = 1,
        hub_domain: str = "hub",
        leaf_domain: str = "leaf",
        config: str | None = None,
        binary: str | None = None,
        startup_timeout: float | None = None,
    ) -> None:
        """Pick the ports and write the configs (nothing runs before :meth:`start`).

        Args:
            hub_nodes: nodes of the hub (1: a single server; more: a routed cluster named after ``hub_domain``).
            hub_domain: the hub's JetStream domain.
            leaf_domain: the leaf node's JetStream domain.
            config: configuration text appended to every node's generated config.
            binary: the ``nats-server`` executable (default: :func:`find_server_binary`).
            startup_timeout: seconds :meth:`start` waits for the topology to form (default 45).

        Raises:
            ValueError: ``hub_nodes`` below 1, a domain that is empty, invalid or the same for both, or a
                ``startup_timeout`` that is not positive.
            FileNotFoundError: no ``nats-server`` binary was found.
            OSError: the temporary directory or a config file could not be written.
        """
        if isinstance(hub_nodes, bool) or not isinstance(hub_nodes, int) or hub_nodes < 1:
            raise ValueError(f"hub_nodes must be an int >= 1, got {hub_nodes!r}")
        for domain in (hub_domain, leaf_domain):
            if not isinstance(domain, str) or not _NAME.match(domain):
                raise ValueError(f"invalid JetStream domain {domain!r}: use letters, digits, '-' and '_'")
        if hub_domain == leaf_domain:
            raise ValueError("the hub and the leaf need different JetStream domains")
        super().__init__(startup_timeout)
        self._hub_domain = hub_domain
        self._leaf_domain = leaf_domain
        self._hub = self._add_part(
            hub_domain,
            nodes=hub_nodes,
            jetstream=True,
            domain=hub_domain,
            listeners=("leafnodes",),
            config=config,
            binary=binary,
        )
        self._leaf = self._add_part(
            leaf_domain, nodes=1, jetstream=True, domain=leaf_domain, listeners=(), config=config, binary=binary
        )

    @property
    def hub(self) -> NatsServer:
        """The hub (its ``urls``, ``stop(i)``, ``restart(i)``...)."""
        return self._hub

    @property
    def leaf(self) -> NatsServer:
        """The leaf node."""
        return self._leaf

    @property
    def hub_domain(self) -> str:
        """The hub's JetStream domain."""
        return self._hub_domain

    @property
    def leaf_domain(self) -> str:
        """The leaf node's JetStream domain."""
        return self._leaf_domain

    def start(self) -> NatsLeafnodes:
        """Start every node that is not running and wait until the leaf is connected and both domains answer;
        returns ``self``.

        Raises:
            RuntimeError: a node exited during startup (its ports stayed taken after retrying on fresh ones), or the
                topology was not formed within ``startup_timeout`` (the message says what was missing, with the end
                of each log).
            OSError: the binary could not be run, or a config file could not be written.
        """
        self._start()
        return self

    def stop(self) -> None:
        """Stop the hub and the leaf node and remove the temporary directories. Idempotent.

        Raises:
            Nothing: a node that does not stop on SIGTERM within 5 s is killed.
        """
        self._stop()

    # ------------------------------------------------------------------ topology

    def _waves(self) -> list[list[_Part]]:
        # a leaf node that finds no hub listening retries only a second later
        return [[self._hub], [self._leaf]]

    def _config_for(self, part: _Part, node: _Node) -> list[str]:
        # (called while the parts are made too: the hub is made first)
        if "leafnodes" in part._listeners:
            return ["leafnodes {", f"  listen: {_quote(_hostport(part._host, node.extra_ports['leafnodes']))}", "}"]
        hub = self._parts[0]
        urls = ", ".join(_quote(f"nats-leaf://{_hostport(hub._host, n.extra_ports['leafnodes'])}") for n in hub._nodes)
        return ["leafnodes {", "  remotes: [", f"    {{urls: [{urls}]}}", "  ]", "}"]

    def _problems(self, timeout: float) -> list[str]:
        problems = self._hub._cluster_problems(timeout) + self._leaf._cluster_problems(timeout)
        if problems:
            return problems
        hubs = self._hub._running()
        leaves = self._leaf._running()
        if not hubs or not leaves:
            return []  # one end is stopped (by the test): nothing to connect
        (leaf,) = leaves
        leaf_doc = self._leaf._monitor(leaf, "/leafz", timeout)
        if isinstance(leaf_doc, str):
            return [leaf_doc]
        hub_sees: dict[str, frozenset[str]] = {}
        for hub in hubs:
            doc = self._hub._monitor(hub, "/leafz", timeout)
            if isinstance(doc, str):
                return [doc]
            hub_sees[hub.name] = _leaf_names(doc)
        problems = _leaf_problems(leaf.name, [h.name for h in hubs], _leaf_names(leaf_doc), hub_sees)
        if problems:
            return problems
        for asker, domain in ((self._leaf, self._hub_domain), (self._hub, self._leaf_domain)):
            problem = _domain_problem(asker, domain, timeout)
            if problem is not None:
                return [problem]
        return []


def _domain_problem(asker: _Part, domain: str, timeout: float) -> str | None:
    """Whether a client of ``asker`` gets an answer from JetStream in ``domain`` (None: it does)."""
    node = next(iter(asker._running()), None)
    if node is None:
        return None
    subject = f"$JS.{domain}.API.INFO"
    try:
        with socket.create_connection((asker._host, node.port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            answer = _raw_api_call(sock, asker._connect_options(), subject, None)
    except (OSError, ValueError) as exc:
        return f"{node.name}: {subject} not answered yet ({exc or type(exc).__name__})"
    error = answer.get("error")
    if isinstance(error, dict):
        return f"{node.name}: {subject} answered {error.get('description', error)}"
    return None
