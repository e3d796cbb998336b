"""Gallery: entries and likes; jobs remember the message that carries their result.

Revision ID: 0002
Revises: 0001
Create Date: 2024-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, so existing jobs stay valid without a backfill.
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("result_message_link", sa.Text(), nullable=True))

    op.create_table(
        "gallery_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("guild_id", sa.String(64), nullable=True),
        sa.Column("channel_id", sa.String(64), nullable=True),
        sa.Column("message_link", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("likes", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_gallery_entries_job_id_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_gallery_entries"),
        # One entry per job: adding the same job twice returns the first entry.
        sa.UniqueConstraint("job_id", name="uq_gallery_entries_job_id"),
    )
    op.create_index("ix_gallery_entries_guild_id_created_at", "gallery_entries", ["guild_id", "created_at"])
    op.create_index("ix_gallery_entries_guild_id_likes", "gallery_entries", ["guild_id", "likes"])

    op.create_table(
        "likes",
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["gallery_entries.id"], name="fk_likes_entry_id_gallery_entries", ondelete="CASCADE"
        ),
        # The primary key is the (entry, user) pair, which is what makes a like idempotent.
        sa.PrimaryKeyConstraint("entry_id", "user_id", name="pk_likes"),
    )


def downgrade() -> None:
    op.drop_table("likes")
    op.drop_index("ix_gallery_entries_guild_id_likes", table_name="gallery_entries")
    op.drop_index("ix_gallery_entries_guild_id_created_at", table_name="gallery_entries")
    op.drop_table("gallery_entries")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("result_message_link")

