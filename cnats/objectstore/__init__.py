"""The object store (ADR-20 as nats.js implements it): objects of any size stored as chunks on
the JetStream stream ``OBJ_<bucket>``, with a meta entry per object. Open one with ``await js.views.os(bucket)``."""

from .model import (
    ObjectInfo,
    ObjectStoreLink,
    ObjectStoreMeta,
    ObjectStoreMetaOptions,
    ObjectStoreStatus,
    object_store_status,
)
from .reader import ObjectResult
from .store import ObjectStore, open_object_store
from .watch import ObjectWatcher

__all__ = [
    "ObjectInfo",
    "ObjectResult",
    "ObjectStore",
    "ObjectStoreLink",
    "ObjectStoreMeta",
    "ObjectStoreMetaOptions",
    "ObjectStoreStatus",
    "ObjectWatcher",
    "object_store_status",
    "open_object_store",
]
