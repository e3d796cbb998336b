"""FairQueue: waiting jobs are served round-robin across users, and across servers within a round."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from bot.executor._fair import FairQueue


@dataclass(eq=False)
class Job:
    """Stands in for the executor's job: an eq=False dataclass, so identity is its equality."""

    name: str
    user: str
    guild: str | None = "G"
    key: str | None = None

    def __repr__(self) -> str:
        return self.name


def queue_of(*jobs: Job) -> FairQueue[Job]:
    queue: FairQueue[Job] = FairQueue()
    for job in jobs:
        queue.push(job, user=job.user, guild=job.guild)
    return queue


def names(jobs: list[Job]) -> list[str]:
    return [job.name for job in jobs]


def test_a_user_with_two_jobs_waits_a_round_for_the_others() -> None:
    a1, a2, c1, c2, b1 = Job("A1", "a"), Job("A2", "a"), Job("C1", "c"), Job("C2", "c"), Job("B1", "b")
    queue = queue_of(a1, a2, c1, c2, b1)

    assert queue.pop() is a1
    assert queue.running_count() == 1
    # B's only job runs before C's second one, although it arrived after it.
    assert names(queue.ordered()) == ["C1", "B1", "A2", "C2"]
    assert [queue.position(job) for job in (c1, b1, a2, c2)] == [0, 1, 2, 3]
    assert queue.position(a1) is None


def test_many_jobs_of_one_user_do_not_starve_a_newcomer() -> None:
    flood = [Job(f"A{i}", "a") for i in range(50)]
    newcomer = Job("B1", "b")
    queue = queue_of(*flood, newcomer)

    assert queue.position(newcomer) == 1  # behind A's first job only
    assert queue.pop() is flood[0]
    assert queue.position(newcomer) == 0
    assert queue.pop() is newcomer


def test_servers_alternate_within_a_round() -> None:
    queue = queue_of(Job("a", "a", "G1"), Job("b", "b", "G1"), Job("c", "c", "G2"))

    assert names(queue.ordered()) == ["a", "c", "b"]


def test_each_dm_user_is_a_server_of_their_own() -> None:
    # Lumping the DM users together would put f before e.
    queue = queue_of(Job("d", "d", None), Job("e", "e", None), Job("f", "f", "G1"), Job("g", "g", "G1"))

    assert names(queue.ordered()) == ["d", "e", "f", "g"]


def test_running_jobs_count_toward_a_users_rounds() -> None:
    a1, a2, b1 = Job("A1", "a"), Job("A2", "a"), Job("B1", "b")
    queue = queue_of(a1, a2)
    queue.started(a1)
    queue.push(b1, user="b", guild="G")

    assert names(queue.ordered()) == ["B1", "A2"]
    assert queue.running_count("a") == 1

    queue.finished(a1)
    assert queue.running_count() == 0
    assert names(queue.ordered()) == ["B1", "A2"]  # A had its turn this round, finished or not


def test_remove_takes_only_waiting_jobs() -> None:
    a1, a2, b1 = Job("A1", "a"), Job("A2", "a"), Job("B1", "b")
    queue = queue_of(a1, a2, b1)
    assert queue.pop() is a1

    assert queue.remove(b1) is True
    assert b1 not in queue and queue.position(b1) is None
    assert queue.remove(b1) is False
    assert queue.remove(a1) is False  # running, not waiting
    assert queue.running_count() == 1
    assert names(queue.ordered()) == ["A2"]
    assert len(queue) == 1 and a2 in queue and queue


def test_take_batch_takes_equal_keys_and_leaves_the_rest_in_order() -> None:
    jobs = [
        Job("a", "a", key="x"),
        Job("b", "b", key="y"),
        Job("c", "c", key="x"),
        Job("d", "d", key=None),
        Job("e", "e", key="x"),
        Job("f", "f", key="x"),
    ]
    queue = queue_of(*jobs)

    batch = queue.take_batch(3, lambda job: job.key)

    assert names(batch) == ["a", "c", "e"]
    assert queue.running_count() == 3
    assert names(queue.ordered()) == ["b", "d", "f"]


def test_take_batch_never_batches_a_none_key() -> None:
    queue = queue_of(Job("a", "a"), Job("b", "b"), Job("c", "c", key="x"))

    assert names(queue.take_batch(4, lambda job: job.key)) == ["a"]
    assert names(queue.ordered()) == ["b", "c"]
    assert names(queue.take_batch(1, lambda job: "same")) == ["b"]  # the limit holds


def test_empty_queue_raises_index_error() -> None:
    queue: FairQueue[Job] = FairQueue()

    assert not queue and len(queue) == 0 and queue.ordered() == []
    with pytest.raises(IndexError):
        queue.pop()
    with pytest.raises(IndexError):
        queue.take_batch(2, lambda job: job.key)


def test_pushing_a_job_twice_is_refused() -> None:
    job = Job("A1", "a")
    queue = queue_of(job)
    with pytest.raises(ValueError):
        queue.push(job, user="a", guild="G")

    queue.pop()
    with pytest.raises(ValueError):
        queue.push(job, user="a", guild="G")  # still running
    queue.finished(job)
    with pytest.raises(KeyError):
        queue.finished(job)


def test_no_user_gets_more_than_one_round_ahead_of_another() -> None:
    """Property over a random day: 200 jobs, 7 users, 3 servers and DMs, random dispatches and completions.

    Each user's jobs take consecutive rounds from the round being served, so at any moment a user's
    next job waits behind at most one job of any other single user per round it is behind: exactly
    one when it is in the round being served. Each user's own jobs also stay in arrival order.
    """
    rng = random.Random(1234)
    users = [f"u{i}" for i in range(7)]
    guilds: list[str | None] = ["G0", "G1", "G2", None]
    queue: FairQueue[Job] = FairQueue()
    running: list[Job] = []
    pushed: list[Job] = []
    checked = 0

    for step in range(600):
        roll = rng.random()
        if len(pushed) < 200 and roll < 0.5:
            user = rng.choice(users)
            job = Job(f"{user}-{step}", user, rng.choice(guilds))
            queue.push(job, user=user, guild=job.guild)
            pushed.append(job)
        elif roll < 0.8 and queue:
            running.append(queue.pop())
        elif running:
            queue.finished(running.pop(rng.randrange(len(running))))

        order = queue.ordered()
        for user in users:
            mine = [i for i, job in enumerate(order) if job.user == user]
            assert [order[i] for i in mine] == sorted((order[i] for i in mine), key=pushed.index)
            if not mine:
                continue
            ahead = order[: mine[0]]
            behind_rounds = queue.round_of(order[mine[0]]) - queue.serving_round
            assert behind_rounds >= 0
            for other in users:
                if other != user and any(job.user == other for job in ahead):
                    assert sum(job.user == other for job in ahead) <= 1 + behind_rounds, (step, user, other, order)
                    checked += 1

    assert len(pushed) == 200
    assert checked > 100  # the property was exercised, not vacuously true


def test_in_a_burst_each_users_kth_job_waits_behind_at_most_k_jobs_of_any_other_user() -> None:
    rng = random.Random(7)
    users = [f"u{i}" for i in range(6)]
    jobs = [Job(f"j{i}", rng.choice(users), rng.choice(["G0", "G1", None])) for i in range(120)]
    order = queue_of(*jobs).ordered()
    for position, job in enumerate(order):
        k = sum(other.user == job.user for other in order[:position]) + 1  # it is its user's k-th job
        ahead = order[:position]
        for other in users:
            if other != job.user:
                assert sum(j.user == other for j in ahead) <= k, (job, other)
