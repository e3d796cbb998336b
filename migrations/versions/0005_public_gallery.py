"""Public web gallery: servers opt in (and opt in to showing who made a result); entries whose
Discord message was deleted are marked removed, and are found by that message's link.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Off for every existing server: nothing becomes public until its admins say so.
    with op.batch_alter_table("guild_settings") as batch:
        batch.add_column(sa.Column("public_gallery", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("public_names", sa.Boolean(), nullable=False, server_default=sa.false()))
    # Nullable, no backfill: every existing entry is still on Discord as far as the store knows.
    with op.batch_alter_table("gallery_entries") as batch:
        batch.add_column(sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))
        # A deleted Discord message arrives as its link; this finds its entry without a scan.
        batch.create_index("ix_gallery_entries_message_link", ["message_link"])


def downgrade() -> None:
    # Without the mark, a removed entry would show again on Discord's !gallery: drop it instead.
    op.execute("DELETE FROM likes WHERE entry_id IN (SELECT id FROM gallery_entries WHERE removed_at IS NOT NULL)")
    op.execute("DELETE FROM gallery_entries WHERE removed_at IS NOT NULL")
    # Altered in place, never copied: on SQLite, dropping the old copy of a table that others
    # reference (likes) would delete their rows through ON DELETE CASCADE. (SQLite 3.35+ drops columns.)
    with op.batch_alter_table("gallery_entries", recreate="never") as batch:
        batch.drop_index("ix_gallery_entries_message_link")
        batch.drop_column("removed_at")
    with op.batch_alter_table("guild_settings") as batch:
        batch.drop_column("public_names")
        batch.drop_column("public_gallery")
