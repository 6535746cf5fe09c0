"""What-if: the allocations and conflicts a draft strategy or a hypothetical request would give.

It reads the portfolio in a transaction that is rolled back, solves a modified copy in memory,
and writes nothing: no allocation, no decision, no event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from services.allocation.adapters.repository import load_state
from services.allocation.domain.decisions import (
    Conflict,
    Explainer,
    OpenRequest,
    Outcome,
    plan_request,
)
from services.allocation.domain.priority import ProjectStanding
from services.allocation.domain.resolution import (
    AllocationState,
    Resolution,
    request_weights,
    resolve,
    with_requests,
    with_standings,
)
from shared.events.contracts import ResourceRequested
from shared.settings import Settings


@dataclass(frozen=True)
class DraftRank:
    project_id: str
    rank: int
    score: float | None = None


@dataclass(frozen=True)
class WhatIf:
    """The answer: requests whose allocation would change, the hypothetical ones, conflicts."""

    state: AllocationState
    resolution: Resolution
    changed: Mapping[str, tuple[Outcome, Outcome]]
    hypothetical: Mapping[str, Outcome]
    conflicts: Sequence[Conflict]
    new_conflicts: frozenset[str]


def drafted(
    state: AllocationState,
    ranking: Sequence[DraftRank] | None,
    lifecycles: Mapping[str, str] | None,
) -> AllocationState:
    """The state under a draft ranking (the whole portfolio) and draft lifecycle stages."""
    standings: dict[str, ProjectStanding] = dict(state.standings)
    if ranking is not None:
        ranked = {draft.project_id: draft for draft in ranking}
        for project_id in set(standings) | set(ranked):
            current = standings.get(project_id) or ProjectStanding(project_id=project_id)
            draft = ranked.get(project_id)
            standings[project_id] = replace(
                current,
                rank=draft.rank if draft else None,
                score=draft.score if draft else None,
                portfolio_size=len(ranked),
                strategy_version=None,
            )
    for project_id, stage in (lifecycles or {}).items():
        current = standings.get(project_id) or ProjectStanding(project_id=project_id)
        standings[project_id] = replace(current, lifecycle=stage)
    return with_standings(state, standings)


def hypothetical_request(
    event: ResourceRequested, state: AllocationState, hours_per_fte_week: float
) -> OpenRequest:
    return plan_request(
        request_id=event.request_id,
        project_id=event.project_id,
        skill=event.skill,
        fte=event.fte,
        hours=event.hours,
        start=event.start,
        end=event.end,
        current_week=state.current_week,
        hours_per_fte_week=hours_per_fte_week,
        named_resource=event.named_resource,
        priority=event.priority,
        arrival=len(state.requests) + 1_000_000,
        decided=False,
    )


async def what_if(
    session: AsyncSession,
    settings: Settings,
    *,
    ranking: Sequence[DraftRank] | None = None,
    lifecycles: Mapping[str, str] | None = None,
    requests: Sequence[ResourceRequested] = (),
) -> WhatIf:
    """Solve the portfolio as it would be; `session` is only read and then rolled back."""
    try:
        state = await load_state(
            session,
            today=datetime.now(UTC).date(),
            hours_per_fte_week=settings.allocation_hours_per_fte_week,
        )
    finally:
        await session.rollback()
    return await asyncio.to_thread(
        what_if_in_memory,
        state,
        settings,
        ranking=ranking,
        lifecycles=lifecycles,
        requests=requests,
    )


def what_if_in_memory(
    state: AllocationState,
    settings: Settings,
    *,
    ranking: Sequence[DraftRank] | None = None,
    lifecycles: Mapping[str, str] | None = None,
    requests: Sequence[ResourceRequested] = (),
) -> WhatIf:
    """The what-if on a loaded state: the resolution under the draft, and the conflicts of
    today it is compared with (CPU only; what `POST /what-if` runs once the state is loaded,
    and what the benchmark times)."""
    changed_world = drafted(state, ranking, lifecycles)
    extra = [
        hypothetical_request(event, state, settings.allocation_hours_per_fte_week)
        for event in requests
    ]
    changed_world = with_requests(changed_world, extra)
    # A new ranking or stage may move anything; hypothetical requests only touch their weeks
    # (requests never decided, as these are, are solved over all their weeks anyway).
    weeks: set[str] | None = None if ranking is not None or lifecycles else set()
    resolution = resolve(
        changed_world,
        weeks,
        move_penalty=settings.allocation_move_penalty,
        time_limit=settings.allocation_solver_time_limit_s,
        explain_all=True,  # the draft's conflicts, compared with today's, are all shown
    )
    hypothetical_ids = {request.request_id for request in extra}
    undecided_now = {r for r, request in state.requests.items() if not request.decided}
    changed = {
        change.request_id: (change.before, change.after)
        for change in resolution.changed
        if change.request_id not in hypothetical_ids
    }
    # New: an outcome that does not stand today (the draft's words differ for every conflict).
    known_conflicts = {conflict.outcome for conflict in conflicts_now(state, undecided_now)}
    return WhatIf(
        state=changed_world,
        resolution=resolution,
        changed=changed,
        hypothetical={r: resolution.outcomes[r] for r in sorted(hypothetical_ids)},
        conflicts=resolution.conflicts,
        new_conflicts=frozenset(
            c.conflict_id for c in resolution.conflicts if c.outcome not in known_conflicts
        ),
    )


def conflicts_now(state: AllocationState, undecided: set[str]) -> Sequence[Conflict]:
    """The conflicts as they stand today, without re-solving (undecided requests left out)."""
    requests = {r: q for r, q in state.requests.items() if r not in undecided}
    explainer = Explainer(
        requests, state.people, state.standings, request_weights(state), state.allocations
    )
    return explainer.conflicts()
