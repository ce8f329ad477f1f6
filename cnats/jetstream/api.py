"""JetStream API types: enums and the dataclasses of the JetStream API's JSON documents."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, ClassVar

from ..errors import BadJsonError
from ..headers import Headers
from .model import JsonModel, parse_time

__all__ = [
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
    "ConsumerApiAction",
    "ConsumerConfig",
    "ConsumerInfo",
    "ConsumerPauseResponse",
    "DeliverPolicy",
    "DiscardPolicy",
    "ExternalStream",
    "JsHeaders",
    "LostStreamData",
    "PeerInfo",
    "PersistMode",
    "Placement",
    "PriorityGroupState",
    "PriorityPolicy",
    "PubAck",
    "PubHeaders",
    "PublishExpect",
    "PurgeResponse",
    "ReplayPolicy",
    "Republish",
    "RetentionPolicy",
    "SequenceInfo",
    "StorageType",
    "StoreCompression",
    "StoredMsg",
    "StreamAlternate",
    "StreamConfig",
    "StreamConsumerLimits",
    "StreamInfo",
    "StreamSource",
    "StreamSourceInfo",
    "StreamState",
    "SubjectTransformConfig",
]


class RetentionPolicy(str, Enum):
    """When a stream removes messages: by limits, when all interested consumers acked (interest), or when one consumer
    acked (work queue).
    """

    LIMITS = "limits"
    INTEREST = "interest"
    WORKQUEUE = "workqueue"


class StorageType(str, Enum):
    """Where a stream keeps its messages: on disk (file) or in memory."""

    FILE = "file"
    MEMORY = "memory"


class DiscardPolicy(str, Enum):
    """What a full stream discards: old messages, or refuses new ones."""

    OLD = "old"
    NEW = "new"


class StoreCompression(str, Enum):
    """The on-disk compression of a stream: none or S2."""

    NONE = "none"
    S2 = "s2"


class PersistMode(str, Enum):
    """When a file stream syncs what it stores (server 2.12+): as usual, or asynchronously (faster, weaker)."""

    DEFAULT = "default"
    ASYNC = "async"


class AckPolicy(str, Enum):
    """How a consumer expects acknowledgements: none, all (cumulative), or explicit (each message)."""

    NONE = "none"
    ALL = "all"
    EXPLICIT = "explicit"
    NOT_SET = ""


class DeliverPolicy(str, Enum):
    """Where a consumer starts in its stream: all, last, new, a start sequence or time, or the last per subject."""

    ALL = "all"
    LAST = "last"
    NEW = "new"
    START_SEQUENCE = "by_start_sequence"
    START_TIME = "by_start_time"
    LAST_PER_SUBJECT = "last_per_subject"


class ReplayPolicy(str, Enum):
    """How fast a consumer replays: instantly, or at the original pace of publication."""

    INSTANT = "instant"
    ORIGINAL = "original"


class PriorityPolicy(str, Enum):
    """How a pull consumer with priority groups (server 2.11+) chooses among the pulls of a group: no policy,
    ``overflow`` (a pull may wait until enough is pending), ``pinned_client`` (one client gets everything until it goes
    quiet or is unpinned) or ``prioritized`` (server 2.12+: pulls of a lower priority number are served first).
    """

    NONE = "none"
    OVERFLOW = "overflow"
    PINNED_CLIENT = "pinned_client"
    PRIORITIZED = "prioritized"


class ConsumerApiAction(str, Enum):
    """The action of a consumer create request: create or update, create only, or update only."""

    CREATE_OR_UPDATE = ""
    UPDATE = "update"
    CREATE = "create"


class AdvisoryKind(str, Enum):
    """The kind of a JetStream advisory (`jsm.advisories()`): API audit, stream and consumer actions, leader
    elections...
    """

    API = "api_audit"
    STREAM_ACTION = "stream_action"
    CONSUMER_ACTION = "consumer_action"
    SNAPSHOT_CREATE = "snapshot_create"
    SNAPSHOT_COMPLETE = "snapshot_complete"
    RESTORE_CREATE = "restore_create"
    RESTORE_COMPLETE = "restore_complete"
    MAX_DELIVER = "max_deliver"
    TERMINATED = "terminated"
    ACK = "consumer_ack"
    STREAM_LEADER_ELECTED = "stream_leader_elected"
    STREAM_QUORUM_LOST = "stream_quorum_lost"
    CONSUMER_LEADER_ELECTED = "consumer_leader_elected"
    CONSUMER_QUORUM_LOST = "consumer_quorum_lost"


class PubHeaders(str, Enum):
    """Headers a JetStream publish sets for its expectations (message id, expected stream, last sequence...)."""

    MSG_ID = "Nats-Msg-Id"
    EXPECTED_STREAM = "Nats-Expected-Stream"
    EXPECTED_LAST_SEQ = "Nats-Expected-Last-Sequence"
    EXPECTED_LAST_MSG_ID = "Nats-Expected-Last-Msg-Id"
    EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
    TTL = "Nats-TTL"


class JsHeaders(str, Enum):
    """Headers JetStream sets on the messages it delivers (source, last sequences, rollup, pending counts...)."""

    STREAM_SOURCE = "Nats-Stream-Source"
    LAST_CONSUMER_SEQ = "Nats-Last-Consumer"
    LAST_STREAM_SEQ = "Nats-Last-Stream"
    CONSUMER_STALLED = "Nats-Consumer-Stalled"
    MESSAGE_SIZE = "Nats-Msg-Size"
    ROLLUP = "Nats-Rollup"
    ROLLUP_VALUE_SUBJECT = "sub"
    ROLLUP_VALUE_ALL = "all"
    PENDING_MESSAGES = "Nats-Pending-Messages"
    PENDING_BYTES = "Nats-Pending-Bytes"


@dataclass(kw_only=True)
class SubjectTransformConfig(JsonModel):
    """A subject transform: messages on `src` are stored under `dest`."""

    src: str | None = None
    dest: str


@dataclass(kw_only=True)
class Placement(JsonModel):
    """Where a stream is placed: a cluster, and server tags."""

    cluster: str | None = None
    tags: list[str] | None = None


@dataclass(kw_only=True)
class Republish(JsonModel):
    """Republishing of a stream's stored messages to other subjects (`src` to `dest`, optionally headers only)."""

    src: str
    dest: str
    headers_only: bool | None = None


