"""A project's health (RAG) from its facts: rules with thresholds, hysteresis, explained reasons.

Health has dimensions, each giving a level and, when not green, a reason with the numbers behind
it: `schedule` (SPI(t), or SPI where SPI(t) is undefined), `cost` (CPI, TCPI, an exhausted
budget), `milestone_overdue`, `stale_status`, `reported_red`/`reported_amber` (the project
manager's own verdict) and `resource_shortfall`. The project's health is the worst dimension.

Indices that are measured (SPI(t), CPI, TCPI) wobble from report to report, so their level has
hysteresis: getting worse is immediate, but to leave a worse level the index must clear the
threshold by `hysteresis_margin`. The other dimensions are facts (a milestone is overdue or
not) and need none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal, NamedTuple

from services.monitoring.domain.earned_value import (
    Baseline,
    EarnedValueFigures,
    Metrics,
    ProgressReport,
    earned_value,
)
from shared.allocation_outcomes import FTE_EPSILON
from shared.events.contracts import HEALTH_RANK, Health, Severity

# The rules' numbers are defined once, in shared/ (the settings read them too).
from shared.health_rules import HealthThresholds as HealthThresholds

# The levels, their order and an alert's severities are the events' own (one source).
Level = Health
RANK = HEALTH_RANK

SCHEDULE = "schedule"
COST = "cost"
MILESTONE_OVERDUE = "milestone_overdue"
STALE_STATUS = "stale_status"
REPORTED_RED = "reported_red"
REPORTED_AMBER = "reported_amber"
RESOURCE_SHORTFALL = "resource_shortfall"

# The measured indices whose level is remembered between assessments for hysteresis.
SCHEDULE_INDEX = "schedule"
CPI_INDEX = "cpi"
TCPI_INDEX = "tcpi"


def worst(*levels: Level) -> Level:
    return max(levels, key=RANK.__getitem__, default="green")


def better(first: Level, second: Level) -> Level:
    # min(first, second, key=RANK.__getitem__), written out: called per index per report.
    return first if RANK[first] <= RANK[second] else second


def is_worse(level: Level, than: Level) -> bool:
    return RANK[level] > RANK[than]


def floor_level(value: float, *, green_from: float, amber_from: float) -> Level:
    """The level of an index where higher is better, without memory."""
    if value >= green_from:
        return "green"
    return "amber" if value >= amber_from else "red"


def level_with_hysteresis(
    value: float,
    *,
    green_from: float,
    amber_from: float,
    previous: Level,
    margin: float,
) -> Level:
    """The level of a higher-is-better index given its previous level.

    Worsening is immediate. Improving needs the index to clear the threshold by `margin`: the
    level is what `value - margin` would earn, but never worse than before.
    """
    now = floor_level(value, green_from=green_from, amber_from=amber_from)
    if is_worse(now, previous):
        return now
    cleared = floor_level(value - margin, green_from=green_from, amber_from=amber_from)
    return better(cleared, previous)


def ceiling_level_with_hysteresis(
    value: float, *, red_above: float, previous: Level, margin: float
) -> Level:
    """The level of a lower-is-better index (green or red) given its previous level."""
    now: Level = "red" if value > red_above else "green"
    if is_worse(now, previous):
        return now
    cleared: Level = "red" if value + margin > red_above else "green"
    return better(cleared, previous)


@dataclass(frozen=True)
class MilestoneStatus:
    name: str
    due: date
    done: bool


@dataclass(frozen=True)
class ResourcePosition:
    """What a project asked for in one request and what the allocation granted."""

    request_id: str
    skill: str | None
    fte_requested: float
    fte_granted: float

    @property
    def fte_short(self) -> float:
        return max(self.fte_requested - self.fte_granted, 0.0)


class ProjectFacts(NamedTuple):
    """Everything monitoring knows about a project at one moment (a named tuple, as the
    assessment: one of each is made for every report assessed, see `ProgressReport`)."""

    baseline: Baseline
    report: ProgressReport | None = None
    """The latest status report; None before the first one."""
    milestones: Sequence[MilestoneStatus] = ()
    reported_health: Level | None = None
    """The project manager's own verdict in the latest report."""
    days_without_report: int | None = None
    """Set when the staleness clock found no report for too long; None otherwise."""
    resources: Sequence[ResourcePosition] = ()


