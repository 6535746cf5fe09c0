"""The portfolio as the PMO reads it: counts by health, totals, at-risk reasons, chart series.

Pure functions over the services' JSON answers (registry projects and ranking, monitoring health),
so the rules are tested without a browser and the pages only lay them out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

HEALTH_LEVELS: tuple[str, ...] = ("green", "amber", "red")
NO_REPORT = "no report yet"
"""The health shown for a project monitoring has not assessed from a status report."""
HEALTH_COLOURS: dict[str, str] = {
    "green": "#1a7f37",
    "amber": "#d4a000",
    "red": "#cf222e",
    NO_REPORT: "#8c959f",
}
_ORDER = {level: position for position, level in enumerate(HEALTH_LEVELS)}


def computed_health(health: Mapping[str, Any] | None) -> str:
    """Monitoring's level for a project, or "no report yet" before its first status report."""
    if not health or health.get("as_of") is None:
        return NO_REPORT
    level = str(health.get("health") or "")
    return level if level in _ORDER else NO_REPORT


@dataclass(frozen=True)
class Reason:
    """One reason a project is not green, in words and numbers."""

    code: str
    severity: str
    message: str
    numbers: dict[str, float | None]


@dataclass(frozen=True)
class ProjectLine:
    """One project of the overview."""

    project_id: str
    name: str
    business_unit: str
    lifecycle: str
    methodology: str | None
    manager: str
    currency: str
    budget: float
    health: str
    reported_health: str | None
    percent_complete: float | None
    actual_cost: float | None
    eac: float | None
    spi_t: float | None
    cpi: float | None
    score: float | None
    rank: int | None
    action: str | None
    stale_since: str | None
    as_of: str | None
    reasons: tuple[Reason, ...]

    @property
    def reported_better(self) -> bool:
        """Reported health better than the computed one, e.g. "reported green, computed red"."""
        if self.reported_health not in _ORDER or self.health not in _ORDER:
            return False
        return _ORDER[self.reported_health] < _ORDER[self.health]


@dataclass(frozen=True)
class Totals:
    """Sums for one currency: budget (BAC), actual cost to date, estimate at completion."""

    currency: str
    projects: int
    budget: float
    actual_cost: float
    eac: float


@dataclass
class Overview:
    """What the portfolio overview shows."""

    projects: list[ProjectLine]
    counts: dict[str, int] = field(default_factory=dict)
    totals: list[Totals] = field(default_factory=list)

    @property
    def at_risk(self) -> list[ProjectLine]:
        """Amber and red projects, red first, then by id."""
        return sorted(
            (p for p in self.projects if p.health in ("amber", "red")),
            key=lambda p: (-_ORDER[p.health], p.project_id),
        )

    @property
    def reported_better(self) -> list[ProjectLine]:
        return [p for p in self.projects if p.reported_better]

    @property
    def stale(self) -> list[ProjectLine]:
        return [p for p in self.projects if p.stale_since]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def project_line(
    project: Mapping[str, Any],
    health: Mapping[str, Any] | None,
    ranked: Mapping[str, Any] | None,
) -> ProjectLine:
    """One project from the registry's view, monitoring's health and the live ranking."""
    metrics: Mapping[str, Any] = (health or {}).get("metrics") or {}
    level = computed_health(health)
    reasons = tuple(
        Reason(
            code=str(reason.get("code")),
            severity=str(reason.get("severity") or level),
            message=str(reason.get("message")),
            numbers=dict(reason.get("numbers") or {}),
        )
        for reason in ((health or {}).get("reasons") or [])
    )
    return ProjectLine(
        project_id=str(project["project_id"]),
        name=str(project["name"]),
        business_unit=str(project.get("business_unit") or ""),
        lifecycle=str(project.get("lifecycle") or ""),
        methodology=project.get("methodology"),
        manager=str(project.get("manager") or ""),
        currency=str(project.get("currency") or ""),
        budget=float(project.get("budget") or 0.0),
        health=level,
        reported_health=(health or {}).get("reported_health") or project.get("reported_health"),
        percent_complete=_number(metrics.get("percent_complete"))
        if metrics
        else _number(project.get("percent_complete")),
        actual_cost=_number(metrics.get("ac")),
        eac=_number(metrics.get("eac")),
        spi_t=_number(metrics.get("spi_t")),
        cpi=_number(metrics.get("cpi")),
        score=_number((ranked or {}).get("score")),
        rank=(ranked or {}).get("rank"),
        action=(ranked or {}).get("action"),
        stale_since=(health or {}).get("stale_since"),
        as_of=(health or {}).get("as_of"),
        reasons=reasons,
    )


