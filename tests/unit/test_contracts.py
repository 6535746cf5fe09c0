"""Unit tests of the event data models: what they accept, and what they say when they refuse."""

from __future__ import annotations

import math
from datetime import date
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from shared.events import (
    EVENTS,
    INBOUND_EVENTS,
    OUTBOUND_EVENTS,
    AllocationSnapshot,
    Envelope,
    EventData,
    InvalidEvent,
    PortfolioReprioritized,
    ProjectAtRisk,
    ProjectLifecycleChanged,
    ProjectRegistered,
    ProjectStarted,
    RankedProject,
    ResourceAllocated,
    ResourceConflictResolved,
    ResourceRequested,
    StatusChanged,
    StrategyChanged,
    decode_data,
)
from shared.events.contracts import HEALTH_RANK, Health, parse_timestamp

pytestmark = pytest.mark.fast

PROJECT: dict[str, Any] = {
    "project_id": "PRJ-2041",
    "name": "Customer portal relaunch",
    "business_unit": "Retail",
    "manager": "ada.lovelace@example.com",
    "start_date": "2026-01-05",
    "planned_finish_date": "2026-12-18",
    "budget": 1_200_000,
    "currency": "EUR",
}
STATUS: dict[str, Any] = {
    "project_id": "PRJ-2041",
    "as_of": "2026-06-30",
    "percent_complete": 40,
    "actual_cost": 530_000.5,
}
REQUEST: dict[str, Any] = {
    "request_id": "REQ-77",
    "project_id": "PRJ-2041",
    "skill": "data-engineer",
    "fte": 1.5,
    "start": "2026-07-01",
    "end": "2026-09-30",
}
STRATEGY: dict[str, Any] = {
    "strategy_version": 3,
    "effective_date": "2026-07-01",
    "objectives": [
        {"objective_id": "OBJ-GROWTH", "name": "Grow digital revenue", "weight": 0.6},
        {"objective_id": "OBJ-COST", "name": "Cut operating cost", "weight": 0.4},
    ],
}


def reason(model: type[EventData], data: Any) -> str:
    """The InvalidEvent reason an integrator would see for this data."""
    envelope = Envelope(
        id="1",
        source="urn:test",
        type=f"pmo.{model.event_name}",
        specversion="1.0",
        time=None,
        subject=None,
        datacontenttype="application/json",
        data=data,
        extensions={},
    )
    with pytest.raises(InvalidEvent) as caught:
        decode_data(envelope, model)
    return caught.value.reason


def test_event_names_and_registries() -> None:
    assert set(INBOUND_EVENTS) == {
        "project-started",
        "status-changed",
        "resource-requested",
        "strategy-changed",
    }
    assert set(OUTBOUND_EVENTS) == {
        "project-registered",
        "project-lifecycle-changed",
        "portfolio-reprioritized",
        "project-at-risk",
        "project-recovered",
        "resource-allocated",
        "resource-conflict-resolved",
        "allocation-changed",
        "project-health-assessed",
        "project-rebaselined",
        "gate-reviewed",
        "lessons-suggested",
        "project-program-changed",
        "intervention-proposed",
        "intervention-accepted",
        "intervention-declined",
        "intervention-ended",
    }
    assert not set(INBOUND_EVENTS) & set(OUTBOUND_EVENTS)
    for name, model in EVENTS.items():
        assert model.event_name == name
        assert issubclass(model, EventData)


@pytest.mark.parametrize("model", list(EVENTS.values()), ids=list(EVENTS))
def test_every_model_has_a_json_schema(model: type[EventData]) -> None:
    # The AsyncAPI documentation is generated from these schemas.
    schema = model.model_json_schema(by_alias=True)
    assert schema["type"] == "object"
    assert schema["required"]


