"""The object store's types and its wire format (ADR-20): the meta entry's JSON, subjects and the SHA-256 digest."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..errors import BadJsonError, InvalidNameError
from ..headers import Headers
from ..jetstream.api import StorageType, StoreCompression, StreamInfo
from ..jetstream.model import format_time, parse_time
from ..kv import check_bucket
from ..msg import to_headers

__all__ = [
    "DIGEST_PREFIX",
    "ObjectInfo",
    "ObjectStoreLink",
    "ObjectStoreMeta",
    "ObjectStoreMetaOptions",
    "ObjectStoreStatus",
    "check_bucket",
    "check_object_name",
    "decode_info",
    "digest_matches",
    "encode_info",
    "format_digest",
    "object_store_status",
]

DIGEST_PREFIX = "SHA-256="


@dataclass(kw_only=True)
class ObjectStoreLink:
    """What a link points at: an object (``name``) or, with ``name=None``, a whole bucket."""

    bucket: str
    name: str | None = None


@dataclass(kw_only=True)
class ObjectStoreMetaOptions:
    """Options of an object: a link to another object or store, and the chunk size."""

    link: ObjectStoreLink | None = None
    max_chunk_size: int | None = None


@dataclass(kw_only=True)
class ObjectStoreMeta:
    """What the writer says about an object; ``put`` and ``update`` take it."""

    name: str
    description: str | None = None
    headers: Headers | None = None
    options: ObjectStoreMetaOptions | None = None
    metadata: dict[str, str] | None = None


@dataclass(kw_only=True)
class ObjectInfo(ObjectStoreMeta):
    """An object's meta entry: the meta plus where its chunks are, their size, count and digest."""

    bucket: str
    nuid: str
    size: int
    chunks: int
    digest: str
    mtime: datetime
    deleted: bool = False
    revision: int  # the stream sequence of the meta entry

    @property
    def is_link(self) -> bool:
        return self.options is not None and self.options.link is not None


@dataclass(kw_only=True)
class ObjectStoreStatus:
    """The status of an object store (`os.status()`): description, TTL, storage, replicas, size, sealed."""

    bucket: str
    description: str
    ttl: float
    storage: StorageType
    replicas: int
    sealed: bool
    size: int
    backing_store: str
    metadata: dict[str, str] | None
    compression: bool
    stream_info: StreamInfo


def object_store_status(bucket: str, info: StreamInfo) -> ObjectStoreStatus:
    """A store's status from its stream's info.

    Raises:
        Nothing: it only reads ``info``.
    """
    cfg = info.config
    return ObjectStoreStatus(
        bucket=bucket,
        description=cfg.description or "",
        ttl=cfg.max_age or 0.0,
        storage=cfg.storage or StorageType.FILE,
        replicas=cfg.num_replicas or 1,
        sealed=bool(cfg.sealed),
        size=info.state.bytes,
        backing_store="JetStream",
        metadata=cfg.metadata,
        compression=cfg.compression == StoreCompression.S2,
        stream_info=info,
    )


def check_object_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidNameError(f"object name must be a str, not {type(name).__name__}")
    if not name:
        raise InvalidNameError("name cannot be empty")
    try:
        name.encode()
    except UnicodeEncodeError:
        raise InvalidNameError(f"invalid object name: {name!r} is not valid UTF-8") from None
    return name


def encode_name(name: str) -> str:
    """An object name as a subject token: padded base64url of its UTF-8 bytes (any string fits a subject)."""
    return base64.urlsafe_b64encode(name.encode()).decode()


def format_digest(sha256: bytes) -> str:
    return DIGEST_PREFIX + base64.urlsafe_b64encode(sha256).decode()


def digest_matches(recorded: str, sha256: bytes) -> bool:
    """Compare leniently: any case of the prefix, padded or not, base64url or standard base64 (older writers)."""
    if recorded[: len(DIGEST_PREFIX)].upper() != DIGEST_PREFIX:
        return False
    text = recorded[len(DIGEST_PREFIX) :].rstrip("=").replace("+", "-").replace("/", "_")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)) == sha256
    except (binascii.Error, ValueError):
        return False


# -- the meta entry's JSON (field names as nats.go / nats.js / nats-py write them) ------------------------------
def encode_info(info: ObjectInfo) -> bytes:
    doc: dict[str, Any] = {"name": info.name}
    if info.description is not None:
        doc["description"] = info.description
    if info.headers:
        doc["headers"] = info.headers.to_dict()
    if info.options is not None:
        options: dict[str, Any] = {}
        link = info.options.link
        if link is not None:
            options["link"] = {"bucket": link.bucket}
            if link.name is not None:
                options["link"]["name"] = link.name
        if info.options.max_chunk_size is not None:
            options["max_chunk_size"] = info.options.max_chunk_size
        if options:
            doc["options"] = options
    if info.metadata is not None:
        doc["metadata"] = info.metadata
    doc.update(
        bucket=info.bucket,
        nuid=info.nuid,
        size=info.size,
        chunks=info.chunks,
        digest=info.digest,
        mtime=format_time(info.mtime),
    )
    if info.deleted:
        doc["deleted"] = True
    return json.dumps(doc, separators=(",", ":")).encode()


def _options(value: Any) -> ObjectStoreMetaOptions | None:
    if not isinstance(value, dict):
        return None
    link = value.get("link")
    return ObjectStoreMetaOptions(
        link=ObjectStoreLink(bucket=str(link.get("bucket") or ""), name=link.get("name") or None)
        if isinstance(link, dict)
        else None,
        max_chunk_size=value.get("max_chunk_size") or None,
    )


def _mtime(value: Any, fallback: datetime | None) -> datetime:
    """The writer's mtime (nats-py writes isoformat, Go RFC 3339 with ns, a delete may write ""); else the time
    the meta entry was stored."""
    if isinstance(value, str) and value:
        try:
            parsed = parse_time(value)
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed
    return fallback or datetime.now(timezone.utc)


def decode_info(data: bytes, revision: int, stored: datetime | None) -> ObjectInfo:
    """An ObjectInfo from a meta entry; unknown fields are ignored, missing ones take neutral values."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise BadJsonError(f"invalid object meta: {exc}") from exc
    if not isinstance(doc, dict):
        raise BadJsonError("invalid object meta: not a JSON object")
    headers = doc.get("headers")
    metadata = doc.get("metadata")
    return ObjectInfo(
        name=str(doc.get("name") or ""),
        description=doc.get("description"),
        headers=to_headers(headers) if isinstance(headers, Mapping) and headers else None,
        options=_options(doc.get("options")),
        metadata=dict(metadata) if isinstance(metadata, dict) else None,
        bucket=str(doc.get("bucket") or ""),
        nuid=str(doc.get("nuid") or ""),
        size=int(doc.get("size") or 0),
        chunks=int(doc.get("chunks") or 0),
        digest=str(doc.get("digest") or ""),
        mtime=_mtime(doc.get("mtime"), stored),
        deleted=bool(doc.get("deleted", False)),
        revision=revision,
    )
