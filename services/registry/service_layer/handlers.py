"""What the registry does with each event: load, decide with the domain, store, publish.

An event about a project the registry does not know yet is parked (`Deferred`, waiting for the
project id) and replayed once the project is registered, by an event or through the API.
An impossible lifecycle move or an unknown methodology is `Rejected`: the event goes to the
dead-letter topic with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from pydantic_core import to_json

from services.registry.adapters.tables import ProjectRow, ResourceShortfallRow
from services.registry.domain.projects import charter_of, registration
from services.registry.domain.stage_models import (
    ImpossibleTransition,
    StageModel,
    UnknownMethodology,
)
from services.registry.service_layer import projects as changes
from services.registry.service_layer.baselines import (
    BASELINE_FIELDS,
    BaselineTerms,
    rebaseline,
    stored_curve,
    take_first_baseline,
    terms_in_force,
)
from services.registry.service_layer.configuration import configuration_of
from services.registry.service_layer.programs import place_from_charter
from services.registry.service_layer.reports import open_shortfalls
from services.registry.service_layer.strategy import apply_strategy
from shared.allocation_outcomes import RequestOutcome, request_outcomes
from shared.events.cloudevents import TYPE_PREFIX
from shared.events.contracts import (
    InterventionAccepted,
    InterventionDeclined,
    InterventionEnded,
    InterventionEvent,
    InterventionProposed,
    ProjectHealthAssessed,
    ProjectRegistered,
    ProjectStarted,
    ResourceAllocated,
    ResourceConflictResolved,
    StatusChanged,
    StrategyChanged,
)
from shared.messaging.consumer import Deferred, Delivery, EventMeta, Rejected
from shared.messaging.unit_of_work import UnitOfWork
from shared.projections import keep_newest, supersedes

log = logging.getLogger(__name__)


def _stage_model(uow: UnitOfWork, methodology: str | None, project_id: str) -> StageModel:
    try:
        return configuration_of(uow).stage_models.resolve(methodology)
    except UnknownMethodology as unknown:
        raise Rejected(f"{project_id}: {unknown.reason}") from unknown


def _not_registered(project_id: str, what: str) -> Deferred:
    return Deferred(
        waits_for=project_id,
        reason=f"{what} for {project_id}, which is not registered yet: kept until it is",
    )


async def _known(uow: UnitOfWork, project_id: str, what: str) -> ProjectRow:
    project = await changes.project_for_change(uow, project_id)
    if project is None:
        raise _not_registered(project_id, what)
    return project


async def on_project_started(event: ProjectStarted, meta: EventMeta, uow: UnitOfWork) -> None:
    """Register the project as started, or start a known one proposed or approved before.

    A known project takes the event's charter (changed fields kept in its history); a charter
    naming a program puts the project in it (`project-program-changed`). One not yet
    started walks its stage model's path to the started stage, each step announced; one already
    running stays where it is; a closed one (completed, terminated) cannot start again.
    """
    model = _stage_model(uow, event.methodology, event.project_id)
    terms = BaselineTerms(
        budget=event.budget,
        start_date=event.start_date,
        planned_finish_date=event.planned_finish_date,
        planned_value_curve=stored_curve(event.planned_value_curve),
    )
    project = await changes.project_for_change(uow, event.project_id)
    if project is None:
        project = await changes.register(
            uow, registration(event, model.started, model.name), cause=meta.id
        )
        take_first_baseline(uow, project, terms, approved_by=meta.source, cause=meta.id)
        await place_from_charter(uow, project, event.program_id, cause=meta.id)
        return

    if event.methodology is None:
        # The sender names no methodology: the project keeps the one it was registered with.
        model = _stage_model(uow, project.methodology, project.project_id)
    stage = changes.stage_of(project)
    if not model.has_stage(stage):
        raise Rejected(
            f"{project.project_id} is {stage}, a stage the {model.name} stage model does not have"
        )
    if model.is_final(stage):
        raise Rejected(
            f"{project.project_id} is {stage}, final in the {model.name} stage model: "
            f"a {stage} project cannot be started again"
        )
    charter = charter_of(event, model.name)
    if project.baseline_version is None:
        # Started now: its budget and dates (a proposal until today) become baseline 1.
        changes.update(uow, project, charter, cause=meta.id)
        take_first_baseline(uow, project, terms, approved_by=meta.source, cause=meta.id)
    else:
        # Started before: a different budget, dates or curve is a re-baseline by the sender.
        changes.update(
            uow,
            project,
            {name: value for name, value in charter.items() if name not in BASELINE_FIELDS},
            cause=meta.id,
        )
        if terms != terms_in_force(project):
            await rebaseline(
                uow,
                project,
                terms,
                approved_by=meta.source,
                reason=f"the enterprise restated the baseline (project-started {meta.id})",
                cause=meta.id,
            )
    await place_from_charter(uow, project, event.program_id, cause=meta.id)
    if model.phase(stage) != "pipeline":
        return
    path = model.path_to_start(stage)
    if path is None:  # the file's validation makes sure there is one
        raise Rejected(f"{project.project_id}: no way from {stage} to {model.started}")
    for step in path:
        try:
            await changes.move(
                uow,
                project,
                model,
                step,
                cause=meta.id,
                reason="the enterprise started the project",
            )
        except ImpossibleTransition as impossible:  # a gate's deliverables or review missing
            raise Rejected(f"{project.project_id}: {impossible.reason}") from impossible


async def on_status_changed(deliveries: Sequence[Delivery[StatusChanged]], uow: UnitOfWork) -> None:
    """Keep each report; the newest (by as-of date) is the project's status; apply its lifecycle.

    Per batch: the run's projects are locked and read in one query (where each stands, no ORM
    rows); the reports, the status history rows and each project's newest status are written
    in one statement at the end; a project's reports are applied in the order they came. A
    report moving its project (rare) loads that project as a row for the move. A report of an
    unregistered project is parked (`Deferred`); an impossible lifecycle move is `Rejected`.
    """
    standings = await changes.standings_for_change(uow, {d.event.project_id for d in deliveries})
    for delivery in deliveries:
        if delivery.event.project_id not in standings:
            raise _not_registered(delivery.event.project_id, "a status report")
    reports: list[changes.StatusReport] = []
    history: list[changes.StatusStep] = []
    # Each project's status as the batch leaves it so far: (status_as_of, percent_complete).
    status: dict[str, tuple[date | None, float | None]] = {}
    for delivery in deliveries:
        event, meta = delivery.event, delivery.meta
        project_id = event.project_id
        standing = standings[project_id]
        reports.append(
            (
                meta.source,
                meta.id,
                project_id,
                event.as_of,
                event.percent_complete,
                event.actual_cost,
                event.lifecycle,
                event.reported_health,
            )
        )
        as_of, percent = status.get(project_id) or (
            standing.status_as_of,
            standing.percent_complete,
        )
        if supersedes(event.as_of, as_of):
            status[project_id] = (event.as_of, event.percent_complete)
            step = _status_step(project_id, as_of, percent, event, cause=meta.id)
            if step is not None:
                history.append(step)
        if event.lifecycle is None or event.lifecycle == standing.lifecycle:
            continue
        # Rare (a report moving its project): the history so far first, then the move's, in
        # the order they happened; the move's event continues this report's trace.
        await changes.write_status(uow, history=history)
        history = []
        project = await changes.project_for_change(uow, project_id)
        assert project is not None, "locked above, so still registered"
        if project_id in status:
            project.status_as_of, project.percent_complete = status[project_id]
        model = _stage_model(uow, project.methodology, project_id)
        with delivery.continued():
            try:
                await changes.move(
                    uow,
                    project,
                    model,
                    event.lifecycle,
                    cause=meta.id,
                    reason=event.comment,
                    percent_complete=event.percent_complete,
                )
            except ImpossibleTransition as impossible:
                raise Rejected(f"{project_id}: {impossible.reason}") from impossible
        await uow.session.flush()
        standing.lifecycle = project.lifecycle
    await changes.write_status(
        uow,
        reports=reports,
        history=history,
        statuses={
            project_id: now
            for project_id, now in status.items()
            if now != (standings[project_id].status_as_of, standings[project_id].percent_complete)
        },
    )


def _status_step(
    project_id: str,
    as_of: date | None,
    percent: float | None,
    event: StatusChanged,
    *,
    cause: str,
) -> changes.StatusStep | None:
    """The `status` history row of a report that supersedes the status (as-of date, percent),
    its before and after holding the fields that changed, as JSON (as `changed_fields` gives
    them); None when neither changed."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    if percent != event.percent_complete:
        before["percent_complete"], after["percent_complete"] = percent, event.percent_complete
    if as_of != event.as_of:
        before["status_as_of"] = as_of.isoformat() if as_of is not None else None
        after["status_as_of"] = event.as_of.isoformat()
    if not after:
        return None
    return project_id, to_json(before).decode(), to_json(after).decode(), cause


