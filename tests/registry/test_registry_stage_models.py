"""The stage models as data: the shipped file, its gates, and what a bad file is told."""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.registry.domain.stage_models import (
    ImpossibleTransition,
    StageModelFileError,
    StageModels,
    UnknownMethodology,
    parse_stage_models,
)
from services.registry.service_layer.configuration import (
    SHIPPED_STAGE_MODELS,
    configuration_from,
)
from shared.events.contracts import CLOSED_STAGES, Stage
from shared.settings import ConfigurationError, Settings

pytestmark = pytest.mark.fast

STAGES: tuple[Stage, ...] = get_args(Stage)
SHIPPED = parse_stage_models(SHIPPED_STAGE_MODELS.read_text(), str(SHIPPED_STAGE_MODELS))
STANDARD = SHIPPED.resolve(None)

# Every move of the standard model, from the issue: proposed -> approved -> active <-> on_hold
# -> completed | terminated; approved may be put on hold before it starts; anything not closed
# may be terminated.
ALLOWED = {
    ("proposed", "approved"),
    ("proposed", "terminated"),
    ("approved", "active"),
    ("approved", "on_hold"),
    ("approved", "terminated"),
    ("active", "on_hold"),
    ("active", "completed"),
    ("active", "terminated"),
    ("on_hold", "active"),
    ("on_hold", "terminated"),
}


def allows(model: Any, origin: Stage, to: Stage, **conditions: Any) -> bool:
    try:
        model.check(origin, to, **conditions)
    except ImpossibleTransition:
        return False
    return True


def test_the_standard_model_allows_exactly_its_transitions() -> None:
    allowed = {pair for pair in product(STAGES, STAGES) if allows(STANDARD, *pair)}
    assert allowed == ALLOWED
    assert STANDARD.name == "standard"
    assert (STANDARD.initial, STANDARD.started) == ("proposed", "active")
    assert [stage for stage in STAGES if STANDARD.is_ranked(stage)] == [
        "approved",
        "active",
        "on_hold",
    ]


@pytest.mark.parametrize(
    ("origin", "to", "reason"),
    [
        (
            "on_hold",
            "completed",
            "on_hold -> completed is not a transition of the standard stage model; "
            "from on_hold a project may go to: active, terminated",
        ),
        (
            "terminated",
            "active",
            "terminated is final in the standard stage model: a terminated project never "
            "changes stage",
        ),
        (
            "completed",
            "terminated",
            "completed is final in the standard stage model: a completed project never "
            "changes stage",
        ),
        ("active", "active", "the project is already active"),
    ],
)
def test_a_refused_move_says_why(origin: Stage, to: Stage, reason: str) -> None:
    with pytest.raises(ImpossibleTransition) as refused:
        STANDARD.check(origin, to)
    assert refused.value.reason == reason


def test_the_prince2_gates_need_progress_and_a_reason() -> None:
    prince2 = SHIPPED.resolve("PRINCE2")
    assert not allows(prince2, "active", "completed", percent_complete=99.5)
    assert not allows(prince2, "active", "completed")  # no progress reported at all
    assert allows(prince2, "active", "completed", percent_complete=100)
    assert not allows(prince2, "active", "terminated", reason="  ")
    assert allows(prince2, "active", "terminated", reason="Benefits no longer achievable")
    assert not allows(prince2, "approved", "on_hold")


def test_agile_starts_without_approval_and_may_close_from_hold() -> None:
    agile = SHIPPED.resolve(" Agile ")
    assert agile.path_to_start("proposed") == ["active"]
    assert allows(agile, "on_hold", "completed")
    with pytest.raises(ImpossibleTransition, match="has no stage 'approved'"):
        agile.check("proposed", "approved")


def test_project_started_walks_a_proposal_through_approval() -> None:
    assert STANDARD.path_to_start("proposed") == ["approved", "active"]
    assert STANDARD.path_to_start("approved") == ["active"]
    assert STANDARD.path_to_start("active") == []


