"""The projects API: proposing, listing with filters and pages, changing, and what it refuses."""

from __future__ import annotations

import asyncio
import json

import httpx

from services.registry.domain.projects import registration
from services.registry.service_layer import projects as changes
from shared.events.contracts import ProjectCharter
from shared.settings import Settings
from tests.conftest import bearer
from tests.harness import RunningService, detail_text
from tests.registry.conftest import charter, published


async def test_list_filters_and_pages_with_a_total_and_a_cursor(api: httpx.AsyncClient) -> None:
    proposals = [
        charter("PRJ-01", business_unit="Digital", manager="ada@example.com"),
        charter("PRJ-02", business_unit="Digital", manager="bob@example.com", methodology="agile"),
        charter("PRJ-03", business_unit="Finance", manager="Ada@Example.com"),
        charter("PRJ-04", business_unit="Digital", manager="ada@example.com"),
        charter("PRJ-05", business_unit="digital", manager="ada@example.com"),
    ]
    for proposal in proposals:
        assert (await api.post("/projects", json=proposal)).status_code == 201
    assert (await api.post("/projects/PRJ-04/transitions", json={"to": "approved"})).is_success

    first = (await api.get("/projects", params={"business_unit": "Digital", "limit": 2})).json()
    assert [p["project_id"] for p in first["items"]] == ["PRJ-01", "PRJ-02"]
    assert (first["total"], first["next_cursor"]) == (4, "PRJ-02")
    second = (
        await api.get(
            "/projects", params={"business_unit": "Digital", "limit": 2, "cursor": "PRJ-02"}
        )
    ).json()
    assert [p["project_id"] for p in second["items"]] == ["PRJ-04", "PRJ-05"]
    assert second["next_cursor"] is None

    async def ids(**filters: str) -> list[str]:
        page = (await api.get("/projects", params=filters)).json()
        return [p["project_id"] for p in page["items"]]

    assert await ids(manager="ADA@example.com") == ["PRJ-01", "PRJ-03", "PRJ-04", "PRJ-05"]
    assert await ids(lifecycle="approved") == ["PRJ-04"]
    assert await ids(methodology="Agile") == ["PRJ-02"]
    assert await ids(methodology="standard", business_unit="finance") == ["PRJ-03"]
    unknown = await api.get("/projects", params={"methodology": "waterfall"})
    assert unknown.status_code == 422
    assert "unknown methodology 'waterfall'" in detail_text(unknown)
    assert (await api.get("/projects", params={"lifecycle": "archived"})).status_code == 422


