"""A program's roll-up: its projects' earned value summed, its worst health and why, its end date.

Program-level earned value is computed from the sums of its projects' figures, never as an
average of their indices (PMI, *Practice Standard for Earned Value Management*, 2nd ed., 2011,
"Integrating EVM at the program and portfolio level"; PMI, *The Standard for Program
Management*, 4th ed., 2017, program performance monitoring and control):

- BAC = sum of the projects' BAC; PV, EV and AC likewise (currency);
- SPI = sum(EV) / sum(PV); CPI = sum(EV) / sum(AC) (an average of ratios would weigh a small
  project as much as a large one);
- EAC = sum of the projects' EAC; VAC = BAC - EAC.

Which figures: monitoring's newest assessment of each project (BAC, PV, EV, AC, EAC, as kept
by the registry from `project-health-assessed`). A project not assessed yet (no status report)
counts its charter budget in BAC and nothing in PV, EV and AC (nothing measured yet), and its
budget as its EAC, as does a project whose EAC is undefined (nothing spent yet, so no CPI): the
budget stands until cost performance says otherwise. Those projects are listed, so a reader knows
which figures are estimates. Money is summed only when every project uses one currency: with
several (no exchange rates are known here) the money figures and indices are None.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from shared.events.contracts import HEALTH_RANK

MONEY_DIGITS = 2
INDEX_DIGITS = 4


@dataclass(frozen=True)
class MemberProject:
    """One project of a program, as the registry keeps it."""

    project_id: str
    name: str
    lifecycle: str
    closed: bool
    """Completed or terminated (final in its stage model)."""
    budget: float
    """The charter's budget at completion (BAC) in force, in `currency`."""
    currency: str
    planned_finish_date: date
    health: str | None = None
    """Monitoring's newest assessment (green, amber, red); None: not assessed yet."""
    reasons: Sequence[Mapping[str, object]] = ()
    """That assessment's reasons: `{code, severity, message, numbers}`, worst first."""
    metrics: Mapping[str, float | None] = field(default_factory=dict)
    """That assessment's figures (`bac`, `pv`, `ev`, `ac`, `eac`, ...); empty before one."""
    forecast_finish: date | None = None
    open_shortfall_fte: float = 0.0
    """FTE requested and not granted over its open resource requests."""


@dataclass(frozen=True)
class ProgramReason:
    """One reason behind the program's worst health: which project, what and how bad."""

    project_id: str
    code: str
    severity: str | None
    message: str


@dataclass(frozen=True)
class ProgramRollUp:
    """A program's figures over its projects (money in `currency`, FTE, dates)."""

    projects: tuple[str, ...]
    currency: str | None
    """The projects' one currency; None when there are none or several (`currencies`)."""
    currencies: tuple[str, ...]
    budget_at_completion: float | None
    planned_value: float | None
    earned_value: float | None
    actual_cost: float | None
    spi: float | None
    """sum(EV) / sum(PV); None when nothing was planned yet."""
    cpi: float | None
    """sum(EV) / sum(AC); None when nothing was spent yet."""
    estimate_at_completion: float | None
    variance_at_completion: float | None
    health: str | None
    """The worst health of its assessed projects; None: none assessed."""
    reasons: tuple[ProgramReason, ...]
    """The reasons of the projects at that worst health, worst first."""
    not_assessed: tuple[str, ...]
    """Projects with no assessment yet: budget in BAC and EAC, nothing in PV, EV, AC."""
    eac_at_budget: tuple[str, ...]
    """Projects whose EAC is their budget (not assessed, or no CPI yet)."""
    open_shortfall_fte: float
    """FTE requested and not granted, over all its projects (allocation's conflicts' losers)."""
    ends_on: date | None
    ended: bool
    """A temporary program whose end date has passed."""
    finishing_after_end: tuple[str, ...]
    """Open projects expected to finish after the program's end date (forecast, else plan)."""


def _figure(metrics: Mapping[str, float | None], name: str) -> float | None:
    value = metrics.get(name)
    return float(value) if isinstance(value, int | float) else None


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, INDEX_DIGITS) if denominator else None


def roll_up(
    members: Sequence[MemberProject], *, ends_on: date | None, today: date
) -> ProgramRollUp:
    """The program's figures from its `members` (see the module docstring for the rules).

    `ends_on` is a temporary program's end date (None: standing); `today` decides whether it
    has ended.
    """
    members = sorted(members, key=lambda member: member.project_id)
    currencies = tuple(sorted({member.currency for member in members}))
    one_currency = len(currencies) == 1
    bac = pv = ev = ac = eac = 0.0
    not_assessed: list[str] = []
    eac_at_budget: list[str] = []
    for member in members:
        assessed = member.health is not None and _figure(member.metrics, "ev") is not None
        if not assessed:
            not_assessed.append(member.project_id)
            bac += member.budget
            eac += member.budget
            eac_at_budget.append(member.project_id)
            continue
        member_bac = _figure(member.metrics, "bac")
        bac += member.budget if member_bac is None else member_bac
        pv += _figure(member.metrics, "pv") or 0.0
        ev += _figure(member.metrics, "ev") or 0.0
        ac += _figure(member.metrics, "ac") or 0.0
        member_eac = _figure(member.metrics, "eac")
        if member_eac is None:
            eac += member.budget if member_bac is None else member_bac
            eac_at_budget.append(member.project_id)
        else:
            eac += member_eac

    assessed_health = [member.health for member in members if member.health in HEALTH_RANK]
    worst = max(assessed_health, key=lambda health: HEALTH_RANK.get(health or "", -1), default=None)
    reasons = tuple(
        ProgramReason(
            project_id=member.project_id,
            code=str(reason.get("code", "")),
            severity=None if reason.get("severity") is None else str(reason.get("severity")),
            message=str(reason.get("message", "")),
        )
        for member in members
        if worst not in (None, "green") and member.health == worst
        for reason in member.reasons
    )
    reasons = tuple(
        sorted(
            reasons,
            key=lambda reason: (-HEALTH_RANK.get(reason.severity or "", 0), reason.project_id),
        )
    )
    late = tuple(
        member.project_id
        for member in members
        if ends_on is not None
        and not member.closed
        and (member.forecast_finish or member.planned_finish_date) > ends_on
    )

    def money(value: float) -> float | None:
        return round(value, MONEY_DIGITS) if one_currency else None

    return ProgramRollUp(
        projects=tuple(member.project_id for member in members),
        currency=currencies[0] if one_currency else None,
        currencies=currencies,
        budget_at_completion=money(bac),
        planned_value=money(pv),
        earned_value=money(ev),
        actual_cost=money(ac),
        spi=_ratio(ev, pv) if one_currency else None,
        cpi=_ratio(ev, ac) if one_currency else None,
        estimate_at_completion=money(eac),
        variance_at_completion=money(bac - eac),
        health=worst,
        reasons=reasons,
        not_assessed=tuple(not_assessed),
        eac_at_budget=tuple(eac_at_budget),
        open_shortfall_fte=round(sum(member.open_shortfall_fte for member in members), 6),
        ends_on=ends_on,
        ended=ends_on is not None and today > ends_on,
        finishing_after_end=late,
    )
