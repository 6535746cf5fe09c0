"""Outbox keys as bytes, and the CloudEvents source of each dead letter.

A Kafka key is any byte sequence; kept as text, one holding a NUL (or bytes that are not UTF-8)
could not be written, so its dead letter failed and the partition stopped behind it. A dead
letter also records the sender's `source`, so that with `event_id` it names the event exactly.

Revision ID: messaging_0002
Revises: messaging_0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "messaging_0002"
down_revision: str | None = "messaging_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column(
        "outbox",
        "key",
        type_=sa.LargeBinary,
        postgresql_using="convert_to(key, 'UTF8')",
    )
    op.add_column("dead_letter", sa.Column("source", sa.Text))


def downgrade() -> None:
    op.drop_column("dead_letter", "source")
    op.alter_column(
        "outbox",
        "key",
        type_=sa.Text,
        postgresql_using="convert_from(key, 'UTF8')",
    )
