"""Programs against the real broker and database: membership, directives, reports, end dates.

- a charter naming an unknown program creates it (named by its id) and puts the project in it;
- a strategy directive aimed at a program pauses its open projects and nothing else;
- the status report for one program holds its projects only;
- a temporary program past its end date takes no new project; a project leaves its program;
- each membership change is announced as `project-program-changed`.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.settings import Settings
from tests.conftest import bearer
from tests.harness import Enterprise, RunningService, detail_text, eventually
from tests.registry.conftest import charter, project_when, published

OBJECTIVES = [{"objective_id": "growth", "name": "Grow", "weight": 1}]


def contributes(**changes: Any) -> dict[str, Any]:
    return {"objectives": [{"objective_id": "growth", "contribution": 0.5}], **changes}


async def test_a_directive_aimed_at_a_program_moves_its_open_projects_only(
    registry: RunningService, api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    await enterprise.send("project-started", charter("PG-1", **contributes(program_id="CARVE-OUT")))
    await enterprise.send("project-started", charter("PG-2", **contributes(program_id="CARVE-OUT")))
    await enterprise.send("project-started", charter("PG-OTHER", **contributes()))
    for project_id in ("PG-1", "PG-2"):
        await project_when(api, project_id, f"{project_id} in CARVE-OUT", program_id="CARVE-OUT")
    await project_when(api, "PG-OTHER", "PG-OTHER registered", lifecycle="active")

    # An unknown program named by a charter exists from then on, named by its id.
    program = (await api.get("/programs/CARVE-OUT")).json()
    assert (program["name"], program["project_ids"], program["temporary"]) == (
        "CARVE-OUT",
        ["PG-1", "PG-2"],
        False,
    )
    listed = await api.get("/projects", params={"program_id": "CARVE-OUT"})
    assert [item["project_id"] for item in listed.json()["items"]] == ["PG-1", "PG-2"]

    await enterprise.send(
        "strategy-changed",
        {
            "strategy_version": 1,
            "effective_date": "2026-07-01",
            "objectives": OBJECTIVES,
            "directives": [
                {"action": "pause", "program_id": "CARVE-OUT", "reason": "Carve-out on hold"}
            ],
        },
    )
    for project_id in ("PG-1", "PG-2"):
        await project_when(api, project_id, f"{project_id} paused", lifecycle="on_hold")
    strategy = (await api.get("/objectives")).json()
    effects = {e["project_id"]: e for e in strategy["directive_effects"]}
    assert set(effects) == {"PG-1", "PG-2"}
    assert {e["target"] for e in effects.values()} == {"program CARVE-OUT"}
    assert strategy["directives"][0]["program_id"] == "CARVE-OUT"
    other = (await api.get("/projects/PG-OTHER")).json()
    assert other["lifecycle"] == "active"

    moves = await published(settings, "project-lifecycle-changed", at_least=2)
    assert sorted((m["project_id"], m["to"]) for m in moves) == [
        ("PG-1", "on_hold"),
        ("PG-2", "on_hold"),
    ]


async def test_the_status_report_for_a_program_holds_its_projects_only(
    registry: RunningService, api: httpx.AsyncClient, enterprise: Enterprise
) -> None:
    defined = await api.post(
        "/programs", json={"program_id": "ERP-2027", "name": "ERP replacement"}
    )
    assert defined.status_code == 201, defined.text
    await enterprise.send("project-started", charter("RP-1", program_id="ERP-2027"))
    await enterprise.send("project-started", charter("RP-2"))
    await project_when(api, "RP-1", "RP-1 in ERP-2027", program_id="ERP-2027")
    await project_when(api, "RP-2", "RP-2 registered", lifecycle="active")

    report = (await api.get("/reports/portfolio", params={"program_id": "ERP-2027"})).json()
    assert [row["project_id"] for row in report["projects"]] == ["RP-1"]
    assert report["projects"][0]["program_id"] == "ERP-2027"
    assert report["program"] == {
        "program_id": "ERP-2027",
        "name": "ERP replacement",
        "end_date": None,
    }
    whole = (await api.get("/reports/portfolio")).json()
    assert {row["project_id"] for row in whole["projects"]} == {"RP-1", "RP-2"}
    assert "program" not in whole

    as_csv = await api.get("/reports/portfolio", params={"program_id": "ERP-2027", "format": "csv"})
    assert 'filename="program-ERP-2027-' in as_csv.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [(row["project_id"], row["program_id"]) for row in rows] == [("RP-1", "ERP-2027")]
    page = await api.get("/reports/portfolio", params={"program_id": "ERP-2027", "format": "html"})
    assert "<h1>Program ERP replacement (ERP-2027) status report</h1>" in page.text

    missing = await api.get("/reports/portfolio", params={"program_id": "NOPE"})
    assert missing.status_code == 404
    assert missing.json()["detail"] == "No program 'NOPE'."


async def test_a_temporary_program_past_its_end_takes_no_project_and_a_project_leaves_its_program(
    registry: RunningService, api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    today = datetime.now(UTC).date()
    defined = await api.post(
        "/programs",
        json={
            "program_id": "MERGER-24",
            "name": "Merger integration",
            "end_date": (today + timedelta(days=30)).isoformat(),
        },
    )
    assert defined.status_code == 201, defined.text
    again = await api.post("/programs", json={"program_id": "MERGER-24", "name": "Again"})
    assert again.status_code == 409

    await enterprise.send("project-started", charter("TP-1"))
    await enterprise.send("project-started", charter("TP-2"))
    await project_when(api, "TP-1", "TP-1 registered", lifecycle="active")
    await project_when(api, "TP-2", "TP-2 registered", lifecycle="active")
    joined = await api.put("/projects/TP-1/program", json={"program_id": "MERGER-24"})
    assert joined.status_code == 200, joined.text

    # The merger closes: its end date is moved to yesterday.
    ended = await api.patch(
        "/programs/MERGER-24", json={"end_date": (today - timedelta(days=1)).isoformat()}
    )
    assert ended.status_code == 200, ended.text
    assert (ended.json()["temporary"], ended.json()["ended"]) == (True, True)
    refused = await api.put("/projects/TP-2/program", json={"program_id": "MERGER-24"})
    assert refused.status_code == 409
    assert "ended on" in detail_text(refused)
    roll_up = (await api.get("/programs/MERGER-24/roll-up")).json()
    assert roll_up["program"]["ended"] is True
    assert [project["project_id"] for project in roll_up["projects"]] == ["TP-1"]
    # Not assessed yet: its budget stands in BAC and EAC, nothing is measured.
    assert (roll_up["budget_at_completion"], roll_up["estimate_at_completion"]) == (
        100_000,
        100_000,
    )
    assert roll_up["earned_value"] == 0
    assert roll_up["not_assessed"] == ["TP-1"]

    left = await api.put("/projects/TP-1/program", json={"program_id": None})
    assert left.status_code == 200, left.text
    assert left.json()["program_id"] is None
    assert (await api.get("/programs/MERGER-24")).json()["project_ids"] == []
    history = (await api.get("/projects/TP-1/history")).json()["items"]
    assert [(h["before"], h["after"]) for h in history if h["change"] == "program"] == [
        ({"program_id": None}, {"program_id": "MERGER-24"}),
        ({"program_id": "MERGER-24"}, {"program_id": None}),
    ]

    changes = await published(settings, "project-program-changed", at_least=2)
    assert [(c["project_id"], c["previous_program_id"], c["program_id"]) for c in changes] == [
        ("TP-1", None, "MERGER-24"),
        ("TP-1", "MERGER-24", None),
    ]


async def test_program_requests_are_checked_and_reserved_to_administrators(
    registry: RunningService, api: httpx.AsyncClient, enterprise: Enterprise
) -> None:
    await enterprise.send("project-started", charter("CK-1"))
    await project_when(api, "CK-1", "CK-1 registered", lifecycle="active")
    unknown = await api.put("/projects/CK-1/program", json={"program_id": "NOWHERE"})
    assert unknown.status_code == 422
    assert detail_text(unknown) == "No program 'NOWHERE': define it first (POST /programs)."
    no_project = await api.put("/projects/NONE/program", json={"program_id": None})
    assert no_project.status_code == 404
    assert (await api.get("/programs/NOWHERE")).status_code == 404
    assert (await api.get("/programs/NOWHERE/roll-up")).status_code == 404
    emptied = await api.post("/programs", json={"program_id": "P", "name": "P"})
    assert emptied.status_code == 201
    assert (await api.patch("/programs/P", json={"name": None})).status_code == 422
    misspelt = await api.post("/programs", json={"program_id": "Q", "name": "Q", "end": "2026"})
    assert misspelt.status_code == 422

    async with httpx.AsyncClient(
        base_url=registry.base_url, headers=bearer("project_manager"), timeout=30
    ) as manager:
        assert (await manager.get("/programs")).status_code == 200
        denied = await manager.post("/programs", json={"program_id": "R", "name": "R"})
        assert denied.status_code == 403
        moved = await manager.put("/projects/CK-1/program", json={"program_id": "P"})
        assert moved.status_code == 403

    async def listed() -> list[str] | None:
        programs = (await api.get("/programs")).json()
        return [p["program_id"] for p in programs] or None

    assert await eventually(listed, what="the programs listed") == ["P"]
