"""The routes' shared dependencies: a session and a unit of work open around the route and close
after it (rolled back when it fails), and the role checks every service's routes use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from shared.dependencies import Principal, SessionDep, UnitOfWorkDep, require_manager


class _Runtime:
    """Stands for the ServiceRuntime: records what the dependencies open and how they close."""

    def __init__(self) -> None:
        self.events: list[str] = []

    @asynccontextmanager
    async def _opened(self, kind: str) -> AsyncIterator[Any]:
        self.events.append(f"{kind} open")
        try:
            yield SimpleNamespace(kind=kind)
        except BaseException as error:
            self.events.append(f"{kind} closed by {type(error).__name__}")
            raise
        self.events.append(f"{kind} closed")

    def sessions(self) -> Any:
        return self._opened("session")

    def unit_of_work(self) -> Any:
        return self._opened("unit of work")


def _app(runtime: _Runtime) -> FastAPI:
    app = FastAPI()
    app.state.runtime = runtime

    @app.middleware("http")
    async def answered(request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        runtime.events.append("response")
        return response

    @app.get("/read")
    async def read(session: SessionDep) -> dict[str, str]:
        runtime.events.append("route")
        return {"kind": session.kind}  # type: ignore[attr-defined]

    @app.post("/change/{key}")
    async def change(key: str, uow: UnitOfWorkDep) -> dict[str, str]:
        runtime.events.append("route")
        raise HTTPException(404, f"No thing {key!r}.")

    return app


def test_a_session_opens_for_the_route_and_closes_before_the_response() -> None:
    runtime = _Runtime()
    response = TestClient(_app(runtime)).get("/read")
    assert response.status_code == 200
    assert response.json() == {"kind": "session"}
    # Closed before the answer leaves: the connection goes back to the pool at once.
    assert runtime.events == ["session open", "route", "session closed", "response"]


def test_a_route_that_fails_closes_its_unit_of_work_by_the_error_and_keeps_its_answer() -> None:
    runtime = _Runtime()
    response = TestClient(_app(runtime)).post("/change/x")
    assert response.status_code == 404
    assert response.json() == {"detail": "No thing 'x'."}
    assert runtime.events == [
        "unit of work open",
        "route",
        "unit of work closed by HTTPException",
        "response",
    ]


def test_only_the_manager_or_an_administrator_passes_require_manager() -> None:
    require_manager(Principal("ada@example.com", "project_manager"), "Ada@example.com", "no")
    require_manager(Principal("pmo-admin", "pmo_admin"), "grace@example.com", "no")
    for caller in (
        Principal("ada@example.com", "project_manager"),
        Principal("grace@example.com", "viewer"),
    ):
        with pytest.raises(HTTPException) as refused:
            require_manager(caller, "grace@example.com", "only grace's manager")
        assert refused.value.status_code == 403
        assert refused.value.detail == "only grace's manager"
