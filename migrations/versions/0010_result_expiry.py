"""A job's result file may be gone, and the row says so: "expired" when the retention sweep deleted
it (RESULT_RETENTION_DAYS), "missing" when a front found the file gone for another reason (deleted
by hand). The galleries read this column instead of guessing from a missing file; the job row keeps
its parameters and command either way.

The index serves the sweep, which looks for finished jobs by when they finished.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = ("ix_jobs_status_finished_at", "jobs", ["status", "finished_at"])


def upgrade() -> None:
    # Columns only, so SQLite alters the table in place (copying it would cascade deletes to the gallery).
    with op.batch_alter_table("jobs", recreate="never") as batch:
        batch.add_column(sa.Column("result_removed", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("result_removed_at", sa.Float(), nullable=True))
    op.create_index(*_INDEX)


def downgrade() -> None:
    op.drop_index(_INDEX[0], table_name=_INDEX[1])
    with op.batch_alter_table("jobs", recreate="never") as batch:
        batch.drop_column("result_removed_at")
        batch.drop_column("result_removed")
