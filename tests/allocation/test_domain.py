"""Allocation's pure rules: weeks and hours, capacity over time, the CSV pool, priority, and the
words of a decision."""

from __future__ import annotations

from datetime import date

import pytest

from services.allocation.domain.decisions import OpenRequest, PoolMember
from services.allocation.domain.pool import CapacityChange, parse_pool_csv, weekly_capacity
from services.allocation.domain.priority import ProjectStanding, comparison, priority_levels
from services.allocation.domain.requests import (
    hint_level,
    planned_weeks,
    week_ranges,
    weekly_demand,
    weeks_between,
)
from services.allocation.domain.resolution import AllocationState, request_weights, resolve

MONDAY = date(2027, 1, 4)  # 2027-W01


def test_weeks_hours_and_hints() -> None:
    assert weeks_between(date(2026, 12, 30), date(2027, 1, 11)) == [
        "2026-W53",
        "2027-W01",
        "2027-W02",
    ]
    assert planned_weeks(["2026-W52", "2026-W53", "2027-W01"], "2026-W53") == [
        "2026-W53",
        "2027-W01",
    ]
    assert weekly_demand(None, 120, 3) == 1.0
    assert weekly_demand(None, 120, 3, hours_per_fte_week=37.5) == 1.0667
    assert weekly_demand(0.5, None, 3) == 0.5
    assert [hint_level(h) for h in ("critical", "HIGH", "1", "3", "5", None, "whenever")] == [
        4,
        3,
        4,
        2,
        1,
        2,
        2,
    ]
    assert week_ranges(["2027-W03", "2026-W52", "2026-W53", "2027-W01", "2027-W05"]) == (
        "2026-W52 to 2027-W01, 2027-W03, 2027-W05"
    )


def test_capacity_per_week_follows_holidays_part_time_and_leaving() -> None:
    changes = [
        CapacityChange(starts=date(2027, 1, 1), capacity_fte=0.6, reason="part time"),
        # A two-day holiday inside the part-time period: the later-starting change wins.
        CapacityChange(starts=date(2027, 1, 11), ends=date(2027, 1, 12), capacity_fte=0),
        CapacityChange(starts=date(2027, 1, 28), capacity_fte=0, reason="leaving"),
    ]
    assert weekly_capacity(1.0, changes, "2026-W52") == 1.0
    assert weekly_capacity(1.0, changes, "2027-W01") == 0.6
    assert weekly_capacity(1.0, changes, "2027-W02") == pytest.approx(0.36)
    assert weekly_capacity(1.0, changes, "2027-W04") == pytest.approx(0.36)  # gone from Thursday
    assert weekly_capacity(1.0, changes, "2027-W05") == 0.0


def test_pool_csv_is_read_with_every_problem_named_by_line() -> None:
    entries, problems = parse_pool_csv(
        "\ufeffResource_ID,name,skills,capacity_fte\n"
        "ada,Ada Lovelace,architect; Python ;python,1\n"
        '"kim","Lee, Kim",tester,0.5\n'
        "\n"
        "bad,,,-1\n"
        "ada,Again,x,1\n"
        "short,line\n"
        "nan,Not A Number,x,nan\n"
    )
    assert [(e.line, e.resource_id, e.name, e.skills, e.capacity_fte) for e in entries] == [
        (2, "ada", "Ada Lovelace", ("architect", "Python"), 1.0),
        (3, "kim", "Lee, Kim", ("tester",), 0.5),
    ]
    assert problems == [
        "line 5: name is empty; skills is empty (list them separated by ';'); capacity_fte must "
        "be between 0 and 1000 (got '-1')",
        "line 6: resource_id 'ada' is already on line 2",
        "line 7: 2 fields, expected 4 (resource_id,name,skills,capacity_fte); quote a value that "
        "contains a comma",
        "line 8: capacity_fte must be between 0 and 1000 (got 'nan')",
    ]
    assert parse_pool_csv("") == (
        [],
        ["line 1: the file is empty; expected the header resource_id,name,skills,capacity_fte"],
    )
    assert parse_pool_csv("id,name\n")[1] == [
        "line 1: the header must name the columns resource_id,name,skills,capacity_fte "
        "(got id,name)"
    ]