@dataclass(frozen=True)
class Finding:
    """One reason a project is not green."""

    code: str
    level: Severity
    message: str
    numbers: Metrics


class HealthAssessment(NamedTuple):
    """The outcome of the rules: overall health, why, the index levels to remember, the figures."""

    health: Level
    findings: tuple[Finding, ...]
    index_levels: dict[str, Level]
    metrics: Metrics
    figures: EarnedValueFigures | None = None
    forecast_finish: date | None = None

    @property
    def codes(self) -> list[str]:
        return [finding.code for finding in self.findings]


class _Rules:
    """The thresholds and the hysteresis memory of one assessment (a plain class: one is made
    per report)."""

    __slots__ = ("levels", "previous", "thresholds")

    def __init__(self, thresholds: HealthThresholds, previous: Mapping[str, Level]) -> None:
        self.thresholds = thresholds
        self.previous = previous
        # An index undefined this time (e.g. CPI after a cost correction to zero) keeps its
        # memory, so hysteresis still applies when it is defined again.
        self.levels: dict[str, Level] = dict(previous)

    def remembered(self, index: str) -> Level:
        return self.previous.get(index, "green")


def assess(
    facts: ProjectFacts,
    thresholds: HealthThresholds,
    previous_levels: Mapping[str, Level] | None = None,
) -> HealthAssessment:
    """Apply the rules to a project's facts; `previous_levels` carries the hysteresis memory."""
    rules = _Rules(thresholds, previous_levels or {})
    findings: list[Finding] = []
    figures: EarnedValueFigures | None = None
    metrics: Metrics = {}
    forecast: date | None = None
    if facts.report is not None:
        figures = earned_value(facts.baseline, facts.report)
        metrics, forecast = figures.metrics_and_forecast(
            facts.baseline.start, facts.baseline.planned_finish
        )
        findings.extend(_schedule(metrics, rules))
        findings.extend(_cost(figures, metrics, rules))
        if facts.milestones:
            findings.extend(_milestones(facts.milestones, facts.report.as_of, thresholds))
    # Each rule only where it has something to judge (most reports have none of these).
    if facts.days_without_report is not None:
        findings.extend(_staleness(facts.days_without_report, thresholds))
    if facts.reported_health is not None:
        findings.extend(_reported(facts.reported_health))
    if facts.resources:
        findings.extend(_resources(facts.resources, thresholds))
    health = worst(*(finding.level for finding in findings)) if findings else "green"
    return HealthAssessment(
        health=health,
        findings=tuple(findings),
        index_levels=rules.levels,
        metrics=metrics,
        figures=figures,
        forecast_finish=forecast,
    )


def _schedule(metrics: Metrics, rules: _Rules) -> list[Finding]:
    # Earned Schedule where it is defined: the classic SPI drifts back to 1.0 as a late project
    # completes, SPI(t) does not. SPI stands in only while SPI(t) is undefined (no time elapsed).
    spi_t, spi = metrics["spi_t"], metrics["spi"]
    value, name = (spi_t, "SPI(t)") if spi_t is not None else (spi, "SPI")
    if value is None:
        return []
    t = rules.thresholds
    level = level_with_hysteresis(
        value,
        green_from=t.spi_green_from,
        amber_from=t.spi_amber_from,
        previous=rules.remembered(SCHEDULE_INDEX),
        margin=t.hysteresis_margin,
    )
    rules.levels[SCHEDULE_INDEX] = level
    if level == "green":
        return []
    plain = floor_level(value, green_from=t.spi_green_from, amber_from=t.spi_amber_from)
    if name == "SPI(t)":
        detail = (
            f"the work done was planned to be done by day {metrics['es_days']:.0f} (ES) "
            f"but day {metrics['at_days']:.0f} has been reached (AT)"
        )
    else:
        detail = f"{metrics['ev']:,.0f} earned of the {metrics['pv']:,.0f} planned by now"
    delay = metrics["forecast_delay_days"]
    if delay is not None and delay > 0:
        detail += f"; at this pace it finishes {delay:.0f} days late"
    why = _why_level(level, plain, t.spi_green_from, t.spi_amber_from, t.hysteresis_margin)
    message = f"{name} {value:.2f} {why}: {detail}."
    return [
        Finding(
            SCHEDULE,
            level,
            message,
            {
                "spi_t": spi_t,
                "spi": spi,
                "es_days": metrics["es_days"],
                "at_days": metrics["at_days"],
                "sv_t_days": metrics["sv_t_days"],
                "forecast_delay_days": delay,
                "green_from": t.spi_green_from,
                "amber_from": t.spi_amber_from,
                "hysteresis_margin": t.hysteresis_margin,
            },
        )
    ]


