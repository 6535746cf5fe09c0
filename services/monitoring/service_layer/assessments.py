"""Assessing a project: its facts through the health rules, the news published, the history kept.

Every path that may change a project's health (a status report, an allocation decision, the
staleness clock) goes through `reassess`, in the transaction that holds the project's row lock,
so the state change, the history row and the outbox event are committed together or not at all.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple, get_args

from services.monitoring.adapters.repository import ProjectRow
from services.monitoring.adapters.tables import HealthAssessmentRow, MonitoredProjectRow
from services.monitoring.domain.earned_value import Baseline, ProgressReport
from services.monitoring.domain.health import (
    RANK,
    Finding,
    HealthAssessment,
    HealthThresholds,
    Level,
    MilestoneStatus,
    ProjectFacts,
    ResourcePosition,
    alert_for,
    assess,
)
from services.monitoring.service_layer.configuration import Moment
from services.monitoring.service_layer.unit_of_work import MonitoringUnitOfWork, monitoring_work
from shared.events import EventData
from shared.events.contracts import (
    Milestone,
    ProjectAtRisk,
    ProjectHealthAssessed,
    ProjectRecovered,
    RiskReason,
)
from shared.messaging.unit_of_work import UnitOfWork

Project = MonitoredProjectRow | ProjectRow
"""A project as the ORM holds it (one-event paths) or as a plain row (the batch path)."""

log = logging.getLogger(__name__)


def baseline_of(project: Project) -> Baseline:
    curve = tuple(
        (date.fromisoformat(point["date"]), float(point["planned_value"]))
        for point in project.planned_value_curve or []
    )
    return Baseline(
        budget_at_completion=project.budget_at_completion,
        start=project.start_date,
        planned_finish=project.planned_finish_date,
        curve=curve,
    )


def milestones_of(stored: list[dict[str, Any]] | None) -> list[MilestoneStatus]:
    return [
        MilestoneStatus(name=m["name"], due=date.fromisoformat(m["due"]), done=bool(m["done"]))
        for m in stored or []
    ]


def milestone_statuses(milestones: list[Milestone]) -> list[MilestoneStatus]:
    return [MilestoneStatus(name=m.name, due=m.due, done=m.done) for m in milestones]


def stored_milestones(milestones: list[Milestone]) -> list[dict[str, Any]]:
    return [m.model_dump(mode="json") for m in milestones]


_TICK = timedelta(microseconds=1)
"""The least step between two assessments of a project (see `assessed_at` in `reassessed`)."""

_LEVELS: dict[str | None, Level] = {level: level for level in get_args(Level)}


def level_of(value: str | None) -> Level | None:
    """The stored text as a health level; None if it is none (read several times per report)."""
    return _LEVELS.get(value)


def days_without_report(
    project: Project, moment: Moment, thresholds: HealthThresholds, *, by_clock: bool
) -> int | None:
    """How long the project has gone without a report, when that makes it stale.

    Only the clock flags a project stale (an incoming event is no evidence of silence); an
    assessment triggered by an event keeps a flag the clock raised for as long as it still
    holds, and drops it once a report newer than the cut-off has arrived.
    """
    days = (moment.today - project.status_expected_since).days
    if days <= thresholds.stale_after_days:
        return None
    return days if by_clock or project.stale_since is not None else None


def reason_record(finding: Finding) -> dict[str, Any]:
    return {
        "code": finding.code,
        "severity": finding.level,
        "message": finding.message,
        "numbers": finding.numbers,
    }


def risk_reasons(assessment: HealthAssessment) -> list[RiskReason]:
    # Worst first, so that a reader of the alert sees what made it red before the rest.
    ordered = sorted(assessment.findings, key=lambda f: -RANK[f.level])
    return [
        RiskReason(code=f.code, message=f.message, numbers=f.numbers, severity=f.level)
        for f in ordered
    ]


class AssessedView(NamedTuple):
    """What `project-health-assessed` will say about one assessment, kept as plain values so
    that the event (a validated model, then a CloudEvent) is built only if it is published: a
    batch publishes only each project's newest one (see `on_status_changed`). A named tuple,
    as `Reassessment`: one is made for most reports, and a frozen dataclass's `__init__` costs
    several times as much."""

    project_id: str
    assessment: HealthAssessment
    as_of: date | None
    assessed_at: datetime
    at_risk_since: datetime | None
    baseline_version: int
    trigger: str

    def event(self) -> ProjectHealthAssessed:
        """The assessment as every other view receives it."""
        return ProjectHealthAssessed(
            project_id=self.project_id,
            health=self.assessment.health,
            reasons=risk_reasons(self.assessment),
            metrics=self.assessment.metrics,
            forecast_finish=self.assessment.forecast_finish,
            as_of=self.as_of,
            assessed_at=self.assessed_at,
            at_risk_since=self.at_risk_since,
            baseline_version=self.baseline_version,
            trigger=self.trigger,
        )


class Reassessment(NamedTuple):
    """What assessing a project decided: its history row and what to publish."""

    record: dict[str, Any]
    """The `health_assessment` row's values."""
    alert: EventData | None = None
    """project-at-risk or project-recovered, if the assessment is news for the PMO."""
    view: AssessedView | None = None
    """project-health-assessed's content, if what the views show changed."""

    @property
    def news(self) -> list[EventData]:
        """The events to publish, in order: the alert if any, then project-health-assessed."""
        news: list[EventData] = [] if self.alert is None else [self.alert]
        if self.view is not None:
            news.append(self.view.event())
        return news


