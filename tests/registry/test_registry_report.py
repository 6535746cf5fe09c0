"""The portfolio status report from the real system, as JSON, CSV and HTML."""

from __future__ import annotations

import csv
import io
import re

import httpx

from tests.harness import Enterprise
from tests.registry.conftest import allocated, assessed, charter, project_when, status

ORION = 'Orion, "phase 2"'
FORMULA = '=HYPERLINK("http://example.com/x","click")'
SCRIPT = "<script>alert('pmo')</script>"


async def set_up(api: httpx.AsyncClient, enterprise: Enterprise) -> None:
    growth = [{"objective_id": "growth", "contribution": 0.8}]
    await enterprise.send("project-started", charter("R1", name=ORION, objectives=growth))
    await enterprise.send(
        "project-started", charter("R2", name=FORMULA, objectives=growth[:0], key_project=True)
    )
    await enterprise.send("project-started", charter("R3", name=SCRIPT, business_unit="Ops"))
    await enterprise.send("project-health-assessed", assessed("R1", "red"))
    await enterprise.send("resource-allocated", allocated("R1", "REQ-R1", 1.0, 0.4, "partial"))
    await enterprise.send("project-health-assessed", assessed("R2", "green"))
    await enterprise.send(
        "status-changed", status("R3", lifecycle="completed", percent_complete=100)
    )
    await project_when(api, "R1", "R1 red", health="red")
    await project_when(api, "R1", "R1 short of people", open_shortfall_fte=0.6)
    await project_when(api, "R2", "R2 green", health="green")
    await project_when(api, "R3", "R3 completed", lifecycle="completed")
    await enterprise.send(
        "strategy-changed",
        {
            "strategy_version": 7,
            "effective_date": "2026-07-01",
            "objectives": [{"objective_id": "growth", "name": "Growth", "weight": 1}],
        },
        key="7",
    )
    await project_when(api, "R2", "the portfolio ranked", rank=2)


async def test_the_portfolio_report_in_json_csv_and_html(
    api: httpx.AsyncClient, enterprise: Enterprise
) -> None:
    await set_up(api, enterprise)

    as_json = await api.get("/reports/portfolio", params={"format": "json"})
    assert as_json.headers["content-type"] == "application/json"
    report = as_json.json()
    assert report["strategy_version"] == 7
    rows = [
        (
            p["project_id"],
            p["lifecycle"],
            p["rank"],
            p["score"],
            p["health"],
            p["open_shortfall_fte"],
        )
        for p in report["projects"]
    ]
    assert rows == [
        ("R1", "active", 1, 0.8, "red", 0.6),
        ("R2", "active", 2, 0.1, "green", 0.0),  # the key-project bonus alone
        ("R3", "completed", None, None, None, 0.0),
    ]
    assert report["projects"][0]["health_reasons"] == ["schedule"]

    as_csv = await api.get("/reports/portfolio", params={"format": "csv"})
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert f'"{ORION.replace(chr(34), chr(34) * 2)}"' in as_csv.text  # quoted, quotes doubled
    table = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [row["project_id"] for row in table] == ["R1", "R2", "R3"]
    assert table[0]["name"] == ORION
    assert table[0]["open_shortfall_fte"] == "0.6"
    assert table[0]["health_reasons"] == "schedule"
    assert table[1]["name"] == "'" + FORMULA  # a spreadsheet shows it, does not run it
    assert table[2]["rank"] == ""
    assert table[2]["name"] == SCRIPT

    as_html = await api.get("/reports/portfolio", params={"format": "html"})
    assert as_html.headers["content-type"].startswith("text/html")
    page = as_html.text
    assert SCRIPT not in page
    assert "&lt;script&gt;alert(&#x27;pmo&#x27;)&lt;/script&gt;" in page
    assert "Orion, &quot;phase 2&quot;" in page
    rows_html = re.findall(r"<tr class='([^']*)'>(.*?)</tr>", page)
    assert [classes for classes, _ in rows_html] == [
        "health-red",
        "health-green",
        "health-unknown closed",
    ]
    assert ">R1<" in rows_html[0][1]

    # Without `format`, the Accept header chooses; `format` wins over it.
    negotiated = await api.get("/reports/portfolio", headers={"Accept": "text/csv"})
    assert negotiated.headers["content-type"].startswith("text/csv")
    preferred = await api.get(
        "/reports/portfolio", headers={"Accept": "text/html;q=0.9, text/csv;q=0.5"}
    )
    assert preferred.headers["content-type"].startswith("text/html")
    anything = await api.get("/reports/portfolio", headers={"Accept": "*/*"})
    assert anything.headers["content-type"] == "application/json"
    overridden = await api.get(
        "/reports/portfolio", params={"format": "json"}, headers={"Accept": "text/html"}
    )
    assert overridden.headers["content-type"] == "application/json"
    assert (await api.get("/reports/portfolio", params={"format": "pdf"})).status_code == 422
