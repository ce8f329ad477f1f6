"""greeter: a tiny NATS service that greets people and remembers, in a Key-Value bucket, how often it saw each.

Request ``greeter.hello`` with a name; the answer is ``Hello, <name>! (visit <n>)``. Run as many instances as you
like: they share the requests (one queue group) and the counters (compare-and-set on the KV revision).
"""

from __future__ import annotations

import re

import cnats
from cnats.jetstream import KV, KvOperation
from cnats.services import Service, ServiceMsg

BUCKET = "greeter-visits"
SUBJECT = "greeter.hello"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a name is also a KV key: keep it to safe characters

__all__ = ["BUCKET", "SUBJECT", "count_visit", "start_greeter"]


async def count_visit(kv: KV, name: str) -> int:
    """Add one to the visit count of ``name`` and return the new count; safe with concurrent writers."""
    while True:
        entry = await kv.get(name)
        try:
            if entry is None or entry.operation is not KvOperation.PUT:
                await kv.create(name, b"1")
                return 1
            count = int(entry.value) + 1
            await kv.update(name, str(count), entry.revision)
            return count
        except cnats.WrongLastSequenceError:
            continue  # another instance wrote in between: read the new value and try again


async def start_greeter(nc: cnats.NatsConnection, *, replicas: int = 1) -> Service:
    """Start one greeter instance on ``nc``; stop it with ``await service.stop()``."""
    kv = await nc.jetstream().views.kv(BUCKET, replicas=replicas)
    service = await nc.services.add("greeter", "1.0.0", description="greets people and counts their visits")

    async def hello(msg: ServiceMsg) -> None:
        name = msg.string().strip() or "world"
        if not _NAME.fullmatch(name):
            msg.respond_error(400, "a name is 1 to 64 letters, digits, '-' or '_'")
            return
        visits = await count_visit(kv, name)
        msg.respond(f"Hello, {name}! (visit {visits})")

    service.add_endpoint("hello", hello, subject=SUBJECT)
    return service