@dataclass(kw_only=True)
class ExternalStream(JsonModel):
    """A stream in another JetStream domain or account: its API prefix and delivery prefix."""

    api: str
    deliver: str | None = None


@dataclass(kw_only=True)
class StreamSource(JsonModel):
    """A stream that a stream mirrors or sources from, with its start point, filter and transforms."""

    name: str
    opt_start_seq: int | None = None
    opt_start_time: datetime | None = None
    filter_subject: str | None = None
    external: ExternalStream | None = None
    domain: str | None = None
    subject_transforms: list[SubjectTransformConfig] | None = None


@dataclass(kw_only=True)
class StreamConsumerLimits(JsonModel):
    """Default limits of a stream's consumers: inactive threshold and maximum ack pending."""

    _DURATIONS: ClassVar[frozenset[str]] = frozenset({"inactive_threshold"})
    inactive_threshold: float | None = None
    max_ack_pending: int | None = None


@dataclass(kw_only=True)
class StreamConfig(JsonModel):
    """The configuration of a stream: name, subjects, retention, limits, storage, replicas, sources..."""

    _DURATIONS: ClassVar[frozenset[str]] = frozenset({"max_age", "duplicate_window", "subject_delete_marker_ttl"})
    name: str | None = None
    description: str | None = None
    subjects: list[str] | None = None
    retention: RetentionPolicy | None = None
    storage: StorageType | None = None
    max_consumers: int | None = None
    max_msgs: int | None = None
    max_bytes: int | None = None
    max_age: float | None = None
    max_msgs_per_subject: int | None = None
    max_msg_size: int | None = None
    discard: DiscardPolicy | None = None
    discard_new_per_subject: bool | None = None
    num_replicas: int | None = None
    no_ack: bool | None = None
    duplicate_window: float | None = None
    placement: Placement | None = None
    mirror: StreamSource | None = None
    sources: list[StreamSource] | None = None
    sealed: bool | None = None
    deny_delete: bool | None = None
    deny_purge: bool | None = None
    allow_rollup_hdrs: bool | None = None
    allow_direct: bool | None = None
    mirror_direct: bool | None = None
    republish: Republish | None = None
    subject_transform: SubjectTransformConfig | None = None
    compression: StoreCompression | None = None
    first_seq: int | None = None
    metadata: dict[str, str] | None = None
    consumer_limits: StreamConsumerLimits | None = None
    allow_atomic: bool | None = None
    allow_msg_ttl: bool | None = None
    # server 2.11-2.14: markers left where a message's TTL or the stream's max_age removed the last message of a
    # subject (kept this many seconds), counters, scheduled messages, batched publishing, and how a file is synced
    subject_delete_marker_ttl: float | None = None
    allow_msg_counter: bool | None = None
    allow_msg_schedules: bool | None = None
    allow_batched: bool | None = None
    persist_mode: PersistMode | None = None


