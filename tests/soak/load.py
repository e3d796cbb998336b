"""The load test: many users in many servers queue jobs through one real bot while it is measured.

    python -m tests.soak.load [--users 200 --guilds 20 --jobs 1000] [--postgres | --database-url URL]

One bot process (tests/soak/load_bot.py: `dreambot run --web`, fake jobs of `job_seconds` each) runs
against a fake Discord (tests/fake_discord) in this process, with the rate limits off. Users post
`!zoom` jobs in their server's channel at `rate` jobs a second, round the users, until `jobs` are
posted; the bot acknowledges them, its workers run them, it posts each result. While the queue
fills and drains:

- the bot's event-loop lag: how late a task sleeping 10 ms at a time wakes (load_bot.py);
- `!queue`: a user asks in their server's #queue channel, and the time runs from dispatching the
  message to the bot's answer reaching the fake Discord; one ask at a time, round the users;
- a web gallery page (`/servers/<id>`, recent or top, round the servers), served by the same bot
  process from the same store: the time from sending the GET to the last byte;
- the bot process's RSS: when ready, at its peak (the kernel's VmHWM) and at the end.

At the end the store must hold each job once, done and posted, and the fake Discord one result
post per job. `LoadReport.problems(timings=True)` also holds the figures to the targets (make soak);
`timings=False` (make test, on a shared machine) only to exactly-once and bounded memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select

from bot.settings import Settings
from bot.store import Store
from bot.store.models import Job
from tests.fake_discord import FakeDiscord

from .load_bot import watch_the_loop

__all__ = ["LoadReport", "load", "TARGETS"]

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 60.0  # seconds one wait for the bot (to start, to answer) may take before the run fails instead of hanging
JOB = "!zoom frames:2 size:64 steps:1"  # a valid request; the paced worker only sleeps job_seconds
MiB = 1024 * 1024
IDLE_ASKS = 10  # !queue asked before the load, for a baseline


@dataclass(frozen=True)
class Targets:
    loop_lag_p99: float = 0.100  # seconds
    answer_p99: float = 0.200  # seconds, for !queue and the gallery page alike
    memory_growth: int = 200 * MiB  # peak RSS above the RSS of the ready bot, before the load


TARGETS = Targets()


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


@dataclass
class LoadReport:
    users: int
    guilds: int
    expected: int
    database: str
    rate: float
    job_seconds: float
    workers: int
    started_at: float = 0.0  # wall-clock time of the first job asked for
    seconds: float = 0.0  # from the first job asked for to the last result posted by the bot
    all_asked_after: float = 0.0  # seconds until every job was asked for
    loop_lag: list[float] = field(default_factory=list)  # seconds late, each 10 ms sleep during the load
    driver_lag: list[float] = field(default_factory=list)  # the same, in this process (fake Discord, timers), for context
    queue_answers: list[float] = field(default_factory=list)  # seconds, each !queue
    queue_idle: list[float] = field(default_factory=list)  # seconds, each !queue asked before the load, as a baseline
    gallery_pages: list[float] = field(default_factory=list)  # seconds, each gallery GET
    gallery_statuses: Counter = field(default_factory=Counter)
    most_waiting: int = 0  # the largest "waiting" count a !queue answer gave
    rss_ready: int = 0  # bytes
    rss_peak: int = 0
    rss_end: int = 0
    jobs: int = 0  # rows in the store
    done: int = 0
    failed: int = 0
    posted: int = 0  # rows whose result the store records as posted
    result_posts: int = 0  # messages with a result on the fake Discord
    posted_twice: int = 0  # jobs with more than one result post
    not_posted: int = 0  # jobs with no result post
    stray_posts: int = 0  # result posts of no job in the store

    def problems(self, *, timings: bool, targets: Targets = TARGETS) -> list[str]:
        found = []
        if self.jobs != self.expected or self.done != self.expected or self.failed:
            found.append(f"{self.jobs} jobs recorded for {self.expected} asked, {self.done} done, {self.failed} failed")
        if self.posted != self.expected or self.result_posts != self.expected or self.posted_twice or self.not_posted \
                or self.stray_posts:
            found.append(f"{self.posted} recorded posted, {self.result_posts} result posts for {self.expected} jobs "
                         f"({self.posted_twice} posted twice, {self.not_posted} never, {self.stray_posts} of no job)")
        if not self.rss_ready or self.rss_peak - self.rss_ready > targets.memory_growth:
            found.append(f"memory: peak RSS {self.rss_peak / MiB:.0f} MiB is more than {targets.memory_growth / MiB:.0f} MiB "
                         f"above the ready bot's {self.rss_ready / MiB:.0f} MiB")
        if not timings:
            return found
        if not self.loop_lag or percentile(self.loop_lag, 99) >= targets.loop_lag_p99:
            found.append(f"event-loop lag p99 {_ms(percentile(self.loop_lag, 99))} is not under {_ms(targets.loop_lag_p99)}")
        for what, times in (("!queue", self.queue_answers), ("gallery page", self.gallery_pages)):
            if not times or percentile(times, 99) > targets.answer_p99:
                found.append(f"{what} p99 {_ms(percentile(times, 99))} ({len(times)} asked) is over {_ms(targets.answer_p99)}")
        if set(self.gallery_statuses) != {200}:
            found.append(f"gallery answers: {dict(self.gallery_statuses)}")
        return found

    def lines(self, *, timings: bool = True) -> list[str]:
        problems = self.problems(timings=timings)
        statuses = ", ".join(f"{n} x HTTP {status}" for status, n in sorted(self.gallery_statuses.items())) or "none"
        return [
            f"load: {self.expected} jobs from {self.users} users in {self.guilds} servers through one bot process "
            f"(dreambot run --web, {self.workers} workers, fake jobs of {self.job_seconds:g} s) on {self.database}",
            f"  asked at {self.rate:g} jobs/s: all asked after {self.all_asked_after:.1f} s, all posted after "
            f"{self.seconds:.1f} s ({self.expected / max(self.seconds, 1e-9):.1f} jobs/s); longest queue seen: "
            f"{self.most_waiting} waiting",
            f"  event-loop lag ({len(self.loop_lag)} sleeps of 10 ms): {_spread(self.loop_lag)}",
            f"  (the measuring process's own loop, which hosts the fake Discord and times the answers: "
            f"{_spread(self.driver_lag)})",
            f"  !queue answered ({len(self.queue_answers)} asks): {_spread(self.queue_answers)}; "
            f"before the load ({len(self.queue_idle)} asks): {_spread(self.queue_idle)}",
            f"  gallery page ({len(self.gallery_pages)} GETs, {statuses}): {_spread(self.gallery_pages)}",
            f"  bot process RSS: {self.rss_ready / MiB:.0f} MiB ready, peak {self.rss_peak / MiB:.0f} MiB "
            f"(+{(self.rss_peak - self.rss_ready) / MiB:.0f} MiB), {self.rss_end / MiB:.0f} MiB at the end",
            f"  jobs: {self.jobs} recorded, {self.done} done, {self.failed} failed, {self.posted} recorded posted; "
            f"result posts: {self.result_posts} ({self.posted_twice} jobs twice, {self.not_posted} never, "
            f"{self.stray_posts} of no job)",
            "  result: " + ("PASS" if not problems else "FAIL: " + "; ".join(problems))
            + ("" if timings else " (timings not checked)"),
        ]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _spread(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (f"p50 {_ms(percentile(values, 50))}, p99 {_ms(percentile(values, 99))}, max {_ms(max(values))} "
            f"(mean {_ms(statistics.fmean(values))})")


@dataclass
class _Server:
    guild_id: int
    jobs_channel: dict[str, Any]
    queue_channel: dict[str, Any]


class _ResultPosts:
    """Counts result posts (a bot message with a file, naming its job) as the fake Discord records
    them, reading only what is new each time."""

    _JOB = re.compile(r"job #(\d+)")

    def __init__(self, fake: FakeDiscord):
        self.fake, self.seen, self.posts = fake, 0, Counter()

    def count(self) -> int:
        messages = self.fake.messages
        for message in messages[self.seen:]:
            if message["attachments"] and (match := self._JOB.search(message["content"])):
                self.posts[int(match[1])] += 1
        self.seen = len(messages)
        return sum(self.posts.values())


async def load(
    *,
    users: int = 200,
    guilds: int = 20,
    jobs: int = 1000,
    database_url: str | None = None,
    workdir: Path | None = None,
    rate: float = 50.0,
    job_seconds: float = 0.05,
    workers: int = 2,
    deadline: float = 900.0,
) -> LoadReport:
    workdir = Path(workdir or tempfile.mkdtemp(prefix="dreambot-load-"))
    workdir.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite+aiosqlite:///{workdir / 'load.db'}"
    report = LoadReport(users=users, guilds=guilds, expected=jobs, database=url.split(":", 1)[0].split("+")[0], rate=rate,
                        job_seconds=job_seconds, workers=workers)
    async with FakeDiscord(default_timeout=LIMIT) as fake:
        servers = []
        for number in range(guilds):
            guild_id = fake.add_guild(f"server {number}")
            servers.append(_Server(guild_id, fake.add_text_channel("dreams", guild_id=guild_id),
                                   fake.add_text_channel("queue", guild_id=guild_id)))
        people = [fake.add_user(f"user{number}") for number in range(users)]
        async with Store.open(url, upgrade=True) as store:
            for server in servers:  # their galleries are on the web
                await store.guilds.change(str(server.guild_id), public_gallery=True)
        web_port = _free_port()
        bot, log = await _start_bot(fake, url, workdir, web_port=web_port, job_seconds=job_seconds, workers=workers)
        posts = _ResultPosts(fake)
        try:
            async with aiohttp.ClientSession() as http:
                asker = _Asker(fake, servers, people)
                await asker.until_the_bot_answers(bot)
                await _until_every_server_is_named(url, servers)  # the bot is ready: it settles before the load
                report.rss_ready = _rss(bot.pid, "VmRSS")
                for _ in range(IDLE_ASKS):
                    report.queue_idle.append(await asker.ask())
                await _run_the_load(fake, servers, people, asker, http, web_port, posts, report, jobs=jobs, rate=rate,
                                    deadline=deadline)
                report.most_waiting = asker.most_waiting
            async with Store.open(url) as store:  # each result posted is then recorded as posted
                await _until_recorded_posted(store, jobs)
            report.rss_peak, report.rss_end = _rss(bot.pid, "VmHWM"), _rss(bot.pid, "VmRSS")
        finally:
            code = await _stop(bot)
        if code != 0:
            raise RuntimeError(f"the bot did not stop cleanly (exit {code}); see {log}")
        posts.count()  # any post that came late
        assert fake.unknown_routes == [], fake.unknown_routes
    samples = json.loads((workdir / "lag.json").read_text())
    ended = report.started_at + report.seconds
    report.loop_lag = [late for when, late in samples if report.started_at <= when <= ended]
    async with Store.open(url) as store, store.database.engine.connect() as conn:
        rows = (await conn.execute(select(Job.id, Job.status, Job.delivery))).all()
    ids = {row.id for row in rows}
    report.jobs = len(rows)
    report.done = sum(1 for row in rows if row.status == "done")
    report.failed = sum(1 for row in rows if row.status == "failed")
    report.posted = sum(1 for row in rows if row.delivery == "posted")
    report.result_posts = sum(posts.posts.values())
    report.posted_twice = sum(1 for n in posts.posts.values() if n > 1)
    report.not_posted = len(ids - set(posts.posts))
    report.stray_posts = len(set(posts.posts) - ids)
    return report


async def _until_recorded_posted(store: Store, jobs: int) -> None:
    """Wait until the store records `jobs` results posted (the bot records each just after posting it)."""
    give_up = time.monotonic() + LIMIT
    while True:
        async with store.database.engine.connect() as conn:
            posted = len((await conn.execute(select(Job.id).where(Job.delivery == "posted"))).all())
        if posted >= jobs or time.monotonic() > give_up:
            return
        await asyncio.sleep(0.1)


class _Asker:
    """Asks `!queue` in the servers' #queue channels, one ask at a time, and times the answers."""

    _WAITING = re.compile(r"^(\d+) running, (\d+) waiting")

    def __init__(self, fake: FakeDiscord, servers: list[_Server], people: list[dict[str, Any]]):
        self.fake, self.servers, self.people = fake, servers, people
        self.asked, self.most_waiting = 0, 0

    async def ask(self, timeout: float = LIMIT) -> float:
        """Seconds from dispatching `!queue` to the bot's answer reaching the fake Discord."""
        person = self.asked % len(self.people)
        channel = self.servers[person % len(self.servers)].queue_channel
        self.asked += 1
        path = f"/api/v10/channels/{channel['id']}/messages"
        requests, messages = len(self.fake.requests), len(self.fake.messages)
        start = time.monotonic()
        await self.fake.dispatch_message("!queue", author=self.people[person], channel=channel)
        answer = await self.fake.wait_for_message(
            lambda m: m["channel_id"] == channel["id"] and self._WAITING.match(m["content"]), start=messages, timeout=timeout)
        self.most_waiting = max(self.most_waiting, int(self._WAITING.match(answer["content"])[2]))
        # When the answer's request reached the fake Discord (before it parsed and stored it).
        arrived = next(r.at for r in self.fake.requests[requests:] if r.method == "POST" and r.path == path)
        return arrived - start

    async def until_the_bot_answers(self, bot: asyncio.subprocess.Process) -> None:
        """Ask until an answer comes: the bot is connected and serving commands."""
        give_up = time.monotonic() + LIMIT
        while True:
            if bot.returncode is not None:
                raise RuntimeError(f"the bot stopped at start (exit {bot.returncode})")
            try:
                await self.ask(timeout=2.0)
                return
            except TimeoutError:
                if time.monotonic() > give_up:
                    raise


