"""The soak in a reduced size (`make soak` runs the full one): kills of workers and bot processes lose and repeat nothing."""

from __future__ import annotations

import pytest

from tests.soak.orchestrator import soak

pytestmark = pytest.mark.slow


async def test_jobs_survive_worker_and_bot_kills_exactly_once(tmp_path, database_url):
    report = await soak(jobs=60, worker_kills=6, bot_kills=2, workdir=tmp_path, database_url=database_url, deadline=400)
    print("\n".join(report.lines()))
    assert report.problems() == [], "\n".join(report.lines())
    assert (report.worker_kills, report.bot_kills) == (6, 2)
    assert report.jobs == 60 and report.done + report.failed == 60
    assert 0 < report.failed <= report.worker_kills, "only a job whose worker was killed under it may fail"
    assert set(report.failure_reasons) <= {"the worker running this job stopped unexpectedly; please try again"}
    # Each bot kill landed on a process holding a running and a queued job, and other processes (the
    # other bot, or the killed one's restart) adopted every job it held and ended it: done, or
    # failed when a worker was killed under the adopter.
    assert len(report.kills) == 2
    for kill in report.kills:
        assert "running" in kill.held.values() and "queued" in kill.held.values(), kill.line()
        assert kill.adopted_done > 0 and kill.adopted_done + kill.adopted_failed == len(kill.held), kill.line()
        assert sum(kill.finished_by.values()) == kill.adopted_done, kill.line()
