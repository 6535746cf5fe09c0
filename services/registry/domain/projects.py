"""A project as the registry knows it, and what registering one announces."""

from __future__ import annotations

from shared.events.contracts import ProjectRegistered, ProjectStarted, Stage


def registration(started: ProjectStarted, lifecycle: Stage = "active") -> ProjectRegistered:
    """What the registry announces when an enterprise system reports a project as started.

    A started project is active: the enterprise system tells us work has begun.
    """
    return ProjectRegistered(
        project_id=started.project_id,
        name=started.name,
        business_unit=started.business_unit,
        manager=started.manager,
        sponsor=started.sponsor,
        start_date=started.start_date,
        planned_finish_date=started.planned_finish_date,
        budget=started.budget,
        currency=started.currency,
        objectives=started.objectives,
        key_project=started.key_project,
        methodology=started.methodology,
        lifecycle=lifecycle,
    )
