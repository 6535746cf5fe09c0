"""From allocation's rows and domain results to its API's response shapes (and bodies to domain).

Every `...Out` the routes return is built here, so a field added to a response is added once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from services.allocation.adapters.repository import change_kind
from services.allocation.adapters.tables import (
    AssignmentRow,
    CapacityChangeRow,
    ConflictRow,
    InterventionRow,
    ResourceRequestRow,
    ResourceRow,
)
from services.allocation.domain.decisions import PoolMember, assignments_of
from services.allocation.domain.pool import CapacityChange, default_kind
from services.allocation.domain.requests import daily_fte, demand_by_week, working_days_by_week
from services.allocation.entrypoints.schemas import (
    AssignmentOut,
    CapacityChangeIn,
    CapacityChangeOut,
    ConflictOut,
    ExpertOut,
    InterventionOut,
    RequestOut,
    ResourceOut,
    ResourceUtilisationOut,
    SolverReportOut,
    WeekUtilisationOut,
    WhatIfChangeOut,
    WhatIfConflictOut,
    WhatIfOut,
    WhatIfOutcomeOut,
)
from services.allocation.service_layer.resolution import CLOSED, assignments, snapshot
from services.allocation.service_layer.what_if import WhatIf
from shared.events.contracts import Assignment

# --- requests to the domain ---------------------------------------------------------------------


def capacity_changes(items: Iterable[CapacityChangeIn]) -> list[CapacityChange]:
    """The domain's capacity changes from a request body's (kind by its default when absent)."""
    return [
        CapacityChange(
            starts=c.starts,
            ends=c.ends,
            capacity_fte=c.capacity_fte,
            reason=c.reason,
            kind=c.kind or default_kind(c.ends),
        )
        for c in items
    ]


# --- resources ----------------------------------------------------------------------------------


def resources_out(
    resources: Iterable[ResourceRow], changes: Iterable[CapacityChangeRow]
) -> list[ResourceOut]:
    """Each resource with its own dated capacity changes (`changes` in date order)."""
    by_resource: dict[str, list[CapacityChangeOut]] = defaultdict(list)
    for change in changes:
        by_resource[change.resource_id].append(
            CapacityChangeOut(
                starts=change.starts,
                ends=change.ends,
                capacity_fte=change.capacity_fte,
                kind=change_kind(change.kind),
                reason=change.reason,
            )
        )
    return [
        ResourceOut(
            resource_id=resource.resource_id,
            name=resource.name,
            skills=list(resource.skills),
            capacity_fte=resource.capacity_fte,
            capacity_changes=by_resource[resource.resource_id],
            updated_at=resource.updated_at,
        )
        for resource in resources
    ]


def expert_out(resource: ResourceRow) -> ExpertOut:
    """A resource of the pool as one of the PMO's experts (with its specialties)."""
    return ExpertOut(
        resource_id=resource.resource_id,
        name=resource.name,
        specialties=list(resource.specialties),
        capacity_fte=resource.capacity_fte,
    )


# --- requests and allocations -------------------------------------------------------------------


def assignment_lines(
    request_ids: Iterable[str], held: Iterable[AssignmentRow]
) -> dict[str, list[Assignment]]:
    """Each request's assignments, one line per person and FTE, from its weekly rows."""
    weekly: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
    for row in held:
        weekly[row.request_id][(row.resource_id, row.week)] = row.fte
    return {
        request_id: [
            Assignment(resource_id=line.resource_id, fte=line.fte, weeks=list(line.weeks))
            for line in assignments_of(weekly[request_id])
        ]
        for request_id in request_ids
    }


def request_out(
    row: ResourceRequestRow, hours_per_fte_week: float, lines: list[Assignment]
) -> RequestOut:
    """A request as it stands, its demand per week at `hours_per_fte_week` hours to one FTE."""
    return RequestOut(
        request_id=row.request_id,
        project_id=row.project_id,
        skill=row.skill,
        fte=row.fte,
        hours=row.hours,
        fte_per_week=daily_fte(
            row.fte,
            row.hours,
            sum(working_days_by_week(row.start, row.end).values()),
            hours_per_fte_week,
        ),
        fte_by_week=demand_by_week(row.fte, row.hours, row.start, row.end, hours_per_fte_week),
        start=row.start,
        end=row.end,
        weeks=list(working_days_by_week(row.start, row.end)),
        priority=row.priority,
        named_resource=row.named_resource,
        status=row.status,
        fte_granted=row.fte_granted,
        reason=row.reason,
        received_at=row.received_at,
        decided_at=row.decided_at,
        assignments=lines,
    )


