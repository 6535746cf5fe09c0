"""The portfolio status report, the PMO's core administrative output, as CSV and as an HTML page.

Rows come ranked first (by rank), then the projects not ranked (proposed, completed,
terminated) by project id, so the report reads top-down in order of strategic priority.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from html import escape
from typing import Any

from pydantic_core import to_jsonable_python

# Spreadsheets run a cell starting with one of these as a formula: a project named
# "=HYPERLINK(...)" must stay text when the PMO opens the CSV (OWASP "CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ReportRow:
    """One project in the portfolio status report."""

    project_id: str
    name: str
    business_unit: str
    manager: str
    methodology: str | None
    lifecycle: str
    rank: int | None
    score: float | None
    action: str | None
    health: str | None
    """Monitoring's newest assessment: green, amber or red; None until monitoring has spoken."""
    health_reasons: tuple[str, ...]
    health_assessed_on: date | None
    """The as-of date of the status report behind that assessment."""
    spi_t: float | None
    cpi: float | None
    eac: float | None
    forecast_finish: date | None
    percent_complete: float | None
    status_as_of: date | None
    planned_finish_date: date
    open_shortfall_fte: float
    """FTE requested and not granted, over the project's open resource requests."""
    key_project: bool
    baseline_version: int | None = None
    """The approved baseline in force (1: as started); None before the project started."""
    rebaselined_on: date | None = None
    """The day the baseline in force was approved, if the project was re-baselined."""
    program_id: str | None = None
    """The program it belongs to, if any."""


@dataclass(frozen=True)
class ReportScope:
    """What a report covers when not the whole portfolio: one program."""

    program_id: str
    name: str
    end_date: date | None = None
    """A temporary program's end date."""


@dataclass(frozen=True)
class PortfolioReport:
    generated_at: datetime
    strategy_version: int | None
    rows: Sequence[ReportRow]
    scope: ReportScope | None = None
    """None: the whole portfolio; else the one program the rows belong to."""


COLUMNS: tuple[str, ...] = tuple(field.name for field in fields(ReportRow))


def ordered(rows: Sequence[ReportRow]) -> list[ReportRow]:
    return sorted(rows, key=lambda row: (row.rank is None, row.rank or 0, row.project_id))


