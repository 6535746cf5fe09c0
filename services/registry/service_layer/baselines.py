"""A project's approved baselines: the one it started with, and every re-baseline after it.

The baseline is what earned value is measured against: the budget at completion, the start and
planned finish dates, and the planned-value curve. Once the enterprise has started a project
(its `project-started`), the baseline changes only by a re-baseline: approved by someone, for a
reason, kept in the history, and announced as `project-rebaselined` so that monitoring measures
against it from then on. Three ways lead there, all one act:

- `POST /projects/{id}/baselines` by a PMO administrator (who approved it: their token subject);
- a repeated `project-started` whose budget, dates or curve differ (approved by the sending
  system, the event's `source`; the reason names the event);
- `PATCH /projects/{id}` of the budget or dates of a started project is refused with a pointer
  to the baselines route, because a PATCH carries no reason.

Before the project starts, its budget and dates are only a proposal: PATCH changes them freely,
and the `project-started` that starts it sets baseline 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry.adapters.tables import BaselineRow, ProjectRow
from services.registry.service_layer.projects import record
from shared.events.contracts import PlannedValuePoint, ProjectRebaselined
from shared.messaging.unit_of_work import UnitOfWork

BASELINE_FIELDS = frozenset({"budget", "start_date", "planned_finish_date"})
"""Charter fields that are part of the baseline (with the curve, which the charter lacks)."""


@dataclass(frozen=True)
class BaselineTerms:
    """What a baseline promises; the curve as stored (`[{date, planned_value}]`) or None."""

    budget: float
    start_date: date
    planned_finish_date: date
    planned_value_curve: list[dict[str, Any]] | None = None

    def as_json(self) -> dict[str, Any]:
        terms = asdict(self)
        terms["start_date"] = self.start_date.isoformat()
        terms["planned_finish_date"] = self.planned_finish_date.isoformat()
        return terms


def stored_curve(points: list[PlannedValuePoint] | None) -> list[dict[str, Any]] | None:
    """A contract curve as the tables keep it (ordered by date); None for a linear plan."""
    if not points:
        return None
    return [point.model_dump(mode="json") for point in sorted(points, key=lambda p: p.date)]


def terms_in_force(project: ProjectRow) -> BaselineTerms:
    return BaselineTerms(
        budget=project.budget,
        start_date=project.start_date,
        planned_finish_date=project.planned_finish_date,
        planned_value_curve=project.planned_value_curve,
    )


def _apply(project: ProjectRow, terms: BaselineTerms, version: int) -> None:
    project.budget = terms.budget
    project.start_date = terms.start_date
    project.planned_finish_date = terms.planned_finish_date
    project.planned_value_curve = terms.planned_value_curve
    project.baseline_version = version
    project.updated_at = datetime.now(UTC)


def take_first_baseline(
    uow: UnitOfWork, project: ProjectRow, terms: BaselineTerms, *, approved_by: str, cause: str
) -> None:
    """The baseline the project starts with (version 1), from its `project-started`.

    Monitoring takes the same baseline from the same event, so nothing is announced.
    """
    _apply(project, terms, 1)
    uow.session.add(
        BaselineRow(
            project_id=project.project_id,
            version=1,
            **asdict(terms),
            approved_by=approved_by,
            reason="the baseline the project started with",
            approved_at=datetime.now(UTC),
            cause=cause,
        )
    )


async def rebaseline(
    uow: UnitOfWork,
    project: ProjectRow,
    terms: BaselineTerms,
    *,
    approved_by: str,
    reason: str,
    cause: str,
) -> ProjectRebaselined:
    """Put a newly approved baseline in force: kept, in the history, announced.

    The caller holds the project's lock and has checked that the project has a baseline and
    that `terms` differ from it. Raises pydantic's ValidationError for terms the contract
    refuses (a finish before the start, a curve that is not cumulative).
    """
    assert project.baseline_version is not None, "only a started project is re-baselined"
    version = project.baseline_version + 1
    approved_at = datetime.now(UTC)
    event = ProjectRebaselined.model_validate(
        {
            "project_id": project.project_id,
            "baseline_version": version,
            **terms.as_json(),
            "approved_by": approved_by,
            "reason": reason,
            "approved_at": approved_at,
            "cause": cause,
        }
    )
    before = terms_in_force(project)
    _apply(project, terms, version)
    project.rebaselined_at = approved_at
    uow.session.add(
        BaselineRow(
            project_id=project.project_id,
            version=version,
            **asdict(terms),
            approved_by=approved_by,
            reason=reason,
            approved_at=approved_at,
            cause=cause,
        )
    )
    record(
        uow,
        project.project_id,
        "rebaselined",
        cause=cause,
        before={"baseline_version": version - 1, **before.as_json()},
        after={"baseline_version": version, **terms.as_json(), "approved_by": approved_by},
        note=reason,
    )
    await uow.publish(event)
    return event


async def baselines_of(session: AsyncSession, project_id: str) -> list[BaselineRow]:
    query = (
        select(BaselineRow)
        .where(BaselineRow.project_id == project_id)
        .order_by(col(BaselineRow.version))
    )
    return list((await session.exec(query)).all())
