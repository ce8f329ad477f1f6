"""The cnats pytest plugin (fixtures nats_server / nats_cluster / nats_server_factory, their markers), via pytester."""

from __future__ import annotations

import importlib.metadata
import socket

import pytest

# Imported here, not first inside an in-process pytester run: pytester restores sys.modules afterwards, and a
# second import of cryptography's Rust bindings (used by trustme for tls=True) breaks them for later tests.
import trustme  # noqa: F401

pytest_plugins = ["pytester"]


def _plugin_arg() -> str:
    # Once cnats is installed the plugin is loaded through its pytest11 entry point "cnats"; passing the
    # module path as well would make pluggy refuse the same module under a second name. "-p cnats" names the
    # entry point instead.
    for ep in importlib.metadata.entry_points(group="pytest11"):
        if ep.name == "cnats" and ep.value == "cnats.testing.pytest_plugin":
            return "cnats"
    return "cnats.testing.pytest_plugin"


# The inner runs skip unrelated plugins that cost ~1 s of session setup each (hypothesis, pytest-benchmark).
PLUGIN = (
    *("-p", _plugin_arg(), "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark"),
    *("-o", "asyncio_default_fixture_loop_scope=function"),
)

HELPERS = """
import json, pathlib, socket
import pytest

def info(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s, s.makefile("rb") as f:
        line = f.readline()
    return json.loads(line[5:])
"""


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_nats_server_fixture_default(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        HELPERS
        + """
def test_sync(nats_server):
    assert nats_server.is_running
    assert info(nats_server.port)["jetstream"] is True
    pathlib.Path("sync.port").write_text(str(nats_server.port))

@pytest.mark.asyncio
async def test_async(nats_server):
    assert info(nats_server.port)["jetstream"] is True
    pathlib.Path("async.port").write_text(str(nats_server.port))
"""
    )
    result = pytester.runpytest(*PLUGIN, "--strict-markers")
    result.assert_outcomes(passed=2)
    for name in ("sync.port", "async.port"):
        assert refused(int((pytester.path / name).read_text()))  # stopped at teardown


def test_marker_overrides_defaults(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        HELPERS
        + """
pytestmark = pytest.mark.nats_server(config="max_payload: 4096")

@pytest.mark.nats_server(jetstream=False)
def test_closest_marker_wins_per_keyword(nats_server):
    i = info(nats_server.port)
    assert not i.get("jetstream")
    assert i["max_payload"] == 4096

@pytest.mark.nats_server(tls=True, config="max_payload: 1024")
def test_tls(nats_server):
    assert nats_server.url.startswith("tls://")
    i = info(nats_server.port)
    assert i["tls_required"] is True and i["jetstream"] is True and i["max_payload"] == 1024

@pytest.mark.nats_server(True)
def test_positional_is_an_error(nats_server):
    pass
"""
    )
    result = pytester.runpytest(*PLUGIN, "--strict-markers")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*takes keyword arguments only*"])


def test_nats_server_factory(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        HELPERS
        + """
def test_two(nats_server_factory):
    a = nats_server_factory()
    b = nats_server_factory(jetstream=True, users={"u": "p"})
    assert a.is_running and b.is_running and a.port != b.port
    assert not info(a.port).get("jetstream")
    assert info(b.port)["jetstream"] is True and info(b.port)["auth_required"] is True
    pathlib.Path("factory.ports").write_text(f"{a.port} {b.port}")
"""
    )
    result = pytester.runpytest(*PLUGIN)
    result.assert_outcomes(passed=1)
    ports = [int(p) for p in (pytester.path / "factory.ports").read_text().split()]
    assert len(ports) == 2 and all(refused(p) for p in ports)


def test_failed_test_shows_server_log(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
def test_fails(nats_server):
    assert False, "boom"
"""
    )
    result = pytester.runpytest(*PLUGIN)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Captured stderr teardown*", "*cnats.testing: starting n1*"])


def test_startup_failure_is_a_setup_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

@pytest.mark.nats_server(config="not { valid")
def test_never_runs(nats_server):
    pass
"""
    )
    result = pytester.runpytest(*PLUGIN)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*RuntimeError: nats-server n1 exited with code*"])


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*PLUGIN, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.nats_server(**kwargs):*", "@pytest.mark.nats_cluster(**kwargs):*"])


def test_nats_cluster_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        HELPERS
        + """
import asyncio

import cnats
from cnats.jetstream import StreamConfig

@pytest.mark.asyncio
async def test_three_nodes_with_jetstream(nats_cluster):
    assert len(nats_cluster.urls) == 3 and all(info(p)["jetstream"] is True for p in nats_cluster.ports)
    nc = await cnats.connect(nats_cluster.url)
    try:
        # the node the client is connected to announces the whole cluster
        assert sorted(nc.info.connect_urls) == sorted(u.removeprefix("nats://") for u in nats_cluster.urls)
        jsm = await nc.jetstream_manager()
        stream = await jsm.streams.add(StreamConfig(name="R3", subjects=["r3.>"], num_replicas=3))
        assert len(stream.cluster.replicas) == 2  # a leader and two followers
        # the stream's subjects reach this node's interest graph a moment after the stream exists: retry a 503
        for _ in range(100):
            try:
                ack = await nc.jetstream().publish("r3.x", b"1")
                break
            except cnats.NoRespondersError:
                await asyncio.sleep(0.05)
        assert ack.seq == 1
    finally:
        await nc.close()
    pathlib.Path("cluster.ports").write_text(" ".join(map(str, nats_cluster.ports)))

@pytest.mark.nats_cluster(cluster=2, jetstream=False)
def test_marker_replaces_defaults(nats_cluster):
    assert len(nats_cluster.ports) == 2
    assert not info(nats_cluster.port).get("jetstream")
"""
    )
    result = pytester.runpytest(*PLUGIN, "--strict-markers")
    result.assert_outcomes(passed=2)
    ports = [int(p) for p in (pytester.path / "cluster.ports").read_text().split()]
    assert len(ports) == 3 and all(refused(p) for p in ports)  # every node stopped at teardown


def test_nats_server_without_jetstream(pytester: pytest.Pytester) -> None:
    # the documented way to get a plain core-NATS server from the nats_server fixture
    pytester.makepyfile(
        HELPERS
        + """
@pytest.mark.nats_server(jetstream=False)
def test_core_only(nats_server):
    assert not info(nats_server.port).get("jetstream")
"""
    )
    result = pytester.runpytest(*PLUGIN, "--strict-markers")
    result.assert_outcomes(passed=1)
