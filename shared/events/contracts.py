"""The `data` of every PMO event, inbound and outbound, as validated pydantic models."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Final, Literal

import ciso8601
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import to_json

# --- field types ----------------------------------------------------------------------------

MAX_ID_LENGTH: Final = 128
"""Longest identifier (project, request, objective, resource, business unit id), in characters."""
MAX_NAME_LENGTH: Final = 200
"""Longest name (project, skill, objective, milestone), in characters."""
MAX_TEXT_LENGTH: Final = 4000
"""Longest free text (comment, reason, sponsor), in characters."""
MAX_LIST_LENGTH: Final = 1000
"""Most items in one list of an event (objectives, milestones, planned-value points...)."""

CONTROL_CHARACTERS_PROBLEM: Final = "must not contain control characters"
NUL_PROBLEM: Final = "must not contain NUL characters"


# C0 and C1 controls and DEL (Unicode category Cc), and the bidirectional overrides and isolates
# that make text display other than it reads ("Trojan Source").
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _no_control_characters(value: str) -> str:
    # Ids and names are keys, labels and log fields: a NUL cannot be stored (PostgreSQL text),
    # a newline or escape sequence in one would forge log lines or break a report, and a bidi
    # override would show a PMO another id than the one stored.
    if _CONTROL.search(value):
        raise ValueError(CONTROL_CHARACTERS_PROBLEM)
    return value


def _no_nul(value: str) -> str:
    # Free text may hold line breaks and tabs, but not NUL, which no store or sender means.
    if "\x00" in value:
        raise ValueError(NUL_PROBLEM)
    return value


# Ids cross system boundaries (ERP, Jira, HR): a stray space would silently split one project
# into two, so surrounding whitespace is dropped rather than kept or rejected.
# The checks run as validators (for their messages); the patterns tell the JSON Schema the same.
_NO_CONTROL_PATTERN = Field(
    json_schema_extra={
        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069]*$"
    }
)
_NO_NUL_PATTERN = Field(json_schema_extra={"pattern": "^[^\\u0000]*$"})
Id = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ID_LENGTH),
    AfterValidator(_no_control_characters),
    _NO_CONTROL_PATTERN,
]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_LENGTH),
    AfterValidator(_no_control_characters),
    _NO_CONTROL_PATTERN,
]
Text = Annotated[
    str, StringConstraints(max_length=MAX_TEXT_LENGTH), AfterValidator(_no_nul), _NO_NUL_PATTERN
]
"""Free text: any characters but NUL, bounded."""

DATE_PROBLEM = "must be a date like 2026-01-31 (or an RFC 3339 date-time)"
TIMESTAMP_PROBLEM = "must be an RFC 3339 timestamp with a time zone, like 2026-11-26T09:30:00Z"
_FULL_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_LOCAL_DATE_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?", re.ASCII)
_LEAP_SECOND = re.compile(r"(.{17})60((?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2}))", re.ASCII)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_CURRENCY = re.compile(r"[A-Z]{3}")
_ISO_WEEK = re.compile(r"(\d{4})-W(\d{2})")


def _shown(value: object) -> str:
    # JSON notation, because that is what the sender wrote.
    try:
        text = to_json(value).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def parse_timestamp(text: str, field: str = "timestamp") -> datetime:
    """An RFC 3339 `date-time` (section 5.6) as an aware datetime; raises ValueError naming `field`.

    Accepts what RFC 3339 accepts: `T`, `t` or a space between date and time, `Z`, `z` or a
    numeric offset (`-00:00` too), any number of fraction digits (kept to microseconds), and a
    leap second (`:60`, read as the last microsecond of its minute, which Python cannot hold).
    Refuses the rest, e.g. a missing offset, a date alone, ISO 8601's basic or week forms.
    """
    try:
        return ciso8601.parse_rfc3339(text)
    except ValueError:
        leap = _LEAP_SECOND.fullmatch(text)
        if leap is not None:
            try:
                minute = ciso8601.parse_rfc3339(f"{leap[1]}59{leap[2]}")
            except ValueError:
                pass
            else:
                return minute.replace(microsecond=999_999)
        raise ValueError(f"{field} {TIMESTAMP_PROBLEM} (got {_shown(text)})") from None


def _to_date(value: object) -> object:
    # pydantic alone would read an integer as a Unix timestamp and reject "2026-01-31T17:00:00",
    # both surprising for a business date; this takes RFC 3339 full dates and the date part of
    # RFC 3339 date-times (with or without an offset: the date the sender wrote is the one meant).
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        if len(value) == 10 and _FULL_DATE.fullmatch(value):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        elif (local := _LOCAL_DATE_TIME.match(value)) is not None:
            rest = value[local.end() :]
            try:
                if rest:
                    parse_timestamp(value)
                else:
                    ciso8601.parse_datetime(value)  # a local date-time: checked, date kept
                return date.fromisoformat(local[1])
            except ValueError:
                pass
    raise ValueError(f"{DATE_PROBLEM} (got {_shown(value)})")


def _check_email(value: str) -> str:
    value = value.strip()
    if not _EMAIL.fullmatch(value):
        raise ValueError(f"must be an e-mail address like pm@example.com (got {_shown(value)})")
    return value


def _check_currency(value: str) -> str:
    code = value.strip().upper()
    if not _CURRENCY.fullmatch(code):
        raise ValueError(f"must be a 3-letter ISO 4217 code like EUR (got {_shown(value)})")
    return code


def _check_iso_week(value: str) -> str:
    match = _ISO_WEEK.fullmatch(value)
    if match:
        try:
            date.fromisocalendar(int(match[1]), int(match[2]), 1)
            return value
        except ValueError:
            pass
    raise ValueError(f"must be an ISO week like 2026-W48 (got {_shown(value)})")


def _number_to_text(value: object) -> object:
    # Priority hints come as "high" from some tools and as 1..5 from others; keep both as text.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


# Types are strict: the contract says number, boolean, whole number, and "20.0", "yes" or true
# for a number are a sender's mistake to report, not to guess at. Dates stay lax: they arrive
# as JSON strings.
IsoDate = Annotated[date, BeforeValidator(_to_date), Strict(False)]


def _to_timestamp(value: object) -> object:
    if isinstance(value, str):
        return parse_timestamp(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    raise ValueError(f"{TIMESTAMP_PROBLEM} (got {_shown(value)})")


Timestamp = Annotated[datetime, BeforeValidator(_to_timestamp), Strict(False)]
"""An RFC 3339 timestamp with an offset (see `parse_timestamp`), as JSON text."""
Email = Annotated[
    str,
    StringConstraints(max_length=254),
    AfterValidator(_check_email),
    Field(json_schema_extra={"format": "email"}),
]
Currency = Annotated[
    str,
    StringConstraints(max_length=10),
    AfterValidator(_check_currency),
    Field(json_schema_extra={"pattern": "^\\s*[A-Za-z]{3}\\s*$"}),
]
IsoWeek = Annotated[str, AfterValidator(_check_iso_week)]
Number = Annotated[float, Strict()]
"""A JSON number (integers accepted); never a string or a boolean."""
Flag = Annotated[bool, Strict()]
"""A JSON boolean; never "yes", 1 or "true"."""
WholeNumber = Annotated[int, Strict()]
"""A JSON integer; never a string, a boolean or a fraction."""
Money = Annotated[float, Strict(), Field(ge=0)]
Fte = Annotated[float, Strict(), Field(ge=0)]
Metrics = dict[str, float | None]

Lifecycle = Literal["active", "on_hold", "completed", "terminated"]
"""What an enterprise system may report about a running project."""
Stage = Literal["proposed", "approved", "active", "on_hold", "completed", "terminated"]
"""The registry's standard stage model."""
CLOSED_STAGES: Final[frozenset[Stage]] = frozenset({"completed", "terminated"})
"""The final stages (phase `closed` in every shipped stage model): a project there is closed,
never moves again and holds, raises and is escalated for nothing."""
Health = Literal["green", "amber", "red"]
HEALTH_RANK: Final[Mapping[str, int]] = {"green": 0, "amber": 1, "red": 2}
"""Each `Health`, worse is higher: a project's (or program's) health is its worst reason's."""
Severity = Literal["amber", "red"]
DirectiveAction = Literal["terminate", "pause", "accelerate", "deprioritize"]
RecommendedAction = Literal["continue", "accelerate", "pause", "terminate"]
AllocationStatus = Literal["granted", "partial", "denied"]


