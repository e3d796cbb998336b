"""The ORM tables (`models`), on SQLite and on PostgreSQL: they match the migrations exactly, and the
rules they declare are the database's, so a row that breaks one is refused whoever writes it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bot.store import Store, upgrade_async
from bot.store.models import Base, GalleryEntry, GuildSettingsRow, Job, Like, User

NOW = 1_700_000_000.0


@pytest.fixture
def db(database_url):
    # Every test here runs on SQLite and on PostgreSQL (see tests/conftest.py).
    return database_url


@pytest.fixture
async def store(db) -> AsyncIterator[Store]:
    async with Store.open(db, upgrade=True) as opened:
        yield opened


def a_job(user: str = "alice", status: str = "queued") -> Job:
    return Job(user_id=user, kind="dream", params={"layer": "block13"}, seed=1, status=status, created_at=NOW)


async def add(store: Store, *rows: Base) -> None:
    """Write `rows` in one transaction, in order; each gets its id."""
    async with store.database.writing() as session:
        for row in rows:
            session.add(row)
            await session.flush()


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


async def test_a_job_with_a_status_outside_the_known_ones_is_refused(store: Store) -> None:
    await add(store, User(id="alice", created_at=NOW), a_job(status="done"))
    with pytest.raises(IntegrityError, match="(?i)check"):
        await add(store, a_job(status="finished"))
    async with store.database.reading() as session:
        assert (await session.scalars(select(Job.status))).all() == ["done"], "the refused row left nothing behind"


async def test_a_job_of_a_user_the_database_does_not_know_is_refused(store: Store) -> None:
    with pytest.raises(IntegrityError, match="(?i)foreign key"):
        await add(store, a_job(user="nobody"))


async def test_a_job_has_one_gallery_entry_and_a_user_likes_it_once(store: Store) -> None:
    job = a_job()
    await add(store, User(id="alice", created_at=NOW), job)
    entry = GalleryEntry(job_id=job.id, message_link="https://discord/1", kind="dream", params={}, likes=0, created_at=NOW)
    await add(store, entry)
    await add(store, Like(entry_id=entry.id, user_id="bob", created_at=NOW))
    with pytest.raises(IntegrityError):
        await add(store, GalleryEntry(job_id=job.id, message_link="https://discord/2", kind="dream", params={}, likes=0,
                                      created_at=NOW))
    with pytest.raises(IntegrityError):
        await add(store, Like(entry_id=entry.id, user_id="bob", created_at=NOW))


async def test_deleting_a_job_takes_its_gallery_entry_and_likes_with_it(store: Store) -> None:
    job = a_job()
    await add(store, User(id="alice", created_at=NOW), job)
    entry = GalleryEntry(job_id=job.id, message_link="https://discord/1", kind="dream", params={}, likes=1, created_at=NOW)
    await add(store, entry)
    await add(store, Like(entry_id=entry.id, user_id="bob", created_at=NOW))
    async with store.database.writing() as session:
        await session.delete(await session.get(Job, job.id))
    async with store.database.reading() as session:
        assert (await session.scalars(select(GalleryEntry.id))).all() == []
        assert (await session.scalars(select(Like.user_id))).all() == []


async def test_columns_added_later_have_their_defaults_in_the_database(store: Store) -> None:
    job = a_job()
    await add(store, User(id="alice", created_at=NOW), job,
              GuildSettingsRow(guild_id="g1", exempt_role_ids=[], updated_at=NOW))
    async with store.database.reading() as session:
        row = await session.get(Job, job.id)
        settings = await session.get(GuildSettingsRow, "g1")
    assert row is not None and settings is not None
    assert (row.delivery_attempts, row.delivery, row.result_removed) == (0, None, None)
    assert (settings.public_gallery, settings.public_names, settings.exempt_role_ids) == (False, False, [])
