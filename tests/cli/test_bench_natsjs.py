"""`cnats bench --natsjs DIR`: the nats.js column, run for real by Node.js from nats@2.29, which npm installs into a
temporary directory once per session. npm missing, or an install that fails, fails these tests rather than skipping
them: the column is part of the command, and CI has Node.js and the registry."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import cnats
from cnats.benchmark import harness, natsjs
from cnats.cli import main
from cnats.testing import NatsServer

NATSJS = "nats@2.29"


@pytest.fixture(scope="session")
def natsjs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    npm = shutil.which("npm")
    assert npm is not None, "npm (Node.js) is needed to install nats.js for the nats.js column's tests"
    where = tmp_path_factory.mktemp("natsjs")
    # --prefix, as the docs say: a plain install would go to the nearest parent directory with a package.json
    args = [npm, "install", "--prefix", str(where), "--no-package-lock", "--no-audit", "--no-fund", NATSJS]
    result = subprocess.run(args, cwd=where, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"npm install {NATSJS} failed:\n{result.stdout}\n{result.stderr}"
    return where


def cnats_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cnats", *args], capture_output=True, text=True, timeout=60, env=env)


def test_every_nats_js_row_is_measured_and_cleans_up(natsjs_dir: Path) -> None:
    """Every row nats.js has, at a small count, next to cnats against one server; a row it has not shows "-"."""
    rows = [w for w in harness.wl.WORKLOADS if w in natsjs.WORKLOADS]
    assert {
        "js consume",
        "js consume (5k)",
        "js consume (ack)",
        "js consume (ack, 5k)",
        "js fetch (ack)",
        "pub",
        "sub (callback)",
        "js publish (async)",
    } <= set(rows)
    with NatsServer(jetstream=True) as server, natsjs.installed_at(natsjs_dir):
        results = harness.run_matrix(
            url=server.url,
            sizes=(16,),
            msgs=2000,
            requests=100,
            workloads=[*rows, "kv put"],
            columns=["cnats", "nats.js"],
        )

        async def streams() -> list[str]:
            async with await cnats.connect(server.url) as nc:
                jsm = await nc.jetstream_manager()
                return [name async for name in jsm.streams.names()]

        leftover = asyncio.run(streams())
    assert os.environ.get(natsjs.ENV) is None  # installed_at restored the environment
    by_row = {r.workload: r for r in results}
    for row in rows:
        assert not by_row[row].errors, by_row[row].errors
        figure = by_row[row].figures["nats.js"]
        assert figure is not None and figure > 0, row
    assert by_row["kv put"].figures["nats.js"] is None
    for row in ("request", "js publish"):  # timed one by one, like cnats'
        latency = by_row[row].latency_us["nats.js"]
        assert latency is not None and 0 < latency["p50"] <= latency["max"]
    assert leftover == []
    table = harness.format_table(results)
    assert "cnats/nats.js" in table.splitlines()[0]
    assert "js publish (async): nats.js: js.publish() promises" in table
    kv_line = next(line for line in table.splitlines() if line.startswith("kv put"))
    assert kv_line.split()[2:].count("-") >= 4  # its nats.js cells, among others
    markdown = harness.format_markdown(results)
    assert "| nats.js |" in markdown.splitlines()[0]


def test_the_command_shows_the_column_only_when_asked(
    natsjs_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cnats bench --natsjs DIR` end to end, in process; the matrix cut to two rows to keep it short."""
    full_run = harness.run_matrix

    def two_rows(*, workloads: Sequence[str] | None = None, **kw: Any) -> list[harness.Result]:
        return full_run(workloads=["js consume", "kv get"], **kw)

    monkeypatch.setattr(harness, "run_matrix", two_rows)
    monkeypatch.delenv(natsjs.ENV, raising=False)
    assert main(["bench", "--quick", "--msgs", "400", "--no-uvloop", "--natsjs", str(natsjs_dir)]) == 0
    out = capsys.readouterr().out
    header, table = out.split("\n", 1)
    assert "; nats.js 2.29." in header and "Node.js v" in header
    assert "cnats/nats.js" in table and "errors:" not in table
    consume = next(line for line in table.splitlines() if line.startswith("js consume"))
    assert consume.split()[6] != "-"  # workload(2) size(2) cnats cnats-pure nats-py nats.js
    # without the option (and without the variable) the table is the usual one
    assert main(["bench", "--quick", "--msgs", "400", "--no-uvloop", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert all("nats.js" not in row["figures"] for row in report["results"])


def test_missing_installation_or_node_is_a_clear_error(natsjs_dir: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != natsjs.ENV}
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cnats_cli("bench", "--quick", "--natsjs", str(empty), env=env)
    assert result.returncode == 2 and not result.stdout
    assert f"nats.js is not installed in {empty}" in result.stderr
    assert f"npm install --prefix {empty} nats@2.29" in result.stderr
    # the variable is the option's default
    result = cnats_cli("bench", "--quick", env={**env, natsjs.ENV: str(tmp_path / "nowhere")})
    assert result.returncode == 2 and "no such directory" in result.stderr
    # a good installation, but no node on PATH (the interpreter is called by its full path)
    result = cnats_cli("bench", "--quick", "--natsjs", str(natsjs_dir), env={**env, "PATH": str(empty)})
    assert result.returncode == 2
    assert "needs Node.js, and no `node` was found on PATH" in result.stderr and "nats@2.29" in result.stderr
    with pytest.raises(natsjs.NatsJsUnavailable, match=r"no nats\.js installation given"):
        harness.run_matrix(sizes=(16,), msgs=10, workloads=["pub"], columns=["cnats", "nats.js"])
