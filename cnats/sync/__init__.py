"""A blocking, thread-safe client over the asyncio API.

``cnats.sync.connect(...)`` takes the options of `cnats.connect` and runs the connection on a private event loop
in a daemon thread of its own; every method of what it returns may be called from any thread. Publishing is a
cheap hand-off to that loop; calls that wait for the server block the calling thread. Callbacks run on worker
threads (one per subscription, endpoint or consumer), never on the loop thread. Errors are the asyncio API's own
exception classes.
"""

from __future__ import annotations

from .bridge import SyncIterator
from .connection import SyncConnection, connect
from .consumer import SyncConsumer, SyncConsumerMessages, SyncConsumers
from .jetstream import SyncJetStream, SyncViews
from .kv import SyncKV, SyncKvWatcher
from .manager import SyncJetStreamManager
from .messages import SyncJsMsg, SyncMsg, SyncServiceMsg
from .objectstore import SyncObjectResult, SyncObjectStore
from .services import SyncService, SyncServiceClient, SyncServiceEndpoint, SyncServiceGroup, SyncServicesAPI
from .subscription import SyncSubscription

__all__ = [
    "SyncConnection",
    "SyncConsumer",
    "SyncConsumerMessages",
    "SyncConsumers",
    "SyncIterator",
    "SyncJetStream",
    "SyncJetStreamManager",
    "SyncJsMsg",
    "SyncKV",
    "SyncKvWatcher",
    "SyncMsg",
    "SyncObjectResult",
    "SyncObjectStore",
    "SyncService",
    "SyncServiceClient",
    "SyncServiceEndpoint",
    "SyncServiceGroup",
    "SyncServiceMsg",
    "SyncServicesAPI",
    "SyncSubscription",
    "SyncViews",
    "connect",
]
