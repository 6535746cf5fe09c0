"""Allocation against the real broker and database: conflicts decided by portfolio priority,
re-resolved on a new ranking, a termination, a capacity change; duplicates have one effect."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from services.allocation.domain.requests import iso_week
from shared.settings import Settings
from tests.conftest import ServiceStarter
from tests.harness import Enterprise, eventually, read_topic

pytestmark = pytest.mark.e2e

_MONDAY = date.today() - timedelta(days=date.today().weekday())
START = _MONDAY + timedelta(weeks=2)
END = START + timedelta(weeks=2, days=4)  # three whole weeks, Monday to Friday
WEEKS = [iso_week(START + timedelta(weeks=i)) for i in range(3)]

MARIA = {
    "resource_id": "res-maria",
    "name": "Maria Rossi",
    "skills": ["solution-architect"],
    "capacity_fte": 1.0,
}


def registered(project_id: str, *, manager: str = "pm@example.com", **extra: Any) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "name": f"Project {project_id[-1]}",
        "business_unit": "Digital",
        "manager": manager,
        "start_date": "2026-01-01",
        "planned_finish_date": "2028-12-31",
        "budget": 500000,
        "currency": "EUR",
        "lifecycle": "active",
        **extra,
    }


def ranking(version: int, *project_ids: str) -> dict[str, Any]:
    return {
        "strategy_version": version,
        "projects": [
            {
                "project_id": project_id,
                "score": round(0.9 - 0.2 * index, 2),
                "rank": index + 1,
                "action": "continue",
                "why": "weighted objectives",
            }
            for index, project_id in enumerate(project_ids)
        ],
    }


def request(request_id: str, project_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "project_id": project_id,
        "skill": "solution-architect",
        "fte": 1.0,
        "start": START.isoformat(),
        "end": END.isoformat(),
        "named_resource": "res-maria",
        **extra,
    }


async def published(
    settings: Settings, event: str, accept: Callable[[list[dict[str, Any]]], bool], what: str
) -> list[dict[str, Any]]:
    """The `data` of every record on an outbound topic, once `accept` is satisfied."""

    async def probe() -> list[dict[str, Any]] | None:
        try:
            records = await read_topic(
                settings, f"{settings.topic_prefix}{event}", at_least=1, timeout=3
            )
        except AssertionError:
            return None
        found = [json.loads(record.value)["data"] for record in records]
        return found if accept(found) else None

    return await eventually(probe, timeout=45, what=what)


async def published_conflict(settings: Settings, conflict_id: str) -> dict[str, Any]:
    """The `data` of the resource-conflict-resolved event of `conflict_id`, once published."""
    resolved = await published(
        settings,
        "resource-conflict-resolved",
        lambda found: any(c["conflict_id"] == conflict_id for c in found),
        what=f"the conflict {conflict_id} published",
    )
    return next(c for c in resolved if c["conflict_id"] == conflict_id)


async def until(
    api: httpx.AsyncClient, check: Callable[[httpx.AsyncClient], Awaitable[bool]], what: str
) -> None:
    async def probe() -> bool:
        return await check(api)

    await eventually(probe, timeout=45, what=what)


async def statuses(api: httpx.AsyncClient) -> dict[str, tuple[str, float | None]]:
    rows = (await api.get("/requests")).json()
    return {row["request_id"]: (row["status"], row["fte_granted"]) for row in rows}


async def given_portfolio(
    api: httpx.AsyncClient, enterprise: Enterprise, *ranked: str, version: int = 1
) -> None:
    """Maria in the pool; the projects registered, active, and ranked in this order."""
    assert (await api.post("/resources", json=MARIA)).status_code == 201
    for project_id in ranked:
        await enterprise.send("project-registered", registered(project_id))
    await enterprise.send("portfolio-reprioritized", ranking(version, *ranked), key=str(version))

    async def applied(api: httpx.AsyncClient) -> bool:
        projects = {p["project_id"]: p for p in (await api.get("/projects")).json()}
        return all(
            projects.get(p, {}).get("rank") == i + 1 and projects[p]["lifecycle"] == "active"
            for i, p in enumerate(ranked)
        )

    await until(api, applied, f"the ranking {ranked} applied")


async def conflict_between(
    api: httpx.AsyncClient, winner: str, loser: str
) -> dict[str, Any] | None:
    for conflict in (await api.get("/conflicts", params={"state": "resolved"})).json():
        if [w["request_id"] for w in conflict["winners"]] == [winner] and [
            lo["request_id"] for lo in conflict["losers"]
        ] == [loser]:
            return conflict  # type: ignore[no-any-return]
    return None


@pytest.fixture
async def allocation_api(start_service: ServiceStarter, admin_headers: dict[str, str]) -> Any:
    service = await start_service("allocation", allocation_resolution_poll_s=0.5)
    async with httpx.AsyncClient(base_url=service.base_url, headers=admin_headers) as api:
        yield api


async def test_two_projects_wanting_one_person_go_by_rank_with_a_stated_rationale(
    allocation_api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    api = allocation_api
    await given_portfolio(api, enterprise, "PRJ-B", "PRJ-A")
    await enterprise.send("resource-requested", request("REQ-A", "PRJ-A"))
    await enterprise.send("resource-requested", request("REQ-B", "PRJ-B"))

    async def decided(api: httpx.AsyncClient) -> bool:
        return await statuses(api) == {"REQ-A": ("denied", 0.0), "REQ-B": ("granted", 1.0)}

    await until(api, decided, "REQ-B granted and REQ-A denied")
    conflict = await eventually(
        lambda: conflict_between(api, "REQ-B", "REQ-A"), timeout=30, what="the open conflict"
    )
    assert conflict["resource_id"] == "res-maria"
    assert conflict["weeks"] == WEEKS
    assert "PRJ-B ranks 1 and PRJ-A ranks 2 under strategy v1" in conflict["rationale"]
    assert "Maria Rossi (res-maria) was asked for more than is available" in conflict["rationale"]
    assert conflict["losers"][0]["fte_granted"] == 0.0

    allocations = (await api.get("/allocations", params={"resource_id": "res-maria"})).json()
    assert [(a["request_id"], a["fte"], a["weeks"]) for a in allocations] == [("REQ-B", 1.0, WEEKS)]
    loser = (await api.get("/requests/REQ-A")).json()
    assert loser["reason"].startswith("Denied: 1 FTE a week of Maria Rossi (res-maria)")
    assert "PRJ-B ranks 1 and PRJ-A ranks 2" in loser["reason"]

    # Each request got exactly one decision, whichever order the events were handled in.
    decisions = await published(
        settings, "resource-allocated", lambda found: len(found) >= 2, what="two decisions"
    )
    assert sorted(d["request_id"] for d in decisions) == ["REQ-A", "REQ-B"]
    event = await published_conflict(settings, conflict["conflict_id"])
    assert [w["project_id"] for w in event["winners"]] == ["PRJ-B"]
    assert [lo["project_id"] for lo in event["losers"]] == ["PRJ-A"]
    assert "PRJ-B ranks 1 and PRJ-A ranks 2" in event["losers"][0]["why"]

    # A conflict's figures cover only the contested weeks; consumers keep the newest figure per
    # request, so the loser's own decision (or change) must come after the conflict.
    def envelopes(records: list[Any]) -> list[dict[str, Any]]:
        return [json.loads(record.value) for record in records]

    conflicts = envelopes(
        await read_topic(settings, f"{settings.topic_prefix}resource-conflict-resolved")
    )
    conflict_time = max(
        c["time"] for c in conflicts if c["data"]["conflict_id"] == conflict["conflict_id"]
    )
    about_loser = [
        e
        for topic in ("resource-allocated", "allocation-changed")
        for e in envelopes(
            await read_topic(settings, f"{settings.topic_prefix}{topic}", at_least=0, timeout=2)
        )
        if e["data"]["request_id"] == "REQ-A"
    ]
    assert max(e["time"] for e in about_loser) > conflict_time


async def test_a_new_ranking_flips_the_winner_and_publishes_the_changes(
    allocation_api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    api = allocation_api
    await given_portfolio(api, enterprise, "PRJ-B", "PRJ-A")
    await enterprise.send("resource-requested", request("REQ-A", "PRJ-A"))
    await enterprise.send("resource-requested", request("REQ-B", "PRJ-B"))
    first = await eventually(
        lambda: conflict_between(api, "REQ-B", "REQ-A"), timeout=45, what="B winning first"
    )

    await enterprise.send("portfolio-reprioritized", ranking(2, "PRJ-A", "PRJ-B"), key="2")

    async def flipped(api: httpx.AsyncClient) -> bool:
        return await statuses(api) == {"REQ-A": ("granted", 1.0), "REQ-B": ("denied", 0.0)}

    await until(api, flipped, "REQ-A granted and REQ-B denied under strategy v2")
    second = await eventually(
        lambda: conflict_between(api, "REQ-A", "REQ-B"), timeout=30, what="A winning now"
    )
    assert "PRJ-A ranks 1 and PRJ-B ranks 2 under strategy v2" in second["rationale"]
    old = (await api.get(f"/conflicts/{first['conflict_id']}")).json()
    assert old["state"] == "closed"
    assert old["closed_reason"].startswith(f"superseded by {second['conflict_id']}")

    changes = await published(
        settings,
        "allocation-changed",
        lambda found: {c["request_id"] for c in found} >= {"REQ-A", "REQ-B"},
        what="both allocations changed",
    )
    by_request = {c["request_id"]: c for c in changes if "strategy v2" in c["cause"]}
    assert by_request["REQ-B"]["before"]["fte_granted"] == 1.0
    assert by_request["REQ-B"]["after"]["fte_granted"] == 0.0
    assert by_request["REQ-A"]["after"]["assignments"] == [
        {"resource_id": "res-maria", "fte": 1.0, "weeks": WEEKS}
    ]
    assert by_request["REQ-B"]["cause"].startswith("portfolio reprioritized under strategy v2")


async def test_a_terminated_project_releases_its_person_to_the_waiting_project(
    allocation_api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    api = allocation_api
    await given_portfolio(api, enterprise, "PRJ-B", "PRJ-A")
    await enterprise.send("resource-requested", request("REQ-B", "PRJ-B"))
    await enterprise.send("resource-requested", request("REQ-A", "PRJ-A"))
    conflict = await eventually(
        lambda: conflict_between(api, "REQ-B", "REQ-A"), timeout=45, what="B holding Maria"
    )

    await enterprise.send(
        "project-lifecycle-changed",
        {"project_id": "PRJ-B", "from": "active", "to": "terminated", "cause": "directive"},
    )

    async def released(api: httpx.AsyncClient) -> bool:
        return await statuses(api) == {"REQ-A": ("granted", 1.0), "REQ-B": ("denied", 0.0)}

    await until(api, released, "Maria released from PRJ-B to PRJ-A")
    assert (await api.get("/conflicts", params={"state": "resolved"})).json() == []
    old = (await api.get(f"/conflicts/{conflict['conflict_id']}")).json()
    assert old["state"] == "closed"
    assert old["closed_reason"].startswith("no longer contested after: PRJ-B moved from active to")
    terminated = (await api.get("/requests/REQ-B")).json()
    assert "is terminated, and projects terminated hold no people" in terminated["reason"]

    changes = await published(
        settings,
        "allocation-changed",
        lambda found: {c["request_id"] for c in found} >= {"REQ-A", "REQ-B"},
        what="the release published",
    )
    gained = next(c for c in changes if c["request_id"] == "REQ-A")
    assert gained["cause"].startswith(
        "PRJ-B moved from active to terminated (directive): its people are released"
    )
    assert gained["after"]["resource_id"] == "res-maria"
    assert gained["after"]["status"] == "granted"


async def test_partial_fulfilment_then_a_holiday_reduces_both_in_that_week(
    allocation_api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    api = allocation_api
    await given_portfolio(api, enterprise, "PRJ-A", "PRJ-B")
    await enterprise.send("resource-requested", request("REQ-A", "PRJ-A", fte=0.6))
    # 96 hours over three weeks at 40 hours per FTE-week: 0.8 FTE a week.
    await enterprise.send(
        "resource-requested", request("REQ-B", "PRJ-B", fte=None, hours=96, priority="high")
    )

    async def shared(api: httpx.AsyncClient) -> bool:
        return await statuses(api) == {"REQ-A": ("granted", 0.6), "REQ-B": ("partial", 0.4)}

    await until(api, shared, "REQ-A 0.6 in full and REQ-B 0.4 of 0.8")
    partial = (await api.get("/requests/REQ-B")).json()
    assert partial["fte_per_week"] == 0.8
    assert partial["reason"].startswith("Partly granted: 0.8 FTE a week of Maria Rossi")
    assert partial["assignments"] == [{"resource_id": "res-maria", "fte": 0.4, "weeks": WEEKS}]

    holiday = {
        "capacity_changes": [
            {
                "starts": (START + timedelta(weeks=1)).isoformat(),
                "ends": (START + timedelta(weeks=1, days=4)).isoformat(),
                "capacity_fte": 0,
                "reason": "holiday",
            }
        ]
    }
    assert (await api.patch("/resources/res-maria", json=holiday)).status_code == 200

    async def on_holiday(api: httpx.AsyncClient) -> bool:
        return await statuses(api) == {
            "REQ-A": ("partial", 0.4),
            "REQ-B": ("partial", 0.2667),
        }

    await until(api, on_holiday, "nothing allocated in the holiday week")
    heatmap = (
        await api.get("/utilisation", params={"from_week": WEEKS[0], "to_week": WEEKS[-1]})
    ).json()
    assert [
        (cell["week"], cell["capacity_fte"], cell["allocated_fte"], cell["utilisation"])
        for cell in heatmap[0]["weeks"]
    ] == [(WEEKS[0], 1.0, 1.0, 1.0), (WEEKS[1], 0.0, 0.0, None), (WEEKS[2], 1.0, 1.0, 1.0)]
    changes = await published(
        settings,
        "allocation-changed",
        lambda found: {c["request_id"] for c in found} >= {"REQ-A", "REQ-B"},
        what="the holiday's changes",
    )
    holiday_changes = {c["request_id"]: c for c in changes if "capacity of res-maria" in c["cause"]}
    assert holiday_changes["REQ-A"]["after"]["weeks"] == [WEEKS[0], WEEKS[2]]
    assert "has no capacity left in those weeks" in holiday_changes["REQ-A"]["cause"]


async def test_a_duplicate_request_has_one_effect(
    allocation_api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    api = allocation_api
    await given_portfolio(api, enterprise, "PRJ-A")
    event_id = await enterprise.send("resource-requested", request("REQ-A", "PRJ-A"))
    await enterprise.send("resource-requested", request("REQ-A", "PRJ-A"), event_id=event_id)
    await enterprise.send("resource-requested", request("REQ-A", "PRJ-A"))  # resent, new id
    await enterprise.send("resource-requested", request("REQ-A", "PRJ-A", fte=0.5))  # reused id

    async def three_dead_letters(api: httpx.AsyncClient) -> bool:
        return len((await api.get("/dead-letters")).json()) == 3

    await until(api, three_dead_letters, "three dead letters")
    reasons = sorted(entry["reason"] for entry in (await api.get("/dead-letters")).json())
    assert reasons[0].startswith(f"duplicate: event '{event_id}'")
    assert reasons[1].startswith("rejected: duplicate request 'REQ-A': already received")
    assert reasons[2].startswith("rejected: request id 'REQ-A' already names another request")

    async def decided_once(api: httpx.AsyncClient) -> bool:
        return await statuses(api) == {"REQ-A": ("granted", 1.0)}

    await until(api, decided_once, "REQ-A granted")
    decisions = await published(
        settings, "resource-allocated", lambda found: len(found) >= 1, what="the decision"
    )
    assert [d["request_id"] for d in decisions] == ["REQ-A"]
    assert decisions[0]["assignments"] == [{"resource_id": "res-maria", "fte": 1.0, "weeks": WEEKS}]


async def test_a_request_just_ahead_of_its_registration_is_first_explained_with_its_standing(
    start_service: ServiceStarter,
    admin_headers: dict[str, str],
    enterprise: Enterprise,
    settings: Settings,
) -> None:
    """The demo's race: PRJ-A's request arrives before allocation learns PRJ-A. Within the
    registration grace the request waits for it, so no decision or conflict ever says "not
    registered" (a generous grace here, so a slow machine cannot make the test depend on time)."""
    service = await start_service(
        "allocation", allocation_resolution_poll_s=0.5, allocation_registration_grace_s=60
    )
    async with httpx.AsyncClient(base_url=service.base_url, headers=admin_headers) as api:
        await given_portfolio(api, enterprise, "PRJ-B")
        await enterprise.send("resource-requested", request("REQ-B", "PRJ-B"))

        async def b_holds_maria(api: httpx.AsyncClient) -> bool:
            return await statuses(api) == {"REQ-B": ("granted", 1.0)}

        await until(api, b_holds_maria, "REQ-B granted")
        await enterprise.send("resource-requested", request("REQ-A", "PRJ-A"))

        async def received(api: httpx.AsyncClient) -> bool:
            return "REQ-A" in await statuses(api)

        await until(api, received, "REQ-A received")
        assert (await statuses(api))["REQ-A"][0] == "open", "decided before its project came"
        await enterprise.send("project-registered", registered("PRJ-A", lifecycle="approved"))

        decisions = await published(
            settings,
            "resource-allocated",
            lambda found: any(d["request_id"] == "REQ-A" for d in found),
            what="REQ-A's decision",
        )
        mine = [d for d in decisions if d["request_id"] == "REQ-A"]
        assert mine[0]["status"] == "denied"
        assert "PRJ-A is approved" in mine[0]["reason"]
        assert all("not registered" not in d["reason"] for d in mine)
        conflict = await eventually(
            lambda: conflict_between(api, "REQ-B", "REQ-A"), timeout=30, what="the conflict"
        )
        assert "not registered" not in conflict["rationale"]
        everything = (await api.get("/conflicts")).json()
        assert all("not registered" not in c["rationale"] for c in everything)


