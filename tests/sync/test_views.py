"""Key-Value and object store through the blocking connection."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

import pytest
from sync.support import eventually

import cnats
from cnats.jetstream import StorageType
from cnats.kv import KvOperation
from cnats.sync import SyncConnection, SyncJetStream


@pytest.fixture
def js(snc: SyncConnection) -> SyncJetStream:
    return snc.jetstream()


def test_kv_operations(js: SyncJetStream) -> None:
    kv = js.views.kv("sync_kv", storage=StorageType.MEMORY, history=5)
    assert kv.bucket == "sync_kv"
    rev = kv.put("a", b"1")
    assert kv.create("b", "two") == rev + 1
    with pytest.raises(cnats.WrongLastSequenceError):
        kv.create("b", b"again")
    assert kv.update("a", b"3", rev) == rev + 2
    with pytest.raises(cnats.WrongLastSequenceError):
        kv.update("a", b"4", rev)
    entry = kv.get("a")
    assert entry is not None and entry.value == b"3" and entry.revision == rev + 2
    assert kv.get("a", revision=rev).value == b"1"  # type: ignore[union-attr]
    assert kv.get("missing") is None
    with pytest.raises(cnats.InvalidKeyError):
        kv.put("bad key", b"")
    kv.delete("b")
    deleted = kv.get("b")
    assert deleted is not None and deleted.operation is KvOperation.DEL
    assert sorted(kv.keys()) == ["a"]
    assert [e.value for e in kv.history("a")] == [b"1", b"3"]
    kv.purge("a")
    assert [e.operation for e in kv.history("a")] == [KvOperation.PURGE]
    assert kv.status().bucket == "sync_kv"
    assert kv.purge_deletes(older_than=0).success
    assert kv.destroy()


def test_kv_watch_is_a_blocking_iterator(js: SyncJetStream, connect: object) -> None:
    kv = js.views.kv("watched", storage=StorageType.MEMORY)
    kv.put("k1", b"before")
    initialized = threading.Event()
    watcher = kv.watch(on_initialized=initialized.set)
    first = next(watcher)
    assert (first.key, first.value) == ("k1", b"before")
    assert initialized.wait(5)
    assert initialized.is_set()

    def write() -> None:
        for i in range(3):
            kv.put(f"k{i}", b"%d" % i)

    writer = threading.Thread(target=write)
    writer.start()
    got = [(e.key, e.value) for e in (watcher.next(timeout=5) for _ in range(3))]
    writer.join()
    assert got == [("k0", b"0"), ("k1", b"1"), ("k2", b"2")]
    with pytest.raises(cnats.NatsTimeoutError):
        watcher.next(timeout=0.05)
    watcher.close()
    assert list(watcher) == []
    with kv.watch(updates_only=True) as updates:
        kv.put("k9", b"new")
        assert updates.next(timeout=5).key == "k9"


def test_object_store_put_get(js: SyncJetStream) -> None:
    store = js.views.os("sync_os", storage=StorageType.MEMORY)
    data = bytes(range(256)) * 2_000  # several chunks
    info = store.put("blob", data)
    assert info.size == len(data) and info.chunks > 1
    assert store.get_blob("blob") == data
    result = store.get("blob")
    assert result is not None and result.info.name == "blob"
    assert b"".join(result) == data
    with store.get("blob") as again:  # type: ignore[union-attr]
        assert again.read() == data
    assert store.get("missing") is None
    assert [i.name for i in store.list()] == ["blob"]
    assert store.info("blob").digest == info.digest  # type: ignore[union-attr]
    store.delete("blob")
    assert store.get("blob") is None
    assert store.status().bucket == "sync_os"


def test_object_store_reads_files_and_generators_in_the_calling_thread(js: SyncJetStream) -> None:
    store = js.views.os("fed", storage=StorageType.MEMORY)
    caller = threading.get_ident()
    readers: set[int] = set()

    def pieces() -> Iterator[bytes]:
        for i in range(20):
            readers.add(threading.get_ident())
            yield b"%04d" % i * 10_000

    info = store.put("generated", pieces())
    assert readers == {caller}
    assert store.get_blob("generated") == b"".join(b"%04d" % i * 10_000 for i in range(20))
    store.put("file", io.BytesIO(b"file data" * 50_000))
    assert store.get_blob("file") == b"file data" * 50_000
    assert info.size == 20 * 40_000

    def failing() -> Iterator[bytes]:
        yield b"first"
        raise ValueError("the source broke")

    with pytest.raises(ValueError, match="the source broke"):
        store.put("broken", failing())
    assert store.info("broken") is None


def test_object_store_watch(js: SyncJetStream) -> None:
    store = js.views.os("watched_os", storage=StorageType.MEMORY)
    watcher = store.watch()
    assert watcher.next(timeout=5) is None  # the initial state is done
    store.put("x", b"1")
    change = watcher.next(timeout=5)
    assert change is not None and change.name == "x"
    watcher.stop()
    eventually(lambda: list(watcher) == [])


def test_kv_limit_marker_ttl_passes_through(snc: SyncConnection) -> None:
    kv = snc.jetstream().views.kv("SYNCMARK", limit_marker_ttl=5)
    assert kv.status().limit_marker_ttl == 5.0
    with pytest.raises(cnats.InvalidOptionError):
        snc.jetstream().views.kv("SYNCMARK2", limit_marker_ttl=0.5)
