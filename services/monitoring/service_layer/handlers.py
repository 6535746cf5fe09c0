"""What monitoring does with each event: keep baselines and facts, reassess, raise news only."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from opentelemetry.context import Context

from services.monitoring.adapters.repository import (
    AssessmentWriter,
    ProjectRow,
    projects_for_update,
    resource_positions_of,
    write_projects,
)
from services.monitoring.adapters.tables import (
    BaselineRow,
    MonitoredProjectRow,
)
from services.monitoring.domain.earned_value import Baseline, ProgressReport
from services.monitoring.domain.health import HealthThresholds, ResourcePosition
from services.monitoring.service_layer.assessments import (
    AssessedView,
    Reassessment,
    assess_report_alone,
    baseline_of,
    milestone_statuses,
    reason_record,
    reassess,
    reassessed,
    stored_milestones,
)
from services.monitoring.service_layer.configuration import Moment, rules_in_force
from services.monitoring.service_layer.unit_of_work import MonitoringUnitOfWork, monitoring_work
from shared.allocation_outcomes import RequestOutcome, grant_status, request_outcomes
from shared.events import EventData
from shared.events.contracts import (
    CLOSED_STAGES,
    AllocationChanged,
    ProjectLifecycleChanged,
    ProjectRebaselined,
    ProjectStarted,
    ResourceAllocated,
    ResourceConflictResolved,
    StatusChanged,
)
from shared.messaging.consumer import Deferred, Delivery, EventMeta
from shared.messaging.unit_of_work import UnitOfWork
from shared.projections import supersedes

log = logging.getLogger(__name__)


def _waiting_for_baseline(project_id: str) -> Deferred:
    return Deferred(
        project_id, f"no baseline for project {project_id!r} yet: waiting for its project-started"
    )


def _baseline(event: ProjectStarted | ProjectRebaselined, meta: EventMeta) -> BaselineRow:
    """The baseline an event brings: project-started's is version 1, a re-baseline's carries
    its version and who approved it, when and why."""
    approval = (
        {
            "version": event.baseline_version,
            "approved_by": event.approved_by,
            "reason": event.reason,
            "approved_at": event.approved_at,
        }
        if isinstance(event, ProjectRebaselined)
        else {"version": 1}
    )
    return BaselineRow(
        project_id=event.project_id,
        budget_at_completion=event.budget,
        start_date=event.start_date,
        planned_finish_date=event.planned_finish_date,
        planned_value_curve=(
            [point.model_dump(mode="json") for point in event.planned_value_curve]
            if event.planned_value_curve
            else None
        ),
        event_id=meta.id,
        **approval,
    )


async def on_project_started(
    event: ProjectStarted, meta: EventMeta, uow: UnitOfWork | MonitoringUnitOfWork
) -> None:
    """Take the project's baseline (BAC, planned dates, planned-value curve); the first stands.

    Events that arrived before it were parked; they are handled now, in the order they came.
    A project never reported is expected to report from its start, or from today if monitoring
    learns of it only after the start (it cannot be late with a report it was not asked for).
    """
    work = monitoring_work(uow)
    if await work.projects.get(event.project_id) is not None:
        # The first stands: a changed baseline reaches monitoring as the registry's
        # project-rebaselined, with who approved it and why.
        return
    moment = Moment.current()
    baseline = _baseline(event, meta)
    curve = baseline.planned_value_curve
    work.baselines.add(baseline)
    project = MonitoredProjectRow(
        project_id=event.project_id,
        name=event.name,
        business_unit=event.business_unit,
        manager=event.manager,
        currency=event.currency,
        budget_at_completion=event.budget,
        start_date=event.start_date,
        planned_finish_date=event.planned_finish_date,
        planned_value_curve=curve,
        baseline_event_id=meta.id,
        # Started by the enterprise: the registry puts it in its stage model's started
        # stage (active); its project-lifecycle-changed decisions move it from there.
        lifecycle="active",
        status_expected_since=max(event.start_date, moment.today),
        health_since=moment.now,
    )
    work.projects.add(project)
    work.release(event.project_id)
    if await work.positions.of(event.project_id):
        # Allocation decided before the baseline came: a shortfall counts from now on.
        # Read back, locked: as stored, with the columns' server defaults.
        stored = await work.projects.get(event.project_id, lock=True)
        assert stored is not None, "just added"
        rules = await rules_in_force(work.thresholds, work.settings)
        await reassess(
            work,
            stored,
            thresholds=rules.thresholds,
            moment=moment,
            trigger=event.event_name,
            event_id=meta.id,
        )


async def on_status_changed(deliveries: Sequence[Delivery[StatusChanged]], uow: UnitOfWork) -> None:
    """Assess a run of status reports; publish only when a project's health changes for the
    worse or back to green (and project-health-assessed when what the views show changes).

    A report older than the latest one is assessed and kept in the history, but the project's
    current health stays that of the latest. A report after the project left monitoring is
    kept likewise. The report's `lifecycle` changes nothing here: only the registry's
    project-lifecycle-changed closes or pauses a project in monitoring.

    One `project-health-assessed` per project per run, the newest: it is a snapshot of the
    project's state and every view keeps only the newest by `assessed_at`, so the earlier ones
    of the same run would be overwritten at once by every consumer. Every report is still
    assessed on its own, in order, and kept in the history, and the alerts (`project-at-risk`,
    `project-recovered`) are judged per report: a project that turns red and back to green
    within one run raises both alerts, though the views see only its final green.

    Per batch: the run's projects (locked), the rules in force and the resource positions are
    read in one query each; the reports are assessed in memory in the order they came (a
    project's later report sees what its earlier one did); the history rows are written in
    chunks, each chunk's statement running in the database while the next chunk's reports
    are assessed (`AssessmentWriter`); the outbox rows and the changed project rows (plain
    rows, not ORM objects: see `ProjectRow`) with one statement each. Raises `Deferred` when a
    project has no baseline yet.
    """
    projects = await projects_for_update(uow.session, {d.event.project_id for d in deliveries})
    for delivery in deliveries:
        if delivery.event.project_id not in projects:
            raise _waiting_for_baseline(delivery.event.project_id)
    rules = await rules_in_force(monitoring_work(uow).thresholds, uow.settings)
    positions = await resource_positions_of(uow.session, projects)
    moment = Moment.current()
    # The history goes to the database in chunks while the later reports are assessed.
    history = AssessmentWriter(uow.session)
    alerts: list[tuple[EventData, Context | None]] = []
    newest: dict[str, tuple[AssessedView, Delivery[StatusChanged]]] = {}
    changed: dict[str, ProjectRow] = {}
    # A status report changes no baseline: each project's is worked out once for the run.
    baselines = {project_id: baseline_of(project) for project_id, project in projects.items()}
    try:
        for delivery in deliveries:
            project_id = delivery.event.project_id
            outcome = _take_report(
                projects[project_id],
                delivery.event,
                delivery.meta,
                positions=positions.get(project_id, []),
                thresholds=rules.thresholds,
                moment=moment,
                service=uow.service,
                baseline=baselines[project_id],
            )
            await history.add(outcome.record)
            if outcome.alert is not None:
                alerts.append((outcome.alert, delivery.cause))
            if outcome.view is not None:
                newest[project_id] = (outcome.view, delivery)  # its trace only if it stays newest
            if outcome.record["applied"]:
                changed[project_id] = projects[project_id]
        await history.close()
    except BaseException:
        await history.abandon()
        raise
    await write_projects(uow.session, changed.values())
    await uow.publish_many(
        [*alerts, *((view.event(), delivery.cause) for view, delivery in newest.values())]
    )


def _take_report(
    project: ProjectRow,
    event: StatusChanged,
    meta: EventMeta,
    *,
    positions: list[ResourcePosition],
    thresholds: HealthThresholds,
    moment: Moment,
    service: str,
    baseline: Baseline,
) -> Reassessment:
    """One status report applied to its locked project in memory: the history row and news."""
    superseded = not supersedes(event.as_of, project.latest_as_of)
    if superseded or project.monitoring_state == "closed":
        assessment = assess_report_alone(
            project,
            ProgressReport(event.as_of, event.percent_complete, event.actual_cost),
            milestones=milestone_statuses(event.milestones or []),
            reported_health=event.reported_health,
            resources=positions,
            thresholds=thresholds,
            baseline=baseline,
        )
        return Reassessment(
            record={
                "project_id": project.project_id,
                "assessed_at": moment.now,
                "trigger": event.event_name,
                "event_id": meta.id,
                "as_of": event.as_of,
                "applied": False,
                "health": assessment.health,
                "reasons": [reason_record(f) for f in assessment.findings],
                "metrics": assessment.metrics,
                "forecast_finish": assessment.forecast_finish,
                "alert": None,
            }
        )

    project.latest_as_of = event.as_of
    project.latest_percent_complete = event.percent_complete
    project.latest_actual_cost = event.actual_cost
    # Each report carries the manager's verdict afresh: none given is no concern raised.
    project.reported_health = event.reported_health
    if event.milestones is not None:  # absent: not reported, the last list stands
        project.milestones = stored_milestones(event.milestones)
    project.status_expected_since = event.as_of
    # A report's `lifecycle` is the manager's word, not a decision: the registry may refuse the
    # transition. Monitoring follows only the registry's project-lifecycle-changed.
    return reassessed(
        project,
        positions,
        thresholds=thresholds,
        moment=moment,
        trigger=event.event_name,
        event_id=meta.id,
        service=service,
        baseline=baseline,
    )


async def on_project_rebaselined(
    event: ProjectRebaselined, meta: EventMeta, uow: UnitOfWork | MonitoringUnitOfWork
) -> None:
    """Measure earned value against the newly approved baseline from now on.

    Every baseline is kept; the highest version is in force, so an older re-baseline arriving
    late changes nothing. The hysteresis memory starts afresh: the indices now measure against
    another plan. The latest report is reassessed at once (a closed project only keeps it).
    """
    work = monitoring_work(uow)
    project = await work.projects.get(event.project_id, lock=True)
    if project is None:
        raise _waiting_for_baseline(event.project_id)
    baseline = _baseline(event, meta)
    curve = baseline.planned_value_curve
    await work.baselines.keep(baseline)
    if event.baseline_version <= project.baseline_version:
        log.info(
            "baseline %s of %s is not newer than %s, in force: kept in the history only",
            event.baseline_version,
            event.project_id,
            project.baseline_version,
        )
        return
    project.baseline_version = event.baseline_version
    project.rebaselined_at = event.approved_at
    project.budget_at_completion = event.budget
    project.start_date = event.start_date
    project.planned_finish_date = event.planned_finish_date
    project.planned_value_curve = curve
    project.baseline_event_id = meta.id
    project.index_levels = {}
    if project.monitoring_state == "closed":
        return
    rules = await rules_in_force(work.thresholds, work.settings)
    await reassess(
        work,
        project,
        thresholds=rules.thresholds,
        moment=Moment.current(),
        trigger=event.event_name,
        event_id=meta.id,
    )


async def on_project_lifecycle_changed(
    event: ProjectLifecycleChanged, meta: EventMeta, uow: UnitOfWork | MonitoringUnitOfWork
) -> None:
    """Follow the registry's stage model: completed and terminated projects leave monitoring
    (they raise nothing more); a project on hold is not expected to report until it resumes."""
    project = await monitoring_work(uow).projects.get(event.project_id, lock=True)
    if project is None:
        raise _waiting_for_baseline(event.project_id)
    if project.monitoring_state == "closed":
        return
    project.lifecycle = event.to_stage
    if event.to_stage in CLOSED_STAGES:
        project.monitoring_state = "closed"
    elif event.to_stage == "on_hold":
        project.monitoring_state = "on_hold"
    elif event.to_stage == "active" and project.monitoring_state == "on_hold":
        project.monitoring_state = "active"
        # The pause is no silence: the staleness clock counts from the resumption.
        project.status_expected_since = max(project.status_expected_since, Moment.current().today)


async def _record_position(
    work: MonitoringUnitOfWork, outcome: RequestOutcome, *, decided_at: datetime, event_id: str
) -> None:
    """Keep the newest decision per request, whichever topic brings it first."""
    await work.positions.record(
        outcome.request_id,
        {
            **outcome.figures(),
            "status": outcome.status,
            "why": outcome.why,
            "decided_at": decided_at,
            "event_id": event_id,
        },
    )


async def _reassess_project(
    work: MonitoringUnitOfWork, project_id: str, *, trigger: str, event_id: str
) -> None:
    project = await work.projects.get(project_id, lock=True)
    if project is None or project.monitoring_state == "closed":
        return  # its baseline will be assessed with these positions when it comes
    rules = await rules_in_force(work.thresholds, work.settings)
    await reassess(
        work,
        project,
        thresholds=rules.thresholds,
        moment=Moment.current(),
        trigger=trigger,
        event_id=event_id,
    )


async def on_resource_allocated(
    event: ResourceAllocated, meta: EventMeta, uow: UnitOfWork | MonitoringUnitOfWork
) -> None:
    """A request decided: a partial or denied grant is a shortfall; a later full grant ends it."""
    work = monitoring_work(uow)
    (outcome,) = request_outcomes(event)
    await _record_position(
        work, outcome, decided_at=meta.time or Moment.current().now, event_id=meta.id
    )
    await _reassess_project(work, event.project_id, trigger=event.event_name, event_id=meta.id)


async def on_resource_conflict_resolved(
    event: ResourceConflictResolved, meta: EventMeta, uow: UnitOfWork | MonitoringUnitOfWork
) -> None:
    """A conflict decided: each loser's shortfall (and each winner's grant) per request."""
    work = monitoring_work(uow)
    decided_at = meta.time or Moment.current().now
    outcomes = request_outcomes(event)
    for outcome in outcomes:
        await _record_position(work, outcome, decided_at=decided_at, event_id=meta.id)
    # Projects in a stable order, so two replicas never lock the same two the other way round.
    for project_id in sorted({outcome.project_id for outcome in outcomes}):
        await _reassess_project(work, project_id, trigger=event.event_name, event_id=meta.id)


async def on_allocation_changed(
    event: AllocationChanged, meta: EventMeta, uow: UnitOfWork | MonitoringUnitOfWork
) -> None:
    """An existing allocation changed (re-resolution, strategy, lifecycle): update its grant.

    A request monitoring never saw decided is left alone: without what was requested, a grant
    says nothing about a shortfall.
    """
    work = monitoring_work(uow)
    position = await work.positions.get(event.request_id, lock=True)
    decided_at = meta.time or Moment.current().now
    if position is None or not supersedes(decided_at, position.decided_at):
        return
    position.fte_granted = event.after.fte_granted
    position.status = grant_status(position.fte_requested, event.after.fte_granted)
    position.why = event.cause
    position.decided_at = decided_at
    position.event_id = meta.id
    await _reassess_project(work, position.project_id, trigger=event.event_name, event_id=meta.id)
