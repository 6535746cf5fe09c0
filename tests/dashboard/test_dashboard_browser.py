"""The dashboard in a real browser (Debian's Chromium through Playwright), over the real services.

Each test leaves a full-page screenshot in tests/artifacts/dashboard/.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from services.dashboard.domain.portfolio import HEALTH_COLOURS
from shared.security import issue_token
from tests.conftest import ADMIN_TOKEN, TOKEN_SECRET
from tests.dashboard.conftest import (
    FINISH,
    PROJECTS,
    TODAY,
    BrowserSession,
    DashboardSystem,
    _status,
)
from tests.harness import eventually

pytestmark = pytest.mark.e2e


def _rgb(hex_colour: str) -> str:
    red, green, blue = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


async def test_sign_in_exchanges_a_token_for_an_httponly_samesite_session_and_sign_out_ends_it(
    dashboard: DashboardSystem, browser_session: BrowserSession
) -> None:
    page = browser_session.page
    await page.goto(f"{dashboard.url}/capacity")
    assert page.url.startswith(f"{dashboard.url}/signin"), "a page without a session signs in"

    await page.fill("#token", "pmo1.forged.token")
    await page.click("#signin")
    assert "not valid" in (await page.inner_text("[role=alert]"))
    await browser_session.screenshot("signin-refused")

    await page.goto(f"{dashboard.url}/signin?next=/capacity")
    await page.fill("#token", ADMIN_TOKEN)
    await page.click("#signin")
    await page.wait_for_url(f"{dashboard.url}/capacity")
    assert "pmo-admin" in await page.inner_text("header .who")

    cookies = await browser_session.context.cookies()
    session = next(c for c in cookies if c["name"] == "pmo_dashboard")
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert ADMIN_TOKEN not in session["value"], "the session holds its own token, not the typed one"

    await page.click("header button:has-text('Sign out')")
    await page.wait_for_url(f"{dashboard.url}/signin")
    await page.goto(f"{dashboard.url}/")
    assert page.url.startswith(f"{dashboard.url}/signin"), "after sign-out the pages ask again"


async def test_a_form_without_the_sessions_csrf_token_is_refused(
    dashboard: DashboardSystem, browser_session: BrowserSession
) -> None:
    await browser_session.sign_in(ADMIN_TOKEN)
    forged = await browser_session.page.request.post(
        f"{dashboard.url}/operations/deliveries/1/retry",
        form={"csrf_token": "guessed"},
        max_redirects=0,
    )
    assert forged.status == 403
    assert "CSRF" in await forged.text()


async def test_overview_shows_the_seeded_portfolio_with_the_right_colours_and_counts(
    dashboard: DashboardSystem, browser_session: BrowserSession
) -> None:
    page = browser_session.page
    await browser_session.sign_in(ADMIN_TOKEN)
    await page.wait_for_function("document.querySelector('#bubble-chart .main-svg') !== null")

    counts = {
        level: int(await page.inner_text(f"[data-count='{level}']"))
        for level in ("green", "amber", "red", "no report yet")
    }
    assert counts == {"green": 1, "amber": 1, "red": 2, "no report yet": 1}

    for project, level in (
        ("DSH-ATLAS", "red"),
        ("DSH-BOREAS", "amber"),
        ("DSH-CIRRUS", "green"),
        ("DSH-DELTA", "no report yet"),
        ("DSH-ECHO", "red"),
    ):
        row = page.locator(f"#projects tr[data-project='{project}']")
        assert await row.get_attribute("data-health") == level
        colour = await row.locator(".badge").evaluate("b => getComputedStyle(b).backgroundColor")
        assert colour == _rgb(HEALTH_COLOURS[level]), project

    at_risk = page.locator("#at-risk article")
    assert await at_risk.count() == 3
    atlas = await page.inner_text("#at-risk article[data-project='DSH-ATLAS']")
    assert "SPI(t)" in atlas, "the reason in words"
    assert "0.60" in atlas, "and in numbers"
    assert await page.inner_text("#reported-better li[data-project='DSH-ATLAS']") == (
        "Atlas ERP rollout: reported green, computed red"
    )
    assert "1,150,000 EUR" in await page.inner_text("[data-total='budget']")
    # The architect conflict: the key project Atlas keeps her, Echo goes short, and why.
    conflict = page.locator("#conflicts article.conflict")
    await expect(conflict).to_have_count(1)
    winners, losers = await conflict.locator("ul").all_inner_texts()
    assert "DSH-ATLAS" in winners
    assert "DSH-ECHO" in losers
    assert "DSH-ATLAS is a key project and DSH-ECHO is not" in await conflict.inner_text()

    traces = await page.evaluate(
        "() => document.getElementById('bubble-chart').data"
        ".map(t => [t.name, t.marker.color, t.customdata])"
    )
    assert {name: (colour, ids) for name, colour, ids in traces} == {
        "red": (HEALTH_COLOURS["red"], ["DSH-ATLAS", "DSH-ECHO"]),
        "amber": (HEALTH_COLOURS["amber"], ["DSH-BOREAS"]),
        "green": (HEALTH_COLOURS["green"], ["DSH-CIRRUS"]),
        "no report yet": (HEALTH_COLOURS["no report yet"], ["DSH-DELTA"]),
    }
    await browser_session.screenshot("overview")

    await page.select_option("select[name=business_unit]", "Digital")
    await page.wait_for_url("**/?business_unit=Digital**")
    await expect(page.locator("#projects tbody tr")).to_have_count(3)
    await browser_session.screenshot("overview-filtered")


def _shown(value: Any, kind: str) -> str:
    """A figure as the overview's table shows it: indices to two decimals, money whole."""
    if value is None:
        return "\u2013"
    return f"{value:.2f}" if kind == "index" else f"{value:,.0f}"