async def test_a_request_that_overtakes_its_projects_registration_is_explained_anew(
    allocation_api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    """Registration, a stage change and a new ranking each change why PRJ-A loses Maria (not
    who gets her): each republishes the conflict and PRJ-A's decision with the current why."""
    api = allocation_api
    await given_portfolio(api, enterprise, "PRJ-B")
    await enterprise.send("resource-requested", request("REQ-B", "PRJ-B"))

    async def b_holds_maria(api: httpx.AsyncClient) -> bool:
        return await statuses(api) == {"REQ-B": ("granted", 1.0)}

    await until(api, b_holds_maria, "REQ-B granted")
    # PRJ-A's request overtakes its project-registered (the demo does this sometimes).
    await enterprise.send("resource-requested", request("REQ-A", "PRJ-A"))

    async def explained(because: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The resolved conflict and REQ-A's newest published decision, once both say
        `because`; the conflict first, as the consumers keep the newest per request."""

        async def current() -> dict[str, Any] | None:
            conflict = await conflict_between(api, "REQ-B", "REQ-A")
            return conflict if conflict and because in conflict["rationale"] else None

        conflict = await eventually(current, timeout=45, what=f"a conflict saying {because!r}")
        decisions = await published(
            settings,
            "resource-allocated",
            lambda found: any(d["request_id"] == "REQ-A" and because in d["reason"] for d in found),
            what=f"REQ-A's decision saying {because!r}",
        )
        newest = [d for d in decisions if d["request_id"] == "REQ-A"][-1]
        assert because in newest["reason"]
        assert (newest["status"], newest["fte_granted"]) == ("denied", 0.0)
        event = await published_conflict(settings, conflict["conflict_id"])
        assert because in event["rationale"]
        assert because in event["losers"][0]["why"]
        stored = (await api.get("/requests/REQ-A")).json()
        assert because in stored["reason"]
        return conflict, newest

    unknown, _ = await explained("PRJ-B is active and PRJ-A is not registered")

    await enterprise.send("project-registered", registered("PRJ-A", lifecycle="approved"))
    approved, decision = await explained("PRJ-B is active and PRJ-A is approved")
    assert "not registered" not in decision["reason"]
    assert "not registered" not in approved["rationale"]
    old = (await api.get(f"/conflicts/{unknown['conflict_id']}")).json()
    assert old["state"] == "closed"
    assert old["closed_reason"].startswith(
        f"superseded by {approved['conflict_id']} (PRJ-A registered"
    )

    await enterprise.send(
        "project-lifecycle-changed",
        {"project_id": "PRJ-A", "from": "approved", "to": "active", "cause": "gate passed"},
    )
    await explained("PRJ-B ranks 1 under strategy v1; PRJ-A is not ranked")

    await enterprise.send("portfolio-reprioritized", ranking(2, "PRJ-B", "PRJ-A"), key="2")
    await explained("PRJ-B ranks 1 and PRJ-A ranks 2 under strategy v2")
    # Who holds Maria never changed: no allocation-changed was needed for any of it.
    assert await statuses(api) == {"REQ-A": ("denied", 0.0), "REQ-B": ("granted", 1.0)}


async def test_a_registration_handled_after_the_projects_stage_change_keeps_the_newer_stage(
    allocation_api: httpx.AsyncClient, enterprise: Enterprise
) -> None:
    # A directive paused a project just registered: the two topics may be handled either way
    # round, and the registration's "active" must not undo the pause (seen after `pmo demo`).
    await enterprise.send(
        "project-lifecycle-changed",
        {"project_id": "PRJ-P", "from": "active", "to": "on_hold", "cause": "directive"},
    )

    async def stage_of(project_id: str) -> str | None:
        found = (await allocation_api.get("/projects")).json()
        return next((p["lifecycle"] for p in found if p["project_id"] == project_id), None)

    await eventually(lambda: stage_of("PRJ-P"), what="the pause taken")
    await enterprise.send("project-registered", registered("PRJ-P", key_project=True))
    await eventually(lambda: _key_project(allocation_api, "PRJ-P"), what="the registration taken")
    assert await stage_of("PRJ-P") == "on_hold"


async def _key_project(api: httpx.AsyncClient, project_id: str) -> bool:
    found = (await api.get("/projects")).json()
    return any(p["project_id"] == project_id and p["key_project"] for p in found)
