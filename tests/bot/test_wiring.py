"""build_executor: the backend the settings name, with the settings' workers and runner options; open_web: what `dreambot web` runs on."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.executor import LocalProcessExecutor, RayExecutor
from bot.settings import load_settings
from bot.wiring import build_executor, open_web


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


async def test_the_web_gallery_on_its_own_counts_the_result_files_kept_for_its_metrics(tmp_path) -> None:
    """`dreambot web` sweeps nothing (the bot does) but its /metrics still say what RESULTS_DIR holds."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "job-1.png").write_bytes(b"x" * 300)
    (results / "job-1.thumb.webp").write_bytes(b"t" * 20)
    (results / "job-2.gif").write_bytes(b"y" * 100)
    settings = load_settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'store.db'}", results_dir=results,
                             device="cpu")
    async with open_web(settings) as (_, metrics):
        async with asyncio.timeout(30):
            while (kept := await _kept(metrics)) == (0.0, 0.0):
                await asyncio.sleep(0.02)
    assert kept == (2, 420), "two results, their bytes with the thumbnail's"


async def _kept(metrics) -> tuple[float, float]:
    body, _ = await metrics.exposition()
    found = {sample.name: sample.value for family in text_string_to_metric_families(body.decode()) for sample in family.samples}
    return found["dreambot_results_kept"], found["dreambot_result_bytes_kept"]
