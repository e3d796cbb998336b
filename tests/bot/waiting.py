"""Waiting on the event loop for a condition, failing with a reason instead of hanging."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

LIMIT = 15.0  # seconds any single await may take before the test fails instead of hanging


async def until(condition: Any, what: str, limit: float = LIMIT) -> None:
    """Poll `condition()` on the loop until it holds; fail with `what` rather than hang."""
    try:
        async with asyncio.timeout(limit):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")
