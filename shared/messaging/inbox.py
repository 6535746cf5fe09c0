"""The inbox: which events a consumer has already had its effect for, written with the effect."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.messaging.tables import inbox


async def claim(
    session: AsyncSession,
    consumer: str,
    events: Sequence[tuple[str, str, str]],
    *,
    lock: Sequence[str] = (),
) -> set[tuple[str, str]]:
    """Record `(event id, source, type)` triples as processed; return those that were new.

    One statement for the whole batch. It runs inside the batch's transaction, so a rollback
    un-claims them and a redelivery is processed again; after a commit, a redelivery is seen here.
    The same statement takes the advisory locks named in `lock` (`UnitOfWork.lock_names`), in
    sorted order, held until the transaction ends: the batch's bookkeeping in one round trip.
    """
    if not events:
        if lock:
            await (await session.connection()).execute(_LOCK, {"locks": list(lock)})
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
            "locks": list(lock),
        },
    )
    _, ids, sources = result.one()
    return set(zip(ids, sources, strict=True))


_CLAIM = sa.text(
    f"WITH claimed AS (INSERT INTO {inbox.name} (consumer, event_id, source, event_type) "
    "SELECT :consumer, u.event_id, u.source, u.event_type FROM unnest("
    "CAST(:ids AS text[]), CAST(:sources AS text[]), CAST(:types AS text[])"
    ") AS u(event_id, source, event_type) "
    "ON CONFLICT DO NOTHING RETURNING event_id, source) "
    # An uncommon place for the locks, but one statement: an uncorrelated subquery is run once.
    "SELECT (SELECT count(*) FROM (SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
    "FROM (SELECT k FROM unnest(CAST(:locks AS text[])) AS k ORDER BY k) AS s) AS l), "
    "coalesce(array_agg(event_id), '{}'), coalesce(array_agg(source), '{}') FROM claimed"
)
_LOCK = sa.text(
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
    "FROM (SELECT k FROM unnest(CAST(:locks AS text[])) AS k ORDER BY k) AS s"
)
