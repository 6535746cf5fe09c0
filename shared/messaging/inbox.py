"""The inbox: which events a consumer has already had its effect for, written with the effect."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.dialects.postgresql import insert
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
    rows = [
        {"consumer": consumer, "event_id": event_id, "source": source, "event_type": event_type}
        for event_id, source, event_type in events
    ]
    statement = (
        insert(inbox)
        .values(rows)
        .on_conflict_do_nothing()
        .returning(inbox.c.event_id, inbox.c.source)
    )
    result = await session.exec(statement)
    return {(row.event_id, row.source) for row in result}
