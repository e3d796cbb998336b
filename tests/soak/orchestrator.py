"""Run the soak: two bot processes on one database, random worker kills, bot kills and restarts, then checks.

The bots submit their jobs in small bursts at a steady pace. As the jobs that ended (done or
failed) pass evenly spaced marks, the orchestrator SIGKILLs a busy worker (one whose last logged
run has started, not ended) and, at the bot-kill marks, SIGKILLs a whole bot process (its workers
die with it) and starts it again. A bot kill lands only while its bot holds work: the orchestrator
waits (within `kill_wait` seconds) until the jobs table shows a bot (the next in turn, else the
other) holding at least one running and one queued job under its lease owner (each bot writes its
owner to owners.log), stops it (SIGSTOP) and looks again, kills it if it still holds both, and
then reads which jobs the dead process held. Once every job is submitted and none is queued or
running, the bots are stopped and the records checked: each job done exactly once (and "posted"
once) or failed with a one-line reason, no job lost or submitted twice, no job running in two
places at once, a sound database, and for each bot kill, that other processes (the other bot, or
the killed one's restart) adopted and ended every job the dead one held.
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

from sqlalchemy import func, select, text

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
    kills: list[BotKill] = field(default_factory=list)  # one per bot kill, in order

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
        for number, kill in enumerate(self.kills, 1):
            if not {"running", "queued"} <= set(kill.held.values()):
                found.append(f"bot kill {number} missed: {kill.line()}")
            if kill.adopted_done == 0 or kill.adopted_done + kill.adopted_failed != len(kill.held):
                found.append(f"bot kill {number}: of {len(kill.held)} jobs held, {kill.adopted_done} adopted and done, "
                             f"{kill.adopted_failed} adopted and failed")
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
            *(f"  bot kill {number}: {kill.line()}" for number, kill in enumerate(self.kills, 1)),
            f"  store integrity: {self.integrity}",
            "  result: " + ("PASS" if not self.problems() else "FAIL: " + "; ".join(self.problems())),
        ]


@dataclass
class BotKill:
    """One bot kill: the jobs the dead process held (read from the jobs table after the kill) and
    who finished them: the other bot or the killed bot's restart, after adopting them."""

    index: int  # the bot killed
    pid: int
    held: dict[int, str]  # job id -> its status when the process died (queued or running)
    adopted_done: int = 0  # held jobs another process (or the restart) adopted and finished as done
    adopted_failed: int = 0  # ... and recorded failed (a worker killed under the adopter)
    finished_by: Counter = field(default_factory=Counter)  # "bot 1" or "its restart" -> jobs done

    def line(self) -> str:
        running = sum(1 for status in self.held.values() if status == "running")
        who = ", ".join(f"{n} by {name}" for name, n in sorted(self.finished_by.items())) or "nobody"
        return (f"bot {self.index} held {len(self.held)} jobs ({running} running, {len(self.held) - running} queued); "
                f"adopted and done: {self.adopted_done} ({who}); adopted and failed: {self.adopted_failed}")


class _Bot:
    def __init__(self, index: int, url: str, jobs: int, workdir: Path, lease: float, heartbeat: float, pace: float,
                 burst: int):
        self.index = index
        self.args = [sys.executable, "-m", "tests.soak.bot_process", "--url", url, "--index", str(index), "--jobs", str(jobs),
                     "--workdir", str(workdir), "--lease", str(lease), "--heartbeat", str(heartbeat), "--pace", str(pace),
                     "--burst", str(burst)]
        self.log = workdir / f"bot-{index}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.pids: list[int] = []  # every start's pid, oldest first

    async def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(*self.args, stdout=log, stderr=log, cwd=_repo_root())
        self.pids.append(self.proc.pid)

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
    burst: int = 3,
    deadline: float = 900.0,
    kill_wait: float = 120.0,
    seed: int = 0,
) -> SoakReport:
    """Run the soak and check it; raises TimeoutError past `deadline` seconds, or when no bot held
    a running and a queued job within `kill_wait` seconds of a bot-kill mark."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="dreambot-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite+aiosqlite:///{workdir / 'soak.db'}"
    rng = random.Random(seed)
    report = SoakReport(expected=jobs)
    shares = [jobs // BOTS + (1 if i < jobs % BOTS else 0) for i in range(BOTS)]
    bots = [_Bot(i, url, shares[i], workdir, lease, heartbeat, pace, burst) for i in range(BOTS)]
    started = time.monotonic()
    async with Store.open(url, upgrade=True, lease_seconds=lease) as store:
        try:
            for bot in bots:
                await bot.start()
            runs, killed = workdir / "runs.log", set()
            kill_due: float | None = None  # when the pending bot kill's mark was passed
            while True:
                if time.monotonic() - started > deadline:
                    raise TimeoutError(f"the soak did not finish in {deadline:.0f} s; see the logs in {workdir}")
                submitted, active = await _counts(store)
                ended = submitted - active  # marks follow the work done, which lags the submissions by the queue
                for bot in bots:
                    if bot.proc is not None and bot.proc.returncode is not None:
                        raise RuntimeError(f"bot {bot.index} exited by itself with code {bot.proc.returncode}; see {bot.log}")
                if report.worker_kills < worker_kills and ended >= _mark(report.worker_kills, worker_kills, jobs):
                    if _kill_a_busy_worker(runs, rng, killed):
                        report.worker_kills += 1
                if report.bot_kills < bot_kills and ended >= _mark(report.bot_kills, bot_kills, jobs):
                    kill_due = kill_due or time.monotonic()
                    bot = await _holding_work(store, bots, workdir, first=report.bot_kills % BOTS)
                    if bot is not None and await _stopped_holding_work(store, bot, workdir):
                        await bot.kill()
                        report.kills.append(BotKill(bot.index, bot.pids[-1], await _held(store, workdir, bot.pids[-1])))
                        report.bot_kills += 1
                        kill_due = None
                        await bot.start()
                    elif time.monotonic() - kill_due > kill_wait:
                        raise TimeoutError(f"bot kill {report.bot_kills + 1}: no bot held a running and a queued job "
                                           f"within {kill_wait:.0f} s; see the logs in {workdir}")
                if submitted >= jobs and active == 0 and report.worker_kills >= worker_kills and report.bot_kills >= bot_kills:
                    break
                await asyncio.sleep(0.02)
        finally:
            await asyncio.gather(*(bot.stop() for bot in bots))
        report.seconds = time.monotonic() - started
        await _check(store, report, workdir, shares, bots)
    return report


def _mark(kill: int, kills: int, jobs: int) -> float:
    """How many jobs must have ended before kill number `kill` (from 0) of `kills`: evenly spread
    over the first 90% of the jobs, so that the last kills still find work to land on."""
    return (kill + 0.5) * 0.9 * jobs / kills


def _owners(workdir: Path) -> dict[int, str]:
    """Each bot process's lease owner by pid, as the processes wrote them to owners.log."""
    path = workdir / "owners.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return {int(pid): owner for _index, pid, owner in (line.split(maxsplit=2) for line in lines)}


