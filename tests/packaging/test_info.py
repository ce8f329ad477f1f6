"""``cnats info``: what it reports about the installation, in this environment (an editable install in the README's
runs; tests/packaging/test_wheels.py checks it on installed wheels)."""

from __future__ import annotations

import platform
import re
import sys
import sysconfig
import types

import pytest

import cnats
from cnats.cli import main
from cnats.cli.info import _compiled_with


def info_lines(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    first, *rest = out.splitlines()
    assert first == f"cnats {cnats.__version__}"
    return dict(line.split(": ", 1) for line in rest)


def test_info_reports_the_core_its_cython_the_platform_and_the_loop(capsys: pytest.CaptureFixture[str]) -> None:
    lines = info_lines(capsys)
    assert lines["protocol core"] == ("cython (compiled)" if cnats.USES_CYTHON else "pure python")
    if cnats.USES_CYTHON:
        assert re.fullmatch(r"\d+\.\d+\.\d+\S* \(built the compiled core\)", lines["cython"]), lines["cython"]
    else:  # the README's second run forces the twin beside the compiled core of the editable install
        assert lines["cython"].startswith("not in use: CNATS_NO_EXTENSIONS is set"), lines["cython"]
    assert lines["python"] == f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})"
    assert lines["platform"].startswith(f"{sysconfig.get_platform()}; installed as: ")
    assert re.fullmatch(r"asyncio \(\w+\); uvloop (\S+ installed|not installed)", lines["event loop"])
    assert "nats-server" in lines


def test_the_cython_version_is_read_from_the_compiled_module() -> None:
    def compiled_by(abi_module: str) -> types.ModuleType:
        module = types.ModuleType("fake")
        module.func = type("cython_function_or_method", (), {"__module__": abi_module})()  # type: ignore[attr-defined]
        module.other = len  # type: ignore[attr-defined]
        return module

    assert _compiled_with(compiled_by("_cython_3_1_2")) == "3.1.2"
    assert _compiled_with(compiled_by("_cython_3_2_0b1_limited")) == "3.2.0b1"  # ABI suffixes after the version
    assert _compiled_with(compiled_by("builtins")) is None