class ContractModel(BaseModel):
    """Settings shared by every event model and its parts."""

    # Tolerant reader: producers may add fields without breaking us. NaN/inf are refused because
    # they would poison earned-value arithmetic and are not valid JSON on the way out.
    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        allow_inf_nan=False,
        populate_by_name=True,
        use_attribute_docstrings=True,
        strict=True,
    )


class EventData(ContractModel):
    """The `data` of one PMO event; `event_name` names its topic and CloudEvents type."""

    event_name: ClassVar[str]

    def key(self) -> str:
        """The Kafka key, so that events about one thing stay in order on one partition."""
        raise NotImplementedError


class ProjectIdentity(BaseModel):
    """The id every model about one project leads with (events and API requests alike)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    project_id: Id
    """The enterprise's project id."""


class ProjectEvent(EventData, ProjectIdentity):
    """An event about one project: keyed by its id."""

    def key(self) -> str:
        return self.project_id


# --- inbound --------------------------------------------------------------------------------


class ObjectiveContribution(ContractModel):
    objective_id: Id
    contribution: float = Field(ge=0, le=1)
    """How much the project serves the objective, 0 (not at all) to 1 (fully)."""


class PlannedValuePoint(ContractModel):
    date: IsoDate
    planned_value: Money
    """Cumulative planned value (budgeted cost of work scheduled) at `date`."""


