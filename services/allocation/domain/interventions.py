"""PMO interventions: when a project needs one of the PMO's experts, which specialty, and who.

The PMO keeps a few experts of its own (resources with specialties). A key project that turns
red, or stays amber longer than the PMO tolerates, gets one proposed whose specialty answers its
risk reasons; a project manager may also ask for one. Who is proposed is decided by the same
solver and priority rules as every resource request (resolution.resolve over the portfolio as it
stands, the proposals added as requests for the specialty), so when experts are scarce the most
important project in trouble gets one first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from services.allocation.domain.decisions import plan_request
from services.allocation.domain.pool import specialties_of
from services.allocation.domain.resolution import AllocationState, resolve, with_requests

SPECIALTY_BY_REASON: Mapping[str, str] = {
    "schedule": "schedule-recovery",
    "milestone_overdue": "schedule-recovery",
    "cost": "cost-control",
    "resource_shortfall": "resource-planning",
    "stale_status": "project-controls",
    "reported_red": "project-recovery",
    "reported_amber": "project-recovery",
}
"""Monitoring's reason codes (see monitoring's domain/health.py) and the specialty answering each.

A reason without an entry, or whose specialty no expert has, is passed over for the next one."""

GENERAL_SPECIALTY = "project-recovery"
"""Proposed when no reason names a specialty an expert has: a senior PM's general help."""

SPECIALTY_SKILL_PREFIX = "pmo-expert:"
"""The skill key an expert's specialty is matched by in the solver (never a pool skill)."""


def specialty_key(specialty: str) -> str:
    """How a specialty is compared: `Schedule Recovery` and `schedule-recovery` are one."""
    found = specialties_of([specialty])
    return found[0] if found else ""


def wanted_specialty(reason_codes: Sequence[str], available: Iterable[str]) -> str:
    """The specialty answering the first reason (worst first) that some expert has.

    `available` are the specialties the PMO's experts have. With none matching, the general
    `project-recovery` is wanted (possibly with nobody to give it: the proposal then says so).
    """
    have = {specialty_key(s) for s in available}
    for code in reason_codes:
        specialty = SPECIALTY_BY_REASON.get(code)
        if specialty is not None and specialty in have:
            return specialty
    for code in reason_codes:  # nobody has it: still ask for what the worst reason needs
        if code in SPECIALTY_BY_REASON:
            return SPECIALTY_BY_REASON[code]
    return GENERAL_SPECIALTY


def needs_intervention(
    *,
    health: str,
    key_project: bool,
    holds_people: bool,
    at_risk_since: datetime | None,
    now: datetime,
    amber_after: timedelta,
) -> bool:
    """Whether a project's health calls for a PMO expert, pushed by risk.

    Only key projects that hold people (not on hold, completed or terminated): red at once,
    amber once it has lasted longer than `amber_after` (from `at_risk_since`).
    """
    if not key_project or not holds_people:
        return False
    if health == "red":
        return True
    return health == "amber" and at_risk_since is not None and now - at_risk_since > amber_after


@dataclass(frozen=True)
class Proposal:
    """An intervention waiting for a decision: who should be proposed for it is to be decided."""

    intervention_id: str
    project_id: str
    specialty: str
    fte: float
    """FTE of the expert's time per week."""
    start: date
    end: date


@dataclass(frozen=True)
class Staffing:
    """Who would serve a proposal (None: nobody is free for it), and the allocation's why."""

    expert_id: str | None
    fte: float
    """Average FTE the expert would give per planned week (0 when none)."""
    why: str


def staff(
    state: AllocationState,
    proposals: Sequence[Proposal],
    specialties: Mapping[str, Sequence[str]],
    *,
    hours_per_fte_week: float,
    move_penalty: float,
    time_limit: float,
) -> dict[str, Staffing]:
    """Propose experts for all open proposals at once, by the allocation's priority rules.

    The portfolio `state` as it stands (accepted interventions are already requests naming their
    expert) gets each proposal as a request for the skill `pmo-expert:<specialty>`, held by the
    experts with that specialty (`specialties`: resource id -> its specialties), and is solved
    as any re-resolution is: the higher-priority project in trouble gets a scarce expert. Pure:
    nothing is written.
    """
    if not proposals:
        return {}
    people = dict(state.people)
    for resource_id, held in specialties.items():
        member = people.get(resource_id)
        if member is not None and held:
            keys = tuple(f"{SPECIALTY_SKILL_PREFIX}{specialty_key(s)}" for s in held)
            people[resource_id] = replace(member, skills=(*member.skills, *keys))
    asked = [
        plan_request(
            request_id=proposal.intervention_id,
            project_id=proposal.project_id,
            skill=f"{SPECIALTY_SKILL_PREFIX}{specialty_key(proposal.specialty)}",
            fte=proposal.fte,
            hours=None,
            start=proposal.start,
            end=proposal.end,
            current_week=state.current_week,
            hours_per_fte_week=hours_per_fte_week,
            arrival=len(state.requests) + index,
        )
        for index, proposal in enumerate(proposals)
    ]
    world = with_requests(replace(state, people=people), asked)
    resolution = resolve(world, set(), move_penalty=move_penalty, time_limit=time_limit)
    staffed: dict[str, Staffing] = {}
    for proposal in proposals:
        outcome = resolution.outcomes[proposal.intervention_id]
        expert = outcome.resource_id if outcome.fte_granted > 0 else None
        staffed[proposal.intervention_id] = Staffing(
            expert_id=expert,
            fte=outcome.fte_granted if expert else 0.0,
            why=outcome.reason.replace(
                f"everyone with the skill '{SPECIALTY_SKILL_PREFIX}", "every PMO expert in '"
            ).replace(SPECIALTY_SKILL_PREFIX, "PMO expert in "),
        )
    return staffed
