"""What a route asks FastAPI for: the running service, a session, a unit of work, the caller.

Every service's routes declare these as parameters (`session: SessionDep`, `_: Reader`) instead of
reaching into `request.app.state`; FastAPI opens and closes them around the route. The session
and the unit of work close when the route function ends, before the response is sent
(`scope="function"`), so a route's connection goes back to the pool as early as it did when each
route opened its own, and an error raised in the route rolls the unit of work back.

The callers (`Reader`, `ProjectManager`, `Admin`, `require_role`) are defined with the tokens in
`shared.security` and offered here too, so a route module imports what it asks for from one
place; so are the page sizes of listings and the one not-found (`row_or_404`) and not-your-project
(`require_manager`) answer of every service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Query, Request, status
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.messaging.unit_of_work import UnitOfWork
from shared.runtime import ServiceRuntime
from shared.security import Admin, Principal, ProjectManager, Reader, require_role
from shared.settings import Settings

__all__ = [
    "Admin",
    "LargePageSize",
    "PageSize",
    "Principal",
    "ProjectManager",
    "Reader",
    "RuntimeDep",
    "SessionDep",
    "SettingsDep",
    "UnitOfWorkDep",
    "require_manager",
    "require_role",
    "row_or_404",
]

RowT = TypeVar("RowT")


PageSize = Annotated[int, Query(ge=1, le=500)]
"""How many items a listing answers at most (`limit`): 1 to 500; each route sets its default."""
LargePageSize = Annotated[int, Query(ge=1, le=1000)]
"""`limit` of a listing of small items: 1 to 1000."""


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[ServiceRuntime, Depends(_runtime)]
"""The running service instance (its settings, engine, sessions, units of work)."""


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(_settings)]
"""The running service's settings."""


async def _session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async with runtime.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
"""A database session for reads (no transaction opened: a route that writes begins its own, or
asks for a `UnitOfWorkDep`). It connects on its first query."""


async def _unit_of_work(runtime: RuntimeDep) -> AsyncIterator[UnitOfWork]:
    async with runtime.unit_of_work() as uow:
        yield uow


UnitOfWorkDep = Annotated[UnitOfWork, Depends(_unit_of_work, scope="function")]
"""An open unit of work (one transaction, events through the outbox): the route commits it with
`await uow.commit()`; anything not committed when the route ends, or ends by an error, is rolled
back."""


async def row_or_404(
    session: AsyncSession, table: type[RowT], key: Any, missing: str, *, lock: bool = False
) -> RowT:
    """The row of `table` whose primary key is `key` (locked FOR UPDATE with `lock`).

    Raises HTTPException 404 with `missing` as its detail when there is none: the one not-found
    answer of every service's routes.
    """
    row = await session.get(table, key, with_for_update=lock or None)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, missing)
    return row


def require_manager(caller: Principal, manager: str | None, refusal: str) -> None:
    """Let `caller` on only if they may change a project run by `manager` (an administrator,
    or that project's manager: `Principal.may_manage`).

    Raises HTTPException 403 with `refusal` as its detail otherwise.
    """
    if not caller.may_manage(manager):
        raise HTTPException(status.HTTP_403_FORBIDDEN, refusal)