def overview(
    projects: Iterable[Mapping[str, Any]],
    health: Mapping[str, Mapping[str, Any] | None],
    ranking: Iterable[Mapping[str, Any]],
) -> Overview:
    """The overview of `projects` (already filtered), with health by project id and the ranking.

    Totals are per currency (never added across currencies); a project without a report counts
    its budget as its EAC and nothing as actual cost.
    """
    ranked = {str(entry["project_id"]): entry for entry in ranking}
    lines = [
        project_line(
            project, health.get(str(project["project_id"])), ranked.get(project["project_id"])
        )
        for project in projects
    ]
    result = Overview(projects=sorted(lines, key=lambda p: p.project_id))
    result.counts = {level: 0 for level in (*HEALTH_LEVELS, NO_REPORT)}
    sums: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for line in lines:
        result.counts[line.health] += 1
        total = sums[line.currency]
        total[0] += 1
        total[1] += line.budget
        total[2] += line.actual_cost or 0.0
        total[3] += line.eac if line.eac is not None else line.budget
    result.totals = [
        Totals(currency, int(n), round(budget, 2), round(ac, 2), round(eac, 2))
        for currency, (n, budget, ac, eac) in sorted(sums.items())
    ]
    return result


def bubble_chart(lines: Sequence[ProjectLine]) -> dict[str, Any]:
    """A Plotly figure: strategic score against percent complete, size = budget, colour = health.

    One trace per health level so the legend names the colours. Projects without a score (no
    strategy yet) sit at score 0.
    """
    largest = max((line.budget for line in lines), default=0.0) or 1.0
    traces = []
    for level in (*HEALTH_LEVELS, NO_REPORT):
        members = [line for line in lines if line.health == level]
        if not members:
            continue
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": level,
                "x": [line.percent_complete or 0.0 for line in members],
                "y": [line.score if line.score is not None else 0.0 for line in members],
                "text": [
                    f"{line.name} ({line.project_id})<br>rank {line.rank or '-'}, "
                    f"budget {line.budget:,.0f} {line.currency}"
                    for line in members
                ],
                "customdata": [line.project_id for line in members],
                "hovertemplate": "%{text}<br>%{x:.0f}% complete, score %{y:.2f}<extra></extra>",
                "marker": {
                    "color": HEALTH_COLOURS[level],
                    # Area proportional to budget: diameter by the square root.
                    "size": [12 + 48 * (line.budget / largest) ** 0.5 for line in members],
                    "line": {"color": "#24292f", "width": 1},
                    "opacity": 0.8,
                },
            }
        )
    return {
        "data": traces,
        "layout": {
            "xaxis": {"title": {"text": "percent complete"}, "range": [-5, 105]},
            "yaxis": {"title": {"text": "strategic score"}, "rangemode": "tozero"},
            "margin": {"l": 60, "r": 20, "t": 20, "b": 50},
            "legend": {"orientation": "h", "y": -0.2},
            "height": 380,
        },
    }


def earned_value_series(
    history: Iterable[Mapping[str, Any]],
    project: Mapping[str, Any],
    health: Mapping[str, Any] | None,
    baselines: Sequence[Baseline] = (),
) -> dict[str, Any]:
    """The S-curve: PV, EV and AC at each applied report, with BAC at the planned finish and EAC
    at the forecast finish, and each re-baseline's date marked. Reports kept for the record only
    (older, after closing) are left out.
    """
    points: dict[str, Mapping[str, Any]] = {}
    for entry in history:
        if entry.get("applied") and entry.get("as_of"):
            points[str(entry["as_of"])] = entry.get("metrics") or {}
    dates = sorted(points)
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": name,
            "x": dates,
            "y": [points[day].get(key) for day in dates],
            "line": {"color": colour, "dash": dash},
        }
        for name, key, colour, dash in (
            ("PV (planned value)", "pv", "#0969da", "solid"),
            ("EV (earned value)", "ev", "#1a7f37", "solid"),
            ("AC (actual cost)", "ac", "#cf222e", "solid"),
        )
    ]
    planned_finish = str(project.get("planned_finish_date") or "")
    start = str(project.get("start_date") or "")
    budget = float(project.get("budget") or 0.0)
    if start and planned_finish:
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "BAC (budget at completion)",
                "x": [start, planned_finish],
                "y": [budget, budget],
                "line": {"color": "#8c959f", "dash": "dot"},
            }
        )
    metrics = (health or {}).get("metrics") or {}
    eac = metrics.get("eac")
    forecast = (health or {}).get("forecast_finish")
    if eac is not None and dates:
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "EAC at the forecast finish",
                "x": [dates[-1], forecast or planned_finish],
                "y": [metrics.get("ac"), eac],
                "line": {"color": "#8250df", "dash": "dash"},
            }
        )
    return {
        "data": traces,
        "layout": {
            "xaxis": {"title": {"text": "date"}, "type": "date"},
            "yaxis": {"title": {"text": str(project.get("currency") or "")}, "rangemode": "tozero"},
            "margin": {"l": 70, "r": 20, "t": 30, "b": 50},
            "legend": {"orientation": "h", "y": -0.25},
            "height": 360,
            **rebaseline_marks(baselines),
        },
    }


