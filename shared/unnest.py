"""Many rows into one table in one statement of arrays (`INSERT ... SELECT FROM unnest(...)`).

SQLAlchemy's executemany of an INSERT sends a VALUES list of one parameter set per row, whose
text changes with the number of rows (compiled again, prepared again) and which PostgreSQL plans
per row group; one array per column is one short statement whose text is the same whatever the
count, and the rows keep their order (`WITH ORDINALITY ... ORDER BY`), so identity columns follow
it. SQLAlchemy has no construct for it, hence this module; the hot paths' writes use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from pydantic_core import to_json
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _as_text(column: sa.Column[Any]) -> bool:
    """Whether the column's values travel as text (arrays of arrays and JSON cannot be one
    PostgreSQL array per column): each is cast back to the column's type per row."""
    return isinstance(column.type, sa.ARRAY | sa.JSON)


@lru_cache(maxsize=64)
def _statement(table: sa.Table, names: tuple[str, ...]) -> sa.TextClause:
    columns = [table.c[name] for name in names]
    unnested = ", ".join(
        f"CAST(:{name} AS TEXT[])"
        if _as_text(column)
        else f"CAST(:{name} AS {column.type.compile(dialect=_DIALECT)}[])"
        for name, column in zip(names, columns, strict=True)
    )
    selected = ", ".join(
        f'CAST(u."{name}" AS {column.type.compile(dialect=_DIALECT)})'
        if _as_text(column)
        else f'u."{name}"'
        for name, column in zip(names, columns, strict=True)
    )
    quoted = ", ".join(f'"{name}"' for name in names)
    return sa.text(
        f"INSERT INTO {table.schema}.{table.name} ({quoted}) SELECT {selected} "
        f"FROM unnest({unnested}) WITH ORDINALITY AS u({quoted}, n) ORDER BY u.n"
    )


def _text_value(column: sa.Column[Any], value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(column.type, sa.JSON):
        return to_json(value).decode()  # dates and models as the engine's JSON would write them
    # A PostgreSQL array literal of text elements, each quoted (ARRAY(TEXT) columns).
    return "{" + ",".join(map(_element, value)) + "}"


def _element(item: Any) -> str:
    text = str(item)
    if '"' in text or "\\" in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


async def insert_rows(
    connection: AsyncConnection, table: sa.Table, rows: Sequence[dict[str, Any]]
) -> None:
    """Insert `rows` (each a mapping of the same column names to values) in one statement, in
    their order, in the connection's transaction. Raises what the database raises (a key
    violation, a value of the wrong type)."""
    if not rows:
        return
    names = tuple(rows[0])
    arrays: dict[str, list[Any]] = {}
    for name in names:
        column = table.c[name]
        values = [row[name] for row in rows]
        arrays[name] = [_text_value(column, v) for v in values] if _as_text(column) else values
    await connection.execute(_statement(table, names), arrays)
