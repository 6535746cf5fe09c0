"""The PMO's weekly status report: one line per running project, ranked, with its health."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, get_args

from shared.events.contracts import CLOSED_STAGES, Stage

NO_REPORT_YET = "no report yet"
"""The health shown for a project monitoring has not assessed: never "green" by default."""

DIGEST_LIFECYCLES: frozenset[str] = frozenset(get_args(Stage)) - {"proposed"} - CLOSED_STAGES
"""Projects in the portfolio's running part: approved, under way or paused. Proposed ones are
not yet the PMO's to watch; completed and terminated ones are history."""


@dataclass(frozen=True)
class RequestOutcome:
    """What allocation last decided for one resource request."""

    fte_requested: float
    fte_granted: float


def shortfall(requests: Iterable[RequestOutcome]) -> float:
    """FTE asked for and not granted, over a project's requests (a surplus never offsets)."""
    return round(sum(max(r.fte_requested - r.fte_granted, 0.0) for r in requests), 3)


@dataclass(frozen=True)
class PortfolioLine:
    project_id: str
    name: str
    business_unit: str
    lifecycle: str
    health: str
    spi: float | None
    cpi: float | None
    rank: int | None
    shortfall_fte: float
    spi_t: float | None = None
    """SPI(t), the index monitoring's schedule rule reads (SPI drifts back to 1 as a late
    project completes)."""
    health_as_of: str | None = None
    """The as-of date (ISO) of the status report behind the health and figures."""

    def as_context(self) -> dict[str, Any]:
        return asdict(self)


def portfolio_lines(lines: Iterable[PortfolioLine]) -> list[PortfolioLine]:
    """Running projects in portfolio order: ranked ones by rank, then unranked ones by name."""
    running = [line for line in lines if line.lifecycle in DIGEST_LIFECYCLES]
    return sorted(
        running,
        key=lambda line: (line.rank is None, line.rank or 0, line.name.casefold(), line.project_id),
    )


def portfolio_totals(lines: Iterable[PortfolioLine]) -> dict[str, int | float]:
    """The counts a PMO reads first: how many projects, how many amber and red, FTE short."""
    listed = list(lines)
    return {
        "projects": len(listed),
        "red": sum(line.health == "red" for line in listed),
        "amber": sum(line.health == "amber" for line in listed),
        "green": sum(line.health == "green" for line in listed),
        "no_report_yet": sum(line.health == NO_REPORT_YET for line in listed),
        "shortfall_fte": round(sum(line.shortfall_fte for line in listed), 3),
    }


def narrowed(
    lines: Iterable[PortfolioLine],
    *,
    project_id: str | None,
    business_unit: str | None,
) -> list[PortfolioLine]:
    """The lines a subscription with these filters sees in its digest."""
    return [
        line
        for line in lines
        if (project_id is None or line.project_id == project_id)
        and (business_unit is None or line.business_unit == business_unit)
    ]