@dataclass(kw_only=True)
class LostStreamData(JsonModel):
    """Messages a stream lost (damaged storage): their sequences and total bytes."""

    msgs: list[int] | None = None
    bytes: int = 0


@dataclass(kw_only=True)
class StreamState(JsonModel):
    """The state of a stream: message and byte counts, first and last sequences and times, consumers."""

    messages: int
    bytes: int
    first_seq: int
    first_ts: datetime | None
    last_seq: int
    last_ts: datetime | None
    consumer_count: int
    num_deleted: int = 0
    deleted: list[int] | None = None
    lost: LostStreamData | None = None
    num_subjects: int | None = None
    subjects: dict[str, int] | None = None


@dataclass(kw_only=True)
class PeerInfo(JsonModel):
    """One replica of a clustered stream or consumer: name, whether current, lag and activity."""

    _DURATIONS: ClassVar[frozenset[str]] = frozenset({"active"})
    name: str
    current: bool
    offline: bool = False
    active: float
    lag: int | None = None


@dataclass(kw_only=True)
class ClusterInfo(JsonModel):
    """The cluster of a stream or consumer: its name, leader and replicas."""

    name: str | None = None
    leader: str | None = None
    replicas: list[PeerInfo] | None = None


@dataclass(kw_only=True)
class ApiError(JsonModel):
    """The error a JetStream API response reports: HTTP-like code, JetStream error code and description."""

    code: int
    description: str
    err_code: int | None = None


@dataclass(kw_only=True)
class StreamSourceInfo(JsonModel):
    """The state of a mirror or source of a stream: name, lag, activity and error."""

    _DURATIONS: ClassVar[frozenset[str]] = frozenset({"active"})
    name: str
    lag: int
    active: float
    error: ApiError | None = None
    subject_transforms: list[SubjectTransformConfig] | None = None


@dataclass(kw_only=True)
class StreamAlternate(JsonModel):
    """An alternate (mirror) of a stream, in a cluster or domain, as reported by stream info."""

    name: str
    cluster: str
    domain: str | None = None


@dataclass(kw_only=True)
class StreamInfo(JsonModel):
    """What the server reports about a stream: configuration, state, cluster, mirror, sources."""

    config: StreamConfig
    created: datetime
    state: StreamState
    cluster: ClusterInfo | None = None
    mirror: StreamSourceInfo | None = None
    sources: list[StreamSourceInfo] | None = None
    alternates: list[StreamAlternate] | None = None
    ts: datetime | None = None


@dataclass(kw_only=True)
class PurgeResponse(JsonModel):
    """The result of a stream purge: whether it succeeded and how many messages were purged."""

    success: bool
    purged: int


