"""The service's delivery: a result Discord refused is offered again only after a growing wait, to
one process at a time. The store's side is in tests/bot/store/test_deliveries.py."""

from __future__ import annotations

import time

import pytest

from bot.executor import LocalProcessExecutor
from bot.results import LocalResults
from bot.service import Service
from bot.store import Asker, Store
from tests.bot.fake_runners import fake_spec
from tests.bot.store.helpers import NO_LIMITS, new_job

FAKE = "tests.bot.fake_runners:FakeRunner"


@pytest.fixture
async def store(database_url):  # every test here runs on SQLite and on PostgreSQL
    async with Store.open(database_url, upgrade=True, limits=NO_LIMITS) as s:
        yield s


@pytest.fixture
async def service(store, tmp_path):
    executor = LocalProcessExecutor(workers=1, runner_factory=FAKE)  # never started: nothing runs here
    async with Service.open(store=store, executor=executor, results=LocalResults(tmp_path), delivery_retry_seconds=10) as s:
        yield s


async def finished_job(store: Store, location: str = "job.png") -> int:
    job_id = await new_job(store, fake_spec(), Asker("alice", "g1", "c1"), owner="A")
    assert await store.jobs.finish(job_id, {"total": 1.0}, location, "image/png", owner="A")
    await store.deliveries.failed(job_id, "HTTP 503")  # A's first post was refused: its try is over
    return job_id


async def test_the_service_hands_out_a_result_again_only_after_its_backoff(store, service):
    delivery = service.delivery
    assert [delivery.retry_delay(n) for n in (1, 2, 3, 20)] == [10, 20, 40, 3600]
    job_id = await finished_job(store)
    finished_at = (await store.jobs.get(job_id)).delivery_tried_at
    assert await delivery.due(now=finished_at + 9) == []
    [due] = await delivery.due(now=finished_at + 11)
    assert (due.id, due.delivery_attempts, due.delivery_tried_at) == (job_id, 2, finished_at + 11)
    assert await delivery.due(now=finished_at + 12) == [], "claimed: no second try meanwhile"
    assert await delivery.failed(job_id, "HTTP 502") == 20
    assert await delivery.due(now=finished_at + 11 + 19) == []
    assert [r.id for r in await delivery.due(now=finished_at + 11 + 21)] == [job_id]
    assert await delivery.due(lambda record: False, now=time.time() + 10_000) == [], "another front's jobs"


async def test_a_pending_results_file_is_read_back_for_the_next_try(store, service, tmp_path):
    location = await LocalResults(tmp_path).save(1, b"png bytes", "image/png")
    job_id = await finished_job(store, location)
    record = await store.jobs.get(job_id)
    assert await service.delivery.result(record) == (b"png bytes", "image/png")
    (tmp_path / location).unlink()
    assert await service.delivery.result(record) is None, "its file is gone"
