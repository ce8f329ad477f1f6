"""The Node.js workers of ``cnats bench --natsjs`` are package data: an installed cnats runs them from its own
directory, so the sdist and the wheel built from it must both carry every ``.mjs`` of cnats/benchmark/natsjs/."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

from build_wheels import Dists

import cnats.benchmark.natsjs

SCRIPTS = {f"cnats/benchmark/natsjs/{p.name}" for p in cnats.benchmark.natsjs.SCRIPT.parent.glob("*.mjs")}


def test_the_checkout_has_the_scripts() -> None:
    assert "cnats/benchmark/natsjs/worker.mjs" in SCRIPTS and len(SCRIPTS) >= 3, SCRIPTS


def test_sdist_and_wheel_carry_the_nats_js_workers(dists: Dists) -> None:
    with tarfile.open(dists.sdist) as tar:
        in_sdist = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert in_sdist >= SCRIPTS, sorted(SCRIPTS - in_sdist)
    with zipfile.ZipFile(dists.wheel) as whl:
        in_wheel = set(whl.namelist())
    assert in_wheel >= SCRIPTS, sorted(SCRIPTS - in_wheel)
    # the module that finds them beside itself is there too
    assert "cnats/benchmark/natsjs.py" in in_wheel
    assert Path(cnats.benchmark.natsjs.SCRIPT).name == "worker.mjs"
