"""Health rules: bands, hysteresis, each reason with its numbers, and when news is published."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.monitoring.domain.earned_value import Baseline, ProgressReport
from services.monitoring.domain.health import (
    HealthAssessment,
    HealthThresholds,
    Level,
    MilestoneStatus,
    ProjectFacts,
    ResourcePosition,
    alert_for,
    assess,
    ceiling_level_with_hysteresis,
    level_with_hysteresis,
)

pytestmark = pytest.mark.fast

RULES = HealthThresholds(
    spi_green_from=0.95,
    spi_amber_from=0.90,
    cpi_green_from=0.95,
    cpi_amber_from=0.90,
    tcpi_red_above=1.10,
    hysteresis_margin=0.02,
    stale_after_days=14,
    milestone_red_after_days=30,
    resource_shortfall_red_from=0.5,
)
# PD = 1,000 days and BAC = 1,000,000 make SPI(t) = percent * 10 / AT: easy to aim at.
START = date(2024, 1, 1)
BASELINE = Baseline(1_000_000, START, START + timedelta(days=1000))


def report_with(spi_t: float, *, at: int = 500, cpi: float = 1.0) -> ProgressReport:
    percent = spi_t * at / 10
    earned = 1_000_000 * percent / 100
    return ProgressReport(START + timedelta(days=at), percent, earned / cpi)


def band(value: float, previous: Level) -> Level:
    return level_with_hysteresis(
        value, green_from=0.95, amber_from=0.90, previous=previous, margin=0.02
    )


@pytest.mark.parametrize(
    ("value", "previous", "expected"),
    [
        (0.96, "green", "green"),
        (0.95, "green", "green"),  # at the threshold is green
        (0.949, "green", "amber"),  # worsening is immediate
        (0.899, "green", "red"),
        (0.899, "amber", "red"),
        (0.91, "red", "red"),  # above 0.90 but not by the 0.02 margin: held red
        (0.92, "red", "amber"),  # cleared 0.90 + 0.02
        (0.96, "amber", "amber"),  # above 0.95 but not by the margin: held amber
        (0.97, "amber", "green"),
        (0.98, "red", "green"),  # clears both at once
        (0.93, "amber", "amber"),
    ],
)
def test_band_with_hysteresis(value: float, previous: Level, expected: Level) -> None:
    assert band(value, previous) == expected


def test_tcpi_ceiling_with_hysteresis() -> None:
    def tcpi(value: float, previous: Level) -> Level:
        return ceiling_level_with_hysteresis(value, red_above=1.10, previous=previous, margin=0.02)

    assert tcpi(1.10, "green") == "green"
    assert tcpi(1.11, "green") == "red"
    assert tcpi(1.09, "red") == "red"  # not 0.02 below 1.10 yet
    assert tcpi(1.08, "red") == "green"


@given(st.lists(st.floats(min_value=0.885, max_value=0.915), min_size=1, max_size=40))
def test_a_value_wobbling_across_the_red_line_after_falling_red_never_leaves_red(
    wobble: list[float],
) -> None:
    level: Level = band(0.85, "green")
    for value in wobble:
        level = band(value, level)
        assert level == "red"


def test_schedule_health_uses_spi_t_and_says_why_with_the_numbers() -> None:
    assessment = assess(ProjectFacts(BASELINE, report_with(0.6)), RULES)
    assert assessment.health == "red"
    (finding,) = assessment.findings
    assert finding.code == "schedule"
    assert finding.level == "red"
    assert finding.message.startswith("SPI(t) 0.60 is below 0.9: the work done was planned")
    assert finding.numbers["spi_t"] == 0.6
    assert finding.numbers["amber_from"] == 0.9
    assert assessment.index_levels["schedule"] == "red"


def test_late_project_near_completion_is_red_by_spi_t_though_spi_is_green() -> None:
    # 1,100 days in, 98% done: PV = BAC, SPI = 0.98; ES = 980, SPI(t) = 980/1100 = 0.891.
    late = ProgressReport(START + timedelta(days=1100), 98, 980_000)
    assessment = assess(ProjectFacts(BASELINE, late), RULES)
    assert assessment.metrics["spi"] == 0.98
    assert assessment.metrics["spi_t"] == 0.8909
    assert assessment.codes == ["schedule"]
    assert assessment.health == "red"


def test_classic_spi_stands_in_while_spi_t_is_undefined() -> None:
    # A front-loaded plan has planned value on its first day, when no time has elapsed (AT = 0).
    front_loaded = Baseline(
        100,
        START,
        START + timedelta(days=10),
        curve=((START, 50), (START + timedelta(days=10), 100)),
    )
    assessment = assess(ProjectFacts(front_loaded, ProgressReport(START, 20, 20)), RULES)
    assert assessment.metrics["spi_t"] is None
    assert assessment.metrics["spi"] == 0.4
    assert assessment.findings[0].message.startswith("SPI 0.40 is below 0.9")


def test_cost_reason_from_cpi_and_from_tcpi() -> None:
    amber = assess(ProjectFacts(BASELINE, report_with(1.0, cpi=0.92)), RULES)
    assert [(f.code, f.level) for f in amber.findings] == [("cost", "amber")]
    assert amber.findings[0].message.startswith("CPI 0.92 is below 0.95")

    # CPI fine, but little budget left: EV = 500,000 for AC = 450,000 (CPI 1.11) is green,
    # then EV = 300,000 for AC = 400,000: TCPI = 700,000/600,000 = 1.1667 > 1.10 -> red.
    squeezed = ProgressReport(START + timedelta(days=300), 30, 400_000)
    assessment = assess(ProjectFacts(BASELINE, squeezed), RULES)
    assert assessment.health == "red"
    (finding,) = assessment.findings
    assert finding.code == "cost"
    assert finding.numbers["tcpi"] == 1.1667
    assert "TCPI 1.17 is above 1.1" in finding.message


def test_exhausted_budget_is_red_cost() -> None:
    spent = ProgressReport(START + timedelta(days=800), 80, 1_100_000)
    (finding,) = assess(ProjectFacts(BASELINE, spent), RULES).findings
    assert (finding.code, finding.level) == ("cost", "red")
    assert finding.numbers["tcpi"] is None
    assert "the budget of 1,000,000 is spent (1,100,000) with 200,000 of work remaining" in (
        finding.message
    )


def test_overdue_milestones_amber_then_red_after_the_grace() -> None:
    report = report_with(1.0)  # as of day 500: 2025-05-15
    as_of = report.as_of
    milestones = [
        MilestoneStatus("Design signed off", as_of - timedelta(days=10), done=False),
        MilestoneStatus("Kick-off", as_of - timedelta(days=100), done=True),
        MilestoneStatus("Go-live", as_of + timedelta(days=10), done=False),
    ]
    (finding,) = assess(ProjectFacts(BASELINE, report, milestones=milestones), RULES).findings
    assert (finding.code, finding.level) == ("milestone_overdue", "amber")
    assert finding.numbers == {"overdue": 1, "most_days_overdue": 10, "red_after_days": 30}
    assert "Design signed off (10 days)" in finding.message

    long_overdue = [MilestoneStatus("Design signed off", as_of - timedelta(days=31), done=False)]
    (finding,) = assess(ProjectFacts(BASELINE, report, milestones=long_overdue), RULES).findings
    assert finding.level == "red"


def test_stale_reported_and_resource_reasons() -> None:
    stale = assess(ProjectFacts(BASELINE, report_with(1.0), days_without_report=20), RULES)
    assert [(f.code, f.level) for f in stale.findings] == [("stale_status", "amber")]
    assert stale.findings[0].numbers == {"days_without_report": 20, "stale_after_days": 14}

    red = assess(ProjectFacts(BASELINE, report_with(1.0), reported_health="red"), RULES)
    assert [(f.code, f.level) for f in red.findings] == [("reported_red", "red")]
    amber = assess(ProjectFacts(BASELINE, report_with(1.0), reported_health="amber"), RULES)
    assert [(f.code, f.level) for f in amber.findings] == [("reported_amber", "amber")]
    assert assess(ProjectFacts(BASELINE, reported_health="green"), RULES).findings == ()

    positions = [
        ResourcePosition("REQ-1", "architect", fte_requested=1.0, fte_granted=0.5),
        ResourcePosition("REQ-2", "tester", fte_requested=2.0, fte_granted=2.0),
    ]
    (short,) = assess(ProjectFacts(BASELINE, resources=positions), RULES).findings
    # 0.5 of 3 FTE missing: 16.7% < 50% -> amber
    assert (short.code, short.level) == ("resource_shortfall", "amber")
    assert short.numbers["fte_short"] == 0.5
    assert short.numbers["shortfall_share"] == 0.1667
    assert "REQ-1 (architect): 0.5 of 1 FTE" in short.message
    denied = [ResourcePosition("REQ-3", None, fte_requested=1.0, fte_granted=0.0)]
    assert assess(ProjectFacts(BASELINE, resources=denied), RULES).health == "red"
    # Figures in words to two decimals; the exact ones stay in the numbers.
    thirds = [ResourcePosition("REQ-4", "architect", fte_requested=0.8, fte_granted=0.228571)]
    (third,) = assess(ProjectFacts(BASELINE, resources=thirds), RULES).findings
    assert third.message == (
        "0.57 of the 0.8 FTE requested are not granted (71%): REQ-4 (architect): 0.23 of 0.8 FTE."
    )
    assert third.numbers["fte_short"] == 0.5714
    granted = [ResourcePosition("REQ-3", None, fte_requested=1.0, fte_granted=1.0)]
    assert assess(ProjectFacts(BASELINE, resources=granted), RULES).health == "green"


def test_overall_health_is_the_worst_dimension() -> None:
    facts = ProjectFacts(
        BASELINE, report_with(0.93, cpi=0.85), reported_health="amber", days_without_report=30
    )
    assessment = assess(facts, RULES)
    assert assessment.health == "red"
    assert {(f.code, f.level) for f in assessment.findings} == {
        ("schedule", "amber"),
        ("cost", "red"),
        ("stale_status", "amber"),
        ("reported_amber", "amber"),
    }


def _assessed(health: Level, *reasons: tuple[str, Level]) -> HealthAssessment:
    from services.monitoring.domain.health import Finding

    return HealthAssessment(
        health=health,
        findings=tuple(
            Finding(code, level, code, {}) for code, level in reasons if level != "green"
        ),
        index_levels={},
        metrics={},
    )


@pytest.mark.parametrize(
    ("previous", "before", "now", "expected"),
    [
        ("green", {}, _assessed("amber", ("schedule", "amber")), "project-at-risk"),
        ("green", {}, _assessed("red", ("cost", "red")), "project-at-risk"),
        ("amber", {"schedule": "amber"}, _assessed("red", ("schedule", "red")), "project-at-risk"),
        # same severity, a new reason of that severity: news
        (
            "red",
            {"schedule": "red"},
            _assessed("red", ("schedule", "red"), ("cost", "red")),
            "project-at-risk",
        ),
        # same severity, a new reason below it: not news
        (
            "red",
            {"schedule": "red"},
            _assessed("red", ("schedule", "red"), ("stale_status", "amber")),
            None,
        ),
        # same reasons, other numbers: not news
        ("red", {"schedule": "red"}, _assessed("red", ("schedule", "red")), None),
        # better but still at risk: not news (it was reported)
        ("red", {"schedule": "red"}, _assessed("amber", ("schedule", "amber")), None),
        # a reason getting worse into the current severity is news
        (
            "red",
            {"schedule": "red", "cost": "amber"},
            _assessed("red", ("schedule", "red"), ("cost", "red")),
            "project-at-risk",
        ),
        ("amber", {"schedule": "amber"}, _assessed("green"), "project-recovered"),
        ("red", {"cost": "red"}, _assessed("green"), "project-recovered"),
        ("green", {}, _assessed("green"), None),
    ],
)
def test_news_only_when_health_worsens_or_recovers(
    previous: Level,
    before: dict[str, Level],
    now: HealthAssessment,
    expected: str | None,
) -> None:
    assert alert_for(previous, before, now) == expected


def test_a_wobbling_schedule_raises_one_alert_and_one_recovery() -> None:
    """The whole chain, as the service runs it: each assessment remembers the last one."""
    series = [0.89, 0.905, 0.895, 0.91, 0.93, 0.91, 0.94, 0.96, 0.975, 0.96, 0.951]
    health: Level = "green"
    reasons: dict[str, Level] = {}
    levels: dict[str, Level] = {}
    news: list[tuple[float, str]] = []
    healths: list[Level] = []
    for day, spi_t in enumerate(series):
        facts = ProjectFacts(BASELINE, report_with(spi_t, at=500 + day))
        assessment = assess(facts, RULES, levels)
        if alert := alert_for(health, reasons, assessment):
            news.append((spi_t, alert))
        health, levels = assessment.health, assessment.index_levels
        reasons = {f.code: f.level for f in assessment.findings}
        healths.append(health)
    assert healths == [
        "red",
        "red",
        "red",
        "red",
        "amber",
        "amber",
        "amber",
        "amber",
        "green",
        "green",
        "green",
    ]
    assert news == [(0.89, "project-at-risk"), (0.975, "project-recovered")]


def test_thresholds_are_validated() -> None:
    with pytest.raises(ValidationError, match=r"spi_amber_from \(0.97\) must not be above"):
        RULES.model_validate({**RULES.model_dump(), "spi_amber_from": 0.97})
    with pytest.raises(ValidationError, match="hysteresis_margin"):
        RULES.model_validate({**RULES.model_dump(), "hysteresis_margin": -0.1})
    with pytest.raises(ValidationError, match="Extra inputs"):
        RULES.model_validate({**RULES.model_dump(), "spi_red": 0.8})


def test_an_index_undefined_for_a_while_keeps_its_hysteresis_memory() -> None:
    red_cost = assess(ProjectFacts(BASELINE, report_with(1.0, cpi=0.85)), RULES)
    assert red_cost.index_levels["cpi"] == "red"
    # Cost corrected to nothing booked: CPI undefined, no cost reason, but the memory stays ...
    corrected = ProgressReport(START + timedelta(days=501), 50.1, 0)
    undefined = assess(ProjectFacts(BASELINE, corrected), RULES, red_cost.index_levels)
    assert undefined.metrics["cpi"] is None
    assert undefined.health == "green"
    assert undefined.index_levels["cpi"] == "red"
    # ... so CPI 0.91 afterwards is still red (not 0.02 clear of 0.90).
    again = assess(
        ProjectFacts(BASELINE, report_with(1.0, at=502, cpi=0.91)), RULES, undefined.index_levels
    )
    assert [(f.code, f.level) for f in again.findings] == [("cost", "red")]


def test_money_spent_without_a_budget_is_a_red_cost_reason_not_green() -> None:
    # Issue 12, item 4: budget 0, half-way, 50% done, 5,000 spent was green with TCPI 0.0.
    free = Baseline(0, START, START + timedelta(days=1000))
    assessment = assess(
        ProjectFacts(free, ProgressReport(START + timedelta(days=500), 50, 5_000)), RULES
    )
    assert assessment.health == "red"
    (cost,) = assessment.findings
    assert (cost.code, cost.level) == ("cost", "red")
    assert cost.message == (
        "There is no budget (0) but 5,000 has been spent with 50% of the work done."
    )
    assert (cost.numbers["bac"], cost.numbers["ac"], cost.numbers["tcpi"]) == (0, 5_000, None)
    assert assessment.metrics["tcpi"] is None
    # Nothing spent on a zero budget: nothing to say about cost, and no index to judge by.
    idle = assess(ProjectFacts(free, ProgressReport(START + timedelta(days=500), 50, 0)), RULES)
    assert (idle.health, idle.findings) == ("green", ())
