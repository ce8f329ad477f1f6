"""Fixtures of the protocol conformance suite: every test here runs against both protocol cores.

The compiled core is imported directly (not through cnats.protocol), so it is tested even when the run forces the
twin with CNATS_NO_EXTENSIONS; a missing extension makes its half of the suite fail, never skip.
"""

from __future__ import annotations

from types import ModuleType

import pytest
from helpers.protocol import CORES, load_core


@pytest.fixture(params=CORES)
def core(request: pytest.FixtureRequest) -> ModuleType:
    return load_core(request.param)
