"""NUL and other unstorable text in HTTP input is a 422 naming where it is, never a 5xx."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from shared.settings import ServiceName
from tests.conftest import ServiceStarter

CASES: list[tuple[ServiceName, str, str, dict[str, Any] | None, list[Any]]] = [
    ("registry", "GET", "/projects/%00", None, ["path"]),
    ("registry", "GET", "/projects?business_unit=a%00b", None, ["query", "business_unit"]),
    (
        "registry",
        "POST",
        "/projects",
        {"project_id": "a\u0000b", "name": "N"},
        ["body", "project_id"],
    ),
    ("registry", "POST", "/projects", {"project_id": "a\ud800b"}, ["body", "project_id"]),
    ("monitoring", "GET", "/at-risk?after=%00", None, ["query", "after"]),
    ("monitoring", "GET", "/projects/a%00b/health", None, ["path"]),
    ("allocation", "GET", "/requests/%00", None, ["path"]),
    ("allocation", "GET", "/requests/a%FF", None, ["path"]),
    ("registry", "GET", "/projects/a%C0%80", None, ["path"]),
    ("allocation", "POST", "/resources", {"resource_id": "r", "name": "x\u0000"}, ["body", "name"]),
    ("notifications", "GET", "/alerts?state=%00", None, ["query", "state"]),
    ("notifications", "GET", "/deliveries?project_id=P%00Q", None, ["query", "project_id"]),
]


@pytest.mark.parametrize(("service", "method", "path", "body", "loc"), CASES)
async def test_unstorable_input_is_a_422_naming_the_field(
    service: ServiceName,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    loc: list[Any],
    start_service: ServiceStarter,
    admin_headers: dict[str, str],
) -> None:
    running = await start_service(service)
    async with httpx.AsyncClient(base_url=running.base_url, headers=admin_headers) as api:
        content = None
        if body is not None:
            # json.dumps escapes a lone surrogate as \ud800, as a client in another language would.
            content = json.dumps(body).encode()
        answer = await api.request(
            method, path, content=content, headers={"content-type": "application/json"}
        )
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == loc
    assert "NUL" in problem["msg"] or "Unicode" in problem["msg"]


PROPOSAL: dict[str, Any] = {
    "project_id": "PRJ-API",
    "name": "API project",
    "business_unit": "Ops",
    "manager": "pm@example.com",
    "start_date": "2026-01-01",
    "planned_finish_date": "2026-12-31",
    "budget": 1000,
    "currency": "EUR",
}
PERSON: dict[str, Any] = {"resource_id": "res-1", "name": "One", "skills": ["x"], "capacity_fte": 1}

LAX: list[tuple[ServiceName, str, str, dict[str, Any], str]] = [
    ("allocation", "POST", "/resources", {**PERSON, "capacity_fte": False}, "capacity_fte"),
    ("allocation", "POST", "/resources", {**PERSON, "capacity_fte": "1"}, "capacity_fte"),
    ("allocation", "PATCH", "/resources/res-1", {"capacity_fte": True}, "capacity_fte"),
    ("registry", "POST", "/projects", {**PROPOSAL, "budget": "1000"}, "budget"),
    ("registry", "POST", "/projects", {**PROPOSAL, "key_project": "yes"}, "key_project"),
    ("registry", "POST", "/projects", {**PROPOSAL, "budget": True}, "budget"),
    (
        "notifications",
        "POST",
        "/subscriptions",
        {"name": "n", "channel": "email", "recipient": "a@b.co", "escalation_target": "yes"},
        "escalation_target",
    ),
    (
        "notifications",
        "PATCH",
        "/subscriptions/00000000-0000-0000-0000-000000000001",
        {"throttle_window_s": "60"},
        "throttle_window_s",
    ),
]


@pytest.mark.parametrize(("service", "method", "path", "body", "field"), LAX)
async def test_api_types_are_strict_as_documented(
    service: ServiceName,
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
    start_service: ServiceStarter,
    admin_headers: dict[str, str],
) -> None:
    running = await start_service(service)
    async with httpx.AsyncClient(base_url=running.base_url, headers=admin_headers) as api:
        answer = await api.request(method, path, json=body)
    assert answer.status_code == 422, answer.text
    assert [problem["loc"][-1] for problem in answer.json()["detail"]] == [field]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "1e999", "-1e999"])
async def test_a_number_json_cannot_hold_is_a_422_naming_the_field(
    number: str, start_service: ServiceStarter, admin_headers: dict[str, str]
) -> None:
    running = await start_service("allocation")
    body = f'{{"resource_id": "r", "name": "N", "skills": ["dev"], "capacity_fte": {number}}}'
    async with httpx.AsyncClient(base_url=running.base_url, headers=admin_headers) as api:
        answer = await api.post(
            "/resources", content=body.encode(), headers={"content-type": "application/json"}
        )
    assert answer.status_code == 422, answer.text
    assert [problem["loc"] for problem in answer.json()["detail"]] == [["body", "capacity_fte"]]


@pytest.mark.parametrize(
    ("service", "method", "path", "body"),
    [
        ("allocation", "PUT", "/resources/nobody/specialties", {"specialties": ["x" * 300_000]}),
        ("registry", "POST", "/programs", {"program_id": "P", "name": "n" * 300_000}),
        ("allocation", "POST", "/resources", {"resource_id": "r", "skills": ["dev"] * 5_000}),
    ],
)
async def test_an_error_echoes_at_most_a_clipped_part_of_a_huge_input(
    service: ServiceName,
    method: str,
    path: str,
    body: dict[str, Any],
    start_service: ServiceStarter,
    admin_headers: dict[str, str],
) -> None:
    running = await start_service(service)
    async with httpx.AsyncClient(base_url=running.base_url, headers=admin_headers) as api:
        answer = await api.request(method, path, json=body)
    assert answer.status_code in (404, 422), answer.text[:500]
    assert len(answer.content) < 10_000, f"{len(answer.content):,} bytes of error"
