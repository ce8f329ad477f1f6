"""JetStream: the manager, the client, and the API types.

Built so far: stream and consumer administration, direct gets, account info, acknowledged, pipelined and atomic
batch publishing, pull consumers (next, fetch, consume), the ordered consumer, the legacy push/pull subscriptions and
the Key-Value store (``js.views.kv``) and the object store (``js.views.os``).
"""

from typing import Any

from .api import (
    AccountInfo,
    AccountLimits,
    AccountTier,
    AckPolicy,
    Advisory,
    AdvisoryKind,
    ApiError,
    ApiStats,
    BatchAck,
    ClusterInfo,
    ConsumerApiAction,
    ConsumerConfig,
    ConsumerInfo,
    ConsumerPauseResponse,
    DeliverPolicy,
    DiscardPolicy,
    ExternalStream,
    JsHeaders,
    LostStreamData,
    PeerInfo,
    PersistMode,
    Placement,
    PriorityGroupState,
    PriorityPolicy,
    PubAck,
    PubHeaders,
    PublishExpect,
    PurgeResponse,
    ReplayPolicy,
    Republish,
    RetentionPolicy,
    SequenceInfo,
    StorageType,
    StoreCompression,
    StoredMsg,
    StreamAlternate,
    StreamConfig,
    StreamConsumerLimits,
    StreamInfo,
    StreamSource,
    StreamSourceInfo,
    StreamState,
    SubjectTransformConfig,
)
from .client import JetStreamClient, PublishBatch, Streams
from .consumer import (
    Consumer,
    ConsumerDebugEvents,
    ConsumerEvents,
    ConsumerMessages,
    Consumers,
    ConsumerStatus,
    OrderedConsumerOptions,
)
from .context import JetStreamOptions
from .counters import Counters
from .jsmsg import DeliveryInfo, JsMsg
from .manager import ConsumerAPI, DirectStreamAPI, JetStreamManager, Stream, StreamAPI
from .push import JetStreamPullSubscription, JetStreamSubscription
from .views import Views

_KV_NAMES = frozenset({"KV", "KvEntry", "KvOperation", "KvStatus", "KvWatcher"})
_OBJECT_STORE_NAMES = frozenset(
    {
        "ObjectInfo",
        "ObjectResult",
        "ObjectStore",
        "ObjectStoreLink",
        "ObjectStoreMeta",
        "ObjectStoreMetaOptions",
        "ObjectStoreStatus",
    }
)


def __getattr__(name: str) -> Any:
    """The Key-Value and object-store names live in cnats.kv and cnats.objectstore, which build on this package:
    resolved on first use, not at import."""
    if name in _KV_NAMES:
        from .. import kv

        return getattr(kv, name)
    if name in _OBJECT_STORE_NAMES:
        from .. import objectstore

        return getattr(objectstore, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "KV",
    "AccountInfo",
    "AccountLimits",
    "AccountTier",
    "AckPolicy",
    "Advisory",
    "AdvisoryKind",
    "ApiError",
    "ApiStats",
    "BatchAck",
    "ClusterInfo",
    "Consumer",
    "ConsumerAPI",
    "ConsumerApiAction",
    "ConsumerConfig",
    "ConsumerDebugEvents",
    "ConsumerEvents",
    "ConsumerInfo",
    "ConsumerMessages",
    "ConsumerPauseResponse",
    "ConsumerStatus",
    "Consumers",
    "Counters",
    "DeliverPolicy",
    "DeliveryInfo",
    "DirectStreamAPI",
    "DiscardPolicy",
    "ExternalStream",
    "JetStreamClient",
    "JetStreamManager",
    "JetStreamOptions",
    "JetStreamPullSubscription",
    "JetStreamSubscription",
    "JsHeaders",
    "JsMsg",
    "KvEntry",
    "KvOperation",
    "KvStatus",
    "KvWatcher",
    "LostStreamData",
    "ObjectInfo",
    "ObjectResult",
    "ObjectStore",
    "ObjectStoreLink",
    "ObjectStoreMeta",
    "ObjectStoreMetaOptions",
    "ObjectStoreStatus",
    "OrderedConsumerOptions",
    "PeerInfo",
    "PersistMode",
    "Placement",
    "PriorityGroupState",
    "PriorityPolicy",
    "PubAck",
    "PubHeaders",
    "PublishBatch",
    "PublishExpect",
    "PurgeResponse",
    "ReplayPolicy",
    "Republish",
    "RetentionPolicy",
    "SequenceInfo",
    "StorageType",
    "StoreCompression",
    "StoredMsg",
    "Stream",
    "StreamAPI",
    "StreamAlternate",
    "StreamConfig",
    "StreamConsumerLimits",
    "StreamInfo",
    "StreamSource",
    "StreamSourceInfo",
    "StreamState",
    "Streams",
    "SubjectTransformConfig",
    "Views",
]
