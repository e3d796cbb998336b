"""One soak bot process: submits its share of jobs through the service, follows them, "posts" results.

    python -m tests.soak.bot_process --url URL --index 0 --jobs 150 --workdir DIR [--lease 2 --heartbeat 0.4 --pace 0.1 --burst 3]

Once its service is open it appends `INDEX PID OWNER` to owners.log (OWNER: its name in job leases,
the jobs table's owner column), so the orchestrator can see in the database which jobs it holds.
It submits in bursts of `burst` jobs, `burst * pace` seconds apart: right after each burst it holds
queued jobs behind running ones, so a bot kill can land while it holds both.

Its jobs' seeds are index * TICKETS + ticket, so every job of the soak has its own seed. A restarted
process asks the database which of its tickets were already submitted and goes on from there.
It adopts any orphaned job (its own previous run's, or the other process's) and "posts" a job it
finished itself by appending its id to posts.log. SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path

from sqlalchemy import func, select

from bot.commands import Request
from bot.executor import LocalProcessExecutor
from bot.results import LocalResults
from bot.service import Accepted, Requester, Service
from bot.store import RateLimits, Store
from bot.store.models import Job
from tests.bot.fake_runners import fake_compile, fake_describe, fake_restore

TICKETS = 1_000_000  # seeds of process i are i * TICKETS + ticket
USERS, GUILDS = 5, 3  # jobs come from a few users in a few servers, so the fair queue has work to do
JOB = {"steps": 4, "sleep": 0.05}  # about 0.2 s of "work": long enough for kills to land mid-job


async def next_ticket(store: Store, index: int) -> int:
    """The first ticket of this process not in the database yet (a killed run may have submitted some)."""
    low, high = index * TICKETS, (index + 1) * TICKETS
    async with store.database.engine.connect() as conn:
        top = (await conn.execute(select(func.max(Job.seed)).where(Job.seed >= low, Job.seed < high))).scalar_one()
    return 0 if top is None else top - low + 1


def append_line(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


async def serve(url: str, index: int, jobs: int, workdir: Path, lease: float, heartbeat: float, pace: float,
                burst: int = 1) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    limits = RateLimits(user_burst=0, guild_jobs_per_hour=0, max_active_jobs=0)  # the soak is about ownership, not limits
    async with Store.open(url, upgrade=True, lease_seconds=lease, limits=limits) as store:
        executor = LocalProcessExecutor(
            workers=2, runner_factory="tests.soak.runner:SoakRunner", cancel_grace=1.0, shutdown_timeout=2.0,
            runner_options={"log_path": str(workdir / "runs.log")},
        )
        async with executor, Service.open(store=store, executor=executor, results=LocalResults(workdir / "results"),
                                          compile=fake_compile, restore=fake_restore, describe=fake_describe,
                                          heartbeat_seconds=heartbeat) as service:
            append_line(workdir / "owners.log", f"{index} {os.getpid()} {service.owner}\n")
            followers: set[asyncio.Task] = set()

            async def follow(job_id: int) -> None:
                outcome = await service.jobs.follow(job_id)
                # Post only a result this process finished, as the Discord front does. A job it
                # followed but lost (its lease lapsed, another process took it over and ended it) is
                # the other's to post; "done" without a result here means it ended before the
                # follow began, so the store's owner says who finished it.
                if outcome.status == "done" and (outcome.result is not None
                                                 or (await service.jobs.record(job_id)).owner == service.owner):
                    append_line(workdir / "posts.log", f"{job_id} {index} {os.getpid()}\n")

            def follow_all(job_ids: list[int]) -> None:
                for job_id in job_ids:
                    task = asyncio.create_task(follow(job_id))
                    followers.add(task)
                    task.add_done_callback(followers.discard)

            async def on_adopted(records) -> None:
                follow_all([record.id for record in records])

            follow_all([record.id for record in await service.leases.recover(on_adopted=on_adopted)])
            for ticket in range(await next_ticket(store, index), jobs):
                if stop.is_set():
                    break
                requester = Requester(f"soak-{index}-{ticket % USERS}", guild_id=f"g{ticket % GUILDS}", channel_id="c")
                accepted = await service.jobs.submit(Request("zoom", dict(JOB), seed=index * TICKETS + ticket), requester)
                if not isinstance(accepted, Accepted):  # limits are off, so only when stopping
                    break
                follow_all([accepted.job_id])
                if (ticket + 1) % burst == 0:
                    await asyncio.sleep(pace * burst)
            await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--heartbeat", type=float, default=0.4)
    parser.add_argument("--pace", type=float, default=0.1, help="seconds per submission, on average")
    parser.add_argument("--burst", type=int, default=1, help="jobs submitted back to back, then a pause of burst * pace")
    args = parser.parse_args()
    asyncio.run(serve(args.url, args.index, args.jobs, args.workdir, args.lease, args.heartbeat, args.pace, args.burst))


if __name__ == "__main__":
    main()
