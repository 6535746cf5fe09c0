"""The messaging tables as SQLAlchemy Core, unqualified: each lives in the service's own schema."""

from __future__ import annotations

import base64

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("message_id", postgresql.UUID(as_uuid=True), nullable=False, unique=True),
    sa.Column("topic", sa.Text, nullable=False),
    # Bytes, as Kafka has them: a dead letter's key may hold anything, NUL included.
    sa.Column("key", sa.LargeBinary),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Column("headers", postgresql.JSONB, nullable=False),
    sa.Column("traceparent", sa.Text),
    sa.Column("tracestate", sa.Text),
    sa.Column("state", sa.Text, nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("published_at", sa.DateTime(timezone=True)),
)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("consumer", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column(
        "processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

dead_letter = sa.Table(
    "dead_letter",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("consumer", sa.Text, nullable=False),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column("key", sa.LargeBinary),
    sa.Column("value", sa.LargeBinary),
    sa.Column("headers", postgresql.JSONB, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("event_id", sa.Text),
    sa.Column("event_type", sa.Text),
    sa.Column("source", sa.Text),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

parked_event = sa.Table(
    "parked_event",
    metadata,
    sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("consumer", sa.Text, nullable=False),
    sa.Column("waits_for", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column("key", sa.LargeBinary),
    sa.Column("value", sa.LargeBinary),
    sa.Column("headers", postgresql.JSONB, nullable=False),
    sa.Column(
        "parked_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)


def encode_headers(headers: list[tuple[str, bytes]]) -> list[list[str]]:
    """Kafka headers are any bytes; JSONB text refuses some (NUL): keep them as base64."""
    return [
        [
            base64.b64encode(name.encode("utf-8", "surrogateescape")).decode(),
            base64.b64encode(value).decode(),
        ]
        for name, value in headers
    ]


def decode_headers(stored: list[list[str]]) -> list[tuple[str, bytes]]:
    return [
        (base64.b64decode(name).decode("utf-8", "surrogateescape"), base64.b64decode(value))
        for name, value in stored
    ]


def storable_text(text: str, limit: int = 4000) -> str:
    """Text as PostgreSQL stores it: no NUL (the text type refuses it), bounded in length."""
    cleaned = text.replace("\x00", "\\x00")
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"
