"""Discord sharding: the shard rule, the shard-aware bot, and two real `dreambot run` processes.

The end-to-end tests start two bot processes (tests/bot/run_on_fake_discord.py), shards 0 and 1 of
2, against one fake Discord and one SQLite database, and check on the fake's records that each
process answers only in the guilds of its own shard, and that every job runs and is posted once,
also when a process crashes mid-job and comes back.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.discord_front import DreamBot, ShardedDreamBot, make_bot, shard_of
from bot.settings import Settings, load_settings
from bot.store import JobRecord, Store
from core.spec import compile_job
from tests.bot.rows import add_job
from tests.fake_discord import FakeDiscord

ROOT = Path(__file__).resolve().parents[3]
LIMIT = 30.0  # seconds any single wait may take before the test fails instead of hanging
SHARDS = 2
LEASE_SECONDS, HEARTBEAT_SECONDS = 2.0, 0.4  # short, so that a crashed process's jobs are soon free to adopt


# -- the rule and the bot ------------------------------------------------------------------------


def test_the_shard_of_a_guild_follows_discords_rule_and_dms_belong_to_shard_0():
    # The bits from 22 up (the guild's creation time) decide; the low bits do not.
    assert [shard_of((n << 22) | 0x3FFFFF, 4) for n in range(6)] == [0, 1, 2, 3, 0, 1]
    assert shard_of(175928847299117063, 16) == 4  # the example snowflake in Discord's docs
    assert shard_of(None, 4) == 0 and shard_of(123 << 22, 1) == 0


def record(guild_id: str | None, *, front: str = "discord", channel_id: str | None = "10") -> JobRecord:
    now = datetime.now(timezone.utc)
    return JobRecord(id=1, user_id="1", guild_id=guild_id, channel_id=channel_id, kind="visualize", params={},
                     seed=0, status="running", error=None, created_at=now, started_at=now, finished_at=None,
                     timings=None, result_location=None, result_message_link=None, front=front)


async def test_only_the_process_holding_a_guilds_shard_takes_its_jobs_back():
    on_shard = {shard: str((8 + shard) << 22) for shard in range(4)}
    settings = load_settings(_env_file=None, shard_count=4, shard_ids="1-2")
    async with aiohttp.ClientSession() as session:
        def bot_with(**shards: Any) -> DreamBot:
            # No service: these bots never start; only their shards and their rule for taking jobs back are asked.
            return make_bot(service=None, settings=settings.model_copy(update=shards),  # type: ignore[arg-type]
                            http_session=session)

        plain, sharded = bot_with(shard_count=None, shard_ids=None), bot_with()
        assert type(plain) is DreamBot and isinstance(sharded, ShardedDreamBot)
        assert (sharded.shard_count, sharded.shard_ids) == (4, [1, 2])

        takes_back = sharded.takes_back
        assert [takes_back(record(on_shard[shard])) for shard in range(4)] == [False, True, True, False]
        assert not takes_back(record(None)), "DMs are shard 0's"
        assert not takes_back(record(on_shard[1], front="console")), "console jobs are the console's"
        assert not takes_back(record(on_shard[1], channel_id=None)), "a job with nowhere to post is nobody's to rerun here"
        assert bot_with(shard_ids=(0, 3)).takes_back(record(None))
        for holds_all in (plain, bot_with(shard_ids=None)):  # unsharded, or every shard in one process
            assert all(holds_all.takes_back(record(guild)) for guild in [None, *on_shard.values()])


# -- two processes, one fake Discord, one database --------------------------------------------------


@dataclass
class BotProcess:
    """One `dreambot run` subprocess, in a process group of its own (with its worker), logging to a file."""

    label: str
    shard: int
    process: asyncio.subprocess.Process
    log: Path
    crashed: bool = False

    async def stop(self) -> int:
        """SIGTERM, as a service manager stops the bot; SIGKILL whatever lingers. Returns the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), LIMIT)
            except TimeoutError:
                pass
        self._kill_group()  # a worker left behind, or a bot that did not stop
        return await self.process.wait()

    async def crash(self) -> None:
        """Kill the bot and its worker at once, as a power cut or the OOM killer would."""
        self.crashed = True
        self._kill_group()
        await self.process.wait()

    def _kill_group(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # the whole group has exited

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.label} (exit {self.process.returncode}) ---\n" + "\n".join(text.splitlines()[-lines:])