def index_series(history: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """SPI(t) and CPI at each applied report, with the 1.0 line."""
    points: dict[str, Mapping[str, Any]] = {}
    for entry in history:
        if entry.get("applied") and entry.get("as_of"):
            points[str(entry["as_of"])] = entry.get("metrics") or {}
    dates = sorted(points)
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": name,
                "x": dates,
                "y": [points[day].get(key) for day in dates],
                "line": {"color": colour},
            }
            for name, key, colour in (("SPI(t)", "spi_t", "#0969da"), ("CPI", "cpi", "#cf222e"))
        ],
        "layout": {
            "xaxis": {"title": {"text": "status date"}, "type": "date"},
            "yaxis": {"title": {"text": "index"}},
            "shapes": [
                {
                    "type": "line",
                    "xref": "paper",
                    "x0": 0,
                    "x1": 1,
                    "y0": 1,
                    "y1": 1,
                    "line": {"color": "#8c959f", "dash": "dot"},
                }
            ],
            "margin": {"l": 60, "r": 20, "t": 20, "b": 50},
            "legend": {"orientation": "h", "y": -0.3},
            "height": 280,
        },
    }


@dataclass(frozen=True)
class HealthChange:
    """A change of a project's health level, with the event (or clock) that caused it."""

    at: str
    as_of: str | None
    before: str | None
    after: str
    trigger: str
    event_id: str | None
    reasons: tuple[str, ...]


def health_changes(history: Iterable[Mapping[str, Any]]) -> list[HealthChange]:
    """Each applied assessment whose level differs from the one before, oldest first."""
    changes: list[HealthChange] = []
    previous: str | None = None
    for entry in history:
        if not entry.get("applied"):
            continue
        level = str(entry.get("health"))
        if level != previous:
            changes.append(
                HealthChange(
                    at=str(entry.get("assessed_at")),
                    as_of=entry.get("as_of"),
                    before=previous,
                    after=level,
                    trigger=str(entry.get("trigger")),
                    event_id=entry.get("event_id"),
                    reasons=tuple(str(r.get("message")) for r in entry.get("reasons") or []),
                )
            )
            previous = level
    return changes


def utilisation_heatmap(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """People by weeks, the cell the allocated share of capacity in percent (over 100 is shown)."""
    weeks = [cell["week"] for cell in rows[0]["weeks"]] if rows else []
    people = [f"{row['name']} ({row['resource_id']})" for row in rows]
    values = [
        [
            None if cell.get("utilisation") is None else round(100 * cell["utilisation"], 1)
            for cell in row["weeks"]
        ]
        for row in rows
    ]
    return {
        "data": [
            {
                "type": "heatmap",
                "x": weeks,
                "y": people,
                "z": values,
                "zmin": 0,
                "zmax": max([100.0, *(v for line in values for v in line if v is not None)]),
                "colorscale": [[0, "#f6f8fa"], [0.5, "#54aeff"], [0.8, "#d4a000"], [1, "#cf222e"]],
                "colorbar": {"title": {"text": "% of capacity"}},
                "hovertemplate": "%{y}<br>%{x}: %{z}% of capacity<extra></extra>",
            }
        ],
        "layout": {
            "margin": {"l": 180, "r": 20, "t": 20, "b": 60},
            "height": max(220, 60 + 28 * len(people)),
        },
    }


@dataclass(frozen=True)
class SkillWeek:
    skill: str
    week: str
    demand_fte: float
    capacity_fte: float

    @property
    def over(self) -> bool:
        return self.demand_fte > self.capacity_fte + 1e-9


def skill_demand(
    requests: Iterable[Mapping[str, Any]], utilisation: Sequence[Mapping[str, Any]]
) -> list[SkillWeek]:
    """Per skill and week, the FTE requested (open and decided, uncapped) against the capacity of
    the people who have that skill (a person with several skills counts toward each)."""
    weeks = {cell["week"] for row in utilisation for cell in row["weeks"]}
    capacity: dict[tuple[str, str], float] = defaultdict(float)
    for row in utilisation:
        for skill in row.get("skills") or []:
            for cell in row["weeks"]:
                capacity[(skill.casefold(), cell["week"])] += float(cell.get("capacity_fte") or 0)
    demand: dict[tuple[str, str], float] = defaultdict(float)
    names: dict[str, str] = {}
    for request in requests:
        skill = str(request.get("skill") or "")
        names.setdefault(skill.casefold(), skill)
        for week in request.get("weeks") or []:
            if week in weeks:
                demand[(skill.casefold(), week)] += float(request.get("fte_per_week") or 0)
    for key in capacity:
        names.setdefault(key[0], key[0])
    return [
        SkillWeek(
            names[skill], week, round(demand[(skill, week)], 3), round(capacity[(skill, week)], 3)
        )
        for skill in sorted(names)
        for week in sorted(weeks)
        if demand[(skill, week)] or capacity[(skill, week)]
    ]


def skill_chart(lines: Sequence[SkillWeek]) -> dict[str, Any]:
    """Grouped bars per skill: demand against capacity by week (demand is never capped)."""
    traces: list[dict[str, Any]] = []
    for skill in sorted({line.skill for line in lines}):
        rows = [line for line in lines if line.skill == skill]
        traces.append(
            {
                "type": "bar",
                "name": f"{skill} demand",
                "x": [row.week for row in rows],
                "y": [row.demand_fte for row in rows],
                "marker": {"color": ["#cf222e" if row.over else "#0969da" for row in rows]},
            }
        )
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"{skill} capacity",
                "x": [row.week for row in rows],
                "y": [row.capacity_fte for row in rows],
                "line": {"shape": "hv", "color": "#24292f"},
            }
        )
    return {
        "data": traces,
        "layout": {
            "barmode": "group",
            "yaxis": {"title": {"text": "FTE"}, "rangemode": "tozero"},
            "margin": {"l": 60, "r": 20, "t": 20, "b": 60},
            "legend": {"orientation": "h", "y": -0.3},
            "height": 320,
        },
    }


