"""Allocation's API and CLI against the real database: CSV import re-solves, what-if changes
nothing, roles are enforced."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import select
from typer.testing import CliRunner

from services.allocation.adapters.tables import PendingResolutionRow
from services.allocation.domain.requests import iso_week
from services.allocation.entrypoints.cli import resources_app
from shared.messaging.tables import outbox
from shared.settings import Settings
from tests.conftest import ServiceStarter, bearer
from tests.harness import Enterprise, RunningService, eventually

pytestmark = pytest.mark.e2e

_MONDAY = date.today() - timedelta(days=date.today().weekday())
START = _MONDAY + timedelta(weeks=3)
END = START + timedelta(weeks=1, days=4)
WEEKS = [iso_week(START), iso_week(START + timedelta(weeks=1))]
MANAGER = "ada.lovelace@example.com"


def registered(project_id: str, manager: str = MANAGER) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "name": f"Project {project_id}",
        "business_unit": "Data",
        "manager": manager,
        "start_date": "2026-01-01",
        "planned_finish_date": "2028-12-31",
        "budget": 100000,
        "currency": "EUR",
        "lifecycle": "active",
    }


def request(request_id: str, project_id: str, skill: str = "data-engineer") -> dict[str, Any]:
    return {
        "request_id": request_id,
        "project_id": project_id,
        "skill": skill,
        "fte": 1.0,
        "start": START.isoformat(),
        "end": END.isoformat(),
    }


@pytest.fixture
async def allocation(start_service: ServiceStarter) -> RunningService:
    return await start_service("allocation", allocation_resolution_poll_s=0.5)


@pytest.fixture
async def api(
    allocation: RunningService, admin_headers: dict[str, str]
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=allocation.base_url, headers=admin_headers) as client:
        yield client


async def status_of(api: httpx.AsyncClient, request_id: str) -> str | None:
    response = await api.get(f"/requests/{request_id}")
    return response.json()["status"] if response.status_code == 200 else None


async def test_csv_import_fills_the_pool_and_re_solves_like_an_api_change(
    api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings, tmp_path: Path
) -> None:
    await enterprise.send("project-registered", registered("PRJ-D"))
    await enterprise.send("resource-requested", request("REQ-D", "PRJ-D"))

    async def denied() -> bool:
        return await status_of(api, "REQ-D") == "denied"

    await eventually(denied, timeout=45, what="REQ-D denied while nobody has the skill")
    reason = (await api.get("/requests/REQ-D")).json()["reason"]
    assert "no one in the resource pool has that skill" in reason

    broken = tmp_path / "broken.csv"
    broken.write_text(
        "resource_id,name,skills,capacity_fte\n"
        "res-ola,Ola Nordmann,data-engineer,1\n"
        "res-kim,Kim Lee,,abc\n"
        "res-ola,Ola Again,python,1\n"
    )
    runner = CliRunner()
    refused = await asyncio.to_thread(
        runner.invoke, resources_app, ["import", str(broken)], obj=settings
    )
    assert refused.exit_code == 1
    assert (
        f"{broken}: line 3: skills is empty (list them separated by ';'); capacity_fte must be "
        "a number like 1 or 0.5 (got 'abc')" in refused.output
    )
    assert f"{broken}: line 4: resource_id 'res-ola' is already on line 2" in refused.output
    assert (await api.get("/resources")).json() == []  # all lines or none

    good = tmp_path / "pool.csv"
    good.write_text(
        "resource_id,name,skills,capacity_fte\n"
        "res-ola,Ola Nordmann,data-engineer;python,1\n"
        '"res-kim","Lee, Kim",architect,0.5\n'
    )
    imported = await asyncio.to_thread(
        runner.invoke, resources_app, ["import", str(good)], obj=lambda: settings
    )
    assert imported.exit_code == 0, imported.output
    assert f"{good}: 2 added, 0 updated, 0 unchanged" in imported.output

    async def granted() -> bool:
        return await status_of(api, "REQ-D") == "granted"

    await eventually(granted, timeout=45, what="REQ-D granted after the import")
    pool = {r["resource_id"]: r for r in (await api.get("/resources")).json()}
    assert pool["res-kim"]["name"] == "Lee, Kim"
    assert pool["res-ola"]["skills"] == ["data-engineer", "python"]
    runs = (await api.get("/resolutions")).json()
    assert runs[0]["causes"] == ["resource pool imported from CSV (2 added, 0 updated)"]
    assert runs[0]["changed"] == 1

    again = await asyncio.to_thread(
        runner.invoke, resources_app, ["import", str(good)], obj=settings
    )
    assert f"{good}: 0 added, 0 updated, 2 unchanged" in again.output


async def _snapshot(api: httpx.AsyncClient, allocation: RunningService) -> dict[str, Any]:
    async with allocation.runtime.sessions() as session:
        messages = (await session.exec(select(func.count()).select_from(outbox))).one()
        pending = (await session.exec(select(func.count()).select_from(PendingResolutionRow))).one()
    return {
        "requests": (await api.get("/requests")).json(),
        "allocations": (await api.get("/allocations")).json(),
        "conflicts": (await api.get("/conflicts")).json(),
        "projects": (await api.get("/projects")).json(),
        "outbox": messages,
        "pending": pending,
    }


async def test_what_if_shows_a_draft_strategy_and_a_hypothetical_request_and_changes_nothing(
    api: httpx.AsyncClient, allocation: RunningService, enterprise: Enterprise
) -> None:
    person = {
        "resource_id": "res-ola",
        "name": "Ola",
        "skills": ["data-engineer"],
        "capacity_fte": 1,
    }
    assert (await api.post("/resources", json=person)).status_code == 201
    await enterprise.send("project-registered", registered("PRJ-X"))
    await enterprise.send("project-registered", registered("PRJ-Y", manager="bob@example.com"))
    await enterprise.send(
        "portfolio-reprioritized",
        {
            "strategy_version": 3,
            "projects": [
                {"project_id": "PRJ-Y", "score": 0.8, "rank": 1, "action": "continue", "why": "-"},
                {"project_id": "PRJ-X", "score": 0.3, "rank": 2, "action": "continue", "why": "-"},
            ],
        },
        key="3",
    )
    await enterprise.send("resource-requested", request("REQ-X", "PRJ-X"))
    await enterprise.send("resource-requested", request("REQ-Y", "PRJ-Y"))

    async def settled() -> bool:
        y, x = await status_of(api, "REQ-Y"), await status_of(api, "REQ-X")
        open_conflicts = (await api.get("/conflicts", params={"state": "resolved"})).json()
        runs = (await api.get("/resolutions")).json()
        return (y, x) == ("granted", "denied") and len(open_conflicts) == 1 and bool(runs)

    await eventually(settled, timeout=45, what="PRJ-Y holding Ola")
    await asyncio.sleep(1)  # let any last re-resolution finish before taking the snapshot
    before = await _snapshot(api, allocation)

    draft = {
        "ranking": [
            {"project_id": "PRJ-X", "rank": 1, "score": 0.9},
            {"project_id": "PRJ-Y", "rank": 2},
        ],
        "requests": [request("REQ-HYPO", "PRJ-X") | {"fte": 0.5}],
    }
    answer = await api.post("/what-if", json=draft)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    changes = {c["request_id"]: c for c in result["changes"]}
    assert changes["REQ-X"]["before"]["fte_granted"] == 0.0
    assert changes["REQ-X"]["after"]["fte_granted"] == 1.0
    assert changes["REQ-Y"]["after"]["status"] == "denied"
    assert [h["status"] for h in result["hypothetical"]] == ["denied"]
    [conflict] = result["conflicts"]
    assert conflict["new"] is True
    assert [w["request_id"] for w in conflict["winners"]] == ["REQ-X"]
    assert {lo["request_id"] for lo in conflict["losers"]} == {"REQ-HYPO", "REQ-Y"}
    assert "PRJ-X ranks 1 and PRJ-Y ranks 2" in conflict["rationale"]

    # Re-scored in the same order: the same outcome, explained anew, is no new conflict.
    rescored = await api.post(
        "/what-if",
        json={
            "ranking": [
                {"project_id": "PRJ-Y", "rank": 1, "score": 0.95},
                {"project_id": "PRJ-X", "rank": 2, "score": 0.1},
            ]
        },
    )
    assert rescored.status_code == 200, rescored.text
    [same] = rescored.json()["conflicts"]
    assert "score 0.95" in same["rationale"]
    assert same["new"] is False
    assert rescored.json()["changes"] == []

    terminate = await api.post("/what-if", json={"lifecycle": {"PRJ-Y": "terminated"}})
    assert {c["request_id"]: c["after"]["status"] for c in terminate.json()["changes"]} == {
        "REQ-X": "granted",
        "REQ-Y": "denied",
    }

    await asyncio.sleep(1)  # a write, had there been one, would have been made by now
    assert await _snapshot(api, allocation) == before


async def test_roles_reading_for_everyone_changes_for_administrators_what_if_for_own_projects(
    api: httpx.AsyncClient, allocation: RunningService, enterprise: Enterprise
) -> None:
    async with httpx.AsyncClient(base_url=allocation.base_url) as anonymous:
        assert (await anonymous.get("/resources")).status_code == 401
        assert (await anonymous.get("/utilisation")).status_code == 401
        assert (
            await anonymous.get("/resources", headers={"Authorization": "Bearer forged"})
        ).status_code == 401
        viewer, manager = bearer("viewer"), bearer("project_manager", MANAGER)
        for reader in (viewer, manager):
            for path in ("/resources", "/requests", "/allocations", "/utilisation", "/conflicts"):
                assert (await anonymous.get(path, headers=reader)).status_code == 200, path
        person = {"resource_id": "res-1", "name": "One", "skills": ["x"], "capacity_fte": 1}
        for caller in (viewer, manager):
            assert (
                await anonymous.post("/resources", json=person, headers=caller)
            ).status_code == 403
            assert (
                await anonymous.patch("/resources/res-1", json={"capacity_fte": 0}, headers=caller)
            ).status_code == 403
        assert (await api.post("/resources", json=person)).status_code == 201
        assert (await api.post("/resources", json=person)).status_code == 409
        assert (await api.patch("/resources/nobody", json={"name": "N"})).status_code == 404

        await enterprise.send("project-registered", registered("PRJ-OWN"))
        await enterprise.send("project-registered", registered("PRJ-OTHER", "eve@example.com"))

        async def known() -> bool:
            return len((await api.get("/projects")).json()) == 2

        await eventually(known, timeout=45, what="both projects known")
        own = {"requests": [request("REQ-1", "PRJ-OWN", skill="x")]}
        other = {"requests": [request("REQ-2", "PRJ-OTHER", skill="x")]}
        ranking = {"ranking": [{"project_id": "PRJ-OWN", "rank": 1}]}
        # A what-if changes nothing: every role may run one, as the registry's (one rule).
        for caller in (viewer, manager):
            for body in (own, other, ranking):
                tried = await anonymous.post("/what-if", json=body, headers=caller)
                assert tried.status_code == 200, tried.text
        mine = await anonymous.post("/what-if", json=own, headers=manager)
        assert mine.json()["hypothetical"][0]["status"] == "granted"
        assert (await anonymous.post("/what-if", json=own)).status_code == 401
        assert (await api.post("/what-if", json=ranking)).status_code == 200
        assert (await api.post("/what-if", json={})).status_code == 422
