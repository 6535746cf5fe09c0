"""The one "keep the newest per key" rule, as a comparison and as a statement on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from services.notifications.adapters.tables import ResourceRequestRow
from shared.database import create_engine, session_factory
from shared.projections import keep_newest, supersedes
from shared.settings import Settings

T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


def test_a_value_supersedes_the_kept_one_unless_it_is_older() -> None:
    assert supersedes(T0, None)
    assert supersedes(T0 + timedelta(seconds=1), T0)
    assert supersedes(T0, T0)  # a redelivery, or a decision of the same moment: applied again
    assert not supersedes(T0 - timedelta(microseconds=1), T0)
    assert supersedes(date(2026, 7, 2), date(2026, 7, 1))
    assert not supersedes(date(2026, 6, 30), date(2026, 7, 1))


async def test_keep_newest_inserts_updates_and_ignores_an_older_value_in_one_statement(
    settings: Settings,
) -> None:
    engine = create_engine(
        settings.database_url_for("notifications"), "notifications", application="test"
    )
    table = ResourceRequestRow.__table__  # type: ignore[attr-defined]
    sessions = session_factory(engine)

    async def decide(granted: float, at: datetime, *, insert: bool = True) -> bool:
        async with sessions() as session, session.begin():
            return await keep_newest(
                session,
                table,
                key={"request_id": "REQ-1"},
                values={
                    "project_id": "PRJ-1",
                    "fte_requested": 1.0,
                    "fte_granted": granted,
                    "decided_at": at,
                },
                order_column="decided_at",
                insert_missing=insert,
            )

    async def kept() -> tuple[float, datetime]:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(table.c.fte_granted, table.c.decided_at).where(
                        table.c.request_id == "REQ-1"
                    )
                )
            ).one()
        return row.fte_granted, row.decided_at

    try:
        # Without insert_missing, a key nobody kept yet is not created.
        assert not await decide(0.2, T0, insert=False)
        assert await decide(0.5, T0)
        assert await decide(1.0, T0 + timedelta(minutes=5))
        # An older decision arriving late: refused, the newer one stays.
        assert not await decide(0.0, T0 + timedelta(minutes=1))
        assert await kept() == (1.0, T0 + timedelta(minutes=5))
        # The same time again (a redelivery) applies; a guarded update of an existing key too.
        assert await decide(0.75, T0 + timedelta(minutes=5))
        assert await decide(0.25, T0 + timedelta(minutes=9), insert=False)
        assert await kept() == (0.25, T0 + timedelta(minutes=9))
    finally:
        await engine.dispose()
