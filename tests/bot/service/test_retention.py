"""The retention sweep (bot/service/retention.py): result files older than RESULT_RETENTION_DAYS are
deleted once, by the process that marked them expired, never one still to post; a dry run counts
what the real run then deletes; the metrics count it; a running service sweeps by itself. Which rows
may expire is tested in tests/bot/store/test_retention.py."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.results import LocalResults
from bot.service import Metrics, Retention
from bot.store import Asker, Store
from tests.bot.fake_runners import fake_spec
from tests.bot.store.helpers import NO_LIMITS, new_job
from tests.bot.store.test_retention import age


@pytest.fixture
async def store(database_url):  # every test here runs on SQLite and on PostgreSQL
    async with Store.open(database_url, upgrade=True, limits=NO_LIMITS) as s:
        yield s


class CountedResults(LocalResults):
    """Result files in a folder, with every deletion that freed a file written down."""

    def __init__(self, folder, log: list[str]) -> None:
        super().__init__(folder)
        self.log = log

    def remove(self, location: str) -> int | None:
        freed = super().remove(location)
        if freed is not None:
            self.log.append(location)
        return freed


async def result(store: Store, results: LocalResults, *, size: int, days_ago: float, posted: bool = True) -> int:
    """A finished job with a result file of `size` bytes, posted unless told, finished `days_ago`; its id."""
    job_id = await new_job(store, fake_spec(), Asker("alice", "g1", "c1"), owner="A")
    location = await results.save(job_id, b"x" * size, "image/png")
    assert await store.jobs.finish(job_id, {"total": 1.0}, location, "image/png", owner="A")
    if posted:
        await store.jobs.posted(job_id, f"https://discord.com/channels/g1/c1/{9000 + job_id}", channel_id="c1", in_guild=True)
    await age(store, job_id, days_ago)
    return job_id


def file_of(results: LocalResults, job_id: int):
    return results.folder / f"job-{job_id}.png"


async def test_two_processes_sweeping_at_once_delete_each_old_file_once_and_never_an_undelivered_one(store, database_url,
                                                                                                    tmp_path):
    log: list[str] = []
    results = CountedResults(tmp_path / "results", log)
    old = [await result(store, results, size=100 + n, days_ago=31) for n in range(20)]
    undelivered = await result(store, results, size=7, days_ago=60, posted=False)
    new = await result(store, results, size=5, days_ago=29)
    async with Store.open(database_url, limits=NO_LIMITS) as other:
        sweeps = [Retention(store=handle, results=CountedResults(tmp_path / "results", log), days=30, batch=3)
                  for handle in (store, other)]
        pruned = await asyncio.gather(*(sweep.prune() for sweep in sweeps))
    assert sorted(log) == sorted(f"job-{j}.png" for j in old), "each old file deleted by exactly one of them"
    assert sum(p.files for p in pruned) == 20 and sum(p.bytes for p in pruned) == sum(100 + n for n in range(20))
    assert not any(file_of(results, j).exists() for j in old)
    assert file_of(results, undelivered).exists() and (await store.jobs.get(undelivered)).result_removed is None, \
        "a result still to post stays, however old"
    assert file_of(results, new).exists() and (await store.jobs.get(new)).result_removed is None


async def test_a_file_older_than_the_retention_is_gone_and_marked_expired_while_a_newer_one_stays(store, tmp_path):
    results = LocalResults(tmp_path / "results")
    old, new = await result(store, results, size=10, days_ago=8), await result(store, results, size=10, days_ago=6)
    pruned = await Retention(store=store, results=results, days=7).prune()
    assert (pruned.files, pruned.bytes, pruned.days, pruned.dry_run) == (1, 10, 7, False)
    assert not file_of(results, old).exists() and (await store.jobs.get(old)).result_removed == "expired"
    assert file_of(results, new).exists() and (await store.jobs.get(new)).result_removed is None
    assert (await Retention(store=store, results=results, days=7).prune()).files == 0, "nothing twice"


async def test_a_dry_run_deletes_nothing_and_counts_what_the_real_run_then_deletes(store, tmp_path):
    results = LocalResults(tmp_path / "results")
    old = [await result(store, results, size=1000 * n, days_ago=40) for n in (1, 2, 3)]
    await result(store, results, size=1, days_ago=1)
    gone_by_hand = await result(store, results, size=50, days_ago=40)
    file_of(results, gone_by_hand).unlink()
    retention = Retention(store=store, results=results, days=30)
    dry = await retention.prune(dry_run=True)
    assert (dry.files, dry.bytes, dry.dry_run) == (3, 6000, True)
    assert all(file_of(results, j).exists() for j in old) and (await store.jobs.get(old[0])).result_removed is None
    real = await retention.prune()
    assert (real.files, real.bytes) == (dry.files, dry.bytes)
    assert not any(file_of(results, j).exists() for j in old)
    assert (await store.jobs.get(gone_by_hand)).result_removed == "expired", "no file to delete, but expired all the same"


async def test_the_metrics_count_the_files_and_bytes_a_sweep_freed_and_kept(store, tmp_path):
    results = LocalResults(tmp_path / "results")
    for size in (300, 400):
        await result(store, results, size=size, days_ago=31)
    await result(store, results, size=20, days_ago=1)
    metrics = Metrics(store)
    retention = Retention(store=store, results=results, days=30, metrics=metrics)
    await retention.prune(dry_run=True)
    assert (await _samples(metrics))[:2] == (0, 0), "a dry run deletes nothing"
    await retention.prune()
    await retention.prune()  # nothing more to delete: nothing more counted
    assert await _samples(metrics) == (2, 700, 1, 20)


async def _samples(metrics: Metrics) -> tuple[float, ...]:
    body, _ = await metrics.exposition()
    found = {sample.name: sample.value for family in text_string_to_metric_families(body.decode()) for sample in family.samples}
    return tuple(found[name] for name in ("dreambot_results_expired_total", "dreambot_result_bytes_freed_total",
                                          "dreambot_results_kept", "dreambot_result_bytes_kept"))


async def test_a_running_service_sweeps_by_itself(store, tmp_path):
    results = LocalResults(tmp_path / "results")
    old = await result(store, results, size=10, days_ago=31)
    retention = Retention(store=store, results=results, days=30, sweep_seconds=0.05)
    retention.start()
    try:
        async with asyncio.timeout(30):  # only stops a hung test
            while file_of(results, old).exists():
                await asyncio.sleep(0.02)
    finally:
        await retention.close()
    assert (await store.jobs.get(old)).result_removed == "expired"


async def test_a_file_left_by_a_process_that_died_after_marking_it_expired_goes_at_the_next_sweep(store, tmp_path):
    log: list[str] = []
    results = CountedResults(tmp_path / "results", log)
    left, gone = [await result(store, results, size=size, days_ago=31) for size in (40, 50)]
    # A sweep marked both expired, deleted one file and died before the other.
    candidates = await store.retention.expirable(30 * 86400)
    assert {row.job_id for row in await store.retention.expire(candidates, 30 * 86400)} == {left, gone}
    results.remove(f"job-{gone}.png")
    assert file_of(results, left).exists()
    pruned = await Retention(store=store, results=results, days=30).prune()
    assert (pruned.files, pruned.bytes) == (1, 40) and not file_of(results, left).exists()
    assert log == [f"job-{gone}.png", f"job-{left}.png"], "each file deleted once"
    assert (await Retention(store=store, results=results, days=30).prune()).files == 0