class Milestone(ContractModel):
    name: Name
    due: IsoDate
    done: bool = False


class StrategicObjective(ContractModel):
    objective_id: Id
    name: Name
    weight: float = Field(ge=0)


class Directive(ContractModel):
    """An explicit instruction in a strategy change, aimed at exactly one target."""

    action: DirectiveAction
    project_id: Id | None = None
    business_unit: Id | None = None
    objective_id: Id | None = None
    # Left out of the JSON when absent, so directives without one read exactly as before.
    program_id: Id | None = Field(default=None, exclude_if=lambda value: value is None)
    """A program: the directive aims at its member projects that are not closed."""
    reason: Text

    @model_validator(mode="after")
    def _one_target(self) -> Directive:
        targets = [self.project_id, self.business_unit, self.objective_id, self.program_id]
        given = sum(target is not None for target in targets)
        if given != 1:
            raise ValueError(
                "must name exactly one of project_id, business_unit, objective_id or program_id "
                f"(got {'none' if given == 0 else given})"
            )
        return self


def _unique_objectives(items: list[Any]) -> None:
    seen: set[str] = set()
    for item in items:
        if item.objective_id in seen:
            raise ValueError(f"objective_id {_shown(item.objective_id)} is listed twice")
        seen.add(item.objective_id)


def _finish_not_before_start(value: date, info: ValidationInfo) -> date:
    start = info.data.get("start_date")
    if start is not None and value < start:
        raise ValueError(f"must not be before start_date {start} (got {value})")
    return value


def _objectives_unique(value: list[ObjectiveContribution]) -> list[ObjectiveContribution]:
    _unique_objectives(value)
    return value


Objectives = Annotated[
    list[ObjectiveContribution],
    Field(max_length=MAX_LIST_LENGTH),
    AfterValidator(_objectives_unique),
]
"""The objectives a project serves: each at most once."""


class CharterFields(BaseModel):
    """A project's charter fields and their rules, declared once for every model that takes them.

    The events (`ProjectCharter`) and the registry's API (its project proposal) derive from it,
    each with its own model settings (an event's tolerant reader, a request's refusals); it has
    none of its own but for reading these docstrings as the fields' descriptions.
    """

    model_config = ConfigDict(use_attribute_docstrings=True)

    name: Name
    business_unit: Id
    manager: Email
    sponsor: Text | None = None
    start_date: IsoDate
    planned_finish_date: IsoDate
    budget: Money
    """Budget at completion (BAC), in `currency`."""
    currency: Currency
    objectives: Objectives = []
    key_project: bool = False
    methodology: Name | None = None
    """Name of the stage model the project follows."""

    _finish = field_validator("planned_finish_date")(_finish_not_before_start)


class ProjectCharter(CharterFields, ProjectEvent):
    """What a project is: who runs it, for whom, when, with what budget, towards which objectives.

    Both the enterprise's `project-started` and the registry's `project-registered` carry it.
    """

    # Left out of the JSON when absent, so charters without one read exactly as before.
    program_id: Id | None = Field(default=None, exclude_if=lambda value: value is None)
    """The program the project belongs to, if any (an unknown one is created, named by its id).
    Absent changes nothing: a project leaves a program only through the registry's API."""


