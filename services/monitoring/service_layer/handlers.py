"""What monitoring does with each event: keep baselines, assess reports, raise alerts on change."""

from __future__ import annotations

from datetime import UTC, datetime

from services.monitoring.adapters.tables import MonitoredProject
from services.monitoring.domain.earned_value import Baseline, earned_value, risk_reasons
from shared.events.contracts import ProjectAtRisk, ProjectStarted, RiskReason, StatusChanged
from shared.messaging.consumer import Deferred, EventMeta
from shared.messaging.unit_of_work import UnitOfWork


async def on_project_started(event: ProjectStarted, meta: EventMeta, uow: UnitOfWork) -> None:
    """Take the project's baseline (BAC and planned dates); the first one received stands.

    Reports that arrived before it were parked; they are assessed now, in the order they came.
    """
    if await uow.session.get(MonitoredProject, event.project_id) is not None:
        return
    uow.release(event.project_id)
    uow.session.add(
        MonitoredProject(
            project_id=event.project_id,
            name=event.name,
            budget_at_completion=event.budget,
            start_date=event.start_date,
            planned_finish_date=event.planned_finish_date,
        )
    )


async def on_status_changed(event: StatusChanged, meta: EventMeta, uow: UnitOfWork) -> None:
    """Compute SPI and CPI; publish `project-at-risk` when the project turns at risk."""
    project = await uow.session.get(MonitoredProject, event.project_id, with_for_update=True)
    if project is None:
        raise Deferred(
            event.project_id,
            f"no baseline for project {event.project_id!r} yet: waiting for its project-started",
        )
    if project.latest_as_of is not None and event.as_of < project.latest_as_of:
        return  # An older report does not roll the current health back.
    baseline = Baseline(
        project.budget_at_completion, project.start_date, project.planned_finish_date
    )
    figures = earned_value(baseline, event.as_of, event.percent_complete, event.actual_cost)
    reasons = risk_reasons(figures)
    project.latest_as_of = event.as_of
    project.metrics = figures.as_metrics()
    was_at_risk = project.health != "green"
    project.health = "red" if reasons else "green"
    if reasons and not was_at_risk:
        project.at_risk_since = datetime.now(UTC)
        await uow.publish(
            ProjectAtRisk(
                project_id=project.project_id,
                severity="red",
                reasons=[
                    RiskReason(code=code, message=message, numbers=numbers)
                    for code, message, numbers in reasons
                ],
                metrics=project.metrics,
            )
        )
    elif not reasons:
        project.at_risk_since = None