def test_an_unknown_methodology_names_the_known_ones() -> None:
    with pytest.raises(UnknownMethodology) as unknown:
        SHIPPED.resolve("waterfall")
    assert unknown.value.reason == (
        "unknown methodology 'waterfall': the stage models are agile, prince2, stage_gate, standard"
    )
    assert SHIPPED.canonical("  ") == "standard"


@given(
    model_name=st.sampled_from(["standard", "agile", "prince2"]),
    walk=st.lists(st.sampled_from(STAGES), max_size=30),
)
def test_a_closed_stage_is_never_left_whatever_the_moves_tried(
    model_name: str, walk: list[Stage]
) -> None:
    model = SHIPPED.resolve(model_name)
    stage: Stage = model.initial
    closed_at: Stage | None = None
    for wanted in walk:
        if allows(model, stage, wanted, percent_complete=100, reason="why"):
            assert closed_at is None, f"left {closed_at} for {wanted}"
            stage = wanted
            if model.is_final(stage):
                closed_at = stage


@given(origin=st.sampled_from(STAGES), to=st.sampled_from(STAGES))
def test_every_refusal_of_a_listed_stage_names_where_the_project_may_go(
    origin: Stage, to: Stage
) -> None:
    if origin == to or (origin, to) in ALLOWED:
        return
    with pytest.raises(ImpossibleTransition) as refused:
        STANDARD.check(origin, to)
    if STANDARD.is_final(origin):
        assert "is final" in refused.value.reason
    else:
        allowed = ", ".join(STANDARD.next_stages(origin))
        assert refused.value.reason.endswith(f"may go to: {allowed}")


def model_file(**changes: Any) -> dict[str, Any]:
    standard = json.loads(SHIPPED_STAGE_MODELS.read_text())["models"]["standard"]
    return {"default": "standard", "models": {"standard": {**standard, **changes}}}


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (
            model_file(transitions=[{"from": "completed", "to": "active"}]),
            "transition 1 leaves 'completed', a closed (final) stage",
        ),
        (
            model_file(transitions=[{"from": "proposed", "to": "archived"}]),
            "models.standard.transitions.0.to: Input should be 'proposed', 'approved'",
        ),
        (
            model_file(
                transitions=[
                    {"from": "proposed", "to": "approved"},
                    {"from": "approved", "to": "active", "gate": {"requires_reason": True}},
                ]
            ),
            "pipeline stage 'proposed' has no path of ungated transitions to the started stage",
        ),
        (model_file(started="approved"), "started stage 'approved' must have phase 'running'"),
        (model_file(initial="completed"), "initial stage 'completed' must not be closed"),
        (model_file(transtions=[]), "models.standard.transtions: Extra inputs are not permitted"),
        (
            {"default": "kanban", "models": model_file()["models"]},
            "default 'kanban' is not one of the models ['standard']",
        ),
    ],
)
def test_a_broken_stage_model_file_is_refused_with_where_and_why(
    document: dict[str, Any], problem: str
) -> None:
    with pytest.raises(StageModelFileError) as refused:
        parse_stage_models(json.dumps(document), "/etc/pmo/models.json")
    assert "stage model file /etc/pmo/models.json" in str(refused.value)
    assert problem in str(refused.value)


def test_an_operators_file_replaces_the_shipped_one(tmp_path: Path) -> None:
    strict = model_file(
        transitions=[
            {"from": "proposed", "to": "approved"},
            {"from": "approved", "to": "active"},
            {"from": "active", "to": "completed"},
        ]
    )
    path = tmp_path / "models.json"
    path.write_text(json.dumps(strict))
    models: StageModels = configuration_from(
        Settings(registry_stage_models_file=str(path))
    ).stage_models
    assert models.names == ["standard"]
    assert not allows(models.resolve(None), "active", "on_hold")

    with pytest.raises(ConfigurationError, match="cannot read"):
        configuration_from(Settings(registry_stage_models_file=str(tmp_path / "missing.json")))


def test_the_shipped_models_close_exactly_the_stages_the_other_services_treat_as_closed() -> None:
    # Monitoring, allocation and notifications know closed projects by CLOSED_STAGES (they do
    # not read the stage models): the shipped file must agree with that one definition.
    assert SHIPPED.closed_stages == CLOSED_STAGES
