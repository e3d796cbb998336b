"""The Alembic migrations; installed as `bot.store.migrations` (see setup.py and bot/store/migrate.py)."""
