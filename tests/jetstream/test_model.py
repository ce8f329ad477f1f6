"""JSON <-> dataclass conversion of the JetStream API types: durations in seconds (ns on the
wire), RFC 3339 timestamps as aware UTC datetimes, enums with unknown values kept, nested types, and unknown server
fields preserved through a ``from_dict``/``to_dict`` round trip. Pure conversion: no server."""

from __future__ import annotations

import copy
import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from cnats.jetstream import (
    AccountInfo,
    AckPolicy,
    ApiError,
    ConsumerConfig,
    ConsumerInfo,
    ConsumerPauseResponse,
    DeliverPolicy,
    DiscardPolicy,
    PeerInfo,
    Placement,
    RetentionPolicy,
    StorageType,
    StoreCompression,
    StreamConfig,
    StreamConsumerLimits,
    StreamInfo,
    StreamSource,
    StreamState,
    SubjectTransformConfig,
)

UTC = timezone.utc
GO_ZERO = "0001-01-01T00:00:00Z"


def stream_info_json() -> dict[str, Any]:
    """A stream info answer as a 2.15 server sends it, plus fields no client knows yet (at several depths)."""
    return {
        "config": {
            "name": "ORDERS",
            "subjects": ["orders.>"],
            "retention": "limits",
            "max_consumers": -1,
            "max_msgs": -1,
            "max_bytes": -1,
            "max_age": 86_400_000_000_000,
            "max_msgs_per_subject": -1,
            "max_msg_size": -1,
            "discard": "old",
            "storage": "file",
            "num_replicas": 1,
            "duplicate_window": 120_000_000_000,
            "compression": "s2",
            "allow_direct": True,
            "mirror_direct": False,
            "sealed": False,
            "deny_delete": False,
            "deny_purge": False,
            "allow_rollup_hdrs": False,
            "consumer_limits": {"inactive_threshold": 5_000_000_000, "future_limit": 7},
            "allow_msg_ttl": False,
            "allow_msg_schedules": True,
            "persist_mode": "async",
            "sources": [
                {
                    "name": "A",
                    "opt_start_time": "2024-05-06T07:08:09.123456789Z",
                    "subject_transforms": [{"src": "a.>", "dest": "b.>"}],
                    "source_future": {"x": [1, 2]},
                }
            ],
            "placement": {"cluster": "c1", "tags": ["t1"], "preferred": "n1"},
            "metadata": {"_nats.ver": "2.15.1", "team": "x"},
        },
        "created": "2024-05-06T07:08:09.987654321Z",
        "state": {
            "messages": 3,
            "bytes": 120,
            "first_seq": 1,
            "first_ts": "2024-05-06T07:08:10.000000001Z",
            "last_seq": 3,
            "last_ts": GO_ZERO,
            "consumer_count": 0,
            "num_deleted": 1,
            "deleted": [2],
            "num_subjects": 2,
            "subjects": {"orders.a": 1, "orders.b": 1},
            "state_future": True,
        },
        "cluster": {
            "name": "C",
            "leader": "n1",
            "replicas": [{"name": "n2", "current": True, "active": 1_500_000_000, "lag": 3, "peer": "abc"}],
            "raft_group": "S-R3F-xyz",
        },
        "ts": "2024-05-06T09:08:09.5+02:00",
        "info_future": ["a"],
    }


# -- durations ---------------------------------------------------------------------------------------------------


def test_duration_seconds_to_ns() -> None:
    assert StreamConfig(max_age=1.5).to_dict()["max_age"] == 1_500_000_000
    assert StreamConfig(duplicate_window=120).to_dict()["duplicate_window"] == 120_000_000_000
    assert StreamConfig(max_age=0).to_dict()["max_age"] == 0
    # ns = round(s * 1e9): no truncation error for values that are not exact in binary
    assert StreamConfig(max_age=0.3).to_dict()["max_age"] == 300_000_000
    assert StreamConfig(max_age=1e-9).to_dict()["max_age"] == 1


def test_duration_ns_to_seconds() -> None:
    cfg = StreamConfig.from_dict({"max_age": 1_500_000_000, "duplicate_window": 120_000_000_000})
    assert cfg.max_age == 1.5
    assert cfg.duplicate_window == 120.0
    assert StreamConfig.from_dict(StreamConfig(max_age=2.25).to_dict()).max_age == 2.25