async def on_strategy_changed(event: StrategyChanged, meta: EventMeta, uow: UnitOfWork) -> None:
    """Apply a newer strategy version (directives, ranking, one announcement); keep older ones."""
    outcome = await apply_strategy(uow, event, cause=meta.id, configuration=configuration_of(uow))
    if outcome.outcome == "ignored":
        log.info("strategy %s ignored: %s", event.strategy_version, outcome.note)


async def on_project_health_assessed(
    event: ProjectHealthAssessed, meta: EventMeta, uow: UnitOfWork
) -> None:
    """Monitoring's assessment: the newest by `assessed_at` is the project's health.

    An older assessment arriving late (another partition's lag, a redelivery) changes nothing.
    The history keeps each change of level or reasons.
    """
    project = await _known(uow, event.project_id, f"a health assessment ({event.health})")
    if not supersedes(event.assessed_at, project.health_as_of):
        log.info("health of %s from %s is older than the one kept", project.project_id, meta.id)
        return
    codes = [reason.code for reason in event.reasons]
    before = {"health": project.health, "reasons": list(project.health_reasons)}
    after = {"health": event.health, "reasons": codes}
    project.health, project.health_reasons, project.health_as_of = (
        event.health,
        codes,
        event.assessed_at,
    )
    project.health_details = [reason.model_dump(mode="json") for reason in event.reasons]
    project.health_metrics = dict(event.metrics)
    project.health_status_as_of = event.as_of
    project.forecast_finish = event.forecast_finish
    project.at_risk_since = event.at_risk_since
    if before != after:
        changes.record(uow, project.project_id, "health", cause=meta.id, before=before, after=after)


