"""Allocation's pure rules: weeks and hours, capacity over time, the CSV pool, priority, and the
words of a decision."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.allocation.domain.decisions import Assignment, OpenRequest, PoolMember, plan_request
from services.allocation.domain.pool import (
    CapacityChange,
    capacity_by_week,
    capacity_on,
    default_kind,
    is_capacity_csv,
    parse_capacity_csv,
    parse_pool_csv,
    weekly_capacity,
)
from services.allocation.domain.priority import ProjectStanding, comparison, priority_levels
from services.allocation.domain.requests import (
    daily_fte,
    demand_by_week,
    hint_level,
    planned_weeks,
    week_ranges,
    weeks_between,
    working_days_by_week,
)
from services.allocation.domain.resolution import AllocationState, request_weights, resolve

pytestmark = pytest.mark.fast

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
    assert daily_fte(None, 120, 15) == 1.0
    assert daily_fte(None, 120, 15, hours_per_fte_week=37.5) == 1.0667
    assert daily_fte(0.5, None, 15) == 0.5
    assert daily_fte(None, 16, 0) == 0.0
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
        "and may name specialties (got id,name)"
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


# --- dated capacity changes compose (issue 12, item 5) -------------------------------------------

LEAVE = CapacityChange(starts=date(2027, 1, 4), ends=date(2027, 1, 22), capacity_fte=0)
HALF_TIME = CapacityChange(starts=date(2027, 1, 11), capacity_fte=0.5, reason="part time")


def test_a_contract_change_inside_a_leave_does_not_end_it() -> None:
    weeks = ["2026-W53", "2027-W01", "2027-W02", "2027-W03", "2027-W04"]
    expected = {"2026-W53": 1.0, "2027-W01": 0.0, "2027-W02": 0.0, "2027-W03": 0.0}
    # Whatever order the changes were entered in.
    for changes in ([LEAVE, HALF_TIME], [HALF_TIME, LEAVE]):
        assert capacity_by_week(1.0, changes, weeks) == {**expected, "2027-W04": 0.5}
        assert capacity_on(1.0, changes, date(2027, 1, 22)) == 0.0
        assert capacity_on(1.0, changes, date(2027, 1, 25)) == 0.5


def test_absences_and_contract_changes_compose_before_inside_and_after() -> None:
    # A contract change before the leave, and one after it: the leave still holds throughout.
    before = CapacityChange(starts=date(2026, 12, 1), capacity_fte=0.8)
    after = CapacityChange(starts=date(2027, 2, 1), capacity_fte=1.0, reason="back to full time")
    changes = [before, LEAVE, after]
    assert capacity_by_week(1.0, changes, ["2026-W53", "2027-W02", "2027-W04", "2027-W05"]) == {
        "2026-W53": 0.8,
        "2027-W02": 0.0,
        "2027-W04": 0.8,
        "2027-W05": 1.0,
    }
    # Overlapping absences: the smaller cap wins on the days they share, each holds alone
    # elsewhere, and the end of one does not end the other.
    course = CapacityChange(starts=date(2027, 1, 18), ends=date(2027, 1, 29), capacity_fte=0.5)
    assert capacity_by_week(1.0, [LEAVE, course], ["2027-W03", "2027-W04"]) == {
        "2027-W03": 0.0,
        "2027-W04": 0.5,
    }
    # A reduced absence caps the pattern; a pattern already below the cap is left as it is.
    assert capacity_by_week(1.0, [course, HALF_TIME], ["2027-W02", "2027-W04"]) == {
        "2027-W02": 0.5,
        "2027-W04": 0.5,
    }
    low = CapacityChange(starts=date(2027, 1, 25), capacity_fte=0.4)
    assert weekly_capacity(1.0, [course, low], "2027-W04") == 0.4
    # A partial week of leave: Monday and Tuesday off in a 0.5 week leave 3 x 0.5 / 5.
    two_days = CapacityChange(starts=date(2027, 1, 25), ends=date(2027, 1, 26), capacity_fte=0)
    assert weekly_capacity(1.0, [HALF_TIME, two_days], "2027-W04") == 0.3
    # Contract changes among themselves: the newest arrangement applies, a bounded one reverts.
    secondment = CapacityChange(
        starts=date(2027, 1, 18), ends=date(2027, 1, 29), capacity_fte=1.0, kind="contract"
    )
    assert capacity_by_week(0.6, [secondment], ["2027-W02", "2027-W03", "2027-W05"]) == {
        "2027-W02": 0.6,
        "2027-W03": 1.0,
        "2027-W05": 0.6,
    }


def test_a_change_without_a_kind_is_an_absence_when_it_ends() -> None:
    assert LEAVE.effective_kind == "absence"
    assert HALF_TIME.effective_kind == "contract"
    assert default_kind(None) == "contract"
    assert default_kind(date(2027, 1, 22)) == "absence"


def test_capacity_csv_is_read_with_kinds_and_every_problem_named_by_line() -> None:
    changes, problems = parse_capacity_csv(
        "resource_id,starts,ends,capacity_fte,kind,reason\n"
        "ada,2027-01-04,2027-01-22,0,,leave\n"
        "ada,2027-01-11,,0.5,contract,part time\n"
        "kim,2027-02-01,2027-03-31,0.8,Contract,\n"
        "bad,2027-13-01,,x,sometimes,\n"
        "bad,2027-02-02,2027-02-01,1,,\n"
    )
    assert changes == {
        "ada": [
            CapacityChange(date(2027, 1, 4), 0.0, date(2027, 1, 22), "leave", "absence"),
            CapacityChange(date(2027, 1, 11), 0.5, None, "part time", "contract"),
        ],
        "kim": [CapacityChange(date(2027, 2, 1), 0.8, date(2027, 3, 31), "", "contract")],
    }
    assert problems == [
        "line 5: starts must be a date like 2027-01-04 (got '2027-13-01'); capacity_fte must be "
        "a number like 1 or 0.5 (got 'x'); kind must be absence or contract (got 'sometimes')",
        "line 6: ends 2027-02-01 is before starts 2027-02-02",
    ]
    # Only the three columns a change needs are required.
    minimal, none = parse_capacity_csv("resource_id,starts,capacity_fte\nada,2027-03-01,0\n")
    assert (minimal, none) == (
        {"ada": [CapacityChange(date(2027, 3, 1), 0.0, kind="contract")]},
        [],
    )
    assert is_capacity_csv("\ufeffresource_id,starts,capacity_fte\n")
    assert not is_capacity_csv("resource_id,name,skills,capacity_fte\n")
    assert parse_capacity_csv("resource_id,name\n")[1] == [
        "line 1: the header must name the columns resource_id,starts,capacity_fte and may name "
        "ends, kind, reason (got resource_id,name)"
    ]


def test_a_request_inside_a_leave_gets_nothing_even_after_a_contract_change() -> None:
    person = PoolMember("ada", "Ada", ("architect",), 1.0, (LEAVE, HALF_TIME))
    asked = plan_request(
        request_id="R",
        project_id="P",
        skill="architect",
        fte=1.0,
        hours=None,
        start=date(2027, 1, 11),
        end=date(2027, 1, 29),
        current_week="2027-W01",
        hours_per_fte_week=40,
    )
    state = AllocationState("2027-W01", {"ada": person}, {"R": asked}, {}, {})
    outcome = resolve(state, None).outcomes["R"]
    assert outcome.status == "partial"
    assert outcome.assignments == (Assignment("ada", 0.5, ("2027-W04",)),)
    assert "Short in 2027-W02 to 2027-W04 because" in outcome.reason


# --- demand is spread over the request's working days (issue 12, item 6) -------------------------


def test_hours_are_spread_over_working_days_not_weeks() -> None:
    saturday, friday = date(2026, 12, 5), date(2026, 12, 11)
    assert working_days_by_week(saturday, friday) == {"2026-W50": 5}
    assert weeks_between(saturday, friday) == ["2026-W49", "2026-W50"]
    assert demand_by_week(None, 40, saturday, friday) == {"2026-W50": 1.0}
    # Mid-week start and end: Wednesday to the next Tuesday, 3 + 2 working days.
    wednesday, tuesday = date(2026, 12, 9), date(2026, 12, 15)
    assert demand_by_week(None, 40, wednesday, tuesday) == {"2026-W50": 0.6, "2026-W51": 0.4}
    assert demand_by_week(1.0, None, wednesday, tuesday) == {"2026-W50": 0.6, "2026-W51": 0.4}
    # An FTE request over whole weeks asks for that FTE in each.
    assert demand_by_week(0.5, None, date(2026, 12, 7), date(2026, 12, 18)) == {
        "2026-W50": 0.5,
        "2026-W51": 0.5,
    }
    # 120 hours from a Thursday over 15 working days: 0.4, 1.0, 1.0, 0.6 at 8 hours a day.
    weeks = demand_by_week(None, 120, date(2026, 12, 10), date(2026, 12, 30))
    assert weeks == {"2026-W50": 0.4, "2026-W51": 1.0, "2026-W52": 1.0, "2026-W53": 0.6}
    assert sum(weeks.values()) * 40 == pytest.approx(120)
    # At 37.5 hours per FTE-week, 37.5 hours over a week's working days is 1.0 FTE.
    assert demand_by_week(None, 37.5, saturday, friday, hours_per_fte_week=37.5) == {
        "2026-W50": 1.0
    }
    # Weekends only: no working day, no week, nothing asked.
    assert demand_by_week(None, 16, date(2026, 12, 5), date(2026, 12, 6)) == {}


def test_a_request_is_granted_week_by_week_what_its_working_days_ask() -> None:
    people = {"ada": PoolMember("ada", "Ada", ("architect",), 1.0)}

    def plan(request_id: str, **asked: Any) -> OpenRequest:
        fields: dict[str, Any] = {"fte": None, "hours": None, **asked}
        return plan_request(
            request_id=request_id,
            project_id="P",
            skill="architect",
            current_week="2026-W49",
            hours_per_fte_week=40,
            **fields,
        )

    hours = plan("H", hours=40, start=date(2026, 12, 5), end=date(2026, 12, 11))
    assert hours.weeks == ("2026-W50",)
    outcome = resolve(AllocationState("2026-W49", people, {"H": hours}, {}, {}), None).outcomes["H"]
    assert (outcome.status, outcome.fte_requested, outcome.fte_granted) == ("granted", 1.0, 1.0)
    assert outcome.assignments == (Assignment("ada", 1.0, ("2026-W50",)),)

    # Wednesday to Tuesday at 1.0 FTE next to a full-week 0.4: both fit, 0.6 + 0.4 then 0.4.
    mid = plan("M", fte=1.0, start=date(2026, 12, 9), end=date(2026, 12, 15))
    full = plan("F", fte=0.4, start=date(2026, 12, 7), end=date(2026, 12, 18))
    state = AllocationState("2026-W49", people, {"M": mid, "F": full}, {}, {})
    resolution = resolve(state, None)
    assert resolution.allocations == {
        ("M", "ada", "2026-W50"): 0.6,
        ("M", "ada", "2026-W51"): 0.4,
        ("F", "ada", "2026-W50"): 0.4,
        ("F", "ada", "2026-W51"): 0.4,
    }
    assert resolution.outcomes["M"].status == "granted"
    assert resolution.outcomes["M"].fte_granted == 1.0
    assert resolution.outcomes["M"].reason == (
        "Granted in full: Ada (ada) 0.6 FTE in 2026-W50, Ada (ada) 0.4 FTE in 2026-W51."
    )
    assert resolution.conflicts == ()

    away = {
        "ada": PoolMember(
            "ada", "Ada", ("architect",), 1.0, (CapacityChange(date(2026, 12, 1), 0),)
        )
    }
    outcome = resolve(AllocationState("2026-W49", away, {"M": mid}, {}, {}), None).outcomes["M"]
    assert outcome.reason == (
        "Denied: 1 FTE a week of everyone with the skill 'architect' for 2026-W50 to 2026-W51 "
        "(0.6 FTE in 2026-W50, 0.4 FTE in 2026-W51: the weeks it covers in part); allocated "
        "nothing. Short in 2026-W50 to 2026-W51 because everyone with the skill 'architect' has "
        "no capacity left in those weeks (holidays, part time or leaving)."
    )

    weekend = plan("W", hours=16, start=date(2026, 12, 5), end=date(2026, 12, 6))
    state = AllocationState("2026-W49", people, {"W": weekend}, {}, {})
    outcome = resolve(state, None).outcomes["W"]
    assert (outcome.status, outcome.fte_granted, outcome.weeks) == ("denied", 0.0, ())
    assert outcome.reason == (
        "Denied: 2026-12-05 to 2026-12-06 holds no working day (Monday to Friday), and people "
        "are planned on working days only; ask for the working days the work needs."
    )


def test_what_a_request_held_in_a_week_without_its_working_days_is_released() -> None:
    # Planned before demand was counted on working days: 0.5 FTE in the weekend-only 2026-W49.
    people = {"ada": PoolMember("ada", "Ada", ("architect",), 1.0)}
    held = plan_request(
        request_id="H",
        project_id="P",
        skill="architect",
        fte=None,
        hours=40,
        start=date(2026, 12, 5),
        end=date(2026, 12, 11),
        current_week="2026-W49",
        hours_per_fte_week=40,
        decided=True,
    )
    before = {("H", "ada", "2026-W49"): 0.5, ("H", "ada", "2026-W50"): 0.5}
    resolution = resolve(AllocationState("2026-W49", people, {"H": held}, {}, before), None)
    assert resolution.allocations == {("H", "ada", "2026-W50"): 1.0}
    [change] = resolution.changed
    assert change.after.assignments == (Assignment("ada", 1.0, ("2026-W50",)),)


def test_a_part_week_request_gets_only_what_its_own_days_hold() -> None:
    # Ada is away Monday to Wednesday of 2027-W02: the week holds 0.4 FTE, all on Thu and Fri.
    away = CapacityChange(starts=date(2027, 1, 11), ends=date(2027, 1, 13), capacity_fte=0)
    people = {"ada": PoolMember("ada", "Ada", ("architect",), 1.0, (away,))}

    def plan(request_id: str, start: date, end: date, named: str | None) -> OpenRequest:
        return plan_request(
            request_id=request_id,
            project_id=f"P-{request_id}",
            skill="architect",
            fte=1.0,
            hours=None,
            start=start,
            end=end,
            current_week="2027-W01",
            hours_per_fte_week=40,
            named_resource=named,
            arrival=0 if request_id == "EARLY" else 1,  # first come, it would take her
        )

    for named in ("ada", None):  # naming her, or asking for the skill
        early = plan("EARLY", date(2027, 1, 11), date(2027, 1, 13), named)
        late = plan("LATE", date(2027, 1, 14), date(2027, 1, 15), named)
        state = AllocationState("2027-W01", people, {"EARLY": early, "LATE": late}, {}, {})
        resolution = resolve(state, None)
        assert resolution.allocations == {("LATE", "ada", "2027-W02"): 0.4}
        outcome = resolution.outcomes["EARLY"]
        assert (outcome.status, outcome.fte_granted) == ("denied", 0.0)
        assert outcome.reason.endswith(
            "has no capacity left in those weeks (holidays, part time or leaving)."
        )
        assert resolution.outcomes["LATE"].status == "granted"
        assert resolution.conflicts == ()  # LATE took nothing EARLY could have had

    # Asking for the skill, the part week goes to whoever is there on its days.
    bob = PoolMember("bob", "Bob", ("architect",), 1.0)
    state = AllocationState(
        "2027-W01", {**people, "bob": bob}, {"EARLY": early, "LATE": late}, {}, {}
    )
    allocations = resolve(state, None).allocations
    assert {slot: fte for slot, fte in allocations.items() if slot[0] == "EARLY"} == {
        ("EARLY", "bob", "2027-W02"): 0.6
    }
    assert sum(fte for slot, fte in allocations.items() if slot[0] == "LATE") == 0.4


def test_a_shortage_names_each_rival_project_once_highest_priority_first() -> None:
    # Two architects, both taken by three projects above LOW (one of them twice); LOW gets
    # nothing. Its reason names each rival project once, in priority order, with the rule that
    # puts it ahead.
    people = {
        "maria": PoolMember("maria", "Maria Rossi", ("architect",), 1.0),
        "ines": PoolMember("ines", "Ines Alves", ("Architect",), 1.0),
    }
    ranked = {"KEY": 4, "A": 2, "B": 3, "LOW": 1}
    standings = {
        project: ProjectStanding(project, lifecycle="active", rank=5 - level, portfolio_size=4)
        for project, level in ranked.items()
    }
    standings["KEY"] = ProjectStanding("KEY", lifecycle="active", key_project=True)
    state = AllocationState(
        current_week="2027-W01",
        people=people,
        requests={
            "R-LOW": _request("R-LOW", "LOW", 1.0, 0),
            "R-A": _request("R-A", "A", 0.5, 1),
            "R-B1": _request("R-B1", "B", 0.5, 2),
            "R-B2": _request("R-B2", "B", 0.5, 3),
            "R-KEY": _request("R-KEY", "KEY", 0.5, 4),
        },
        standings=standings,
        allocations={},
    )
    low = resolve(state, None).outcomes["R-LOW"]
    assert low.status == "denied"
    cause = low.reason.split(" because ", 1)[1]
    assert cause == (
        "everyone with the skill 'Architect' is allocated in those weeks to work of higher (or "
        "equal) portfolio priority than LOW (active, rank 4 of 4): "
        "KEY (active, key project, not ranked): KEY is a key project and LOW is not; "
        "B (active, rank 2 of 4): B ranks 2 and LOW ranks 4; "
        "A (active, rank 3 of 4): A ranks 3 and LOW ranks 4."
    )
