"""Service handlers of an instrumented connection: a SERVER span per request, child of the requester's CLIENT span.

The services package asks ``cnats.services.endpoint.handler_hooks`` once per endpoint, when the endpoint is added;
the handler it gets back is what the endpoint calls (and times, and counts) from then on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind

from ._delivering import Delivery, traced_callback
from ._names import NATS_ENDPOINT, NATS_SERVICE
from ._telemetry import Telemetry

if TYPE_CHECKING:
    from ..services.endpoint import ServiceEndpoint
    from ..services.service import Service

__all__ = ["handler_hook"]


def handler_hook(tel: Telemetry) -> Callable[[Service, ServiceEndpoint, Any], Any]:
    """What wraps the handler of each endpoint added on the instrumented connection."""

    def wrap_handler(service: Service, endpoint: ServiceEndpoint, handler: Any) -> Any:
        if not tel.active:
            return handler
        # the endpoint subscribes next, through the instrumented subscribe: its deliveries are this span already
        tel.claimed_subscription = (endpoint.subject, endpoint.queue_group)
        where = Delivery(
            endpoint.subject,
            endpoint.queue_group,
            kind=SpanKind.SERVER,
            extra={NATS_SERVICE: service.name, NATS_ENDPOINT: endpoint.name},
        )
        return traced_callback(tel, handler, where)

    return wrap_handler
