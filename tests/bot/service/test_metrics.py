"""/metrics and /healthz's data: counted as things happen in the process, and read from the database."""

from __future__ import annotations

import io

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import create_async_engine

from bot.console import Console
from bot.service.metrics import REFUSAL_REASONS, Metrics
from bot.settings import load_settings
from bot.store import Database, Store
from bot.wiring import open_service


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition, keyed by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture
def settings(tmp_path):
    return load_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", results_dir=tmp_path / "results",
                         device="cpu", workers=1, user_burst=1, user_refill_seconds=3600, _env_file=None)


async def test_metrics_after_a_console_job(settings):
    async with open_service(settings) as service:
        console = Console(service, io.StringIO(), user="ops", default_model=settings.dream_model,
                          max_input_bytes=settings.max_input_bytes)
        await console.handle_line("!visualize banana steps:10 size:64", wait=True)
        await console.handle_line("!visualize nosuchclass")  # a mistake: refused before admission
        await console.handle_line("!visualize banana steps:10 size:64")  # the burst of 1 is spent
        body, content_type = await service.metrics.exposition()
    assert content_type.startswith("text/plain; version=")  # the Prometheus text format
    found = samples(body)
    assert found[("dreambot_jobs", (("kind", "visualize"), ("status", "done")))] == 1
    assert found[("dreambot_job_seconds_count", (("kind", "visualize"),))] == 1
    assert 0 < found[("dreambot_job_seconds_sum", (("kind", "visualize"),))] < 60
    assert found[("dreambot_queue_length", ())] == 0
    assert found[("dreambot_live_workers", ())] == 1
    refused = {reason: found[("dreambot_admissions_refused_total", (("reason", reason),))] for reason in REFUSAL_REASONS}
    assert refused == {"invalid_request": 1, "over_time_cap": 0, "active_jobs": 0, "user_rate": 1, "server_rate": 0, "stopping": 0}
    assert found[("dreambot_uploads_retried_total", ())] == 0


async def test_health_judges_the_database_and_the_workers(settings, tmp_path):
    async with open_service(settings) as service:
        healthy, checks = await service.metrics.health()
        assert healthy and checks == {"database": "ok", "workers": "1 live"}
    async with Store.open(settings.database_url) as store:
        healthy, checks = await Metrics(store).health()  # `dreambot web` alone: no workers to judge
        assert healthy and checks["workers"] == "none in this process"
    unreachable = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    healthy, checks = await Metrics(Store(Database(unreachable))).health()
    await unreachable.dispose()
    assert not healthy and checks["database"] == "unreachable: OperationalError"


async def test_queue_length_counts_every_processs_waiting_jobs(settings):
    from tests.bot.fake_runners import fake_spec

    from tests.bot.rows import add_job

    async with Store.open(settings.database_url, upgrade=True) as store:
        for owner in ("process-a", "process-b"):
            await add_job(store, fake_spec("zoom"), user_id="u", owner=owner)
        found = samples((await Metrics(store).exposition())[0])
    assert found[("dreambot_queue_length", ())] == 2
    assert found[("dreambot_jobs", (("kind", "zoom"), ("status", "queued")))] == 2


async def test_each_limit_names_itself_in_a_refusal(settings):
    from bot.store import Asker, RateLimits
    from tests.bot.fake_runners import fake_spec

    limits = RateLimits(user_burst=5, guild_jobs_per_hour=1, max_active_jobs=1)
    async with Store.open(settings.database_url, upgrade=True, limits=limits) as store:
        def admit(user: str, predicted: float = 1.0):
            return store.jobs.admit(fake_spec(), Asker(user, "g"), predicted=predicted, max_seconds=60.0)

        first = await admit("a")
        busy = await admit("a")
        server = await admit("b")
        over = await admit("c", predicted=61.0)
    assert (first.allowed, first.refusal) == (True, "")
    assert (busy.allowed, busy.refusal) == (False, "active_jobs")
    assert (server.allowed, server.refusal) == (False, "server_rate")
    assert (over.allowed, over.refusal, over.limit) == (False, "over_time_cap", 60.0)
    assert {admission.refusal for admission in (busy, server, over)} <= set(REFUSAL_REASONS)