@dataclass(frozen=True)
class Baseline:
    """One approved baseline of a project (the registry's `GET /projects/{id}/baselines`)."""

    version: int
    """1: the one the project started with; each re-baseline adds one."""
    approved_at: str
    """When it was approved: in force from then on."""
    approved_by: str
    reason: str
    budget: float
    start_date: str
    planned_finish_date: str
    curve: bool
    """Whether it carries its own planned-value curve (else linear from start to finish)."""
    in_force: bool

    @property
    def approved_on(self) -> str:
        return self.approved_at[:10]

    @property
    def rebaseline(self) -> bool:
        return self.version > 1


def baselines(registered: Iterable[Mapping[str, Any]]) -> list[Baseline]:
    """The registry's baselines of a project, oldest first."""
    return sorted(
        (
            Baseline(
                version=int(entry["version"]),
                approved_at=str(entry["approved_at"]),
                approved_by=str(entry["approved_by"]),
                reason=str(entry["reason"]),
                budget=float(entry["budget"]),
                start_date=str(entry["start_date"]),
                planned_finish_date=str(entry["planned_finish_date"]),
                curve=bool(entry.get("planned_value_curve")),
                in_force=bool(entry.get("in_force")),
            )
            for entry in registered
        ),
        key=lambda baseline: baseline.version,
    )


def rebaseline_marks(found: Sequence[Baseline]) -> dict[str, list[dict[str, Any]]]:
    """Plotly layout shapes and annotations marking each re-baseline's date on a time axis:
    a dotted vertical line, labelled with the version and the new budget."""
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for baseline in found:
        if not baseline.rebaseline:
            continue
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": baseline.approved_on,
                "x1": baseline.approved_on,
                "y0": 0,
                "y1": 1,
                "line": {"color": "#0969da", "dash": "dot", "width": 2},
                "name": f"re-baselined v{baseline.version}",
            }
        )
        annotations.append(
            {
                "x": baseline.approved_on,
                "xref": "x",
                "y": 1,
                "yref": "paper",
                "yanchor": "bottom",
                "showarrow": False,
                "text": f"re-baselined (v{baseline.version}, BAC {baseline.budget:,.0f})",
                "font": {"color": "#0969da", "size": 11},
            }
        )
    return {"shapes": shapes, "annotations": annotations}


def conflicts_involving(
    conflicts: Iterable[Mapping[str, Any]], project_ids: Collection[str]
) -> list[Mapping[str, Any]]:
    """The conflicts (allocation's `GET /conflicts`) with a winner or loser among `project_ids`:
    those of the projects the overview shows under its filters."""
    return [
        conflict
        for conflict in conflicts
        if any(
            decision["project_id"] in project_ids
            for decision in (*conflict["winners"], *conflict["losers"])
        )
    ]
