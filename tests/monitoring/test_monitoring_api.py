"""Monitoring's HTTP API: who may read and change what, the rules in force, lists and series."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest

from shared.settings import Settings
from tests.conftest import ServiceStarter, bearer
from tests.harness import Enterprise, detail_text
from tests.monitoring.monitoring_support import (
    ADMIN,
    QUIET_CLOCK_S,
    MonitoringProbe,
    charter,
    report,
)

pytestmark = pytest.mark.e2e

VIEWER = bearer("viewer", "vera.viewer@example.com")
MANAGER = bearer("project_manager", "ada.lovelace@example.com")
AS_OF = date(2026, 7, 2)  # PV = 50,000 of 100,000 on the default charter's linear plan


async def test_roles_thresholds_at_risk_list_and_history(
    start_service: ServiceStarter, enterprise: Enterprise, settings: Settings
) -> None:
    # CPI amber from 0.80 and green from 0.85 in this deployment's settings.
    service = await start_service(
        "monitoring",
        monitoring_cpi_amber_from=0.80,
        monitoring_cpi_green_from=0.85,
        monitoring_staleness_check_interval_s=QUIET_CLOCK_S,
    )
    monitoring = MonitoringProbe(service, settings)
    async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as anonymous:
        try:
            for method, path in [
                ("GET", "/projects/ANY/health"),
                ("GET", "/projects/ANY/health/history"),
                ("GET", "/at-risk"),
                ("GET", "/health"),
                ("GET", "/thresholds"),
                ("PUT", "/thresholds"),
                ("DELETE", "/thresholds"),
            ]:
                response = await anonymous.request(method, path)
                assert response.status_code == 401, (method, path)
            forged = {"Authorization": "Bearer pmo1.e30.forged"}
            assert (await anonymous.get("/at-risk", headers=forged)).status_code == 401

            shown = await anonymous.get("/thresholds", headers=VIEWER)
            assert shown.status_code == 200
            assert shown.json()["source"] == "settings"
            defaults = shown.json()["thresholds"]
            assert defaults == {
                "spi_green_from": 0.95,
                "spi_amber_from": 0.90,
                "cpi_green_from": 0.85,
                "cpi_amber_from": 0.80,
                "tcpi_red_above": 1.10,
                "hysteresis_margin": 0.02,
                "stale_after_days": 14,
                "milestone_red_after_days": 30,
                "resource_shortfall_red_from": 0.5,
            }
            for caller in (VIEWER, MANAGER):
                refused = await anonymous.put("/thresholds", json=defaults, headers=caller)
                assert refused.status_code == 403
                assert "pmo_admin" in detail_text(refused)
                assert (await anonymous.delete("/thresholds", headers=caller)).status_code == 403

            # The settings reach the handlers: CPI 0.82 is amber here (red by the defaults).
            # 10% (EV 10,000) on day 36 for 12,200: CPI = 0.8197; SPI(t) = 36.4/36 = 1.011;
            # TCPI = 90,000/87,800 = 1.025.
            await enterprise.send("project-started", charter("LEAN", business_unit="Finance"))
            await enterprise.send("status-changed", report("LEAN", date(2026, 2, 6), 10, 12_200))
            (lean,) = await monitoring.assessed("LEAN", 1)
            assert lean["metrics"]["cpi"] == 0.8197
            assert (lean["health"], lean["reasons"][0]["code"]) == ("amber", "cost")

            unusable = {**defaults, "spi_amber_from": 0.97}
            rejected = await anonymous.put("/thresholds", json=unusable, headers=ADMIN)
            assert rejected.status_code == 422
            assert "spi_amber_from (0.97) must not be above spi_green_from (0.95)" in rejected.text
            partial = {k: v for k, v in defaults.items() if k != "tcpi_red_above"}
            assert (
                await anonymous.put("/thresholds", json=partial, headers=ADMIN)
            ).status_code == 422

            stricter = {**defaults, "spi_green_from": 0.99}
            stored = await anonymous.put("/thresholds", json=stricter, headers=ADMIN)
            assert stored.status_code == 200, stored.text
            assert stored.json()["source"] == "override"
            assert stored.json()["updated_by"] == "pmo-admin"
            shown = (await anonymous.get("/thresholds", headers=VIEWER)).json()
            assert shown["thresholds"] == stricter

            # From the next assessment on: SPI(t) 0.97 is amber under the override.
            # 48.5% done by day 182 of 364: ES = 176.54, SPI(t) = 0.97.
            await enterprise.send("project-started", charter("NEAR", business_unit="Digital"))
            await enterprise.send("status-changed", report("NEAR", AS_OF, 48.5, 48_500))
            await enterprise.send("project-started", charter("LATE", business_unit="Digital"))
            await enterprise.send("status-changed", report("LATE", AS_OF, 30, 30_000))
            await enterprise.send("status-changed", report("LATE", date(2026, 7, 3), 30, 30_000))
            (near,) = await monitoring.assessed("NEAR", 1)
            assert (near["metrics"]["spi_t"], near["health"]) == (0.97, "amber")
            await monitoring.assessed("LATE", 2)

            async def listed(query: str) -> list[str]:
                response = await anonymous.get(f"/at-risk{query}", headers=VIEWER)
                assert response.status_code == 200
                return [project["project_id"] for project in response.json()]

            assert await listed("") == ["LATE", "LEAN", "NEAR"]
            assert await listed("?severity=red") == ["LATE"]
            assert await listed("?severity=amber&business_unit=Digital") == ["NEAR"]
            assert await listed("?business_unit=Finance") == ["LEAN"]
            assert await listed("?limit=1&after=LEAN") == ["NEAR"]
            bad = await anonymous.get("/at-risk?severity=green", headers=VIEWER)
            assert bad.status_code == 422

            # The whole portfolio's latest assessments in one call: the same as each project's.
            async def portfolio(query: str) -> dict[str, Any]:
                response = await anonymous.get(f"/health{query}", headers=VIEWER)
                assert response.status_code == 200, response.text
                return response.json()  # type: ignore[no-any-return]

            everything = await portfolio("")
            assert (everything["total"], everything["next_cursor"]) == (3, None)
            for item in everything["items"]:
                one = await anonymous.get(f"/projects/{item['project_id']}/health", headers=VIEWER)
                assert item == one.json()
            assert [(p["project_id"], p["health"]) for p in everything["items"]] == [
                ("LATE", "red"),
                ("LEAN", "amber"),
                ("NEAR", "amber"),
            ]
            first_page = await portfolio("?limit=2")
            assert [p["project_id"] for p in first_page["items"]] == ["LATE", "LEAN"]
            assert (first_page["total"], first_page["next_cursor"]) == (3, "LEAN")
            second_page = await portfolio("?limit=2&cursor=LEAN")
            assert [p["project_id"] for p in second_page["items"]] == ["NEAR"]
            assert second_page["next_cursor"] is None
            chosen = await portfolio("?project_id=NEAR&project_id=LATE&project_id=NOPE")
            assert [p["project_id"] for p in chosen["items"]] == ["LATE", "NEAR"]
            amber_digital = await portfolio("?health=amber&business_unit=digital")
            assert [p["project_id"] for p in amber_digital["items"]] == ["NEAR"]
            assert (await portfolio("?monitoring=closed"))["items"] == []
            wrong = await anonymous.get("/health?health=purple", headers=VIEWER)
            assert wrong.status_code == 422
            documented = (await anonymous.get("/openapi.json")).json()["paths"]["/health"]["get"]
            assert {p["name"] for p in documented["parameters"]} >= {
                "project_id",
                "health",
                "business_unit",
                "monitoring",
                "limit",
                "cursor",
            }

            health = (await anonymous.get("/projects/LATE/health", headers=MANAGER)).json()
            assert (health["health"], health["as_of"]) == ("red", "2026-07-03")
            assert health["reasons"][0]["code"] == "schedule"
            first = await anonymous.get("/projects/LATE/health/history?limit=1", headers=VIEWER)
            (entry,) = first.json()
            assert (entry["as_of"], entry["alert"]) == ("2026-07-02", "project-at-risk")
            rest = await anonymous.get(
                f"/projects/LATE/health/history?after={entry['id']}", headers=VIEWER
            )
            assert [(e["as_of"], e["alert"]) for e in rest.json()] == [("2026-07-03", None)]
            for path in ("/projects/NOPE/health", "/projects/NOPE/health/history"):
                missing = await anonymous.get(path, headers=VIEWER)
                assert missing.status_code == 404
                assert "NOPE" in detail_text(missing)

            assert (await anonymous.delete("/thresholds", headers=ADMIN)).status_code == 204
            shown = (await anonymous.get("/thresholds", headers=VIEWER)).json()
            assert (shown["source"], shown["thresholds"]) == ("settings", defaults)
        finally:
            await monitoring.close()
