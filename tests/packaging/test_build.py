"""Packaging: ``python -m build`` makes an sdist and a wheel; the sdist compiles the protocol core on install, and
installs without it (on the pure-Python twin, with a one-line notice) when there is no working C compiler.

Everything runs offline in throw-away directories: the sources are copied out of the checkout first, so no
``build/`` or ``*.egg-info`` is written into it. The fresh virtual environments are made without pip and see only
the build tools (pip, setuptools, Cython) of the running interpreter, through a ``.pth`` file naming a directory of
links to them; cnats itself and everything else installed here stays invisible, so the import checks below see
only what the install put into the new environment. Needs the ``build`` package (in the ``test`` extra). The sdist
and the wheel are built once per session (conftest.py), and test_wheels.py tests them further.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

from build_wheels import Dists, clean_env

import cnats


def run(args: list[str | Path], *, cwd: Path, env: dict[str, str], timeout: float = 120) -> str:
    """Run to completion and return the output, stdout and stderr interleaved as they were written."""
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout}"
    return result.stdout


def fresh_venv(path: Path, build_tools: Path) -> Path:
    """A new virtual environment without pip whose only extra import path is ``build_tools``; returns its python."""
    venv.create(path, with_pip=False)
    python = path / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    # Ask the new interpreter for its site-packages: distributions patch sysconfig's install schemes.
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=path, env=clean_env())
    Path(purelib.strip(), "build-tools.pth").write_text(f"{build_tools}\n")
    return python


def pip_install(python: Path, dist: Path, tmp: Path, **env: str) -> str:
    # -v: pip shows the build's own output (where the notice is printed) only when verbose.
    args: list[str | Path] = [python, "-m", "pip", "install", "-v", "--isolated", "--no-index", "--no-deps"]
    args += ["--no-build-isolation", "--no-cache-dir", dist]
    return run(args, cwd=tmp, env=clean_env(**env))


def uses_cython(python: Path, tmp: Path) -> bool:
    """``cnats.USES_CYTHON`` in that environment, checking that cnats was imported from the environment itself."""
    code = "import cnats; print(cnats.USES_CYTHON); print(cnats.__file__)"
    flag, location = run([python, "-c", code], cwd=tmp, env=clean_env()).splitlines()
    assert Path(location).is_relative_to(python.parent.parent), location
    return {"True": True, "False": False}[flag]


def test_sdist_carries_the_sources_of_the_compiled_core(dists: Dists) -> None:
    with tarfile.open(dists.sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    expected = {"pyproject.toml", "setup.py", "README.md", "CHANGELOG.md", "cnats/py.typed", "cnats/_protocol_py.py"}
    expected.add("tools/smoke_wheel.py")  # the smoke suite, for wheels built from the sdist
    expected |= {f"cnats/_protocol.{ext}" for ext in ("pyx", "pxd", "pyi")}
    expected |= {"cnats/_delivery.pxi", "cnats/_delivery_py.py"}  # included by the .pyx; its twin
    assert expected <= names
    assert "cnats/testing/pytest_plugin.py" in names
    # Generated C would be compiled as it is, instead of the .pyx with the installer's Cython (MANIFEST.in excludes it),
    # and nothing compiled or generated here belongs in a source distribution.
    assert "cnats/_protocol.c" not in names
    assert not [n for n in names if n.endswith((".c", ".so", ".pyd", ".html", ".pyc"))], sorted(names)
    # The version comes from cnats/_version.py, the one place it is written.
    with tarfile.open(dists.sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO"))
        pkg_info = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
    assert f"\nVersion: {cnats.__version__}\n" in pkg_info
    assert dists.sdist.name == f"cnats-{cnats.__version__}.tar.gz"


def test_wheel_built_from_the_sdist_has_the_extension(dists: Dists) -> None:
    # The sdist ships the .pyx, not generated C: building from it runs Cython, then the C compiler.
    from_sdist = dists.log.partition("Building wheel from sdist")[2]
    assert "Cythonizing cnats/_protocol.pyx" in from_sdist, dists.log
    version = cnats.__version__
    assert dists.wheel.name.startswith(f"cnats-{version}-cp")  # platform-specific: it holds compiled code
    with zipfile.ZipFile(dists.wheel) as whl:
        names = set(whl.namelist())
        entry_points = whl.read(f"cnats-{version}.dist-info/entry_points.txt").decode()
    assert f"cnats/_protocol{sysconfig.get_config_var('EXT_SUFFIX')}" in names
    assert {"cnats/py.typed", "cnats/_protocol.pyi", "cnats/_protocol_py.py"} <= names
    assert "cnats = cnats.testing.pytest_plugin" in entry_points  # the pytest plugin
    assert "cnats = cnats.cli:main" in entry_points  # the command line


def test_wheel_installs_and_uses_the_compiled_core(dists: Dists, build_tools: Path, tmp_path: Path) -> None:
    python = fresh_venv(tmp_path / "venv", build_tools)
    pip_install(python, dists.wheel, tmp_path)
    assert uses_cython(python, tmp_path) is True


def test_sdist_without_a_compiler_installs_the_pure_python_core(
    dists: Dists, build_tools: Path, tmp_path: Path
) -> None:
    python = fresh_venv(tmp_path / "venv", build_tools)
    output = pip_install(python, dists.sdist, tmp_path, CC="false")  # a C compiler that always fails
    notices = [line.strip() for line in output.splitlines() if line.strip().startswith("cnats:")]
    assert len(notices) == 1, output
    assert notices[0].endswith("using the pure-Python core"), notices
    assert "could not be built" in notices[0]

    assert uses_cython(python, tmp_path) is False
    info = run([python, "-m", "cnats", "info"], cwd=tmp_path, env=clean_env())
    assert "protocol core: pure python" in info
