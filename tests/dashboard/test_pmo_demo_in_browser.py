"""Issue 10's last proof: `pmo up`, then `pmo demo`, then the dashboard URL `pmo up` printed,
opened in Chromium with no internet, shows the demo portfolio, its red projects with their
reasons in words and numbers, and the resource conflict with who won, who lost and why."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Request as BrowserRequest
from playwright.sync_api import Route, expect, sync_playwright

from tests.dashboard.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS
from tests.system.test_pmo_up import _env, _running_stack

pytestmark = pytest.mark.e2e


def test_the_printed_dashboard_url_shows_the_demo_portfolio_offline(tmp_path: Path) -> None:
    with _running_stack(tmp_path, _env(tmp_path / ".pmo")) as stack:
        output = stack.demo()
        found = re.search(r"PRJ-ATLAS-(\w+)", output)
        assert found is not None, output
        run = found.group(1)
        printed = re.search(r"dashboard\s+(http://\S+)", "\n".join(stack.console.lines))
        assert printed is not None, stack.console.lines
        url = printed.group(1)
        assert url.endswith(f":{8000 + stack.offset}"), url
        token = (tmp_path / ".pmo" / "admin-token").read_text().strip()

        outside: list[str] = []

        def local_only(route: Route, request: BrowserRequest) -> None:
            host = request.url.split("/")[2].split(":")[0] if "://" in request.url else ""
            if request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
                route.continue_()
            else:
                outside.append(request.url)
                route.abort()

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            try:
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                context.route("**/*", local_only)
                page = context.new_page()
                page.goto(url)
                page.fill("#token", token)
                page.click("#signin")
                page.wait_for_selector("#bubble-chart .main-svg")

                rows = page.locator("#projects tbody tr")
                ids = {rows.nth(i).get_attribute("data-project") for i in range(rows.count())}
                assert {f"PRJ-{name}-{run}" for name in ("ATLAS", "BEACON", "CIRRUS")} <= ids
                atlas = page.locator(f"#at-risk article[data-project='PRJ-ATLAS-{run}']")
                expect(atlas).to_have_attribute("data-health", "red")
                reasons = atlas.inner_text()
                assert "SPI(t)" in reasons, reasons
                assert re.search(r"\d\.\d\d", reasons), reasons

                conflict = page.locator("#conflicts article.conflict", has_text=f"PRJ-BEACON-{run}")
                expect(conflict).to_have_count(1)
                winners, losers = conflict.locator("ul").all_inner_texts()
                assert f"PRJ-ATLAS-{run}" in winners
                assert f"PRJ-BEACON-{run}" in losers
                assert "key project" in conflict.inner_text()
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "pmo-demo-overview.png"), full_page=True)
            finally:
                browser.close()
        assert outside == [], f"pages asked the internet for {outside}"
