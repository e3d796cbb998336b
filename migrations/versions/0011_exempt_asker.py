"""Whether the member who asked for a job had one of the server's exempt roles then. A job adopted
after a restart is held to its server's time cap again; without this, a moderator's long job was
held to the cap for other members and failed.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A column only, so SQLite alters the table in place (copying it would cascade deletes to the gallery).
    with op.batch_alter_table("jobs", recreate="never") as batch:
        batch.add_column(sa.Column("exempt", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("jobs", recreate="never") as batch:
        batch.drop_column("exempt")