async def _until_every_server_is_named(url: str, servers: list[_Server]) -> None:
    """Until the bot has recorded every server's name: it does so as discord.py makes each guild
    available, just before on_ready (after guild_ready_timeout)."""
    async with Store.open(url) as store:
        async with asyncio.timeout(LIMIT):
            for server in servers:
                while (await store.guilds.get(str(server.guild_id))).name is None:
                    await asyncio.sleep(0.1)


async def _run_the_load(fake: FakeDiscord, servers: list[_Server], people: list[dict[str, Any]], asker: _Asker,
                        http: aiohttp.ClientSession, web_port: int, posts: _ResultPosts, report: LoadReport, *, jobs: int,
                        rate: float, deadline: float) -> None:
    """Ask for the jobs at `rate`, with !queue and the gallery asked all along, until every result is posted."""
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    started = loop.time()
    report.started_at = time.time()

    async def ask_for_jobs() -> None:
        for number in range(jobs):
            await asyncio.sleep(max(0.0, started + number / rate - loop.time()))
            person = number % len(people)
            await fake.dispatch_message(JOB, author=people[person], channel=servers[person % len(servers)].jobs_channel)
        report.all_asked_after = loop.time() - started

    async def ask_queue() -> None:
        while not done.is_set():
            report.queue_answers.append(await asker.ask())
            await asyncio.sleep(0.2)

    async def open_gallery() -> None:
        number = 0
        while not done.is_set():
            server = servers[number % len(servers)]
            order = ("recent", "top")[number // len(servers) % 2]
            number += 1
            begin = time.monotonic()
            async with http.get(f"http://127.0.0.1:{web_port}/servers/{server.guild_id}?order={order}") as response:
                await response.read()
            report.gallery_pages.append(time.monotonic() - begin)
            report.gallery_statuses[response.status] += 1
            await asyncio.sleep(0.6)  # under the web gallery's per-client limit (2 a second after a burst of 60)

    driver: list[tuple[float, float]] = []
    watcher = asyncio.create_task(watch_the_loop(driver))
    probes = [asyncio.create_task(ask_queue()), asyncio.create_task(open_gallery())]
    asking = asyncio.create_task(ask_for_jobs())
    tasks = (*probes, asking)
    try:
        await fake.wait_for(lambda: posts.count() >= jobs or any(task.done() and not task.cancelled()
                                                                  and task.exception() for task in tasks),
                            deadline, what=f"{jobs} result posts")
        report.seconds = loop.time() - started
        for task in tasks:
            if task.done() and task.exception() is not None:
                raise task.exception()
        done.set()
        await asyncio.wait_for(asyncio.gather(*tasks), LIMIT)
    finally:
        watcher.cancel()
        report.driver_lag = [late for _when, late in driver]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _start_bot(fake: FakeDiscord, url: str, workdir: Path, *, web_port: int, job_seconds: float,
                     workers: int) -> tuple[asyncio.subprocess.Process, Path]:
    env = {name: value for name, value in os.environ.items() if name.lower() not in Settings.model_fields}
    env.update(PYTHONPATH=str(ROOT), DISCORD_TOKEN=fake.token or "", DATABASE_URL=url, RESULTS_DIR=str(workdir / "results"),
               DEVICE="cpu", WORKERS=str(workers), THREADS_PER_WORKER="1",
               USER_BURST="0", GUILD_JOBS_PER_HOUR="0", MAX_ACTIVE_JOBS="0",  # the rate limits off: 0 switches each off
               WEB_HOST="127.0.0.1", WEB_PORT=str(web_port), PUBLIC_URL=f"http://127.0.0.1:{web_port}")
    log = workdir / "bot.log"
    with log.open("wb") as out:
        bot = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.soak.load_bot", fake.base_url, "--lag-file", str(workdir / "lag.json"),
            "--job-seconds", str(job_seconds), cwd=workdir, env=env,
            stdin=asyncio.subprocess.PIPE,  # closes when this process ends, however it ends: the bot then stops
            stdout=out, stderr=out, start_new_session=True)
    return bot, log


