from __future__ import annotations

import asyncio
import sqlite3

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from bot.store import Store, upgrade, upgrade_async
from bot.store.migrate import alembic_config, head_revision
from bot.store.models import Base

TABLES_0001 = {"users", "guild_settings", "rate_limit_state", "jobs"}
TABLES_0002 = TABLES_0001 | {"gallery_entries", "likes"}
HEAD = "0004"  # 0003 and 0004 add columns only


@pytest.fixture
def db(tmp_path):
    return tmp_path / "migrate.db"


def url_of(path):
    return f"sqlite+aiosqlite:///{path}"


def tables(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return names - {"alembic_version", "sqlite_sequence"}


def revision(path) -> str | None:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    return rows[0][0] if rows else None


def test_fresh_database_upgrades_to_head(db):
    upgrade(url_of(db))
    assert head_revision() == HEAD
    assert revision(db) == HEAD and tables(db) == TABLES_0002


def test_orm_models_match_the_migrations_exactly(db):
    upgrade(url_of(db))
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


def test_upgrade_from_the_older_revision_keeps_rows(db):
    upgrade(url_of(db), "0001")
    assert revision(db) == "0001" and tables(db) == TABLES_0001
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO users (id, created_at) VALUES ('old-user', '2024-01-01 00:00:00')")
        conn.execute(
            "INSERT INTO jobs (user_id, kind, params, seed, image, status, created_at) "
            "VALUES ('old-user', 'dream', '{\"layer\": \"deep\"}', 5, x'0102', 'queued', '2024-01-01 00:00:00')"
        )
    upgrade(url_of(db))
    assert revision(db) == HEAD and tables(db) == TABLES_0002
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT user_id, seed, image, result_message_link FROM jobs").fetchone()
    assert row == ("old-user", 5, b"\x01\x02", None)


async def test_store_open_upgrades_an_old_database_and_reads_old_rows(db):
    upgrade(url_of(db), "0001")
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO users (id, created_at) VALUES ('u', '2024-01-01 00:00:00')")
        conn.execute(
            "INSERT INTO jobs (user_id, kind, params, seed, status, created_at) "
            "VALUES ('u', 'zoom', '{}', 3, 'queued', '2024-01-01 00:00:00')"
        )
    async with Store.open(url_of(db), upgrade=True) as store:
        [job] = await store.jobs_to_recover()
        assert (job.kind, job.seed, job.result_message_link) == ("zoom", 3, None)
        assert job.created_at.year == 2024 and job.created_at.tzinfo is not None
        entry = await store.add_gallery_entry(job.id, "https://discord/1")  # the 0002 tables work
        assert (await store.like(entry, "x")).likes == 1


async def test_upgrade_is_idempotent(db):
    upgrade(url_of(db))
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO users (id, created_at) VALUES ('kept', '2024-01-01 00:00:00')")
    upgrade(url_of(db))
    await upgrade_async(url_of(db))  # from a running event loop, through a worker thread
    async with Store.open(url_of(db), upgrade=True):
        pass
    assert revision(db) == HEAD and tables(db) == TABLES_0002
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id FROM users").fetchall() == [("kept",)]


def test_downgrade_then_upgrade_again(db):
    upgrade(url_of(db))
    command.downgrade(alembic_config(url_of(db)), "0001")
    assert revision(db) == "0001" and tables(db) == TABLES_0001
    upgrade(url_of(db))
    assert revision(db) == HEAD


def test_plain_sqlite_url_is_given_the_async_driver(db):
    upgrade(f"sqlite:///{db}")
    assert revision(db) == HEAD


async def test_the_time_cap_column_arrives_on_a_database_that_holds_jobs_and_settings(db):
    await upgrade_async(url_of(db), "0002")
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO users (id, created_at) VALUES ('u', '2024-01-01 00:00:00')")
        conn.execute(
            "INSERT INTO jobs (user_id, kind, params, seed, status, created_at) "
            "VALUES ('u', 'zoom', '{\"frames\": 3}', 3, 'queued', '2024-01-01 00:00:00')"
        )
        conn.execute("INSERT INTO guild_settings (guild_id, prefix, exempt_role_ids, updated_at) VALUES ('g', '?', '[]', '2024-01-01 00:00:00')")
    async with Store.open(url_of(db), upgrade=True) as store:
        assert revision(db) == HEAD
        [job] = await store.jobs_to_recover()
        assert (job.kind, job.params, job.seed) == ("zoom", {"frames": 3}, 3)
        settings = await store.get_guild_settings("g")
        assert settings.prefix == "?" and settings.max_job_seconds is None  # no cap of its own: the bot's applies
        assert (await store.set_guild_settings("g", max_job_seconds=30)).max_job_seconds == 30
    await asyncio.to_thread(command.downgrade, alembic_config(url_of(db)), "0002")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT prefix FROM guild_settings").fetchall() == [("?",)]
