"""Run the soak: two bot processes on one database, random worker kills, bot kills and restarts, then checks.

The bots submit their jobs at a steady pace. As the submissions pass evenly spaced marks, the
orchestrator SIGKILLs a busy worker (one whose last logged run has started, not ended) and, at
the bot-kill marks, SIGKILLs a whole bot process (its workers die with it) and starts it again.
Once every job is submitted and none is queued or running, the bots are stopped and the records
checked: each job done exactly once (and "posted" once) or failed with a one-line reason, no job
lost or submitted twice, no job running in two places at once, and a sound database.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select, text

from bot.store import Store
from bot.store.models import Job

from .bot_process import TICKETS

BOTS = 2


@dataclass
class SoakReport:
    expected: int
    jobs: int = 0
    done: int = 0
    failed: int = 0
    failure_reasons: Counter = field(default_factory=Counter)
    worker_kills: int = 0
    bot_kills: int = 0
    lost: int = 0  # tickets submitted to nobody's record: a job that vanished
    duplicated: int = 0  # tickets recorded twice
    unfinished: int = 0  # still queued or running at the end
    not_one_line: int = 0  # failures without a one-line reason
    posted_twice: int = 0
    posted_not_done: int = 0
    done_not_posted: int = 0  # finished, but its bot died before "posting"; delivery retries are another issue
    concurrent_runs: int = 0  # one job running in two workers at the same time
    reruns_after_a_bot_died: int = 0  # ran to its end, its bot died before recording it, run again by the adopter
    started_again: int = 0  # runs cut short by a bot kill and started again by the process that adopted the job
    integrity: str = "not checked"
    seconds: float = 0.0

    def problems(self) -> list[str]:
        found = []
        if self.jobs != self.expected or self.lost or self.duplicated:
            found.append(f"{self.jobs} jobs recorded for {self.expected} submitted ({self.lost} lost, {self.duplicated} twice)")
        if self.done + self.failed != self.jobs or self.unfinished:
            found.append(f"{self.unfinished} jobs unfinished, {self.jobs - self.done - self.failed - self.unfinished} in another state")
        for name in ("not_one_line", "posted_twice", "posted_not_done", "concurrent_runs"):
            if getattr(self, name):
                found.append(f"{name.replace('_', ' ')}: {getattr(self, name)}")
        if self.integrity != "ok":
            found.append(f"integrity: {self.integrity}")
        return found

    def lines(self) -> list[str]:
        reasons = "; ".join(f"{n} x {reason}" for reason, n in self.failure_reasons.most_common()) or "none"
        return [
            f"soak: {self.jobs} jobs of {self.expected} in {self.seconds:.0f} s, two bot processes on one database",
            f"  kills: {self.worker_kills} workers (SIGKILL), {self.bot_kills} bot processes (SIGKILL, then restarted)",
            f"  done exactly once: {self.done}; failed with a one-line reason: {self.failed} ({reasons})",
            f"  lost: {self.lost}; recorded twice: {self.duplicated}; unfinished: {self.unfinished}; "
            f"ran in two places at once: {self.concurrent_runs}; posted twice: {self.posted_twice}",
            f"  started again after their bot was killed under them: {self.started_again}; "
            f"re-run after their bot died before recording them: {self.reruns_after_a_bot_died}; "
            f"done but their bot died before posting: {self.done_not_posted}",
            f"  store integrity: {self.integrity}",
            "  result: " + ("PASS" if not self.problems() else "FAIL: " + "; ".join(self.problems())),
        ]


class _Bot:
    def __init__(self, index: int, url: str, jobs: int, workdir: Path, lease: float, heartbeat: float, pace: float):
        self.index = index
        self.args = [sys.executable, "-m", "tests.soak.bot_process", "--url", url, "--index", str(index), "--jobs", str(jobs),
                     "--workdir", str(workdir), "--lease", str(lease), "--heartbeat", str(heartbeat), "--pace", str(pace)]
        self.log = workdir / f"bot-{index}.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(*self.args, stdout=log, stderr=log, cwd=_repo_root())

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        await self.proc.wait()

    async def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def soak(
    *,
    jobs: int = 300,
    worker_kills: int = 30,
    bot_kills: int = 3,
    database_url: str | None = None,
    workdir: Path | None = None,
    lease: float = 2.0,
    heartbeat: float = 0.4,
    pace: float = 0.1,
    deadline: float = 900.0,
    seed: int = 0,
) -> SoakReport:
    workdir = Path(workdir or tempfile.mkdtemp(prefix="dreambot-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite+aiosqlite:///{workdir / 'soak.db'}"
    rng = random.Random(seed)
    report = SoakReport(expected=jobs)
    shares = [jobs // BOTS + (1 if i < jobs % BOTS else 0) for i in range(BOTS)]
    bots = [_Bot(i, url, shares[i], workdir, lease, heartbeat, pace) for i in range(BOTS)]
    started = time.monotonic()
    async with Store.open(url, upgrade=True, lease_seconds=lease) as store:
        try:
            for bot in bots:
                await bot.start()
            runs, killed = workdir / "runs.log", set()
            while True:
                if time.monotonic() - started > deadline:
                    raise TimeoutError(f"the soak did not finish in {deadline:.0f} s; see the logs in {workdir}")
                submitted, active = await _counts(store)
                for bot in bots:
                    if bot.proc is not None and bot.proc.returncode is not None:
                        raise RuntimeError(f"bot {bot.index} exited by itself with code {bot.proc.returncode}; see {bot.log}")
                if report.worker_kills < worker_kills and submitted >= (report.worker_kills + 1) * jobs / (worker_kills + 1):
                    if _kill_a_busy_worker(runs, rng, killed):
                        report.worker_kills += 1
                if report.bot_kills < bot_kills and submitted >= (report.bot_kills + 1) * jobs / (bot_kills + 1):
                    bot = bots[report.bot_kills % BOTS]
                    await bot.kill()
                    report.bot_kills += 1
                    await bot.start()
                if submitted >= jobs and active == 0 and report.worker_kills >= worker_kills and report.bot_kills >= bot_kills:
                    break
                await asyncio.sleep(0.02)
        finally:
            await asyncio.gather(*(bot.stop() for bot in bots))
        report.seconds = time.monotonic() - started
        await _check(store, report, workdir, shares)
    return report


async def _counts(store: Store) -> tuple[int, int]:
    async with store.database.engine.connect() as conn:
        rows = (await conn.execute(select(Job.status))).scalars().all()
    return len(rows), sum(1 for status in rows if status in ("queued", "running"))


def _kill_a_busy_worker(runs: Path, rng: random.Random, killed: set[int]) -> bool:
    """SIGKILL a worker whose last logged run started and has not ended; False when none is busy now.

    `killed` remembers the victims: a killed process lingers a moment before it is gone."""
    last: dict[int, str] = {}
    if runs.exists():
        for line in runs.read_text().splitlines():
            event, _seed, pid, _when = line.split()
            last[int(pid)] = event
    busy = [pid for pid, event in last.items() if event == "start" and pid not in killed and _alive(pid)]
    if not busy:
        return False
    victim = rng.choice(busy)
    os.kill(victim, signal.SIGKILL)
    killed.add(victim)
    return True


def _alive(pid: int) -> bool:
    """Running, not a zombie: a killed worker stays in the process table until its bot reaps it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def _check(store: Store, report: SoakReport, workdir: Path, shares: list[int]) -> None:
    async with store.database.engine.connect() as conn:
        rows = (await conn.execute(select(Job.id, Job.seed, Job.status, Job.error, Job.result_location))).all()
        report.integrity = await _integrity(conn, rows)
    report.jobs = len(rows)
    seeds = Counter(row.seed for row in rows)
    expected = {index * TICKETS + ticket for index, share in enumerate(shares) for ticket in range(share)}
    report.lost = len(expected - set(seeds))
    report.duplicated = sum(n - 1 for n in seeds.values() if n > 1)
    report.unfinished = sum(1 for row in rows if row.status in ("queued", "running"))
    report.done = sum(1 for row in rows if row.status == "done")
    failed = [row for row in rows if row.status == "failed"]
    report.failed = len(failed)
    report.failure_reasons = Counter(row.error for row in failed)
    report.not_one_line = sum(1 for row in failed if not row.error or "\n" in row.error)

    posts_file = workdir / "posts.log"
    posts = Counter(int(line.split()[0]) for line in posts_file.read_text().splitlines()) if posts_file.exists() else Counter()
    done_ids = {row.id for row in rows if row.status == "done"}
    report.posted_twice = sum(1 for n in posts.values() if n > 1)
    report.posted_not_done = len(set(posts) - done_ids)
    report.done_not_posted = len(done_ids - set(posts))

    concurrent, reruns, started_again = _runs_overlap(workdir / "runs.log")
    report.concurrent_runs, report.reruns_after_a_bot_died, report.started_again = concurrent, reruns, started_again


