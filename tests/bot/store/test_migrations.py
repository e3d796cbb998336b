"""The migrations: every revision on SQLite and on PostgreSQL, from a fresh database and from rows an
older bot wrote, up and down, and several processes migrating one database at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import pytest
from alembic import command
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bot.store import Store, upgrade, upgrade_async
from bot.store.migrate import alembic_config, head_revision

TABLES_0001 = {"users", "guild_settings", "rate_limit_state", "jobs"}
TABLES_0002 = TABLES_0001 | {"gallery_entries", "likes"}
HEAD = "0012"  # 0003 to 0008 add columns (and indexes) only; 0009 turns times into epoch seconds; 0010 to 0012 add columns

# Rows written by an older version of the bot. Noon, so the date is the same in any time zone.
OLD_TIME = "'2024-01-01 12:00:00'"
OLD_DAY = (datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp(), datetime(2024, 1, 2, tzinfo=timezone.utc).timestamp())


@pytest.fixture
def db(database_url):
    # Every migration runs on SQLite and on PostgreSQL (see tests/conftest.py).
    return database_url


async def run_sql(url: str, *statements: str, **params: Any) -> list[tuple]:
    """Run raw statements in one transaction, as an older bot would have; the last one's rows."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                result = await conn.execute(text(statement), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        await engine.dispose()


async def inspect_db(url: str) -> tuple[str | None, set[str]]:
    """(the revision stamped in the database, its tables other than Alembic's and SQLite's own)."""
    engine = create_async_engine(url, poolclass=NullPool)

    def look(sync_conn) -> tuple[str | None, set[str]]:
        names = set(inspect(sync_conn).get_table_names()) - {"alembic_version", "sqlite_sequence"}
        return MigrationContext.configure(sync_conn).get_current_revision(), names

    try:
        async with engine.connect() as conn:
            return await conn.run_sync(look)
    finally:
        await engine.dispose()


async def columns(url: str, table: str) -> set[str]:
    """The names of a table's columns."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda sync_conn: {c["name"] for c in inspect(sync_conn).get_columns(table)})
    finally:
        await engine.dispose()


def insert_old_job(kind: str, params: str, seed: int, *, user: str = "u", with_image: bool = False) -> list[str]:
    image_column, image_value = (", image", ", :image") if with_image else ("", "")
    return [
        f"INSERT INTO users (id, created_at) VALUES ('{user}', {OLD_TIME})",
        (f"INSERT INTO jobs (user_id, kind, params, seed{image_column}, status, created_at) "
         f"VALUES ('{user}', '{kind}', '{params}', {seed}{image_value}, 'queued', {OLD_TIME})"),
    ]


def test_fresh_database_upgrades_to_head(db):
    upgrade(db)
    assert head_revision() == HEAD
    assert asyncio.run(inspect_db(db)) == (HEAD, TABLES_0002)


async def test_upgrade_from_the_older_revision_keeps_rows(db):
    await upgrade_async(db, "0001")
    assert await inspect_db(db) == ("0001", TABLES_0001)
    old_job = insert_old_job("dream", '{"layer": "deep"}', 5, user="old-user", with_image=True)
    await run_sql(db, *old_job, image=b"\x01\x02")
    await upgrade_async(db)
    assert await inspect_db(db) == (HEAD, TABLES_0002)
    rows = await run_sql(db, "SELECT user_id, seed, image, result_message_link FROM jobs")
    assert rows == [("old-user", 5, b"\x01\x02", None)]


async def test_store_open_upgrades_an_old_database_and_reads_old_rows(db):
    await upgrade_async(db, "0001")
    await run_sql(db, *insert_old_job("zoom", "{}", 3))
    async with Store.open(db, upgrade=True) as store:
        [job] = await store.leases.orphans()
        assert (job.kind, job.seed, job.result_message_link) == ("zoom", 3, None)
        assert OLD_DAY[0] < job.created_at < OLD_DAY[1], "the old time, in epoch seconds"
        entry = await store.gallery.add(job.id, "https://discord/1")  # the 0002 tables work
        assert (await store.gallery.like(entry, "x")).likes == 1


async def test_upgrade_is_idempotent(db):
    await upgrade_async(db)
    await run_sql(db, "INSERT INTO users (id, created_at) VALUES ('kept', 1704110400)")
    upgrade(db)  # the synchronous entry point, called from a running event loop: a worker thread
    await upgrade_async(db)
    async with Store.open(db, upgrade=True):
        pass
    assert await inspect_db(db) == (HEAD, TABLES_0002)
    assert await run_sql(db, "SELECT id FROM users") == [("kept",)]


def test_downgrade_then_upgrade_again(db):
    upgrade(db)
    command.downgrade(alembic_config(db), "0001")
    assert asyncio.run(inspect_db(db)) == ("0001", TABLES_0001)
    upgrade(db)
    assert asyncio.run(inspect_db(db))[0] == HEAD


def test_a_url_with_the_sync_driver_is_given_the_async_one(db):
    upgrade(db.replace("+aiosqlite", "").replace("+asyncpg", ""))  # sqlite:///..., postgresql://...
    assert asyncio.run(inspect_db(db))[0] == HEAD


async def test_the_time_cap_column_arrives_on_a_database_that_holds_jobs_and_settings(db):
    await upgrade_async(db, "0002")
    await run_sql(
        db,
        *insert_old_job("zoom", '{"frames": 3}', 3),
        "INSERT INTO guild_settings (guild_id, prefix, exempt_role_ids, updated_at) "
        f"VALUES ('g', '?', '[]', {OLD_TIME})",
    )
    async with Store.open(db, upgrade=True) as store:
        assert (await inspect_db(db))[0] == HEAD
        [job] = await store.leases.orphans()
        assert (job.kind, job.params, job.seed) == ("zoom", {"frames": 3}, 3)
        settings = await store.guilds.get("g")
        assert settings.prefix == "?" and settings.max_job_seconds is None  # no cap of its own: the bot's applies
        assert (await store.guilds.change("g", max_job_seconds=30)).max_job_seconds == 30
    await asyncio.to_thread(command.downgrade, alembic_config(db), "0002")
    assert await run_sql(db, "SELECT prefix FROM guild_settings") == [("?",)]


# Run by each process below: it records every revision whose upgrade it ran (Alembic's
# on_version_apply hook, called after a revision's body and its version stamp), then waits for the
# others to be ready, so that all of them migrate at the same moment.
_MIGRATING_PROCESS = """
import os, sys, time
from pathlib import Path
from alembic.runtime.environment import EnvironmentContext

