"""A cluster from ``NatsServer(cluster=N)`` / the ``nats_cluster`` fixture is fully formed when handed out: a full
route mesh, every node's ``connect_urls`` (what INFO tells a client) listing every node, and with JetStream one meta
leader every node follows. The checks below look once, right away: no retries."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from typing import Any

import pytest

from cnats.testing import NatsServer
from cnats.testing.server import _formation_problems, _NodeView, _raw_api_call

_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def monitor(server: NatsServer, node: int, path: str) -> dict[str, Any]:
    with _http.open(server.monitor_urls[node] + path, timeout=5) as resp:
        assert resp.status == 200
        doc: dict[str, Any] = json.loads(resp.read())
    return doc


def raw_info(port: int) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s, s.makefile("rb") as f:
        line = f.readline()
    assert line.startswith(b"INFO "), line
    info: dict[str, Any] = json.loads(line[5:])
    return info


def ports_of(urls: list[str]) -> set[int]:
    return {int(u.rpartition(":")[2]) for u in urls}


def assert_fully_formed(server: NatsServer, *, jetstream: bool) -> None:
    n = len(server.ports)
    names = {f"n{i + 1}" for i in range(n)}
    leaders = set()
    for i, port in enumerate(server.ports):
        me = f"n{i + 1}"
        routes = monitor(server, i, "/routez")["routes"] or []
        assert {r["remote_name"] for r in routes} == names - {me}, f"{me}: route mesh"
        assert ports_of(monitor(server, i, "/varz")["connect_urls"]) == set(server.ports), f"{me}: varz connect_urls"
        assert ports_of(raw_info(port)["connect_urls"]) == set(server.ports), f"{me}: INFO connect_urls"
        if jetstream:
            leader = monitor(server, i, "/jsz")["meta_cluster"]["leader"]
            assert leader in names, f"{me}: meta leader {leader!r}"
            leaders.add(leader)
    if jetstream:
        assert len(leaders) == 1, f"the nodes follow different meta leaders: {leaders}"
        (leader,) = leaders
        replicas = monitor(server, int(leader[1:]) - 1, "/jsz")["meta_cluster"]["replicas"]
        current = {r["name"] for r in replicas if r.get("current") and not r.get("offline")}
        assert current == names - {leader}, f"the meta leader sees only {current} current"
        # a stream replicated over every node is placed at once, and the readiness probe left no stream behind
        with socket.create_connection(("127.0.0.1", server.ports[0]), timeout=5) as sock:
            sock.settimeout(5)
            listed = _raw_api_call(sock, {"verbose": False, "headers": True}, "$JS.API.STREAM.NAMES", None)
            assert not [name for name in listed.get("streams") or [] if str(name).startswith("cnats_ready_")]
            config = {"name": "EVERY", "subjects": ["every.>"], "storage": "memory", "num_replicas": min(n, 5)}
            created = _raw_api_call(sock, None, "$JS.API.STREAM.CREATE.EVERY", config)
            assert "error" not in created, created
            assert "error" not in _raw_api_call(sock, None, "$JS.API.STREAM.DELETE.EVERY", None)


def test_nats_cluster_fixture_is_fully_formed(nats_cluster: NatsServer) -> None:
    assert_fully_formed(nats_cluster, jetstream=True)


@pytest.mark.nats_cluster(jetstream=False)
def test_nats_cluster_fixture_without_jetstream_is_fully_formed(nats_cluster: NatsServer) -> None:
    assert_fully_formed(nats_cluster, jetstream=False)
    assert "meta_cluster" not in monitor(nats_cluster, 0, "/jsz") or not monitor(nats_cluster, 0, "/jsz").get(
        "meta_cluster"
    )


@pytest.mark.nats_cluster(cluster=5)
def test_five_nodes_are_fully_formed(nats_cluster: NatsServer) -> None:
    assert_fully_formed(nats_cluster, jetstream=True)


def test_restarted_node_rejoins_the_formed_cluster(nats_cluster: NatsServer) -> None:
    nats_cluster.restart(1)
    assert_fully_formed(nats_cluster, jetstream=True)


def test_cluster_default_startup_timeout_is_longer() -> None:
    single, cluster = NatsServer(), NatsServer(cluster=3)
    try:
        assert single._startup_timeout == 10.0
        assert cluster._startup_timeout == 30.0
        assert NatsServer(cluster=3, startup_timeout=2.5)._startup_timeout == 2.5
    finally:
        single.stop()
        cluster.stop()


def test_timeout_says_which_condition_was_not_met() -> None:
    # The user config replaces the generated cluster block with one without routes: the nodes run, are healthy
    # on their own, and never form a cluster.
    s = NatsServer(cluster=2, config='cluster { name: "cnats-test", listen: "127.0.0.1:-1" }', startup_timeout=1.5)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"not ready after 1\.5 s") as ei:
        s.start()
    assert time.monotonic() - t0 < 5
    msg = str(ei.value)
    assert "cluster not fully formed" in msg
    assert "n1: no route to n2 yet" in msg and "n2: no route to n1 yet" in msg
    assert "n1: connect_urls lack n1, n2" in msg  # an unrouted node advertises nothing, not even itself
    assert not s.is_running
    s.stop()


# ---------------------------------------------------------------------------------------------------- the verdict

EXPECTED = {"n1": 4001, "n2": 4002, "n3": 4003}
MESH = {name: frozenset(EXPECTED) - {name} for name in EXPECTED}
ALL_PORTS = frozenset(EXPECTED.values())


def views(**overrides: Any) -> dict[str, _NodeView]:
    out = {}
    for name in EXPECTED:
        fields: dict[str, Any] = {"routes": MESH[name], "connect_ports": ALL_PORTS, "meta_leader": "n2"}
        if name == "n2":
            fields["meta_current"] = frozenset({"n1", "n3"})
        fields.update(overrides.get(name, {}))
        out[name] = _NodeView(**fields)
    return out


def test_formed_cluster_has_no_problems() -> None:
    assert _formation_problems(EXPECTED, views(), need_meta_leader=True) == []


def test_missing_route() -> None:
    problems = _formation_problems(EXPECTED, views(n3={"routes": frozenset({"n1"})}))
    assert problems == ["n3: no route to n2 yet"]


def test_incomplete_connect_urls() -> None:
    v = views(n1={"connect_ports": frozenset({4001, 4002})})
    assert _formation_problems(EXPECTED, v) == ["n1: connect_urls lack n3"]
    assert _formation_problems(EXPECTED, v, check_connect_urls=False) == []


def test_meta_leader_missing_or_not_agreed() -> None:
    v = views(n1={"meta_leader": None}, n3={"meta_leader": None})
    assert _formation_problems(EXPECTED, v, need_meta_leader=True) == ["n1, n3: no JetStream meta leader yet"]
    assert _formation_problems(EXPECTED, v) == []  # without JetStream (or without a majority) not asked
    v = views(n1={"meta_leader": "n1"})
    assert _formation_problems(EXPECTED, v, need_meta_leader=True) == [
        "JetStream meta leader not agreed on (n1 follows n1, n2 follows n2, n3 follows n2)"
    ]
    v = views(n1={"meta_leader": "n9"}, n2={"meta_leader": "n9"}, n3={"meta_leader": "n9"})
    assert _formation_problems(EXPECTED, v, need_meta_leader=True) == ["JetStream meta leader n9 is not a running node"]


def test_meta_leader_not_seeing_every_peer_current() -> None:
    v = views(n2={"meta_current": frozenset({"n1"})})
    assert _formation_problems(EXPECTED, v, need_meta_leader=True) == [
        "JetStream meta leader n2 does not see n3 current yet"
    ]
    assert _formation_problems(EXPECTED, v) == []


def test_a_node_not_knowing_a_peer_online() -> None:
    online = {"n1": frozenset({"n2", "n3"}), "n2": frozenset({"n1", "n3"}), "n3": frozenset({"n2"})}
    v = views(**{name: {"meta_online": known} for name, known in online.items()})
    assert _formation_problems(EXPECTED, v, need_meta_leader=True) == [
        "n3 does not know n1 as online JetStream peers yet"
    ]


def pools(name: str, **per_remote: tuple[int, frozenset[str]]) -> dict[str, tuple[int, frozenset[str]]]:
    whole = {other: (3, frozenset({"$SYS"})) for other in MESH[name]}
    return whole | per_remote


def test_whole_route_pools_have_no_problems() -> None:
    v = views(**{name: {"route_pools": pools(name), "pool_size": 3} for name in EXPECTED})
    assert _formation_problems(EXPECTED, v) == []


def test_a_route_pool_still_being_dialled() -> None:
    # a route to every node exists, but n1 has only one of the three pooled connections to n2 so far
    partial = pools("n1", n2=(1, frozenset({"$SYS"})))
    v = views(**{name: {"route_pools": partial if name == "n1" else pools(name), "pool_size": 3} for name in EXPECTED})
    assert _formation_problems(EXPECTED, v) == ["n1: 1 of 3 pooled route connections to n2 yet"]


def test_a_pinned_account_route_missing_on_one_side() -> None:
    lacking = pools("n3", n1=(3, frozenset()))
    v = views(**{name: {"route_pools": lacking if name == "n3" else pools(name), "pool_size": 3} for name in EXPECTED})
    assert _formation_problems(EXPECTED, v) == ["n3: 3 of 3 pooled route connections to n1, none pinned for $SYS yet"]
