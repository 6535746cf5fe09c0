"""The program roll-up's rules, on hand-checked figures: sums, ratios of sums, worst health."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import pytest

from services.registry.domain.programs import MemberProject, roll_up

pytestmark = pytest.mark.fast

TODAY = date(2026, 6, 30)


def member(
    project_id: str,
    budget: float,
    *,
    health: str | None = None,
    pv: float | None = None,
    ev: float | None = None,
    ac: float | None = None,
    eac: float | None = None,
    currency: str = "EUR",
    finish: date = date(2026, 12, 31),
    forecast: date | None = None,
    closed: bool = False,
    reasons: tuple[Mapping[str, object], ...] = (),
    shortfall: float = 0.0,
) -> MemberProject:
    metrics = (
        {}
        if health is None
        else {"bac": budget, "pv": pv, "ev": ev, "ac": ac, "eac": eac, "spi": None, "cpi": None}
    )
    return MemberProject(
        project_id=project_id,
        name=project_id,
        lifecycle="completed" if closed else "active",
        closed=closed,
        budget=budget,
        currency=currency,
        planned_finish_date=finish,
        health=health,
        reasons=reasons,
        metrics=metrics,
        forecast_finish=forecast,
        open_shortfall_fte=shortfall,
    )


def test_indices_are_ratios_of_sums_not_averages_of_ratios() -> None:
    # A: SPI 1.0, CPI 1.25; B: SPI 0.6, CPI 0.6667. Averages would say SPI 0.8, CPI 0.9583.
    figures = roll_up(
        [
            member("A", 100_000, health="green", pv=50_000, ev=50_000, ac=40_000, eac=80_000),
            member("B", 200_000, health="red", pv=100_000, ev=60_000, ac=90_000, eac=300_000),
        ],
        ends_on=None,
        today=TODAY,
    )
    assert figures.budget_at_completion == 300_000
    assert (figures.planned_value, figures.earned_value, figures.actual_cost) == (
        150_000,
        110_000,
        130_000,
    )
    assert figures.spi == 0.7333  # 110,000 / 150,000
    assert figures.cpi == 0.8462  # 110,000 / 130,000
    assert figures.estimate_at_completion == 380_000
    assert figures.variance_at_completion == -80_000
    assert figures.currency == "EUR"


def test_worst_health_and_only_its_reasons_worst_first() -> None:
    schedule = {"code": "schedule", "severity": "amber", "message": "SPI(t) 0.92"}
    cost = {"code": "cost", "severity": "red", "message": "CPI 0.7"}
    figures = roll_up(
        [
            member("A", 1, health="amber", pv=1, ev=1, ac=1, eac=1, reasons=(schedule,)),
            member("B", 1, health="red", pv=1, ev=1, ac=1, eac=1, reasons=(schedule, cost)),
            member("C", 1, health="green", pv=1, ev=1, ac=1, eac=1),
        ],
        ends_on=None,
        today=TODAY,
    )
    assert figures.health == "red"
    assert [(r.project_id, r.code, r.severity) for r in figures.reasons] == [
        ("B", "cost", "red"),
        ("B", "schedule", "amber"),
    ]


def test_all_green_has_no_reasons_and_none_assessed_has_no_health() -> None:
    green = roll_up(
        [member("A", 1, health="green", pv=1, ev=1, ac=1, eac=1)], ends_on=None, today=TODAY
    )
    assert (green.health, green.reasons) == ("green", ())
    unassessed = roll_up([member("A", 10), member("B", 5)], ends_on=None, today=TODAY)
    assert unassessed.health is None
    assert unassessed.not_assessed == ("A", "B")


def test_a_project_not_assessed_counts_its_budget_in_bac_and_eac_and_nothing_measured() -> None:
    figures = roll_up(
        [
            member("A", 100_000, health="green", pv=50_000, ev=50_000, ac=40_000, eac=80_000),
            member("N", 40_000),
            member("Z", 10_000, health="green", pv=0, ev=0, ac=0, eac=None),
        ],
        ends_on=None,
        today=TODAY,
    )
    assert figures.budget_at_completion == 150_000
    assert (figures.planned_value, figures.earned_value, figures.actual_cost) == (
        50_000,
        50_000,
        40_000,
    )
    assert figures.estimate_at_completion == 130_000  # 80,000 + N's 40,000 + Z's 10,000
    assert figures.not_assessed == ("N",)
    assert figures.eac_at_budget == ("N", "Z")


def test_no_money_sums_across_currencies() -> None:
    figures = roll_up(
        [
            member("A", 100, health="green", pv=50, ev=50, ac=50, eac=100),
            member("B", 100, health="green", pv=50, ev=50, ac=50, eac=100, currency="USD"),
        ],
        ends_on=None,
        today=TODAY,
    )
    assert figures.currencies == ("EUR", "USD")
    assert figures.currency is None
    assert figures.budget_at_completion is None
    assert figures.spi is None
    assert figures.cpi is None
    assert figures.health == "green"


def test_nothing_planned_or_spent_leaves_the_index_undefined() -> None:
    figures = roll_up(
        [member("A", 100, health="green", pv=0, ev=0, ac=0, eac=None)], ends_on=None, today=TODAY
    )
    assert figures.spi is None
    assert figures.cpi is None


def test_a_temporary_program_names_open_projects_finishing_after_its_end() -> None:
    members = [
        member("ON-TIME", 1, finish=date(2026, 9, 30)),
        member("LATE-PLAN", 1, finish=date(2026, 12, 31)),
        member("LATE-FORECAST", 1, finish=date(2026, 9, 30), forecast=date(2026, 11, 15)),
        member("CLOSED", 1, finish=date(2027, 3, 31), closed=True),
    ]
    figures = roll_up(members, ends_on=date(2026, 10, 31), today=TODAY)
    assert figures.finishing_after_end == ("LATE-FORECAST", "LATE-PLAN")
    assert not figures.ended
    assert roll_up(members, ends_on=date(2026, 6, 29), today=TODAY).ended
    assert roll_up(members, ends_on=None, today=TODAY).finishing_after_end == ()


def test_open_shortfall_is_summed() -> None:
    figures = roll_up(
        [member("A", 1, shortfall=0.5), member("B", 1, shortfall=1.25)], ends_on=None, today=TODAY
    )
    assert figures.open_shortfall_fte == 1.75
