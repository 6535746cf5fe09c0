"""The shapes of allocation's HTTP API: what callers send (`...In`) and get back (`...Out`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, Field, field_validator, model_validator

from services.allocation.domain.pool import ChangeKind
from shared.events.contracts import (
    AllocationSnapshot,
    Assignment,
    Id,
    InterventionOrigin,
    IsoDate,
    Name,
    ResourceRequested,
    Stage,
    Text,
)
from shared.http_input import RequestBody

Capacity = Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)]
ConflictState = Literal["resolved", "closed"]
InterventionState = Literal["proposed", "accepted", "declined", "ended"]

Week = Annotated[str, Query(pattern=r"^\d{4}-W\d{2}$", description="An ISO week like 2026-W48")]
"""A query parameter naming an ISO week."""


class CapacityChangeIn(RequestBody):
    """From `starts` to `ends` (open-ended when absent) the resource has `capacity_fte` a week."""

    starts: IsoDate
    ends: IsoDate | None = None
    capacity_fte: Capacity
    kind: ChangeKind | None = None
    """absence: an exception capping the working pattern (holiday, leave, 0 FTE or reduced);
    contract: the working pattern itself (part time, back to full time, leaving). When absent:
    an absence if it has an end, a contract change otherwise."""
    reason: str = ""
    """E.g. holiday, part time, leaving."""

    @model_validator(mode="after")
    def _ordered(self) -> CapacityChangeIn:
        if self.ends is not None and self.ends < self.starts:
            raise ValueError(f"ends {self.ends} is before starts {self.starts}")
        return self


class ResourceIn(RequestBody):
    """A person or team joining the pool."""

    resource_id: Id
    name: Name
    skills: list[Name] = Field(min_length=1)
    capacity_fte: Capacity
    """Usual FTE per week: 1 for a full-time person, 0.6 part time, 4 for a team of four."""
    capacity_changes: list[CapacityChangeIn] = Field(default_factory=list)


class ResourcePatchIn(RequestBody):
    """Fields to change; absent ones stay. `capacity_changes` replaces the whole list."""

    name: Name | None = None
    skills: list[Name] | None = Field(default=None, min_length=1)
    capacity_fte: Capacity | None = None
    capacity_changes: list[CapacityChangeIn] | None = None


class CapacityChangeOut(BaseModel):
    starts: date
    ends: date | None
    capacity_fte: float
    kind: ChangeKind
    reason: str


class ResourceOut(BaseModel):
    resource_id: str
    name: str
    skills: list[str]
    capacity_fte: float
    capacity_changes: list[CapacityChangeOut]
    updated_at: datetime | None


class AssignmentOut(BaseModel):
    """One person on one request at one FTE over some weeks."""

    request_id: str
    project_id: str
    skill: str
    resource_id: str
    resource_name: str | None
    fte: float
    weeks: list[str]


class RequestOut(BaseModel):
    request_id: str
    project_id: str
    skill: str
    fte: float | None
    hours: float | None
    fte_per_week: float
    """What the request asks for on each working day, so in each full week (hours spread over
    its working days at the configured rate)."""
    fte_by_week: dict[str, float]
    """What it asks for in each of its weeks: a week it covers on 3 of 5 working days holds
    3/5 of `fte_per_week`."""
    start: date
    end: date
    weeks: list[str]
    """The ISO weeks holding its working days (none for a weekends-only request)."""
    priority: str | None
    named_resource: str | None
    status: str
    """open (not decided yet), granted, partial or denied."""
    fte_granted: float | None
    reason: str | None
    received_at: datetime | None
    decided_at: datetime | None
    assignments: list[Assignment] = []


class WeekUtilisationOut(BaseModel):
    week: str
    capacity_fte: float
    allocated_fte: float
    utilisation: float | None
    """allocated / capacity; None when there is no capacity that week."""


class ResourceUtilisationOut(BaseModel):
    """One line of the heatmap: a person's load week by week."""

    resource_id: str
    name: str
    skills: list[str]
    weeks: list[WeekUtilisationOut]


class ConflictOut(BaseModel):
    conflict_id: str
    state: ConflictState
    """resolved: published (resource-conflict-resolved) and standing, its losers short as it
    says; closed: the shortage ended or a newer resolution superseded it (see closed_reason)."""
    skill: str | None
    resource_id: str | None
    weeks: list[str]
    winners: list[dict[str, Any]]
    losers: list[dict[str, Any]]
    rationale: str
    cause: str
    created_at: datetime | None
    resolved_at: datetime | None
    """When its resolution was (last) published."""
    closed_at: datetime | None
    closed_reason: str | None


class DraftRankIn(RequestBody):
    project_id: Id
    rank: int = Field(ge=1)
    score: float | None = Field(default=None, allow_inf_nan=False)