async def test_a_change_keeps_its_history_and_invalid_changes_are_refused(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    assert (await api.post("/projects", json=charter("PRJ-X"))).status_code == 201
    duplicate = await api.post("/projects", json=charter("PRJ-X"))
    assert duplicate.status_code == 409
    assert detail_text(duplicate) == "PRJ-X is already registered (proposed)."
    bad_model = await api.post("/projects", json=charter("PRJ-Y", methodology="waterfall"))
    assert bad_model.status_code == 422
    backwards = await api.post("/projects", json=charter("PRJ-Y", planned_finish_date="2025-01-01"))
    assert backwards.status_code == 422
    assert "must not be before start_date" in json.dumps(backwards.json())

    changed = await api.patch(
        "/projects/PRJ-X",
        json={
            "budget": 150000,
            "objectives": [{"objective_id": "growth", "contribution": 0.5}],
            "methodology": "PRINCE2",
            "name": "Project PRJ-X",  # unchanged: not in the history
        },
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["budget"], changed.json()["methodology"]) == (150000, "prince2")
    history = (await api.get("/projects/PRJ-X/history")).json()["items"]
    assert [h["change"] for h in history] == ["registered", "updated"]
    assert history[1]["before"] == {"budget": 100000.0, "objectives": [], "methodology": "standard"}
    assert history[1]["after"] == {
        "budget": 150000,
        "objectives": [{"objective_id": "growth", "contribution": 0.5}],
        "methodology": "prince2",
    }
    assert history[1]["cause"] == "pmo-admin"

    refusals = {
        "emptied": {"name": None},
        "misspelt": {"buget": 1},
        "backwards": {"planned_finish_date": "2025-12-31"},
        "negative": {"budget": -1},
        "unknown model": {"methodology": "waterfall"},
    }
    for what, body in refusals.items():
        answer = await api.patch("/projects/PRJ-X", json=body)
        assert answer.status_code == 422, (what, answer.text)
    emptied = await api.patch("/projects/PRJ-X", json={"name": None})
    assert detail_text(emptied) == "name cannot be emptied: leave a field out to keep it."
    assert (await api.patch("/projects/PRJ-X", json={"sponsor": "CFO"})).json()["sponsor"] == "CFO"
    cleared = await api.patch("/projects/PRJ-X", json={"sponsor": None})
    assert cleared.status_code == 200
    assert cleared.json()["sponsor"] is None

    agile = await api.post("/projects", json=charter("PRJ-Z"))
    assert agile.status_code == 201
    assert (await api.post("/projects/PRJ-Z/transitions", json={"to": "approved"})).is_success
    no_stage = await api.patch("/projects/PRJ-Z", json={"methodology": "agile"})
    assert no_stage.status_code == 409
    assert detail_text(no_stage) == (
        "PRJ-Z is approved, a stage the agile stage model does not have."
    )
    # The refused changes left no trace; the sponsor's two changes did.
    assert len((await api.get("/projects/PRJ-X/history")).json()["items"]) == 4

    for missing in ("/projects/NOPE", "/projects/NOPE/history"):
        assert (await api.get(missing)).status_code == 404
    assert (await api.patch("/projects/NOPE", json={"budget": 1})).status_code == 404
    assert (await api.post("/projects/NOPE/transitions", json={"to": "active"})).status_code == 404
    no_strategy = await api.get("/objectives")
    assert no_strategy.status_code == 404
    assert detail_text(no_strategy) == "No strategy has been received yet."

    registered = await published(settings, "project-registered", at_least=2)
    assert [(e["project_id"], e["lifecycle"]) for e in registered] == [
        ("PRJ-X", "proposed"),
        ("PRJ-Z", "proposed"),
    ]


async def test_two_registrations_of_one_project_queue_up_instead_of_colliding(
    registry: RunningService,
) -> None:
    proposal = ProjectCharter.model_validate(charter("PRJ-RACE"))
    async with registry.runtime.unit_of_work() as first:
        assert await changes.project_for_change(first, "PRJ-RACE") is None
        await changes.register(first, registration(proposal, "proposed", "standard"), cause="a")

        async def second_look() -> str | None:
            async with registry.runtime.unit_of_work() as second:
                found = await changes.project_for_change(second, "PRJ-RACE")
                return found.lifecycle if found is not None else None

        racing = asyncio.create_task(second_look())
        await asyncio.sleep(0.5)  # let it reach the lock; if it has not, it sees the commit anyway
        await first.commit()
    # It waited for the first registration, so it sees the project rather than inserting again.
    assert await racing == "proposed"


async def test_a_manager_left_out_is_reported_missing_never_as_the_callers_identity(
    api: httpx.AsyncClient, registry: RunningService
) -> None:
    """Issue 12.15: the error is about what the caller sent (or left out), not a value it never
    sent; the whole kind: every caller whose identity is no e-mail address (the bootstrap admin
    token, a project manager's token issued for a user name)."""
    without_manager = {k: v for k, v in charter("PRJ-NOMGR").items() if k != "manager"}
    callers = {
        "admin token": {},  # the client's own: the bootstrap admin token, subject "pmo-admin"
        "admin by name": bearer("pmo_admin", "pmo-ops"),
        "manager by name": bearer("project_manager", "grace"),
    }
    for caller, headers in callers.items():
        refused = await api.post("/projects", json=without_manager, headers=headers)
        assert refused.status_code == 422, (caller, refused.text)
        [problem] = refused.json()["detail"]
        assert problem["loc"] == ["body", "manager"], caller
        assert problem["type"] == "missing", caller
        assert problem["msg"].startswith("Field required: give the project manager's e-mail")
        assert "must be an e-mail address" not in refused.text, caller
    # A manager that is sent and wrong is still reported as the value sent.
    wrong = await api.post("/projects", json=charter("PRJ-NOMGR", manager="not-an-address"))
    assert wrong.status_code == 422
    assert "must be an e-mail address" in wrong.text
    assert "not-an-address" in wrong.text
    # And a caller who is a person defaults to themselves.
    person = bearer("project_manager", "ada@example.com")
    proposed = await api.post("/projects", json=without_manager, headers=person)
    assert proposed.status_code == 201, proposed.text
    assert proposed.json()["manager"] == "ada@example.com"
