"""Changing a project, the same way from an event and from the API: state, history and outbox.

Every change writes a history row (when, what before and after, which event or user) and, where
other services must know, an outbound event, all in the caller's unit of work.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from services.registry.adapters.tables import ProjectHistoryRow, ProjectRow, StatusReportRow
from services.registry.domain.projects import CHARTER_FIELDS, changed_fields
from services.registry.domain.stage_models import StageModel
from services.registry.service_layer.configuration import configuration_of
from services.registry.service_layer.lessons import similar_lessons
from services.registry.service_layer.unit_of_work import RegistryUnitOfWork, registry_work
from shared.events.contracts import (
    LessonsSuggested,
    ProjectLifecycleChanged,
    ProjectRegistered,
    Stage,
    SuggestedLesson,
)
from shared.messaging.unit_of_work import UnitOfWork


async def project_for_change(uow: UnitOfWork, project_id: str) -> ProjectRow | None:
    """The project, locked until the unit of work ends, so concurrent changes queue up.

    An API call and an event (or two replicas) moving one project at once would otherwise both
    check the gate against the same old stage. The lock is taken on the project id, not only on
    its row, so that two registrations of one new project (an API proposal racing its
    `project-started`) queue up too: the second sees the first instead of a key violation.
    """
    # The lock the consumer holds for a batch's project (`uow.lock`): taken once per batch.
    await uow.lock([project_id])
    return await uow.session.get(
        ProjectRow, project_id, with_for_update=True, populate_existing=True
    )


@dataclass(slots=True)
class Standing:
    """Where a project stands, as a status report needs it (read with Core, not as an ORM row)."""

    status_as_of: date | None
    percent_complete: float | None
    lifecycle: str
    methodology: str | None


async def standings_for_change(
    uow: UnitOfWork, project_ids: Collection[str]
) -> dict[str, Standing]:
    """Lock several projects as `project_for_change` does and read where each stands.

    The ids are locked (`uow.lock`: no statement when the consumer holds them for its batch),
    the registered projects' rows read (and row-locked) in one query, by id; sorted, so that
    two batches cannot deadlock. A status report touches only these columns: no ORM row is made
    (nor flushed at commit) for each project of a batch.
    """
    ordered = sorted(project_ids)
    if not ordered:
        return {}
    await uow.lock(ordered)  # the consumer holds them already for its batch: then no query
    # A project registered earlier in this transaction may still be pending in the session.
    await uow.session.flush()
    connection = await uow.session.connection()
    rows = await connection.execute(_STANDINGS, {"ids": ordered})
    return {row[0]: Standing(row[1], row[2], row[3], row[4]) for row in rows}


_PROJECT = ProjectRow.__table__  # type: ignore[attr-defined]
_STANDINGS = (
    sa.select(
        _PROJECT.c.project_id,
        _PROJECT.c.status_as_of,
        _PROJECT.c.percent_complete,
        _PROJECT.c.lifecycle,
        _PROJECT.c.methodology,
    )
    .where(_PROJECT.c.project_id == sa.func.any(sa.bindparam("ids", type_=ARRAY(sa.Text))))
    .order_by(_PROJECT.c.project_id)
    .with_for_update()
)
_HISTORY = ProjectHistoryRow.__table__  # type: ignore[attr-defined]
_REPORTS = StatusReportRow.__table__  # type: ignore[attr-defined]
_WRITE_STATUS = text(
    "WITH status AS ("
    f"UPDATE {_PROJECT.schema}.{_PROJECT.name} AS p "
    "SET status_as_of = s.as_of, percent_complete = s.percent "
    "FROM unnest(CAST(:s_id AS text[]), CAST(:s_as_of AS date[]), CAST(:s_percent AS float8[])) "
    "AS s(project_id, as_of, percent) WHERE p.project_id = s.project_id"
    "), history AS ("
    f"INSERT INTO {_HISTORY.schema}.{_HISTORY.name} (project_id, change, before, after, cause) "
    "SELECT h.project_id, 'status', CAST(h.before AS jsonb), CAST(h.after AS jsonb), h.cause "
    "FROM unnest(CAST(:h_id AS text[]), CAST(:h_before AS text[]), CAST(:h_after AS text[]), "
    "CAST(:h_cause AS text[])) WITH ORDINALITY AS h(project_id, before, after, cause, n) "
    "ORDER BY h.n"
    ") "
    f"INSERT INTO {_REPORTS.schema}.{_REPORTS.name} (source, event_id, project_id, as_of, "
    "percent_complete, actual_cost, lifecycle, reported_health) "
    "SELECT * FROM unnest(CAST(:r_source AS text[]), CAST(:r_id AS text[]), "
    "CAST(:r_project AS text[]), CAST(:r_as_of AS date[]), CAST(:r_percent AS float8[]), "
    "CAST(:r_cost AS float8[]), CAST(:r_lifecycle AS text[]), CAST(:r_health AS text[]))"
)
_REPORT_BINDS = (
    "r_source",
    "r_id",
    "r_project",
    "r_as_of",
    "r_percent",
    "r_cost",
    "r_lifecycle",
    "r_health",
)

StatusReport = tuple[str, str, str, date, float, float, str | None, str | None]
"""A `status_report` row: source, event id, project id, as of, percent complete, actual cost,
lifecycle and reported health, as the report gave them."""

StatusStep = tuple[str, str, str, str]
"""A `status` history row: project id, its before and after as JSON text, and its cause."""


async def write_status(
    uow: UnitOfWork,
    *,
    reports: Sequence[StatusReport] = (),
    history: Sequence[StatusStep] = (),
    statuses: Mapping[str, tuple[date | None, float | None]] | None = None,
) -> None:
    """Write what a run of status reports did in one statement of arrays: the reports kept, the
    `status` history rows in order, and each project's new status (as-of date, percent).

    A project of the session's identity map (one a rule moved in this transaction) is given its
    new status as its committed values, so that it reads what the row holds and a later flush
    of it does not write them again.
    """
    statuses = statuses or {}
    if not (reports or history or statuses):
        return
    report_columns = list(zip(*reports, strict=True)) or [()] * len(_REPORT_BINDS)
    history_columns = list(zip(*history, strict=True)) or [()] * 4
    connection = await uow.session.connection()
    await connection.execute(
        _WRITE_STATUS,
        {
            "s_id": list(statuses),
            "s_as_of": [as_of for as_of, _ in statuses.values()],
            "s_percent": [percent for _, percent in statuses.values()],
            **{
                name: list(column)
                for name, column in zip(
                    ("h_id", "h_before", "h_after", "h_cause"), history_columns, strict=True
                )
            },
            **{
                name: list(column)
                for name, column in zip(_REPORT_BINDS, report_columns, strict=True)
            },
        },
    )
    for project_id, (as_of, percent) in statuses.items():
        held = uow.session.identity_map.get(identity_key(ProjectRow, project_id))
        if isinstance(held, ProjectRow):
            set_committed_value(held, "status_as_of", as_of)
            set_committed_value(held, "percent_complete", percent)


def record(
    uow: UnitOfWork | RegistryUnitOfWork,
    project_id: str,
    change: str,
    *,
    cause: str,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    note: str | None = None,
) -> None:
    """Append a history entry for the project (its repository's), in `uow`."""
    registry_work(uow).projects.add_history(
        ProjectHistoryRow(
            project_id=project_id,
            change=change,
            before=dict(before) if before is not None else None,
            after=dict(after) if after is not None else None,
            cause=cause,
            note=note,
        )
    )


def stage_of(project: ProjectRow) -> Stage:
    """The project's stage: only `register` and `move` write the column, with stage names."""
    return cast(Stage, project.lifecycle)


def _touch(project: ProjectRow) -> None:
    project.updated_at = datetime.now(UTC)


async def register(uow: UnitOfWork, registered: ProjectRegistered, *, cause: str) -> ProjectRow:
    """Accept a project into the portfolio, announce it, and let its waiting events in.

    The lessons learned of similar closed projects are suggested to it (`suggest_lessons`).
    """
    charter = registered.model_dump(mode="json", include={"project_id", *CHARTER_FIELDS})
    project = ProjectRow(
        **registered.model_dump(mode="python", include={"project_id", *CHARTER_FIELDS}),
        lifecycle=registered.lifecycle,
        registered_by=cause,
    )
    project.objectives = charter["objectives"]
    uow.session.add(project)
    record(
        uow,
        registered.project_id,
        "registered",
        cause=cause,
        after={**charter, "lifecycle": registered.lifecycle},
    )
    await uow.publish(registered)
    await suggest_lessons(uow, project, cause=cause)
    # Reports, health and allocation events that overtook the registration are applied now.
    uow.release(registered.project_id)
    return project


async def suggest_lessons(uow: UnitOfWork, project: ProjectRow, *, cause: str) -> None:
    """Put the lessons of similar closed projects before a new project's manager.

    If there are any, a `lessons_suggested` history entry lists them and `lessons-suggested`
    is published (for the manager's notification); `GET /projects/{id}/lesson-suggestions`
    gives the current suggestions at any time.
    """
    closed = configuration_of(uow).stage_models.closed_stages
    suggestions = await similar_lessons(uow.session, project, closed)
    if not suggestions:
        return
    lessons = [
        SuggestedLesson(
            lesson_id=suggestion.lesson.id or 0,
            project_id=suggestion.lesson.project_id,
            title=suggestion.lesson.title,
            similarity=suggestion.similarity,
        )
        for suggestion in suggestions
    ]
    record(
        uow,
        project.project_id,
        "lessons_suggested",
        cause=cause,
        after={"lessons": [lesson.model_dump(mode="json") for lesson in lessons]},
    )
    await uow.publish(
        LessonsSuggested(project_id=project.project_id, manager=project.manager, lessons=lessons)
    )


def update(
    uow: UnitOfWork, project: ProjectRow, proposed: Mapping[str, Any], *, cause: str
) -> dict[str, Any]:
    """Set the proposed charter fields; history keeps the ones that changed. Returns those."""
    current = {name: getattr(project, name) for name in proposed}
    before, after = changed_fields(current, proposed)
    if not after:
        return after
    for name in after:
        setattr(project, name, proposed[name])
    _touch(project)
    record(uow, project.project_id, "updated", cause=cause, before=before, after=after)
    return after


async def move(
    uow: UnitOfWork | RegistryUnitOfWork,
    project: ProjectRow,
    model: StageModel,
    to_stage: Stage,
    *,
    cause: str,
    reason: str | None,
    percent_complete: float | None = None,
) -> None:
    """Move the project to `to_stage` if its stage model allows it now; announce the move.

    A gate asking for deliverables, lessons learned or a review is checked against what the
    project has; the move closes the gate reviews recorded in the stage it leaves.
    Raises ImpossibleTransition (with the reason, naming all that is missing) otherwise;
    nothing is changed then.
    """
    work = registry_work(uow)
    from_stage = stage_of(project)
    progress = percent_complete if percent_complete is not None else project.percent_complete
    gate = model.gate(from_stage, to_stage)
    evidence = (
        await work.gates.evidence(project.project_id, from_stage, to_stage)
        if gate is not None and gate.needs_evidence
        else None
    )
    model.check(from_stage, to_stage, percent_complete=progress, reason=reason, evidence=evidence)
    await work.gates.close_reviews(project.project_id, cause=cause)
    project.lifecycle = to_stage
    _touch(project)
    record(
        work,
        project.project_id,
        "lifecycle",
        cause=cause,
        before={"lifecycle": from_stage},
        after={"lifecycle": to_stage},
        note=reason,
    )
    await work.publish(
        ProjectLifecycleChanged(
            project_id=project.project_id,
            from_stage=from_stage,
            to_stage=to_stage,
            cause=cause,
            reason=reason,
        )
    )


async def all_projects(
    uow: UnitOfWork | RegistryUnitOfWork, *, lock: bool = False
) -> list[ProjectRow]:
    """Every project, by id; `lock`: held until the unit of work ends."""
    return await registry_work(uow).projects.all(lock=lock)