def test_project_started_full_payload() -> None:
    project = ProjectStarted.model_validate(
        {
            **PROJECT,
            "sponsor": "Chief Digital Officer",
            "objectives": [{"objective_id": "OBJ-GROWTH", "contribution": 0.8}],
            "key_project": True,
            "methodology": "hybrid",
            "planned_value_curve": [
                {"date": "2026-12-18", "planned_value": 1_200_000},
                {"date": "2026-03-31", "planned_value": 200_000},
                {"date": "2026-06-30", "planned_value": 600_000},
            ],
        }
    )
    assert project.key() == "PRJ-2041"
    assert project.start_date == date(2026, 1, 5)
    assert project.objectives[0].contribution == 0.8
    # The sender's order of curve points does not matter.
    assert project.planned_value_curve is not None
    assert [point.date.month for point in project.planned_value_curve] == [3, 6, 12]


def test_project_started_defaults_and_normalisation() -> None:
    project = ProjectStarted.model_validate(
        {**PROJECT, "project_id": "  PRJ-2041 ", "currency": "eur", "unknown_field": {"x": 1}}
    )
    assert project.project_id == "PRJ-2041"
    assert project.currency == "EUR"
    assert project.objectives == []
    assert project.key_project is False
    assert project.planned_value_curve is None
    assert not hasattr(project, "unknown_field")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"budget": -1}, "data.budget: must be at least 0 (got -1)"),
        ({"budget": "lots"}, 'data.budget: must be a number (got "lots")'),
        (
            {"currency": "EURO"},
            'data.currency: must be a 3-letter ISO 4217 code like EUR (got "EURO")',
        ),
        ({"currency": "E1R"}, "data.currency: must be a 3-letter ISO 4217 code"),
        (
            {"manager": "ada"},
            'data.manager: must be an e-mail address like pm@example.com (got "ada")',
        ),
        ({"manager": "ada@localhost"}, "data.manager: must be an e-mail address"),
        ({"project_id": ""}, 'data.project_id: must not be empty (got "")'),
        ({"project_id": "   "}, "data.project_id: must not be empty"),
        ({"project_id": 2041}, "data.project_id: must be a string (got 2041)"),
        ({"name": None}, "data.name: must be a string (got null)"),
        (
            {"planned_finish_date": "2025-12-31"},
            "data.planned_finish_date: must not be before start_date 2026-01-05 (got 2025-12-31)",
        ),
        (
            {"start_date": "05/01/2026"},
            "data.start_date: must be a date like 2026-01-31 (or an RFC 3339 date-time) "
            '(got "05/01/2026")',
        ),
        (
            {"start_date": 20260105},
            "data.start_date: must be a date like 2026-01-31 (or an RFC 3339 date-time) "
            "(got 20260105)",
        ),
        ({"start_date": "2026-02-30"}, "data.start_date: must be a date like 2026-01-31"),
        ({"start_date": "1767571200"}, "data.start_date: must be a date like 2026-01-31"),
        ({"start_date": "2026-1-5"}, "data.start_date: must be a date like 2026-01-31"),
        ({"start_date": "2026-01-05Z"}, "data.start_date: must be a date like 2026-01-31"),
        ({"key_project": [1]}, "data.key_project: must be true or false (got [1])"),
        (
            {"objectives": [{"objective_id": "OBJ-1", "contribution": 1.5}]},
            "data.objectives[0].contribution: must be at most 1 (got 1.5)",
        ),
        (
            {"objectives": [{"objective_id": "OBJ-1"}]},
            "data.objectives[0].contribution: is required",
        ),
        (
            {
                "objectives": [
                    {"objective_id": "OBJ-1", "contribution": 0.5},
                    {"objective_id": "OBJ-1", "contribution": 0.2},
                ]
            },
            'data.objectives: objective_id "OBJ-1" is listed twice',
        ),
        ({"objectives": {"OBJ-1": 0.5}}, "data.objectives: must be a list"),
        (
            {
                "planned_value_curve": [
                    {"date": "2026-03-31", "planned_value": 500},
                    {"date": "2026-06-30", "planned_value": 400},
                ]
            },
            "data.planned_value_curve: must be cumulative: planned_value falls from 500.0 on "
            "2026-03-31 to 400.0 on 2026-06-30",
        ),
        (
            {
                "planned_value_curve": [
                    {"date": "2026-03-31", "planned_value": 500},
                    {"date": "2026-03-31", "planned_value": 600},
                ]
            },
            "data.planned_value_curve: has two points on 2026-03-31",
        ),
    ],
)
def test_project_started_rejections(changes: dict[str, Any], expected: str) -> None:
    assert expected in reason(ProjectStarted, {**PROJECT, **changes})


