"""A topology from ``NatsSupercluster`` / ``NatsLeafnodes`` (and their fixtures) is fully formed when handed out: routes
and gateways up at both ends, one JetStream meta leader, each cluster placing a replicated stream asked for from the
other, the leaf node connected and each domain answering from the other side. The checks look once, right away: no
retries. Stopping leaves no process and no temporary directory behind."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from typing import Any

import pytest

from cnats.testing import NatsLeafnodes, NatsServer, NatsSupercluster
from cnats.testing.server import _raw_api_call
from cnats.testing.topology import _gateway_problems, _GatewayView, _leaf_problems

_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def monitor(server: NatsServer, node: int, path: str) -> dict[str, Any]:
    with _http.open(server.monitor_urls[node] + path, timeout=5) as resp:
        assert resp.status == 200
        doc: dict[str, Any] = json.loads(resp.read())
    return doc


def api(port: int, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One JetStream API request on a fresh plain connection to ``port``."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.settimeout(5)
        return _raw_api_call(sock, {"verbose": False, "headers": True, "no_responders": True}, subject, body)


def ports_of(urls: list[str]) -> set[int]:
    return {int(u.rpartition(":")[2]) for u in urls}


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def assert_gone(topology: NatsSupercluster | NatsLeafnodes, ports: list[int]) -> None:
    assert not topology.is_running
    assert all(not log.parent.exists() for log in topology.log_files), "temporary directories left behind"
    assert all(refused(p) for p in ports)


def assert_supercluster_formed(sc: NatsSupercluster, *, jetstream: bool) -> None:
    clusters = sc.clusters
    ids: dict[str, tuple[str, str]] = {}  # server id -> (cluster, server name)
    gateways: dict[str, dict[str, Any]] = {}
    for cname, cluster in clusters.items():
        names = {f"{cname}-n{i + 1}" for i in range(len(cluster.ports))}
        for i in range(len(cluster.ports)):
            me = f"{cname}-n{i + 1}"
            varz = monitor(cluster, i, "/varz")
            assert varz["server_name"] == me and varz["cluster"]["name"] == cname
            assert ports_of(varz["connect_urls"]) == set(cluster.ports), f"{me}: connect_urls"
            routes = monitor(cluster, i, "/routez")["routes"] or []
            assert {r["remote_name"] for r in routes} == names - {me}, f"{me}: route mesh"
            ids[varz["server_id"]] = (cname, me)
            gateways[me] = monitor(cluster, i, "/gatewayz")
    # every node has a gateway to every other cluster, which the node it reaches lists as inbound
    by_name = {name: sid for sid, (_, name) in ids.items()}
    for sid, (cname, me) in ids.items():
        outbound = gateways[me]["outbound_gateways"]
        assert set(outbound) == set(clusters) - {cname}, f"{me}: outbound gateways"
        for other, entry in outbound.items():
            target_cluster, target = ids[entry["connection"]["name"]]
            assert target_cluster == other
            inbound = gateways[target]["inbound_gateways"][cname]
            assert sid in {c["connection"]["name"] for c in inbound}, f"{target} did not accept {me}"
    if not jetstream:
        return
    # one meta group over every node: one leader, followed by all, seeing all current
    leaders = {name: monitor(clusters[name.rsplit("-", 1)[0]], int(name[-1]) - 1, "/jsz") for name in by_name}
    (leader,) = {doc["meta_cluster"]["leader"] for doc in leaders.values()}
    replicas = leaders[leader]["meta_cluster"]["replicas"]
    assert {r["name"] for r in replicas if r.get("current") and not r.get("offline")} == set(by_name) - {leader}
    # a stream replicated on every node of a cluster, asked for from the other cluster, is placed there at once
    (east, west) = clusters.values()
    for into, asker in ((east, west), (west, east)):
        cname = next(name for name, c in clusters.items() if c is into)
        config: dict[str, Any] = {"name": f"AT_{cname}", "subjects": [f"at.{cname}"], "storage": "memory"}
        config |= {"num_replicas": len(into.ports), "placement": {"cluster": cname}}
        created = api(asker.port, f"$JS.API.STREAM.CREATE.AT_{cname}", config)
        assert "error" not in created, created
        assert created["cluster"]["name"] == cname
        assert "error" not in api(asker.port, f"$JS.API.STREAM.DELETE.AT_{cname}")
    listed = api(east.port, "$JS.API.STREAM.NAMES").get("streams") or []
    assert not [name for name in listed if str(name).startswith("cnats_ready_")]  # the probes left nothing


# ---------------------------------------------------------------------------------------------------- supercluster


def test_supercluster_fixture_is_fully_formed(nats_supercluster: NatsSupercluster) -> None:
    assert list(nats_supercluster.clusters) == ["east", "west"]
    assert len(nats_supercluster.urls) == 4
    assert_supercluster_formed(nats_supercluster, jetstream=True)


def test_restarted_node_rejoins_the_supercluster(nats_supercluster: NatsSupercluster) -> None:
    # a node that does not lead the meta group (a new leader election would take seconds)
    west = nats_supercluster.clusters["west"]
    leader = monitor(west, 0, "/jsz")["meta_cluster"]["leader"]
    node = 1 if leader == "west-n1" else 0
    west.restart(node)  # returns once the whole supercluster is formed again
    assert_supercluster_formed(nats_supercluster, jetstream=True)


def test_three_core_clusters() -> None:
    with NatsSupercluster(clusters=("a", "b", "c"), jetstream=False) as sc:
        assert list(sc.clusters) == ["a", "b", "c"]
        assert_supercluster_formed(sc, jetstream=False)
        ports = [p for c in sc.clusters.values() for p in c.ports]
    assert_gone(sc, ports)


def test_supercluster_timeout_says_what_was_missing() -> None:
    # the user config replaces the generated gateway block with an empty one: the nodes run, without gateways
    sc = NatsSupercluster(jetstream=False, config="gateway {}", startup_timeout=3.0)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"not ready after 3\.0 s \(supercluster not formed: ") as ei, sc:
        pass
    assert time.monotonic() - t0 < 8  # the timeout, then stopping
    assert "east-n1: no gateway to west yet" in str(ei.value) and "west-n2: no gateway to east yet" in str(ei.value)
    assert "<NatsServer east: " in str(ei.value)  # each cluster's log tail, named
    assert_gone(sc, [p for c in sc.clusters.values() for p in c.ports])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clusters": ("east",)}, "at least two distinct names"),
        ({"clusters": ("a", "a")}, "at least two distinct names"),
        ({"clusters": "ab"}, "at least two distinct names"),
        ({"clusters": ("a", "b.c")}, "invalid cluster name 'b.c'"),
        ({"nodes": 1}, "nodes must be an int >= 2"),
        ({"startup_timeout": 0}, "startup_timeout must be > 0"),
    ],
)
def test_supercluster_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NatsSupercluster(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hub_nodes": 0}, "hub_nodes must be an int >= 1"),
        ({"hub_domain": "same", "leaf_domain": "same"}, "different JetStream domains"),
        ({"leaf_domain": "a.b"}, "invalid JetStream domain 'a.b'"),
        ({"hub_domain": ""}, "invalid JetStream domain ''"),
    ],
)
def test_leafnodes_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NatsLeafnodes(**kwargs)


# ---------------------------------------------------------------------------------------------------- leaf nodes


def assert_leaf_connected(topology: NatsLeafnodes) -> None:
    hub, leaf = topology.hub, topology.leaf
    hub_names = {f"{topology.hub_domain}-n{i + 1}" for i in range(len(hub.ports))}
    (link,) = monitor(leaf, 0, "/leafz")["leafs"]
    assert link["name"] in hub_names
    hub_index = int(link["name"].rsplit("-n", 1)[1]) - 1
    assert f"{topology.leaf_domain}-n1" in {entry["name"] for entry in monitor(hub, hub_index, "/leafz")["leafs"]}
    assert monitor(hub, 0, "/jsz")["config"]["domain"] == topology.hub_domain
    assert monitor(leaf, 0, "/jsz")["config"]["domain"] == topology.leaf_domain
    # each domain answers from the other side, at once
    assert api(leaf.port, f"$JS.{topology.hub_domain}.API.INFO").get("domain") == topology.hub_domain
    assert api(hub.port, f"$JS.{topology.leaf_domain}.API.INFO").get("domain") == topology.leaf_domain


def test_leafnodes_fixture_is_connected(nats_leafnodes: NatsLeafnodes) -> None:
    assert (nats_leafnodes.hub_domain, nats_leafnodes.leaf_domain) == ("hub", "leaf")
    assert len(nats_leafnodes.hub.urls) == 1 and len(nats_leafnodes.leaf.urls) == 1
    assert_leaf_connected(nats_leafnodes)


def test_leaf_node_to_a_hub_cluster() -> None:
    with NatsLeafnodes(hub_nodes=2, hub_domain="core", leaf_domain="edge") as topology:
        hub = topology.hub
        for i in range(2):
            assert {r["remote_name"] for r in monitor(hub, i, "/routez")["routes"]} == {f"core-n{2 - i}"}
        assert_leaf_connected(topology)
        ports = [*hub.ports, *topology.leaf.ports]
    assert_gone(topology, ports)


def test_restarted_leaf_reconnects(nats_leafnodes: NatsLeafnodes) -> None:
    nats_leafnodes.leaf.restart()  # returns once connected and answering again
    assert_leaf_connected(nats_leafnodes)


# ---------------------------------------------------------------------------------------------------- the verdicts


def gateway_views() -> dict[str, _GatewayView]:
    """A formed 2 x 2 supercluster: a1 and a2 reach b1, b1 and b2 reach a2."""
    return {
        "a1": _GatewayView(server_id="A1", outbound={"b": "B1"}, inbound={}),
        "a2": _GatewayView(server_id="A2", outbound={"b": "B1"}, inbound={"b": frozenset({"B1", "B2"})}),
        "b1": _GatewayView(server_id="B1", outbound={"a": "A2"}, inbound={"a": frozenset({"A1", "A2"})}),
        "b2": _GatewayView(server_id="B2", outbound={"a": "A2"}, inbound={}),
    }


CLUSTERS = {"a": ["a1", "a2"], "b": ["b1", "b2"]}


def test_formed_gateways_have_no_problems() -> None:
    # a node without inbound connections (a1, b2) is fine: each outbound one lands on some node of the other cluster
    assert _gateway_problems(CLUSTERS, gateway_views()) == []


def test_gateway_problems() -> None:
    views = gateway_views()
    views["a1"] = _GatewayView(server_id="A1", outbound={}, inbound={})  # not connected yet
    views["b1"] = _GatewayView(server_id="B1", outbound={"a": "A2"}, inbound={"a": frozenset({"A1"})})  # a2 unseen
    views["b2"] = _GatewayView(server_id="B2", outbound={"a": "Z9"}, inbound={})  # a node that is not running
    assert _gateway_problems(CLUSTERS, views) == [
        "a1: no gateway to b yet",
        "b1: gateway from a2 not accepted yet",
        "b2: its gateway to a reaches no running node of a",
    ]
    # a cluster with no running node (all stopped by a test) is not waited for
    assert _gateway_problems({"a": ["a1", "a2"]}, views) == []


def test_leaf_problems() -> None:
    hubs = ["hub-n1", "hub-n2"]
    seen = {"hub-n1": frozenset({"leaf-n1"}), "hub-n2": frozenset()}
    assert _leaf_problems("leaf-n1", hubs, frozenset({"hub-n1"}), seen) == []
    assert _leaf_problems("leaf-n1", hubs, frozenset(), seen) == [
        "leaf-n1: no leafnode connection to hub-n1 or hub-n2 yet"
    ]
    assert _leaf_problems("leaf-n1", hubs, frozenset({"hub-n2"}), seen) == [
        "hub-n2: leafnode connection from leaf-n1 not accepted yet"
    ]
