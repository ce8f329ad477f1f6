"""Services: the ADR-32 micro protocol as nats.js 2.29 implements it.

``await nc.services.add(name, version)`` starts a service; endpoints answer requests and the service answers the
discovery subjects ``$SRV.PING|INFO|STATS[.<name>[.<id>]]``. ``nc.services.client()`` discovers running services.
"""

from .api import ServicesAPI
from .client import ServiceClient
from .endpoint import ServiceEndpoint
from .msg import ServiceError, ServiceHandler, ServiceMsg
from .schema import (
    SERVICE_API_PREFIX,
    SERVICE_ERROR_CODE_HEADER,
    SERVICE_ERROR_HEADER,
    EndpointInfo,
    EndpointStats,
    ServiceIdentity,
    ServiceInfo,
    ServiceResponseType,
    ServiceStats,
    ServiceVerb,
)
from .service import Service, ServiceGroup

__all__ = [
    "SERVICE_API_PREFIX",
    "SERVICE_ERROR_CODE_HEADER",
    "SERVICE_ERROR_HEADER",
    "EndpointInfo",
    "EndpointStats",
    "Service",
    "ServiceClient",
    "ServiceEndpoint",
    "ServiceError",
    "ServiceGroup",
    "ServiceHandler",
    "ServiceIdentity",
    "ServiceInfo",
    "ServiceMsg",
    "ServiceResponseType",
    "ServiceStats",
    "ServiceVerb",
    "ServicesAPI",
]
