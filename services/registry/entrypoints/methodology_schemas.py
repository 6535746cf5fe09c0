"""What the registry's methodology API (gates, deliverables, reviews, lessons) takes and returns."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from shared.events.contracts import MAX_LIST_LENGTH, Name, Stage, Text
from shared.http_input import RequestBody

FilledText = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1)]
"""Free text that must say something (not empty or blank)."""
Tag = Annotated[Name, StringConstraints(to_lower=True, max_length=64)]


class DeliverableIn(RequestBody):
    """A deliverable a gate of the project's stage model requires, with its evidence."""

    name: Name
    """The deliverable's name in the stage model (see GET /stage-models), e.g. business_case."""
    evidence: FilledText
    """Where the deliverable is or what it says: a document link, a reference, a summary."""
    note: Text | None = None


class DeliverableOut(BaseModel):
    name: str
    evidence: str
    note: str | None
    submitted_by: str
    submitted_at: datetime


class GateReviewIn(RequestBody):
    """A review of the gate from the project's current stage to `to`."""

    to: Stage
    decision: Literal["passed", "failed"] = "passed"
    evidence: Text | None = None
    """The reviewer's own evidence or notes (minutes, approvals, conditions)."""


class GateReviewOut(BaseModel):
    id: int
    from_stage: str = Field(serialization_alias="from")
    to_stage: str = Field(serialization_alias="to")
    decision: str
    reviewer: str
    reviewed_at: datetime
    deliverables: list[dict[str, Any]]
    """The deliverables as the reviewer saw them: `[{name, evidence, submitted_by,
    submitted_at}]`."""
    evidence: str | None
    used_by: str | None
    """The event id or user whose move used it (or left the stage, so it lapsed); null: open."""


class GateOut(BaseModel):
    """One gate out of the project's current stage."""

    to: str
    requires: dict[str, Any]
    """The gate's conditions as the stage model states them (empty: none)."""
    missing: list[str]
    """The deliverables, lessons learned or review the project still lacks for it (a reason or
    a progress is checked with the move itself)."""


class ProjectGatesOut(BaseModel):
    project_id: str
    methodology: str
    stage: str
    gates: list[GateOut]
    deliverables: list[DeliverableOut]
    reviews: list[GateReviewOut]


class LessonIn(RequestBody):
    """A lesson learned on the project: what happened, what to repeat or to avoid."""

    title: Name
    what_happened: FilledText
    repeat: Text | None = None
    """What worked and should be done again."""
    avoid: Text | None = None
    """What went wrong and should not be done again."""
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_LIST_LENGTH)


class LessonOut(BaseModel):
    id: int
    project_id: str
    title: str
    what_happened: str
    repeat: str | None
    avoid: str | None
    tags: list[str]
    methodology: str | None
    business_unit: str
    stage: str
    """The project's stage when the lesson was recorded."""
    recorded_by: str
    recorded_at: datetime


class FoundLessonOut(LessonOut):
    rank: float
    """PostgreSQL's ts_rank_cd of the lesson for the query: higher is more relevant."""


class LessonSuggestionOut(LessonOut):
    similarity: list[str]
    """What the lesson's closed project shares with this one: business_unit, methodology,
    objectives."""
