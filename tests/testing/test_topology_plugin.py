"""The pytest plugin's topology fixtures (nats_supercluster, nats_leafnodes): module-scoped, configured by a module
marker, stopped after the module, logs shown when a test of the module failed. Via pytester."""

from __future__ import annotations

import importlib.metadata
import socket

import pytest

pytest_plugins = ["pytester"]


def _plugin_arg() -> str:
    # installed: the pytest11 entry point "cnats" (the module path as well would register it twice)
    for ep in importlib.metadata.entry_points(group="pytest11"):
        if ep.name == "cnats" and ep.value == "cnats.testing.pytest_plugin":
            return "cnats"
    return "cnats.testing.pytest_plugin"


# (as in test_plugin.py: the inner runs skip plugins that only cost session setup time)
PLUGIN = (
    *("-p", _plugin_arg(), "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark"),
    *("-o", "asyncio_default_fixture_loop_scope=function"),
)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


RECORD = """
import pathlib
import pytest

def record(name, topology):
    ports = [p for part in topology._parts for p in part.ports]
    pathlib.Path(name + ".ports").write_text(" ".join(map(str, ports)))
    pathlib.Path(name + ".logs").write_text(" ".join(map(str, topology.log_files)))  # unique temporary directories
"""


def recorded(pytester: pytest.Pytester, name: str) -> list[int]:
    return [int(p) for p in (pytester.path / f"{name}.ports").read_text().split()]


def logs(pytester: pytest.Pytester, name: str) -> set[str]:
    return set((pytester.path / f"{name}.logs").read_text().split())


def test_one_supercluster_per_module(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_first=RECORD
        + """
pytestmark = pytest.mark.nats_supercluster(jetstream=False, clusters=("left", "right"))

def test_a(nats_supercluster):
    assert list(nats_supercluster.clusters) == ["left", "right"]
    record("first.a", nats_supercluster)

def test_b(nats_supercluster):
    record("first.b", nats_supercluster)
""",
        test_second=RECORD
        + """
pytestmark = pytest.mark.nats_supercluster(jetstream=False)  # (only for speed: the default has JetStream)

def test_c(nats_supercluster, nats_leafnodes):
    assert list(nats_supercluster.clusters) == ["east", "west"]
    assert nats_leafnodes.is_running and nats_leafnodes.hub_domain == "hub"
    record("second.sc", nats_supercluster)
    record("second.leaf", nats_leafnodes)
""",
    )
    result = pytester.runpytest(*PLUGIN, "--strict-markers", "-p", "no:randomly")
    result.assert_outcomes(passed=3)
    assert logs(pytester, "first.a") == logs(pytester, "first.b")  # the tests of a module share one
    assert not logs(pytester, "first.a") & logs(pytester, "second.sc")  # another module gets its own
    ports = [*recorded(pytester, "first.a"), *recorded(pytester, "second.sc"), *recorded(pytester, "second.leaf")]
    assert all(refused(p) for p in ports)  # all stopped


def test_a_marker_on_a_test_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

@pytest.mark.nats_leafnodes(hub_nodes=2)
def test_never_runs(nats_leafnodes):
    pass
"""
    )
    result = pytester.runpytest(*PLUGIN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*the nats_leafnodes fixture is module-scoped*pytestmark = pytest.mark.nats_leafnodes*"]
    )


def test_a_failed_test_shows_the_logs_after_the_module(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
def test_fails(nats_leafnodes):
    assert False, "boom"

def test_passes(nats_leafnodes):
    pass
"""
    )
    result = pytester.runpytest(*PLUGIN, "-p", "no:randomly", "-rA")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*---- <NatsLeafnodes hub: *: end of *nats-server.log ----*"])


def test_a_passing_module_shows_no_logs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
def test_passes(nats_leafnodes):
    pass
"""
    )
    result = pytester.runpytest(*PLUGIN, "-rA")
    result.assert_outcomes(passed=1)
    assert "end of" not in result.stdout.str()


def test_topology_markers_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*PLUGIN, "--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.nats_supercluster(**kwargs):*", "@pytest.mark.nats_leafnodes(**kwargs):*"]
    )
