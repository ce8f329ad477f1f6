"""Every public name is importable from ``cnats``; JetStream, KV and object-store names also from
``cnats.jetstream``, service names also from ``cnats.services``."""

from __future__ import annotations

import importlib

import pytest

import cnats
import cnats.jetstream

JETSTREAM_NAMES = [
    "JetStreamClient",
    "JetStreamManager",
    "JetStreamOptions",
    "StreamConfig",
    "StreamInfo",
    "ConsumerConfig",
    "ConsumerInfo",
    "PubAck",
    "PublishExpect",
    "BatchAck",
    "JsMsg",
    "DeliveryInfo",
    "Consumer",
    "ConsumerMessages",
    "OrderedConsumerOptions",
    "ConsumerEvents",
    "StoredMsg",
    "AckPolicy",
    "DeliverPolicy",
    "RetentionPolicy",
    "StorageType",
    "PriorityPolicy",
    "PriorityGroupState",
    "KV",
    "KvEntry",
    "KvOperation",
    "KvStatus",
    "KvWatcher",
    "Views",
    "ObjectStore",
    "ObjectInfo",
    "ObjectResult",
    "ObjectStoreLink",
    "ObjectStoreMeta",
    "ObjectStoreMetaOptions",
    "ObjectStoreStatus",
]
SERVICE_NAMES = [
    "SERVICE_API_PREFIX",
    "SERVICE_ERROR_HEADER",
    "SERVICE_ERROR_CODE_HEADER",
    "ServiceVerb",
    "ServiceResponseType",
    "ServiceHandler",
    "ServicesAPI",
    "Service",
    "ServiceGroup",
    "ServiceEndpoint",
    "ServiceMsg",
    "ServiceError",
    "ServiceIdentity",
    "EndpointInfo",
    "ServiceInfo",
    "EndpointStats",
    "ServiceStats",
    "ServiceClient",
]
CORE_NAMES = [
    "connect",
    "NatsConnection",
    "Msg",
    "Headers",
    "Subscription",
    "Status",
    "Events",
    "DebugEvents",
    "Stats",
    "ServerInfo",
    "TlsOptions",
    "PendingPolicy",
    "RequestStrategy",
    "StringCodec",
    "JSONCodec",
    "nuid",
    "create_inbox",
    "nkey_authenticator",
    "creds_authenticator",
    "NatsError",
    "ProtocolError",
    "USES_CYTHON",
]


@pytest.mark.parametrize("name", JETSTREAM_NAMES)
def test_jetstream_names_from_both_modules(name: str) -> None:
    assert getattr(cnats, name) is getattr(cnats.jetstream, name)


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_service_names_from_both_modules(name: str) -> None:
    services = importlib.import_module("cnats.services")
    assert name in services.__all__
    assert getattr(cnats, name) is getattr(services, name)


@pytest.mark.parametrize("name", CORE_NAMES)
def test_core_names_from_cnats(name: str) -> None:
    assert hasattr(cnats, name)
    assert name in cnats.__all__


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError):
        cnats.no_such_name  # noqa: B018
    with pytest.raises(ImportError):
        importlib.import_module("cnats.no_such_module")
