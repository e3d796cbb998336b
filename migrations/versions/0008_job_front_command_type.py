"""A job says which front asked for it, the command that makes the same result, and its result's
media type: each written once, when the job is admitted or finished, and read by every front
(the Discord post, re-delivery after an outage, the web gallery) instead of worked out again.

Older jobs are filled in where the data allows: the front from the requester's id (console users'
ids start with "console:"), the media type from the result file's extension. Their command stays
empty: a page shows none for them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TYPES = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "webp": "image/webp", "mp4": "video/mp4"}


def upgrade() -> None:
    # Columns only, so SQLite alters the table in place (copying it would cascade deletes to the gallery).
    with op.batch_alter_table("jobs", recreate="never") as batch:
        batch.add_column(sa.Column("front", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("command", sa.Text(), nullable=True))
        batch.add_column(sa.Column("result_type", sa.String(length=32), nullable=True))
    op.execute("UPDATE jobs SET front = CASE WHEN user_id LIKE 'console:%' THEN 'console' ELSE 'discord' END")
    for extension, media_type in _TYPES.items():
        op.execute(sa.text("UPDATE jobs SET result_type = :type WHERE result_location LIKE :pattern")
                   .bindparams(type=media_type, pattern=f"%.{extension}"))


def downgrade() -> None:
    with op.batch_alter_table("jobs", recreate="never") as batch:
        batch.drop_column("result_type")
        batch.drop_column("command")
        batch.drop_column("front")
