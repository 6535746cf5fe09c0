"""The standard lifecycle against the real broker and database: every move, every refusal."""

from __future__ import annotations

from typing import Any

import httpx

from shared.settings import Settings
from tests.harness import Enterprise, detail_text
from tests.registry.conftest import charter, dead_letters, project_when, published, status


def moves(events: list[dict[str, Any]], project_id: str) -> list[tuple[str, str, str]]:
    return [(e["from"], e["to"], e["cause"]) for e in events if e["project_id"] == project_id]


async def test_events_move_projects_through_the_standard_model_and_refusals_are_dead_lettered(
    api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    started = await enterprise.send("project-started", charter("PRJ-A"))
    hold = await enterprise.send("status-changed", status("PRJ-A", lifecycle="on_hold"))
    done_on_hold = await enterprise.send(
        "status-changed", status("PRJ-A", lifecycle="completed", percent_complete=100)
    )
    resume = await enterprise.send("status-changed", status("PRJ-A", lifecycle="active"))
    done = await enterprise.send(
        "status-changed", status("PRJ-A", lifecycle="completed", percent_complete=100)
    )
    reopen = await enterprise.send("status-changed", status("PRJ-A", lifecycle="active"))

    await enterprise.send("project-started", charter("PRJ-B"))
    stop = await enterprise.send(
        "status-changed", status("PRJ-B", lifecycle="terminated", comment="Market exit")
    )
    # Topics are not ordered among themselves: the restart goes once the termination is in.
    await project_when(api, "PRJ-B", "PRJ-B terminated", lifecycle="terminated")
    restart = await enterprise.send("project-started", charter("PRJ-B"))
    typo = await enterprise.send("project-started", charter("PRJ-C", methodology="waterfal"))

    registered = await published(settings, "project-registered", at_least=2)
    assert {(e["project_id"], e["lifecycle"], e["methodology"]) for e in registered} == {
        ("PRJ-A", "active", "standard"),
        ("PRJ-B", "active", "standard"),
    }
    changed = await published(settings, "project-lifecycle-changed", at_least=4)
    assert moves(changed, "PRJ-A") == [
        ("active", "on_hold", hold),
        ("on_hold", "active", resume),
        ("active", "completed", done),
    ]
    assert moves(changed, "PRJ-B") == [("active", "terminated", stop)]
    assert next(e for e in changed if e["project_id"] == "PRJ-B")["reason"] == "Market exit"

    refused = await dead_letters(settings, "status-changed", at_least=2)
    assert refused == {
        done_on_hold: "rejected: PRJ-A: on_hold -> completed is not a transition of the standard "
        "stage model; from on_hold a project may go to: active, terminated",
        reopen: "rejected: PRJ-A: completed is final in the standard stage model: a completed "
        "project never changes stage",
    }
    refused_starts = await dead_letters(settings, "project-started", at_least=2)
    assert refused_starts == {
        restart: "rejected: PRJ-B is terminated, final in the standard stage model: a terminated "
        "project cannot be started again",
        typo: "rejected: PRJ-C: unknown methodology 'waterfal': the stage models are agile, "
        "prince2, stage_gate, standard",
    }

    project = await project_when(api, "PRJ-A", "PRJ-A completed", lifecycle="completed")
    assert project["next_stages"] == []
    history = (await api.get("/projects/PRJ-A/history")).json()["items"]
    assert [(h["change"], h["cause"]) for h in history if h["change"] == "lifecycle"] == [
        ("lifecycle", hold),
        ("lifecycle", resume),
        ("lifecycle", done),
    ]
    assert history[0]["change"] == "registered"
    assert history[0]["cause"] == started
    assert (await api.get("/projects/PRJ-C")).status_code == 404


async def test_the_api_moves_a_proposal_through_its_gates_and_answers_409_with_the_reason(
    api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    proposal = charter("PRJ-P")
    del proposal["project_id"]
    created = await api.post("/projects", json={"project_id": "PRJ-P", **proposal})
    assert created.status_code == 201, created.text
    assert created.json()["lifecycle"] == "proposed"
    assert created.json()["next_stages"] == ["approved", "terminated"]

    async def move(to: str, reason: str | None = None) -> httpx.Response:
        return await api.post("/projects/PRJ-P/transitions", json={"to": to, "reason": reason})

    skipped = await move("active")
    assert skipped.status_code == 409
    assert detail_text(skipped) == (
        "PRJ-P: proposed -> active is not a transition of the standard stage model; "
        "from proposed a project may go to: approved, terminated"
    )
    for stage in ("approved", "active", "on_hold"):
        moved = await move(stage)
        assert moved.status_code == 200, moved.text
        assert moved.json()["lifecycle"] == stage
    blocked = await move("completed")
    assert blocked.status_code == 409
    assert "on_hold -> completed is not a transition" in detail_text(blocked)
    same = await move("on_hold")
    assert same.status_code == 409
    assert detail_text(same) == "PRJ-P: the project is already on_hold"
    assert (await move("terminated", "Budget withdrawn")).status_code == 200
    final = await move("active")
    assert final.status_code == 409
    assert "terminated is final" in detail_text(final)
    unknown = await move("archived")
    assert unknown.status_code == 422

    changed = await published(settings, "project-lifecycle-changed", at_least=4)
    assert moves(changed, "PRJ-P") == [
        ("proposed", "approved", "pmo-admin"),
        ("approved", "active", "pmo-admin"),
        ("active", "on_hold", "pmo-admin"),
        ("on_hold", "terminated", "pmo-admin"),
    ]
    assert changed[-1]["reason"] == "Budget withdrawn"
    registered = await published(settings, "project-registered")
    assert [(e["project_id"], e["lifecycle"]) for e in registered] == [("PRJ-P", "proposed")]


async def test_project_started_activates_a_proposal_through_approval(
    api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    created = await api.post("/projects", json=charter("PRJ-Q", budget=90000))
    assert created.status_code == 201, created.text
    started = await enterprise.send("project-started", charter("PRJ-Q", budget=120000))

    project = await project_when(api, "PRJ-Q", "PRJ-Q started", lifecycle="active")
    assert project["budget"] == 120000
    changed = await published(settings, "project-lifecycle-changed", at_least=2)
    assert moves(changed, "PRJ-Q") == [
        ("proposed", "approved", started),
        ("approved", "active", started),
    ]
    history = (await api.get("/projects/PRJ-Q/history")).json()["items"]
    assert [(h["change"], h["cause"]) for h in history] == [
        ("registered", "pmo-admin"),
        ("updated", started),
        ("lifecycle", started),
        ("lifecycle", started),
    ]
    assert history[1]["before"] == {"budget": 90000.0}
    assert history[1]["after"] == {"budget": 120000.0}


async def test_a_methodology_picks_its_stage_model_with_its_own_gates(
    api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    await enterprise.send("project-started", charter("PRJ-P2", methodology="PRINCE2"))
    await enterprise.send("project-started", charter("PRJ-AG", methodology="agile"))
    early = await enterprise.send(
        "status-changed", status("PRJ-P2", lifecycle="completed", percent_complete=90)
    )
    closed = await enterprise.send(
        "status-changed", status("PRJ-P2", lifecycle="completed", percent_complete=100)
    )
    await enterprise.send("status-changed", status("PRJ-AG", lifecycle="on_hold"))
    agile_done = await enterprise.send(
        "status-changed", status("PRJ-AG", lifecycle="completed", percent_complete=80)
    )

    refused = await dead_letters(settings, "status-changed")
    assert refused == {
        early: "rejected: PRJ-P2: active -> completed in the prince2 stage model requires at "
        "least 100% complete (it is 90% complete)"
    }
    changed = await published(settings, "project-lifecycle-changed", at_least=3)
    assert moves(changed, "PRJ-P2") == [("active", "completed", closed)]
    assert moves(changed, "PRJ-AG")[-1] == ("on_hold", "completed", agile_done)

    # prince2: a premature closure through the API needs a reason.
    proposal = charter("PRJ-P3", methodology="prince2")
    assert (await api.post("/projects", json=proposal)).status_code == 201
    bare = await api.post("/projects/PRJ-P3/transitions", json={"to": "terminated"})
    assert bare.status_code == 409
    assert detail_text(bare) == (
        "PRJ-P3: proposed -> terminated in the prince2 stage model requires a reason, "
        "and none was given"
    )
    agile_approval = await api.post("/projects/PRJ-AG/transitions", json={"to": "approved"})
    assert agile_approval.status_code == 409
    assert "the agile stage model has no stage 'approved'" in detail_text(agile_approval)
    models = (await api.get("/stage-models")).json()
    assert [(m["name"], m["default"]) for m in models] == [
        ("agile", False),
        ("prince2", False),
        ("stage_gate", False),
        ("standard", True),
    ]