def test_missing_required_fields_are_all_named() -> None:
    text = reason(ProjectStarted, {"project_id": "PRJ-1", "name": "X"})
    assert text.startswith("data.business_unit: is required; data.manager: is required")
    assert text.endswith("; and 1 more")


def test_date_time_strings_give_their_date() -> None:
    status = StatusChanged.model_validate({**STATUS, "as_of": "2026-06-30T17:00:00+02:00"})
    assert status.as_of == date(2026, 6, 30)
    assert "data.as_of: must be a date" in reason(
        StatusChanged, {**STATUS, "as_of": "2026-06-30Tnoon"}
    )


def test_status_changed_full_payload() -> None:
    status = StatusChanged.model_validate(
        {
            **STATUS,
            "lifecycle": "on_hold",
            "reported_health": "amber",
            "milestones": [
                {"name": "Design signed off", "due": "2026-03-31", "done": True},
                {"name": "Pilot live", "due": "2026-07-15"},
            ],
            "comment": "Paused for budget review.",
        }
    )
    assert status.key() == "PRJ-2041"
    assert status.lifecycle == "on_hold"
    assert status.milestones is not None
    assert [milestone.done for milestone in status.milestones] == [True, False]


def test_status_changed_distinguishes_absent_from_empty_milestones() -> None:
    assert StatusChanged.model_validate(STATUS).milestones is None
    assert StatusChanged.model_validate({**STATUS, "milestones": []}).milestones == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"percent_complete": 140}, "data.percent_complete: must be at most 100 (got 140)"),
        ({"percent_complete": -3}, "data.percent_complete: must be at least 0 (got -3)"),
        ({"actual_cost": -0.01}, "data.actual_cost: must be at least 0 (got -0.01)"),
        (
            {"lifecycle": "closed"},
            "data.lifecycle: must be one of 'active', 'on_hold', 'completed' or 'terminated' "
            '(got "closed")',
        ),
        (
            {"reported_health": "yellow"},
            "data.reported_health: must be one of 'green', 'amber' or 'red'",
        ),
        (
            {"milestones": [{"name": "Go-live", "due": "soon"}]},
            "data.milestones[0].due: must be a date",
        ),
        ({"milestones": [{"due": "2026-07-01"}]}, "data.milestones[0].name: is required"),
    ],
)
def test_status_changed_rejections(changes: dict[str, Any], expected: str) -> None:
    assert expected in reason(StatusChanged, {**STATUS, **changes})


def test_resource_requested_accepts_role_and_hours() -> None:
    request = ResourceRequested.model_validate(
        {
            **{k: v for k, v in REQUEST.items() if k not in ("skill", "fte")},
            "role": "Scrum Master",
            "hours": 320,
            "priority": 2,
            "named_resource": "EMP-1042",
        }
    )
    assert request.skill == "Scrum Master"
    assert (request.fte, request.hours) == (None, 320)
    assert request.priority == "2"
    assert request.key() == "PRJ-2041"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"fte": 0}, "data.fte: must be greater than 0 (got 0)"),
        ({"hours": 40}, "data: must give exactly one of fte or hours (got both)"),
        ({"fte": None}, "data: must give exactly one of fte or hours (got neither)"),
        ({"end": "2026-06-30"}, "data.end: must not be before start 2026-07-01 (got 2026-06-30)"),
        ({"skill": ""}, "data.skill: must not be empty"),
        ({"request_id": None}, "data.request_id: must be a string (got null)"),
    ],
)
def test_resource_requested_rejections(changes: dict[str, Any], expected: str) -> None:
    assert expected in reason(ResourceRequested, {**REQUEST, **changes})