async def test_the_overview_shows_the_health_and_figures_monitoring_and_the_registry_show(
    dashboard: DashboardSystem, browser_session: BrowserSession
) -> None:
    """Issue 10's consistency proof, for the dashboard: each project's health, SPI(t), CPI and
    EAC read the same on the page as in monitoring and in the registry."""
    page = browser_session.page
    await browser_session.sign_in(ADMIN_TOKEN)
    async with httpx.AsyncClient(headers=dashboard.admin_headers, timeout=30) as http:

        async def views() -> dict[str, tuple[Any, ...]] | None:
            """(health, SPI(t), CPI, EAC) by project, if monitoring and the registry agree."""
            assessed = await http.get(f"{dashboard.services['monitoring']}/health")
            registered = await http.get(
                f"{dashboard.services['registry']}/projects", params={"limit": 500}
            )
            found: dict[str, tuple[Any, ...]] = {}
            for item in assessed.json()["items"]:
                level = item["health"] if item["as_of"] else "no report yet"
                figures = tuple(item["metrics"].get(name) for name in ("spi_t", "cpi", "eac"))
                found[item["project_id"]] = (level, *figures)
            for project in registered.json()["items"]:
                level = project["health"] if project["health_status_as_of"] else "no report yet"
                metrics = project["health_metrics"] or {}
                figures = tuple(metrics.get(name) for name in ("spi_t", "cpi", "eac"))
                if found.get(project["project_id"]) != (level, *figures):
                    return None  # the registry has not heard the newest assessment yet
            return found

        async def agree() -> bool:
            # Assessments may still be landing from other tests: compare one settled moment.
            before = await views()
            if before is None:
                return False
            await page.goto(dashboard.url)
            rows = page.locator("#projects tbody tr")
            shown = {}
            for index in range(await rows.count()):
                row = rows.nth(index)
                cells = await row.locator("td").all_inner_texts()
                shown[await row.get_attribute("data-project")] = (
                    await row.get_attribute("data-health"),
                    cells[5],
                    cells[6],
                    cells[9],
                )
            expected = {
                pid: (level, _shown(spi_t, "index"), _shown(cpi, "index"), _shown(eac, "money"))
                for pid, (level, spi_t, cpi, eac) in before.items()
            }
            return before == await views() and shown == expected

        await eventually(agree, timeout=30, what="the same health and figures everywhere")
    assert len(PROJECTS) == await page.locator("#projects tbody tr").count()
    await browser_session.screenshot("overview-consistent")


