"""Monitoring's published assessments and re-baselines, against the real broker and database."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from tests.harness import Enterprise, eventually
from tests.monitoring.monitoring_support import (
    MonitoringProbe,
    by_project,
    charter,
    report,
)

pytestmark = pytest.mark.e2e


# Linear 100,000 over 2026-01-01..2026-12-31 (PD = 364 days), spent as earned (CPI = 1):
#   2026-07-02 (AT 182), 44.5%: ES = 161.98, SPI(t) = 0.89  -> red
#   2026-07-16 (AT 196), 50.5%: ES = 183.82, SPI(t) = 0.9379 -> amber (cleared 0.92)
#   2026-07-30 (AT 210), 57%:   ES = 207.48, SPI(t) = 0.988  -> green (cleared 0.97)
PATH = (
    (date(2026, 7, 2), 44.5, 44_500, "red", 0.89),
    (date(2026, 7, 16), 50.5, 50_500, "amber", 0.9379),
    (date(2026, 7, 30), 57, 57_000, "green", 0.988),
)


async def test_each_change_of_health_is_published_in_both_directions_and_nothing_else(
    monitoring: MonitoringProbe, enterprise: Enterprise
) -> None:
    await enterprise.send("project-started", charter("PRJ-PATH"))
    for count, (as_of, percent, cost, _, _) in enumerate(PATH, start=1):
        await enterprise.send("status-changed", report("PRJ-PATH", as_of, percent, cost))
        await monitoring.assessed("PRJ-PATH", count)
    # The same report again: the same assessment, so nothing new for the views.
    await enterprise.send("status-changed", report("PRJ-PATH", *PATH[-1][:3]))
    await monitoring.assessed("PRJ-PATH", len(PATH) + 1)
    # Always green: its first assessment is published although it raises no alert.
    await enterprise.send("project-started", charter("PRJ-CALM"))
    await enterprise.send("status-changed", report("PRJ-CALM", date(2026, 7, 2), 50.4, 50_000))
    await monitoring.assessed("PRJ-CALM", 1)

    await monitoring.settled()
    assessments = by_project(await monitoring.published("project-health-assessed", at_least=4))
    path = assessments["PRJ-PATH"]
    assert [(a["health"], a["metrics"]["spi_t"], a["as_of"]) for a in path] == [
        (health, spi_t, as_of.isoformat()) for as_of, _, _, health, spi_t in PATH
    ]
    assert [[r["code"] for r in a["reasons"]] for a in path] == [["schedule"], ["schedule"], []]
    assert path[1]["reasons"][0]["severity"] == "amber"
    times = [datetime.fromisoformat(a["assessed_at"]) for a in path]
    assert times == sorted(set(times))  # strictly increasing: the order every view keeps
    assert path[0]["at_risk_since"] == path[1]["at_risk_since"] is not None  # one episode
    assert path[2]["at_risk_since"] is None
    assert {a["baseline_version"] for a in path} == {1}
    # What was published last is what monitoring shows.
    shown = await monitoring.health("PRJ-PATH")
    assert shown is not None
    assert (shown["health"], shown["metrics"], shown["forecast_finish"]) == (
        path[-1]["health"],
        path[-1]["metrics"],
        path[-1]["forecast_finish"],
    )
    for figure in ("spi", "spi_t", "cpi", "eac", "vac", "tcpi"):
        assert figure in path[-1]["metrics"], figure

    (calm,) = assessments["PRJ-CALM"]
    assert (calm["health"], calm["metrics"]["spi_t"], calm["reasons"]) == ("green", 1.008, [])
    # The alerts stay the alerts: red raised, amber (still at risk) silent, green recovered.
    alerts = by_project(await monitoring.published("project-at-risk", at_least=1))
    assert [a["severity"] for a in alerts["PRJ-PATH"]] == ["red"]
    assert "PRJ-CALM" not in alerts
    recovered = await monitoring.published("project-recovered", at_least=1)
    assert [r["project_id"] for r in recovered] == ["PRJ-PATH"]


def rebaselined(project_id: str, version: int, budget: float, **extra: Any) -> dict[str, Any]:
    """A registry project-rebaselined: a new budget over the same year."""
    return {
        "project_id": project_id,
        "baseline_version": version,
        "budget": budget,
        "start_date": "2026-01-01",
        "planned_finish_date": "2026-12-31",
        "approved_by": "pmo-admin@example.com",
        "reason": "scope tripled by the steering committee",
        "approved_at": "2026-07-03T09:00:00Z",
        "cause": "pmo-admin@example.com",
        **extra,
    }


async def test_a_rebaselined_project_is_measured_against_the_new_baseline_from_then_on(
    monitoring: MonitoringProbe, enterprise: Enterprise
) -> None:
    # 52% of 100,000 earned for 50,000 spent: CPI = 52,000/50,000 = 1.04. Re-baselined to
    # 300,000: EV = 156,000, CPI = 3.12; EAC = 300,000/3.12 = 96,153.85.
    # A re-baseline that overtakes the project's start waits for it (PRJ-EARLY).
    await enterprise.send("project-rebaselined", rebaselined("PRJ-EARLY", 2, 50_000))
    await enterprise.send("project-started", charter("PRJ-REBASE"))
    await enterprise.send("status-changed", report("PRJ-REBASE", date(2026, 7, 2), 52, 50_000))
    (first,) = await monitoring.assessed("PRJ-REBASE", 1)
    assert first["metrics"]["cpi"] == 1.04

    await enterprise.send("project-rebaselined", rebaselined("PRJ-REBASE", 2, 300_000))
    second = (await monitoring.assessed("PRJ-REBASE", 2))[1]
    assert (second["trigger"], second["metrics"]["cpi"], second["metrics"]["bac"]) == (
        "project-rebaselined",
        3.12,
        300_000,
    )
    assert second["metrics"]["eac"] == 96_153.85
    # A later report is measured against the new baseline too.
    await enterprise.send("status-changed", report("PRJ-REBASE", date(2026, 7, 16), 55, 60_000))
    third = (await monitoring.assessed("PRJ-REBASE", 3))[2]
    assert third["metrics"]["cpi"] == 2.75  # 165,000 / 60,000
    # An older re-baseline arriving late (version 2 again, another budget) changes nothing.
    await enterprise.send("project-rebaselined", rebaselined("PRJ-REBASE", 2, 10_000))
    await enterprise.send("project-started", charter("PRJ-EARLY"))
    await eventually(
        lambda: _baseline_version(monitoring, "PRJ-EARLY", 2), timeout=30, what="PRJ-EARLY v2"
    )
    health = await monitoring.health("PRJ-REBASE")
    assert health is not None
    assert (health["baseline_version"], health["budget_at_completion"]) == (2, 300_000)
    assert datetime.fromisoformat(health["rebaselined_at"]) == datetime(2026, 7, 3, 9, tzinfo=UTC)
    assert health["metrics"]["cpi"] == 2.75
    baselines = (await monitoring.api.get("/projects/PRJ-REBASE/baselines")).json()
    assert [(b["version"], b["budget_at_completion"], b["approved_by"]) for b in baselines] == [
        (1, 100_000, None),
        (2, 300_000, "pmo-admin@example.com"),
    ]
    assert baselines[1]["reason"] == "scope tripled by the steering committee"

    await monitoring.settled()
    published = by_project(await monitoring.published("project-health-assessed", at_least=3))
    assert [(a["baseline_version"], a["metrics"]["cpi"]) for a in published["PRJ-REBASE"]] == [
        (1, 1.04),
        (2, 3.12),
        (2, 2.75),
    ]


async def _baseline_version(monitoring: MonitoringProbe, project_id: str, version: int) -> bool:
    health = await monitoring.health(project_id)
    return health is not None and health["baseline_version"] == version


async def test_a_zero_budget_with_money_spent_is_red_for_cost(
    monitoring: MonitoringProbe, enterprise: Enterprise
) -> None:
    # Issue 12, item 4, as reported: budget 0, half-way, 50% done, 5,000 spent.
    await enterprise.send("project-started", charter("PRJ-FREE", budget=0))
    await enterprise.send("status-changed", report("PRJ-FREE", date(2026, 7, 2), 50, 5_000))
    (assessment,) = await monitoring.assessed("PRJ-FREE", 1)
    assert assessment["health"] == "red"
    assert [(r["code"], r["severity"]) for r in assessment["reasons"]] == [("cost", "red")]
    metrics = assessment["metrics"]
    assert (metrics["tcpi"], metrics["cpi"], metrics["spi_t"], metrics["ac"]) == (
        None,
        None,
        None,
        5_000,
    )
    alerts = await eventually(
        lambda: _nonempty(monitoring.published("project-at-risk")), what="the cost alert"
    )
    assert [(a["project_id"], a["severity"]) for a in alerts] == [("PRJ-FREE", "red")]


async def _nonempty(found: Any) -> list[dict[str, Any]] | None:
    items: list[dict[str, Any]] = await found
    return items or None