url, log, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
configure = EnvironmentContext.configure

def record(*, ctx, step, heads, run_args):
    with log.open("a") as out:
        out.write(f"{os.getpid()} {step.up_revision_id if step.is_upgrade else 'down'}\\n")

def configure_recording(self, *args, **kwargs):
    kwargs["on_version_apply"] = (record,)
    return configure(self, *args, **kwargs)

EnvironmentContext.configure = configure_recording
from bot.store import upgrade
(log.parent / f"ready-{os.getpid()}").touch()
while not go.exists():
    time.sleep(0.005)
upgrade(url)
"""


def _last_error(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if "Error" in line or "error" in line]
    return lines[-2 if len(lines) > 1 and "sqlalche.me" in lines[-1] else -1] if lines else stderr.strip()[-300:]


def test_processes_starting_together_on_a_fresh_database_migrate_it_once(db, tmp_path):
    """Several bot processes started at once each run the migrations on start: one migrates, the others wait and find it done."""
    processes = 4
    log, go = tmp_path / "applied.log", tmp_path / "go"
    starts = [subprocess.Popen([sys.executable, "-c", _MIGRATING_PROCESS, db, str(log), str(go)],
                               stderr=subprocess.PIPE, text=True) for _ in range(processes)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < processes and time.monotonic() < deadline \
            and all(p.poll() is None for p in starts):
        time.sleep(0.01)
    go.touch()
    errors = [(p.wait(timeout=120), p.stderr.read()) for p in starts]
    assert [code for code, _ in errors] == [0] * processes, [_last_error(err) for _, err in errors]
    applied = [line.split() for line in log.read_text().splitlines()]
    revisions = [script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()]
    assert Counter(revision for _, revision in applied) == Counter(revisions), \
        f"each revision's upgrade runs once, all told: {applied}"
    assert len({pid for pid, _ in applied}) == 1, f"one process migrates, the others find it done: {applied}"
    assert asyncio.run(inspect_db(db)) == (HEAD, TABLES_0002)
    assert asyncio.run(run_sql(db, "SELECT version_num FROM alembic_version")) == [(HEAD,)]


async def test_the_public_gallery_columns_arrive_on_a_database_that_holds_settings_and_entries(db):
    await upgrade_async(db, "0004")
    await run_sql(
        db,
        *insert_old_job("dream", '{"layer": "deep"}', 5),
        *insert_old_job("zoom", '{"frames": 3}', 3, user="v"),
        "UPDATE jobs SET guild_id = 'g', status = 'done', result_location = 'results/job-' || id || '.png'",
        "INSERT INTO guild_settings (guild_id, prefix, exempt_role_ids, updated_at) "
        f"VALUES ('g', '?', '[]', {OLD_TIME})",
        "INSERT INTO gallery_entries (job_id, guild_id, message_link, kind, params, likes, created_at) "
        f"SELECT id, 'g', 'https://discord.com/channels/g/c/' || id, kind, params, 1, {OLD_TIME} FROM jobs",
        f"INSERT INTO likes (entry_id, user_id, created_at) SELECT id, 'fan', {OLD_TIME} FROM gallery_entries",
    )
    async with Store.open(db, upgrade=True) as store:
        assert (await inspect_db(db))[0] == HEAD
        settings = await store.guilds.get("g")
        assert (settings.prefix, settings.public_gallery, settings.public_names) == ("?", False, False), \
            "no server is public until its admins say so"
        entries = await store.gallery.listing("g")
        assert sorted((e.kind, e.likes, e.user_id, e.seed) for e in entries) == [("dream", 1, "u", 5), ("zoom", 1, "v", 3)]
        assert entries[0].result_location == f"results/job-{entries[0].job_id}.png"
        assert (await store.guilds.change("g", public_gallery=True)).public_gallery
        deleted = next(e for e in entries if e.kind == "zoom")
        assert await store.gallery.remove([deleted.message_link, "https://discord.com/channels/g/c/404"]) == 1
        assert [e.kind for e in await store.gallery.listing("g")] == ["dream"]
        assert await store.gallery.item(deleted.job_id) is None
    await asyncio.to_thread(command.downgrade, alembic_config(db), "0004")
    assert await run_sql(db, "SELECT kind FROM gallery_entries") == [("dream",)], \
        "a downgrade drops removed entries rather than show them again"
    assert await run_sql(db, "SELECT count(*) FROM likes") == [(1,)]
    assert await run_sql(db, "SELECT prefix FROM guild_settings") == [("?",)]


async def test_0008_fills_in_the_front_and_result_type_of_older_jobs(db):
    await upgrade_async(db, "0007")
    # An older bot's jobs: console users' ids start with "console:", Discord's are numbers; results
    # were kept as job-<id>.<extension>, by name or (older rows) by full path.
    users = ["console:alice", "123456789", "console", "987654321", "console:bob", "123456789", "55", "66", "77"]
    locations = ["job-1.png", "job-2.jpg", "/srv/results/job-3.gif", "job-4.webp", "results/job-5.mp4",
                 "/data.png/job-6.mp4", "job-7.jpeg", None, "job-9.png.tmp"]
    await run_sql(
        db,
        *[f"INSERT INTO users (id, created_at) VALUES ('{user}', {OLD_TIME})" for user in dict.fromkeys(users)],
        *[f"INSERT INTO jobs (user_id, guild_id, channel_id, kind, params, seed, status, created_at, result_location, "
          f"reply_to) VALUES ('{user}', 'g', 'c', 'dream', '{{}}', {i}, '{'queued' if where is None else 'done'}', "
          f"{OLD_TIME}, {'NULL' if where is None else repr(where)}, 'm{i}')"
          for i, (user, where) in enumerate(zip(users, locations), start=1)],
        "INSERT INTO gallery_entries (job_id, guild_id, message_link, kind, params, likes, created_at) "
        f"VALUES (2, 'g', 'https://discord.com/channels/g/c/2', 'dream', '{{}}', 1, {OLD_TIME})",
        f"INSERT INTO likes (entry_id, user_id, created_at) VALUES (1, 'fan', {OLD_TIME})",
    )
    async with Store.open(db, upgrade=True) as store:
        assert (await inspect_db(db))[0] == HEAD
        jobs = [await store.jobs.get(i) for i in range(1, len(users) + 1)]
        assert [job.front for job in jobs] == \
            ["console", "discord", "discord", "discord", "console", "discord", "discord", "discord", "discord"]
        assert [job.result_type for job in jobs] == \
            ["image/png", "image/jpeg", "image/gif", "image/webp", "video/mp4", "video/mp4", None, None, None], \
            "the type from the file's extension, the last part of its name only; none where it is not one the bot writes"
        assert all(job.command is None for job in jobs), "an older job's command is not made up"
        assert [(job.seed, job.reply_to, job.result_location) for job in jobs] == \
            [(i, f"m{i}", where) for i, where in enumerate(locations, start=1)], "the rest of each row is kept"
        item = await store.gallery.item(2)
        assert (item.likes, item.result_type, item.command) == (1, "image/jpeg", None), "the gallery is kept"
    await asyncio.to_thread(command.downgrade, alembic_config(db), "0007")
    assert not {"front", "command", "result_type"} & await columns(db, "jobs")
    assert await run_sql(db, "SELECT count(*) FROM jobs") == [(len(users),)]
    assert await run_sql(db, "SELECT job_id, likes FROM gallery_entries") == [(2, 1)]
    assert await run_sql(db, "SELECT count(*) FROM likes") == [(1,)]
    await upgrade_async(db)
    assert await run_sql(db, "SELECT front, result_type FROM jobs WHERE id = 5") == [("console", "video/mp4")], \
        "upgrading again fills them in again"


async def test_0009_turns_every_time_into_epoch_seconds_and_keeps_the_rows_that_refer_to_jobs(db):
    await upgrade_async(db, "0008")
    await run_sql(
        db,
        *insert_old_job("dream", "{}", 1, user="u"),
        "UPDATE jobs SET status = 'done', started_at = '2024-01-01 12:00:01', finished_at = '2024-01-01 12:00:02.5'",
        "INSERT INTO guild_settings (guild_id, prefix, exempt_role_ids, updated_at) "
        f"VALUES ('g', '?', '[]', {OLD_TIME})",
        "INSERT INTO gallery_entries (job_id, guild_id, message_link, kind, params, likes, created_at, featured_at) "
        f"VALUES (1, 'g', 'https://discord.com/channels/g/c/1', 'dream', '{{}}', 1, {OLD_TIME}, {OLD_TIME})",
        f"INSERT INTO likes (entry_id, user_id, created_at) VALUES (1, 'fan', {OLD_TIME})",
    )
    async with Store.open(db, upgrade=True) as store:
        job = await store.jobs.get(1)
        assert OLD_DAY[0] < job.created_at < OLD_DAY[1]
        # Differences are the same in any time zone the database runs in.
        assert job.started_at - job.created_at == pytest.approx(1.0, abs=1e-3)
        assert job.finished_at - job.created_at == pytest.approx(2.5, abs=1e-3)
        item = await store.gallery.item(1)
        assert (item.likes, item.created_at) == (1, pytest.approx(job.created_at, abs=1e-3)), \
            "the gallery entry and its like survive the jobs table being rebuilt"
        before = time.time()
        new_entry = await store.gallery.add(1, "https://discord.com/channels/g/c/1")
        assert new_entry == 1, "adding the same job again finds its entry: the unique key survived"
        assert await store.gallery.like(1, "fan2") is not None
    rows = await run_sql(db, "SELECT count(*) FROM likes")
    assert rows == [(2,)]
    if "sqlite" in db:
        assert await run_sql(db, "PRAGMA foreign_key_check") == []
        assert await run_sql(db, "SELECT created_at FROM users") == [(pytest.approx(OLD_DAY[0] + 12 * 3600, abs=1e-3),)]
    [(liked_at,)] = await run_sql(db, "SELECT max(created_at) FROM likes")
    assert abs(liked_at - before) < 60, "a new like is stamped by the database's clock, in epoch seconds"
    await asyncio.to_thread(command.downgrade, alembic_config(db), "0008")
    assert await run_sql(db, "SELECT count(*) FROM gallery_entries") == [(1,)]
    assert await run_sql(db, "SELECT count(*) FROM likes") == [(2,)]
    await upgrade_async(db)
    async with Store.open(db) as store:
        assert OLD_DAY[0] < (await store.jobs.get(1)).created_at < OLD_DAY[1], "down and up again keeps the time"