def test_priority_is_lifecycle_then_key_project_then_rank() -> None:
    active_ranked_2 = ProjectStanding("A", lifecycle="active", rank=2, portfolio_size=3)
    active_key_unranked = ProjectStanding("K", lifecycle="active", key_project=True)
    approved_ranked_1 = ProjectStanding("P", lifecycle="approved", rank=1, portfolio_size=3)
    unregistered = ProjectStanding("U")
    keys = [s.priority_key() for s in (active_ranked_2, active_key_unranked, approved_ranked_1)]
    levels = priority_levels([*keys, unregistered.priority_key()])
    assert [levels[s.priority_key()] for s in (unregistered, approved_ranked_1)] == [1, 2]
    assert levels[active_key_unranked.priority_key()] > levels[active_ranked_2.priority_key()]
    assert comparison(active_ranked_2, approved_ranked_1).startswith(
        "A is active and P is approved: running projects keep their people"
    )
    assert comparison(active_key_unranked, active_ranked_2) == "K is a key project and A is not"
    assert not ProjectStanding("T", lifecycle="terminated").holds_people
    assert (
        ProjectStanding(
            "A",
            name="Atlas",
            lifecycle="active",
            key_project=True,
            rank=1,
            score=0.82,
            portfolio_size=4,
        ).describe()
        == 'A "Atlas" (active, key project, rank 1 of 4, score 0.82)'
    )


def _request(request_id: str, project_id: str, fte: float, arrival: int) -> OpenRequest:
    weeks = ("2027-W01", "2027-W02")
    return OpenRequest(
        request_id=request_id,
        project_id=project_id,
        skill="Architect",
        fte=fte,
        start=MONDAY,
        end=date(2027, 1, 15),
        weeks=weeks,
        planned=weeks,
        named_resource=None,
        arrival=arrival,
    )


def test_a_resolution_explains_each_decision_and_the_conflict() -> None:
    state = AllocationState(
        current_week="2027-W01",
        people={"maria": PoolMember("maria", "Maria Rossi", ("architect",), 1.0)},
        requests={
            "R-LOW": _request("R-LOW", "LOW", 1.0, 0),
            "R-HIGH": _request("R-HIGH", "HIGH", 0.7, 1),
            "R-GONE": _request("R-GONE", "GONE", 1.0, 2),
        },
        standings={
            "LOW": ProjectStanding("LOW", lifecycle="active", rank=2, portfolio_size=2),
            "HIGH": ProjectStanding(
                "HIGH", lifecycle="active", rank=1, portfolio_size=2, strategy_version=4
            ),
            "GONE": ProjectStanding("GONE", lifecycle="on_hold", rank=None),
        },
        allocations={},
    )
    assert request_weights(state)["R-GONE"] == 0.0
    resolution = resolve(state, None)
    high, low, gone = (resolution.outcomes[r] for r in ("R-HIGH", "R-LOW", "R-GONE"))
    assert (high.status, high.fte_granted) == ("granted", 0.7)
    assert high.reason == "Granted in full: Maria Rossi (maria) 0.7 FTE in 2027-W01 to 2027-W02."
    assert (low.status, low.fte_granted) == ("partial", 0.3)
    assert low.reason.startswith(
        "Partly granted: 1 FTE a week of everyone with the skill 'Architect' for 2027-W01 to "
        "2027-W02; allocated Maria Rossi (maria) 0.3 FTE in 2027-W01 to 2027-W02. Short in "
        "2027-W01 to 2027-W02 because"
    )
    assert "HIGH ranks 1 and LOW ranks 2 under strategy v4" in low.reason
    assert gone.status == "denied"
    assert "is on hold, and projects on hold hold no people" in gone.reason
    assert resolution.decided == ("R-GONE", "R-HIGH", "R-LOW")
    [conflict] = resolution.conflicts
    assert conflict.resource_id == "maria"
    assert [(d.request_id, d.fte_granted) for d in conflict.winners] == [("R-HIGH", 0.7)]
    assert [(d.request_id, d.fte_granted) for d in conflict.losers] == [("R-LOW", 0.3)]
    assert conflict.rationale.startswith(
        "Maria Rossi (maria) was asked for more than is available in 2027-W01 to 2027-W02: "
        "1.7 FTE a week requested against 1 FTE."
    )

    # Re-resolving the same state changes nothing and yields the same conflict id.
    again = resolve(
        AllocationState(
            current_week=state.current_week,
            people=state.people,
            requests={
                r: OpenRequest(**{**vars(q), "decided": True}) for r, q in state.requests.items()
            },
            standings=state.standings,
            allocations=resolution.allocations,
        ),
        None,
    )
    assert again.changed == ()
    assert again.decided == ()
    assert [c.conflict_id for c in again.conflicts] == [conflict.conflict_id]