async def test_project_page_chart_carries_pv_ev_and_ac_series(
    dashboard: DashboardSystem, browser_session: BrowserSession
) -> None:
    page = browser_session.page
    await browser_session.sign_in(ADMIN_TOKEN)
    await page.goto(f"{dashboard.url}/projects/DSH-ATLAS")
    await page.wait_for_function("document.querySelector('#ev-chart .main-svg') !== null")

    series = await page.evaluate(
        "() => Object.fromEntries(document.getElementById('ev-chart').data"
        ".map(t => [t.name.split(' ')[0], t.y]))"
    )
    # Two reports: 20 % then 30 % of 400,000 earned; 70,000 then 150,000 spent.
    assert series["PV"][-1] == pytest.approx(200_000, rel=0.02)
    assert series["EV"] == [80_000, 120_000]
    assert series["AC"] == [70_000, 150_000]
    assert "EAC" in series
    assert await page.locator("#stage-model li.current").inner_text() == "active running"
    assert "400,000 EUR" in await page.inner_text("#baseline-list tbody tr:first-child")
    changes = await page.inner_text("#health-changes")
    assert "red" in changes
    await browser_session.screenshot("project-atlas")


async def test_what_if_shows_ranking_actions_and_allocations_side_by_side_and_applies_nothing(
    dashboard: DashboardSystem, browser_session: BrowserSession
) -> None:
    page = browser_session.page
    await browser_session.sign_in(ADMIN_TOKEN)
    await page.goto(f"{dashboard.url}/strategy")
    ranking_before = await page.inner_text("#ranking")

    # Cost-cutting now matters most, and Atlas (which holds the architect) is stopped.
    await page.fill("#w-grow-digital", "0.1")
    await page.fill("#w-cut-cost", "0.9")
    await page.select_option("select[name=directive_action_0]", "terminate")
    await page.fill("input[name=directive_target_0]", "project:DSH-ATLAS")
    await page.fill("input[name=directive_reason_0]", "no longer fits")
    await page.click("#try-what-if")
    await page.wait_for_selector("#what-if-result")

    boreas = page.locator("#what-if-ranking tr[data-project='DSH-BOREAS'] [data-draft-rank]")
    assert await boreas.inner_text() == "1", "cost-cutting Boreas leads the draft ranking"
    result = await page.inner_text("#what-if-result")
    assert "terminate" in result
    assert "DSH-ATLAS" in result
    allocations = await page.inner_text("#what-if-allocations")
    assert "REQ-ECHO-ARCH" in allocations, "Echo gets the architect Atlas no longer holds"
    await browser_session.screenshot("strategy-what-if")

    # The same in one call of the JSON API, with the session and its CSRF token.
    csrf = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = await page.request.post(
        f"{dashboard.url}/api/what-if",
        data={
            "objectives": [
                {"objective_id": "grow-digital", "name": "Grow", "weight": 0.1},
                {"objective_id": "cut-cost", "name": "Cut", "weight": 0.9},
            ],
            "directives": [
                {"action": "terminate", "project_id": "DSH-ATLAS", "reason": "no longer fits"}
            ],
        },
        headers={"X-CSRF-Token": csrf or ""},
    )
    assert answer.status == 200, await answer.text()
    combined = await answer.json()
    assert combined["ranking"][0]["project_id"] == "DSH-BOREAS"
    changed = {change["request_id"] for change in combined["allocation_changes"]}
    assert "REQ-ECHO-ARCH" in changed

    async with httpx.AsyncClient(headers=dashboard.admin_headers) as http:
        strategy = (await http.get(f"{dashboard.services['registry']}/objectives")).json()
    assert strategy["strategy_version"] == 1, "nothing was applied"
    await page.goto(f"{dashboard.url}/strategy")
    assert await page.inner_text("#ranking") == ranking_before