def test_strategy_changed_with_directives() -> None:
    strategy = StrategyChanged.model_validate(
        {
            **STRATEGY,
            "directives": [
                {"action": "terminate", "project_id": "PRJ-0999", "reason": "Market exit"},
                {"action": "accelerate", "objective_id": "OBJ-GROWTH", "reason": "Board priority"},
                {"action": "pause", "business_unit": "Wholesale", "reason": "Spending freeze"},
            ],
        }
    )
    assert strategy.key() == "3"
    assert [directive.action for directive in strategy.directives] == [
        "terminate",
        "accelerate",
        "pause",
    ]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"strategy_version": 0}, "data.strategy_version: must be greater than 0 (got 0)"),
        ({"strategy_version": "v3"}, 'data.strategy_version: must be a whole number (got "v3")'),
        ({"strategy_version": 2.5}, "data.strategy_version: must be a whole number (got 2.5)"),
        ({"objectives": []}, "data.objectives: must have at least 1 item(s) (got [])"),
        (
            {"objectives": [{"objective_id": "OBJ-1", "name": "Growth", "weight": -1}]},
            "data.objectives[0].weight: must be at least 0 (got -1)",
        ),
        (
            {"objectives": [{"objective_id": "OBJ-1", "name": "Growth", "weight": 0}]},
            "data.objectives: must give at least one objective a positive weight",
        ),
        (
            {"directives": [{"action": "pause", "reason": "x"}]},
            "data.directives[0]: must name exactly one of project_id, business_unit, "
            "objective_id or program_id (got none)",
        ),
        (
            {
                "directives": [
                    {"action": "pause", "project_id": "P", "business_unit": "B", "reason": "x"}
                ]
            },
            "data.directives[0]: must name exactly one of project_id, business_unit, "
            "objective_id or program_id (got 2)",
        ),
        (
            {"directives": [{"action": "cancel", "project_id": "P", "reason": "x"}]},
            "data.directives[0].action: must be one of 'terminate', 'pause', 'accelerate' or "
            "'deprioritize'",
        ),
    ],
)
def test_strategy_changed_rejections(changes: dict[str, Any], expected: str) -> None:
    assert expected in reason(StrategyChanged, {**STRATEGY, **changes})


def test_data_that_is_not_an_object() -> None:
    assert reason(StatusChanged, [STATUS]).startswith("data: must be a JSON object (got [{")
    assert reason(StatusChanged, None) == "data: missing; a pmo.status-changed event needs data"


def test_lifecycle_changed_uses_from_and_to_as_json_keys() -> None:
    change = ProjectLifecycleChanged(
        project_id="PRJ-1", from_stage="active", to_stage="on_hold", cause="status-changed"
    )
    dumped = change.model_dump(mode="json", by_alias=True)
    assert dumped == {
        "project_id": "PRJ-1",
        "from": "active",
        "to": "on_hold",
        "cause": "status-changed",
    }
    assert ProjectLifecycleChanged.model_validate(dumped) == change
    assert "data.from: must be one of" in reason(ProjectLifecycleChanged, {**dumped, "from": "x"})


def test_outbound_keys() -> None:
    ranking = PortfolioReprioritized(
        strategy_version=7,
        projects=[
            RankedProject(project_id="P", score=0.9, rank=1, action="continue", why="Top score")
        ],
    )
    assert ranking.key() == "7"
    conflict = ResourceConflictResolved(
        conflict_id="C-1", skill="sap-abap", weeks=["2026-W48"], winners=[], losers=[], rationale=""
    )
    assert conflict.key() == "C-1"


