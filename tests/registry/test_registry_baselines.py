"""Re-baselining as a PMO act: approved by someone, for a reason, kept, announced, reported."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from shared.settings import Settings
from tests.conftest import bearer
from tests.harness import Enterprise, detail_text
from tests.registry.conftest import charter, project_when, published

PM = "grace.hopper@example.com"


async def test_an_administrator_rebaselines_a_started_project_with_the_reason(
    api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    started = await enterprise.send("project-started", charter("PRJ-B"))
    project = await project_when(api, "PRJ-B", "PRJ-B started", lifecycle="active")
    assert (project["baseline_version"], project["rebaselined_at"]) == (1, None)

    curve = [
        {"date": "2027-03-31", "planned_value": 300_000},
        {"date": "2026-09-30", "planned_value": 150_000},
    ]
    answer = await api.post(
        "/projects/PRJ-B/baselines",
        json={
            "budget": 300_000,
            "planned_finish_date": "2027-03-31",
            "planned_value_curve": curve,
            "reason": "scope tripled by the steering committee",
        },
    )
    assert answer.status_code == 201, answer.text
    baseline = answer.json()
    assert (baseline["version"], baseline["budget"], baseline["approved_by"]) == (
        2,
        300_000,
        "pmo-admin",
    )
    assert baseline["in_force"]
    # The curve is kept in date order, as the contract reads it.
    assert [p["date"] for p in baseline["planned_value_curve"]] == ["2026-09-30", "2027-03-31"]

    project = (await api.get("/projects/PRJ-B")).json()
    assert (project["budget"], project["planned_finish_date"], project["baseline_version"]) == (
        300_000,
        "2027-03-31",
        2,
    )
    assert project["rebaselined_at"] == baseline["approved_at"]
    baselines = (await api.get("/projects/PRJ-B/baselines")).json()
    assert [(b["version"], b["budget"], b["in_force"], b["cause"]) for b in baselines] == [
        (1, 100_000, False, started),
        (2, 300_000, True, "pmo-admin"),
    ]
    history = (await api.get("/projects/PRJ-B/history")).json()["items"]
    (change,) = [h for h in history if h["change"] == "rebaselined"]
    assert change["note"] == "scope tripled by the steering committee"
    assert (change["before"]["budget"], change["after"]["budget"]) == (100_000, 300_000)

    (event,) = await published(settings, "project-rebaselined")
    assert {k: event[k] for k in ("project_id", "baseline_version", "budget", "approved_by")} == {
        "project_id": "PRJ-B",
        "baseline_version": 2,
        "budget": 300_000,
        "approved_by": "pmo-admin",
    }
    assert event["planned_value_curve"] == baseline["planned_value_curve"]

    report = (await api.get("/reports/portfolio", params={"format": "json"})).json()
    (row,) = report["projects"]
    approved_on = datetime.fromisoformat(baseline["approved_at"]).astimezone(UTC).date()
    assert (row["baseline_version"], row["rebaselined_on"]) == (2, approved_on.isoformat())
    page = (await api.get("/reports/portfolio", params={"format": "html"})).text
    assert f"re-baselined on {approved_on.isoformat()} (baseline 2)" in page


async def test_what_a_rebaseline_refuses_and_who_may_ask(
    api: httpx.AsyncClient, enterprise: Enterprise
) -> None:
    await enterprise.send("project-started", charter("PRJ-R", manager=PM))
    await project_when(api, "PRJ-R", "PRJ-R started", lifecycle="active")
    assert (await api.post("/projects", json=charter("PRJ-IDEA"))).status_code == 201

    async def post(project_id: str, body: dict[str, object], **headers: str) -> httpx.Response:
        return await api.post(f"/projects/{project_id}/baselines", json=body, headers=headers)

    why = {"reason": "approved by the board"}
    # A PATCH of the budget or dates of a started project carries no reason: refused, with the
    # way to do it. Other charter fields still change by PATCH.
    patched = await api.patch("/projects/PRJ-R", json={"budget": 1, "sponsor": "CFO"})
    assert patched.status_code == 409
    assert detail_text(patched) == (
        "budget belongs to the approved baseline of PRJ-R (version 1): a PMO administrator "
        "re-baselines with POST /projects/PRJ-R/baselines, giving the reason."
    )
    assert (await api.patch("/projects/PRJ-R", json={"sponsor": "CFO"})).status_code == 200
    # Not started: the budget is still a proposal, changed by PATCH; nothing to re-baseline.
    idea = await post("PRJ-IDEA", {"budget": 5, **why})
    assert idea.status_code == 409
    assert "has not started" in detail_text(idea)
    assert (await api.patch("/projects/PRJ-IDEA", json={"budget": 5})).status_code == 200
    # The same terms: nothing to re-baseline. No reason, or a finish before the start: 422.
    same = await post("PRJ-R", {"budget": 100_000, **why})
    assert same.status_code == 409
    assert "nothing to re-baseline" in detail_text(same)
    assert (await post("PRJ-R", {"budget": 2})).status_code == 422
    early = await post("PRJ-R", {"planned_finish_date": "2025-01-01", **why})
    assert early.status_code == 422
    assert early.json()["detail"][0]["loc"] == ["body", "planned_finish_date"]
    falling = await post(
        "PRJ-R",
        {
            "planned_value_curve": [
                {"date": "2026-03-01", "planned_value": 50},
                {"date": "2026-06-01", "planned_value": 10},
            ],
            **why,
        },
    )
    assert falling.status_code == 422
    assert "must be cumulative" in falling.text
    # Only a PMO administrator approves a baseline, even the project's own manager cannot.
    own = await post("PRJ-R", {"budget": 2, **why}, **bearer("project_manager", PM))
    assert own.status_code == 403
    assert (await api.get("/projects/PRJ-R/baselines")).json()[-1]["version"] == 1
    assert (await api.get("/projects/PRJ-NONE/baselines")).status_code == 404


async def test_a_repeated_project_started_with_other_terms_is_a_rebaseline_by_its_sender(
    api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    await enterprise.send("project-started", charter("PRJ-ERP"))
    await project_when(api, "PRJ-ERP", "PRJ-ERP started", lifecycle="active")
    # The same terms again (a redelivery from the ERP, another event id): no re-baseline.
    await enterprise.send("project-started", charter("PRJ-ERP", sponsor="COO"))
    await project_when(api, "PRJ-ERP", "the sponsor taken", sponsor="COO")
    restated = await enterprise.send(
        "project-started",
        charter("PRJ-ERP", budget=150_000, planned_finish_date="2027-06-30", sponsor="COO"),
    )
    project = await project_when(api, "PRJ-ERP", "re-baselined by the ERP", baseline_version=2)
    assert (project["budget"], project["planned_finish_date"]) == (150_000, "2027-06-30")

    (event,) = await published(settings, "project-rebaselined")
    assert (event["baseline_version"], event["budget"], event["cause"]) == (2, 150_000, restated)
    assert event["approved_by"] == "/erp/test"
    assert event["reason"] == f"the enterprise restated the baseline (project-started {restated})"
    history = (await api.get("/projects/PRJ-ERP/history")).json()["items"]
    # The budget and finish moved by the re-baseline, not as a plain charter update.
    updates = [h["after"] for h in history if h["change"] == "updated"]
    assert updates == [{"sponsor": "COO"}]
