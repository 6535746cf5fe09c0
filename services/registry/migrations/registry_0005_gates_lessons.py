"""Stage gates and lessons learned: deliverables submitted, gate reviews, lessons (full-text).

Self-contained (new tables only): it can be re-chained after other registry revisions.

Revision ID: registry_0005
Revises: registry_0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "registry_0005"
down_revision: str | None = "registry_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "registry"

# Title and tags weigh most (A), the account and the advice next (B). The regconfig is written
# out ('english'::regconfig) so the expression is immutable, as a stored generated column needs.
LESSON_SEARCH = (
    "setweight(to_tsvector('english'::regconfig, title), 'A')"
    " || setweight(jsonb_to_tsvector('english'::regconfig, tags, '[\"string\"]'), 'A')"
    " || setweight(to_tsvector('english'::regconfig, what_happened), 'B')"
    " || setweight(to_tsvector('english'::regconfig, coalesce(repeat, '')), 'B')"
    " || setweight(to_tsvector('english'::regconfig, coalesce(avoid, '')), 'B')"
)


def upgrade() -> None:
    op.create_table(
        "deliverable",
        sa.Column("project_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("submitted_by", sa.Text, nullable=False),
        sa.Column(
            "submitted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "gate_review",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("project_id", sa.Text, nullable=False),
        sa.Column("from_stage", sa.Text, nullable=False),
        sa.Column("to_stage", sa.Text, nullable=False),
        sa.Column("decision", sa.Text, nullable=False),
        sa.Column("reviewer", sa.Text, nullable=False),
        sa.Column(
            "reviewed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("deliverables", postgresql.JSONB, nullable=False, server_default="[]"),
        sa.Column("evidence", sa.Text),
        sa.Column("used_by", sa.Text),
        sa.CheckConstraint("decision IN ('passed', 'failed')", name="gate_review_decision"),
        schema=SCHEMA,
    )
    op.create_index("gate_review_by_project", "gate_review", ["project_id", "id"], schema=SCHEMA)
    op.create_table(
        "lesson",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("project_id", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("what_happened", sa.Text, nullable=False),
        sa.Column("repeat", sa.Text),
        sa.Column("avoid", sa.Text),
        sa.Column("tags", postgresql.JSONB, nullable=False, server_default="[]"),
        sa.Column("methodology", sa.Text),
        sa.Column("business_unit", sa.Text, nullable=False),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("recorded_by", sa.Text, nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "search",
            postgresql.TSVECTOR,
            sa.Computed(LESSON_SEARCH, persisted=True),
            nullable=False,
        ),
        schema=SCHEMA,
    )
    op.create_index("lesson_search", "lesson", ["search"], postgresql_using="gin", schema=SCHEMA)
    op.create_index("lesson_by_project", "lesson", ["project_id", "id"], schema=SCHEMA)
    op.create_index(
        "lesson_business_unit_folded", "lesson", [sa.text("lower(business_unit)")], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_table("lesson", schema=SCHEMA)
    op.drop_table("gate_review", schema=SCHEMA)
    op.drop_table("deliverable", schema=SCHEMA)