def allocations_out(
    held: Iterable[tuple[AssignmentRow, ResourceRequestRow]], names: Mapping[str, str]
) -> list[AssignmentOut]:
    """Weekly assignments gathered into lines (request, person, FTE) with their weeks."""
    lines: dict[tuple[str, str, float], tuple[ResourceRequestRow, list[str]]] = {}
    for row, owner in held:
        key = (row.request_id, row.resource_id, round(row.fte, 3))
        lines.setdefault(key, (owner, []))[1].append(row.week)
    return [
        AssignmentOut(
            request_id=request_id,
            project_id=owner.project_id,
            skill=owner.skill,
            resource_id=person,
            resource_name=names.get(person),
            fte=fte,
            weeks=sorted(weeks),
        )
        for (request_id, person, fte), (owner, weeks) in sorted(lines.items())
    ]


def utilisation_out(
    members: Iterable[PoolMember],
    weeks: Sequence[str],
    held: Iterable[AssignmentRow],
    skill: str | None,
) -> list[ResourceUtilisationOut]:
    """The heatmap: each member (with `skill`, any case, when given) by resource id, week by
    week: capacity, allocated FTE and their ratio (None without capacity)."""
    loads: dict[tuple[str, str], float] = defaultdict(float)
    for row in held:
        loads[(row.resource_id, row.week)] += row.fte
    rows: list[ResourceUtilisationOut] = []
    for member in sorted(members, key=lambda m: m.resource_id):
        if skill and skill.casefold() not in member.skill_keys:
            continue
        cells = []
        for week in weeks:
            capacity = member.capacity_in(week)
            allocated = round(loads[(member.resource_id, week)], 4)
            cells.append(
                WeekUtilisationOut(
                    week=week,
                    capacity_fte=capacity,
                    allocated_fte=allocated,
                    utilisation=round(allocated / capacity, 4) if capacity > 0 else None,
                )
            )
        rows.append(
            ResourceUtilisationOut(
                resource_id=member.resource_id,
                name=member.name,
                skills=list(member.skills),
                weeks=cells,
            )
        )
    return rows


# --- conflicts, what-if, interventions ----------------------------------------------------------


def conflict_out(row: ConflictRow) -> ConflictOut:
    """A stored conflict as published: `resolved` while it stands, `closed` after."""
    return ConflictOut(
        conflict_id=row.conflict_id,
        state="closed" if row.state == CLOSED else "resolved",
        skill=row.skill,
        resource_id=row.resource_id,
        weeks=list(row.weeks),
        winners=list(row.winners),
        losers=list(row.losers),
        rationale=row.rationale,
        cause=row.cause,
        created_at=row.created_at,
        resolved_at=row.resolved_at,
        closed_at=row.closed_at,
        closed_reason=row.closed_reason,
    )


def what_if_out(result: WhatIf) -> WhatIfOut:
    """What a draft would change: moved requests, hypothetical ones, conflicts, the solver."""
    requests = result.state.requests
    solution = result.resolution.solution
    return WhatIfOut(
        changes=[
            WhatIfChangeOut(
                request_id=request_id,
                project_id=requests[request_id].project_id,
                before=snapshot(before),
                after=snapshot(after),
                reason=after.reason,
            )
            for request_id, (before, after) in sorted(result.changed.items())
        ],
        hypothetical=[
            WhatIfOutcomeOut(
                request_id=request_id,
                project_id=requests[request_id].project_id,
                status=outcome.status,
                fte_requested=outcome.fte_requested,
                fte_granted=outcome.fte_granted,
                weeks=list(outcome.weeks),
                assignments=assignments(outcome),
                reason=outcome.reason,
            )
            for request_id, outcome in result.hypothetical.items()
        ],
        conflicts=[
            WhatIfConflictOut(
                conflict_id=conflict.conflict_id,
                new=conflict.conflict_id in result.new_conflicts,
                skill=conflict.skill,
                resource_id=conflict.resource_id,
                weeks=list(conflict.weeks),
                winners=[vars(d) for d in conflict.winners],
                losers=[vars(d) for d in conflict.losers],
                rationale=conflict.rationale,
            )
            for conflict in result.conflicts
        ],
        solver=SolverReportOut(
            method=solution.method,
            status=solution.status,
            seconds=round(solution.seconds, 4),
            value=solution.value,
            greedy_value=solution.greedy_value,
            moved_allocations=len(solution.moved),
        ),
    )


def intervention_out(row: InterventionRow) -> InterventionOut:
    """A stored intervention as it stands (`start`/`end` are its first and last day)."""
    return InterventionOut(
        intervention_id=row.intervention_id,
        project_id=row.project_id,
        origin="risk" if row.origin == "risk" else "advice",
        specialty=row.specialty,
        reasons=list(row.reasons),
        fte=row.fte,
        start=row.starts,
        end=row.ends,
        expert_id=row.expert_id,
        staffing=row.staffing,
        state=row.state,
        requested_by=row.requested_by,
        decided_by=row.decided_by,
        decision_note=row.decision_note,
        request_id=row.request_id,
        end_reason=row.end_reason,
        proposed_at=row.proposed_at,
        decided_at=row.decided_at,
        ended_at=row.ended_at,
    )