class ProjectStarted(ProjectCharter):
    """An enterprise system announces a new project."""

    event_name: ClassVar[str] = "project-started"

    planned_value_curve: list[PlannedValuePoint] | None = Field(
        default=None, max_length=MAX_LIST_LENGTH
    )
    """Cumulative planned value over time; absent means linear from start to planned finish."""

    @field_validator("planned_value_curve")
    @classmethod
    def _curve_is_cumulative(
        cls, value: list[PlannedValuePoint] | None
    ) -> list[PlannedValuePoint] | None:
        if not value:
            return value
        # Order of points is not meaningful to the sender; order by date before checking.
        points = sorted(value, key=lambda point: point.date)
        for before, after in itertools.pairwise(points):
            if after.date == before.date:
                raise ValueError(f"has two points on {after.date}")
            if after.planned_value < before.planned_value:
                raise ValueError(
                    f"must be cumulative: planned_value falls from {before.planned_value} on "
                    f"{before.date} to {after.planned_value} on {after.date}"
                )
        return points


class StatusChanged(ProjectEvent):
    """A progress report on a project."""

    event_name: ClassVar[str] = "status-changed"

    as_of: IsoDate
    percent_complete: float = Field(ge=0, le=100)
    actual_cost: Money
    """Actual cost (AC) to date, in the project's currency."""
    lifecycle: Lifecycle | None = None
    reported_health: Health | None = None
    milestones: list[Milestone] | None = Field(default=None, max_length=MAX_LIST_LENGTH)
    """Absent means "not reported", an empty list means "no milestones"."""
    comment: Text | None = None


MAX_REQUEST_DAYS = 5 * 365
"""The longest period one resource request may cover."""


class ResourceRequested(ProjectEvent):
    """A project asks for people with a skill (or role) over a period."""

    event_name: ClassVar[str] = "resource-requested"

    request_id: Id
    skill: Name = Field(validation_alias=AliasChoices("skill", "role"))
    """The skill or role needed; senders may call the field `role`."""
    fte: float | None = Field(default=None, gt=0, le=1000)
    """Full-time equivalents wanted in each week of the period."""
    hours: float | None = Field(default=None, gt=0, le=10_000_000)
    """Hours wanted over the whole period, spread over its working days."""
    start: IsoDate
    end: IsoDate
    priority: Annotated[
        Annotated[str, StringConstraints(max_length=MAX_NAME_LENGTH)] | None,
        BeforeValidator(_number_to_text),
    ] = None
    """The requester's hint; portfolio priority decides conflicts."""
    named_resource: Id | None = None
    """A specific person asked for, if any."""

    @field_validator("end")
    @classmethod
    def _end_not_before_start(cls, value: date, info: ValidationInfo) -> date:
        start = info.data.get("start")
        if start is not None and value < start:
            raise ValueError(f"must not be before start {start} (got {value})")
        # Planning is by week: an open-ended end (e.g. 9999-12-31) is not a request but a
        # standing assignment, and would make every re-resolution plan thousands of weeks.
        if start is not None and (value - start).days > MAX_REQUEST_DAYS:
            raise ValueError(
                f"must be at most {MAX_REQUEST_DAYS // 365} years after start {start} (got {value})"
            )
        return value

    @model_validator(mode="after")
    def _fte_or_hours(self) -> ResourceRequested:
        if (self.fte is None) == (self.hours is None):
            given = "both" if self.fte is not None else "neither"
            raise ValueError(f"must give exactly one of fte or hours (got {given})")
        return self


class StrategyChanged(EventData):
    """The enterprise strategy changed: new weighted objectives, maybe explicit directives."""

    event_name: ClassVar[str] = "strategy-changed"

    strategy_version: int = Field(gt=0, le=2_147_483_647)
    effective_date: IsoDate
    objectives: list[StrategicObjective] = Field(min_length=1, max_length=MAX_LIST_LENGTH)
    directives: list[Directive] = Field(default=[], max_length=MAX_LIST_LENGTH)

    @field_validator("objectives")
    @classmethod
    def _objectives_usable(cls, value: list[StrategicObjective]) -> list[StrategicObjective]:
        _unique_objectives(value)
        if all(objective.weight == 0 for objective in value):
            raise ValueError("must give at least one objective a positive weight")
        return value

    def key(self) -> str:
        return str(self.strategy_version)