def reassessed(
    project: Project,
    positions: list[ResourcePosition],
    *,
    thresholds: HealthThresholds,
    moment: Moment,
    trigger: str,
    event_id: str | None,
    service: str,
    by_clock: bool = False,
    baseline: Baseline | None = None,
) -> Reassessment:
    """Assess a locked project from its facts and `positions`; update it; say what is news.

    No I/O: `reassess` (one project) and the batch handlers (a run of reports, positions loaded
    for all at once) both use it, so a report has the same effects either way.
    `project-health-assessed` goes out on the project's first assessment and whenever what
    the views show (health, reasons, figures, forecast, as-of date) changes; the alerts
    (`project-at-risk`, `project-recovered`) only as `alert_for` decides. `service` names the
    service in the log line of an alert. `baseline` is the project's (`baseline_of`), if the
    caller has it already.
    """
    stale_days = days_without_report(project, moment, thresholds, by_clock=by_clock)
    report = (
        ProgressReport(
            as_of=project.latest_as_of,
            percent_complete=project.latest_percent_complete or 0.0,
            actual_cost=project.latest_actual_cost or 0.0,
        )
        if project.latest_as_of is not None
        else None
    )
    facts = ProjectFacts(
        baseline=baseline or baseline_of(project),
        report=report,
        milestones=milestones_of(project.milestones),
        reported_health=level_of(project.reported_health),
        days_without_report=stale_days,
        resources=positions,
    )
    # What is stored as levels, read as levels (`level_of`, inline: this runs per report).
    previous_levels = {
        index: _LEVELS[value] for index, value in project.index_levels.items() if value in _LEVELS
    }
    assessment = assess(facts, thresholds, previous_levels)
    previous_health = level_of(project.health) or "green"
    previous_reasons = {
        r["code"]: _LEVELS[severity]
        for r in project.reasons
        if (severity := r.get("severity")) in _LEVELS
    }
    alert = (
        None
        if project.monitoring_state == "closed"
        else alert_for(previous_health, previous_reasons, assessment)
    )
    alert_event: EventData | None = None
    if alert is not None:
        log.info(
            "%s: %s %s (%s)",
            alert,
            project.project_id,
            assessment.health,
            ", ".join(assessment.codes) or "no reasons",
            extra={"service": service},
        )
    if alert == "project-at-risk":
        assert assessment.health != "green"
        alert_event = ProjectAtRisk(
            project_id=project.project_id,
            severity=assessment.health,
            reasons=risk_reasons(assessment),
            metrics=assessment.metrics,
        )
    elif alert == "project-recovered":
        alert_event = ProjectRecovered(project_id=project.project_id, metrics=assessment.metrics)

    # The order of a project's assessments for every view that keeps the newest: strictly
    # increasing, even if this replica's clock is behind the one that assessed last.
    assessed_at = (
        moment.now if project.assessed_at is None else max(moment.now, project.assessed_at + _TICK)
    )
    reasons = [reason_record(f) for f in assessment.findings]
    news_for_views = (
        project.assessed_at is None
        or assessment.health != project.health
        or reasons != project.reasons
        or assessment.metrics != project.metrics
        or assessment.forecast_finish != project.forecast_finish
        or project.latest_as_of != project.assessed_as_of
    )
    if assessment.health != project.health or project.health_since is None:
        project.health_since = assessed_at
    if assessment.health == "green":
        project.at_risk_since = None
    elif project.at_risk_since is None:
        project.at_risk_since = assessed_at
    project.health = assessment.health
    project.reasons = reasons
    project.index_levels = dict(assessment.index_levels)
    project.metrics = assessment.metrics
    project.forecast_finish = assessment.forecast_finish
    project.assessed_at = assessed_at
    project.assessed_as_of = project.latest_as_of
    project.stale_since = (project.stale_since or moment.now) if stale_days is not None else None
    view = (
        AssessedView(
            project_id=project.project_id,
            assessment=assessment,
            as_of=project.assessed_as_of,
            assessed_at=assessed_at,
            at_risk_since=project.at_risk_since,
            baseline_version=project.baseline_version,
            trigger=trigger,
        )
        if news_for_views
        else None
    )
    return Reassessment(
        record={
            "project_id": project.project_id,
            "assessed_at": assessed_at,
            "trigger": trigger,
            "event_id": event_id,
            "as_of": project.latest_as_of,
            "applied": True,
            "health": assessment.health,
            "reasons": project.reasons,
            "metrics": assessment.metrics,
            "forecast_finish": assessment.forecast_finish,
            "alert": alert,
        },
        alert=alert_event,
        view=view,
    )


async def reassess(
    uow: UnitOfWork | MonitoringUnitOfWork,
    project: MonitoredProjectRow,
    *,
    thresholds: HealthThresholds,
    moment: Moment,
    trigger: str,
    event_id: str | None,
    by_clock: bool = False,
) -> HealthAssessmentRow:
    """Assess one locked project from what is stored about it (`reassessed`); publish what is
    news and keep the history row (returned)."""
    work = monitoring_work(uow)
    outcome = reassessed(
        project,
        await work.positions.of(project.project_id),
        thresholds=thresholds,
        moment=moment,
        trigger=trigger,
        event_id=event_id,
        service=work.service,
        by_clock=by_clock,
    )
    for event in outcome.news:
        await work.publish(event)
    return work.assessments.add(outcome.record)


def assess_report_alone(
    project: Project,
    report: ProgressReport,
    *,
    milestones: list[MilestoneStatus],
    reported_health: Level | None,
    resources: list[ResourcePosition],
    thresholds: HealthThresholds,
    baseline: Baseline | None = None,
) -> HealthAssessment:
    """A report's own assessment, for the history only (an older report, or a closed project).

    It has no hysteresis memory and raises nothing: it describes that date, not the project now.
    """
    facts = ProjectFacts(
        baseline=baseline or baseline_of(project),
        report=report,
        milestones=milestones,
        reported_health=reported_health,
        resources=resources,
    )
    return assess(facts, thresholds)