class WhatIfIn(RequestBody):
    """A draft to try: a whole ranking, stage changes, hypothetical requests (any mix)."""

    ranking: list[DraftRankIn] | None = None
    """The draft strategy's ranking of the whole portfolio (projects left out are unranked)."""
    lifecycle: dict[str, Stage] | None = None
    """Draft stages by project id, e.g. {"PRJ-X": "terminated"}."""
    requests: list[ResourceRequested] = Field(default_factory=list)
    """Hypothetical requests, as the resource-requested event would carry them."""

    @field_validator("ranking")
    @classmethod
    def _ranked_once(cls, value: list[DraftRankIn] | None) -> list[DraftRankIn] | None:
        if value is not None:
            ids = [draft.project_id for draft in value]
            twice = sorted({i for i in ids if ids.count(i) > 1})
            if twice:
                raise ValueError(f"ranks {', '.join(twice)} more than once")
        return value

    @model_validator(mode="after")
    def _something(self) -> WhatIfIn:
        if self.ranking is None and not self.lifecycle and not self.requests:
            raise ValueError("give a ranking, lifecycle stages or requests to try")
        return self


class WhatIfChangeOut(BaseModel):
    request_id: str
    project_id: str
    before: AllocationSnapshot
    after: AllocationSnapshot
    reason: str


class WhatIfOutcomeOut(BaseModel):
    request_id: str
    project_id: str
    status: str
    fte_requested: float
    fte_granted: float
    weeks: list[str]
    assignments: list[Assignment]
    reason: str


class WhatIfConflictOut(BaseModel):
    conflict_id: str
    new: bool
    """Not among today's conflicts."""
    skill: str | None
    resource_id: str | None
    weeks: list[str]
    winners: list[dict[str, Any]]
    losers: list[dict[str, Any]]
    rationale: str


class SolverReportOut(BaseModel):
    method: str
    status: str
    seconds: float
    value: float
    greedy_value: float | None
    moved_allocations: int


class WhatIfOut(BaseModel):
    """What the draft would do; nothing was changed or published."""

    changes: list[WhatIfChangeOut]
    hypothetical: list[WhatIfOutcomeOut]
    conflicts: list[WhatIfConflictOut]
    solver: SolverReportOut


class ResolutionOut(BaseModel):
    id: int
    ran_at: datetime | None
    causes: list[str]
    weeks: int
    requests: int
    method: str
    status: str
    seconds: float
    value: float
    greedy_value: float | None
    mip_gap: float
    moved: int
    decided: int
    changed: int
    conflicts: int


class ProjectPriorityOut(BaseModel):
    """What allocation knows of a project's priority, from the registry's events."""

    project_id: str
    name: str | None
    manager: str | None
    lifecycle: str | None
    """None until the registry's project-registered (or a lifecycle change) arrived."""
    key_project: bool
    rank: int | None
    score: float | None
    strategy_version: int | None
    why: str | None


class ExpertOut(BaseModel):
    """One of the PMO's experts: a resource of the pool with specialties."""

    resource_id: str
    name: str
    specialties: list[str]
    capacity_fte: float
    """Usual FTE per week."""


class SpecialtiesIn(RequestBody):
    """The resource's PMO specialties (replacing the list); empty: no longer a PMO expert."""

    specialties: list[Name] = Field(max_length=50)


class AdviceIn(RequestBody):
    """A project manager asks a PMO expert's advice on their project."""

    topic: Name
    """The specialty wanted, e.g. `schedule-recovery`, `cost-control`, `agile-coaching`."""
    fte: float = Field(gt=0, le=1, allow_inf_nan=False)
    """How much of the expert's time, in FTE per week (0.2 = one day a week)."""
    until: IsoDate
    """The last day of the advice (from today on)."""
    note: Text = ""
    """What the manager would like help with."""


class AcceptIn(RequestBody):
    note: Text = ""


class DeclineIn(RequestBody):
    reason: Annotated[Text, Field(min_length=1)]
    """Why the proposal is declined (told to the project manager)."""


class InterventionOut(BaseModel):
    """An intervention as it stands."""

    intervention_id: str
    project_id: str
    origin: InterventionOrigin
    specialty: str
    reasons: list[str]
    fte: float
    """FTE per week of the expert's time."""
    start: date
    end: date
    expert_id: str | None
    staffing: str
    """Why this expert, or why none is free."""
    state: InterventionState
    requested_by: str | None
    decided_by: str | None
    decision_note: str | None
    request_id: str | None
    """The resource request allocating the expert, once accepted."""
    end_reason: str | None
    proposed_at: datetime | None
    decided_at: datetime | None
    ended_at: datetime | None
