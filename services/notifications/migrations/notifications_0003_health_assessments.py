"""Monitoring's newest assessment per project, and the time of each request's allocation decision.

Revision ID: notifications_0003
Revises: notifications_0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "notifications_0003"
down_revision: str | None = "notifications_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "notifications"


def upgrade() -> None:
    for column in (
        sa.Column("health_assessed_at", sa.DateTime(timezone=True)),
        sa.Column("health_as_of", sa.Date),
        sa.Column("forecast_finish", sa.Date),
    ):
        op.add_column("project", column, schema=SCHEMA)
    op.add_column(
        "resource_request", sa.Column("decided_at", sa.DateTime(timezone=True)), schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_column("resource_request", "decided_at", schema=SCHEMA)
    for column in ("forecast_finish", "health_as_of", "health_assessed_at"):
        op.drop_column("project", column, schema=SCHEMA)