# --- outbound -------------------------------------------------------------------------------


class ProjectRegistered(ProjectCharter):
    """The registry has accepted a project into the portfolio."""

    event_name: ClassVar[str] = "project-registered"

    lifecycle: Stage


class ProjectLifecycleChanged(ProjectEvent):
    """A project moved from one stage to another."""

    event_name: ClassVar[str] = "project-lifecycle-changed"

    from_stage: Stage = Field(alias="from")
    to_stage: Stage = Field(alias="to")
    cause: Text
    """What moved it: the event, directive or user action."""
    # Left out of the JSON when absent, so events without one read exactly as before.
    reason: Text | None = Field(default=None, exclude_if=lambda value: value is None)
    """Why, in words: the user's reason, the report's comment or the directive's reason."""


class RankedProject(ContractModel):
    project_id: Id
    score: float
    rank: int = Field(ge=1)
    previous_rank: int | None = Field(default=None, ge=1)
    action: RecommendedAction
    why: str


class PortfolioReprioritized(EventData):
    """The registry's new portfolio ranking under one strategy version."""

    event_name: ClassVar[str] = "portfolio-reprioritized"

    strategy_version: int = Field(gt=0, le=2_147_483_647)
    projects: list[RankedProject]

    def key(self) -> str:
        return str(self.strategy_version)


class RiskReason(ContractModel):
    code: Id
    """Stable machine-readable reason, e.g. `schedule`, `cost`, `stale_status`."""
    message: str
    numbers: Metrics = {}
    """The figures behind the reason (e.g. SPI and its threshold); null where undefined."""
    severity: Severity | None = None
    """This reason's own severity (the event's `severity` is the worst of them); absent from
    producers that do not grade reasons."""


class ProjectAtRisk(ProjectEvent):
    """Monitoring found a project's health worsened."""

    event_name: ClassVar[str] = "project-at-risk"

    severity: Severity
    reasons: list[RiskReason]
    metrics: Metrics = {}


class ProjectRecovered(ProjectEvent):
    """Monitoring found a project back to green."""

    event_name: ClassVar[str] = "project-recovered"

    metrics: Metrics = {}


class Assignment(ContractModel):
    """One person (or team) on a request at one FTE over some weeks."""

    resource_id: Id
    fte: Fte
    weeks: list[IsoWeek]


class ResourceAllocated(ProjectEvent):
    """The allocation decided a resource request (again when its reason changes while its
    people stay: the newest per request stands)."""

    event_name: ClassVar[str] = "resource-allocated"

    request_id: Id
    resource_id: Id | None = None
    """Who holds most of what was granted (all of it when one person does)."""
    skill: Name
    fte_granted: Fte
    """Average FTE granted per planned week."""
    fte_requested: Fte
    weeks: list[IsoWeek]
    """The weeks in which something was granted."""
    status: AllocationStatus
    reason: str
    assignments: list[Assignment] = []
    """Who works how much in which weeks, one line per person and FTE."""


class AllocationDecision(ContractModel):
    """One request's outcome in a conflict."""

    request_id: Id
    project_id: Id
    fte_granted: Fte
    fte_requested: Fte
    why: str


class ResourceConflictResolved(EventData):
    """Demand exceeded capacity for a skill or person; who won, who lost, and why."""

    event_name: ClassVar[str] = "resource-conflict-resolved"

    conflict_id: Id
    skill: Name | None = None
    resource_id: Id | None = None
    weeks: list[IsoWeek]
    winners: list[AllocationDecision]
    losers: list[AllocationDecision]
    rationale: str

    @model_validator(mode="after")
    def _names_contested(self) -> ResourceConflictResolved:
        if self.skill is None and self.resource_id is None:
            raise ValueError("must name the contested skill or resource_id (got neither)")
        return self

    def key(self) -> str:
        return self.conflict_id


class AllocationSnapshot(ContractModel):
    """What a request held at one moment."""

    fte_granted: Fte
    weeks: list[IsoWeek] = []
    resource_id: Id | None = None
    status: AllocationStatus | None = None
    assignments: list[Assignment] = []
    """Who works how much in which weeks, one line per person and FTE."""


class AllocationChanged(ProjectEvent):
    """An existing allocation changed (re-resolution, strategy or lifecycle change)."""

    event_name: ClassVar[str] = "allocation-changed"

    request_id: Id
    before: AllocationSnapshot
    after: AllocationSnapshot
    cause: str


