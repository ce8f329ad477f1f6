"""cnats.otel is optional: ``import cnats`` never loads OpenTelemetry, and without it ``import cnats.otel`` says
which extra to install. Checked in fresh interpreters (this one has OpenTelemetry loaded already)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=False
    )


def test_import_cnats_does_not_import_opentelemetry() -> None:
    result = _run(
        """
        import sys
        import cnats, cnats.jetstream, cnats.services
        loaded = sorted(name for name in sys.modules if name.split(".")[0] == "opentelemetry")
        assert not loaded, loaded
        """
    )
    assert result.returncode == 0, result.stderr


def test_without_opentelemetry_the_error_names_the_extra() -> None:
    result = _run(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if it were not installed
        try:
            import cnats.otel
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit("imported")
        """
    )
    assert result.returncode == 0, result.stderr
    assert "cnats[otel]" in result.stdout