def test_consumer_durations_including_backoff_list() -> None:
    cfg = ConsumerConfig(
        durable_name="d", ack_wait=30, backoff=[0.5, 1, 2.5], idle_heartbeat=5, max_expires=1.25, inactive_threshold=60
    )
    wire = cfg.to_dict()
    assert wire["ack_wait"] == 30_000_000_000
    assert wire["backoff"] == [500_000_000, 1_000_000_000, 2_500_000_000]
    assert wire["idle_heartbeat"] == 5_000_000_000
    assert wire["max_expires"] == 1_250_000_000
    assert wire["inactive_threshold"] == 60_000_000_000
    back = ConsumerConfig.from_dict(wire)
    assert back.backoff == [0.5, 1.0, 2.5]
    assert back.ack_wait == 30.0 and back.max_expires == 1.25 and back.inactive_threshold == 60.0
    # a plain int field is not a duration
    assert ConsumerConfig(max_deliver=5, max_ack_pending=10).to_dict() == {"max_deliver": 5, "max_ack_pending": 10}


def test_nested_durations() -> None:
    limits = StreamConsumerLimits(inactive_threshold=2.5, max_ack_pending=3)
    assert StreamConfig(consumer_limits=limits).to_dict()["consumer_limits"] == {
        "inactive_threshold": 2_500_000_000,
        "max_ack_pending": 3,
    }
    peer = PeerInfo.from_dict({"name": "n", "current": True, "active": 250_000_000})
    assert peer.active == 0.25
    pause = ConsumerPauseResponse.from_dict(
        {"paused": True, "pause_until": "2030-01-01T00:00:00Z", "pause_remaining": 3_000_000_000}
    )
    assert pause.pause_remaining == 3.0
    assert pause.pause_until == datetime(2030, 1, 1, tzinfo=UTC)


def test_to_dict_omits_none_fields() -> None:
    assert StreamConfig().to_dict() == {}
    assert StreamConfig(name="S", subjects=["a"]).to_dict() == {"name": "S", "subjects": ["a"]}
    assert ConsumerConfig(durable_name="d", filter_subject=None).to_dict() == {"durable_name": "d"}


# -- timestamps ----------------------------------------------------------------------------------------------------


def test_timestamp_with_nine_fractional_digits() -> None:
    info = StreamInfo.from_dict(stream_info_json())
    assert info.created == datetime(2024, 5, 6, 7, 8, 9, 987654, tzinfo=UTC)
    assert info.created.tzinfo is not None and info.created.utcoffset() == timedelta(0)
    assert info.state.first_ts == datetime(2024, 5, 6, 7, 8, 10, 0, tzinfo=UTC)


def test_timestamp_with_offset_is_converted_to_utc() -> None:
    info = StreamInfo.from_dict(stream_info_json())
    assert info.ts == datetime(2024, 5, 6, 7, 8, 9, 500000, tzinfo=UTC)
    assert info.ts is not None and info.ts.utcoffset() == timedelta(0)
    seq = ConsumerInfo.from_dict(
        {
            "stream_name": "S",
            "name": "c",
            "created": "2024-01-01T00:30:00-01:30",
            "config": {},
            "delivered": {"consumer_seq": 0, "stream_seq": 0, "last_active": "2024-01-01T12:00:00.25+00:00"},
            "ack_floor": {"consumer_seq": 0, "stream_seq": 0},
            "num_ack_pending": 0,
            "num_redelivered": 0,
            "num_waiting": 0,
            "num_pending": 0,
        }
    )
    assert seq.created == datetime(2024, 1, 1, 2, 0, 0, tzinfo=UTC)
    assert seq.delivered.last_active == datetime(2024, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)


def test_timestamp_without_fraction() -> None:
    src = StreamSource.from_dict({"name": "A", "opt_start_time": "2024-02-29T23:59:59Z"})
    assert src.opt_start_time == datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)


