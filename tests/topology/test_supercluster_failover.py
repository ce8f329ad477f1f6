"""A client fails over from one cluster of a supercluster to the other when every node of its cluster stops, and keeps
working there: its requests are answered, its subscriptions delivered. The test stops nodes, so it has a supercluster
of its own (module-scoped fixtures: this module gets its own instance); core NATS only, which is all failing over
needs (with JetStream, losing half the nodes would also lose the meta group's quorum)."""

from __future__ import annotations

import pytest
from helpers.core import StatusLog, eventually

import cnats
from cnats import Events, Msg
from cnats.errors import NoRespondersError
from cnats.testing import NatsSupercluster

pytestmark = pytest.mark.nats_supercluster(jetstream=False)


async def test_client_fails_over_to_the_other_cluster(nats_supercluster: NatsSupercluster) -> None:
    east, west = nats_supercluster.clusters["east"], nats_supercluster.clusters["west"]
    # east's nodes first: the client starts there; west's are where it can go (a client learns only the nodes of
    # its own cluster from INFO, so the other cluster's URLs are given)
    nc = await cnats.connect(
        [*east.urls, *west.urls], no_randomize=True, reconnect_time_wait=0.05, max_reconnect_attempts=-1
    )
    responder = await cnats.connect(west.urls)
    log = StatusLog(nc)
    try:
        assert nc.info is not None and nc.info.server_name == "east-n1"
        responder.subscribe("fo.where", callback=lambda m: m.respond(b"west"))
        received: list[Msg] = []
        nc.subscribe("fo.events", callback=received.append)
        await nc.flush()

        async def answered() -> bool:
            try:
                return (await nc.request("fo.where", b"", timeout=2)).data == b"west"
            except NoRespondersError:
                return False  # the responder's interest has not crossed the gateway yet

        await eventually(answered, timeout=10, interval=0.02, what="answered across the gateway before failing over")

        for node in range(len(east.ports)):
            east.stop(node)
        await eventually(
            lambda: bool(log.of(Events.RECONNECT)) and nc.info is not None and nc.info.server_name.startswith("west-"),
            timeout=15,
            interval=0.02,
            what="reconnected to a west node",
        )
        assert log.of(Events.DISCONNECT)

        # still working: a request, and the subscription it had before (restored on the new server)
        assert (await nc.request("fo.where", b"", timeout=5)).data == b"west"

        async def delivered() -> bool:
            responder.publish("fo.events", b"after")
            await responder.flush()
            return any(m.data == b"after" for m in received)

        await eventually(delivered, timeout=10, interval=0.05, what="the old subscription delivers in west")
    finally:
        await log.aclose()
        await responder.close()
        await nc.close()