def test_conflict_names_what_was_contested() -> None:
    with pytest.raises(ValidationError, match="must name the contested skill or resource_id"):
        ResourceConflictResolved(conflict_id="C-1", weeks=[], winners=[], losers=[], rationale="")


@pytest.mark.parametrize(
    "week", ["2026-48", "2026-W00", "2026-W54", "2025-W53", "26-W01", "2026-W1"]
)
def test_iso_weeks_are_checked(week: str) -> None:
    with pytest.raises(ValidationError, match="must be an ISO week like 2026-W48"):
        AllocationSnapshot(fte_granted=1, weeks=[week])


def test_iso_week_53_exists_in_long_years() -> None:
    assert AllocationSnapshot(fte_granted=1, weeks=["2026-W53"]).weeks == ["2026-W53"]


def test_nan_never_enters_a_metric() -> None:
    # NaN would poison earned-value arithmetic downstream; producers must send null.
    with pytest.raises(ValidationError):
        ProjectAtRisk(project_id="P", severity="red", reasons=[], metrics={"spi": math.nan})
    at_risk = ProjectAtRisk(project_id="P", severity="red", reasons=[], metrics={"spi": None})
    assert at_risk.metrics == {"spi": None}


def test_models_are_immutable() -> None:
    allocated = ResourceAllocated(
        request_id="R",
        project_id="P",
        skill="java",
        fte_granted=1,
        fte_requested=2,
        weeks=["2026-W48"],
        status="partial",
        reason="capacity",
    )
    with pytest.raises(ValidationError):
        allocated.status = "granted"  # type: ignore[misc]


def test_project_registered_checks_dates_like_project_started() -> None:
    with pytest.raises(ValidationError, match="must not be before start_date"):
        ProjectRegistered.model_validate(
            {**PROJECT, "planned_finish_date": "2025-01-01", "lifecycle": "proposed"}
        )


def test_a_resource_request_over_an_endless_period_is_refused_with_the_limit() -> None:
    open_ended = {
        "project_id": "PRJ-1",
        "request_id": "REQ-1",
        "skill": "architect",
        "fte": 1,
        "start": "2026-01-05",
        "end": "9999-12-31",
    }
    assert "data.end: must be at most 5 years after start 2026-01-05" in reason(
        ResourceRequested, open_ended
    )


# --- RFC 3339 timestamps and dates (issue 12, item 1) -------------------------------------

RFC_3339_ACCEPTED = [
    ("2026-11-28T09:30:00Z", "2026-11-28T09:30:00+00:00"),
    ("2026-11-28t09:30:00z", "2026-11-28T09:30:00+00:00"),
    ("2026-11-28 09:30:00Z", "2026-11-28T09:30:00+00:00"),
    ("2026-11-28T09:30:00.5+01:00", "2026-11-28T09:30:00.500000+01:00"),
    ("2026-11-28T09:30:00.123456789-05:30", "2026-11-28T09:30:00.123456-05:30"),
    ("2026-11-28T09:30:00-00:00", "2026-11-28T09:30:00+00:00"),
    ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59.999999+00:00"),
]
RFC_3339_REFUSED = [
    "2026-11-28",
    "2026-11-28T09:30:00",
    "2026-11-28T09:30Z",
    "20261128T093000Z",
    "2026-W48-6T09:30:00Z",
    "2026-02-30T09:30:00Z",
    "2026-11-28T24:00:00Z",
    "2026-11-28T09:30:00+0100",
    "yesterday",
    "",
]


@pytest.mark.parametrize(("text", "moment"), RFC_3339_ACCEPTED)
def test_every_rfc_3339_timestamp_form_is_accepted(text: str, moment: str) -> None:
    assert parse_timestamp(text).isoformat() == moment


