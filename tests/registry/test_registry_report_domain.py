"""The report's renderings and the API's format negotiation, as pure functions."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.registry.domain.projects import changed_fields
from services.registry.domain.reports import COLUMNS, PortfolioReport, ReportRow, as_csv, as_html
from services.registry.entrypoints.reports_api import negotiated

pytestmark = pytest.mark.fast


def row(project_id: str, **changes: Any) -> ReportRow:
    fields: dict[str, Any] = {
        "project_id": project_id,
        "name": f"Project {project_id}",
        "business_unit": "Digital",
        "manager": "ada@example.com",
        "methodology": "standard",
        "lifecycle": "active",
        "rank": 1,
        "score": 0.5,
        "action": "continue",
        "health": "green",
        "health_reasons": (),
        "health_assessed_on": None,
        "spi_t": None,
        "cpi": None,
        "eac": None,
        "forecast_finish": None,
        "percent_complete": 40.0,
        "status_as_of": date(2026, 6, 30),
        "planned_finish_date": date(2026, 12, 31),
        "open_shortfall_fte": 0.0,
        "key_project": False,
        **changes,
    }
    return ReportRow(**fields)


def report(*rows: ReportRow) -> PortfolioReport:
    return PortfolioReport(datetime(2026, 7, 1, 8, 0, tzinfo=UTC), 3, rows)


texts = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=40
)


@given(name=texts, unit=texts)
def test_any_text_survives_the_csv_round_trip(name: str, unit: str) -> None:
    rendered = as_csv(report(row("P-1", name=name, business_unit=unit)))
    [parsed] = list(csv.DictReader(io.StringIO(rendered, newline="")))
    guarded = ("=", "+", "-", "@", "\t", "\r")
    assert parsed["name"] == ("'" + name if name.startswith(guarded) else name)
    assert parsed["business_unit"] == ("'" + unit if unit.startswith(guarded) else unit)


def test_csv_has_a_header_and_rows_in_rank_order_then_unranked_by_id() -> None:
    rendered = as_csv(
        report(
            row("P-Z", rank=None, lifecycle="completed", score=None, action=None),
            row("P-B", rank=2, health_reasons=("schedule", "cost"), open_shortfall_fte=1.25),
            row("P-A", rank=None, lifecycle="proposed", score=None, action=None),
            row("P-C", rank=1, key_project=True),
        )
    )
    lines = rendered.split("\r\n")
    assert lines[0] == ",".join(COLUMNS)
    parsed = list(csv.DictReader(io.StringIO(rendered, newline="")))
    assert [r["project_id"] for r in parsed] == ["P-C", "P-B", "P-A", "P-Z"]
    assert parsed[1]["health_reasons"] == "schedule; cost"
    assert parsed[1]["open_shortfall_fte"] == "1.25"
    assert parsed[0]["key_project"] == "yes"
    assert parsed[2]["rank"] == ""


@given(name=texts)
def test_html_escapes_whatever_a_project_is_called(name: str) -> None:
    page = as_html(report(row("P-1", name=name + "<b>&'\"")))
    assert "<b>&'\"" not in page
    assert "&lt;b&gt;&amp;&#x27;&quot;" in page


def test_html_colours_health_and_greys_unranked_projects() -> None:
    page = as_html(
        report(
            row("P-R", health="red"),
            row("P-A", health="amber", rank=2),
            row("P-U", health=None, rank=None),
        )
    )
    assert "<tr class='health-red'>" in page
    assert "<tr class='health-amber'>" in page
    assert "<tr class='health-unknown closed'>" in page
    assert "tr.health-red td.health { background: #fed7d7; }" in page
    assert "ranked under strategy version 3" in page


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, "json"),
        ("*/*", "json"),
        ("text/csv", "csv"),
        ("text/html,application/xhtml+xml,*/*;q=0.8", "html"),
        ("text/csv;q=0.4, text/html;q=0.9", "html"),
        ("text/html;q=0, text/csv", "csv"),
        ("application/json, text/csv", "json"),
        ("image/png", "json"),
    ],
)
def test_the_accept_header_chooses_the_format(accept: str | None, chosen: str) -> None:
    assert negotiated(accept) == chosen


def test_changed_fields_compare_values_in_their_json_form() -> None:
    before, after = changed_fields(
        {"start_date": date(2026, 1, 1), "objectives": [{"objective_id": "g", "contribution": 1}]},
        {"start_date": "2026-01-01", "objectives": [{"objective_id": "g", "contribution": 0.5}]},
    )
    assert before == {"objectives": [{"objective_id": "g", "contribution": 1}]}
    assert after == {"objectives": [{"objective_id": "g", "contribution": 0.5}]}