async def _open_shortfall(uow: UnitOfWork, project_id: str) -> float:
    return (await open_shortfalls(uow.session, [project_id])).get(project_id, 0.0)


async def _allocation_outcome(uow: UnitOfWork, outcome: RequestOutcome, meta: EventMeta) -> None:
    """Keep a request's latest outcome (by decision time) and the project's open shortfall."""
    decided = meta.time or datetime.now(UTC)
    before = await _open_shortfall(uow, outcome.project_id)
    values = {
        **outcome.figures(),
        "status": outcome.status,
        "decided_at": decided,
        "cause": meta.id,
    }
    if outcome.skill is None:
        del values["skill"]  # a conflict over a named person names no skill: keep the request's
    kept = await keep_newest(
        uow.session,
        ResourceShortfallRow.__table__,  # type: ignore[attr-defined]
        key={"request_id": outcome.request_id},
        values=values,
        order_column="decided_at",
    )
    if not kept:
        return  # a newer decision on this request is already kept
    after = await _open_shortfall(uow, outcome.project_id)
    if after != before:
        changes.record(
            uow,
            outcome.project_id,
            "resource_shortfall",
            cause=meta.id,
            before={"open_shortfall_fte": before},
            after={"open_shortfall_fte": after},
            note=f"request {outcome.request_id}: {outcome.status}, "
            f"{outcome.fte_granted:g} of {outcome.fte_requested:g} FTE",
        )


async def on_resource_allocated(event: ResourceAllocated, meta: EventMeta, uow: UnitOfWork) -> None:
    """A request decided: partial or denied leaves a shortfall (requested - granted)."""
    await _known(uow, event.project_id, "an allocation decision")
    for outcome in request_outcomes(event):
        await _allocation_outcome(uow, outcome, meta)


async def on_resource_conflict_resolved(
    event: ResourceConflictResolved, meta: EventMeta, uow: UnitOfWork
) -> None:
    """A conflict's winners and losers: each loser's ungranted FTE is an open shortfall."""
    outcomes = request_outcomes(event)
    for project_id in sorted({outcome.project_id for outcome in outcomes}):
        await _known(uow, project_id, f"resource conflict {event.conflict_id}")
    for outcome in outcomes:
        await _allocation_outcome(uow, outcome, meta)


async def on_project_registered(event: ProjectRegistered, meta: EventMeta, uow: UnitOfWork) -> None:
    """Our own announcement: a project proposed through the API lets its waiting events in.

    (A registration by an event releases them at once in the same transaction; the API has no
    consumer to replay them, so it relies on this.)
    """
    uow.release(event.project_id)


def _intervention_note(event: InterventionEvent) -> str:
    """The history's sentence for one step of a PMO intervention."""
    expert = event.expert_id or "no expert free yet"
    period = f"{event.fte:g} FTE from {event.start} to {event.end}"
    if isinstance(event, InterventionProposed):
        why = "; ".join(event.reasons) or event.origin
        return f"PMO expert proposed ({event.specialty}): {expert}, {period}. Why: {why}"
    if isinstance(event, InterventionAccepted):
        by = event.accepted_by
        return f"PMO intervention accepted by {by}: {expert} ({event.specialty}), {period}"
    if isinstance(event, InterventionDeclined):
        return f"PMO intervention declined by {event.declined_by}: {event.reason}"
    if isinstance(event, InterventionEnded):
        released = f"; {expert} released" if event.was_accepted else ""
        return f"PMO intervention ended: {event.reason}{released}"
    return f"PMO intervention {event.intervention_id}"


async def on_intervention(event: InterventionEvent, meta: EventMeta, uow: UnitOfWork) -> None:
    """A PMO intervention's step (proposed, accepted, declined, ended) in the project's history."""
    await _known(uow, event.project_id, "a PMO intervention")
    changes.record(
        uow,
        event.project_id,
        "intervention",
        cause=meta.id,
        after={"step": meta.type.removeprefix(TYPE_PREFIX), **event.model_dump(mode="json")},
        note=_intervention_note(event),
    )
