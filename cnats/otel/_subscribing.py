"""The instrumented ``subscribe`` of a connection: a callback is wrapped once, here (a process span per message); a
subscription without one is switched to its traced subclass (a receive span per message handed out)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..subscription import Subscription
from ._delivering import Delivery, traced_callback
from ._sending import untraced_subject
from ._telemetry import Telemetry

__all__ = ["traced_subscribe"]


def traced_subscribe(
    tel: Telemetry, subscribe: Callable[..., Subscription], trace_iterator: Callable[[Any], None]
) -> Callable[..., Subscription]:
    """``nc.subscribe`` whose deliveries get spans (subjects starting with ``$`` excepted, as for sends)."""

    def subscribe_traced(subject: str, **options: Any) -> Subscription:
        claimed = tel.claimed_subscription
        if claimed is not None:
            # a service endpoint subscribing right after its handler was wrapped (a SERVER span): not twice
            tel.claimed_subscription = None
            if claimed == (subject, options.get("queue")):
                return subscribe(subject, **options)
        if not tel.active or untraced_subject(subject):
            return subscribe(subject, **options)
        callback = options.get("callback")
        if callback is None:
            sub = subscribe(subject, **options)
            trace_iterator(sub)
            return sub
        if callable(callback):  # (anything else is refused by subscribe itself)
            options["callback"] = traced_callback(tel, callback, Delivery(subject, options.get("queue")))
        return subscribe(subject, **options)

    return subscribe_traced
