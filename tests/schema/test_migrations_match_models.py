"""The migrated schema matches the models: each service's tables and the messaging tables.

Alembic's autogenerate comparison (`compare_metadata`) between the tables the code declares
(SQLModel tables of each service, the shared outbox/inbox/dead-letter/parked tables placed in
the service's schema) and what the migrations built in a real PostgreSQL. A column, table,
index, type or nullability added to a model without a migration (or the other way round) fails
here with the differences listed.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import services.allocation.adapters.tables
import services.monitoring.adapters.tables
import services.notifications.adapters.tables
import services.registry.adapters.tables  # noqa: F401  (each import registers its tables)
from shared.database import asyncpg_url
from shared.messaging.tables import metadata as messaging_metadata

SERVICES_WITH_TABLES = ["registry", "monitoring", "allocation", "notifications"]


def declared_tables(service: str) -> sa.MetaData:
    """The tables the code declares for `service`'s schema: its own and the messaging ones."""
    declared = sa.MetaData()
    for table in SQLModel.metadata.sorted_tables:
        if table.schema == service:
            table.to_metadata(declared)
    for table in messaging_metadata.sorted_tables:
        table.to_metadata(declared, schema=service)
    return declared


def _same_type(
    context: MigrationContext,
    inspected: sa.Column[Any],
    declared: sa.Column[Any],
    inspected_type: sa.types.TypeEngine[Any],
    declared_type: sa.types.TypeEngine[Any],
) -> bool | None:
    """SQLModel declares `str` as a VARCHAR without length, the migrations say TEXT: in
    PostgreSQL the two are the same type of value, so only a length would be a difference."""
    if isinstance(declared_type, sa.types.TypeDecorator):
        declared_type = declared_type.impl_instance
    if (
        isinstance(inspected_type, sa.String)
        and isinstance(declared_type, sa.String)
        and not isinstance(inspected_type, sa.Enum)
        and declared_type.length is None
    ):
        return False
    return None  # alembic's own comparison


def _declared_in_models(
    item: Any, name: str | None, kind: str, reflected: bool, compare_to: Any
) -> bool:
    """Indexes, foreign keys and generated columns (a full-text `search` vector) that only the
    migrations create are theirs to keep (the models need them for nothing); one a model
    declares must still exist in the migrated schema."""
    only_in_schema = reflected and compare_to is None
    if kind in ("index", "unique_constraint", "foreign_key_constraint"):
        return not only_in_schema
    if kind == "column" and only_in_schema:
        return item.computed is None
    return True


def differences(connection: sa.Connection, service: str) -> list[Any]:
    """Alembic's list of what differs between the migrated `service` schema and the models."""
    context = MigrationContext.configure(
        connection,
        opts={
            "include_schemas": True,
            "version_table_schema": service,
            "compare_type": _same_type,
            "include_object": _declared_in_models,
            "include_name": lambda name, kind, parent: (
                name == service if kind == "schema" else name != "alembic_version"
            ),
        },
    )
    return list(compare_metadata(context, declared_tables(service)))


@pytest.mark.parametrize("service", SERVICES_WITH_TABLES)
async def test_the_migrations_build_the_tables_the_models_declare(
    database_url: str, service: str
) -> None:
    engine = create_async_engine(asyncpg_url(database_url))
    try:
        async with engine.connect() as connection:
            drift = await connection.run_sync(differences, service)
    finally:
        await engine.dispose()
    assert declared_tables(service).tables, f"no tables declared for {service}"
    assert drift == [], f"{service}: models and migrations differ:\n" + "\n".join(map(str, drift))
