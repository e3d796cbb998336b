"""Servers may cap how long one job may be predicted to take (max_job_seconds).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: NULL means the bot's MAX_JOB_SECONDS, so existing servers need no backfill.
    with op.batch_alter_table("guild_settings") as batch:
        batch.add_column(sa.Column("max_job_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("guild_settings") as batch:
        batch.drop_column("max_job_seconds")