async def _stop(bot: asyncio.subprocess.Process) -> int:
    if bot.returncode is None:
        bot.terminate()
        try:
            await asyncio.wait_for(bot.wait(), LIMIT)
        except TimeoutError:
            bot.kill()
            await bot.wait()
    return bot.returncode if bot.returncode is not None else -1


def _rss(pid: int, field_name: str) -> int:
    """A memory figure of a live process from /proc (VmRSS now, VmHWM its peak), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/{pid}/status has no {field_name}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.soak.load", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--guilds", type=int, default=20, help="servers (default 20)")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0, help="jobs asked for a second (default 50)")
    parser.add_argument("--job-seconds", type=float, default=0.05, help="how long each fake job runs (default 0.05)")
    parser.add_argument("--workers", type=int, default=2)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--database-url", default=None, help="default: a new SQLite file in the work folder")
    where.add_argument("--postgres", action="store_true", help="on a throwaway PostgreSQL server started for the run")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new temporary folder")
    parser.add_argument("--no-timings", action="store_true", help="check exactly-once and memory only, not the timing targets")
    args = parser.parse_args()

    def run(database_url: str | None) -> int:
        report = asyncio.run(load(users=args.users, guilds=args.guilds, jobs=args.jobs, database_url=database_url,
                                  workdir=args.workdir, rate=args.rate, job_seconds=args.job_seconds, workers=args.workers))
        print("\n".join(report.lines(timings=not args.no_timings)))
        return 1 if report.problems(timings=not args.no_timings) else 0

    if not args.postgres:
        return run(args.database_url)
    from tests.pg_server import PostgresServer

    with PostgresServer.running() as server:
        return run(server.create_database())


if __name__ == "__main__":
    sys.exit(main())
