"""Gate requirements as data: deliverables, lessons learned and reviews, and what is missing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.registry.domain.stage_models import (
    GateEvidence,
    ImpossibleTransition,
    StageModelFileError,
    parse_stage_models,
)
from services.registry.service_layer.configuration import SHIPPED_STAGE_MODELS

pytestmark = pytest.mark.fast

SHIPPED = parse_stage_models(SHIPPED_STAGE_MODELS.read_text(), str(SHIPPED_STAGE_MODELS))
STAGE_GATE = SHIPPED.resolve("Stage_Gate")

CLOSURE = GateEvidence(deliverables=frozenset({"closure_report"}), lessons=2, reviewed=True)


def refusal(**evidence: Any) -> str:
    with pytest.raises(ImpossibleTransition) as refused:
        STAGE_GATE.check(
            "active", "completed", percent_complete=100, evidence=GateEvidence(**evidence)
        )
    return refused.value.reason


def test_the_closure_gate_names_everything_missing_in_its_order() -> None:
    prefix = "the active -> completed gate of the stage_gate stage model is not satisfied: missing "
    assert refusal() == (
        prefix + "deliverable closure_report, lessons learned, a passed gate review"
    )
    assert refusal(deliverables=frozenset({"closure_report"})) == (
        prefix + "lessons learned, a passed gate review"
    )
    assert refusal(deliverables=frozenset({"business_case"}), lessons=1, reviewed=True) == (
        prefix + "deliverable closure_report"
    )
    STAGE_GATE.check("active", "completed", evidence=CLOSURE)  # passes: nothing missing
    # Without evidence given, a gate that asks for some is refused.
    with pytest.raises(ImpossibleTransition):
        STAGE_GATE.check("active", "completed")


def test_ungated_moves_need_no_evidence_and_the_model_lists_its_deliverables() -> None:
    STAGE_GATE.check("active", "on_hold")
    STAGE_GATE.check("on_hold", "active")
    assert STAGE_GATE.deliverables == [
        "business_case",
        "closure_report",
        "project_management_plan",
    ]
    assert SHIPPED.resolve("standard").deliverables == []
    assert SHIPPED.closed_stages == {"completed", "terminated"}


def test_project_started_walks_through_deliverable_gates_but_not_reason_or_progress_gates() -> None:
    assert STAGE_GATE.path_to_start("proposed") == ["approved", "active"]
    gate = STAGE_GATE.gate("proposed", "approved")
    assert gate is not None
    assert gate.startable
    assert gate.needs_evidence
    terminate = STAGE_GATE.gate("active", "terminated")
    assert terminate is not None
    assert not terminate.startable
    assert not terminate.needs_evidence


def model_file(**gate: Any) -> str:
    return (
        '{"default": "m", "models": {"m": {"initial": "proposed", "started": "active", '
        '"stages": {"proposed": {"phase": "pipeline", "ranked": false}, '
        '"active": {"phase": "running", "ranked": true}}, '
        '"transitions": [{"from": "proposed", "to": "active", "gate": ' + json.dumps(gate) + "}]}}}"
    )


def test_a_file_may_gate_the_start_on_deliverables_but_names_them_plainly() -> None:
    models = parse_stage_models(model_file(deliverables=["charter"], requires_review=True), "f")
    assert models.resolve(None).path_to_start("proposed") == ["active"]
    with pytest.raises(StageModelFileError) as bad:
        parse_stage_models(model_file(deliverables=["Business Case"]), "f")
    assert "models.m.transitions.0.gate.deliverables.0: String should match pattern" in str(
        bad.value
    )
    with pytest.raises(StageModelFileError) as typo:
        parse_stage_models(model_file(requires_reviews=True), "f")
    assert "gate.requires_reviews: Extra inputs are not permitted" in str(typo.value)