class Deployment:
    """A fake Discord with guilds on both shards, one database, and the bot processes started on them."""

    def __init__(self, fake: FakeDiscord, tmp_path: Path):
        self.fake, self.tmp_path = fake, tmp_path
        self.database_url = f"sqlite+aiosqlite:///{tmp_path / 'shared.sqlite'}"
        self.processes: list[BotProcess] = []
        self.channels: dict[int, list[dict]] = {}  # shard -> one text channel in each of its guilds
        for shard in range(SHARDS):
            for number in range(2):
                guild_id = fake.add_guild(f"shard {shard} guild {number}", shard=(shard, SHARDS))
                self.channels.setdefault(shard, []).append(fake.add_text_channel("general", guild_id=guild_id))

    async def start(self, shard: int, label: str, *, job_seconds: float = 0.3) -> BotProcess:
        env = {name: value for name, value in os.environ.items() if name.lower() not in Settings.model_fields}
        env.update(PYTHONPATH=str(ROOT), DISCORD_TOKEN=self.fake.token, DATABASE_URL=self.database_url,
                   RESULTS_DIR=str(self.tmp_path / "results"), DEVICE="cpu", WORKERS="1",
                   SHARD_COUNT=str(SHARDS), SHARD_IDS=str(shard), USER_BURST="50", MAX_ACTIVE_JOBS="50",
                   # A dead process's jobs become adoptable LEASE_SECONDS after its last renewal.
                   LEASE_SECONDS=str(LEASE_SECONDS), HEARTBEAT_SECONDS=str(HEARTBEAT_SECONDS))
        log = self.tmp_path / f"{label}.log"
        identified = len(self.fake.identifies)
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.bot.run_on_fake_discord", self.fake.base_url, "--label", label,
                "--job-seconds", str(job_seconds), "--stdin-lifeline", cwd=self.tmp_path, env=env,
                stdin=asyncio.subprocess.PIPE,  # closes when this test process ends, however it ends
                stdout=out, stderr=out, start_new_session=True,  # its own group: stop() reaches its worker too
            )
        started = BotProcess(label, shard, process, log)
        self.processes.append(started)
        await self.fake.wait_for(
            lambda: process.returncode is not None or any(
                d.get("shard") == [shard, SHARDS] for d in self.fake.identifies[identified:]),
            LIMIT, what=f"IDENTIFY from {label}")
        assert process.returncode is None, f"{label} stopped at start:\n{started.log_tail()}"
        return started

    async def ask(self, shard: int, number: int, text: str, *, author: dict | None = None) -> dict:
        return await self.fake.dispatch_message(text, channel=self.channels[shard][number], author=author)

    def shard_of_label(self, label: str) -> int:
        return next(p.shard for p in self.processes if p.label == label)

    def guild_in(self, path: str) -> int | None:
        """The guild a REST path acts in, if any."""
        if match := re.search(r"/channels/(\d+)", path):
            guild = self.fake.world.guild_of_channel(int(match[1]))
            return guild.id if guild is not None else None
        if match := re.search(r"/guilds/(\d+)", path):
            return int(match[1])
        return None

    def results(self) -> dict[int, list[dict]]:
        """Result posts (the ones with a file) by job number."""
        posted: dict[int, list[dict]] = {}
        for message in self.fake.messages:
            if message["attachments"] and (match := re.search(r"job #(\d+)", message["content"])):
                posted.setdefault(int(match[1]), []).append(message)
        return posted


@pytest.fixture
async def deployment(tmp_path):
    async with FakeDiscord(default_timeout=LIMIT) as fake:
        # Migrated once up front, as an operator runs `dreambot db upgrade` before starting the shards.
        async with Store.open(f"sqlite+aiosqlite:///{tmp_path / 'shared.sqlite'}", upgrade=True):
            pass
        deployed = Deployment(fake, tmp_path)
        try:
            yield deployed
        finally:
            codes = await asyncio.gather(*(p.stop() for p in deployed.processes))
            for process in deployed.processes:
                print(process.log_tail())  # shown when the test failed
        assert fake.unknown_routes == [], fake.unknown_routes
        assert all(code == 0 for p, code in zip(deployed.processes, codes) if not p.crashed), \
            f"a bot process did not stop cleanly: {codes}"


async def until_orphaned(store: Store, job_id: int) -> None:
    """Until the store (on its own clock, the one leases run on) counts the job as held by nobody."""
    async with asyncio.timeout(LIMIT):
        while job_id not in {job.id for job in await store.leases.orphans()}:
            await asyncio.sleep(0.05)


def assert_each_process_kept_to_its_shard(deployed: Deployment) -> None:
    for request in deployed.fake.requests:
        if request.client is None or (guild := deployed.guild_in(request.path)) is None:
            continue
        assert shard_of(guild, SHARDS) == deployed.shard_of_label(request.client), \
            f"{request.client} acted in guild {guild} of the other shard: {request.method} {request.path}"