class ProjectHealthAssessed(ProjectEvent):
    """Monitoring's assessment of a project, published whenever what it says changes.

    The state every other view shows (registry, report, digest, escalation, dashboard): sent on
    a project's first assessment and whenever its health, reasons, figures or as-of date change,
    in either direction. The newest by `assessed_at` stands: it strictly increases per project,
    so an older assessment arriving late is recognised and changes nothing. A snapshot, not a
    log: when monitoring takes several status reports of a project in one batch, it publishes
    only the newest assessment of that batch (each report is still assessed and its alert,
    `project-at-risk` or `project-recovered`, still raised).
    """

    event_name: ClassVar[str] = "project-health-assessed"

    health: Health
    reasons: list[RiskReason] = []
    """Why it is not green, worst first; empty when green."""
    metrics: Metrics = {}
    """The earned-value figures (`spi`, `spi_t`, `cpi`, `eac`, `vac`, `tcpi`, ...); null where
    undefined; empty before the first status report."""
    forecast_finish: IsoDate | None = None
    """When the project finishes at its schedule performance so far (SPI(t)); null if unknown."""
    as_of: IsoDate | None = None
    """The as-of date of the status report the figures come from; null before the first one."""
    assessed_at: Timestamp
    """When monitoring assessed: the order of a project's assessments (strictly increasing)."""
    at_risk_since: Timestamp | None = None
    """When the current at-risk episode (amber or red) began; null while green."""
    baseline_version: int = Field(default=1, ge=1)
    """The approved baseline the figures are measured against (1: the original)."""
    trigger: str
    """What caused the assessment: an event name or `staleness-clock`."""


class ProjectRebaselined(ProjectEvent):
    """The PMO approved a new baseline: earned value is measured against it from now on."""

    event_name: ClassVar[str] = "project-rebaselined"

    baseline_version: int = Field(ge=2, le=2_147_483_647)
    """The new baseline's number (1 is the original one, taken at project-started)."""
    budget: Money
    """The new budget at completion (BAC), in the project's currency."""
    start_date: IsoDate
    planned_finish_date: IsoDate
    planned_value_curve: list[PlannedValuePoint] | None = None
    """The new cumulative planned value over time; absent: linear from start to planned finish."""
    approved_by: Name
    """Who approved it: the administrator's token subject, or the system that restated it."""
    reason: Name
    """Why, in the approver's words."""
    approved_at: Timestamp
    cause: Id
    """The user or the event id that made the change."""

    _finish = field_validator("planned_finish_date")(_finish_not_before_start)

    @field_validator("planned_value_curve")
    @classmethod
    def _curve_is_cumulative(
        cls, value: list[PlannedValuePoint] | None
    ) -> list[PlannedValuePoint] | None:
        return ProjectStarted._curve_is_cumulative(value)


class SubmittedDeliverable(ContractModel):
    """A deliverable a gate review saw: its name in the stage model and its evidence."""

    name: Name
    evidence: Text
    """Where the deliverable is or what it says: a document link, a reference, a summary."""
    submitted_by: Name
    submitted_at: Timestamp


class GateReviewed(ProjectEvent):
    """A gate review was recorded: who reviewed the gate from one stage to another, when, with
    which deliverables and evidence, and whether it passed (a passed review lets one move
    through that gate)."""

    event_name: ClassVar[str] = "gate-reviewed"

    review_id: int = Field(ge=1)
    from_stage: Stage = Field(alias="from")
    to_stage: Stage = Field(alias="to")
    decision: Literal["passed", "failed"]
    reviewer: Name
    """The reviewer: the administrator's token subject."""
    reviewed_at: Timestamp
    deliverables: list[SubmittedDeliverable] = []
    """The project's deliverables as the reviewer saw them."""
    evidence: Text | None = None
    """The reviewer's own evidence or notes."""
    methodology: Name
    """The stage model the gate belongs to."""


class SuggestedLesson(ContractModel):
    """A lesson learned of a similar closed project, and why it is suggested."""

    lesson_id: int = Field(ge=1)
    project_id: Id
    """The closed project the lesson comes from."""
    title: Name
    similarity: list[Literal["business_unit", "methodology", "objectives"]]
    """What the two projects share."""


