"""Stage gates with deliverables and reviews, and lessons learned, against the real broker and DB.

End to end from events: a lifecycle move refused at a gate for a missing deliverable (dead-
lettered with what is missing), passed after the deliverable and a gate review; a lesson
recorded at closure suggested to a new similar project; lessons found by full-text search.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from shared.settings import Settings
from tests.conftest import bearer
from tests.harness import Enterprise, RunningService, detail_text
from tests.registry.conftest import charter, dead_letters, project_when, published, status

PM = "grace.hopper@example.com"  # the manager in `charter`


@pytest.fixture
async def pm_api(registry: RunningService) -> Any:
    async with httpx.AsyncClient(
        base_url=registry.base_url, headers=bearer("project_manager", PM), timeout=30
    ) as client:
        yield client


async def history_of(api: httpx.AsyncClient, project_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await api.get(f"/projects/{project_id}/history")).json()["items"]
    return items


async def test_a_gate_refuses_a_move_until_its_deliverables_lessons_and_review_are_in(
    api: httpx.AsyncClient,
    pm_api: httpx.AsyncClient,
    enterprise: Enterprise,
    settings: Settings,
) -> None:
    growth = [{"objective_id": "growth", "contribution": 0.5}]
    await enterprise.send(
        "project-started", charter("PRJ-G1", methodology="stage_gate", objectives=growth)
    )
    await project_when(api, "PRJ-G1", "PRJ-G1 registered", lifecycle="active")
    early = await enterprise.send(
        "status-changed", status("PRJ-G1", lifecycle="completed", percent_complete=100)
    )
    refused = await dead_letters(settings, "status-changed")
    assert refused == {
        early: "rejected: PRJ-G1: the active -> completed gate of the stage_gate stage model is "
        "not satisfied: missing deliverable closure_report, lessons learned, a passed gate review"
    }
    gates = (await api.get("/projects/PRJ-G1/gates")).json()
    completion = next(gate for gate in gates["gates"] if gate["to"] == "completed")
    assert completion == {
        "to": "completed",
        "requires": {
            "deliverables": ["closure_report"],
            "requires_lessons": True,
            "requires_review": True,
        },
        "missing": ["deliverable closure_report", "lessons learned", "a passed gate review"],
    }

    # A reviewer cannot pass the gate on deliverables that are not there.
    premature = await api.post("/projects/PRJ-G1/gate-reviews", json={"to": "completed"})
    assert premature.status_code == 409
    assert detail_text(premature) == (
        "PRJ-G1: the active -> completed gate cannot pass: missing deliverable closure_report"
    )
    typo = await pm_api.post(
        "/projects/PRJ-G1/deliverables", json={"name": "closing_report", "evidence": "x"}
    )
    assert typo.status_code == 422
    assert detail_text(typo) == (
        "PRJ-G1: no gate of the stage_gate stage model requires a deliverable 'closing_report' "
        "(its deliverables: business_case, closure_report, project_management_plan)"
    )

    submitted = await pm_api.post(
        "/projects/PRJ-G1/deliverables",
        json={"name": "closure_report", "evidence": "https://docs.example.com/g1/closure.pdf"},
    )
    assert submitted.status_code == 201, submitted.text
    lesson = await pm_api.post(
        "/projects/PRJ-G1/lessons",
        json={
            "title": "Vendor delays held up the data migration",
            "what_happened": "The vendor delivered the extracts three weeks late.",
            "avoid": "Contracts without penalties for late delivery.",
            "repeat": "Weekly calls with the vendor's delivery lead.",
            "tags": ["Procurement", "vendors"],
        },
    )
    assert lesson.status_code == 201, lesson.text
    assert lesson.json()["tags"] == ["procurement", "vendors"]
    assert (lesson.json()["business_unit"], lesson.json()["methodology"]) == (
        "Operations",
        "stage_gate",
    )
    # Only an administrator reviews gates.
    by_pm = await pm_api.post("/projects/PRJ-G1/gate-reviews", json={"to": "completed"})
    assert by_pm.status_code == 403
    review = await api.post(
        "/projects/PRJ-G1/gate-reviews",
        json={"to": "completed", "evidence": "Closure board minutes 2026-12-15"},
    )
    assert review.status_code == 201, review.text
    assert review.json()["decision"] == "passed"
    assert review.json()["reviewer"] == "pmo-admin"
    assert review.json()["used_by"] is None
    gates = (await api.get("/projects/PRJ-G1/gates")).json()
    assert next(g for g in gates["gates"] if g["to"] == "completed")["missing"] == []

    channels = (await api.get("/asyncapi.json")).json()["channels"]
    assert any("gate-reviewed" in name for name in channels)
    assert any("lessons-suggested" in name for name in channels)
    reviewed = await published(settings, "gate-reviewed")
    assert len(reviewed) == 1
    assert {key: reviewed[0][key] for key in ("project_id", "from", "to", "decision")} == {
        "project_id": "PRJ-G1",
        "from": "active",
        "to": "completed",
        "decision": "passed",
    }
    assert reviewed[0]["reviewer"] == "pmo-admin"
    assert reviewed[0]["evidence"] == "Closure board minutes 2026-12-15"
    assert [(d["name"], d["evidence"], d["submitted_by"]) for d in reviewed[0]["deliverables"]] == [
        ("closure_report", "https://docs.example.com/g1/closure.pdf", PM)
    ]

    done = await enterprise.send(
        "status-changed",
        status("PRJ-G1", lifecycle="completed", percent_complete=100, as_of="2026-12-20"),
    )
    await project_when(api, "PRJ-G1", "PRJ-G1 completed", lifecycle="completed")
    changed = await published(settings, "project-lifecycle-changed")
    assert [(e["from"], e["to"], e["cause"]) for e in changed if e["project_id"] == "PRJ-G1"] == [
        ("active", "completed", done)
    ]
    # The review was used by the move that passed the gate.
    reviews = (await api.get("/projects/PRJ-G1/gates")).json()["reviews"]
    assert [(r["to"], r["used_by"]) for r in reviews] == [("completed", done)]
    history = await history_of(api, "PRJ-G1")
    assert [h["change"] for h in history] == [
        "registered",
        "deliverable",
        "lesson",
        "gate_review",
        "status",
        "lifecycle",
    ]
    assert history[3]["after"]["decision"] == "passed"
    assert history[3]["cause"] == "pmo-admin"
    assert history[3]["note"] == "Closure board minutes 2026-12-15"

    # A new project of the same business unit and methodology is told the closed one's lesson;
    # one sharing only the objective too; an unrelated one is told nothing.
    await enterprise.send("project-started", charter("PRJ-G2", methodology="stage_gate"))
    await enterprise.send(
        "project-started",
        charter("PRJ-G3", business_unit="Marketing", methodology="agile", objectives=growth),
    )
    await enterprise.send(
        "project-started", charter("PRJ-G4", business_unit="Marketing", methodology="agile")
    )
    await project_when(api, "PRJ-G4", "PRJ-G4 registered", lifecycle="active")
    suggested = await published(settings, "lessons-suggested", at_least=2)
    lesson_id = lesson.json()["id"]
    assert {
        e["project_id"]: (e["manager"], [(s["lesson_id"], s["similarity"]) for s in e["lessons"]])
        for e in suggested
    } == {
        "PRJ-G2": (PM, [(lesson_id, ["business_unit", "methodology"])]),
        "PRJ-G3": (PM, [(lesson_id, ["objectives"])]),
    }
    assert [h["change"] for h in await history_of(api, "PRJ-G2")] == [
        "registered",
        "lessons_suggested",
    ]
    assert [h["change"] for h in await history_of(api, "PRJ-G4")] == ["registered"]
    suggestions = (await api.get("/projects/PRJ-G2/lesson-suggestions")).json()
    assert [(s["id"], s["project_id"], s["title"]) for s in suggestions] == [
        (lesson_id, "PRJ-G1", "Vendor delays held up the data migration")
    ]
    assert (await api.get("/projects/PRJ-G4/lesson-suggestions")).json() == []


async def test_project_started_walks_through_gates_only_with_their_deliverables_and_review(
    api: httpx.AsyncClient,
    pm_api: httpx.AsyncClient,
    enterprise: Enterprise,
    settings: Settings,
) -> None:
    proposed = await api.post("/projects", json=charter("PRJ-S1", methodology="stage_gate"))
    assert proposed.status_code == 201, proposed.text
    too_soon = await enterprise.send("project-started", charter("PRJ-S1"))
    refused = await dead_letters(settings, "project-started")
    assert refused == {
        too_soon: "rejected: PRJ-S1: the proposed -> approved gate of the stage_gate stage model "
        "is not satisfied: missing deliverable business_case, a passed gate review"
    }
    for name in ("business_case", "project_management_plan"):
        answer = await pm_api.post(
            "/projects/PRJ-S1/deliverables",
            json={"name": name, "evidence": f"https://docs.example.com/s1/{name}.pdf"},
        )
        assert answer.status_code == 201, answer.text
    failed = await api.post(
        "/projects/PRJ-S1/gate-reviews",
        json={"to": "approved", "decision": "failed", "evidence": "benefits not quantified"},
    )
    assert failed.status_code == 201, failed.text
    gates = (await api.get("/projects/PRJ-S1/gates")).json()
    assert next(g for g in gates["gates"] if g["to"] == "approved")["missing"] == [
        "a passed gate review"
    ]
    passed = await api.post("/projects/PRJ-S1/gate-reviews", json={"to": "approved"})
    assert passed.status_code == 201, passed.text

    started = await enterprise.send("project-started", charter("PRJ-S1"))
    await project_when(api, "PRJ-S1", "PRJ-S1 started", lifecycle="active")
    changed = await published(settings, "project-lifecycle-changed", at_least=2)
    assert [(e["from"], e["to"], e["cause"]) for e in changed if e["project_id"] == "PRJ-S1"] == [
        ("proposed", "approved", started),
        ("approved", "active", started),
    ]
    reviews = (await api.get("/projects/PRJ-S1/gates")).json()["reviews"]
    assert [(r["decision"], r["used_by"]) for r in reviews] == [
        ("failed", started),
        ("passed", started),
    ]
    # No gate out of active needs a review now, and the used review cannot be used again.
    missing = {
        g["to"]: g["missing"] for g in (await api.get("/projects/PRJ-S1/gates")).json()["gates"]
    }
    assert missing["completed"] == [
        "deliverable closure_report",
        "lessons learned",
        "a passed gate review",
    ]
    # Through the API the same refusal is a 409 with what is missing.
    closing = await pm_api.post("/projects/PRJ-S1/transitions", json={"to": "completed"})
    assert closing.status_code == 409
    assert detail_text(closing) == (
        "PRJ-S1: the active -> completed gate of the stage_gate stage model is not satisfied: "
        "missing deliverable closure_report, lessons learned, a passed gate review"
    )


async def test_lessons_are_found_by_words_and_stems_and_ranked(
    api: httpx.AsyncClient, pm_api: httpx.AsyncClient, database_url: str
) -> None:
    for project_id, unit in (("PRJ-L1", "Operations"), ("PRJ-L2", "Finance")):
        answer = await api.post("/projects", json=charter(project_id, business_unit=unit))
        assert answer.status_code == 201, answer.text

    async def lesson(project_id: str, **body: Any) -> int:
        answer = await pm_api.post(f"/projects/{project_id}/lessons", json=body)
        assert answer.status_code == 201, answer.text
        identifier: int = answer.json()["id"]
        return identifier

    vendor = await lesson(
        "PRJ-L1",
        title="Vendor delays held up the migration",
        what_happened="The vendor delivered the extracts three weeks late.",
        tags=["procurement"],
    )
    committee = await lesson(
        "PRJ-L2",
        title="The steering committee met too rarely",
        what_happened="Decisions were delayed for a month while a vendor waited.",
        tags=["governance"],
    )
    testing = await lesson(
        "PRJ-L2",
        title="Automated regression tests paid off",
        what_happened="Every release was tested overnight; no regression reached production.",
        repeat="Automate the regression suite from the first sprint.",
        tags=["quality"],
    )

    async def search(**params: str) -> list[tuple[int, float]]:
        answer = await api.get("/lessons", params=params)
        assert answer.status_code == 200, answer.text
        return [(item["id"], item["rank"]) for item in answer.json()]

    # Stems: "delaying" finds "delays" and "delayed", "vendors" finds "vendor"; the lesson with
    # both words in its title ranks above the one with them in its text.
    found = await search(q="vendors delaying")
    assert [identifier for identifier, _ in found] == [vendor, committee]
    assert found[0][1] > found[1][1] > 0
    assert [i for i, _ in await search(q="testing automation")] == [testing]
    assert [i for i, _ in await search(q="vendor -committee")] == [vendor]
    assert [i for i, _ in await search(q='"steering committee"')] == [committee]
    assert [i for i, _ in await search(q="vendor", business_unit="finance")] == [committee]
    assert [i for i, _ in await search(q="vendor", tag="procurement")] == [vendor]
    assert await search(q="blockchain") == []
    assert [i for i, _ in await search(q="late", methodology="STANDARD")] == [vendor]
    unknown = await api.get("/lessons", params={"q": "late", "methodology": "waterfall"})
    assert unknown.status_code == 422
    assert "unknown methodology 'waterfall'" in detail_text(unknown)

    # The search reads a GIN index over the stored tsvector.
    connection = await asyncpg.connect(database_url)
    try:
        index = await connection.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'registry' "
            "AND indexname = 'lesson_search'"
        )
    finally:
        await connection.close()
    assert "USING gin (search)" in index


async def test_a_lesson_of_a_running_project_is_not_suggested(
    api: httpx.AsyncClient, pm_api: httpx.AsyncClient
) -> None:
    assert (await api.post("/projects", json=charter("PRJ-R1"))).status_code == 201
    recorded = await pm_api.post(
        "/projects/PRJ-R1/lessons",
        json={"title": "Early lesson", "what_happened": "Kick-off went well."},
    )
    assert recorded.status_code == 201
    assert (await api.post("/projects", json=charter("PRJ-R2"))).status_code == 201

    assert (await api.get("/projects/PRJ-R2/lesson-suggestions")).json() == []
    assert [h["change"] for h in await history_of(api, "PRJ-R2")] == ["registered"]
