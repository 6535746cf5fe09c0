"""Keep the newest per key: the one rule every read model uses for facts that may arrive late.

Events about one thing travel on several topics (an allocation decision comes as
`resource-allocated`, `resource-conflict-resolved` or `allocation-changed`) or are redelivered
after a rebalance, so they may arrive in any order. A projection therefore keeps, per key, the
value with the greatest *order* (the producer's decision time, e.g. monitoring's `assessed_at`
or the allocation event's CloudEvents `time`), never simply the last one to arrive:

- an incoming value replaces the kept one when its order is the same or later (the same order
  is a redelivery or a decision of the same moment, published in the order it should apply);
- an older one changes nothing.

`supersedes` is the rule; `keep_newest` applies it in one SQL statement (insert or guarded
update), so two replicas handling two decisions for one key at once cannot both win.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import Table, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

Order = TypeVar("Order", date, datetime)


def supersedes(incoming: Order, kept: Order | None) -> bool:
    """Whether a value ordered at `incoming` replaces the one kept, ordered at `kept`.

    Nothing kept: it does. Otherwise only if it is not older. The order is a time (a decision
    time) or a date (a status report's as-of date).
    """
    return kept is None or incoming >= kept


async def keep_newest(
    session: AsyncSession,
    table: Table,
    *,
    key: Mapping[str, Any],
    values: Mapping[str, Any],
    order_column: str,
    insert_missing: bool = True,
) -> bool:
    """Store `values` for `key` unless a newer value (by `order_column`) is kept already.

    `values` must hold the `order_column`. With `insert_missing`, a key not kept yet is
    inserted; without it (the row belongs to another fact, e.g. a project, and must exist
    first) a missing key changes nothing. Returns whether `values` now stand.
    """
    order = table.c[order_column]
    if insert_missing:
        statement = insert(table).values(**key, **values)
        upsert = statement.on_conflict_do_update(
            index_elements=[table.c[name] for name in key],
            set_={name: statement.excluded[name] for name in values},
            where=order.is_(None) | (order <= statement.excluded[order_column]),
        ).returning(*(table.c[name] for name in key))
        return (await session.exec(upsert)).first() is not None
    guarded = (
        update(table)
        .where(*(table.c[name] == value for name, value in key.items()))
        .where(order.is_(None) | (order <= values[order_column]))
        .values(**values)
        .returning(*(table.c[name] for name in key))
    )
    return (await session.exec(guarded)).first() is not None