async def _holding_work(store: Store, bots: list[_Bot], workdir: Path, *, first: int) -> _Bot | None:
    """The bot, bots[first] if it can, whose current process holds at least one running and one
    queued job in the jobs table; None when neither does now."""
    owners = _owners(workdir)
    query = (select(Job.owner, Job.status, func.count()).where(Job.status.in_(("queued", "running")))
             .group_by(Job.owner, Job.status))
    async with store.database.engine.connect() as conn:
        held = {(owner, status): n for owner, status, n in (await conn.execute(query)).all()}
    for bot in bots[first:] + bots[:first]:
        owner = owners.get(bot.pids[-1]) if bot.pids and bot.proc is not None and bot.proc.returncode is None else None
        if owner is not None and held.get((owner, "running"), 0) >= 1 and held.get((owner, "queued"), 0) >= 1:
            return bot
    return None


async def _stopped_holding_work(store: Store, bot: _Bot, workdir: Path) -> bool:
    """Stop the bot's process (SIGSTOP) and look again: True, leaving it stopped for the kill, when
    it still holds a running and a queued job; otherwise it goes on (SIGCONT) and False. Stopped, it
    cannot change its jobs between this look and the kill, so the kill lands on what was seen."""
    assert bot.proc is not None
    bot.proc.send_signal(signal.SIGSTOP)
    statuses = set((await _held(store, workdir, bot.pids[-1])).values())
    if {"running", "queued"} <= statuses:
        return True
    bot.proc.send_signal(signal.SIGCONT)
    return False


async def _held(store: Store, workdir: Path, pid: int) -> dict[int, str]:
    """The queued and running jobs the (dead) process `pid` held: nobody else may take them before its leases run out."""
    owner = _owners(workdir)[pid]
    query = select(Job.id, Job.status).where(Job.owner == owner, Job.status.in_(("queued", "running")))
    async with store.database.engine.connect() as conn:
        return {job_id: status for job_id, status in (await conn.execute(query)).all()}


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


async def _check(store: Store, report: SoakReport, workdir: Path, shares: list[int], bots: list[_Bot]) -> None:
    async with store.database.engine.connect() as conn:
        rows = (await conn.execute(select(Job.id, Job.seed, Job.status, Job.error, Job.result_location, Job.owner))).all()
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
    _adoptions(report.kills, {row.id: row for row in rows}, _owners(workdir), bots)


def _adoptions(kills: list[BotKill], rows: dict, owners: dict[int, str], bots: list[_Bot]) -> None:
    """For each bot kill, how the jobs its process held ended, and which process ended them. A job's
    row keeps the owner that recorded its end (finishing checks the owner), and the dead process
    could record nothing more, so a held job that ended was adopted by the process that ended it."""
    index_of = {owners.get(pid): bot.index for bot in bots for pid in bot.pids}
    for kill in kills:
        dead = owners[kill.pid]
        for job_id in kill.held:
            row = rows[job_id]
            if row.owner == dead or row.status not in ("done", "failed"):
                continue
            if row.status == "done":
                kill.adopted_done += 1
                by = index_of.get(row.owner)
                kill.finished_by["its restart" if by == kill.index else f"bot {by}"] += 1
            else:
                kill.adopted_failed += 1


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
