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


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_the_worker_settings_reach_the_executor(backend: str) -> None:
    settings = load_settings(_env_file=None, executor=backend, workers=3, device="cpu", offline=True, max_batch=4,
                             threads_per_worker=2, precision="fp32", max_input_pixels=2_000_000, dream_model="googlenet")
    executor = build_executor(settings)
    assert (executor._requested_workers, executor._device, executor._max_batch, executor._requested_threads) == (3, "cpu", 4, 2)
    assert executor._runner_options == {"precision": "fp32", "allow_download": False, "max_pixels": 2_000_000}
    assert executor._warm_models == ("googlenet",)


def test_the_ray_settings_reach_the_ray_executor() -> None:
    settings = load_settings(_env_file=None, executor="ray", device="cpu", ray_address="ray://head:10001",
                             ray_cpus_per_actor=2, ray_gpus_per_actor=0.5, ray_start_timeout=7)
    executor = build_executor(settings)
    assert (executor._address, executor._start_timeout) == ("ray://head:10001", 7)
    assert executor._actor_resources("cuda") == {"num_cpus": 2, "num_gpus": 0.5}


def test_unset_worker_settings_leave_the_executor_its_own_defaults() -> None:
    executor = build_executor(load_settings(_env_file=None, device="cpu"))
    assert (executor._requested_workers, executor._max_batch, executor._requested_threads) == (0, None, None), \
        "0 in the settings means: one worker per GPU or one on CPU, batches by device, threads by share of the cores"
