"""Wheels as released: repaired with auditwheel to a manylinux_2_17 tag, installed into fresh virtual environments of
their own interpreters, and put through the smoke suite (tools/smoke_wheel.py, the one cibuildwheel runs in CI);
the pure-Python fallback wheel likewise, and pip's choice between the two.

Cost, per session: one more wheel build (another local CPython, from the session's sdist: about 15 s here), the
fallback wheel (a few seconds), and a fresh environment plus a smoke run per wheel (about 2 s each). The wheel of the
running interpreter is the one conftest.py already built from the sdist for test_build.py.

The interpreters: the running one, plus one other CPython 3.10-3.13 of this machine (found as ``tox -e wheels``
finds them: pyenv, then PATH), the newest first. When there is none, or when some versions are missing, the test
says so in a warning (shown in pytest's summary) and tests the wheels it has; it never skips. Wheels that
``tox -e wheels`` left in dist/ for this version are tested too, each with its interpreter.

Building for the other interpreter uses pip's isolated build environment, which takes setuptools and Cython from
PyPI or pip's cache; the rest runs offline. The environments are made without pip; the running interpreter's pip
installs into them (``pip --python``), from the wheel file only (``--no-index --no-deps``: cnats has no
dependencies). The smoke suite uses the nats-server of the running environment ($CNATS_SERVER_BIN).
"""

from __future__ import annotations

import subprocess
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from build_wheels import (
    ROOT,
    SUPPORTED,
    Dists,
    build_wheel,
    check_compiled,
    clean_env,
    default_plat,
    find_pythons,
    repair,
)

import cnats
from cnats.testing import find_server_binary

SMOKE = ROOT / "tools" / "smoke_wheel.py"
RUNNING = f"{sys.version_info.major}.{sys.version_info.minor}"
LINUX = sys.platform.startswith("linux")
# The other interpreter tested besides the running one: the first of these found.
OTHER_PREFERENCE = ("3.13", "3.12", "3.10", "3.11")


class PackagingNotice(UserWarning):
    """Something the wheel tests could not cover on this machine (a missing interpreter, no dist/ wheels)."""


def notice(message: str) -> None:
    warnings.warn(message, PackagingNotice, stacklevel=2)


@dataclass(frozen=True)
class Built:
    version: str
    python: Path
    wheel: Path


def run(args: list[str | Path], *, cwd: Path, timeout: float = 300, **env: str) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=clean_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed ({result.returncode}):\n{result.stdout}"
    return result.stdout


def fresh_env(python: Path, wheel: Path, where: Path) -> Path:
    """A new virtual environment of ``python`` (without pip) with ``wheel`` installed; its interpreter."""
    run([python, "-m", "venv", "--without-pip", where], cwd=where.parent)
    env_python = where / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    pip = [sys.executable, "-m", "pip", "--python", env_python, "install", "--isolated", "--no-index", "--no-deps"]
    run([*pip, "--no-cache-dir", wheel], cwd=where.parent)
    return env_python


def smoke(env_python: Path, expect_core: str, cwd: Path) -> str:
    """The smoke suite in that environment, from a directory outside the checkout; its report."""
    server = find_server_binary()
    args: list[str | Path] = [env_python, SMOKE, "--expect-core", expect_core, "--require-server"]
    output = run(args, cwd=cwd, CNATS_SERVER_BIN=server)
    assert "checks passed" in output, output
    return output


