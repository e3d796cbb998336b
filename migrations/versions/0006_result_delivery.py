"""Results never lost: a finished job remembers whether its result reached Discord, how often
posting it was tried and why it last failed, so a result Discord refused is posted again later
(after a restart too), or its requester is told. And a gallery entry remembers when it was
featured in the gallery channel, so likes taken back and given again feature it only once.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Columns and an index only, so SQLite alters the table in place: copying it would cascade
    # deletes to the gallery entries that reference jobs.
    with op.batch_alter_table("jobs", recreate="never") as batch:
        batch.add_column(sa.Column("delivery", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("delivery_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("delivery_tried_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("delivery_error", sa.Text(), nullable=True))
        batch.create_index("ix_jobs_delivery", ["delivery"])
    # NULL for existing entries: one that had reached its server's threshold was featured then,
    # and with likes only ever added so far, cannot reach it a second time.
    with op.batch_alter_table("gallery_entries", recreate="never") as batch:
        batch.add_column(sa.Column("featured_at", sa.DateTime(timezone=True), nullable=True))
    # Results that were posted say so. Older finished jobs without a post stay untracked (NULL):
    # posting results days old into a channel after an upgrade would surprise more than help.
    op.execute("UPDATE jobs SET delivery = 'posted' WHERE result_message_link IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("gallery_entries", recreate="never") as batch:
        batch.drop_column("featured_at")
    with op.batch_alter_table("jobs", recreate="never") as batch:
        batch.drop_index("ix_jobs_delivery")
        batch.drop_column("delivery_error")
        batch.drop_column("delivery_tried_at")
        batch.drop_column("delivery_attempts")
        batch.drop_column("delivery")
