"""The intervention rules on their own: which specialty a risk wants, when a project needs an
expert, and who is proposed when experts are scarce (the allocation's priority rules)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.allocation.domain.decisions import PoolMember
from services.allocation.domain.interventions import (
    Proposal,
    needs_intervention,
    staff,
    wanted_specialty,
)
from services.allocation.domain.pool import parse_pool_csv, specialties_of
from services.allocation.domain.priority import ProjectStanding
from services.allocation.domain.resolution import AllocationState

pytestmark = pytest.mark.fast

MONDAY = date(2027, 1, 4)  # 2027-W01
NOW = datetime(2027, 1, 4, 9, tzinfo=UTC)


def test_the_specialty_answers_the_worst_reason_an_expert_can_help_with() -> None:
    assert wanted_specialty(["schedule", "cost"], ["cost-control", "schedule-recovery"]) == (
        "schedule-recovery"
    )
    # Nobody recovers schedules: the cost reason's specialty is the one an expert has.
    assert wanted_specialty(["schedule", "cost"], ["cost-control"]) == "cost-control"
    # Nobody has either: the worst reason's specialty is still what is wanted.
    assert wanted_specialty(["cost"], ["agile-coaching"]) == "cost-control"
    assert wanted_specialty(["something_new"], []) == "project-recovery"
    assert specialties_of([" Schedule Recovery", "schedule-recovery", "Cost control"]) == [
        "schedule-recovery",
        "cost-control",
    ]


def test_key_projects_red_at_once_amber_only_after_the_configured_time() -> None:
    week = timedelta(days=7)

    def needs(health: str, *, key: bool = True, since_days: float | None = 1) -> bool:
        since = NOW - timedelta(days=since_days) if since_days is not None else None
        return needs_intervention(
            health=health,
            key_project=key,
            holds_people=True,
            at_risk_since=since,
            now=NOW,
            amber_after=week,
        )

    assert needs("red")
    assert not needs("red", key=False)
    assert not needs("amber", since_days=6)
    assert needs("amber", since_days=8)
    assert not needs("green", since_days=None)
    assert not needs_intervention(
        health="red",
        key_project=True,
        holds_people=False,
        at_risk_since=NOW,
        now=NOW,
        amber_after=week,
    )


def test_the_scarce_expert_goes_to_the_more_important_project() -> None:
    state = AllocationState(
        current_week="2027-W01",
        people={
            "exp-ana": PoolMember("exp-ana", "Ana", ("project-management",), 1.0),
            "dev-bo": PoolMember("dev-bo", "Bo", ("schedule-recovery",), 1.0),
        },
        requests={},
        standings={
            project_id: ProjectStanding(
                project_id, lifecycle="active", key_project=True, rank=rank, portfolio_size=2
            )
            for project_id, rank in (("PRJ-LOW", 2), ("PRJ-TOP", 1))
        },
        allocations={},
    )
    end = MONDAY + timedelta(days=25)
    proposals = [
        Proposal("INT-low", "PRJ-LOW", "schedule-recovery", 1.0, MONDAY, end),
        Proposal("INT-top", "PRJ-TOP", "schedule-recovery", 1.0, MONDAY, end),
    ]
    staffed = staff(
        state,
        proposals,
        {"exp-ana": ["schedule-recovery"]},
        hours_per_fte_week=40,
        move_penalty=0.05,
        time_limit=5,
    )
    # Bo has the word as a skill but is not a PMO expert: only Ana may be proposed.
    assert staffed["INT-top"].expert_id == "exp-ana"
    assert staffed["INT-top"].fte == 1.0
    assert staffed["INT-low"].expert_id is None
    assert "every PMO expert in 'schedule-recovery'" in staffed["INT-low"].why
    assert "PRJ-TOP ranks 1 and PRJ-LOW ranks 2" in staffed["INT-low"].why


def test_the_pool_file_may_mark_experts_with_specialties() -> None:
    entries, errors = parse_pool_csv(
        "resource_id,name,skills,capacity_fte,specialties\n"
        "exp-ana,Ana,project-management,1,Schedule Recovery;cost-control\n"
        "dev-bo,Bo,python,1,\n"
    )
    assert errors == []
    assert [entry.specialties for entry in entries] == [
        ("schedule-recovery", "cost-control"),
        (),
    ]
    # Without the column, specialties are not touched (None), not emptied.
    entries, errors = parse_pool_csv("resource_id,name,skills,capacity_fte\nx,X,a,1\n")
    assert errors == []
    assert entries[0].specialties is None
