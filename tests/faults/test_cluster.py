"""Clusters: servers discovered from INFO ``connect_urls``, fail-over to another node, ``ignore_cluster_updates``,
queue groups across a node failure, ``Events.UPDATE`` and ``Events.LDM``, against a real
three-node nats-server cluster. Lame duck mode is announced through a ChaosProxy that injects the
INFO a server in lame duck mode sends.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Callable

import pytest
from helpers.core import StatusLog, eventually

from cnats import DebugEvents, Events, Msg, NatsConnection, ServersChanged, connect
from cnats.errors import NatsConnectionRefusedError, NatsError
from cnats.testing import ChaosProxy, NatsServer

pytestmark = pytest.mark.nats_server(jetstream=False)

FAST = {"reconnect_time_wait": 0.05, "reconnect_jitter": 0.0}


def hostports(cluster: NatsServer) -> list[str]:
    return [f"127.0.0.1:{p}" for p in cluster.ports]


async def received_across_cluster(sub_nc: NatsConnection, pub: NatsConnection, subject: str) -> Msg:
    """Publish on ``pub`` until the subscription of ``sub_nc`` (interest propagates over routes) gets one."""
    got: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()

    def on_msg(msg: Msg) -> None:
        if not got.done():
            got.set_result(msg)

    sub = sub_nc.subscribe(subject, callback=on_msg)
    try:
        await sub_nc.flush()
        for _ in range(100):
            pub.publish(subject, b"ping")
            await pub.flush()
            try:
                return await asyncio.wait_for(asyncio.shield(got), 0.05)
            except asyncio.TimeoutError:
                continue
        raise AssertionError(f"no message on {subject!r} across the cluster")
    finally:
        sub.unsubscribe()


async def test_discovered_nodes_take_over_when_the_connected_node_dies(
    nats_server_factory: Callable[..., NatsServer],
) -> None:
    cluster = nats_server_factory(cluster=3)
    node = hostports(cluster)
    nc = await connect(cluster.urls[0], max_reconnect_attempts=3, **FAST)
    log = StatusLog(nc)
    try:
        assert nc.server == node[0]
        assert nc.info is not None and set(nc.info.connect_urls or []) == set(node)
        received: list[bytes] = []
        nc.subscribe("failover.x", callback=lambda m: received.append(m.data))
        await nc.flush()

        await asyncio.to_thread(cluster.stop, 0)
        await eventually(lambda: bool(log.of(Events.RECONNECT)), timeout=5, what="reconnect to another node")
        assert log.events[0].type == Events.DISCONNECT
        assert log.events[0].data == node[0]
        now = log.of(Events.RECONNECT)[0].data
        assert now in node[1:]
        assert nc.server == now
        assert not nc.is_closed

        # The restored subscription works on the new node: a publisher on the third node reaches it.
        other = next(n for n in range(1, 3) if node[n] != now)
        async with await connect(cluster.urls[other]) as pub:
            await received_across_cluster(nc, pub, "failover.probe")
            pub.publish("failover.x", b"from the other node")
            await pub.flush()
            await eventually(lambda: received == [b"from the other node"], timeout=2)
    finally:
        await log.aclose()
        await nc.close()


async def test_ignore_cluster_updates_leaves_no_node_to_fail_over_to(
    nats_server_factory: Callable[..., NatsServer],
) -> None:
    cluster = nats_server_factory(cluster=3)
    node = hostports(cluster)
    nc = await connect(cluster.urls[0], ignore_cluster_updates=True, max_reconnect_attempts=3, **FAST)
    log = StatusLog(nc)
    try:
        await asyncio.to_thread(cluster.restart, 2)  # topology changes are not reported either
        await asyncio.to_thread(cluster.stop, 0)
        err = await asyncio.wait_for(asyncio.shield(nc.closed), 5)
        assert isinstance(err, NatsConnectionRefusedError), repr(err)
        attempts = log.of(DebugEvents.RECONNECTING)
        assert len(attempts) == 3
        assert {s.data for s in attempts} == {node[0]}
        assert not log.of(Events.RECONNECT)
        assert not log.of(Events.UPDATE)
    finally:
        await log.aclose()
        await nc.close()


async def test_queue_group_keeps_serving_while_a_responder_node_dies(
    nats_server_factory: Callable[..., NatsServer],
) -> None:
    cluster = nats_server_factory(cluster=3)
    responders: list[NatsConnection] = []
    logs: list[StatusLog] = []
    requester = await connect(cluster.urls[1], **FAST)
    try:
        for i in range(3):
            r = await connect(cluster.urls[i], max_reconnect_attempts=-1, **FAST)
            responders.append(r)
            logs.append(StatusLog(r))
            r.subscribe("q.work", queue="workers", callback=lambda m, i=i: m.respond(str(i).encode()))
            await r.flush()

        async def answered_by() -> set[bytes]:
            seen = set()
            for _ in range(30):
                seen.add((await requester.request("q.work", timeout=1)).data)
            return seen

        # every member is reachable before the kill (interest has crossed the routes)
        seen: set[bytes] = set()

        async def all_members() -> bool:
            seen.update(await answered_by())
            return seen == {b"0", b"1", b"2"}

        await eventually(all_members, timeout=5, what="all three responders answer")

        outcome: list[str] = []
        by: collections.Counter[bytes] = collections.Counter()
        kill: asyncio.Task[None] | None = None
        for i in range(200):
            if i == 50:
                kill = asyncio.create_task(asyncio.to_thread(cluster.stop, 0))
            try:
                msg = await requester.request("q.work", timeout=0.25)
            except NatsError as exc:
                outcome.append(type(exc).__name__)
            else:
                outcome.append("ok")
                if i >= 150:
                    by[msg.data] += 1
            await asyncio.sleep(0.005)
        assert kill is not None
        await kill
        failures = [o for o in outcome if o != "ok"]
        assert len(failures) <= 5, (len(failures), collections.Counter(failures))
        assert outcome[-50:] == ["ok"] * 50
        # the responder of the dead node moved to another node and serves again
        await eventually(lambda: bool(logs[0].of(Events.RECONNECT)), timeout=5, what="responder 0 reconnected")
        assert logs[0].of(Events.RECONNECT)[0].data != hostports(cluster)[0]

        async def responder_zero_answers() -> bool:
            return b"0" in await answered_by()

        await eventually(responder_zero_answers, timeout=5, what="responder 0 serves after its reconnect")
    finally:
        for log in logs:
            await log.aclose()
        for r in responders:
            await r.close()
        await requester.close()


async def test_update_status_when_a_node_leaves_and_comes_back(
    nats_server_factory: Callable[..., NatsServer],
) -> None:
    cluster = nats_server_factory(cluster=3)
    node = hostports(cluster)
    nc = await connect(cluster.urls[0], **FAST)
    log = StatusLog(nc)
    try:
        await asyncio.to_thread(cluster.stop, 2)
        await eventually(lambda: bool(log.of(Events.UPDATE)), timeout=5, what="UPDATE after a node left")
        first = log.of(Events.UPDATE)[0].data
        assert first == ServersChanged(added=[], deleted=[node[2]])

        await asyncio.to_thread(cluster.start)
        await eventually(lambda: len(log.of(Events.UPDATE)) >= 2, timeout=5, what="UPDATE after the node returned")
        second = log.of(Events.UPDATE)[1].data
        assert second == ServersChanged(added=[node[2]], deleted=[])
        assert not log.of(Events.DISCONNECT)
        # the returned node is usable for fail-over again
        await asyncio.to_thread(cluster.stop, 0)
        await eventually(lambda: bool(log.of(Events.RECONNECT)), timeout=5, what="fail-over")
        assert log.of(Events.RECONNECT)[0].data in node[1:]
    finally:
        await log.aclose()
        await nc.close()


async def test_lame_duck_mode_info_emits_ldm(nats_server_factory: Callable[..., NatsServer]) -> None:
    cluster = nats_server_factory(cluster=3)
    async with ChaosProxy(cluster.urls[0]) as proxy:
        nc = await connect(proxy.url, **FAST)
        log = StatusLog(nc)
        try:
            assert nc.info is not None and not nc.info.ldm
            sub = nc.subscribe("ldm.x")
            await nc.flush()
            info = nc.info.to_dict()
            info["ldm"] = True  # what a server in lame duck mode announces (with its cluster's connect_urls)
            proxy.inject_to_client(b"INFO " + json.dumps(info).encode() + b"\r\n")
            await eventually(lambda: bool(log.of(Events.LDM)), timeout=2, what="LDM status")
            assert log.of(Events.LDM)[0].data == proxy.url.removeprefix("nats://")
            assert nc.info.ldm
            assert not log.of(Events.UPDATE)  # same connect_urls as before
            # LDM is a notice: the connection keeps working until the server really goes away
            nc.publish("ldm.x", b"still here")
            assert (await sub.next_msg(timeout=2)).data == b"still here"
            assert not log.of(Events.DISCONNECT)
        finally:
            await log.aclose()
            await nc.close()