def _why_level(
    level: Level, plain: Level, green_from: float, amber_from: float, margin: float
) -> str:
    """Why a higher-is-better index has its level, naming the hysteresis when it holds it."""
    if is_worse(level, plain):
        return f"has not yet cleared its threshold by the {margin:g} margin needed to leave {level}"
    return f"is below {amber_from:g}" if level == "red" else f"is below {green_from:g}"


def _cost(figures: EarnedValueFigures, metrics: Metrics, rules: _Rules) -> list[Finding]:
    t = rules.thresholds
    parts: list[str] = []
    cpi, tcpi = metrics["cpi"], metrics["tcpi"]
    cpi_level: Level = "green"
    if cpi is not None:
        cpi_level = level_with_hysteresis(
            cpi,
            green_from=t.cpi_green_from,
            amber_from=t.cpi_amber_from,
            previous=rules.remembered(CPI_INDEX),
            margin=t.hysteresis_margin,
        )
        rules.levels[CPI_INDEX] = cpi_level
        if cpi_level != "green":
            plain = floor_level(cpi, green_from=t.cpi_green_from, amber_from=t.cpi_amber_from)
            why = _why_level(
                cpi_level, plain, t.cpi_green_from, t.cpi_amber_from, t.hysteresis_margin
            )
            parts.append(
                f"CPI {cpi:.2f} {why}: "
                f"{figures.actual_cost:,.0f} spent for {figures.earned_value:,.0f} of value earned"
            )
    tcpi_level: Level = "green"
    if figures.spent_without_budget:
        # A zero budget leaves CPI, EAC and TCPI undefined; the spending itself is the problem.
        tcpi_level = "red"
        parts.append(
            f"there is no budget (0) but {figures.actual_cost:,.0f} has been spent "
            f"with {figures.percent_complete:g}% of the work done"
        )
    elif figures.budget_exhausted:
        tcpi_level = "red"
        parts.append(
            f"the budget of {figures.budget_at_completion:,.0f} is spent "
            f"({figures.actual_cost:,.0f}) with {figures.remaining_work:,.0f} of work remaining"
        )
    elif tcpi is not None:
        tcpi_level = ceiling_level_with_hysteresis(
            tcpi,
            red_above=t.tcpi_red_above,
            previous=rules.remembered(TCPI_INDEX),
            margin=t.hysteresis_margin,
        )
        if tcpi_level == "red":
            held = tcpi <= t.tcpi_red_above
            parts.append(
                f"TCPI {tcpi:.2f} "
                + (
                    f"has not yet fallen {t.hysteresis_margin:g} below {t.tcpi_red_above:g}"
                    if held
                    else f"is above {t.tcpi_red_above:g}"
                )
                + ": the remaining work must be done "
                f"{(tcpi - 1) * 100:.0f}% more efficiently than planned to finish within budget"
            )
    rules.levels[TCPI_INDEX] = tcpi_level
    # worst(cpi_level, tcpi_level), written out: called per report.
    level = cpi_level if RANK[cpi_level] >= RANK[tcpi_level] else tcpi_level
    if level == "green":
        return []
    return [
        Finding(
            COST,
            level,
            _sentence("; ".join(parts)),
            {
                "cpi": cpi,
                "tcpi": tcpi,
                "eac": metrics["eac"],
                "vac": metrics["vac"],
                "ac": metrics["ac"],
                "ev": metrics["ev"],
                "bac": metrics["bac"],
                "green_from": t.cpi_green_from,
                "amber_from": t.cpi_amber_from,
                "tcpi_red_above": t.tcpi_red_above,
                "hysteresis_margin": t.hysteresis_margin,
            },
        )
    ]


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def _milestones(
    milestones: Sequence[MilestoneStatus], as_of: date, t: HealthThresholds
) -> list[Finding]:
    overdue = sorted(
        ((as_of - m.due).days, m.name) for m in milestones if not m.done and m.due < as_of
    )
    if not overdue:
        return []
    most = overdue[-1][0]
    level: Severity = "red" if most > t.milestone_red_after_days else "amber"
    listed = ", ".join(f"{name} ({days} days)" for days, name in reversed(overdue))
    return [
        Finding(
            MILESTONE_OVERDUE,
            level,
            f"{len(overdue)} milestone{'s' if len(overdue) > 1 else ''} overdue and not done "
            f"as of {as_of}: {listed}.",
            {
                "overdue": float(len(overdue)),
                "most_days_overdue": float(most),
                "red_after_days": float(t.milestone_red_after_days),
            },
        )
    ]


