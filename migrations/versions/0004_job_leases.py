"""A running or queued job belongs to one bot process: an owner id and a lease that it renews.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no backfill: a job with no owner counts as orphaned, so the first process to start
    # after the upgrade adopts the unfinished jobs it finds, as it did before leases existed.
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.Float(), nullable=True))
        batch.create_index("ix_jobs_owner", ["owner"])


def downgrade() -> None:
    # Altered in place, never copied: on SQLite, dropping the old copy of `jobs` would delete the
    # gallery entries (and their likes) that reference it, through ON DELETE CASCADE.
    with op.batch_alter_table("jobs", recreate="never") as batch:
        batch.drop_index("ix_jobs_owner")
        batch.drop_column("lease_expires_at")
        batch.drop_column("owner")
