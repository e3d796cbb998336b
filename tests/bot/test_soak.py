"""The soak in a reduced size (`make soak` runs the full one): kills of workers and bot processes lose and repeat nothing."""

from __future__ import annotations

import pytest

from tests.soak.orchestrator import soak

pytestmark = pytest.mark.slow


async def test_jobs_survive_worker_and_bot_kills_exactly_once(tmp_path, database_url):
    report = await soak(jobs=80, worker_kills=8, bot_kills=3, workdir=tmp_path, database_url=database_url, deadline=400)
    print("\n".join(report.lines()))
    assert report.problems() == [], "\n".join(report.lines())
    assert (report.worker_kills, report.bot_kills) == (8, 3)
    assert report.jobs == 80 and report.done + report.failed == 80
    assert 0 < report.failed <= report.worker_kills, "only a job whose worker was killed under it may fail"
    assert set(report.failure_reasons) <= {"the worker running this job stopped unexpectedly; please try again"}
