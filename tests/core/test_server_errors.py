"""Server ``-ERR`` reports against a real nats-server with permissions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from cnats import Events, Msg, NatsConnection, PermissionContext, Status, connect
from cnats.errors import ErrorCode, PermissionViolationError
from cnats.testing import NatsServer

PERMISSIONS = """
authorization {
  users = [
    {user: "u", password: "p", permissions: {
      publish: {deny: ["secret.>"]}
      subscribe: {deny: ["hidden.>", "qonly.x workers"]}
    }}
    {user: "q", password: "p", permissions: {subscribe: {allow: ["pq.x workers"]}}}
  ]
}
"""

# No `users=`: the generated config then has no authorization block to conflict with this one.
pytestmark = pytest.mark.nats_server(jetstream=False, config=PERMISSIONS)


async def user_connect(server: NatsServer) -> NatsConnection:
    return await connect(server.url, user="u", password="p", reconnect=False)


async def next_error(it: AsyncIterator[Status], timeout: float = 3.0) -> Status:
    """The next ERROR status from ``it`` (other events are skipped)."""

    async def find() -> Status:
        async for status in it:
            if status.type == Events.ERROR:
                return status
        raise AssertionError("status iterator ended before an ERROR event")

    return await asyncio.wait_for(find(), timeout)


async def assert_usable(nc: NatsConnection, subject: str) -> None:
    """The connection still publishes, subscribes and round-trips."""
    sub = nc.subscribe(subject)
    nc.publish(subject, b"still here")
    msg = await sub.next_msg(timeout=2)
    assert msg.data == b"still here"
    sub.unsubscribe()
    assert not nc.is_closed


async def test_publish_permission_violation_is_an_error_status_and_the_connection_stays_usable(
    nats_server: NatsServer,
) -> None:
    nc = await user_connect(nats_server)
    try:
        statuses = nc.status()
        nc.publish("secret.x", b"classified")  # does not raise: the violation is reported asynchronously
        status = await next_error(statuses)
        assert status.type == Events.ERROR
        assert status.data == ErrorCode.PERMISSIONS_VIOLATION == "PERMISSIONS_VIOLATION"
        assert status.permission_context == PermissionContext("publish", "secret.x")
        assert isinstance(status.error, PermissionViolationError)
        assert status.error.code == ErrorCode.PERMISSIONS_VIOLATION
        assert (status.error.operation, status.error.subject, status.error.queue) == ("publish", "secret.x", None)
        await assert_usable(nc, "open.after.publish")
        assert await nc.rtt() > 0
    finally:
        await nc.close()
    assert nc.closed.result() is None


async def test_denied_subscription_closes_with_permission_violation(nats_server: NatsServer) -> None:
    nc = await user_connect(nats_server)
    try:
        statuses = nc.status()
        sub = nc.subscribe("hidden.x")
        status = await next_error(statuses)
        assert status.data == "PERMISSIONS_VIOLATION"
        assert status.permission_context == PermissionContext("subscription", "hidden.x")
        err = await asyncio.wait_for(asyncio.shield(sub.closed), 3)
        assert isinstance(err, PermissionViolationError)
        assert (err.operation, err.subject, err.queue) == ("subscription", "hidden.x", None)
        assert sub.is_closed

        async def iterate() -> list[Msg]:
            return [m async for m in sub]

        with pytest.raises(PermissionViolationError) as raised:
            await asyncio.wait_for(iterate(), 2)
        assert raised.value.subject == "hidden.x"
        assert not nc.is_closed
    finally:
        await nc.close()


async def test_denied_subscription_iterator_waiting_for_messages_raises(nats_server: NatsServer) -> None:
    nc = await user_connect(nats_server)
    try:
        sub = nc.subscribe("hidden.wait")

        async def iterate() -> list[Msg]:
            return [m async for m in sub]

        with pytest.raises(PermissionViolationError):
            await asyncio.wait_for(iterate(), 3)  # already waiting when the -ERR arrives
    finally:
        await nc.close()


async def test_denied_subscription_leaves_other_subscriptions_working(nats_server: NatsServer) -> None:
    nc = await user_connect(nats_server)
    try:
        allowed = nc.subscribe("open.>")
        denied = nc.subscribe("hidden.y")
        assert isinstance(await asyncio.wait_for(asyncio.shield(denied.closed), 3), PermissionViolationError)
        assert not allowed.is_closed
        nc.publish("open.a", b"1")
        assert (await allowed.next_msg(timeout=2)).data == b"1"
        await assert_usable(nc, "open.fresh")
    finally:
        await nc.close()


async def test_denied_queue_subscription_reports_its_queue(nats_server: NatsServer) -> None:
    nc = await user_connect(nats_server)
    try:
        statuses = nc.status()
        sub = nc.subscribe("hidden.q", queue="workers")
        status = await next_error(statuses)
        assert status.permission_context == PermissionContext("subscription", "hidden.q", "workers")
        err = await asyncio.wait_for(asyncio.shield(sub.closed), 3)
        assert isinstance(err, PermissionViolationError)
        assert (err.operation, err.subject, err.queue) == ("subscription", "hidden.q", "workers")
    finally:
        await nc.close()


async def test_denied_queue_subscription_does_not_close_an_allowed_plain_one_on_the_same_subject(
    nats_server: NatsServer,
) -> None:
    # "qonly.x workers" denies only the queue group: the -ERR names the queue, so the plain subscription lives on.
    nc = await user_connect(nats_server)
    try:
        statuses = nc.status()
        plain = nc.subscribe("qonly.x")
        queued = nc.subscribe("qonly.x", queue="workers")
        status = await next_error(statuses)
        assert status.permission_context == PermissionContext("subscription", "qonly.x", "workers")
        err = await asyncio.wait_for(asyncio.shield(queued.closed), 3)
        assert isinstance(err, PermissionViolationError) and err.queue == "workers"
        assert not plain.is_closed
        nc.publish("qonly.x", b"for the plain one")
        assert (await plain.next_msg(timeout=2)).data == b"for the plain one"
    finally:
        await nc.close()


async def test_denied_plain_subscription_does_not_close_an_allowed_queue_one_on_the_same_subject(
    nats_server: NatsServer,
) -> None:
    # User "q" may subscribe to "pq.x" only in queue group "workers": the plain subscription's -ERR names no queue,
    # and must close only the plain subscription.
    nc = await connect(nats_server.url, user="q", password="p", reconnect=False)
    try:
        statuses = nc.status()
        queued = nc.subscribe("pq.x", queue="workers")
        await nc.flush()
        plain = nc.subscribe("pq.x")
        status = await next_error(statuses)
        assert status.permission_context == PermissionContext("subscription", "pq.x")
        err = await asyncio.wait_for(asyncio.shield(plain.closed), 3)
        assert isinstance(err, PermissionViolationError) and err.queue is None
        assert not queued.is_closed
        nc.publish("pq.x", b"for the queue group")
        assert (await queued.next_msg(timeout=2)).data == b"for the queue group"
    finally:
        await nc.close()