async def test_an_open_page_reflects_a_new_outbound_event_without_a_reload(
    dashboard: DashboardSystem, browser_session: BrowserSession
) -> None:
    page = browser_session.page
    await browser_session.sign_in(ADMIN_TOKEN)
    await page.wait_for_selector("body[data-live='ready']")
    await page.evaluate("() => { window.__sameDocument = true; }")
    red_before = int(await page.inner_text("[data-count='red']"))

    # Boreas slips to red: monitoring publishes project-at-risk; the page hears of it.
    await dashboard.enterprise.send(
        "status-changed", _status("DSH-BOREAS", TODAY, 30, 92_000, comment="slipped")
    )
    await page.wait_for_function(
        f"document.querySelector(\"[data-count='red']\").textContent.trim() === '{red_before + 1}'",
        timeout=30_000,
    )
    assert await page.evaluate("() => window.__sameDocument === true"), "no reload"
    assert await page.evaluate("() => window.pmoDashboard.refreshes") >= 1
    row = page.locator("#projects tr[data-project='DSH-BOREAS']")
    assert await row.get_attribute("data-health") == "red"
    await browser_session.screenshot("overview-live-update")


async def test_a_viewer_reads_but_is_refused_the_administrators_actions(
    dashboard: DashboardSystem, browser_session: BrowserSession
) -> None:
    page = browser_session.page
    await browser_session.sign_in(issue_token(TOKEN_SECRET, "val.viewer@example.com", "viewer"))
    assert "viewer" in await page.inner_text("header .who")
    assert await page.locator("nav a:has-text('Operations')").count() == 0

    response = await page.goto(f"{dashboard.url}/operations")
    assert response is not None
    assert response.status == 403
    assert "PMO administrator" in await page.inner_text("#refusal")
    await browser_session.screenshot("viewer-refused-operations")

    await page.goto(f"{dashboard.url}/strategy")
    assert await page.locator("#try-what-if").is_disabled()
    csrf = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    refused = await page.request.post(
        f"{dashboard.url}/operations/deliveries/1/retry",
        form={"csrf_token": csrf or ""},
        max_redirects=0,
    )
    assert refused.status == 403
    assert "PMO administrators" in await refused.text()
    tried = await page.request.post(
        f"{dashboard.url}/strategy/what-if",
        form={"csrf_token": csrf or "", "weight:grow-digital": "1"},
        max_redirects=0,
    )
    assert tried.status == 403


async def test_an_administrator_retries_a_dead_delivery_from_the_operations_page(
    dashboard: DashboardSystem, browser_session: BrowserSession
) -> None:
    page = browser_session.page
    await browser_session.sign_in(ADMIN_TOKEN)
    await page.goto(f"{dashboard.url}/operations")
    row = page.locator("#deliveries tr[data-delivery]").first
    delivery = await row.get_attribute("data-delivery")
    assert "project-at-risk" in await row.inner_text()
    await browser_session.screenshot("operations-dead-delivery")

    await row.locator("button.retry").click()
    await page.wait_for_url(f"{dashboard.url}/operations")
    async with httpx.AsyncClient(headers=dashboard.admin_headers) as http:
        answer = await http.get(f"{dashboard.services['notifications']}/deliveries/{delivery}")
    assert answer.json()["max_attempts"] > 1, "a new round of attempts was granted"


async def test_a_project_manager_moves_their_own_project_and_no_other(
    dashboard: DashboardSystem, browser_session: BrowserSession
) -> None:
    page = browser_session.page
    await browser_session.sign_in(
        issue_token(TOKEN_SECRET, "dsh-delta@example.com", "project_manager")
    )
    await page.goto(f"{dashboard.url}/projects/DSH-DELTA")
    await page.select_option("#stage-model select[name=to]", "on_hold")
    await page.fill("#stage-model input[name=reason]", "waiting for the warehouse lease")
    await page.click("#stage-model button:has-text('Move')")
    await page.wait_for_url(f"{dashboard.url}/projects/DSH-DELTA")
    assert await page.locator("#stage-model li.current").inner_text() == "on_hold running"

    await page.goto(f"{dashboard.url}/projects/DSH-CIRRUS")
    assert await page.locator("#stage-model form").count() == 0, "no form for another's project"
    csrf = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    refused = await page.request.post(
        f"{dashboard.url}/projects/DSH-CIRRUS/transition",
        form={"csrf_token": csrf or "", "to": "on_hold"},
        max_redirects=0,
    )
    assert refused.status == 403
    assert "dsh-cirrus@example.com" in await refused.text(), "the registry's own reason"


