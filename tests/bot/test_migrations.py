from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bot.store import Store, upgrade, upgrade_async
from bot.store.migrate import alembic_config, head_revision
from bot.store.models import Base

TABLES_0001 = {"users", "guild_settings", "rate_limit_state", "jobs"}
TABLES_0002 = TABLES_0001 | {"gallery_entries", "likes"}
HEAD = "0007"  # 0003 to 0007 add columns (and indexes) only

# Rows written by an older version of the bot. Noon, so the date is the same in any time zone.
OLD_TIME = "'2024-01-01 12:00:00'"


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


def insert_old_job(kind: str, params: str, seed: int, *, user: str = "u", with_image: bool = False) -> list[str]:
    image_column, image_value = (", image", ", :image") if with_image else ("", "")
    return [
        f"INSERT INTO users (id, created_at) VALUES ('{user}', {OLD_TIME})",
        f"INSERT INTO jobs (user_id, kind, params, seed{image_column}, status, created_at) "
        f"VALUES ('{user}', '{kind}', '{params}', {seed}{image_value}, 'queued', {OLD_TIME})",
    ]


def test_fresh_database_upgrades_to_head(db):
    upgrade(db)
    assert head_revision() == HEAD
    assert asyncio.run(inspect_db(db)) == (HEAD, TABLES_0002)


async def test_orm_models_match_the_migrations_exactly(db):
    await upgrade_async(db)
    engine = create_async_engine(db, poolclass=NullPool)

    def differences(sync_conn) -> list:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with engine.connect() as conn:
        diff = await conn.run_sync(differences)
    await engine.dispose()
    assert diff == []


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
        [job] = await store.jobs_to_recover()
        assert (job.kind, job.seed, job.result_message_link) == ("zoom", 3, None)
        assert job.created_at.year == 2024 and job.created_at.tzinfo is not None
        entry = await store.add_gallery_entry(job.id, "https://discord/1")  # the 0002 tables work
        assert (await store.like(entry, "x")).likes == 1


async def test_upgrade_is_idempotent(db):
    await upgrade_async(db)
    await run_sql(db, f"INSERT INTO users (id, created_at) VALUES ('kept', {OLD_TIME})")
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
        [job] = await store.jobs_to_recover()
        assert (job.kind, job.params, job.seed) == ("zoom", {"frames": 3}, 3)
        settings = await store.get_guild_settings("g")
        assert settings.prefix == "?" and settings.max_job_seconds is None  # no cap of its own: the bot's applies
        assert (await store.set_guild_settings("g", max_job_seconds=30)).max_job_seconds == 30
    await asyncio.to_thread(command.downgrade, alembic_config(db), "0002")
    assert await run_sql(db, "SELECT prefix FROM guild_settings") == [("?",)]


def test_processes_starting_together_on_a_fresh_database_migrate_it_once(db):
    """Several bot processes started at once each run the migrations on start: one migrates, the others wait and find it done."""
    import subprocess
    import sys

    script = "import sys; from bot.store import upgrade; upgrade(sys.argv[1])"
    starts = [subprocess.Popen([sys.executable, "-c", script, db], stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [(p.wait(timeout=120), p.stderr.read()) for p in starts]
    assert [code for code, _ in errors] == [0, 0, 0, 0], [err.strip().splitlines()[-1:] for _, err in errors]
    assert asyncio.run(inspect_db(db))[0] == HEAD


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
        settings = await store.get_guild_settings("g")
        assert (settings.prefix, settings.public_gallery, settings.public_names) == ("?", False, False), \
            "no server is public until its admins say so"
        entries = await store.gallery("g")
        assert sorted((e.kind, e.likes, e.user_id, e.seed) for e in entries) == [("dream", 1, "u", 5), ("zoom", 1, "v", 3)]
        assert entries[0].result_location == f"results/job-{entries[0].job_id}.png"
        assert (await store.set_guild_settings("g", public_gallery=True)).public_gallery
        deleted = next(e for e in entries if e.kind == "zoom")
        assert await store.remove_gallery_entries([deleted.message_link, "https://discord.com/channels/g/c/404"]) == 1
        assert [e.kind for e in await store.gallery("g")] == ["dream"]
        assert await store.gallery_item(deleted.job_id) is None
    await asyncio.to_thread(command.downgrade, alembic_config(db), "0004")
    assert await run_sql(db, "SELECT kind FROM gallery_entries") == [("dream",)], \
        "a downgrade drops removed entries rather than show them again"
    assert await run_sql(db, "SELECT count(*) FROM likes") == [(1,)]
    assert await run_sql(db, "SELECT prefix FROM guild_settings") == [("?",)]