async def _integrity(conn, rows) -> str:
    problems = []
    if conn.dialect.name == "sqlite":
        checked = (await conn.execute(text("PRAGMA integrity_check"))).scalar_one()
        if checked != "ok":
            problems.append(f"integrity_check says {checked}")
        if (await conn.execute(text("PRAGMA foreign_key_check"))).all():
            problems.append("foreign keys broken")
    for row in rows:
        if row.status == "done" and not row.result_location:
            problems.append(f"job {row.id} is done without a result")
        if row.status not in ("done", "failed", "queued", "running", "cancelled"):
            problems.append(f"job {row.id} has status {row.status}")
    return "; ".join(problems[:5]) or "ok"


def _runs_overlap(runs: Path) -> tuple[int, int, int]:
    """(jobs that ran in two workers at the same time, jobs that ran to their end more than once,
    jobs started more than once)."""
    spans: dict[int, list[tuple[float, float, int]]] = defaultdict(list)
    open_runs: dict[tuple[int, int], float] = {}
    starts: Counter = Counter()
    if not runs.exists():
        return 0, 0, 0
    for line in runs.read_text().splitlines():
        event, seed, pid, when = line.split()
        key = (int(seed), int(pid))
        if event == "start":
            starts[int(seed)] += 1
            open_runs[key] = float(when)
        elif key in open_runs:
            spans[int(seed)].append((open_runs.pop(key), float(when), int(pid)))
    concurrent = 0
    for seed, finished in spans.items():
        ordered = sorted(finished)
        if any(later[0] < earlier[1] for earlier, later in zip(ordered, ordered[1:])):
            concurrent += 1
    reruns = sum(1 for finished in spans.values() if len(finished) > 1)
    return concurrent, reruns, sum(1 for n in starts.values() if n > 1)


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