@pytest.mark.parametrize("text", RFC_3339_REFUSED)
def test_what_rfc_3339_refuses_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(ValueError, match=r"^attribute 'time' must be an RFC 3339 timestamp"):
        parse_timestamp(text, "attribute 'time'")


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("2026-11-28", "2026-11-28"),
        ("2026-11-28t23:30:00z", "2026-11-28"),
        ("2026-11-28T23:30:00-08:00", "2026-11-28"),
        ("2026-11-28 23:30:00", "2026-11-28"),
    ],
)
def test_dates_take_full_dates_and_the_date_part_of_rfc_3339_date_times(
    text: str, day: str
) -> None:
    report = StatusChanged.model_validate(
        {"project_id": "P", "as_of": text, "percent_complete": 1, "actual_cost": 0}
    )
    assert report.as_of.isoformat() == day


@pytest.mark.parametrize(
    "text", ["2026-W48-6", "2026-11-28T23:30", "28/11/2026", "2026-11-28Tnoon"]
)
def test_other_date_forms_are_refused_naming_the_field(text: str) -> None:
    with pytest.raises(ValidationError, match="as_of"):
        StatusChanged.model_validate(
            {"project_id": "P", "as_of": text, "percent_complete": 1, "actual_cost": 0}
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("percent_complete", "20.0"),
        ("percent_complete", True),
        ("actual_cost", "1000"),
        ("lifecycle", 1),
    ],
)
def test_status_report_types_are_strict(field: str, value: object) -> None:
    report = {"project_id": "P", "as_of": "2026-01-01", "percent_complete": 1, "actual_cost": 0}
    with pytest.raises(ValidationError, match=field):
        StatusChanged.model_validate({**report, field: value})


@pytest.mark.parametrize("version", ["999999", 5.5, True, 0, -1])
def test_strategy_version_is_a_positive_whole_number(version: object) -> None:
    strategy = {
        "effective_date": "2026-01-01",
        "objectives": [{"objective_id": "O", "name": "Growth", "weight": 1}],
    }
    with pytest.raises(ValidationError, match="strategy_version"):
        StrategyChanged.model_validate({**strategy, "strategy_version": version})


def _field_names(model: type[Any]) -> set[str]:
    """Every field name of a contract model and of the models it nests, as senders write them."""
    from pydantic import BaseModel

    names: set[str] = set()
    for name, field in model.model_fields.items():
        names.add(field.alias or name)
        for argument in getattr(field.annotation, "__args__", ()) or (field.annotation,):
            inner = getattr(argument, "__args__", (argument,))
            for candidate in inner:
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    names |= _field_names(candidate)
    return names


def test_the_readme_catalog_gives_every_inbound_field_its_type_and_bounds() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### Inbound contract", 1)[1].split("\n## ", 1)[0]
    for event_name, model in INBOUND_EVENTS.items():
        assert f"| `{event_name}` |" in section, event_name
        missing = {name for name in _field_names(model) if f"`{name}`" not in section}
        assert not missing, f"{event_name}: {sorted(missing)} not in the README's catalog"


@pytest.mark.parametrize(
    "project_id", ["P\u0085X", "P\u009fX", "P\u202eX", "P\u2066X", "P\x7fX", "P\tX"]
)
def test_ids_refuse_c0_c1_controls_and_bidi_overrides(project_id: str) -> None:
    report = {"as_of": "2026-01-01", "percent_complete": 1, "actual_cost": 0}
    with pytest.raises(ValidationError, match="must not contain control characters"):
        StatusChanged.model_validate({**report, "project_id": project_id})


@pytest.mark.parametrize("project_id", ["PRJ-Ä-東京", "Zürich 2027", "a/b:c"])
def test_ids_keep_ordinary_unicode(project_id: str) -> None:
    report = {"as_of": "2026-01-01", "percent_complete": 1, "actual_cost": 0}
    assert StatusChanged.model_validate({**report, "project_id": project_id}).project_id == (
        project_id
    )


def test_the_health_ranking_ranks_every_health_worse_upwards() -> None:
    assert sorted(HEALTH_RANK, key=HEALTH_RANK.__getitem__) == list(get_args(Health))
