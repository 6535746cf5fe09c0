"""The project page shows the PMO interventions of its project (Chromium through Playwright, over
the real services): the red key project's proposal, then its acceptance."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN
from tests.dashboard.conftest import BrowserSession, DashboardSystem
from tests.harness import eventually

pytestmark = pytest.mark.e2e


async def test_the_project_page_shows_the_proposed_then_accepted_intervention(
    dashboard: DashboardSystem, browser_session: BrowserSession
) -> None:
    allocation = dashboard.services["allocation"]
    async with httpx.AsyncClient(base_url=allocation, headers=dashboard.admin_headers) as api:
        # Dev becomes the PMO's schedule-recovery expert; Atlas (key project, red on schedule)
        # has its proposal staffed with him.
        marked = await api.put(
            "/resources/dev/specialties", json={"specialties": ["schedule-recovery"]}
        )
        assert marked.status_code == 200, marked.text

        async def staffed() -> dict[str, Any] | None:
            rows = (await api.get("/interventions", params={"project_id": "DSH-ATLAS"})).json()
            return rows[0] if rows and rows[0]["expert_id"] == "dev" else None

        proposal = await eventually(staffed, timeout=60, what="Atlas's proposal staffed")
        page = browser_session.page
        await browser_session.sign_in(ADMIN_TOKEN)
        await page.goto(f"{dashboard.url}/projects/DSH-ATLAS")
        row = page.locator(f'#interventions tr[data-intervention="{proposal["intervention_id"]}"]')
        cells = await row.locator("td").all_inner_texts()
        assert cells[:4] == ["proposed", "risk", "schedule-recovery", "dev"]
        assert "Granted in full: Dev Developer (dev)" in cells[6]

        accepted = await api.post(
            f"/interventions/{proposal['intervention_id']}/accept", json={"note": "go"}
        )
        assert accepted.status_code == 200, accepted.text
        await page.reload()
        cells = await row.locator("td").all_inner_texts()
        assert cells[0] == "accepted"
        assert cells[6] == "pmo-admin: go"
        await browser_session.screenshot("project-atlas-intervention")
    assert browser_session.errors == []
