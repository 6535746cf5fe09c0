"""The methodology in the browser: a project's gates, deliverables and reviews, the lessons
suggested to it, and the lessons search page, over the real services."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shared.security import issue_token
from tests.conftest import TOKEN_SECRET, bearer
from tests.dashboard.conftest import (
    TODAY,
    BrowserSession,
    DashboardSystem,
    _project,
    _status,
)
from tests.harness import eventually

pytestmark = pytest.mark.e2e

CLOSED, NEW = "DSH-GATE", "DSH-NEXT"


async def _close_with_a_lesson(dashboard: DashboardSystem) -> None:
    """DSH-GATE (stage_gate, Digital) closes after its closure gate; DSH-NEXT is then started."""
    registry = dashboard.services["registry"]
    manager = bearer("project_manager", "dsh-gate@example.com")
    await dashboard.enterprise.send(
        "project-started",
        _project(CLOSED, "Gate ERP upgrade", "Digital", 90_000, methodology="stage_gate"),
    )
    async with httpx.AsyncClient(base_url=registry, timeout=30) as http:

        async def registered() -> bool:
            answer = await http.get(f"/projects/{CLOSED}", headers=dashboard.admin_headers)
            return answer.status_code == 200

        await eventually(registered, timeout=60, what=f"{CLOSED} registered")
        calls: list[tuple[str, dict[str, Any], dict[str, str]]] = [
            (
                f"/projects/{CLOSED}/deliverables",
                {"name": "closure_report", "evidence": "https://docs.example.com/gate/closure"},
                manager,
            ),
            (
                f"/projects/{CLOSED}/lessons",
                {
                    "title": "Vendor delays held up the upgrade",
                    "what_happened": "The vendor delivered the patches a month late.",
                    "avoid": "Contracts without late-delivery penalties.",
                    "tags": ["procurement"],
                },
                manager,
            ),
            (
                f"/projects/{CLOSED}/gate-reviews",
                {"to": "completed", "evidence": "Closure board minutes"},
                dashboard.admin_headers,
            ),
        ]
        for path, body, headers in calls:
            answer = await http.post(path, json=body, headers=headers)
            assert answer.status_code == 201, answer.text
        await dashboard.enterprise.send(
            "status-changed", _status(CLOSED, TODAY, 100, 88_000, lifecycle="completed")
        )

        async def completed() -> bool:
            answer = await http.get(f"/projects/{CLOSED}", headers=dashboard.admin_headers)
            return bool(answer.json()["lifecycle"] == "completed")

        await eventually(completed, timeout=60, what=f"{CLOSED} completed")
        await dashboard.enterprise.send(
            "project-started",
            _project(NEW, "Next ERP upgrade", "Digital", 120_000, methodology="stage_gate"),
        )

        async def suggested() -> bool:
            answer = await http.get(
                f"/projects/{NEW}/lesson-suggestions", headers=dashboard.admin_headers
            )
            return answer.status_code == 200 and len(answer.json()) == 1

        await eventually(suggested, timeout=60, what=f"{NEW} registered with a suggestion")


async def test_project_pages_show_gates_reviews_and_suggested_lessons_and_lessons_are_searched(
    dashboard: DashboardSystem, browser_session: BrowserSession
) -> None:
    await _close_with_a_lesson(dashboard)
    page = browser_session.page
    await browser_session.sign_in(
        issue_token(TOKEN_SECRET, "dsh-next@example.com", "project_manager")
    )

    await page.goto(f"{dashboard.url}/projects/{NEW}")
    suggestion = page.locator("#suggested-lessons li")
    assert await suggestion.count() == 1
    text = await suggestion.inner_text()
    assert "Vendor delays held up the upgrade" in text
    assert f"from {CLOSED}, same business unit, methodology" in text
    closing = page.locator("#gates tr[data-gate=completed] td.missing")
    assert await closing.inner_text() == (
        "deliverable closure_report, lessons learned, a passed gate review"
    )
    requires = page.locator("#gates tr[data-gate=completed] td:nth-child(2)")
    assert await requires.inner_text() == (
        "deliverables closure_report; requires lessons; requires review"
    )
    await browser_session.screenshot("methodology-project-suggestions")

    await page.goto(f"{dashboard.url}/projects/{CLOSED}")
    review = await page.locator("#gate-reviews tbody tr").inner_text()
    assert "active → completed" in review
    assert "passed (used)" in review
    assert "pmo-admin" in review
    assert "closure_report; Closure board minutes" in review
    assert (
        "https://docs.example.com/gate/closure" in await page.locator("#deliverables").inner_text()
    )
    history = await page.locator("#history + table").inner_text()
    assert "gate review" in history

    await page.click("nav a:has-text('Lessons')")
    await page.fill("#lesson-search input[name=q]", "vendors delaying")
    await page.click("#lesson-search button")
    await page.wait_for_url(f"{dashboard.url}/lessons?*")
    rows = page.locator("#lesson-results tbody tr")
    assert await rows.count() == 1
    row = await rows.inner_text()
    assert "Vendor delays held up the upgrade" in row
    assert CLOSED in row
    await browser_session.screenshot("methodology-lessons-search")
    await page.fill("#lesson-search input[name=q]", "blockchain")
    await page.click("#lesson-search button")
    assert "No lesson matches" in await page.locator("main").inner_text()
