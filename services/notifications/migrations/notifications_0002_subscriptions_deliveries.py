"""Subscriptions, deliveries with leases and attempts, the projects read model and digest runs.

The thin `alert` table becomes `delivery` (one row per event and subscription); a view keeps the
name `alert` readable for operators' queries written against the first version.

Revision ID: notifications_0002
Revises: notifications_0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "notifications_0002"
down_revision: str | None = "notifications_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "notifications"
# The subscription standing for PMO_ALERT_WEBHOOK_URL; the same id in every installation.
ENVIRONMENT_WEBHOOK_ID = "6d1f3c2e-5b7a-5e0c-9f8e-2a4b6c8d0e1f"


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "subscription",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("secret", sa.Text),
        sa.Column("event_types", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("min_severity", sa.Text, nullable=False, server_default="info"),
        sa.Column("project_id", sa.Text),
        sa.Column("business_unit", sa.Text),
        sa.Column("escalation_target", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("throttle_window_s", sa.Integer),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("managed_by", sa.Text, nullable=False, server_default="api"),
        sa.Column("created_by", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.CheckConstraint("channel IN ('email', 'webhook', 'slack')", name="subscription_channel"),
        sa.CheckConstraint(
            "min_severity IN ('info', 'amber', 'red')", name="subscription_min_severity"
        ),
        sa.CheckConstraint("managed_by IN ('api', 'environment')", name="subscription_managed_by"),
        sa.CheckConstraint(
            "throttle_window_s IS NULL OR throttle_window_s >= 0", name="subscription_throttle"
        ),
        schema=SCHEMA,
    )
    # The webhook of PMO_ALERT_WEBHOOK_URL is a built-in subscription to at-risk alerts: its URL
    # and secret are read from the environment when sending (unset: the delivery is `no_channel`).
    # The deliveries queued by the first version were all for it.
    op.execute(
        sa.text(
            f"INSERT INTO {SCHEMA}.subscription (id, name, channel, recipient, event_types, "
            "managed_by) VALUES (CAST(:id AS uuid), 'Alert webhook of the environment', "
            "'webhook', '$PMO_ALERT_WEBHOOK_URL', ARRAY['project-at-risk'], 'environment')"
        ).bindparams(id=ENVIRONMENT_WEBHOOK_ID)
    )

    op.rename_table("alert", "delivery", schema=SCHEMA)
    op.execute(f"ALTER INDEX {SCHEMA}.alert_due RENAME TO delivery_due_old")
    op.drop_index("delivery_due_old", table_name="delivery", schema=SCHEMA)
    op.execute(f"ALTER TABLE {SCHEMA}.delivery DROP CONSTRAINT IF EXISTS alert_event_id_key")
    op.execute(f"ALTER TABLE {SCHEMA}.delivery DROP CONSTRAINT IF EXISTS alert_state")
    op.execute(f"ALTER TABLE {SCHEMA}.delivery RENAME CONSTRAINT alert_pkey TO delivery_pkey")
    op.add_column(
        "delivery",
        sa.Column(
            "subscription_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey(f"{SCHEMA}.subscription.id", ondelete="SET NULL"),
        ),
        schema=SCHEMA,
    )
    op.add_column("delivery", sa.Column("context", postgresql.JSONB), schema=SCHEMA)
    op.add_column("delivery", sa.Column("severity", sa.Text), schema=SCHEMA)
    op.add_column(
        "delivery",
        sa.Column("throttle_key", sa.Text, nullable=False, server_default=""),
        schema=SCHEMA,
    )
    op.add_column("delivery", sa.Column("held_until", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.add_column(
        "delivery",
        sa.Column("summary_id", sa.Integer),
        schema=SCHEMA,
    )
    # Null: PMO_NOTIFICATION_MAX_ATTEMPTS; a retry by hand grants a new round of attempts.
    op.add_column("delivery", sa.Column("max_attempts", sa.Integer), schema=SCHEMA)
    op.add_column("delivery", sa.Column("locked_until", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.add_column("delivery", sa.Column("lease_owner", sa.Text), schema=SCHEMA)
    op.execute(
        f"UPDATE {SCHEMA}.delivery SET subscription_id = CAST('{ENVIRONMENT_WEBHOOK_ID}' AS uuid),"
        " context = jsonb_build_object('event', convert_from(payload, 'UTF8')::jsonb),"
        " severity = convert_from(payload, 'UTF8')::jsonb #>> '{data,severity}',"
        " throttle_key = coalesce(project_id, '')"
    )
    op.drop_column("delivery", "payload", schema=SCHEMA)
    op.alter_column("delivery", "context", nullable=False, schema=SCHEMA)
    op.create_check_constraint(
        "delivery_state",
        "delivery",
        "state IN ('pending', 'delivered', 'dead', 'held', 'summarized', 'cancelled', "
        "'no_channel')",
        schema=SCHEMA,
    )
    # Each (event, subscription) pair once: a redelivered or replayed event sends nothing new.
    op.create_unique_constraint(
        "delivery_once_per_subscription",
        "delivery",
        ["event_id", "subscription_id"],
        schema=SCHEMA,
    )
    op.create_index(
        "delivery_due",
        "delivery",
        ["next_attempt_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index(
        "delivery_held",
        "delivery",
        ["held_until"],
        schema=SCHEMA,
        postgresql_where=sa.text("state = 'held'"),
    )
    op.create_index(
        "delivery_throttle_window",
        "delivery",
        ["subscription_id", "throttle_key", "created_at"],
        schema=SCHEMA,
    )
    op.create_index("delivery_subscription", "delivery", ["subscription_id", "id"], schema=SCHEMA)
    op.execute(
        f"CREATE VIEW {SCHEMA}.alert AS SELECT id, event_id, event_type, project_id, channel, "
        "state, attempts, last_error, next_attempt_at, delivered_at, created_at "
        f"FROM {SCHEMA}.delivery"
    )

    op.create_table(
        "delivery_attempt",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "delivery_id",
            sa.Integer,
            sa.ForeignKey(f"{SCHEMA}.delivery.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("worker", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("outcome", sa.Text, nullable=False, server_default="in_flight"),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
        sa.CheckConstraint(
            "outcome IN ('in_flight', 'delivered', 'failed', 'abandoned')",
            name="delivery_attempt_outcome",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "delivery_attempt_of", "delivery_attempt", ["delivery_id", "number"], schema=SCHEMA
    )

    op.create_table(
        "project",
        sa.Column("project_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("business_unit", sa.Text, nullable=False),
        sa.Column("manager", sa.Text),
        sa.Column("lifecycle", sa.Text, nullable=False),
        sa.Column("rank", sa.Integer),
        sa.Column("score", sa.Float),
        sa.Column("health", sa.Text, nullable=False, server_default="green"),
        sa.Column("metrics", postgresql.JSONB, nullable=False, server_default="{}"),
        sa.Column("reasons", postgresql.JSONB, nullable=False, server_default="[]"),
        sa.Column("at_risk_since", sa.DateTime(timezone=True)),
        sa.Column("escalated_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        schema=SCHEMA,
    )
    op.create_index(
        "project_at_risk",
        "project",
        ["at_risk_since"],
        schema=SCHEMA,
        postgresql_where=sa.text("at_risk_since IS NOT NULL AND escalated_at IS NULL"),
    )

    op.create_table(
        "resource_request",
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("project_id", sa.Text, nullable=False, index=True),
        sa.Column("skill", sa.Text),
        sa.Column("fte_requested", sa.Float, nullable=False),
        sa.Column("fte_granted", sa.Float, nullable=False),
        schema=SCHEMA,
    )

    op.create_table(
        "digest_run",
        sa.Column("slot", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("claimed_by", sa.Text, nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.Column("projects", sa.Integer, nullable=False),
        sa.Column("deliveries", sa.Integer, nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("digest_run", schema=SCHEMA)
    op.drop_table("resource_request", schema=SCHEMA)
    op.drop_table("project", schema=SCHEMA)
    op.drop_table("delivery_attempt", schema=SCHEMA)
    op.execute(f"DROP VIEW {SCHEMA}.alert")
    op.drop_constraint("delivery_once_per_subscription", "delivery", schema=SCHEMA)
    op.drop_constraint("delivery_state", "delivery", schema=SCHEMA)
    op.drop_index("delivery_due", table_name="delivery", schema=SCHEMA)
    op.drop_index("delivery_held", table_name="delivery", schema=SCHEMA)
    op.drop_index("delivery_throttle_window", table_name="delivery", schema=SCHEMA)
    op.drop_index("delivery_subscription", table_name="delivery", schema=SCHEMA)
    # The first version knew one subscription (the environment's webhook) and one state machine.
    op.execute(
        f"DELETE FROM {SCHEMA}.delivery WHERE subscription_id IS DISTINCT FROM "
        f"CAST('{ENVIRONMENT_WEBHOOK_ID}' AS uuid) OR event_type <> 'pmo.project-at-risk'"
    )
    op.execute(
        f"UPDATE {SCHEMA}.delivery SET state = CASE state WHEN 'held' THEN 'pending' "
        "WHEN 'summarized' THEN 'delivered' WHEN 'cancelled' THEN 'no_channel' ELSE state END"
    )
    op.add_column("delivery", sa.Column("payload", sa.LargeBinary), schema=SCHEMA)
    op.execute(
        f"UPDATE {SCHEMA}.delivery SET payload = convert_to((context -> 'event')::text, 'UTF8')"
    )
    op.execute(f"DELETE FROM {SCHEMA}.delivery WHERE payload IS NULL")
    op.alter_column("delivery", "payload", nullable=False, schema=SCHEMA)
    for column in (
        "subscription_id",
        "context",
        "severity",
        "throttle_key",
        "held_until",
        "summary_id",
        "max_attempts",
        "locked_until",
        "lease_owner",
    ):
        op.drop_column("delivery", column, schema=SCHEMA)
    op.execute(f"ALTER TABLE {SCHEMA}.delivery RENAME CONSTRAINT delivery_pkey TO alert_pkey")
    op.rename_table("delivery", "alert", schema=SCHEMA)
    op.create_unique_constraint("alert_event_id_key", "alert", ["event_id"], schema=SCHEMA)
    op.create_check_constraint(
        "alert_state",
        "alert",
        "state IN ('pending', 'delivered', 'dead', 'no_channel')",
        schema=SCHEMA,
    )
    op.create_index(
        "alert_due",
        "alert",
        ["next_attempt_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.drop_table("subscription", schema=SCHEMA)
