"""`cnats obj` against a real JetStream server, including progress on a terminal (a pty) and quiet pipes."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cli.cli_support import Cli, Running, cnats_process

from cnats.testing import NatsServer


@pytest.fixture
def store(cli: Cli) -> str:
    result = cli("obj", "add", "files", "--description", "shared files")
    assert result.code == 0, result.err
    assert "Bucket:      files\n" in result.out and "Description: shared files\n" in result.out
    return "files"


def test_put_info_ls_get_round_trip(cli: Cli, store: str, tmp_path: Path) -> None:
    source = tmp_path / "report.bin"
    source.write_bytes(os.urandom(300_000))  # three chunks
    put = cli("obj", "put", store, str(source), "--json")
    assert put.code == 0, put.err
    info = json.loads(put.out)
    assert (info["name"], info["size"], info["chunks"]) == ("report.bin", 300_000, 3)
    assert info["digest"].startswith("SHA-256=")
    assert cli("obj", "put", store, str(source), "--name", "copy.bin").code == 0

    described = cli("obj", "info", store, "copy.bin")
    assert "Name:        copy.bin\n" in described.out and "(300000 bytes)" in described.out
    listing = cli("obj", "ls", store).out.splitlines()
    assert listing[0].split() == ["NAME", "SIZE", "MODIFIED", "(UTC)"]
    assert [line.split()[0] for line in listing[1:]] == ["copy.bin", "report.bin"]
    assert [json.loads(line)["name"] for line in cli("obj", "ls", store, "--json").out.splitlines()] == [
        "copy.bin",
        "report.bin",
    ]
    assert cli("obj", "ls").out == "files\n"

    target = tmp_path / "downloaded.bin"
    got = cli("obj", "get", store, "report.bin", "-o", str(target))
    assert got.code == 0 and got.out == "" and got.err == ""
    assert target.read_bytes() == source.read_bytes()


def test_get_to_stdout_and_put_from_stdin_in_real_processes(nats_server: NatsServer, store: str) -> None:
    data = bytes(range(256)) * 1000
    put = subprocess.run(
        [sys.executable, "-m", "cnats", "-s", nats_server.url, "obj", "put", store, "-", "--name", "bytes.bin"],
        input=data,
        capture_output=True,
        timeout=30,
    )
    assert put.returncode == 0, put.stderr
    got = subprocess.run(
        [sys.executable, "-m", "cnats", "-s", nats_server.url, "obj", "get", store, "bytes.bin"],
        capture_output=True,
        timeout=30,
    )
    assert got.returncode == 0 and got.stderr == b""  # no progress when stderr is not a terminal
    assert got.stdout == data


def test_progress_shows_on_a_terminal(nats_server: NatsServer, store: str, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(1_000_000))

    def with_terminal_stderr(*args: str) -> tuple[int, str]:
        controller, terminal = pty.openpty()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cnats", "-s", nats_server.url, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=terminal,
            )
            os.close(terminal)
            shown = b""
            while True:  # read until the child's end of the terminal closes (EIO on Linux)
                try:
                    chunk = os.read(controller, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                shown += chunk
            return proc.wait(30), shown.decode(errors="replace")
        finally:
            os.close(controller)

    code, shown = with_terminal_stderr("obj", "put", store, str(source))
    assert code == 0
    assert "put big.bin: " in shown and "976.6 KiB / 976.6 KiB (100%)" in shown
    code, shown = with_terminal_stderr("obj", "get", store, "big.bin", "-o", str(tmp_path / "back.bin"))
    assert code == 0
    assert "get big.bin: " in shown and "(100%)" in shown
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()


def test_delete_and_missing_things(cli: Cli, store: str, tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("remember")
    assert cli("obj", "put", store, str(note)).code == 0
    assert cli("obj", "get", store, "note.txt").out == "remember"
    assert cli("obj", "del", store, "note.txt").code == 0
    assert cli("obj", "ls", store).out == ""

    for argv in (["get", store, "note.txt"], ["del", store, "note.txt"], ["info", store, "never.txt"]):
        result = cli("obj", *argv)
        name = argv[-1]
        assert (result.code, result.err) == (1, f"error: object not found: {name}\n"), argv
    assert "Deleted:     yes\n" in cli("obj", "info", store, "note.txt").out  # info also describes deleted ones
    target = tmp_path / "out.txt"
    assert cli("obj", "get", store, "note.txt", "-o", str(target)).code == 1
    assert not target.exists() and not (tmp_path / "out.txt.partial").exists()

    missing_file = cli("obj", "put", store, str(tmp_path / "absent.bin"))
    assert (missing_file.code, missing_file.err) == (1, f"error: file not found: {tmp_path / 'absent.bin'}\n")
    for argv in (["put", "nope", str(note)], ["get", "nope", "x"], ["ls", "nope"], ["status", "nope"], ["rm", "nope"]):
        result = cli("obj", *argv)
        assert (result.code, result.err) == (1, "error: bucket not found: nope\n"), argv
    assert cli("obj", "ls").out == "files\n"  # nothing was created on the way


def test_watch_seal_status_rm(cli: Cli, store: str, tmp_path: Path) -> None:
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text(name)
        assert cli("obj", "put", store, str(tmp_path / name)).code == 0
    assert cli("obj", "del", store, "a.txt").code == 0
    watched = cli("obj", "watch", store, "--count", "2")
    assert watched.code == 0
    lines = watched.out.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["PUT files > b.txt: 5 B", "DEL files > a.txt"]

    sealed = cli("obj", "seal", store)
    assert "Sealed:      yes\n" in sealed.out
    refused = cli("obj", "put", store, str(tmp_path / "b.txt"))
    assert refused.code == 1 and refused.err.startswith("error: ") and refused.err.count("\n") == 1
    status = json.loads(cli("obj", "status", store, "--json").out)
    assert status["bucket"] == "files" and status["sealed"] is True

    assert cli("obj", "rm", store, "-f").code == 0
    assert cli("obj", "ls").out == ""


def test_watch_process_until_stopped(
    cli: Cli, store: str, nats_server: NatsServer, running: Callable[..., Running], tmp_path: Path
) -> None:
    watcher = running("-s", nats_server.url, "obj", "watch", store, "--updates-only")
    assert watcher.line("stderr") == "watching the object store files"
    (tmp_path / "live.txt").write_text("live")
    assert cli("obj", "put", store, str(tmp_path / "live.txt")).code == 0
    assert watcher.line().endswith("PUT files > live.txt: 4 B")
    assert watcher.stop(signal.SIGTERM) == 0


def test_put_missing_file_in_a_real_process(nats_server: NatsServer, store: str) -> None:
    result = cnats_process("-s", nats_server.url, "obj", "put", store, "/no/such/file.bin")
    assert result.returncode == 1
    assert result.stderr == "error: file not found: /no/such/file.bin\n"
