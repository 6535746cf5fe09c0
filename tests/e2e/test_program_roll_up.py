"""A program's roll-up computed end to end from events, against hand-checked figures.

Against the real broker and database, with registry and monitoring running: three projects of a
temporary program (two join by their `project-started` charter, one through the API) report
their status; monitoring assesses each and publishes `project-health-assessed`; the registry's
roll-up then equals the figures worked out by hand below.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.settings import Settings
from tests.conftest import ServiceStarter
from tests.harness import Enterprise, eventually, read_topic

pytestmark = pytest.mark.e2e

TODAY = datetime.now(UTC).date()
START = TODAY - timedelta(days=100)
"""Every project started 100 days ago and reports as of today: AT = 100 days."""


def started(
    project_id: str, budget: float, pv_today: float, finish_day: int, **changes: Any
) -> dict[str, Any]:
    """A charter whose plan reaches `pv_today` today (day 100) and BAC on `finish_day`."""
    finish = START + timedelta(days=finish_day)
    return {
        "project_id": project_id,
        "name": f"Merger {project_id}",
        "business_unit": "Integration",
        "manager": "grace.hopper@example.com",
        "start_date": START.isoformat(),
        "planned_finish_date": finish.isoformat(),
        "budget": budget,
        "currency": "EUR",
        "planned_value_curve": [
            {"date": START.isoformat(), "planned_value": 0},
            {"date": TODAY.isoformat(), "planned_value": pv_today},
            {"date": finish.isoformat(), "planned_value": budget},
        ],
        **changes,
    }


def status(project_id: str, percent: float, cost: float) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "as_of": TODAY.isoformat(),
        "percent_complete": percent,
        "actual_cost": cost,
    }


# The figures by hand (BAC, PV today, % complete, AC):
#   M-A  BAC 100,000  PV  50,000  50% → EV  50,000  AC 40,000  SPI 1.0  CPI 1.25    EAC  80,000
#   M-B  BAC 200,000  PV 100,000  30% → EV  60,000  AC 90,000  SPI 0.6  CPI 0.6667  EAC 300,000
#   M-C  BAC  50,000  PV  20,000  40% → EV  20,000  AC 21,500  SPI 1.0  CPI 0.9302  EAC  53,750
#   (EAC = BAC / CPI: 100,000/1.25; 200,000 x 90,000/60,000; 50,000 x 21,500/20,000)
# The program: BAC 350,000, PV 170,000, EV 130,000, AC 151,500,
#   SPI = 130,000 / 170,000 = 0.7647 (the average of the SPIs would be 0.8667),
#   CPI = 130,000 / 151,500 = 0.8581 (the average of the CPIs would be 0.9490),
#   EAC = 80,000 + 300,000 + 53,750 = 433,750, VAC = 350,000 - 433,750 = -83,750.
# Health: M-A green; M-C amber (CPI 0.93 < 0.95); M-B red (SPI(t) 0.6, CPI 0.67): red, M-B's.
# M-B's plan ends on day 300, and at SPI(t) 0.6 it forecasts day 500: after the program's end
# (day 250); M-A and M-C finish on day 200 at SPI(t) 1.0.
HAND = {
    "budget_at_completion": 350_000,
    "planned_value": 170_000,
    "earned_value": 130_000,
    "actual_cost": 151_500,
    "spi": 0.7647,
    "cpi": 0.8581,
    "estimate_at_completion": 433_750,
    "variance_at_completion": -83_750,
    "health": "red",
    "currency": "EUR",
}
PROGRAM_END = START + timedelta(days=250)


async def test_a_program_rolls_up_its_projects_from_the_sums_of_their_assessed_figures(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    settings: Settings,
    admin_headers: dict[str, str],
) -> None:
    registry, _ = await asyncio.gather(
        start_service("registry"),
        start_service("monitoring", monitoring_staleness_check_interval_s=3600.0),
    )
    async with httpx.AsyncClient(
        base_url=registry.base_url, headers=admin_headers, timeout=30
    ) as api:
        defined = await api.post(
            "/programs",
            json={
                "program_id": "MERGER",
                "name": "Merger with Acme",
                "end_date": PROGRAM_END.isoformat(),
            },
        )
        assert defined.status_code == 201, defined.text
        assert defined.json()["temporary"] is True

        await enterprise.send(
            "project-started", started("M-A", 100_000, 50_000, 200, program_id="MERGER")
        )
        await enterprise.send(
            "project-started", started("M-B", 200_000, 100_000, 300, program_id="MERGER")
        )
        await enterprise.send("project-started", started("M-C", 50_000, 20_000, 200))

        async def registered(project_id: str) -> dict[str, Any] | None:
            found = await api.get(f"/projects/{project_id}")
            return found.json() if found.status_code == 200 else None

        # M-C joins through the API once it is registered.
        await eventually(lambda: registered("M-C"), timeout=30, what="M-C registered")
        placed = await api.put("/projects/M-C/program", json={"program_id": "MERGER"})
        assert placed.status_code == 200, placed.text
        assert placed.json()["program_id"] == "MERGER"

        await enterprise.send("status-changed", status("M-A", 50, 40_000))
        await enterprise.send("status-changed", status("M-B", 30, 90_000))
        await enterprise.send("status-changed", status("M-C", 40, 21_500))

        async def rolled_up() -> dict[str, Any] | None:
            body: dict[str, Any] = (await api.get("/programs/MERGER/roll-up")).json()
            assessed = {p["project_id"]: p for p in body["projects"] if p["ev"] is not None}
            return body if len(assessed) == 3 and not body["not_assessed"] else None

        roll_up = await eventually(rolled_up, timeout=60, what="MERGER's three projects assessed")

    assert {name: roll_up[name] for name in HAND} == HAND
    by_project = {p["project_id"]: p for p in roll_up["projects"]}
    assert {
        p: (f["health"], f["ev"], f["pv"], f["ac"], f["eac"]) for p, f in by_project.items()
    } == {
        "M-A": ("green", 50_000, 50_000, 40_000, 80_000),
        "M-B": ("red", 60_000, 100_000, 90_000, 300_000),
        "M-C": ("amber", 20_000, 20_000, 21_500, 53_750),
    }
    # Not an average of the projects' ratios.
    assert roll_up["spi"] != round(sum(f["spi"] for f in by_project.values()) / 3, 4)
    assert roll_up["cpi"] != round(sum(f["cpi"] for f in by_project.values()) / 3, 4)
    # The worst health's reasons, all M-B's, as monitoring gave them.
    assert roll_up["reasons"]
    assert {reason["project_id"] for reason in roll_up["reasons"]} == {"M-B"}
    assert {"schedule", "cost"} <= {reason["code"] for reason in roll_up["reasons"]}
    # The temporary program's end date: M-B is forecast to finish after it.
    assert roll_up["program"]["end_date"] == PROGRAM_END.isoformat()
    assert roll_up["program"]["ended"] is False
    assert roll_up["finishing_after_end"] == ["M-B"]
    assert roll_up["eac_at_budget"] == []
    assert roll_up["people_and_conflicts"]["people"] == [
        "/projects/M-A/allocations",
        "/projects/M-B/allocations",
        "/projects/M-C/allocations",
    ]

    # Membership left through the outbox: one announcement per project, and the charters'
    # program on project-registered.
    prefix = settings.topic_prefix
    changes = [
        json.loads(record.value)["data"]
        for record in await read_topic(settings, f"{prefix}project-program-changed", at_least=3)
    ]
    assert sorted(
        (c["project_id"], c["previous_program_id"], c["program_id"]) for c in changes
    ) == [
        ("M-A", None, "MERGER"),
        ("M-B", None, "MERGER"),
        ("M-C", None, "MERGER"),
    ]
    registrations = {
        data["project_id"]: data.get("program_id")
        for record in await read_topic(settings, f"{prefix}project-registered", at_least=3)
        if (data := json.loads(record.value)["data"])
    }
    assert registrations == {"M-A": "MERGER", "M-B": "MERGER", "M-C": None}
