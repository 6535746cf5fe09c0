"""Parked events: an event that arrived before what it depends on waits, and is replayed after it.

Enterprise systems do not send in order across topics: a status report may overtake the project's
start. Such an event is kept exactly as it arrived (bytes and headers, so its replay is the same
processing in the same trace) until a handler releases what it waits for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.messaging.dead_letters import UndeliverableRecord
from shared.messaging.tables import (
    decode_headers,
    encode_headers,
    parked_event,
    storable_text,
)


async def park(
    session: AsyncSession,
    record: UndeliverableRecord,
    *,
    consumer: str,
    waits_for: str,
    reason: str,
    event_id: str,
    source: str,
    event_type: str,
) -> None:
    await session.exec(
        sa.insert(parked_event).values(
            consumer=consumer,
            waits_for=waits_for,
            reason=storable_text(reason),
            event_id=event_id,
            source=source,
            event_type=event_type,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=encode_headers(record.headers),
        )
    )


async def expire(
    session: AsyncSession, *, consumer: str, older_than: datetime, limit: int = 100
) -> list[tuple[UndeliverableRecord, str, str, str, str, str]]:
    """Take out parked events that waited too long: (record, waits_for, reason, id, type, source).

    `SKIP LOCKED`: replicas expiring at the same time take different rows, each once.
    """
    due = (
        sa.select(parked_event.c.seq)
        .where(parked_event.c.consumer == consumer, parked_event.c.parked_at < older_than)
        .order_by(parked_event.c.seq)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = (
        await session.exec(
            sa.delete(parked_event)
            .where(parked_event.c.seq.in_(due.scalar_subquery()))
            .returning(*parked_event.c)
        )
    ).all()
    return [
        (_record(row), row.waits_for, row.reason, row.event_id, row.event_type, row.source)
        for row in sorted(rows, key=lambda row: row.seq)
    ]


def _record(row: Any) -> UndeliverableRecord:
    return UndeliverableRecord(
        topic=row.topic,
        partition=row.partition,
        offset=row.offset,
        key=row.key,
        value=row.value,
        headers=decode_headers(row.headers),
    )


async def unpark(
    session: AsyncSession, *, consumer: str, waits_for: str
) -> list[UndeliverableRecord]:
    """Take the events waiting for `waits_for` out of the car park, in arrival order."""
    rows = (
        await session.exec(
            sa.delete(parked_event)
            .where(parked_event.c.consumer == consumer, parked_event.c.waits_for == waits_for)
            .returning(
                parked_event.c.seq,
                parked_event.c.topic,
                parked_event.c.partition,
                parked_event.c.offset,
                parked_event.c.key,
                parked_event.c.value,
                parked_event.c.headers,
            )
        )
    ).all()
    return [_record(row) for row in sorted(rows, key=lambda row: row.seq)]
