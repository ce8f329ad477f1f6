"""``Port``: the narrow internal interface through which the layers above core messaging (subscriptions'
bookkeeping, JetStream, Key-Value, the object store, services) reach their connection.

It is built once per connection by ``connection.py`` (``port_of(nc)``) from the connection's own bound methods, so
a call through the port costs what a call to the connection costs. Nothing outside ``connection.py`` touches a
private member of ``NatsConnection``; everything the higher layers need is listed here. docs/protocol-core.md
describes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .heartbeats import HeartbeatClock
from .lifecycle import Scope

if TYPE_CHECKING:
    from .errors import NatsError
    from .events import Status
    from .msg import Msg
    from .protocol import AckWindow
    from .request import ResponseWaiter
    from .subscription import Subscription

__all__ = ["Port"]


class Port:
    """What a connection offers to the layers built on it (all attributes are set by the connection)."""

    __slots__ = (
        "block_reading",
        "flush",
        "forget_reply",
        "forget_subscription",
        "heartbeats",
        "loop",
        "new_inbox",
        "observe_status",
        "pending_bytes_limit",
        "publish_acked",
        "reply_prefix",
        "reply_token",
        "report_callback_error",
        "report_slow_consumer",
        "request_future",
        "scope",
        "send_unsubscribe",
        "set_sink",
        "subscribe",
        "unblock_reading",
        "unobserve_status",
        "wait_reply",
        "write_now",
    )

    loop: asyncio.AbstractEventLoop
    scope: Scope
    pending_bytes_limit: int
    # A fresh unique inbox subject (``<inbox_prefix>.<nuid>``).
    new_inbox: Callable[[], str]
    # subscribe(subject, queue, sink, max=None): an internal subscription, no pending limits, no validation.
    # ``sink`` is a plain callable fed from the read path, or None for an iterator.
    subscribe: Callable[..., Subscription]
    # Replace what the parser calls for a sid (a wrapper that notes arrivals, say).
    set_sink: Callable[[int, Callable[[Msg], object]], None]
    send_unsubscribe: Callable[[int, int | None], None]
    flush: Callable[..., Awaitable[None]]
    # Hand what is buffered to the socket now instead of at the end of this event-loop turn (a pull's credit).
    write_now: Callable[[], None]
    # One clock watching the idle heartbeats of every pull on the connection (one timer per interval in use).
    heartbeats: HeartbeatClock
    forget_subscription: Callable[..., None]
    block_reading: Callable[[Subscription], None]
    unblock_reading: Callable[[Subscription], None]
    report_slow_consumer: Callable[[NatsError], None]
    # report_callback_error(exc, subject, sid): logs it and emits the CALLBACK_ERROR status.
    report_callback_error: Callable[[BaseException, str, int], None]
    # request_future(subject, payload, headers, timeout): the response through the shared inbox (arguments valid).
    request_future: Callable[[str, Any, Any, float], Awaitable[Msg]]
    # publish_acked(subject, payload, headers, timeout, window, transform): a pipelined JetStream publish, the future
    # of transform(ack, subject), counted in the AckWindow until settled.
    publish_acked: Callable[[str, Any, Any, float, AckWindow, Callable[[Msg, str], Any]], Awaitable[Any]]
    # Replies through the shared inbox without a future per reply: the prefix, a token, and the waiter to route to.
    reply_prefix: Callable[[], str]
    reply_token: Callable[[], str]
    wait_reply: Callable[[str, ResponseWaiter], None]
    forget_reply: Callable[[str], None]
    # Synchronous observers of the connection's status events (for the library's own reactions).
    observe_status: Callable[[Callable[[Status], None]], None]
    unobserve_status: Callable[[Callable[[Status], None]], None]

    def __init__(self, **members: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, members.pop(name))
        if members:
            raise TypeError(f"unknown port members: {sorted(members)}")
