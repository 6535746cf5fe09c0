"""A project as the registry knows it: what registering one announces, and what a change changed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic_core import to_jsonable_python

from shared.events.contracts import ProjectCharter, ProjectRegistered, Stage

CHARTER_FIELDS: tuple[str, ...] = (
    "name",
    "business_unit",
    "manager",
    "sponsor",
    "start_date",
    "planned_finish_date",
    "budget",
    "currency",
    "objectives",
    "key_project",
    "methodology",
)
"""What a project is (its charter), as opposed to where it stands (lifecycle, health, rank)."""


def registration(charter: ProjectCharter, lifecycle: Stage, methodology: str) -> ProjectRegistered:
    """What the registry announces when it accepts a project into the portfolio.

    `methodology` is the stage model's canonical name, so consumers see the model that applies
    even when the sender named none.
    """
    fields = charter.model_dump(include={"project_id", "program_id", *CHARTER_FIELDS})
    return ProjectRegistered(**{**fields, "methodology": methodology}, lifecycle=lifecycle)


def charter_of(event: ProjectCharter, methodology: str) -> dict[str, Any]:
    """The charter fields of an event, in the form the project row keeps them."""
    fields = {name: getattr(event, name) for name in CHARTER_FIELDS}
    fields["objectives"] = to_jsonable_python(event.objectives)
    fields["methodology"] = methodology
    return fields


def changed_fields(
    current: Mapping[str, Any], proposed: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The proposed fields whose value differs from the current one, as JSON-ready (before, after).

    Values are compared in their JSON form, so a date and its ISO text, or an objective model and
    its dict, are the same value.
    """
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for name, value in proposed.items():
        old, new = to_jsonable_python(current.get(name)), to_jsonable_python(value)
        if old != new:
            before[name], after[name] = old, new
    return before, after
