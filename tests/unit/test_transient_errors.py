"""Which errors are the infrastructure's (the batch is retried) and which are the work's own."""

from __future__ import annotations

import asyncpg
import pytest
import sqlalchemy.exc

from shared.database import is_transient

pytestmark = pytest.mark.fast


def chained(outer: Exception, inner: BaseException) -> Exception:
    try:
        try:
            raise inner
        except BaseException as error:
            raise outer from error
    except Exception as raised:
        return raised


def wrapped(inner: BaseException) -> Exception:
    return sqlalchemy.exc.DBAPIError("SELECT 1", {}, inner)


TRANSIENT = [
    asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
    asyncpg.exceptions.SerializationError("could not serialize access"),
    asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
    asyncpg.exceptions.DiskFullError("could not extend file"),
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError(),
    sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
    sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionResetError("gone")),
    wrapped(asyncpg.exceptions.CannotConnectNowError("starting up")),
    chained(RuntimeError("outbox write failed"), asyncpg.exceptions.TooManyConnectionsError("x")),
]

THE_WORKS_OWN = [
    asyncpg.exceptions.UniqueViolationError("duplicate key value"),
    asyncpg.exceptions.InvalidPasswordError("password authentication failed"),
    asyncpg.exceptions.InvalidCatalogNameError('database "pmo" does not exist'),
    asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence"),
    sqlalchemy.exc.IntegrityError("INSERT", {}, ValueError("duplicate")),
    KeyError("objective"),
    ValueError("bad"),
    chained(RuntimeError("handler"), KeyError("objective")),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda error: type(error).__name__)
def test_infrastructure_errors_are_transient_whichever_layer_raises_them(
    error: BaseException,
) -> None:
    assert is_transient(error)


@pytest.mark.parametrize("error", THE_WORKS_OWN, ids=lambda error: type(error).__name__)
def test_errors_of_the_work_itself_are_not(error: BaseException) -> None:
    assert not is_transient(error)