def as_json(report: PortfolioReport) -> dict[str, Any]:
    """The report as JSON-ready values (dates as ISO text)."""
    document: dict[str, Any] = to_jsonable_python(
        {
            "generated_at": report.generated_at,
            "strategy_version": report.strategy_version,
            "projects": [asdict(row) for row in ordered(report.rows)],
            **({"program": asdict(report.scope)} if report.scope is not None else {}),
        }
    )
    return document


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return "; ".join(str(item) for item in value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _safe_text(value: object) -> str:
    text = _cell(value)
    if isinstance(value, str) and text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def as_csv(report: PortfolioReport) -> str:
    """RFC 4180 CSV: a header row, then one row per project; quoted where a cell needs it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(COLUMNS)
    for row in ordered(report.rows):
        writer.writerow([_safe_text(getattr(row, column)) for column in COLUMNS])
    return buffer.getvalue()


_HEADINGS = {
    "project_id": "Project",
    "name": "Name",
    "business_unit": "Business unit",
    "manager": "Manager",
    "methodology": "Methodology",
    "lifecycle": "Lifecycle",
    "rank": "Rank",
    "score": "Score",
    "action": "Recommended action",
    "health": "Health",
    "health_reasons": "Health reasons",
    "health_assessed_on": "Assessed as of",
    "spi_t": "SPI(t)",
    "cpi": "CPI",
    "eac": "EAC",
    "forecast_finish": "Forecast finish",
    "percent_complete": "% complete",
    "status_as_of": "Status as of",
    "planned_finish_date": "Planned finish",
    "open_shortfall_fte": "Open shortfall (FTE)",
    "key_project": "Key project",
    "baseline_version": "Baseline",
    "rebaselined_on": "Re-baselined on",
    "program_id": "Program",
}

_STYLE = """
body { font-family: system-ui, "DejaVu Sans", sans-serif; margin: 1.5rem; color: #1f2933;
  max-width: 1240px; }
h1 { font-size: 1.4rem; margin: 0 0 0.4rem; }
.summary { display: flex; gap: 0.6rem; flex-wrap: wrap; margin: 0.6rem 0 1rem; padding: 0; }
.summary li { list-style: none; border: 1px solid #cbd2d9; border-radius: 4px;
  padding: 0.2rem 0.6rem; }
table { border-collapse: collapse; width: 100%; font-size: 0.8rem; }
th, td { border: 1px solid #cbd2d9; padding: 0.3rem 0.4rem; text-align: left; vertical-align: top; }
th { background: #e4e7eb; }
td.number { text-align: right; white-space: nowrap; }
td.reasons { max-width: 16rem; }
.small { color: #52606d; font-size: 0.72rem; display: block; }
tr.health-green td.health { background: #c6f6d5; }
tr.health-amber td.health { background: #feebc8; }
tr.health-red td.health { background: #fed7d7; }
tr.health-unknown td.health { background: #edf2f7; color: #52606d; }
tr.closed { color: #7b8794; }
@page { size: A4 landscape; margin: 10mm; }
@media print {
  body { margin: 0; max-width: none; font-size: 9pt; }
  table { font-size: 7.5pt; }
  tr { break-inside: avoid; }
  thead { display: table-header-group; }
}
"""

REASON_WORDS = {
    "schedule": "behind schedule",
    "cost": "over budget",
    "milestone_overdue": "milestone overdue",
    "stale_status": "no recent status report",
    "reported_red": "reported red by its manager",
    "reported_amber": "reported amber by its manager",
    "resource_shortfall": "short of people",
}
"""Monitoring's reason codes, in words for people (a code not listed is shown as it is)."""

_HTML_COLUMNS: tuple[tuple[str, str], ...] = (
    ("rank", "Rank"),
    ("project", "Project"),
    ("business_unit", "Business unit"),
    ("manager", "Manager"),
    ("stage", "Stage"),
    ("health", "Health"),
    ("reasons", "Why"),
    ("complete", "Complete"),
    ("planned_finish_date", "Planned finish"),
    ("score", "Score"),
    ("action", "Recommended action"),
    ("shortfall", "Short of (FTE)"),
)


def _html_cells(row: ReportRow) -> list[tuple[str, str]]:
    """(css class, escaped HTML) for each of the page's columns: figures rounded for reading."""
    key = " <span title='key project'>&#9733;</span>" if row.key_project else ""
    reasons = "; ".join(REASON_WORDS.get(reason, reason) for reason in row.health_reasons)
    complete = "" if row.percent_complete is None else f"{row.percent_complete:.0f} %"
    as_of = (
        f"<span class='small'>as of {row.status_as_of.isoformat()}</span>"
        if row.status_as_of
        else ""
    )
    indices = " · ".join(
        f"{label} {value:.2f}"
        for label, value in (("SPI(t)", row.spi_t), ("CPI", row.cpi))
        if value is not None
    )
    figures = f"<span class='small'>{escape(indices)}</span>" if indices else ""
    forecast = (
        f"<span class='small'>forecast {row.forecast_finish.isoformat()}</span>"
        if row.forecast_finish
        else ""
    )
    rebaselined = (
        f"<span class='small rebaselined'>re-baselined on {row.rebaselined_on.isoformat()}"
        f" (baseline {row.baseline_version})</span>"
        if row.rebaselined_on
        else ""
    )
    return [
        ("number", "" if row.rank is None else str(row.rank)),
        ("", f"{escape(row.name)}{key}<span class='small'>{escape(row.project_id)}</span>"),
        ("", escape(row.business_unit)),
        ("", escape(row.manager)),
        (
            "",
            f"{escape(row.lifecycle)}"
            f"<span class='small'>{escape(row.methodology or 'standard')}</span>",
        ),
        ("health", f"{escape(row.health or 'no report yet')}{figures}"),
        ("reasons", escape(reasons)),
        ("number", f"{escape(complete)}{as_of}"),
        ("number", f"{row.planned_finish_date.isoformat()}{forecast}{rebaselined}"),
        ("number", "" if row.score is None else f"{row.score:.2f}"),
        ("", escape(row.action or "")),
        ("number", f"{row.open_shortfall_fte:.1f}" if row.open_shortfall_fte else ""),
    ]


def as_html(report: PortfolioReport) -> str:
    """A page people read on a 1280-pixel screen or an A4 page (landscape): counts by health,
    then one table, health cells coloured, reasons in words, figures rounded; every value
    HTML-escaped."""
    version = (
        f"strategy version {report.strategy_version}"
        if report.strategy_version is not None
        else "no strategy received yet"
    )
    counts = {"red": 0, "amber": 0, "green": 0, None: 0}
    for row in report.rows:
        counts[row.health if row.health in counts else None] += 1
    summary = "".join(
        f"<li class='health-{level or 'unknown'}'><strong>{count}</strong> {label}</li>"
        for level, label, count in (
            ("red", "red", counts["red"]),
            ("amber", "amber", counts["amber"]),
            ("green", "green", counts["green"]),
            (None, "no report yet", counts[None]),
        )
    )
    short = sum(1 for row in report.rows if row.open_shortfall_fte > 0)
    head = "".join(f"<th scope='col'>{escape(title)}</th>" for _, title in _HTML_COLUMNS)
    body: list[str] = []
    for row in ordered(report.rows):
        classes = [f"health-{row.health or 'unknown'}"]
        if row.rank is None:
            classes.append("closed")
        cells = "".join(f"<td class='{css}'>{html}</td>" for css, html in _html_cells(row))
        body.append(f"<tr class='{' '.join(classes)}'>{cells}</tr>")
    generated = escape(report.generated_at.strftime("%Y-%m-%d %H:%M %Z").strip())
    title = "Portfolio status report"
    if report.scope is not None:
        title = f"Program {report.scope.name} ({report.scope.program_id}) status report"
        if report.scope.end_date is not None:
            title += f", ends {report.scope.end_date.isoformat()}"
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f"<p>{len(report.rows)} projects; ranked under {escape(version)}; "
        f"generated {generated}.</p>"
        f"<ul class='summary'>{summary}<li><strong>{short}</strong> short of people</li></ul>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        "</body></html>\n"
    )