class LessonsSuggested(ProjectEvent):
    """Lessons of similar closed projects suggested to a newly registered project's manager."""

    event_name: ClassVar[str] = "lessons-suggested"

    manager: Name
    """The project manager the suggestions are for."""
    lessons: list[SuggestedLesson] = Field(min_length=1, max_length=MAX_LIST_LENGTH)
    """Most similar first."""


class ProjectProgramChanged(ProjectEvent):
    """A project joined a program, moved to another one, or left its program (the registry).

    Sent whenever a project's program membership changes, from a `project-started` charter
    naming a program or from the registry's API; the newest by `changed_at` stands.
    """

    event_name: ClassVar[str] = "project-program-changed"

    program_id: Id | None
    """The program it belongs to now; null: none any more."""
    previous_program_id: Id | None = None
    """The program it belonged to before; null: none."""
    changed_at: Timestamp
    """When the registry made the change: the order of a project's membership changes."""
    cause: Text
    """The event id, or the subject of the user's token, that made the change."""


InterventionOrigin = Literal["risk", "advice"]
"""Why an intervention was proposed: pushed by a key project's risk, or pulled by its manager."""


class InterventionEvent(ProjectEvent):
    """An event about one PMO intervention: a PMO expert sent to a project (allocation's)."""

    intervention_id: Id
    origin: InterventionOrigin
    specialty: Name
    """The expert specialty wanted, e.g. `schedule-recovery`, `cost-control`."""
    expert_id: Id | None = None
    """The PMO expert (a resource of the pool); null while none is free for it."""
    fte: Fte
    """FTE of the expert's time wanted in each week of the period."""
    start: IsoDate
    end: IsoDate


class InterventionProposed(InterventionEvent):
    """Allocation proposes a PMO expert for a project; an administrator accepts or declines.

    Pushed by risk (a key project turned red, or stayed amber longer than the configured time)
    or pulled by the project's manager asking for advice. The expert is the one the allocation's
    priority rules would give it (the most important project in trouble first).
    """

    event_name: ClassVar[str] = "intervention-proposed"

    reasons: list[Text] = []
    """Why: the risk reasons behind it (monitoring's messages), or the manager's topic."""
    staffing: Text
    """Why this expert, or why none is free (the allocation's words)."""
    requested_by: Name | None = None
    """The project manager who asked for advice; null when pushed by risk."""
    proposed_at: Timestamp


class InterventionAccepted(InterventionEvent):
    """An administrator accepted an intervention: its expert is requested for the project."""

    event_name: ClassVar[str] = "intervention-accepted"

    request_id: Id
    """The resource request that allocates the expert (its decision follows as
    `resource-allocated`)."""
    accepted_by: Name
    note: Text = ""
    accepted_at: Timestamp


class InterventionDeclined(InterventionEvent):
    """An administrator declined a proposed intervention; nobody is allocated."""

    event_name: ClassVar[str] = "intervention-declined"

    declined_by: Name
    reason: Text
    declined_at: Timestamp


class InterventionEnded(InterventionEvent):
    """An intervention ended and its expert is released (or a proposal lapsed undecided)."""

    event_name: ClassVar[str] = "intervention-ended"

    reason: Text
    """E.g. `project recovered (health back to green)`, `end date 2027-01-29 passed`."""
    was_accepted: bool
    """True: the expert worked on it and is now released; False: a proposal no longer needed."""
    ended_at: Timestamp


def _by_name(*models: type[EventData]) -> dict[str, type[EventData]]:
    return {model.event_name: model for model in models}


INBOUND_EVENTS: dict[str, type[EventData]] = _by_name(
    ProjectStarted, StatusChanged, ResourceRequested, StrategyChanged
)
"""What enterprise systems send, by event name (also the topic name)."""

OUTBOUND_EVENTS: dict[str, type[EventData]] = _by_name(
    ProjectRegistered,
    ProjectLifecycleChanged,
    PortfolioReprioritized,
    ProjectAtRisk,
    ProjectRecovered,
    ResourceAllocated,
    ResourceConflictResolved,
    AllocationChanged,
    ProjectHealthAssessed,
    ProjectRebaselined,
    GateReviewed,
    LessonsSuggested,
    ProjectProgramChanged,
    InterventionProposed,
    InterventionAccepted,
    InterventionDeclined,
    InterventionEnded,
)
"""What the PMO services publish, by event name (also the topic name)."""
