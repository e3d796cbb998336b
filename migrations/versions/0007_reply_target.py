"""A job remembers the message its result answers: the request itself for a prefix command, the
acknowledgement for a slash command, button or menu. A result posted again after an outage then
replies to it, as the first post would have.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A column only, so SQLite alters the table in place (copying it would cascade deletes to the gallery).
    with op.batch_alter_table("jobs", recreate="never") as batch:
        batch.add_column(sa.Column("reply_to", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", recreate="never") as batch:
        batch.drop_column("reply_to")
