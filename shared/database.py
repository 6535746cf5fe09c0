"""PostgreSQL for a service: its engine confined to its own schema, sessions, and migrations."""

from __future__ import annotations

import asyncio
import time
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import sqlalchemy.event
import sqlalchemy.exc
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_fixed

SHARED_MIGRATIONS = Path(__file__).parent / "migrations"
SERVICES_ROOT = Path(__file__).parent.parent / "services"


# SQLSTATE classes of the infrastructure rather than of the statement: connection exception,
# transaction rollback (serialization, deadlock), insufficient resources (too many connections,
# disk full), operator intervention (shutting down, starting up), system error (I/O).
_TRANSIENT_SQLSTATE_CLASSES = frozenset(("08", "40", "53", "57", "58"))


def is_transient(error: BaseException) -> bool:
    """Whether an error is the infrastructure's (retry later) rather than the work's own.

    Looks through the whole chain of causes, whichever layer raised it: asyncpg raises some
    errors unwrapped (`CannotConnectNowError` while PostgreSQL starts up, 57P03;
    `TooManyConnectionsError`, 53300), SQLAlchemy wraps others; the SQLSTATE class decides
    for both. A transient error never gets an event dead-lettered.
    """
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if _transient_itself(current):
            return True
        # SQLAlchemy keeps the driver's error in `orig`; Python chains the rest.
        orig = getattr(current, "orig", None)
        causes = [orig, current.__cause__]
        if not current.__suppress_context__:
            causes.append(current.__context__)
        pending.extend(cause for cause in causes if isinstance(cause, BaseException))
    return False


def _transient_itself(error: BaseException) -> bool:
    if isinstance(
        error,
        OSError
        | ConnectionError
        | TimeoutError
        | sqlalchemy.exc.DisconnectionError
        | sqlalchemy.exc.TimeoutError,  # the pool had no connection to give in time
    ):
        return True
    if isinstance(error, sqlalchemy.exc.DBAPIError) and (
        error.connection_invalidated
        or isinstance(error, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError)
    ):
        return True
    code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return isinstance(code, str) and code[:2] in _TRANSIENT_SQLSTATE_CLASSES


def asyncpg_url(url: str) -> str:
    """Turn an operator's `postgresql://` URL into SQLAlchemy's asyncpg form.

    Operators write libpq URLs (`sslmode=require`); asyncpg names that parameter `ssl`.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgresql", "postgres"):
        raise ValueError(f"Not a PostgreSQL URL (scheme {parts.scheme!r}): expected postgresql://")
    query = [("ssl" if key == "sslmode" else key, value) for key, value in parse_qsl(parts.query)]
    return urlunsplit(("postgresql+asyncpg", parts.netloc, parts.path, urlencode(query), ""))


def create_engine(url: str, schema: str, *, pool_size: int = 5, application: str) -> AsyncEngine:
    """An engine whose connections see only the service's schema.

    Setting `search_path` per connection keeps table names unqualified, so the shared outbox,
    inbox and dead-letter tables exist once per service schema with one definition.
    """
    engine = create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        # Errors must not carry the statement's values into logs or dead-letter reasons: they
        # may hold secrets (a webhook's) or personal data.
        hide_parameters=True,
        connect_args={"server_settings": {"search_path": schema, "application_name": application}},
    )
    _ping_when_idle(engine)
    return engine


PING_IDLE_AFTER_S = 1.0
"""A pooled connection unused for longer than this is pinged before it is handed out."""


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Ping a pooled connection before use only when it has been idle for `PING_IDLE_AFTER_S`.

    `pool_pre_ping` pings at every checkout: a round trip before each batch's transaction, and
    one per request. A connection used a moment ago is almost always alive; one that is not
    (the database restarted within that moment) fails its first statement with a disconnection
    error, on which SQLAlchemy drops it and every connection pooled before it, and the consumer
    rolls the batch back and has it delivered again, as for any database outage. A connection
    idle for longer is pinged as before; a failed ping makes the pool connect afresh
    (SQLAlchemy's documented way: `DisconnectionError` from a checkout listener).
    """
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @sqlalchemy.event.listens_for(pool, "checkin")
    def checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @sqlalchemy.event.listens_for(pool, "checkout")
    def checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop("checked_in", None)
        if since is None or time.monotonic() - since < PING_IDLE_AFTER_S:
            return  # a fresh connection, or one just used
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise sqlalchemy.exc.DisconnectionError(str(error)) from error
        if not alive:
            raise sqlalchemy.exc.DisconnectionError("the connection did not answer a ping")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def _migration_config(service: str, connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SHARED_MIGRATIONS))
    # Two version folders: the messaging tables every service has, and the service's own.
    config.set_main_option(
        "version_locations",
        f"{SHARED_MIGRATIONS / 'versions'} {SERVICES_ROOT / service / 'migrations'}",
    )
    config.set_main_option("path_separator", "space")
    config.attributes["connection"] = connection
    config.attributes["schema"] = service
    return config


# Alembic keeps its migration context in module globals: two migrations interleaving in one
# process (services sharing a process, as in the tests) would trample each other.
_in_process = asyncio.Lock()


def _lock_id(schema: str) -> int:
    return zlib.crc32(f"pmo-migrate-{schema}".encode())


async def migrate(engine: AsyncEngine, service: str) -> None:
    """Bring the service's schema to the newest revision.

    An advisory lock makes concurrent starts of several replicas (or `pmo migrate` racing a pod)
    apply each revision exactly once.
    """
    async with _in_process, engine.connect() as connection:
        await connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _lock_id(service)})
        try:
            await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{service}"'))
            await connection.commit()
            await connection.run_sync(
                lambda sync: command.upgrade(_migration_config(service, sync), "heads")
            )
            await connection.commit()
        finally:
            await connection.execute(
                text("SELECT pg_advisory_unlock(:id)"), {"id": _lock_id(service)}
            )
            await connection.commit()


async def migrate_url(url: str, service: str) -> None:
    engine = create_engine(url, service, pool_size=1, application=f"pmo-{service}-migrate")
    try:
        await migrate(engine, service)
    finally:
        await engine.dispose()


async def wait_for_database(engine: AsyncEngine, timeout: float = 60.0) -> None:
    """Wait until PostgreSQL answers, so a service started beside its database does not crash."""
    # PostgreSQL starting up or recovering answers with an error, not silence: wait for that
    # too, but let a wrong password or database name stop the start at once.
    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(is_transient),
            wait=wait_fixed(0.5),
            stop=stop_after_delay(timeout),
            reraise=True,
        ):
            with attempt:
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
    except Exception as error:
        if not is_transient(error):
            raise
        raise RuntimeError(f"PostgreSQL did not answer within {timeout:.0f}s: {error}") from error
