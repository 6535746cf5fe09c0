"""Monitoring against the real broker and database: figures, reasons, hysteresis, odd reports."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from shared.settings import Settings
from tests.harness import Enterprise, eventually
from tests.monitoring.monitoring_support import (
    MonitoringProbe,
    by_project,
    charter,
    report,
)

pytestmark = pytest.mark.e2e


async def test_figures_of_each_report_match_the_hand_computation(
    monitoring: MonitoringProbe, enterprise: Enterprise
) -> None:
    # PRJ-CURVE, a back-loaded plan of 120,000 from 2026-01-01 to 2026-12-31 (PD = 364 days):
    #   day 60 (2026-03-02): 10,000 | day 120 (2026-05-01): 40,000 | day 210 (2026-07-30): 100,000
    #   | day 364: 120,000; anchored at 0 on the start.
    # Report as of 2026-06-15 (day 165): 25% done (EV = 30,000) for AC = 33,000.
    #   PV = 40,000 + 60,000 * (165 - 120)/(210 - 120) = 70,000
    #   ES = 60 + 60 * (30,000 - 10,000)/(40,000 - 10,000) = 100 days; AT = 165
    #   SPI(t) = 100/165 = 0.6061 (red); SV(t) = -65 days; SPI = 30/70 = 0.4286
    #   CPI = 30,000/33,000 = 0.9091 (amber); EAC = 120,000/0.90909 = 132,000; ETC = 99,000
    #   VAC = -12,000; TCPI = 90,000/87,000 = 1.0345 (green)
    #   IEAC(t) = 364 * 165/100 = 600.6 -> 601 days: forecast finish 2027-08-25
    curve = [
        (date(2026, 3, 2), 10_000),
        (date(2026, 5, 1), 40_000),
        (date(2026, 7, 30), 100_000),
        (date(2026, 12, 31), 120_000),
    ]
    await enterprise.send("project-started", charter("PRJ-CURVE", budget=120_000, curve=curve))
    await enterprise.send("status-changed", report("PRJ-CURVE", date(2026, 6, 15), 25, 33_000))
    # PRJ-LATE: linear 100,000; two months after the planned finish, 95% done for 95,000.
    #   SPI = 95,000/100,000 = 0.95 (green by the classic index, which drifts back to 1)
    #   AT = 424 days (2027-03-01); ES = 0.95 * 364 = 345.8; SPI(t) = 345.8/424 = 0.8156 (red)
    await enterprise.send("project-started", charter("PRJ-LATE"))
    await enterprise.send("status-changed", report("PRJ-LATE", date(2027, 3, 1), 95, 95_000))
    # PRJ-DONE: 100% a month late for 100,000: ES = 364, AT = 394; SPI(t) = 0.9239 (amber);
    #   IEAC(t) = 364/0.9239 = 394 days: finished on the report date; ETC = 0; TCPI = 0.
    await enterprise.send("project-started", charter("PRJ-DONE"))
    await enterprise.send("status-changed", report("PRJ-DONE", date(2027, 1, 30), 100, 100_000))
    # PRJ-EARLY: a report before the start, nothing done or spent: every index undefined.
    await enterprise.send("project-started", charter("PRJ-EARLY"))
    await enterprise.send("status-changed", report("PRJ-EARLY", date(2025, 12, 20), 0, 0))
    # PRJ-NOCOST: 10% earned on 2026-02-01, nothing booked: CPI and EAC undefined;
    #   TCPI = 90,000/100,000 = 0.9. AT = 31, ES = 36.4: SPI(t) = 1.1742 (green).
    await enterprise.send("project-started", charter("PRJ-NOCOST"))
    await enterprise.send("status-changed", report("PRJ-NOCOST", date(2026, 2, 1), 10, 0))

    for project_id in ("PRJ-CURVE", "PRJ-LATE", "PRJ-DONE", "PRJ-EARLY", "PRJ-NOCOST"):
        await monitoring.assessed(project_id, 1)

    curved = await monitoring.health("PRJ-CURVE")
    assert curved is not None
    assert {
        key: curved["metrics"][key]
        for key in (
            "pv", "ev", "ac", "sv", "cv", "spi", "cpi", "eac", "etc", "vac", "tcpi",
            "es_days", "at_days", "spi_t", "sv_t_days",
        )
    } == {
        "pv": 70_000, "ev": 30_000, "ac": 33_000, "sv": -40_000, "cv": -3_000, "spi": 0.4286,
        "cpi": 0.9091, "eac": 132_000, "etc": 99_000, "vac": -12_000, "tcpi": 1.0345,
        "es_days": 100, "at_days": 165, "spi_t": 0.6061, "sv_t_days": -65,
    }  # fmt: skip
    assert curved["forecast_finish"] == "2027-08-25"
    assert curved["health"] == "red"
    assert [(r["code"], r["severity"]) for r in curved["reasons"]] == [
        ("schedule", "red"),
        ("cost", "amber"),
    ]

    late = await monitoring.health("PRJ-LATE")
    assert late is not None
    assert (late["metrics"]["spi"], late["metrics"]["spi_t"]) == (0.95, 0.8156)
    assert (late["health"], [r["code"] for r in late["reasons"]]) == ("red", ["schedule"])

    done = await monitoring.health("PRJ-DONE")
    assert done is not None
    assert done["metrics"]["spi_t"] == 0.9239
    assert (done["metrics"]["etc"], done["metrics"]["tcpi"]) == (0, 0)
    assert done["forecast_finish"] == "2027-01-30"
    assert done["health"] == "amber"

    early = await monitoring.health("PRJ-EARLY")
    assert early is not None
    assert early["health"] == "green"
    assert early["metrics"]["at_days"] == 0
    for undefined in ("spi", "cpi", "spi_t", "eac", "etc", "vac"):
        assert early["metrics"][undefined] is None

    no_cost = await monitoring.health("PRJ-NOCOST")
    assert no_cost is not None
    assert (no_cost["metrics"]["cpi"], no_cost["metrics"]["eac"]) == (None, None)
    assert (no_cost["metrics"]["tcpi"], no_cost["metrics"]["spi_t"]) == (0.9, 1.1742)
    assert no_cost["health"] == "green"

    await monitoring.settled()
    alerts = by_project(await monitoring.published("project-at-risk", at_least=3))
    assert sorted(alerts) == ["PRJ-CURVE", "PRJ-DONE", "PRJ-LATE"]
    (curve_alert,) = alerts["PRJ-CURVE"]
    assert curve_alert["severity"] == "red"
    assert curve_alert["metrics"]["spi_t"] == 0.6061
    schedule, cost = curve_alert["reasons"]
    assert schedule["code"] == "schedule"
    assert schedule["numbers"]["es_days"] == 100
    assert schedule["message"].startswith("SPI(t) 0.61 is below 0.9")
    assert (cost["code"], cost["severity"], cost["numbers"]["cpi"]) == ("cost", "amber", 0.9091)
    assert alerts["PRJ-DONE"][0]["severity"] == "amber"


# All reports as of 2026-07-02 on a linear 100,000 plan from 2026-01-01 to 2026-12-31:
# PV = 50,000. On plan: 50% done for 50,000 (SPI(t) = CPI = TCPI = 1).
AS_OF = date(2026, 7, 2)


async def test_each_risk_reason_raises_exactly_one_alert(
    monitoring: MonitoringProbe, enterprise: Enterprise
) -> None:
    projects = [
        "R-SCHEDULE", "R-COST", "R-MILESTONE", "R-REPORTED", "R-RESOURCE", "R-LOSER", "R-BOTH",
    ]  # fmt: skip
    for project_id in [*projects, "R-WINNER"]:
        await enterprise.send("project-started", charter(project_id))
    late_milestone = [{"name": "Design sign-off", "due": "2026-06-20", "done": False}]
    first = {
        "R-SCHEDULE": report("R-SCHEDULE", AS_OF, 30, 30_000),  # SPI(t) 0.6: red
        "R-COST": report("R-COST", AS_OF, 50, 62_500),  # CPI 0.8, TCPI 1.33: red
        "R-MILESTONE": report("R-MILESTONE", AS_OF, 50, 50_000, milestones=late_milestone),
        "R-REPORTED": report("R-REPORTED", AS_OF, 50, 50_000, reported_health="red"),
        "R-RESOURCE": report("R-RESOURCE", AS_OF, 50, 50_000),
        "R-LOSER": report("R-LOSER", AS_OF, 50, 50_000),
        "R-WINNER": report("R-WINNER", AS_OF, 50, 50_000),
        "R-BOTH": report("R-BOTH", AS_OF, 30, 30_000),  # red: schedule
    }
    for data in first.values():
        await enterprise.send("status-changed", data)
    # The same problems reported again a day later, with slightly different numbers: no news.
    next_day = AS_OF + timedelta(days=1)
    await enterprise.send("status-changed", report("R-SCHEDULE", next_day, 30.2, 30_200))
    await enterprise.send("status-changed", report("R-COST", next_day, 50.3, 62_800))
    # Milestones not reported this time: the overdue one still stands.
    await enterprise.send("status-changed", report("R-MILESTONE", next_day, 50.3, 50_300))
    await enterprise.send(
        "status-changed", report("R-REPORTED", next_day, 50.3, 50_300, reported_health="red")
    )
    # Still red, and now over budget too (CPI 0.75): a new reason at the same severity is news.
    # Then the manager's amber on top of red is not (below the project's severity).
    await enterprise.send("status-changed", report("R-BOTH", next_day, 30.2, 40_266))
    await enterprise.send(
        "status-changed",
        report("R-BOTH", next_day + timedelta(days=1), 30.4, 40_533, reported_health="amber"),
    )

    def allocated(request: str, granted: float, status: str) -> dict[str, object]:
        return {
            "request_id": request,
            "project_id": "R-RESOURCE",
            "skill": "solution-architect",
            "fte_granted": granted,
            "fte_requested": 1.0,
            "weeks": ["2026-W28", "2026-W29"],
            "status": status,
            "reason": "capacity",
        }

    # 0.4 of 1 FTE missing (40%: amber), then a second request short by 0.2 (0.6 of 2: still
    # amber, no news), then both fully granted: recovered. (Topics are not ordered with each
    # other: wait for the report's assessment so the history reads in this order.)
    await monitoring.assessed("R-RESOURCE", 1)
    await enterprise.send("resource-allocated", allocated("REQ-1", 0.6, "partial"))
    await enterprise.send("resource-allocated", allocated("REQ-2", 0.8, "partial"))
    await enterprise.send("resource-allocated", allocated("REQ-1", 1.0, "granted"))
    await enterprise.send("resource-allocated", allocated("REQ-2", 1.0, "granted"))
    await enterprise.send(
        "resource-conflict-resolved",
        {
            "conflict_id": "CONFLICT-1",
            "skill": "data-engineer",
            "weeks": ["2026-W28"],
            "winners": [
                {
                    "request_id": "REQ-W",
                    "project_id": "R-WINNER",
                    "fte_granted": 1.0,
                    "fte_requested": 1.0,
                    "why": "higher strategic score",
                }
            ],
            "losers": [
                {
                    "request_id": "REQ-L",
                    "project_id": "R-LOSER",
                    "fte_granted": 0.0,
                    "fte_requested": 1.0,
                    "why": "lower strategic score",
                }
            ],
            "rationale": "one data engineer for two projects",
        },
    )

    # Allocation decided before monitoring has the project's baseline: kept, and counted as
    # soon as the baseline arrives.
    await enterprise.send(
        "resource-allocated",
        {**allocated("REQ-P", 0.0, "denied"), "project_id": "R-PRESTAFFED"},
    )

    async def position_kept() -> bool:
        async with monitoring.service.runtime.engine.connect() as connection:
            kept = await connection.execute(
                sa.text("SELECT count(*) FROM resource_position WHERE project_id = 'R-PRESTAFFED'")
            )
            return bool(kept.scalar_one() == 1)

    await eventually(position_kept, timeout=30, what="the early allocation decision kept")
    await enterprise.send("project-started", charter("R-PRESTAFFED"))

    # The loser gets its data engineer after all when the conflict is re-resolved.
    await monitoring.assessed("R-LOSER", 2)
    await enterprise.send(
        "allocation-changed",
        {
            "project_id": "R-LOSER",
            "request_id": "REQ-L",
            "before": {"fte_granted": 0.0},
            "after": {"fte_granted": 1.0, "weeks": ["2026-W28"]},
            "cause": "re-resolved after a strategy change",
        },
    )

    for project_id, count in {
        "R-SCHEDULE": 2, "R-COST": 2, "R-MILESTONE": 2, "R-REPORTED": 2,
        "R-RESOURCE": 5, "R-LOSER": 3, "R-WINNER": 2, "R-BOTH": 3, "R-PRESTAFFED": 1,
    }.items():  # fmt: skip
        await monitoring.assessed(project_id, count)
    await monitoring.settled()

    # One per project, R-BOTH twice.
    at_risk = by_project(await monitoring.published("project-at-risk", at_least=9))
    reasons = {
        project_id: [(alert["severity"], [r["code"] for r in alert["reasons"]]) for alert in alerts]
        for project_id, alerts in at_risk.items()
    }
    assert reasons == {
        "R-SCHEDULE": [("red", ["schedule"])],
        "R-COST": [("red", ["cost"])],
        "R-MILESTONE": [("amber", ["milestone_overdue"])],
        "R-REPORTED": [("red", ["reported_red"])],
        "R-RESOURCE": [("amber", ["resource_shortfall"])],
        "R-LOSER": [("red", ["resource_shortfall"])],
        "R-BOTH": [("red", ["schedule"]), ("red", ["schedule", "cost"])],
        "R-PRESTAFFED": [("red", ["resource_shortfall"])],
    }
    milestone = at_risk["R-MILESTONE"][0]["reasons"][0]
    assert milestone["numbers"]["most_days_overdue"] == 12
    shortfall = at_risk["R-RESOURCE"][0]["reasons"][0]
    assert (shortfall["numbers"]["fte_short"], shortfall["numbers"]["fte_requested"]) == (0.4, 1)
    recovered = by_project(await monitoring.published("project-recovered", at_least=2))
    assert {project_id: len(events) for project_id, events in recovered.items()} == {
        "R-RESOURCE": 1,
        "R-LOSER": 1,
    }
    both = await monitoring.health("R-BOTH")
    assert both is not None
    assert [(r["code"], r["severity"]) for r in both["reasons"]] == [
        ("schedule", "red"),
        ("cost", "red"),
        ("reported_amber", "amber"),
    ]
    # The report, the two partial grants, REQ-1 granted (REQ-2 still short), REQ-2 granted.
    assert [entry["health"] for entry in await monitoring.history("R-RESOURCE")] == [
        "green",
        "amber",
        "amber",
        "amber",
        "green",
    ]


async def test_hysteresis_suppresses_flapping_and_recovery_is_announced_once(
    monitoring: MonitoringProbe, enterprise: Enterprise
) -> None:
    # A linear plan of 1,000,000 over 1,000 days: SPI(t) = (percent * 10) / AT, so each report
    # below is aimed at one SPI(t) by its percent complete (AC = EV keeps CPI and TCPI at 1).
    start = date(2024, 1, 1)
    await enterprise.send(
        "project-started",
        charter("WOBBLY", start=start, finish=start + timedelta(days=1000), budget=1_000_000),
    )
    series = [0.89, 0.905, 0.895, 0.91, 0.93, 0.91, 0.94, 0.96, 0.975]
    for day, spi_t in enumerate(series):
        elapsed = 500 + day
        percent = spi_t * elapsed / 10
        await enterprise.send(
            "status-changed",
            report("WOBBLY", start + timedelta(days=elapsed), percent, 10_000 * percent),
        )
    history = await monitoring.assessed("WOBBLY", len(series))
    assert [entry["metrics"]["spi_t"] for entry in history] == series
    # Red below 0.90; out of red only from 0.92 (0.90 + the 0.02 margin); out of amber only
    # from 0.97. Worsening is immediate.
    assert [entry["health"] for entry in history] == [
        "red", "red", "red", "red", "amber", "amber", "amber", "amber", "green",
    ]  # fmt: skip
    assert [entry["alert"] for entry in history] == [
        "project-at-risk", None, None, None, None, None, None, None, "project-recovered",
    ]  # fmt: skip
    await monitoring.settled()
    assert len(await monitoring.published("project-at-risk", at_least=1)) == 1
    (recovered,) = await monitoring.published("project-recovered", at_least=1)
    assert recovered["metrics"]["spi_t"] == 0.975


async def test_out_of_order_duplicate_malformed_and_early_reports(
    monitoring: MonitoringProbe, enterprise: Enterprise, settings: Settings
) -> None:
    await enterprise.send("project-started", charter("PRJ-ODD"))
    slipping = await enterprise.send("status-changed", report("PRJ-ODD", AS_OF, 30, 30_000))
    # An older report, on plan: kept in the history, but the current health stays red.
    await enterprise.send("status-changed", report("PRJ-ODD", date(2026, 6, 1), 45, 45_000))
    # The slipping report delivered again (same CloudEvents id and source): no second effect.
    await enterprise.send("status-changed", report("PRJ-ODD", AS_OF, 30, 30_000), event_id=slipping)
    # Over 100% complete: refused by the contract, dead-lettered with the reason.
    await enterprise.send("status-changed", report("PRJ-ODD", AS_OF, 150, 30_000))
    await enterprise.send_raw("status-changed", b"{not json", key="PRJ-ODD")
    # A report overtaking its project's start waits for it, then is assessed.
    await enterprise.send("status-changed", report("PRJ-EAGER", AS_OF, 20, 20_000))
    await enterprise.send("project-started", charter("PRJ-EAGER"))
    # The next valid report is assessed as usual.
    await enterprise.send(
        "status-changed", report("PRJ-ODD", AS_OF + timedelta(days=1), 31, 31_000)
    )

    history = await monitoring.assessed("PRJ-ODD", 3)
    assert [(e["as_of"], e["applied"], e["health"]) for e in history] == [
        ("2026-07-02", True, "red"),
        ("2026-06-01", False, "green"),
        ("2026-07-03", True, "red"),
    ]
    current = await monitoring.health("PRJ-ODD")
    assert current is not None
    assert (current["as_of"], current["health"]) == ("2026-07-03", "red")
    await monitoring.assessed("PRJ-EAGER", 1)

    reasons = await monitoring.dead_letter_reasons()
    assert len(reasons) == 3, reasons
    assert any(r.startswith(f"duplicate: event '{slipping}'") for r in reasons), reasons
    assert any(r.startswith("data.percent_complete") for r in reasons), reasons
    assert any(r.startswith("not a CloudEvent") or "JSON" in r for r in reasons), reasons

    await monitoring.settled()
    alerts = by_project(await monitoring.published("project-at-risk", at_least=2))
    assert {project_id: len(events) for project_id, events in alerts.items()} == {
        "PRJ-ODD": 1,
        "PRJ-EAGER": 1,
    }
    assert await monitoring.published("project-recovered") == []
    assert len(await monitoring.history("PRJ-ODD")) == 3


async def test_completed_and_terminated_projects_leave_monitoring_and_raise_nothing(
    monitoring: MonitoringProbe, enterprise: Enterprise
) -> None:
    for project_id in ("DONE-RED", "AXED", "PAUSED", "REFUSED"):
        await enterprise.send("project-started", charter(project_id))
    # Completed by the registry; its last report, which would be red: recorded, nothing raised.
    await enterprise.send(
        "project-lifecycle-changed",
        {"project_id": "DONE-RED", "from": "active", "to": "completed", "cause": "delivered"},
    )

    async def done_closed() -> bool:
        health = await monitoring.health("DONE-RED")
        return health is not None and health["monitoring"] == "closed"

    await eventually(done_closed, timeout=30, what="DONE-RED out of monitoring")
    await enterprise.send(
        "status-changed", report("DONE-RED", AS_OF, 30, 45_000, lifecycle="completed")
    )
    # A report saying "completed" is no closure: the registry decides (it may refuse), so the
    # project stays watched and its red report raises an alert.
    await enterprise.send(
        "status-changed", report("REFUSED", AS_OF, 30, 45_000, lifecycle="completed")
    )
    # At risk, then terminated by the registry: leaves the at-risk list, later reports are kept
    # for the record only.
    await enterprise.send("status-changed", report("AXED", AS_OF, 40, 40_000))
    await monitoring.assessed("AXED", 1)  # the registry's topic is not ordered with this one
    await enterprise.send(
        "project-lifecycle-changed",
        {"project_id": "AXED", "from": "active", "to": "terminated", "cause": "strategy v2"},
    )

    async def axed_closed() -> bool:
        health = await monitoring.health("AXED")
        return health is not None and health["monitoring"] == "closed"

    await eventually(axed_closed, timeout=30, what="AXED out of monitoring")
    await enterprise.send("status-changed", report("AXED", AS_OF + timedelta(days=1), 10, 90_000))
    # On hold is still watched.
    await enterprise.send(
        "project-lifecycle-changed",
        {"project_id": "PAUSED", "from": "active", "to": "on_hold", "cause": "budget review"},
    )
    await enterprise.send("status-changed", report("PAUSED", AS_OF, 20, 20_000))

    done = (await monitoring.assessed("DONE-RED", 1))[0]
    assert (done["health"], done["applied"], done["alert"]) == ("red", False, None)
    refused = (await monitoring.assessed("REFUSED", 1))[0]
    assert (refused["health"], refused["applied"], refused["alert"]) == (
        "red",
        True,
        "project-at-risk",
    )
    axed = await monitoring.assessed("AXED", 2)
    assert [(e["applied"], e["alert"]) for e in axed] == [
        (True, "project-at-risk"),
        (False, None),
    ]
    await monitoring.assessed("PAUSED", 1)
    states = {}
    for project_id in ("DONE-RED", "AXED", "PAUSED", "REFUSED"):
        health = await monitoring.health(project_id)
        assert health is not None
        states[project_id] = (health["monitoring"], health["lifecycle"])
    assert states == {
        "DONE-RED": ("closed", "completed"),
        "AXED": ("closed", "terminated"),
        "PAUSED": ("on_hold", "on_hold"),
        # Started and never moved by the registry: active (issue 12, item 15: was null).
        "REFUSED": ("active", "active"),
    }
    listed = (await monitoring.api.get("/at-risk")).json()
    assert sorted(p["project_id"] for p in listed) == ["PAUSED", "REFUSED"]

    await monitoring.settled()
    alerts = by_project(await monitoring.published("project-at-risk", at_least=3))
    assert {project_id: len(events) for project_id, events in alerts.items()} == {
        "AXED": 1,
        "PAUSED": 1,
        "REFUSED": 1,
    }
