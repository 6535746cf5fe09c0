"""When a project is given a PMO expert, on the fake unit of work (no broker, no database):
key projects red at once, amber after the tolerated time, once per at-risk episode, the expert
proposed with why. The domain's rules are in `test_intervention_rules.py`; the events, the
clock and the SQL end to end in `test_intervention_rules_running.py`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.allocation.adapters.tables import ProjectHealthRow, ProjectStandingRow
from services.allocation.domain.decisions import PoolMember
from services.allocation.service_layer.interventions import propose_if_needed
from shared.events.contracts import InterventionProposed
from shared.settings import Settings
from tests.fakes.allocation import FakeAllocationUnitOfWork, FakePortfolioRepository

pytestmark = pytest.mark.fast

NOW = datetime.now(UTC)
SETTINGS = Settings(allocation_intervention_amber_after=timedelta(days=7))


def portfolio(*, key: bool = True, lifecycle: str = "active") -> FakeAllocationUnitOfWork:
    """One project, and one PMO expert in schedule recovery."""
    return FakeAllocationUnitOfWork(
        SETTINGS,
        FakePortfolioRepository(
            people=[PoolMember("exp-ana", "Ana", ("project-management",), 1.0)],
            standings=[
                ProjectStandingRow(project_id="PRJ-1", key_project=key, lifecycle=lifecycle, rank=1)
            ],
            experts={"exp-ana": ["schedule-recovery"]},
        ),
    )


def health(state: str, *, at_risk_for: timedelta = timedelta(days=1)) -> ProjectHealthRow:
    return ProjectHealthRow(
        project_id="PRJ-1",
        health=state,
        reason_codes=["schedule"],
        reasons=["SPI 0.70 is below 0.90"],
        at_risk_since=NOW - at_risk_for,
        assessed_at=NOW,
    )


async def test_a_red_key_project_is_proposed_the_expert_its_worst_reason_wants() -> None:
    uow = portfolio()
    assert await propose_if_needed(uow, health("red"), NOW)

    [proposed] = uow.published(InterventionProposed)
    assert (proposed.project_id, proposed.origin, proposed.specialty) == (
        "PRJ-1",
        "risk",
        "schedule-recovery",
    )
    assert proposed.expert_id == "exp-ana"
    assert proposed.reasons == ["key project red", "SPI 0.70 is below 0.90"]
    assert (proposed.fte, proposed.start) == (SETTINGS.allocation_intervention_fte, NOW.date())


@pytest.mark.parametrize(
    ("state", "at_risk_for", "key", "lifecycle"),
    [
        ("red", timedelta(days=1), False, "active"),  # not a key project
        ("red", timedelta(days=1), True, "on_hold"),  # holds no people
        ("amber", timedelta(days=6), True, "active"),  # amber, not for long enough yet
        ("green", timedelta(0), True, "active"),
    ],
)
async def test_no_expert_is_proposed_where_the_rule_does_not_call_for_one(
    state: str, at_risk_for: timedelta, key: bool, lifecycle: str
) -> None:
    uow = portfolio(key=key, lifecycle=lifecycle)
    assert not await propose_if_needed(uow, health(state, at_risk_for=at_risk_for), NOW)
    assert uow.events == []
    assert uow.interventions.by_id == {}


async def test_amber_too_long_is_proposed_once_per_episode_and_again_in_a_new_one() -> None:
    uow = portfolio()
    lasting = health("amber", at_risk_for=timedelta(days=8))
    assert await propose_if_needed(uow, lasting, NOW)
    [proposed] = uow.published(InterventionProposed)
    assert proposed.reasons[0] == "key project amber for longer than the PMO tolerates"

    # The same episode, even once its proposal is declined, is not answered twice.
    assert not await propose_if_needed(uow, lasting, NOW + timedelta(hours=1))
    [row] = uow.interventions.by_id.values()
    row.state = "declined"
    assert not await propose_if_needed(uow, lasting, NOW + timedelta(hours=2))

    # A new episode (the project recovered, then fell back) is.
    again = health("red", at_risk_for=timedelta(hours=1))
    assert await propose_if_needed(uow, again, NOW)
    assert len(uow.published(InterventionProposed)) == 2