def wheel_tags(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as whl:
        info = next(n for n in whl.namelist() if n.endswith(".dist-info/WHEEL"))
        text = whl.read(info).decode()
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Tag:")]


@pytest.fixture(scope="session")
def fresh_wheels(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> list[Built]:
    """The running interpreter's wheel (built from the sdist by conftest.py) and one other local interpreter's,
    built from the same sdist, both repaired (on Linux)."""
    found, missing = find_pythons(SUPPORTED)
    if missing:
        notice(f"no CPython {', '.join(missing)} on this machine (pyenv or PATH): no wheel of those versions is tested")
    other = next((v for v in OTHER_PREFERENCE if v != RUNNING and v in found), None)
    if other is None:
        notice(f"no CPython 3.10-3.13 besides the running {RUNNING}: only its wheel is tested")
    out = tmp_path_factory.mktemp("repaired")
    wheels = [(RUNNING, Path(sys.executable), dists.wheel)]
    if other is not None:
        wheels.append((other, found[other], build_wheel(found[other], dists.sdist, tmp_path_factory.mktemp(other))))
    built = []
    for version, python, wheel in wheels:
        check_compiled(wheel)
        built.append(Built(version, python, repair(wheel, out, default_plat()) if LINUX else wheel))
    if not LINUX:
        notice("not on Linux: the wheels are tested as built (auditwheel repairs Linux wheels only)")
    return built


def test_fresh_wheels_are_repaired_to_manylinux_2_17(fresh_wheels: list[Built]) -> None:
    for built in fresh_wheels:
        abi = f"cp{built.version.replace('.', '')}"
        tags = wheel_tags(built.wheel)
        assert built.wheel.name.startswith(f"cnats-{cnats.__version__}-{abi}-{abi}-"), built.wheel.name
        if LINUX:
            # auditwheel found nothing that needs a newer glibc or libraries outside the manylinux set.
            assert f"{abi}-{abi}-{default_plat()}" in tags, tags
            assert default_plat() in built.wheel.name
        check_compiled(built.wheel)


def test_fresh_wheels_pass_the_smoke_suite(fresh_wheels: list[Built], tmp_path: Path) -> None:
    assert fresh_wheels[0].version == RUNNING
    for built in fresh_wheels:
        env_python = fresh_env(built.python, built.wheel, tmp_path / f"venv-{built.version}")
        report = smoke(env_python, "cython", tmp_path)
        assert f"Python {built.version}." in report, report
        assert "ok    server:" in report, report


def test_wheels_of_tox_e_wheels_in_dist_pass_the_smoke_suite(tmp_path: Path) -> None:
    """The wheels ``tox -e wheels`` put in dist/ for this version, each with its own interpreter (when there)."""
    wheels = sorted((ROOT / "dist").glob(f"cnats-{cnats.__version__}-cp3*.whl"))
    if not wheels:
        notice(f"dist/ holds no wheels of cnats {cnats.__version__} (`tox -e wheels` makes them): none tested there")
        return
    found, _ = find_pythons(SUPPORTED)
    for wheel in wheels:
        abi = wheel.name.split("-")[2]  # cp312
        version = f"{abi[2]}.{abi[3:]}"
        if version not in found:
            notice(f"{wheel.name} in dist/: no CPython {version} here to test it with")
            continue
        env_python = fresh_env(found[version], wheel, tmp_path / f"venv-{version}")
        smoke(env_python, "cython", tmp_path)


@pytest.fixture(scope="session")
def fallback_wheel(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pure-Python wheel, built from the sdist with CNATS_NO_EXTENSIONS=1 (offline: the running interpreter's
    setuptools and Cython, no build isolation)."""
    out = tmp_path_factory.mktemp("fallback")
    args: list[str | Path] = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--isolated"]
    run([*args, "--no-index", "--wheel-dir", out, dists.sdist], cwd=out, CNATS_NO_EXTENSIONS="1")
    (wheel,) = out.glob("cnats-*.whl")
    return wheel


def test_fallback_wheel_is_pure_python(fallback_wheel: Path) -> None:
    assert fallback_wheel.name == f"cnats-{cnats.__version__}-py3-none-any.whl"
    assert wheel_tags(fallback_wheel) == ["py3-none-any"]
    with zipfile.ZipFile(fallback_wheel) as whl:
        names = whl.namelist()
        root_is_purelib = "Root-Is-Purelib: true" in whl.read(f"cnats-{cnats.__version__}.dist-info/WHEEL").decode()
    assert not [n for n in names if n.endswith((".so", ".pyd", ".c", ".dylib", ".dll"))], names
    assert {"cnats/_protocol_py.py", "cnats/protocol.py", "cnats/py.typed"} <= set(names)
    assert root_is_purelib


def test_fallback_wheel_installs_and_reports_the_pure_core(fallback_wheel: Path, tmp_path: Path) -> None:
    env_python = fresh_env(Path(sys.executable), fallback_wheel, tmp_path / "venv")
    scripts = env_python.parent
    info = run([scripts / ("cnats.exe" if sys.platform == "win32" else "cnats"), "info"], cwd=tmp_path)
    assert "protocol core: pure python\n" in info, info
    assert "cython: none (the compiled core is not installed)\n" in info, info
    assert "installed as: wheel py3-none-any\n" in info, info
    report = smoke(env_python, "pure", tmp_path)
    assert "ok    server:" in report, report


def test_pip_prefers_the_platform_wheel_and_falls_back_to_the_pure_one(
    fresh_wheels: list[Built], fallback_wheel: Path, tmp_path: Path
) -> None:
    """With both in one index, as on PyPI: pip ranks a wheel by the position of its best tag in the interpreter's
    list of supported tags, most specific first (cp311-cp311-manylinux_..., ..., py3-none-any last). A platform with
    a compiled wheel gets it; any other platform gets the pure one (and never builds the sdist: a wheel that fits
    always beats it)."""
    index = tmp_path / "index"
    index.mkdir()
    running = fresh_wheels[0].wheel
    for wheel in (running, fallback_wheel):
        (index / wheel.name).write_bytes(wheel.read_bytes())

    def chosen(*platform_args: str) -> str:
        dest = tmp_path / f"dl-{len(list(tmp_path.iterdir()))}"
        args: list[str | Path] = [sys.executable, "-m", "pip", "download", "--isolated", "--no-index", "--no-deps"]
        args += ["--find-links", index, "--only-binary=:all:", "--dest", dest, *platform_args]
        run([*args, f"cnats=={cnats.__version__}"], cwd=tmp_path)
        (got,) = dest.iterdir()
        return got.name

    assert chosen() == running.name  # this machine
    if LINUX:  # the oldest glibc the repaired wheel is for
        assert chosen("--platform", default_plat(), "--python-version", RUNNING) == running.name
    # No compiled wheel in the index for these: the pure one.
    assert chosen("--platform", "macosx_11_0_arm64", "--python-version", RUNNING) == fallback_wheel.name
    assert chosen("--platform", "linux_ppc64le", "--python-version", RUNNING) == fallback_wheel.name
    # Another CPython on this very platform: the compiled wheel is for cp311 only (say), so again the pure one.
    other = "3.13" if RUNNING != "3.13" else "3.12"
    assert chosen("--python-version", other, "--platform", default_plat()) == fallback_wheel.name
