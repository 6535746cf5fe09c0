"""A project as the registry knows it, and what registering one announces."""

from __future__ import annotations

from shared.events.contracts import ProjectRegistered, ProjectStarted, Stage


def registration(started: ProjectStarted, lifecycle: Stage = "active") -> ProjectRegistered:
    """What the registry announces when an enterprise system reports a project as started.

    A started project is active: the enterprise system tells us work has begun.
    """
    charter = started.model_dump(exclude={"planned_value_curve"})
    return ProjectRegistered(**charter, lifecycle=lifecycle)