@dataclass(kw_only=True)
class ConsumerConfig(JsonModel):
    """The configuration of a consumer: name, delivery and ack policies, filters, limits..."""

    _DURATIONS: ClassVar[frozenset[str]] = frozenset(
        {"ack_wait", "backoff", "idle_heartbeat", "max_expires", "inactive_threshold", "priority_timeout"}
    )
    name: str | None = None
    durable_name: str | None = None
    description: str | None = None
    deliver_policy: DeliverPolicy | None = None
    opt_start_seq: int | None = None
    opt_start_time: datetime | None = None
    ack_policy: AckPolicy | None = None
    ack_wait: float | None = None
    max_deliver: int | None = None
    backoff: list[float] | None = None
    filter_subject: str | None = None
    filter_subjects: list[str] | None = None
    replay_policy: ReplayPolicy | None = None
    rate_limit_bps: int | None = None
    sample_freq: str | None = None
    max_waiting: int | None = None
    max_ack_pending: int | None = None
    flow_control: bool | None = None
    idle_heartbeat: float | None = None
    headers_only: bool | None = None
    max_batch: int | None = None
    max_expires: float | None = None
    max_bytes: int | None = None
    inactive_threshold: float | None = None
    num_replicas: int | None = None
    mem_storage: bool | None = None
    deliver_subject: str | None = None
    deliver_group: str | None = None
    metadata: dict[str, str] | None = None
    pause_until: datetime | None = None
    # server 2.11+: the groups pulls name, how the server chooses among them, and (pinned_client) how long a pinned
    # client may go without pulling before another is pinned
    priority_groups: list[str] | None = None
    priority_policy: PriorityPolicy | None = None
    priority_timeout: float | None = None


@dataclass(kw_only=True)
class PriorityGroupState(JsonModel):
    """The state of one priority group of a consumer (``ConsumerInfo.priority_groups``): with the ``pinned_client``
    policy, the pin id of the client pinned now and since when."""

    group: str
    pinned_client_id: str | None = None
    pinned_ts: datetime | None = None


@dataclass(kw_only=True)
class SequenceInfo(JsonModel):
    """A consumer's and its stream's sequence of a delivered or acked message, with its time."""

    consumer_seq: int
    stream_seq: int
    last_active: datetime | None = None


@dataclass(kw_only=True)
class ConsumerInfo(JsonModel):
    """What the server reports about a consumer: configuration, delivered and ack floor, pending counts."""

    _DURATIONS: ClassVar[frozenset[str]] = frozenset({"pause_remaining"})
    stream_name: str
    name: str
    created: datetime
    config: ConsumerConfig
    delivered: SequenceInfo
    ack_floor: SequenceInfo
    num_ack_pending: int
    num_redelivered: int
    num_waiting: int
    num_pending: int
    cluster: ClusterInfo | None = None
    push_bound: bool = False
    ts: datetime | None = None
    paused: bool = False
    pause_remaining: float | None = None
    priority_groups: list[PriorityGroupState] | None = None


@dataclass(kw_only=True)
class ConsumerPauseResponse(JsonModel):
    """The result of pausing or resuming a consumer: whether it is paused, and until when."""

    _DURATIONS: ClassVar[frozenset[str]] = frozenset({"pause_remaining"})
    paused: bool
    pause_until: datetime | None = None
    pause_remaining: float | None = None


@dataclass(kw_only=True)
class AccountLimits(JsonModel):
    """JetStream limits of an account: memory, storage, streams, consumers."""

    max_memory: int
    max_storage: int
    max_streams: int
    max_consumers: int
    max_ack_pending: int = -1
    memory_max_stream_bytes: int = -1
    storage_max_stream_bytes: int = -1
    max_bytes_required: bool = False


@dataclass(kw_only=True)
class AccountTier(JsonModel):
    """JetStream usage and limits of an account for one replication tier."""

    memory: int
    storage: int
    streams: int
    consumers: int
    limits: AccountLimits


@dataclass(kw_only=True)
class ApiStats(JsonModel):
    """Counts of an account's JetStream API calls: total and errors."""

    total: int
    errors: int


