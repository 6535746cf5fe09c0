"""Earned-value figures of a project at a status date (PMI's definitions)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Baseline:
    budget_at_completion: float
    start: date
    planned_finish: date

    def planned_value(self, as_of: date) -> float:
        """PV on a date, on a linear plan from start to planned finish."""
        duration = (self.planned_finish - self.start).days
        if duration <= 0:
            return self.budget_at_completion if as_of >= self.start else 0.0
        elapsed = min(max((as_of - self.start).days, 0), duration)
        return self.budget_at_completion * elapsed / duration


@dataclass(frozen=True)
class EarnedValue:
    planned_value: float
    earned_value: float
    actual_cost: float

    @property
    def spi(self) -> float | None:
        """Schedule performance index EV/PV; undefined before anything was planned."""
        return self.earned_value / self.planned_value if self.planned_value > 0 else None

    @property
    def cpi(self) -> float | None:
        """Cost performance index EV/AC; undefined before anything was spent."""
        return self.earned_value / self.actual_cost if self.actual_cost > 0 else None

    def as_metrics(self) -> dict[str, float | None]:
        return {
            "pv": round(self.planned_value, 2),
            "ev": round(self.earned_value, 2),
            "ac": round(self.actual_cost, 2),
            "spi": None if self.spi is None else round(self.spi, 4),
            "cpi": None if self.cpi is None else round(self.cpi, 4),
        }


def earned_value(
    baseline: Baseline, as_of: date, percent_complete: float, actual_cost: float
) -> EarnedValue:
    return EarnedValue(
        planned_value=baseline.planned_value(as_of),
        earned_value=baseline.budget_at_completion * percent_complete / 100.0,
        actual_cost=actual_cost,
    )


AT_RISK_BELOW = 0.9
"""An index under this is a project at risk (public practice's red line)."""


def risk_reasons(figures: EarnedValue) -> list[tuple[str, str, dict[str, float | None]]]:
    """Why a project is at risk, as (code, message, numbers); empty when it is not."""
    reasons: list[tuple[str, str, dict[str, float | None]]] = []
    if figures.spi is not None and figures.spi < AT_RISK_BELOW:
        reasons.append(
            (
                "schedule",
                f"SPI {figures.spi:.2f} is below {AT_RISK_BELOW}: the project has earned "
                f"{figures.earned_value:,.0f} of the {figures.planned_value:,.0f} planned by now.",
                {"spi": round(figures.spi, 4), "threshold": AT_RISK_BELOW},
            )
        )
    if figures.cpi is not None and figures.cpi < AT_RISK_BELOW:
        reasons.append(
            (
                "cost",
                f"CPI {figures.cpi:.2f} is below {AT_RISK_BELOW}: {figures.actual_cost:,.0f} spent "
                f"for {figures.earned_value:,.0f} of value earned.",
                {"cpi": round(figures.cpi, 4), "threshold": AT_RISK_BELOW},
            )
        )
    return reasons
