"""`cnats kv` against a real JetStream server."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable

import pytest
from cli.cli_support import Cli, Running, cnats_process

from cnats.testing import NatsServer


@pytest.fixture
def bucket(cli: Cli) -> str:
    result = cli("kv", "add", "cfg", "--history", "5", "--description", "settings")
    assert result.code == 0, result.err
    return "cfg"


def test_add_prints_the_status_and_ls_lists_buckets(cli: Cli) -> None:
    added = cli("kv", "add", "cfg", "--history", "3", "--ttl", "60", "--storage", "memory", "--max-bytes", "4096")
    assert added.code == 0, added.err
    assert "Bucket:         cfg\n" in added.out and "History:        3\n" in added.out
    assert "TTL:            60 s\n" in added.out and "Storage:        memory\n" in added.out
    assert cli("kv", "add", "other").code == 0
    assert sorted(cli("kv", "ls").out.splitlines()) == ["cfg", "other"]
    statuses = [json.loads(line) for line in cli("kv", "ls", "--json").out.splitlines()]
    assert {s["bucket"]: s["history"] for s in statuses} == {"cfg": 3, "other": 1}
    status = json.loads(cli("kv", "status", "cfg", "--json").out)
    assert status["max_bytes"] == 4096 and status["storage"] == "memory" and status["ttl"] == 60
    assert "Limit markers:  none\n" in added.out and status["limit_marker_ttl"] == 0


def test_add_with_limit_markers(cli: Cli) -> None:
    added = cli("kv", "add", "marked", "--limit-marker-ttl", "5")
    assert added.code == 0, added.err
    assert "Limit markers:  5 s\n" in added.out


def test_put_get_create_update(cli: Cli, bucket: str) -> None:
    assert cli("kv", "put", bucket, "colour", "red").out == "1\n"
    assert cli("kv", "put", bucket, "colour", "blue").out == "2\n"
    got = cli("kv", "get", bucket, "colour")
    assert got.code == 0
    first, blank, value = got.out.splitlines()
    assert first.startswith("cfg > colour revision 2 PUT @ ") and blank == "" and value == "blue"
    assert cli("kv", "get", bucket, "colour", "--raw").out == "blue"
    assert cli("kv", "get", bucket, "colour", "--revision", "1", "--raw").out == "red"
    entry = json.loads(cli("kv", "get", bucket, "colour", "--json").out)
    assert {k: entry[k] for k in ("bucket", "key", "value", "revision", "operation")} == {
        "bucket": "cfg",
        "key": "colour",
        "value": "blue",
        "revision": 2,
        "operation": "PUT",
    }

    exists = cli("kv", "create", bucket, "colour", "green")
    assert exists.code == 1 and exists.err.startswith("error: wrong last sequence")
    assert cli("kv", "create", bucket, "size", "L").out == "3\n"
    assert cli("kv", "update", bucket, "size", "XL", "3").out == "4\n"
    stale = cli("kv", "update", bucket, "size", "S", "3")
    assert stale.code == 1 and stale.err.startswith("error: wrong last sequence")


def test_delete_purge_keys_and_history(cli: Cli, bucket: str) -> None:
    for key, value in (("a.x", "1"), ("a.y", "2"), ("b", "3"), ("a.x", "4")):
        assert cli("kv", "put", bucket, key, value).code == 0
    assert cli("kv", "keys", bucket).out.splitlines() == ["a.y", "b", "a.x"]
    assert sorted(cli("kv", "keys", bucket, "a.*").out.splitlines()) == ["a.x", "a.y"]

    assert cli("kv", "del", bucket, "a.y").code == 0
    gone = cli("kv", "get", bucket, "a.y")
    assert gone.code == 1 and gone.err == "error: key not found: a.y\n"
    assert cli("kv", "history", bucket, "a.y").out == "[2] PUT cfg > a.y: 2\n[5] DEL cfg > a.y\n"

    assert cli("kv", "purge", bucket, "a.x").code == 0
    assert cli("kv", "history", bucket, "a.x").out == "[6] PURGE cfg > a.x\n"
    assert cli("kv", "keys", bucket).out == "b\n"
    history = [json.loads(line) for line in cli("kv", "history", bucket, "--json").out.splitlines()]
    assert [(h["key"], h["operation"]) for h in history] == [
        ("a.y", "PUT"),
        ("b", "PUT"),
        ("a.y", "DEL"),
        ("a.x", "PURGE"),
    ]


def test_watch_with_history_and_count_ends_by_itself(cli: Cli, bucket: str) -> None:
    for value in ("1", "2", "3"):
        cli("kv", "put", bucket, "n", value)
    watched = cli("kv", "watch", bucket, "n", "--history", "--count", "3")
    assert watched.code == 0
    assert watched.out == "[1] PUT cfg > n: 1\n[2] PUT cfg > n: 2\n[3] PUT cfg > n: 3\n"
    assert watched.err == "watching cfg (keys n)\n"


def test_watch_process_sees_updates_until_stopped(
    cli: Cli, bucket: str, nats_server: NatsServer, running: Callable[..., Running]
) -> None:
    cli("kv", "put", bucket, "mode", "on")
    watcher = running("-s", nats_server.url, "kv", "watch", bucket)
    assert watcher.line() == "[1] PUT cfg > mode: on"  # the current value first
    cli("kv", "put", bucket, "mode", "off")
    assert watcher.line() == "[2] PUT cfg > mode: off"
    cli("kv", "del", bucket, "mode")
    assert watcher.line() == "[3] DEL cfg > mode"
    assert watcher.stop(signal.SIGINT) == 0


def test_missing_bucket_is_an_error_and_is_not_created(cli: Cli) -> None:
    for argv in (
        ["get", "nope", "k"],
        ["put", "nope", "k", "v"],
        ["del", "nope", "k"],
        ["keys", "nope"],
        ["watch", "nope"],
        ["status", "nope"],
        ["rm", "nope"],
    ):
        result = cli("kv", *argv)
        assert result.code == 1, argv
        assert result.err == "error: bucket not found: nope\n", argv
    assert cli("kv", "ls").out == ""


def test_invalid_names_are_rejected(cli: Cli, bucket: str) -> None:
    bad_bucket = cli("kv", "add", "a.b")
    assert bad_bucket.code == 1 and bad_bucket.err == "error: invalid bucket name: a.b\n"
    bad_key = cli("kv", "put", bucket, ".hidden", "v")
    assert bad_key.code == 1 and bad_key.err == "error: invalid key: .hidden\n"


def test_rm_deletes_the_bucket(cli: Cli, bucket: str) -> None:
    assert cli("kv", "rm", bucket, "--force").code == 0
    assert cli("kv", "ls").out == ""


def test_put_from_stdin_in_a_real_process(nats_server: NatsServer, cli: Cli, bucket: str) -> None:
    put = cnats_process("-s", nats_server.url, "kv", "put", bucket, "motd", input="hello\nworld")
    assert put.returncode == 0, put.stderr
    assert put.stdout == "1\n"
    assert cli("kv", "get", bucket, "motd", "--raw").out == "hello\nworld"
