"""The dashboard's pure rules: portfolio summary, chart series, the combined what-if, live events,
and the sign-in page's redirect target. No browser, broker or database needed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.dashboard.adapters.live import live_event
from services.dashboard.domain import portfolio, whatif
from services.dashboard.entrypoints.app import _draft_from_form, _safe_next
from services.dashboard.entrypoints.auth import Refused

pytestmark = pytest.mark.fast


def _project(
    pid: str, currency: str = "EUR", budget: float = 100.0, **extra: Any
) -> dict[str, Any]:
    return {
        "project_id": pid,
        "name": pid.title(),
        "business_unit": "Digital",
        "lifecycle": "active",
        "manager": "pm@example.com",
        "currency": currency,
        "budget": budget,
        "start_date": "2026-01-01",
        "planned_finish_date": "2026-12-31",
        **extra,
    }


def _health(level: str, *, as_of: str | None = "2026-06-01", **metrics: float) -> dict[str, Any]:
    return {"health": level, "as_of": as_of, "metrics": metrics, "reasons": []}


def test_no_status_report_is_its_own_health_not_green() -> None:
    assert portfolio.computed_health(None) == portfolio.NO_REPORT
    assert portfolio.computed_health(_health("green", as_of=None)) == portfolio.NO_REPORT
    assert portfolio.computed_health(_health("amber")) == "amber"


def test_overview_counts_each_level_and_sums_per_currency_never_across() -> None:
    view = portfolio.overview(
        [
            _project("a", budget=100),
            _project("b", budget=200),
            _project("c", currency="USD", budget=50),
        ],
        {
            "a": _health("red", ac=80.0, eac=160.0),
            "b": _health("green", ac=20.0, eac=190.0),
            "c": None,
        },
        [],
    )
    assert view.counts == {"green": 1, "amber": 0, "red": 1, portfolio.NO_REPORT: 1}
    totals = {total.currency: total for total in view.totals}
    assert (totals["EUR"].budget, totals["EUR"].actual_cost, totals["EUR"].eac) == (
        300,
        100,
        350,
    )
    # No report: nothing spent that we know of, the budget stands as the estimate.
    assert (totals["USD"].actual_cost, totals["USD"].eac) == (0, 50)


def test_reported_better_than_computed_is_found_and_worse_is_not() -> None:
    view = portfolio.overview(
        [_project("a"), _project("b"), _project("c")],
        {
            "a": {**_health("red"), "reported_health": "green"},
            "b": {**_health("green"), "reported_health": "amber"},
            "c": {**_health("amber"), "reported_health": None},
        },
        [],
    )
    assert [line.project_id for line in view.reported_better] == ["a"]


def test_at_risk_lists_red_before_amber() -> None:
    view = portfolio.overview(
        [_project("a"), _project("b"), _project("c")],
        {"a": _health("amber"), "b": _health("red"), "c": _health("green")},
        [],
    )
    assert [line.project_id for line in view.at_risk] == ["b", "a"]


def test_earned_value_series_leaves_out_reports_kept_for_the_record_only() -> None:
    history = [
        {"applied": True, "as_of": "2026-03-01", "metrics": {"pv": 10, "ev": 8, "ac": 9}},
        {"applied": False, "as_of": "2026-02-01", "metrics": {"pv": 5, "ev": 99, "ac": 99}},
        {"applied": True, "as_of": "2026-04-01", "metrics": {"pv": 20, "ev": 15, "ac": 18}},
    ]
    figure = portfolio.earned_value_series(history, _project("a"), None)
    series = {trace["name"].split(" ")[0]: trace for trace in figure["data"]}
    assert series["PV"]["x"] == ["2026-03-01", "2026-04-01"]
    assert series["EV"]["y"] == [8, 15]
    assert series["AC"]["y"] == [9, 18]


def test_skill_demand_is_never_capped_at_capacity() -> None:
    utilisation = [
        {"skills": ["Architect"], "weeks": [{"week": "2026-W10", "capacity_fte": 1.0}]},
    ]
    requests = [
        {"skill": "architect", "fte_per_week": 1.0, "weeks": ["2026-W10"]},
        {"skill": "architect", "fte_per_week": 1.5, "weeks": ["2026-W10", "2026-W11"]},
    ]
    (line,) = portfolio.skill_demand(requests, utilisation)
    assert (line.week, line.demand_fte, line.capacity_fte, line.over) == (
        "2026-W10",
        2.5,
        1.0,
        True,
    )


def test_health_changes_keep_only_changes_of_level() -> None:
    history = [
        {"applied": True, "health": "green", "assessed_at": "t1", "trigger": "status-changed"},
        {"applied": True, "health": "green", "assessed_at": "t2", "trigger": "status-changed"},
        {"applied": True, "health": "red", "assessed_at": "t3", "trigger": "status-changed"},
        {"applied": False, "health": "green", "assessed_at": "t4", "trigger": "status-changed"},
    ]
    changes = portfolio.health_changes(history)
    assert [(c.before, c.after, c.at) for c in changes] == [
        (None, "green", "t1"),
        ("green", "red", "t3"),
    ]


REGISTRY_DRAFT = {
    "draft_version": 4,
    "would_apply": True,
    "note": "",
    "ranking": [
        {
            "project_id": "B",
            "name": "B",
            "rank": 1,
            "score": 0.9,
            "action": "accelerate",
            "why": "",
        },
        {"project_id": "C", "name": "C", "rank": 2, "score": 0.2, "action": "continue", "why": ""},
    ],
    "directive_effects": [
        {"project_id": "A", "effect": "moved", "to_stage": "terminated"},
        {"project_id": "C", "effect": "unchanged", "to_stage": None},
    ],
}


def test_allocation_is_asked_about_the_whole_draft_ranking_and_the_moved_stages() -> None:
    body = whatif.allocation_draft(REGISTRY_DRAFT)
    assert body == {
        "ranking": [
            {"project_id": "B", "rank": 1, "score": 0.9},
            {"project_id": "C", "rank": 2, "score": 0.2},
        ],
        "lifecycle": {"A": "terminated"},
    }


def test_combined_what_if_lays_now_and_draft_side_by_side() -> None:
    current = [
        {"project_id": "A", "name": "A", "rank": 1, "score": 0.8, "action": "continue"},
        {"project_id": "B", "name": "B", "rank": 2, "score": 0.5, "action": "continue"},
    ]
    allocation = {
        "changes": [
            {
                "request_id": "R-B",
                "project_id": "B",
                "before": {"fte_granted": 0, "weeks": []},
                "after": {"fte_granted": 1, "weeks": ["2026-W10"]},
                "reason": "granted",
            }
        ],
        "conflicts": [],
        "solver": {"method": "milp"},
    }
    result = whatif.combine(current, REGISTRY_DRAFT, allocation)
    rows = {row.project_id: row for row in result.ranking}
    assert (rows["B"].rank_now, rows["B"].rank_draft, rows["B"].moved) == (2, 1, 1)
    assert (rows["A"].rank_now, rows["A"].rank_draft) == (1, None), "A drops out of the ranking"
    assert rows["C"].rank_now is None
    assert [(a.request_id, a.fte_before, a.fte_after) for a in result.allocations] == [
        ("R-B", 0, 1)
    ]
    assert json.dumps(result.as_json())  # the API's answer is plain JSON


def test_what_if_form_names_each_mistake_in_one_line() -> None:
    with pytest.raises(Refused) as refused:
        _draft_from_form({"weight:grow": "-1", "name:grow": "Grow"})
    assert refused.value.status == 422
    assert "objectives.0.weight" in refused.value.message
    draft = _draft_from_form(
        {
            "weight:grow": "0.7",
            "name:grow": "Grow",
            "directive_action_0": "pause",
            "directive_target_0": "unit:Sales",
            "directive_reason_0": "freeze",
        }
    )
    assert draft.directives[0].business_unit == "Sales"


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/projects/P-1", "/projects/P-1"),
        ("https://evil.example/", "/"),
        ("//evil.example/x", "/"),
        ("javascript:alert(1)", "/"),
        (None, "/"),
    ],
)
def test_sign_in_returns_only_to_this_site(target: str | None, safe: str) -> None:
    assert _safe_next(target) == safe


def test_live_event_reads_structured_cloudevents_and_survives_anything_else() -> None:
    envelope = {
        "id": "e-1",
        "type": "pmo.project-at-risk",
        "time": "2026-11-29T10:00:00Z",
        "data": {"project_id": "P-1", "severity": "red"},
    }
    event = live_event("acme.project-at-risk", b"P-1", json.dumps(envelope).encode(), "acme.")
    assert (event.type, event.id, event.project_id, event.severity) == (
        "project-at-risk",
        "e-1",
        "P-1",
        "red",
    )
    garbled = live_event("acme.allocation-changed", b"P-2", b"\xff not json", "acme.")
    assert (garbled.type, garbled.project_id, garbled.id) == ("allocation-changed", "P-2", None)


def test_baselines_come_oldest_first_and_each_rebaseline_is_marked_on_the_s_curve() -> None:
    registered = [
        {
            "version": 2,
            "approved_at": "2026-09-01T10:00:00Z",
            "approved_by": "pmo-admin",
            "reason": "scope added",
            "budget": 150.0,
            "start_date": "2026-01-01",
            "planned_finish_date": "2027-03-31",
            "planned_value_curve": None,
            "in_force": True,
        },
        {
            "version": 1,
            "approved_at": "2026-01-01T08:00:00Z",
            "approved_by": "erp",
            "reason": "the baseline the project started with",
            "budget": 100.0,
            "start_date": "2026-01-01",
            "planned_finish_date": "2026-12-31",
            "planned_value_curve": None,
            "in_force": False,
        },
    ]
    found = portfolio.baselines(registered)
    assert [(b.version, b.approved_on, b.budget, b.in_force, b.rebaseline) for b in found] == [
        (1, "2026-01-01", 100.0, False, False),
        (2, "2026-09-01", 150.0, True, True),
    ]
    layout = portfolio.earned_value_series([], {"currency": "EUR"}, None, found)["layout"]
    assert [(shape["x0"], shape["x1"], shape["name"]) for shape in layout["shapes"]] == [
        ("2026-09-01", "2026-09-01", "re-baselined v2")
    ]
    assert [note["text"] for note in layout["annotations"]] == ["re-baselined (v2, BAC 150)"]
    plain = portfolio.earned_value_series([], {"currency": "EUR"}, None, found[:1])["layout"]
    assert (plain["shapes"], plain["annotations"]) == ([], [])


def test_pmo_up_points_the_links_and_the_dashboard_at_the_offset_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pmo.stack import Stack
    from shared.settings import Settings

    for name in ("PUBLIC", "REGISTRY", "ALLOCATION", "MONITORING", "NOTIFICATIONS"):
        monkeypatch.delenv(f"PMO_DASHBOARD_{name}_URL", raising=False)
    urls = Stack(Settings(http_host="0.0.0.0"), port_offset=100)._dashboard_urls()
    assert urls == {
        "PMO_DASHBOARD_PUBLIC_URL": "http://127.0.0.1:8100",
        "PMO_DASHBOARD_REGISTRY_URL": "http://127.0.0.1:8101",
        "PMO_DASHBOARD_ALLOCATION_URL": "http://127.0.0.1:8102",
        "PMO_DASHBOARD_MONITORING_URL": "http://127.0.0.1:8103",
        "PMO_DASHBOARD_NOTIFICATIONS_URL": "http://127.0.0.1:8104",
    }
    monkeypatch.setenv("PMO_DASHBOARD_PUBLIC_URL", "https://pmo.example.com")
    assert "PMO_DASHBOARD_PUBLIC_URL" not in Stack(Settings(), port_offset=100)._dashboard_urls()
