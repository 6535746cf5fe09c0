"""The registry's HTML portfolio report as people see it: in Chromium on a 1280-pixel screen and
printed on A4, with counts by health, reasons in words and rounded figures."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from playwright.async_api import Page, async_playwright

from services.registry.domain.reports import PortfolioReport, ReportRow, as_html
from tests.dashboard.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS

A4_LANDSCAPE_PRINTABLE_PX = round((297 - 20) / 25.4 * 96)
"""The width of an A4 landscape page inside the report's 10 mm margins, in CSS pixels."""


def _row(number: int, health: str | None, reasons: tuple[str, ...]) -> ReportRow:
    return ReportRow(
        project_id=f"PRJ-{number:04d}-ENTERPRISE",
        name=f"Enterprise resource planning roll-out, wave {number} (EMEA and APAC)",
        business_unit="Digital transformation office",
        manager=f"firstname.lastname.{number}@example-enterprise.com",
        methodology="prince2",
        lifecycle="active",
        rank=number,
        score=0.123456789 * number,
        action="accelerate" if number == 1 else "continue",
        health=health,
        health_reasons=reasons,
        health_assessed_on=date(2026, 11, 27) if health else None,
        spi_t=0.876543 if health else None,
        cpi=1.0123456 if health else None,
        eac=1_234_567.891 if health else None,
        forecast_finish=date(2027, 8, 31) if health else None,
        percent_complete=33.333333,
        status_as_of=date(2026, 11, 27),
        planned_finish_date=date(2027, 6, 30),
        open_shortfall_fte=0.6666666 if number == 2 else 0.0,
        key_project=number == 1,
    )


REPORT = PortfolioReport(
    generated_at=datetime(2026, 11, 29, 9, 0, tzinfo=UTC),
    strategy_version=3,
    rows=[
        _row(1, "red", ("schedule", "cost", "reported_red")),
        _row(2, "amber", ("resource_shortfall", "stale_status")),
        _row(3, "green", ()),
        _row(4, None, ()),
    ],
)


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - once per test
        pytest.fail(f"No Chromium at {CHROMIUM}: `make test` installs Debian's chromium package.")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        yield await context.new_page()
        await browser.close()


async def test_report_says_counts_reasons_in_words_and_rounded_figures(page: Page) -> None:
    await page.set_content(as_html(REPORT))
    summary = await page.inner_text(".summary")
    for expected in ("1 red", "1 amber", "1 green", "1 no report yet", "1 short of people"):
        assert expected in summary
    first = await page.inner_text("tbody tr:nth-child(1)")
    assert "behind schedule; over budget; reported red by its manager" in first
    assert "33 %" in first
    assert "0.12" in first
    assert "0.123456" not in first
    second = await page.inner_text("tbody tr:nth-child(2)")
    assert "short of people; no recent status report" in second
    assert "0.7" in second


async def test_report_fits_a_1280_pixel_screen_and_an_a4_page(page: Page) -> None:
    await page.set_content(as_html(REPORT))
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 1280, "no sideways scrolling on a 1280-pixel screen"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "report-1280.png"), full_page=True)

    await page.emulate_media(media="print")
    await page.set_viewport_size({"width": A4_LANDSCAPE_PRINTABLE_PX, "height": 700})
    printed = await page.evaluate("() => document.documentElement.scrollWidth")
    assert printed <= A4_LANDSCAPE_PRINTABLE_PX, "the table fits the printable width of A4"
    pdf = await page.pdf(prefer_css_page_size=True, print_background=True)
    assert pdf.startswith(b"%PDF")
    (ARTIFACTS / "report-a4.pdf").write_bytes(pdf)
