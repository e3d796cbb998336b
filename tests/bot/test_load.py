"""The load test in a reduced size (`make soak` runs the full one and holds it to its timing targets):
many users in several servers queue jobs through one real bot process while `!queue` and the web
gallery are asked all along; every job is done and posted exactly once, and the bot's memory stays
bounded. The timings are printed, not asserted: on a shared machine they are not a test."""

from __future__ import annotations

import pytest

from tests.soak.load import TARGETS, load

pytestmark = pytest.mark.slow


async def test_many_users_jobs_are_each_done_and_posted_once_with_bounded_memory(tmp_path):
    report = await load(users=40, guilds=8, jobs=200, workdir=tmp_path)
    print("\n".join(report.lines(timings=False)))
    assert report.problems(timings=False) == [], "\n".join(report.lines(timings=False))
    assert report.jobs == report.done == report.posted == report.result_posts == 200
    assert report.rss_ready > 0 and report.rss_peak - report.rss_ready <= TARGETS.memory_growth
    # The measurements ran while the queue was drained, and the gallery answered every time.
    assert report.queue_answers and report.gallery_pages and report.loop_lag
    assert report.most_waiting > 0, "no !queue answer saw a job waiting: the asks missed the load"
    assert set(report.gallery_statuses) == {200}
