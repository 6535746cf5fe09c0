"""Stage gate rules on the fake unit of work: deliverables the model names, reviews that need
them, and a move that passes a gate on its deliverables, lessons and review and uses the
review (no broker, no database). `test_registry_gates_lessons.py` proves the routes, the
events and the SQL end to end."""

from __future__ import annotations

import pytest

from services.registry.adapters.tables import ProjectRow
from services.registry.domain.stage_models import ImpossibleTransition, StageModel
from services.registry.service_layer.configuration import configuration_from
from services.registry.service_layer.gates import GateRefused, review_gate, submit_deliverable
from services.registry.service_layer.projects import move
from shared.events.contracts import GateReviewed, ProjectLifecycleChanged
from tests.fakes.registry import FakeRegistryUnitOfWork, registered_project

pytestmark = pytest.mark.fast

PM, ADMIN = "grace.hopper@example.com", "pmo-admin"


def running() -> tuple[FakeRegistryUnitOfWork, ProjectRow, StageModel]:
    """An active project of the stage-gate model, in a fake unit of work."""
    project = registered_project("PRJ-G1", methodology="stage_gate", manager=PM)
    uow = FakeRegistryUnitOfWork([project])
    return uow, project, configuration_from(uow.settings).stage_models.resolve("stage_gate")


async def test_only_a_deliverable_a_gate_requires_is_taken_and_a_resubmission_replaces_it() -> None:
    uow, project, model = running()
    with pytest.raises(GateRefused) as refused:
        await submit_deliverable(
            uow, project, model, "closing_report", evidence="x", note=None, by=PM
        )
    assert refused.value.reason == (
        "no gate of the stage_gate stage model requires a deliverable 'closing_report' "
        "(its deliverables: business_case, closure_report, project_management_plan)"
    )

    for evidence in ("draft.pdf", "final.pdf"):
        await submit_deliverable(
            uow, project, model, "closure_report", evidence=evidence, note=None, by=PM
        )
    [kept] = await uow.gates.deliverables("PRJ-G1")
    assert (kept.name, kept.evidence, kept.submitted_by) == ("closure_report", "final.pdf", PM)
    entries = uow.projects.history_of("PRJ-G1")
    assert [(h.change, h.before) for h in entries] == [
        ("deliverable", None),
        ("deliverable", {"evidence": "draft.pdf"}),
    ]


async def test_a_review_needs_a_gate_and_a_pass_needs_the_gates_deliverables() -> None:
    uow, project, model = running()
    with pytest.raises(GateRefused) as no_gate:
        await review_gate(
            uow, project, model, "approved", decision="passed", evidence=None, reviewer=ADMIN
        )
    assert no_gate.value.reason.startswith(
        "active -> approved is not a transition of the stage_gate stage model"
    )
    with pytest.raises(GateRefused) as premature:
        await review_gate(
            uow, project, model, "completed", decision="passed", evidence=None, reviewer=ADMIN
        )
    assert premature.value.reason == (
        "the active -> completed gate cannot pass: missing deliverable closure_report"
    )
    # A failed review needs nothing: it says the gate is not passed.
    failed = await review_gate(
        uow, project, model, "completed", decision="failed", evidence="not yet", reviewer=ADMIN
    )
    assert (failed.decision, failed.deliverables) == ("failed", [])
    [only] = uow.events  # the failed review is published too
    assert isinstance(only, GateReviewed)
    assert uow.gates.reviews == [failed]


async def test_a_move_passes_the_gate_on_deliverables_lessons_and_review_and_uses_the_review() -> (
    None
):
    uow, project, model = running()
    with pytest.raises(ImpossibleTransition) as early:
        await move(uow, project, model, "completed", cause="event-1", reason=None)
    assert early.value.reason.endswith(
        "missing deliverable closure_report, lessons learned, a passed gate review"
    )

    await submit_deliverable(
        uow, project, model, "closure_report", evidence="closure.pdf", note=None, by=PM
    )
    uow.gates.lessons["PRJ-G1"] = 1
    review = await review_gate(
        uow, project, model, "completed", decision="passed", evidence="minutes", reviewer=ADMIN
    )
    [reviewed] = uow.published(GateReviewed)
    assert (reviewed.from_stage, reviewed.to_stage, reviewed.decision) == (
        "active",
        "completed",
        "passed",
    )
    assert [(d.name, d.evidence) for d in reviewed.deliverables] == [
        ("closure_report", "closure.pdf")
    ]

    await move(uow, project, model, "completed", cause="event-2", reason=None)
    [moved] = uow.published(ProjectLifecycleChanged)
    assert (moved.from_stage, moved.to_stage, moved.cause) == ("active", "completed", "event-2")
    assert project.lifecycle == "completed"
    assert review.used_by == "event-2"  # the review is spent by the move it let through
    assert [h.change for h in uow.projects.history_of("PRJ-G1")] == [
        "deliverable",
        "gate_review",
        "lifecycle",
    ]
