"""pytest plugin: real ``nats-server`` fixtures.

Registered through the ``pytest11`` entry point ``cnats``, so installing cnats is enough. Without installing,
load it with ``-p cnats.testing.pytest_plugin``. Do not pass that ``-p`` while cnats is installed: pluggy
refuses one module registered under two names ("Plugin already registered under a different name"); use
``-p cnats`` (the entry-point name), or nothing, instead.

Fixtures:

``nats_server``
    A started ``NatsServer(jetstream=True)``, stopped at teardown. ``@pytest.mark.nats_server(**kwargs)``
    gives other keyword arguments; they replace the defaults (``@pytest.mark.nats_server(jetstream=False)``).
    Markers on the module, class and function are merged, the closest one winning per keyword.
``nats_cluster``
    A started ``NatsServer(jetstream=True, cluster=3)``: three routed nodes with JetStream, stopped at teardown.
    ``@pytest.mark.nats_cluster(**kwargs)`` gives other keyword arguments, merged the same way. It is yielded fully
    formed (``NatsServer.start`` waits for it): a full route mesh, every node's ``connect_urls`` listing every node,
    and with JetStream one elected meta leader that every node follows.
``nats_server_factory``
    A callable ``(**kwargs) -> NatsServer`` taking ``NatsServer``'s own arguments and defaults; it returns
    started servers, and every server it made is stopped at teardown.
``chaos_proxy``
    A started ``ChaosProxy`` in front of ``nats_server`` (an async fixture: needs pytest-asyncio).
``nats_supercluster``
    A started, fully formed ``NatsSupercluster()``: two clusters of two nodes joined by gateways, with JetStream.
    Module-scoped (a supercluster takes seconds to elect its JetStream meta leader): the tests of a module share it,
    so they must not stop its nodes or depend on each other's streams. ``pytestmark =
    pytest.mark.nats_supercluster(**kwargs)`` in the module gives other keyword arguments.
``nats_leafnodes``
    A started ``NatsLeafnodes()``: a hub (JetStream domain ``hub``) and a leaf node (domain ``leaf``) connected to
    it. Module-scoped as well; ``pytest.mark.nats_leafnodes(**kwargs)`` in the module's ``pytestmark``.

The server fixtures are plain synchronous fixtures, usable from ``async def`` tests too. When a test fails, the end
of the server log is printed (pytest shows it under "Captured stderr teardown"), because the log file itself
is removed when the server stops; for the module-scoped topologies, when a test of the module failed, at the end of
the module.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any, TypeVar

import pytest

from .chaos import ChaosProxy
from .server import NatsServer, _tail
from .topology import NatsLeafnodes, NatsSupercluster

__all__ = [
    "chaos_proxy",
    "nats_cluster",
    "nats_leafnodes",
    "nats_server",
    "nats_server_factory",
    "nats_supercluster",
]

# marker name -> (the fixture's NatsServer defaults, the marker's help line)
_MARKERS: dict[str, tuple[dict[str, Any], str]] = {
    "nats_server": (
        {"jetstream": True},
        "keyword arguments for the nats_server fixture's NatsServer (they replace the default jetstream=True)",
    ),
    "nats_cluster": (
        {"jetstream": True, "cluster": 3},
        "keyword arguments for the nats_cluster fixture's NatsServer "
        "(they replace the defaults jetstream=True, cluster=3)",
    ),
    "nats_supercluster": (
        {},
        "keyword arguments for the module-scoped nats_supercluster fixture's NatsSupercluster (in the module's "
        "pytestmark)",
    ),
    "nats_leafnodes": (
        {},
        "keyword arguments for the module-scoped nats_leafnodes fixture's NatsLeafnodes (in the module's pytestmark)",
    ),
}
# fixtures shared by the tests of a module: their markers only count on the module
_MODULE_SCOPED = ("nats_supercluster", "nats_leafnodes")
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def pytest_configure(config: pytest.Config) -> None:
    for name, (_, help_text) in _MARKERS.items():
        config.addinivalue_line("markers", f"{name}(**kwargs): {help_text}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Remember each phase's report so fixture teardown can tell whether the test failed.
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A marker on a test or a class cannot reach a module-scoped fixture: say so rather than ignore it.
    for item in items:
        for node in item.listchain():
            if isinstance(node, (pytest.Session, pytest.Package, pytest.Module)):
                continue
            for marker in node.own_markers:
                if marker.name in _MODULE_SCOPED:
                    raise pytest.UsageError(
                        f"{item.nodeid}: the {marker.name} fixture is module-scoped, so @pytest.mark.{marker.name} "
                        f"only counts on the module: pytestmark = pytest.mark.{marker.name}(...)"
                    )


def _test_failed(request: pytest.FixtureRequest) -> bool:
    reports = request.node.stash.get(_REPORTS, {})
    return any(r.failed for r in reports.values())


def _dump_log(request: pytest.FixtureRequest, server: NatsServer) -> None:
    if _test_failed(request) and server.log_file.exists():
        sys.stderr.write(f"---- {server!r}: end of {server.log_file} ----\n{_tail(server.log_file, 60)}")


def _marker_kwargs(request: pytest.FixtureRequest, name: str) -> dict[str, Any]:
    kwargs = dict(_MARKERS[name][0])
    # iter_markers yields the closest marker first; apply the farthest first so the closest wins.
    for marker in reversed(list(request.node.iter_markers(name))):
        if marker.args:
            raise TypeError(f"@pytest.mark.{name} takes keyword arguments only")
        kwargs.update(marker.kwargs)
    return kwargs


def _started(kwargs: dict[str, Any]) -> NatsServer:
    server = NatsServer(**kwargs)
    try:
        return server.start()
    except BaseException:
        server.stop()
        raise


def _server_fixture(request: pytest.FixtureRequest, marker: str) -> Iterator[NatsServer]:
    server = _started(_marker_kwargs(request, marker))
    try:
        yield server
    finally:
        _dump_log(request, server)
        server.stop()


@pytest.fixture
def nats_server(request: pytest.FixtureRequest) -> Iterator[NatsServer]:
    """A started ``NatsServer(jetstream=True)`` (``@pytest.mark.nats_server`` overrides), then stopped."""
    yield from _server_fixture(request, "nats_server")


@pytest.fixture
def nats_cluster(request: pytest.FixtureRequest) -> Iterator[NatsServer]:
    """A started, fully formed ``NatsServer(jetstream=True, cluster=3)`` (``@pytest.mark.nats_cluster`` overrides),
    then stopped."""
    yield from _server_fixture(request, "nats_cluster")


_Topology = TypeVar("_Topology", NatsSupercluster, NatsLeafnodes)


def _topology_fixture(request: pytest.FixtureRequest, cls: type[_Topology], marker: str) -> Iterator[_Topology]:
    failed_before = request.session.testsfailed
    with cls(**_marker_kwargs(request, marker)) as topology:
        try:
            yield topology
        finally:
            if request.session.testsfailed > failed_before:  # a test of the module failed
                for log in topology.log_files:
                    if log.exists():
                        sys.stderr.write(f"---- {topology!r}: end of {log} ----\n{_tail(log, 60)}")


@pytest.fixture(scope="module")
def nats_supercluster(request: pytest.FixtureRequest) -> Iterator[NatsSupercluster]:
    """A started, fully formed ``NatsSupercluster()`` shared by the tests of a module (``pytestmark =
    pytest.mark.nats_supercluster(...)`` overrides), then stopped."""
    yield from _topology_fixture(request, NatsSupercluster, "nats_supercluster")


@pytest.fixture(scope="module")
def nats_leafnodes(request: pytest.FixtureRequest) -> Iterator[NatsLeafnodes]:
    """A started ``NatsLeafnodes()`` (hub domain ``hub``, leaf domain ``leaf``) shared by the tests of a module
    (``pytestmark = pytest.mark.nats_leafnodes(...)`` overrides), then stopped."""
    yield from _topology_fixture(request, NatsLeafnodes, "nats_leafnodes")


@pytest.fixture
def nats_server_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., NatsServer]]:
    """``factory(**kwargs)`` → a started ``NatsServer(**kwargs)``; all of them are stopped at teardown."""
    servers: list[NatsServer] = []

    def factory(**kwargs: Any) -> NatsServer:
        server = _started(kwargs)
        servers.append(server)
        return server

    try:
        yield factory
    finally:
        errors: list[BaseException] = []
        for server in reversed(servers):
            try:
                _dump_log(request, server)
                server.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others anyway
                errors.append(exc)
        if errors:
            raise errors[0]


try:  # the proxy runs on the test's event loop, so its fixture is an async one (pytest-asyncio)
    import pytest_asyncio
except ImportError:  # pragma: no cover - cnats[test] installs it
    pass
else:

    @pytest_asyncio.fixture
    async def chaos_proxy(nats_server: NatsServer) -> AsyncIterator[ChaosProxy]:
        """A started :class:`ChaosProxy` in front of the ``nats_server`` fixture; connect clients to its ``url``."""
        proxy = await ChaosProxy(nats_server.url).start()
        try:
            yield proxy
        finally:
            await proxy.stop()
