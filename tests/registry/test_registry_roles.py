"""The role rules on every endpoint of the registry, from its route table.

- no token, or an invalid one: 401 everywhere;
- viewer: reads (what-if included: it changes nothing), 403 on every change;
- project_manager: reads, proposes projects (as their manager), changes only their own projects,
  never the manager or the key-project flag;
- pmo_admin: everything, and alone re-baselines, records gate reviews, defines programs and
  places projects in them.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
import pytest
from fastapi import FastAPI

from services.registry.entrypoints.api import router
from shared.security import Role
from tests.conftest import bearer
from tests.harness import RunningService, detail_text
from tests.registry.conftest import charter

Rule = Literal["read", "propose", "manage_own", "admin"]

ROUTES: dict[tuple[str, str], Rule] = {
    ("GET", "/projects"): "read",
    ("POST", "/projects"): "propose",
    ("GET", "/projects/{project_id}"): "read",
    ("PATCH", "/projects/{project_id}"): "manage_own",
    ("POST", "/projects/{project_id}/transitions"): "manage_own",
    ("GET", "/projects/{project_id}/history"): "read",
    ("POST", "/projects/{project_id}/baselines"): "admin",
    ("GET", "/projects/{project_id}/baselines"): "read",
    ("GET", "/objectives"): "read",
    ("GET", "/strategies"): "read",
    ("GET", "/portfolio"): "read",
    ("POST", "/portfolio/what-if"): "read",
    ("GET", "/stage-models"): "read",
    ("GET", "/reports/portfolio"): "read",
    ("GET", "/projects/{project_id}/gates"): "read",
    ("POST", "/projects/{project_id}/deliverables"): "manage_own",
    ("POST", "/projects/{project_id}/gate-reviews"): "admin",
    ("POST", "/projects/{project_id}/lessons"): "manage_own",
    ("GET", "/projects/{project_id}/lessons"): "read",
    ("GET", "/projects/{project_id}/lesson-suggestions"): "read",
    ("GET", "/lessons"): "read",
    ("GET", "/programs"): "read",
    ("POST", "/programs"): "admin",
    ("GET", "/programs/{program_id}"): "read",
    ("PATCH", "/programs/{program_id}"): "admin",
    ("GET", "/programs/{program_id}/roll-up"): "read",
    ("PUT", "/projects/{project_id}/program"): "admin",
}
PROGRAM = "PGM-ROLES"

PM = "ada.lovelace@example.com"
STRATEGY = {
    "strategy_version": 1,
    "effective_date": "2026-07-01",
    "objectives": [{"objective_id": "growth", "name": "Growth", "weight": 1}],
}


def test_the_table_covers_every_route_of_the_registry() -> None:
    app = FastAPI()
    app.include_router(router)
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    assert routes == set(ROUTES)


def request_for(method: str, path: str, project_id: str, serial: int) -> dict[str, Any]:
    """A well-formed call of the route on `project_id`, so only the role decides the answer."""
    url = path.replace("{project_id}", project_id).replace("{program_id}", PROGRAM)
    body: dict[str, Any] | None = None
    if (method, path) == ("POST", "/projects"):
        body = charter(f"PRJ-NEW-{serial}", manager=PM)
    elif (method, path) == ("POST", "/programs"):
        body = {"program_id": f"PGM-{serial}-{project_id}", "name": "Carve-out"}
    elif (method, path) == ("PATCH", "/programs/{program_id}"):
        body = {"description": f"Description {serial}"}
    elif path.endswith("/program"):
        body = {"program_id": PROGRAM}
    elif method == "PATCH":
        body = {"sponsor": f"Sponsor {serial}"}
    elif path.endswith("/baselines") and method == "POST":
        body = {"budget": 120_000 + serial, "reason": "scope change approved by the board"}
    elif path.endswith("/transitions"):
        body = {"to": "approved"}
    elif path == "/portfolio/what-if":
        body = STRATEGY
    elif path.endswith("/deliverables"):
        body = {"name": "business_case", "evidence": f"https://docs.example.com/case-{serial}"}
    elif path.endswith("/gate-reviews"):
        body = {"to": "approved", "decision": "failed", "evidence": "not convincing yet"}
    elif path.endswith("/lessons") and method == "POST":
        body = {"title": f"Lesson {serial}", "what_happened": "Vendors delivered late."}
    elif path == "/lessons":
        url = "/lessons?q=vendor"
    return {"method": method, "url": url, "json": body}


def allowed(answer: httpx.Response) -> bool:
    # Not refused for the role; the business answer (200, 201, 404 without a strategy,
    # 409 for a repeated move) is the endpoint's own.
    return answer.status_code not in (401, 403) and answer.status_code < 500


@pytest.mark.parametrize("role", ["anonymous", "viewer", "project_manager", "pmo_admin"])
async def test_each_role_on_each_endpoint(
    role: Role | Literal["anonymous"], registry: RunningService, admin_headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=registry.base_url, timeout=30) as client:
        for project_id, manager in (("PRJ-OWN", PM), ("PRJ-OTHER", "someone.else@example.com")):
            created = await client.post(
                "/projects", json=charter(project_id, manager=manager), headers=admin_headers
            )
            assert created.status_code == 201, created.text
        defined = await client.post(
            "/programs", json={"program_id": PROGRAM, "name": "Merger"}, headers=admin_headers
        )
        assert defined.status_code == 201, defined.text

        headers = {} if role == "anonymous" else bearer(role, PM)
        problems: list[str] = []
        for serial, ((method, path), rule) in enumerate(sorted(ROUTES.items())):
            for project_id in ("PRJ-OWN", "PRJ-OTHER"):
                call = request_for(method, path, project_id, serial)
                answer = await client.request(**call, headers=headers)
                if role == "anonymous":
                    expected = "401"
                    ok = answer.status_code == 401
                    forged = await client.request(**call, headers={"Authorization": "Bearer x"})
                    ok = ok and forged.status_code == 401
                elif role == "pmo_admin" or rule == "read":
                    expected, ok = "allowed", allowed(answer)
                elif role == "viewer" or rule == "admin":
                    expected, ok = "403", answer.status_code == 403
                elif rule == "propose" or project_id == "PRJ-OWN":
                    expected, ok = "allowed", allowed(answer)
                else:  # a project manager on someone else's project
                    expected, ok = "403", answer.status_code == 403
                if not ok:
                    problems.append(
                        f"{role} {method} {call['url']}: expected {expected}, "
                        f"got {answer.status_code} {answer.text[:200]}"
                    )
        assert not problems, "\n".join(problems)


async def test_a_project_manager_proposes_as_manager_and_cannot_take_admin_decisions(
    registry: RunningService, admin_headers: dict[str, str]
) -> None:
    pm = bearer("project_manager", PM)
    async with httpx.AsyncClient(base_url=registry.base_url, timeout=30) as client:
        mine = charter("PRJ-MINE")
        del mine["manager"]
        created = await client.post("/projects", json=mine, headers=pm)
        assert created.status_code == 201, created.text
        assert created.json()["manager"] == PM
        assert created.json()["registered_by"] == PM

        theirs = await client.post(
            "/projects", json=charter("PRJ-THEIRS", manager="bob@example.com"), headers=pm
        )
        assert theirs.status_code == 403
        assert "proposes projects they manage" in detail_text(theirs)
        key = await client.post("/projects", json=charter("PRJ-KEY", key_project=True), headers=pm)
        assert key.status_code == 403

        handover = await client.patch(
            "/projects/PRJ-MINE", json={"manager": "bob@example.com"}, headers=pm
        )
        assert handover.status_code == 403
        assert detail_text(handover) == "Only a PMO administrator changes manager."
        same = await client.patch("/projects/PRJ-MINE", json={"manager": PM}, headers=pm)
        assert same.status_code == 200

        by_admin = await client.patch(
            "/projects/PRJ-MINE", json={"manager": "bob@example.com"}, headers=admin_headers
        )
        assert by_admin.status_code == 200
        lost = await client.patch("/projects/PRJ-MINE", json={"sponsor": "CFO"}, headers=pm)
        assert lost.status_code == 403
        assert "managed by bob@example.com" in detail_text(lost)