async def test_capacity_and_operations_pages_show_load_conflicts_and_the_services_state(
    dashboard: DashboardSystem, browser_session: BrowserSession
) -> None:
    page = browser_session.page
    await browser_session.sign_in(ADMIN_TOKEN)
    await page.goto(f"{dashboard.url}/capacity")
    await page.wait_for_function("document.querySelector('#heatmap-chart .main-svg') !== null")
    people = await page.evaluate("() => document.getElementById('heatmap-chart').data[0].y")
    assert people == ["Ana Architect (ana)", "Dev Developer (dev)"]
    over = await page.inner_text("#over-demand")
    assert "architect" in over
    assert "200 %" in over, "two FTE wanted of one: not capped"
    conflicts = await page.inner_text("#conflicts")
    assert "DSH-ATLAS" in conflicts
    assert "DSH-ECHO" in conflicts
    await browser_session.screenshot("capacity")

    await page.goto(f"{dashboard.url}/operations")
    for service in ("registry", "allocation", "monitoring", "notifications"):
        assert await page.locator(f"#service-{service}").count() == 1
    letters = page.locator("#service-monitoring .dead-letter")
    assert await letters.count() == 1
    assert "status-changed" in await letters.locator(".topic").inner_text()
    assert len(await letters.locator(".reason").inner_text()) > 10, "with the reason in words"
    await browser_session.screenshot("operations")


@pytest.mark.parametrize("page_path", ["/docs", "/asyncapi"])
async def test_service_docs_work_offline(
    dashboard: DashboardSystem, browser_session: BrowserSession, page_path: str
) -> None:
    page = browser_session.page
    await page.goto(f"{dashboard.services['monitoring']}{page_path}")
    if page_path == "/docs":
        await page.wait_for_selector(".swagger-ui .info .title")
        assert "PMO monitoring API" in await page.inner_text(".swagger-ui .info .title")
    else:
        assert "project-at-risk" in await page.inner_text("body")
    await browser_session.screenshot(f"monitoring{page_path.replace('/', '-')}")


async def test_a_program_page_rolls_up_its_projects_with_their_people_and_conflicts(
    dashboard: DashboardSystem, browser_session: BrowserSession
) -> None:
    # Atlas (BAC 400,000, 30 %, AC 150,000) and Echo (BAC 150,000, 50 %, AC 75,000), both half
    # way through a linear plan (PV = BAC / 2): BAC 550,000, PV 275,000, EV 120,000 + 75,000 =
    # 195,000, AC 225,000; SPI = 195,000 / 275,000 = 0.71, CPI = 195,000 / 225,000 = 0.87.
    registry = dashboard.services["registry"]
    async with httpx.AsyncClient(headers=dashboard.admin_headers, timeout=30) as http:
        renamed = await http.patch(
            f"{registry}/programs/DSH-MERGER",
            json={"name": "Merger with Acme", "end_date": (TODAY + timedelta(days=90)).isoformat()},
        )
        assert renamed.status_code == 200, renamed.text

        async def assessed() -> bool:
            roll_up = (await http.get(f"{registry}/programs/DSH-MERGER/roll-up")).json()
            return bool(roll_up["not_assessed"] == [] and roll_up["earned_value"] == 195_000)

        await eventually(assessed, timeout=60, what="DSH-MERGER's projects assessed")

    page = browser_session.page
    await browser_session.sign_in(ADMIN_TOKEN)
    # The overview filters by program and leads to its roll-up; a project's page links to it.
    await page.select_option("select[name=program_id]", "DSH-MERGER")
    await page.wait_for_url("**/?*program_id=DSH-MERGER**")
    rows = page.locator("#projects tbody tr")
    await expect(rows).to_have_count(2)
    assert {await row.get_attribute("data-project") for row in await rows.all()} == {
        "DSH-ATLAS",
        "DSH-ECHO",
    }
    await page.click("#program-roll-up")
    await page.wait_for_url(f"{dashboard.url}/programs/DSH-MERGER")
    await page.goto(f"{dashboard.url}/projects/DSH-ATLAS")
    await page.click("#program-link")
    await page.wait_for_url(f"{dashboard.url}/programs/DSH-MERGER")
    assert "Program Merger with Acme" in await page.inner_text("h1")
    assert "ends" in await page.inner_text("#program-facts")
    figures = {
        key: await page.inner_text(f"#program-figures [data-figure='{key}'] .count")
        for key in ("budget_at_completion", "planned_value", "earned_value", "actual_cost")
    }
    assert figures == {
        "budget_at_completion": "550,000",
        "planned_value": "275,000",
        "earned_value": "195,000",
        "actual_cost": "225,000",
    }
    assert await page.inner_text("#program-figures [data-figure='spi'] .count") == "0.71"
    assert await page.inner_text("#program-figures [data-figure='cpi'] .count") == "0.87"
    members = page.locator("#program-projects tr[data-project]")
    assert [await row.get_attribute("data-project") for row in await members.all()] == [
        "DSH-ATLAS",
        "DSH-ECHO",
    ]
    assert "red" in await page.inner_text("h1")
    assert "DSH-" in await page.inner_text("#program-reasons")
    assert "Ana Architect" in await page.inner_text("#program-people")
    assert "architect" in await page.inner_text("#program-conflicts")
    await browser_session.screenshot("program")


