"""The inbox: which events a consumer has already had its effect for, written with the effect."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.messaging.tables import inbox


async def claim(
    session: AsyncSession, consumer: str, events: Sequence[tuple[str, str, str]]
) -> set[tuple[str, str]]:
    """Record `(event id, source, type)` triples as processed; return those that were new.

    One statement for the whole batch. It runs inside the batch's transaction, so a rollback
    un-claims them and a redelivery is processed again; after a commit, a redelivery is seen here.
    """
    if not events:
        return set()
    # Arrays rather than a VALUES list: one statement text whatever the batch size, so it is
    # compiled and prepared once, not once per batch size. The new ones come back as two arrays
    # in one row, not as a row each (which the driver and SQLAlchemy would make per event).
    connection = await session.connection()
    result = await connection.execute(
        _CLAIM,
        {
            "consumer": consumer,
            "ids": [event_id for event_id, _, _ in events],
            "sources": [source for _, source, _ in events],
            "types": [event_type for _, _, event_type in events],
        },
    )
    ids, sources = result.one()
    return set(zip(ids, sources, strict=True))


_CLAIM = sa.text(
    f"WITH claimed AS (INSERT INTO {inbox.name} (consumer, event_id, source, event_type) "
    "SELECT :consumer, u.event_id, u.source, u.event_type FROM unnest("
    "CAST(:ids AS text[]), CAST(:sources AS text[]), CAST(:types AS text[])"
    ") AS u(event_id, source, event_type) "
    "ON CONFLICT DO NOTHING RETURNING event_id, source) "
    "SELECT coalesce(array_agg(event_id), '{}'), coalesce(array_agg(source), '{}') FROM claimed"
)
