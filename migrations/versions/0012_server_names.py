"""A server's name and icon as the bot last saw them, so the web gallery names the server rather
than showing its raw id. Written by the Discord front when a server becomes available, when the
bot joins one, and when one is renamed or changes its icon.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Columns only, so SQLite alters the table in place.
    with op.batch_alter_table("guild_settings", recreate="never") as batch:
        batch.add_column(sa.Column("name", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("icon_url", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("guild_settings", recreate="never") as batch:
        batch.drop_column("icon_url")
        batch.drop_column("name")