async def test_a_rebaselined_project_shows_when_by_whom_and_why_on_its_page_chart_and_report(
    dashboard: DashboardSystem, browser_session: BrowserSession
) -> None:
    # Cirrus gets two more months (same budget, so the overview's totals stand).
    later = FINISH + timedelta(days=60)
    reason = "Data lake phase added by the steering board"
    async with httpx.AsyncClient(headers=dashboard.admin_headers, timeout=30) as http:
        response = await http.post(
            f"{dashboard.services['registry']}/projects/DSH-CIRRUS/baselines",
            json={"planned_finish_date": later.isoformat(), "reason": reason},
        )
    assert response.status_code == 201, response.text
    approved = response.json()
    approved_on, approver = approved["approved_at"][:10], approved["approved_by"]
    assert approver

    page = browser_session.page
    await browser_session.sign_in(ADMIN_TOKEN)
    await page.goto(f"{dashboard.url}/projects/DSH-CIRRUS")
    await page.wait_for_function("document.querySelector('#ev-chart .main-svg') !== null")
    banner = await page.inner_text("#rebaselined")
    assert f"re-baselined on {approved_on} by {approver}: {reason}" in banner
    assert f"finish {later.isoformat()}" in banner
    rows = page.locator("#baseline-list tbody tr")
    await expect(rows).to_have_count(2)
    first, second = await rows.nth(0).inner_text(), await rows.nth(1).inner_text()
    assert "the baseline the project started with" in first
    assert "(in force)" in second
    assert approver in second
    assert reason in second
    assert f"→ {later.isoformat()}" in second
    # The S-curve marks the day of the re-baseline, labelled.
    marks = await page.evaluate(
        "() => document.getElementById('ev-chart').layout.shapes.map(s => [s.x0, s.name])"
    )
    assert marks == [[approved_on, "re-baselined v2"]]
    label = page.locator("#ev-chart .annotation-text")
    assert "re-baselined (v2, BAC 300,000)" in (await label.text_content() or "")
    await browser_session.screenshot("project-rebaselined")

    # The portfolio report, opened from the dashboard (the session's token is forwarded).
    await page.click("#report-link")
    await page.wait_for_load_state("networkidle")
    cirrus = page.locator("tbody tr", has_text="DSH-CIRRUS")
    assert f"re-baselined on {approved_on} (baseline 2)" in await cirrus.inner_text()
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 1280, "the report fits a 1280-pixel screen"
    await browser_session.screenshot("report")
