"""Capacity and demand against the real broker and database (issue 12, items 5, 6 and 15): dated
capacity changes compose, demand is counted per working day, conflicts are listed as published
and filtered before the page limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from services.allocation.domain.requests import iso_week
from services.allocation.entrypoints.cli import resources_app
from shared.settings import Settings
from tests.allocation.test_allocation_flow import (
    conflict_between,
    given_portfolio,
    published,
    request,
    statuses,
    until,
)
from tests.conftest import ServiceStarter
from tests.harness import Enterprise, eventually

pytestmark = pytest.mark.e2e

# Weeks W+1 .. W+6 from the current one, by their Mondays: always in the future, so planned.
_THIS_MONDAY = date.today() - timedelta(days=date.today().weekday())
MONDAY = [_THIS_MONDAY + timedelta(weeks=n) for n in range(8)]
WEEK = [iso_week(monday) for monday in MONDAY]


def day(week: int, weekday: int) -> str:
    """The date of a weekday (0 = Monday, 5 = Saturday) of week W+`week`."""
    return (MONDAY[week] + timedelta(days=weekday)).isoformat()


@pytest.fixture
async def api(
    start_service: ServiceStarter, admin_headers: dict[str, str]
) -> AsyncIterator[httpx.AsyncClient]:
    service = await start_service("allocation", allocation_resolution_poll_s=0.5)
    async with httpx.AsyncClient(base_url=service.base_url, headers=admin_headers) as client:
        yield client


async def heatmap(api: httpx.AsyncClient, first: int, last: int) -> dict[str, list[Any]]:
    rows = (
        await api.get("/utilisation", params={"from_week": WEEK[first], "to_week": WEEK[last]})
    ).json()
    return {
        row["resource_id"]: [(c["capacity_fte"], c["allocated_fte"]) for c in row["weeks"]]
        for row in rows
    }


# --- item 5: dated capacity changes compose ----------------------------------------------------


async def test_a_contract_change_dated_inside_a_leave_does_not_end_it(
    api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    await given_portfolio(api, enterprise, "PRJ-A")
    # The case: 1.0 FTE, leave from Monday W+2 to Friday W+4, 0.5 FTE from Monday W+3
    # (inside the leave), given without kinds: the bounded one is the absence.
    changes = [
        {"starts": day(2, 0), "ends": day(4, 4), "capacity_fte": 0, "reason": "parental leave"},
        {"starts": day(3, 0), "capacity_fte": 0.5, "reason": "part time"},
    ]
    patched = await api.patch("/resources/res-maria", json={"capacity_changes": changes})
    assert patched.status_code == 200, patched.text
    assert [(c["kind"], c["capacity_fte"]) for c in patched.json()["capacity_changes"]] == [
        ("absence", 0.0),
        ("contract", 0.5),
    ]
    # 1.0 FTE for W+3..W+4 (inside the leave) and 1.0 FTE for W+3..W+5 (one week after it).
    await enterprise.send(
        "resource-requested", request("REQ-IN", "PRJ-A", start=day(3, 0), end=day(4, 4))
    )
    await enterprise.send(
        "resource-requested", request("REQ-AFTER", "PRJ-A", start=day(3, 0), end=day(5, 4))
    )

    async def decided(api: httpx.AsyncClient) -> bool:
        return await statuses(api) == {
            "REQ-IN": ("denied", 0.0),
            "REQ-AFTER": ("partial", 0.1667),
        }

    await until(api, decided, "nothing during the leave, 0.5 after it")
    inside = (await api.get("/requests/REQ-IN")).json()
    assert inside["assignments"] == []
    assert "has no capacity left in those weeks" in inside["reason"]
    after = (await api.get("/requests/REQ-AFTER")).json()
    assert after["assignments"] == [{"resource_id": "res-maria", "fte": 0.5, "weeks": [WEEK[5]]}]
    assert await heatmap(api, 1, 5) == {
        "res-maria": [(1.0, 0.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0), (0.5, 0.5)]
    }
    decisions = await published(
        settings, "resource-allocated", lambda found: len(found) >= 2, what="both decisions"
    )
    by_id = {d["request_id"]: d for d in decisions}
    assert (by_id["REQ-IN"]["status"], by_id["REQ-IN"]["fte_granted"]) == ("denied", 0.0)
    assert by_id["REQ-AFTER"]["weeks"] == [WEEK[5]]

    # Overlapping absences, in any order, with the contract change entered first: a reduced
    # absence (a course at 0.2 FTE, W+5..W+6) overlapping the end of a second leave (W+5) keeps
    # the smaller cap on the shared days and holds alone after the leave ends.
    changes = [
        {"starts": day(3, 0), "capacity_fte": 0.5},
        {"starts": day(5, 3), "ends": day(6, 4), "capacity_fte": 0.2, "kind": "absence"},
        {"starts": day(2, 0), "ends": day(4, 4), "capacity_fte": 0},
        {"starts": day(5, 0), "ends": day(5, 4), "capacity_fte": 0, "reason": "holiday"},
    ]
    patched = await api.patch("/resources/res-maria", json={"capacity_changes": changes})
    assert patched.status_code == 200, patched.text

    async def rearranged(api: httpx.AsyncClient) -> bool:
        return await heatmap(api, 1, 7) == {
            "res-maria": [
                (1.0, 0.0),
                (0.0, 0.0),
                (0.0, 0.0),
                (0.0, 0.0),
                (0.0, 0.0),
                (0.2, 0.0),
                (0.5, 0.0),
            ]
        }

    await until(api, rearranged, "the second leave and the course applied")
    assert await statuses(api) == {"REQ-IN": ("denied", 0.0), "REQ-AFTER": ("denied", 0.0)}


async def test_capacity_changes_imported_from_csv_compose_like_the_api(
    api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings, tmp_path: Path
) -> None:
    await given_portfolio(api, enterprise, "PRJ-A")
    runner = CliRunner()

    async def run(path: Path) -> Any:
        return await asyncio.to_thread(
            runner.invoke, resources_app, ["import", str(path)], obj=settings
        )

    pool = tmp_path / "pool.csv"
    pool.write_text("resource_id,name,skills,capacity_fte\nres-ola,Ola Nordmann,tester,1\n")
    assert (await run(pool)).exit_code == 0
    leave = tmp_path / "capacity.csv"
    leave.write_text(
        "resource_id,starts,ends,capacity_fte,kind,reason\n"
        f"res-ola,{day(2, 0)},{day(3, 4)},0,,leave\n"
        f"res-ola,{day(3, 0)},,0.5,contract,part time\n"
        f"res-maria,{day(4, 3)},{day(4, 4)},0,absence,holiday\n"
    )
    imported = await run(leave)
    assert imported.exit_code == 0, imported.output
    assert f"{leave}: capacity changes of 2 resource(s) replaced, 0 unchanged" in imported.output
    await enterprise.send(
        "resource-requested",
        request(
            "REQ-T", "PRJ-A", skill="tester", named_resource=None, start=day(2, 0), end=day(4, 4)
        ),
    )

    async def decided(api: httpx.AsyncClient) -> bool:
        return (await statuses(api)).get("REQ-T") == ("partial", 0.1667)

    await until(api, decided, "REQ-T gets Ola's 0.5 after the leave only")
    assert await heatmap(api, 2, 4) == {
        "res-maria": [(1.0, 0.0), (1.0, 0.0), (0.6, 0.0)],
        "res-ola": [(0.0, 0.0), (0.0, 0.0), (0.5, 0.5)],
    }
    kinds = {
        r["resource_id"]: [(c["kind"], c["reason"]) for c in r["capacity_changes"]]
        for r in (await api.get("/resources")).json()
    }
    assert kinds == {
        "res-maria": [("absence", "holiday")],
        "res-ola": [("absence", "leave"), ("contract", "part time")],
    }

    # Importing the same file again changes nothing; the pool file moving Ola to 0.8 FTE keeps
    # the leave (0) and the later part time (0.5).
    again = (await run(leave)).output
    assert f"{leave}: capacity changes of 0 resource(s) replaced, 2 unchanged" in again
    pool.write_text("resource_id,name,skills,capacity_fte\nres-ola,Ola Nordmann,tester,0.8\n")
    assert f"{pool}: 0 added, 1 updated, 0 unchanged" in (await run(pool)).output
    assert (await heatmap(api, 1, 4))["res-ola"] == [(0.8, 0.0), (0.0, 0.0), (0.0, 0.0), (0.5, 0.5)]

    # A file naming someone outside the pool, or a bad line, changes nothing.
    stranger = tmp_path / "stranger.csv"
    stranger.write_text(
        f"resource_id,starts,capacity_fte\nres-nobody,{day(2, 0)},0\nres-ola,{day(2, 0)},1\n"
    )
    refused = await run(stranger)
    assert refused.exit_code == 1
    assert f"{stranger}: not in the resource pool: res-nobody;" in refused.output
    bad = tmp_path / "bad.csv"
    bad.write_text(f"resource_id,starts,ends,capacity_fte\nres-ola,{day(2, 0)},someday,0\n")
    refused = await run(bad)
    assert refused.exit_code == 1
    assert f"{bad}: line 2: ends must be a date like 2027-01-04 (got 'someday')" in refused.output
    assert (await heatmap(api, 1, 4))["res-ola"] == [(0.8, 0.0), (0.0, 0.0), (0.0, 0.0), (0.5, 0.5)]


# --- item 6: demand is spread over the request's working days -----------------------------------


async def test_hours_and_fte_are_spread_over_the_requests_working_days(
    api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    await given_portfolio(api, enterprise, "PRJ-A")
    # The case: 40 hours from a Saturday to the next Friday is 1.0 FTE in that week and
    # nothing in the week holding only the weekend.
    await enterprise.send(
        "resource-requested",
        request("REQ-H", "PRJ-A", fte=None, hours=40, start=day(1, 5), end=day(2, 4)),
    )
    # 1.0 FTE from a Wednesday to the next Tuesday: 3/5 in the first week, 2/5 in the second.
    await enterprise.send(
        "resource-requested", request("REQ-M", "PRJ-A", start=day(3, 2), end=day(4, 1))
    )
    # 16 hours over a weekend: no working day.
    await enterprise.send(
        "resource-requested",
        request("REQ-W", "PRJ-A", fte=None, hours=16, start=day(5, 5), end=day(5, 6)),
    )

    async def decided(api: httpx.AsyncClient) -> bool:
        return await statuses(api) == {
            "REQ-H": ("granted", 1.0),
            "REQ-M": ("granted", 1.0),
            "REQ-W": ("denied", 0.0),
        }

    await until(api, decided, "each request decided on its working days")
    hours = (await api.get("/requests/REQ-H")).json()
    assert (hours["weeks"], hours["fte_per_week"], hours["fte_by_week"]) == (
        [WEEK[2]],
        1.0,
        {WEEK[2]: 1.0},
    )
    assert hours["assignments"] == [{"resource_id": "res-maria", "fte": 1.0, "weeks": [WEEK[2]]}]
    mid = (await api.get("/requests/REQ-M")).json()
    assert mid["fte_by_week"] == {WEEK[3]: 0.6, WEEK[4]: 0.4}
    assert mid["assignments"] == [
        {"resource_id": "res-maria", "fte": 0.6, "weeks": [WEEK[3]]},
        {"resource_id": "res-maria", "fte": 0.4, "weeks": [WEEK[4]]},
    ]
    weekend = (await api.get("/requests/REQ-W")).json()
    assert (weekend["weeks"], weekend["fte_by_week"], weekend["assignments"]) == ([], {}, [])
    assert weekend["reason"] == (
        f"Denied: {day(5, 5)} to {day(5, 6)} holds no working day (Monday to Friday), and people "
        "are planned on working days only; ask for the working days the work needs."
    )
    assert await heatmap(api, 1, 4) == {
        "res-maria": [(1.0, 0.0), (1.0, 1.0), (1.0, 0.6), (1.0, 0.4)]
    }
    decisions = await published(
        settings, "resource-allocated", lambda found: len(found) >= 3, what="three decisions"
    )
    by_id = {d["request_id"]: d for d in decisions}
    assert (by_id["REQ-H"]["weeks"], by_id["REQ-H"]["fte_granted"]) == ([WEEK[2]], 1.0)
    assert (by_id["REQ-W"]["status"], by_id["REQ-W"]["weeks"]) == ("denied", [])
    assert by_id["REQ-W"]["reason"] == weekend["reason"]


async def test_part_weeks_compete_for_what_they_ask_only(
    api: httpx.AsyncClient, enterprise: Enterprise
) -> None:
    await given_portfolio(api, enterprise, "PRJ-B", "PRJ-A")
    # PRJ-B (rank 1) wants Maria from Thursday of W+2 to Friday of W+3; PRJ-A wants her all of
    # W+2 at 0.5: W+2 has 0.4 of B's demand, so A keeps its 0.5 there and only W+3 is contested.
    await enterprise.send(
        "resource-requested", request("REQ-B", "PRJ-B", start=day(2, 3), end=day(3, 4))
    )
    await enterprise.send(
        "resource-requested", request("REQ-A", "PRJ-A", fte=0.5, start=day(2, 0), end=day(3, 4))
    )

    async def decided(api: httpx.AsyncClient) -> bool:
        return await statuses(api) == {"REQ-B": ("granted", 1.0), "REQ-A": ("partial", 0.25)}

    await until(api, decided, "B in full, A only where B leaves room")
    loser = (await api.get("/requests/REQ-A")).json()
    assert loser["assignments"] == [{"resource_id": "res-maria", "fte": 0.5, "weeks": [WEEK[2]]}]
    conflict = await eventually(
        lambda: conflict_between(api, "REQ-B", "REQ-A"), timeout=30, what="the conflict"
    )
    assert conflict["weeks"] == [WEEK[3]]


async def test_a_part_week_inside_an_absence_gets_nothing_of_the_absent_person(
    api: httpx.AsyncClient, enterprise: Enterprise
) -> None:
    await given_portfolio(api, enterprise, "PRJ-A", "PRJ-B")
    # Maria is away Monday to Wednesday of W+2: that week holds 0.4 FTE, on Thursday and Friday.
    away = [{"starts": day(2, 0), "ends": day(2, 2), "capacity_fte": 0, "reason": "holiday"}]
    patched = await api.patch("/resources/res-maria", json={"capacity_changes": away})
    assert patched.status_code == 200, patched.text
    # PRJ-A (rank 1) wants her Monday to Wednesday, PRJ-B Thursday and Friday.
    await enterprise.send(
        "resource-requested", request("REQ-A", "PRJ-A", start=day(2, 0), end=day(2, 2))
    )
    await enterprise.send(
        "resource-requested", request("REQ-B", "PRJ-B", start=day(2, 3), end=day(2, 4))
    )

    async def decided(api: httpx.AsyncClient) -> bool:
        return await statuses(api) == {"REQ-A": ("denied", 0.0), "REQ-B": ("granted", 1.0)}

    await until(api, decided, "nothing on her days away, Thursday and Friday to PRJ-B")
    denied = (await api.get("/requests/REQ-A")).json()
    assert denied["fte_by_week"] == {WEEK[2]: 0.6}
    assert "has no capacity left in those weeks" in denied["reason"]
    assert (await api.get("/conflicts")).json() == []  # PRJ-B took nothing PRJ-A could have had
    assert (await heatmap(api, 2, 2)) == {"res-maria": [(0.4, 0.4)]}


# --- item 15: conflicts as published, filtered before the page limit ---------------------------


async def test_conflicts_are_listed_as_resolved_and_filtered_before_the_page_limit(
    api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    await given_portfolio(api, enterprise, "PRJ-B", "PRJ-A", "PRJ-D", "PRJ-C")
    ola = {"resource_id": "res-ola", "name": "Ola", "skills": ["tester"], "capacity_fte": 1.0}
    assert (await api.post("/resources", json=ola)).status_code == 201
    window = {"start": day(2, 0), "end": day(3, 4)}
    for request_id, project_id in (("REQ-A", "PRJ-A"), ("REQ-B", "PRJ-B")):
        await enterprise.send("resource-requested", request(request_id, project_id, **window))
    older = await eventually(
        lambda: conflict_between(api, "REQ-B", "REQ-A"), timeout=45, what="the first conflict"
    )
    # Published as resource-conflict-resolved, listed as resolved.
    assert older["state"] == "resolved"
    assert older["resolved_at"] is not None
    assert (older["closed_at"], older["closed_reason"]) == (None, None)
    events = await published(
        settings,
        "resource-conflict-resolved",
        lambda found: any(c["conflict_id"] == older["conflict_id"] for c in found),
        what="the first conflict published",
    )
    assert older["conflict_id"] in {event["conflict_id"] for event in events}

    for request_id, project_id in (("REQ-C", "PRJ-C"), ("REQ-D", "PRJ-D")):
        await enterprise.send(
            "resource-requested",
            request(request_id, project_id, skill="tester", named_resource="res-ola", **window),
        )
    newer = await eventually(
        lambda: conflict_between(api, "REQ-D", "REQ-C"), timeout=45, what="the second conflict"
    )

    async def listed(**params: Any) -> list[str]:
        response = await api.get("/conflicts", params=params)
        assert response.status_code == 200, response.text
        return [conflict["conflict_id"] for conflict in response.json()]

    assert await listed() == [newer["conflict_id"], older["conflict_id"]]
    assert await listed(limit=1) == [newer["conflict_id"]]
    # The older conflict of PRJ-A is found although a newer one fills the first page.
    assert await listed(project_id="PRJ-A", limit=1) == [older["conflict_id"]]
    assert await listed(project_id="PRJ-B", state="resolved", limit=1) == [older["conflict_id"]]
    assert await listed(project_id="PRJ-C", limit=1) == [newer["conflict_id"]]
    assert await listed(project_id="PRJ-X") == []
    assert await listed(state="closed", limit=1) == []
    assert await listed(limit=1, before=newer["conflict_id"]) == [older["conflict_id"]]
    assert await listed(before=older["conflict_id"]) == []
    stale = await api.get("/conflicts", params={"state": "open"})
    assert stale.status_code == 422
    unknown = await api.get("/conflicts", params={"before": "CF-nothing"})
    assert unknown.status_code == 422
    # Every 422 has FastAPI's list shape (one for all services), the sentence in `msg`.
    assert [problem["msg"] for problem in unknown.json()["detail"]] == [
        "before names no conflict ('CF-nothing')."
    ]

    # Requests and resources too: the limit applies after every filter.
    page = (await api.get("/requests", params={"project_id": "PRJ-D", "limit": 1})).json()
    assert [r["request_id"] for r in page] == ["REQ-D"]
    page = (await api.get("/requests", params={"status": "denied", "limit": 1})).json()
    assert [r["request_id"] for r in page] == ["REQ-A"]
    page = (await api.get("/resources", params={"skill": "TESTER", "limit": 1})).json()
    assert [r["resource_id"] for r in page] == ["res-ola"]
