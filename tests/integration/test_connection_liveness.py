"""A service's pooled database connections after the server dropped them: pinged only when idle."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import database
from shared.database import create_engine, is_transient


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        pid: int = (await connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
    return pid


async def _terminate(database_url: str, pid: int) -> None:
    other = create_engine(database_url, "registry", pool_size=1, application="test-killer")
    try:
        async with other.connect() as connection:
            await connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await other.dispose()


@pytest.mark.parametrize(
    ("idle_after_s", "first_use_fails"),
    [
        # Every pooled connection counts as idle: it is pinged at checkout, and the dead one is
        # replaced by a fresh one without the caller seeing an error.
        (0.0, False),
        # Used a moment ago, so not pinged: its first statement fails, as a transient error (a
        # consumer rolls the batch back and has it delivered again), and the next checkout
        # gets a fresh connection.
        (3600.0, True),
    ],
    ids=["idle-pinged-and-replaced", "just-used-fails-once-as-transient"],
)
async def test_a_pooled_connection_the_server_dropped_is_replaced(
    database_url: str, monkeypatch: pytest.MonkeyPatch, idle_after_s: float, first_use_fails: bool
) -> None:
    monkeypatch.setattr(database, "PING_IDLE_AFTER_S", idle_after_s)
    engine = create_engine(database_url, "registry", pool_size=1, application="test")
    try:
        dropped = await _backend_pid(engine)
        await _terminate(database_url, dropped)
        if first_use_fails:
            with pytest.raises(sqlalchemy.exc.DBAPIError) as failure:
                await _backend_pid(engine)
            assert is_transient(failure.value), repr(failure.value)
        assert await _backend_pid(engine) != dropped
    finally:
        await engine.dispose()