@dataclass(kw_only=True)
class AccountInfo(JsonModel):
    """JetStream usage and limits of the account (`jsm.get_account_info()`)."""

    memory: int
    storage: int
    streams: int
    consumers: int
    limits: AccountLimits
    api: ApiStats
    domain: str | None = None
    tiers: dict[str, AccountTier] | None = None


@dataclass(frozen=True, kw_only=True)
class PubAck:
    """The server's acknowledgement of a JetStream publish: stream, sequence, duplicate flag, domain, and on a
    counter stream the counter's value after the add (``val``, as the server writes it: a decimal string)."""

    stream: str
    seq: int
    duplicate: bool = False
    domain: str | None = None
    val: str | None = None


@dataclass(frozen=True, kw_only=True)
class BatchAck(PubAck):
    """The acknowledgement of an atomic batch publish: a `PubAck` plus the batch id and size."""

    batch: str
    count: int


@dataclass(frozen=True, kw_only=True)
class PublishExpect:
    """Expectations a JetStream publish states (stream, last sequence, last message id...): the server rejects the
    message if one fails.
    """

    last_msg_id: str | None = None
    stream_name: str | None = None
    last_sequence: int | None = None
    last_subject_sequence: int | None = None


class StoredMsg:
    """A message read back from a stream (``get_message``, direct get).

    The answers of a batched direct get (``jsm.direct.get_batch``) also say where the batch stands:
    ``num_pending`` and ``last_sequence`` (None on the answers of a single get).
    """

    __slots__ = ("_data", "_headers", "_last_sequence", "_num_pending", "_seq", "_stream", "_subject", "_timestamp")

    def __init__(
        self,
        subject: str,
        seq: int,
        data: bytes,
        headers: Headers | None,
        timestamp: str,
        stream: str | None = None,
        *,
        num_pending: int | None = None,
        last_sequence: int | None = None,
    ) -> None:
        self._subject = subject
        self._seq = seq
        self._data = data
        self._headers = headers
        self._timestamp = timestamp
        self._stream = stream
        self._num_pending = num_pending
        self._last_sequence = last_sequence

    @property
    def subject(self) -> str:
        return self._subject

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def data(self) -> bytes:
        return self._data

    @property
    def headers(self) -> Headers | None:
        return self._headers

    @property
    def timestamp(self) -> str:
        return self._timestamp

    @property
    def time(self) -> datetime:
        parsed = parse_time(self._timestamp)
        assert parsed is not None
        return parsed

    @property
    def stream(self) -> str | None:
        return self._stream

    @property
    def num_pending(self) -> int | None:
        """In a batched direct get: how many messages matching the request follow this one in the stream (the
        server's ``Nats-Num-Pending``); None for a single get."""
        return self._num_pending

    @property
    def last_sequence(self) -> int | None:
        """In a batched direct get: the stream sequence of the answer before this one in the same batch, 0 for the
        first (the server's ``Nats-Last-Sequence``); None for a single get."""
        return self._last_sequence

    def json(self, **loads_kwargs: Any) -> Any:
        """The data parsed as JSON; ``loads_kwargs`` are passed to ``json.loads``.

        Raises:
            BadJsonError: the data is not valid JSON (or not in a JSON encoding); the original error is
                ``__cause__``.
            TypeError: ``loads_kwargs`` holds an argument ``json.loads`` does not take.
        """
        try:
            return json.loads(self._data, **loads_kwargs)
        except ValueError as exc:
            raise BadJsonError(f"message data is not valid JSON: {exc}") from exc

    def string(self) -> str:
        """The data decoded as UTF-8, invalid bytes replaced by U+FFFD.

        Raises:
            Nothing: every byte sequence decodes.
        """
        return self._data.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return f"<StoredMsg subject={self._subject!r} seq={self._seq} data={self._data[:64]!r}>"


@dataclass(frozen=True)
class Advisory:
    """One JetStream advisory (`jsm.advisories()`): its kind and its JSON data."""

    kind: AdvisoryKind
    data: dict[str, Any]
