"""What the registry does with each event: load, decide with the domain, store, publish."""

from __future__ import annotations

from services.registry.adapters.tables import Project, StatusReport
from services.registry.domain.projects import registration
from shared.events.contracts import ProjectStarted, StatusChanged
from shared.messaging.consumer import EventMeta
from shared.messaging.unit_of_work import UnitOfWork


async def on_project_started(event: ProjectStarted, meta: EventMeta, uow: UnitOfWork) -> None:
    """Register a new project and announce it; a project already known is left as it is."""
    if await uow.session.get(Project, event.project_id) is not None:
        return
    registered = registration(event)
    uow.session.add(
        Project(
            **registered.model_dump(mode="python", exclude={"objectives"}),
            objectives=[o.model_dump(mode="json") for o in event.objectives],
            registered_by=meta.id,
        )
    )
    await uow.publish(registered)


async def on_status_changed(event: StatusChanged, meta: EventMeta, uow: UnitOfWork) -> None:
    """Keep the report; the newest report (by its as-of date) is the project's current status."""
    uow.session.add(
        StatusReport(
            event_id=meta.id,
            project_id=event.project_id,
            as_of=event.as_of,
            percent_complete=event.percent_complete,
            actual_cost=event.actual_cost,
            lifecycle=event.lifecycle,
            reported_health=event.reported_health,
        )
    )
    project = await uow.session.get(Project, event.project_id)
    if project is not None and (
        project.status_as_of is None or event.as_of >= project.status_as_of
    ):
        project.status_as_of = event.as_of
        project.percent_complete = event.percent_complete
