"""The greeter against real nats-servers, started for each test by cnats' pytest fixtures."""

from __future__ import annotations

import asyncio

import cnats
import pytest
from cnats.services import ServiceError
from cnats.testing import NatsServer

from greeter import BUCKET, SUBJECT, count_visit, start_greeter


async def test_greets_and_counts_visits(nc: cnats.NatsConnection) -> None:
    service = await start_greeter(nc)
    await nc.flush()  # the endpoint's subscription has reached the server

    assert (await nc.request(SUBJECT, b"alice")).string() == "Hello, alice! (visit 1)"
    assert (await nc.request(SUBJECT, b"alice")).string() == "Hello, alice! (visit 2)"
    assert (await nc.request(SUBJECT)).string() == "Hello, world! (visit 1)"

    kv = await nc.jetstream().views.kv(BUCKET)
    entry = await kv.get("alice")
    assert entry is not None and entry.value == b"2"
    await service.stop()


async def test_bad_name_is_a_service_error(nc: cnats.NatsConnection) -> None:
    service = await start_greeter(nc)
    await nc.flush()
    reply = await nc.request(SUBJECT, b"not a name")
    error = ServiceError.to_service_error(reply)
    assert error is not None and error.code == 400
    assert (await service.stats()).endpoints[0].num_errors == 1
    await service.stop()


async def test_concurrent_counting_loses_no_visit(nc: cnats.NatsConnection) -> None:
    kv = await nc.jetstream().views.kv(BUCKET)
    counts = await asyncio.gather(*(count_visit(kv, "bob") for _ in range(10)))
    assert sorted(counts) == list(range(1, 11))


@pytest.mark.nats_server(jetstream=False)
async def test_needs_jetstream(nc: cnats.NatsConnection) -> None:
    with pytest.raises(cnats.JetStreamNotEnabledError):
        await start_greeter(nc)


async def test_instances_on_a_cluster_share_the_counters(nats_cluster: NatsServer) -> None:
    # one instance on each of two nodes of a three-node JetStream cluster, the bucket replicated three times
    first = await cnats.connect(nats_cluster.urls[0])
    second = await cnats.connect(nats_cluster.urls[1])
    try:
        await start_greeter(first, replicas=3)
        await start_greeter(second, replicas=3)
        await first.flush()
        await second.flush()
        # A replicated bucket is usable from every node a moment after it is created: until then its subjects
        # answer 503 (the greeter then answers with a service error). Warm up with a name the test does not count.
        for _ in range(100):
            if not ServiceError.is_service_error(await second.request(SUBJECT, b"warmup")):
                break
            await asyncio.sleep(0.05)

        found = [s async for s in await first.services.client(jitter=0.1).ping("greeter")]
        assert len(found) == 2

        answers = [(await second.request(SUBJECT, b"carol")).string() for _ in range(4)]
        assert answers == [f"Hello, carol! (visit {n})" for n in range(1, 5)]
    finally:
        await first.close()  # closing a connection stops its services
        await second.close()
