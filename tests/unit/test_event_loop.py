"""The suite runs on the event loop it says it runs on (CNATS_TEST_UVLOOP)."""

from __future__ import annotations

import asyncio
import os


async def test_async_tests_run_on_the_selected_loop() -> None:
    wants_uvloop = os.environ.get("CNATS_TEST_UVLOOP", "") not in ("", "0")
    assert type(asyncio.get_running_loop()).__module__.startswith("uvloop") is wants_uvloop
