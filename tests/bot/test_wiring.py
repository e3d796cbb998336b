"""build_executor: the backend the settings name, with the settings' workers and runner options."""

from __future__ import annotations

import pytest

from bot.executor import LocalProcessExecutor, RayExecutor
from bot.settings import load_settings
from bot.wiring import build_executor


@pytest.mark.parametrize("backend, kind", [("local", LocalProcessExecutor), ("ray", RayExecutor)])
def test_the_executor_setting_picks_the_backend(backend: str, kind: type) -> None:
    settings = load_settings(_env_file=None, executor=backend, workers=2, device="cpu", offline=True)
    executor = build_executor(settings)
    assert type(executor) is kind
    assert executor.running() == () and executor.queued() == ()  # built, not started: no worker, no Ray yet