def test_go_zero_time_is_none() -> None:
    info = StreamInfo.from_dict(stream_info_json())
    assert info.state.last_ts is None
    state = StreamState.from_dict(
        {
            "messages": 0,
            "bytes": 0,
            "first_seq": 0,
            "first_ts": GO_ZERO,
            "last_seq": 0,
            "last_ts": "0001-01-01T00:00:00.000000000Z",
            "consumer_count": 0,
        }
    )
    assert state.first_ts is None and state.last_ts is None


def test_datetime_to_wire_is_rfc3339_utc() -> None:
    when = datetime(2024, 5, 6, 9, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    wire = ConsumerConfig(opt_start_time=when).to_dict()["opt_start_time"]
    assert isinstance(wire, str)
    assert wire.startswith("2024-05-06T07:08:09.123456")
    assert wire.endswith("Z")
    assert ConsumerConfig.from_dict({"opt_start_time": wire}).opt_start_time == when


# -- enums ---------------------------------------------------------------------------------------------------------


def test_enums_decoded_to_members() -> None:
    cfg = StreamInfo.from_dict(stream_info_json()).config
    assert cfg.retention is RetentionPolicy.LIMITS
    assert cfg.storage is StorageType.FILE
    assert cfg.discard is DiscardPolicy.OLD
    assert cfg.compression is StoreCompression.S2
    ccfg = ConsumerConfig.from_dict({"ack_policy": "explicit", "deliver_policy": "by_start_sequence"})
    assert ccfg.ack_policy is AckPolicy.EXPLICIT
    assert ccfg.deliver_policy is DeliverPolicy.START_SEQUENCE


def test_enums_encoded_as_values_and_plain_strings_accepted() -> None:
    assert StreamConfig(storage=StorageType.MEMORY, retention=RetentionPolicy.WORKQUEUE).to_dict() == {
        "storage": "memory",
        "retention": "workqueue",
    }
    assert ConsumerConfig(ack_policy=AckPolicy.NOT_SET).to_dict() == {"ack_policy": ""}
    # the enums are str enums: a plain string given by the user goes to the wire as is
    assert StreamConfig(storage="memory").to_dict() == {"storage": "memory"}  # type: ignore[arg-type]


def test_unknown_enum_value_kept_as_raw_string() -> None:
    cfg = StreamConfig.from_dict({"retention": "future_policy", "storage": "tape", "discard": "new"})
    assert cfg.retention == "future_policy"
    assert not isinstance(cfg.retention, RetentionPolicy)
    assert cfg.storage == "tape"
    assert cfg.discard is DiscardPolicy.NEW
    assert cfg.to_dict() == {"retention": "future_policy", "storage": "tape", "discard": "new"}
    ccfg = ConsumerConfig.from_dict({"ack_policy": "some_day", "replay_policy": "instant"})
    assert ccfg.ack_policy == "some_day"
    assert ccfg.to_dict()["ack_policy"] == "some_day"


# -- nested types --------------------------------------------------------------------------------------------------


def test_nested_types_decoded() -> None:
    info = StreamInfo.from_dict(stream_info_json())
    assert isinstance(info.config, StreamConfig)
    assert isinstance(info.state, StreamState)
    assert info.state.deleted == [2]
    assert info.state.subjects == {"orders.a": 1, "orders.b": 1}
    assert isinstance(info.config.placement, Placement)
    assert info.config.placement.tags == ["t1"]
    assert info.config.sources is not None
    source = info.config.sources[0]
    assert isinstance(source, StreamSource)
    assert source.opt_start_time == datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    assert source.subject_transforms == [SubjectTransformConfig(src="a.>", dest="b.>")]
    assert info.config.consumer_limits == StreamConsumerLimits(inactive_threshold=5.0)
    assert info.config.max_age == 86400.0
    assert info.cluster is not None and info.cluster.replicas is not None
    assert info.cluster.replicas[0] == PeerInfo(name="n2", current=True, active=1.5, lag=3)
    assert info.config.metadata == {"_nats.ver": "2.15.1", "team": "x"}


def test_nested_types_encoded() -> None:
    cfg = StreamConfig(
        name="S",
        sources=[StreamSource(name="A", filter_subject="a.>", subject_transforms=[SubjectTransformConfig(dest="x")])],
        placement=Placement(tags=["t"]),
    )
    assert cfg.to_dict() == {
        "name": "S",
        "sources": [{"name": "A", "filter_subject": "a.>", "subject_transforms": [{"dest": "x"}]}],
        "placement": {"tags": ["t"]},
    }


def test_account_info_with_tiers() -> None:
    limits = {"max_memory": -1, "max_storage": -1, "max_streams": -1, "max_consumers": -1}
    info = AccountInfo.from_dict(
        {
            "memory": 1,
            "storage": 2,
            "streams": 3,
            "consumers": 4,
            "limits": limits,
            "api": {"total": 10, "errors": 1, "level": 2},
            "tiers": {"R1": {"memory": 1, "storage": 2, "streams": 3, "consumers": 4, "limits": limits}},
        }
    )
    assert info.api.total == 10 and info.api.errors == 1
    assert info.limits.max_ack_pending == -1
    assert info.tiers is not None and info.tiers["R1"].limits.max_streams == -1
    assert info.to_dict()["api"] == {"total": 10, "errors": 1, "level": 2}


def test_api_error_type() -> None:
    err = ApiError.from_dict({"code": 404, "err_code": 10059, "description": "stream not found"})
    assert (err.code, err.err_code, err.description) == (404, 10059, "stream not found")


# -- unknown fields ------------------------------------------------------------------------------------------------


def test_unknown_fields_do_not_break_from_dict() -> None:
    cfg = StreamConfig.from_dict({"name": "S", "brand_new": {"a": 1}})
    assert cfg.name == "S"
    # not a dataclass field: equality and the constructor's signature are unaffected
    assert cfg == StreamConfig(name="S")
    assert "brand_new" not in {f.name for f in dataclasses.fields(cfg)}


def test_unknown_fields_round_trip_at_every_level() -> None:
    raw = stream_info_json()
    info = StreamInfo.from_dict(copy.deepcopy(raw))
    out = info.to_dict()
    assert out["info_future"] == ["a"]
    assert out["config"]["allow_msg_schedules"] is True
    assert out["config"]["persist_mode"] == "async"
    assert out["config"]["consumer_limits"] == {"inactive_threshold": 5_000_000_000, "future_limit": 7}
    assert out["config"]["sources"][0]["source_future"] == {"x": [1, 2]}
    assert out["config"]["placement"]["preferred"] == "n1"
    assert out["state"]["state_future"] is True
    assert out["cluster"]["raft_group"] == "S-R3F-xyz"
    assert out["cluster"]["replicas"][0]["peer"] == "abc"
    # the config (what an update sends back) equals the server's, up to timestamp precision (µs) and offsets
    expected = copy.deepcopy(raw["config"])
    expected["sources"][0]["opt_start_time"] = "2024-05-06T07:08:09.123456Z"
    assert out["config"] == expected


def test_round_trip_is_stable() -> None:
    once = StreamInfo.from_dict(stream_info_json()).to_dict()
    twice = StreamInfo.from_dict(copy.deepcopy(once)).to_dict()
    assert once == twice


def test_changing_a_field_keeps_unknown_fields() -> None:
    cfg = StreamConfig.from_dict({"name": "S", "max_age": 1_000_000_000, "allow_msg_schedules": True})
    cfg.max_age = 2.0
    cfg.description = "changed"
    assert cfg.to_dict() == {
        "name": "S",
        "max_age": 2_000_000_000,
        "description": "changed",
        "allow_msg_schedules": True,
    }
    # a known field set to None is dropped even when the server had sent it
    cfg.max_age = None
    assert "max_age" not in cfg.to_dict()


@pytest.mark.parametrize(
    ("cls", "data"),
    [
        (ConsumerConfig, {"durable_name": "d", "ack_policy": "explicit", "priority_groups": ["g"], "x": None}),
        (StreamConsumerLimits, {"max_ack_pending": 1, "later": "yes"}),
        (Placement, {"cluster": "c", "preferred": "n"}),
    ],
)
def test_unknown_fields_round_trip_simple(cls: Any, data: dict[str, Any]) -> None:
    assert cls.from_dict(dict(data)).to_dict() == data
