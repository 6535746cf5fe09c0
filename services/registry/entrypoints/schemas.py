"""What the registry's HTTP API takes and returns."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.events.contracts import (
    CharterFields,
    Currency,
    Directive,
    DirectiveAction,
    Email,
    Id,
    IsoDate,
    Money,
    Name,
    Objectives,
    PlannedValuePoint,
    ProjectIdentity,
    RecommendedAction,
    Stage,
    StrategicObjective,
    Text,
)
from shared.http_input import RequestBody


class _Request(RequestBody):
    """A registry request body (unknown fields and lax types refused)."""


# The charter's fields and rules are the events' (CharterFields); only the ones below differ.
class ProjectProposalIn(CharterFields, ProjectIdentity, _Request):
    """A project proposed to the PMO; it enters its stage model's initial stage (`proposed`)."""

    # Optional here only: the registry fills in the caller before the charter is validated.
    manager: Email | None = None  # type: ignore[assignment]
    """Defaults to the caller; a project manager may propose only projects they manage."""
    key_project: bool = False
    """Only a PMO administrator may designate a key project."""
    methodology: Name | None = None
    """A stage model name (see GET /stage-models); unset: the default model."""


NULLABLE_CHANGES = frozenset({"sponsor"})
"""Fields a PATCH may set to null; the others are required charter fields."""
ADMIN_ONLY_CHANGES = frozenset({"manager", "key_project"})


class ProjectChangesIn(_Request):
    """The charter fields to change; the ones left out stay as they are."""

    nullable_fields = NULLABLE_CHANGES

    name: Name | None = None
    business_unit: Id | None = None
    manager: Email | None = None
    """Administrators only: handing a project to another manager."""
    sponsor: Text | None = None
    start_date: IsoDate | None = None
    planned_finish_date: IsoDate | None = None
    budget: Money | None = None
    currency: Currency | None = None
    objectives: Objectives | None = None
    key_project: bool | None = None
    """Administrators only."""
    methodology: Name | None = None


class TransitionIn(_Request):
    to: Stage
    reason: Text | None = None
    """Why; some stage models require one (e.g. prince2's premature closure)."""


class ProjectOut(BaseModel):
    project_id: str
    name: str
    business_unit: str
    manager: str
    sponsor: str | None
    start_date: date
    planned_finish_date: date
    budget: float
    currency: str
    objectives: list[dict[str, Any]]
    key_project: bool
    methodology: str | None
    lifecycle: str
    next_stages: list[str]
    """Where its stage model allows it to go from here."""
    percent_complete: float | None
    status_as_of: date | None
    health: str | None
    """Monitoring's newest assessment (green, amber, red); null: not assessed yet."""
    health_reasons: list[str]
    """The reasons' codes, worst first."""
    health_details: list[dict[str, Any]]
    """The reasons in words and numbers: `[{code, severity, message, numbers}]`."""
    health_metrics: dict[str, float | None]
    """The assessment's figures: SPI, SPI(t), CPI, EAC, VAC, TCPI, ... (null where undefined)."""
    health_status_as_of: date | None
    """The as-of date of the status report the assessment's figures come from."""
    health_as_of: datetime | None
    """When monitoring assessed (the newest assessment is shown)."""
    forecast_finish: date | None
    at_risk_since: datetime | None
    baseline_version: int | None
    """The approved baseline in force: 1 as started, higher once re-baselined; null before the
    project started."""
    rebaselined_at: datetime | None
    """When the baseline in force was approved, if the project was re-baselined."""
    program_id: str | None = None
    """The program it belongs to (GET /programs/{program_id}); null: none."""
    open_shortfall_fte: float
    rank: int | None
    """Rank at the last reprioritization (GET /portfolio ranks the portfolio as it is now)."""
    score: float | None
    recommended_action: str | None
    registered_at: datetime | None
    registered_by: str
    updated_at: datetime | None


class ProjectPageOut(BaseModel):
    items: list[ProjectOut]
    total: int
    """How many projects match the filters, over all pages."""
    next_cursor: str | None
    """Pass as `cursor` for the next page; null on the last page."""


class BaselineIn(_Request):
    """A new baseline for a started project; fields left out keep the baseline in force."""

    budget: Money | None = None
    """The new budget at completion (BAC)."""
    start_date: IsoDate | None = None
    planned_finish_date: IsoDate | None = None
    planned_value_curve: list[PlannedValuePoint] | None = None
    """The new cumulative planned value over time; left out: linear from start to finish."""
    reason: Name
    """Why the PMO approved the change (kept with the baseline and in the history); bounded as
    the project-rebaselined event that carries it."""


class BaselineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    project_id: str
    version: int
    """1: the baseline the project started with; each re-baseline adds one."""
    budget: float
    start_date: date
    planned_finish_date: date
    planned_value_curve: list[dict[str, Any]] | None
    approved_by: str
    reason: str
    approved_at: datetime
    cause: str
    """The event id, or the subject of the approver's token."""
    in_force: bool = False