@pytest.mark.timeout(120)
async def test_two_processes_each_answer_their_own_shards_and_run_every_job_once(deployment):
    fake = deployment.fake
    await asyncio.gather(deployment.start(0, "shard-0"), deployment.start(1, "shard-1"))
    asked = [await deployment.ask(shard, number, "!visualize banana", author=author)
             for shard in range(SHARDS) for number in range(2) for author in (fake.alice, fake.bob)]

    await fake.wait_for(lambda: sum(map(len, deployment.results().values())) >= len(asked), LIMIT,
                        what=f"{len(asked)} results")
    # Room for a wrong adoption to show up, known to have passed: a job nobody holds, one in each
    # shard, is taken only by an adoption pass that read the orphans after every result above was in.
    async with Store.open(deployment.database_url) as store:
        baits = [await add_job(store, compile_job("visualize", {"target": "banana", "size": 64, "steps": 10}),
                               user_id=fake.alice["id"], guild_id=deployment.channels[shard][0]["guild_id"],
                               channel_id=deployment.channels[shard][0]["id"], front="discord")
                 for shard in range(SHARDS)]
    await fake.wait_for(lambda: all(bait in deployment.results() for bait in baits), LIMIT, what="both baits posted")
    for process in deployment.processes:  # and once they have stopped, nothing more can be posted
        assert await process.stop() == 0
    posted = deployment.results()
    assert sorted(posted) == [*range(1, len(asked) + 1), *baits] and all(len(p) == 1 for p in posted.values()), \
        f"every job is posted exactly once: {({job: len(p) for job, p in posted.items()})}"
    replied_to = sorted(posted[job][0]["message_reference"]["message_id"] for job in range(1, len(asked) + 1))
    assert replied_to == sorted(a["id"] for a in asked), "every command got its result as a reply"
    for (message,) in posted.values():
        shard = shard_of(int(message["guild_id"]), SHARDS)
        assert fake.sent_by[int(message["id"])] == f"shard-{shard}"
    assert_each_process_kept_to_its_shard(deployment)
    assert {r.client for r in fake.requests if r.method == "POST"} == {"shard-0", "shard-1"}

    async with Store.open(deployment.database_url) as store:
        jobs = [await store.jobs.get(job) for job in posted]
    assert all(job.status == "done" and job.result_message_link for job in jobs), [(j.id, j.status, j.result_message_link) for j in jobs if not (j.status == "done" and j.result_message_link)]
    assert [job.result_message_link.rsplit("/", 1)[1] for job in jobs] == [posted[job.id][0]["id"] for job in jobs]


@pytest.mark.timeout(120)
async def test_a_crashed_shards_jobs_wait_for_it_and_are_not_taken_by_the_other_shard(deployment):
    fake = deployment.fake
    crashed, _ = await asyncio.gather(deployment.start(0, "crashed", job_seconds=60),
                                      deployment.start(1, "shard-1"))
    await deployment.ask(0, 0, "!visualize banana")
    await fake.wait_for_message(lambda m: m["content"].startswith("🌀 job #1"))
    await crashed.crash()

    await deployment.ask(1, 0, "!visualize banana")  # the other shard goes on working meanwhile
    await fake.wait_for(lambda: 2 in deployment.results(), LIMIT, what="job #2 posted by shard 1")
    async with Store.open(deployment.database_url) as store:
        await until_orphaned(store, 1)
        # A job of shard 1's that nobody holds, orphaned only after job #1: the adoption pass that takes it
        # read the orphans later, oldest first, so it has passed job #1 by when the bait is shard 1's.
        bait = await add_job(store, compile_job("visualize", {"target": "banana", "size": 64, "steps": 10}),
                             user_id=fake.alice["id"], guild_id=deployment.channels[1][1]["guild_id"],
                             channel_id=deployment.channels[1][1]["id"], front="discord")
        async with asyncio.timeout(LIMIT):
            while (await store.jobs.get(bait)).owner is None:
                await asyncio.sleep(0.05)
        assert 1 in {job.id for job in await store.leases.orphans()}, "shard 1 must leave shard 0's job to shard 0"
    await fake.wait_for(lambda: bait in deployment.results(), LIMIT, what="the bait posted by shard 1")
    assert 1 not in deployment.results(), "shard 1 must leave shard 0's job to shard 0"
    assert_each_process_kept_to_its_shard(deployment)

    await deployment.start(0, "shard-0")  # the restart takes its job back and finishes it
    await fake.wait_for(lambda: 1 in deployment.results(), LIMIT, what="job #1 posted after the restart")
    await fake.wait_for_message(lambda m: m["content"].startswith("✅ job #1 done"))
    for process in deployment.processes:  # once they have stopped, no other notice can come
        await process.stop()
    told = [m for m in fake.messages if m["content"].startswith("✅ job #1 done")]
    assert [fake.sent_by[int(m["id"])] for m in told] == ["shard-0"], "the restart's notice of job #1 ends as done"
    posted = deployment.results()
    assert sorted(posted) == [1, 2, bait] and all(len(p) == 1 for p in posted.values())
    assert [fake.sent_by[int(posted[job][0]["id"])] for job in (1, 2, bait)] == ["shard-0", "shard-1", "shard-1"]
    assert_each_process_kept_to_its_shard(deployment)