def _staleness(days: int | None, t: HealthThresholds) -> list[Finding]:
    if days is None:
        return []
    return [
        Finding(
            STALE_STATUS,
            "amber",
            f"No status report for {days} days (more than {t.stale_after_days}): "
            "the project's health is not known.",
            {"days_without_report": float(days), "stale_after_days": float(t.stale_after_days)},
        )
    ]


def _reported(reported: Level | None) -> list[Finding]:
    # The project manager's own red flag is trusted: it often comes before the figures show it.
    # Amber is their concern, short of an alarm: it makes the project amber, with its own code.
    if reported == "red":
        return [Finding(REPORTED_RED, "red", "The project manager reports the project red.", {})]
    if reported == "amber":
        return [
            Finding(REPORTED_AMBER, "amber", "The project manager reports the project amber.", {})
        ]
    return []


def _fte(value: float) -> str:
    """FTE in words, to two decimals at most (0.23, 1, 0.5): the exact figure is in `numbers`."""
    return f"{round(value, 2):g}"


def _resources(positions: Sequence[ResourcePosition], t: HealthThresholds) -> list[Finding]:
    requested = sum(p.fte_requested for p in positions)
    short = [p for p in positions if p.fte_short > FTE_EPSILON]
    if not short or requested <= 0:
        return []
    granted = sum(p.fte_granted for p in positions)
    missing = sum(p.fte_short for p in short)
    share = missing / requested
    level: Severity = "red" if share >= t.resource_shortfall_red_from else "amber"
    listed = ", ".join(
        f"{p.request_id}{f' ({p.skill})' if p.skill else ''}: "
        f"{_fte(p.fte_granted)} of {_fte(p.fte_requested)} FTE"
        for p in sorted(short, key=lambda p: p.request_id)
    )
    return [
        Finding(
            RESOURCE_SHORTFALL,
            level,
            f"{_fte(missing)} of the {_fte(requested)} FTE requested are not granted "
            f"({share:.0%}): {listed}.",
            {
                "fte_requested": round(requested, 4),
                "fte_granted": round(granted, 4),
                "fte_short": round(missing, 4),
                "shortfall_share": round(share, 4),
                "requests_short": float(len(short)),
                "red_from": t.resource_shortfall_red_from,
            },
        )
    ]


AlertKind = Literal["project-at-risk", "project-recovered"]


def alert_for(
    previous_health: Level,
    previous_reasons: Mapping[str, Level],
    current: HealthAssessment,
) -> AlertKind | None:
    """Whether an assessment is news for the PMO.

    `project-at-risk` when health gets worse, or when, at the same severity, a reason of that
    severity appears that was not there before (a red project that also runs out of budget is
    news; an amber reason on a red project, or changed numbers behind the same reasons, are
    not). `project-recovered` when health returns to green. Nothing otherwise, in particular
    nothing when a red project improves to amber: it is still at risk, and was reported so.
    """
    if is_worse(current.health, previous_health):
        return "project-at-risk"
    if current.health == "green":
        return "project-recovered" if previous_health != "green" else None
    if current.health == previous_health:
        before = {code for code, level in previous_reasons.items() if level == current.health}
        now = {f.code for f in current.findings if f.level == current.health}
        if now - before:
            return "project-at-risk"
    return None
