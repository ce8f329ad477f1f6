"""Helpers for tests with a nats-py peer on the same real server."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NatsPyClient
from nats.aio.msg import Msg as NatsPyMsg
from nats.aio.subscription import Subscription as NatsPySubscription

from cnats.testing import NatsServer

from .core import eventually, http_json


async def py_subscribe(
    server: NatsServer,
    py: NatsPyClient,
    subject: str,
    *,
    queue: str = "",
    cb: Callable[[NatsPyMsg], Awaitable[None]] | None = None,
) -> NatsPySubscription:
    """Subscribe with nats-py and return once the server holds the subscription.

    nats-py's ``flush()`` is no barrier for a SUB: it writes its PING straight to the socket while the SUB may
    still wait in its outbound buffer, so the PONG can come back before the server has read the SUB. The server's
    monitoring endpoint tells for sure; the peer is found there by its connection name, which it must have.
    """
    name = py.options.get("name")
    assert name, "give the nats-py peer a connection name (connect(..., name=...)) so /connz can find it"
    sub = await py.subscribe(subject, queue=queue, cb=cb)

    async def registered() -> bool:
        data = await http_json(f"{server.monitor_urls[0]}/connz?subs=1")
        conns = [c for c in data["connections"] if c.get("name") == name]
        return any(subject in c.get("subscriptions_list", []) for c in conns)

    await eventually(registered, interval=0.02, what=f"nats-py subscription on {subject!r} reaching the server")
    return sub


async def py_settled(server: NatsServer, py: NatsPyClient) -> None:
    """Return once the server has read every SUB nats-py has sent or buffered so far (services add many at once).

    nats-py writes its SUBs in order, so a fresh subscription's reaching the server says all before it did.
    """
    marker = await py_subscribe(server, py, f"_settled.{uuid.uuid4().hex}")
    await marker.unsubscribe()