class HistoryEntryOut(BaseModel):
    id: int
    at: datetime
    change: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    cause: str
    """The event id, or the subject of the user's token."""
    note: str | None


class HistoryPageOut(BaseModel):
    project_id: str
    items: list[HistoryEntryOut]
    next_cursor: int | None


class DirectiveEffectOut(BaseModel):
    directive: int
    action: DirectiveAction
    target: str
    project_id: str | None
    effect: str
    """moved, unchanged, impossible, ranked_ahead or ranked_behind."""
    from_stage: Stage | None
    to_stage: Stage | None
    reason: str
    note: str


class StrategyOut(BaseModel):
    strategy_version: int
    effective_date: date
    objectives: list[StrategicObjective]
    directives: list[Directive]
    received_at: datetime | None
    cause: str
    directive_effects: list[DirectiveEffectOut]


class StrategyReceivedOut(BaseModel):
    id: int
    strategy_version: int
    effective_date: date
    outcome: str
    """applied, or ignored (an older or equal version than the current one)."""
    note: str | None
    cause: str
    received_at: datetime | None


class RankedProjectOut(BaseModel):
    project_id: str
    name: str
    business_unit: str
    lifecycle: str
    key_project: bool
    score: float
    rank: int
    previous_rank: int | None
    """Its rank at the last reprioritization."""
    action: RecommendedAction
    why: str


class PortfolioOut(BaseModel):
    strategy_version: int | None
    projects: list[RankedProjectOut]


class WhatIfOut(BaseModel):
    draft_version: int
    current_version: int | None
    would_apply: bool
    """False if the draft is not newer than the current version (an event would be ignored)."""
    note: str
    ranking: list[RankedProjectOut]
    directive_effects: list[DirectiveEffectOut]


class StageModelOut(BaseModel):
    name: str
    default: bool
    description: str
    initial: str
    started: str
    stages: dict[str, dict[str, Any]]
    transitions: list[dict[str, Any]]


class ProgramDefinitionIn(_Request):
    """A program: projects managed as one; temporary (e.g. a merger) when it has an end date."""

    program_id: Id
    name: Name
    description: Text | None = None
    end_date: IsoDate | None = None
    """When a temporary program ends; left out: a standing program."""


class ProgramChangesIn(_Request):
    """The program fields to change; the ones left out stay as they are."""

    nullable_fields = frozenset({"description", "end_date"})

    name: Name | None = None
    description: Text | None = None
    end_date: IsoDate | None = None
    """null: the program becomes a standing one."""


class ProgramMembershipIn(_Request):
    """The program a project belongs to from now on."""

    program_id: Id | None
    """null: the project leaves its program."""


class ProgramOut(BaseModel):
    program_id: str
    name: str
    description: str | None
    end_date: date | None
    """A temporary program's end date; null: a standing program."""
    temporary: bool
    ended: bool
    """A temporary program whose end date has passed (no project may join it)."""
    project_ids: list[str]
    created_at: datetime | None
    created_by: str
    """The user, or the event whose charter named the program first."""
    updated_at: datetime | None


class ProgramProjectFiguresOut(BaseModel):
    """One project's part in its program's roll-up (money in the project's currency)."""

    project_id: str
    name: str
    lifecycle: str
    currency: str
    health: str | None
    bac: float
    """Budget at completion: monitoring's figure when assessed, else the charter's budget."""
    pv: float | None
    ev: float | None
    ac: float | None
    eac: float | None
    spi: float | None
    cpi: float | None
    planned_finish_date: date
    forecast_finish: date | None
    open_shortfall_fte: float


class ProgramReasonOut(BaseModel):
    project_id: str
    code: str
    severity: str | None
    message: str


class PeopleAndConflictsOut(BaseModel):
    """Where the program's people and resource conflicts are: allocation owns them."""

    service: str = "allocation"
    people: list[str]
    """Allocation's routes listing who works on each project, one per project."""
    conflicts: list[str]
    """Allocation's routes listing each project's conflicts (won or lost)."""


class ProgramRollUpOut(BaseModel):
    """A program's earned value from the sums of its projects' figures (see the README)."""

    program: ProgramOut
    currency: str | None
    """The projects' one currency; null with several (money figures are then null)."""
    currencies: list[str]
    budget_at_completion: float | None
    planned_value: float | None
    earned_value: float | None
    actual_cost: float | None
    spi: float | None
    """sum(EV) / sum(PV)."""
    cpi: float | None
    """sum(EV) / sum(AC)."""
    estimate_at_completion: float | None
    """Sum of the projects' EAC (a project without one counts its budget)."""
    variance_at_completion: float | None
    health: str | None
    """The worst health of its projects; null: none assessed yet."""
    reasons: list[ProgramReasonOut]
    not_assessed: list[str]
    eac_at_budget: list[str]
    open_shortfall_fte: float
    """FTE requested and not granted over its projects (the losers of allocation's conflicts)."""
    finishing_after_end: list[str]
    """Open projects forecast (else planned) to finish after a temporary program's end date."""
    projects: list[ProgramProjectFiguresOut]
    people_and_conflicts: PeopleAndConflictsOut
