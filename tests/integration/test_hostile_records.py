"""Hostile and odd records on the real broker and database: each is dead-lettered with a reason
for the sender, and the partition always moves on (issue 15, items 1, 6-11; issue 12, items 1-3).
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared.messaging import inbox
from shared.settings import Settings
from tests.conftest import ServiceStarter
from tests.harness import Enterprise, binary_event, eventually, read_topic, structured_event

PROJECT: dict[str, Any] = {
    "name": "Helios warehouse automation",
    "business_unit": "Logistics",
    "manager": "katherine.johnson@example.com",
    "start_date": "2026-01-01",
    "planned_finish_date": "2026-12-31",
    "budget": 500000,
    "currency": "EUR",
}


def project(project_id: str, **changes: Any) -> dict[str, Any]:
    return {"project_id": project_id, **PROJECT, **changes}


def registered_ids(records: list[Any]) -> list[str]:
    return [json.loads(record.value)["data"]["project_id"] for record in records]


def reason_of(record: Any) -> str:
    return str(dict(record.headers)["pmo-dlq-reason"].decode())


async def dead_letters(base_url: str, headers: dict[str, str], at_least: int) -> list[Any]:
    async with httpx.AsyncClient(base_url=base_url, headers=headers) as api:

        async def listed() -> list[dict[str, Any]] | None:
            rows = list((await api.get("/dead-letters", params={"limit": 500})).json())
            return rows if len(rows) >= at_least else None

        return await eventually(listed, what=f"{at_least} dead letters listed")


async def test_any_key_bytes_are_dead_lettered_and_the_partition_moves_on(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    settings: Settings,
    admin_headers: dict[str, str],
) -> None:
    registry = await start_service("registry")
    poison_keys = [b"FZ\x00KEY", b"\xff\xfe\x00", b"\x00", b"K" * 10_000, b""]
    for key in poison_keys:
        await enterprise.send_raw("project-started", b"not json at all", key=key, partition=0)
    # A valid event behind them on the same partition, with a key that is not UTF-8 text either.
    value, headers = structured_event("project-started", project("PRJ-BEHIND"))
    await enterprise.send_raw("project-started", value, headers=headers, key=b"\x00", partition=0)

    registered = await read_topic(settings, f"{settings.topic_prefix}project-registered")
    assert registered_ids(registered) == ["PRJ-BEHIND"]
    dead = await read_topic(
        settings, f"{settings.topic_prefix}project-started.dlq", at_least=len(poison_keys)
    )
    assert sorted(record.key or b"" for record in dead) == sorted(poison_keys)
    assert all(record.value == b"not json at all" for record in dead)
    assert all(reason_of(record).startswith("not a CloudEvent") for record in dead)
    listed = await dead_letters(registry.base_url, admin_headers, len(poison_keys))
    assert {row["key"] for row in listed} >= {"FZ\x00KEY", "\x00"}
    assert {base64.b64decode(row["key_base64"] or "") for row in listed} == set(poison_keys)


async def test_an_unstartable_database_is_waited_for_and_never_blamed_on_the_event(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    claim = inbox.claim
    refusals = [
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    ]

    async def recovering(*args: Any, **kwargs: Any) -> Any:
        if refusals:
            raise refusals.pop(0)
        return await claim(*args, **kwargs)

    monkeypatch.setattr(inbox, "claim", recovering)
    await start_service("registry")
    await enterprise.send("project-started", project("PRJ-RECOVERY"))

    registered = await read_topic(settings, f"{settings.topic_prefix}project-registered")
    assert registered_ids(registered) == ["PRJ-RECOVERY"]
    assert refusals == []
    assert (
        await read_topic(
            settings, f"{settings.topic_prefix}project-started.dlq", at_least=0, timeout=1
        )
        == []
    )


async def test_an_event_type_without_the_pmo_prefix_is_refused_on_every_inbound_topic(
    start_service: ServiceStarter, enterprise: Enterprise, settings: Settings
) -> None:
    await start_service("registry")
    await start_service("allocation")
    for topic in ("project-started", "status-changed", "resource-requested", "strategy-changed"):
        value, headers = structured_event(topic, {"project_id": "PRJ-1"})
        document = json.loads(value)
        document["type"] = topic  # "project-started", not "pmo.project-started"
        await enterprise.send_raw(topic, json.dumps(document).encode(), headers=headers, key="k")
        dead = await read_topic(settings, f"{settings.topic_prefix}{topic}.dlq")
        assert f"event type '{topic}' does not belong on topic" in reason_of(dead[0]), topic
        assert f"'pmo.{topic}'" in reason_of(dead[0])


async def test_the_same_id_from_two_sources_is_two_events(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    settings: Settings,
    admin_headers: dict[str, str],
) -> None:
    registry = await start_service("registry")
    await enterprise.send("project-started", project("PRJ-TWO"))
    await read_topic(settings, f"{settings.topic_prefix}project-registered")
    shared_id = "report-1"
    for source, as_of in (("/erp/sap", "2026-03-01"), ("/jira/cloud", "2026-04-01")):
        report = {
            "project_id": "PRJ-TWO",
            "as_of": as_of,
            "percent_complete": 20,
            "actual_cost": 1000,
        }
        value, headers = structured_event(
            "status-changed", report, event_id=shared_id, source=source
        )
        await enterprise.send_raw("status-changed", value, headers=headers, key="PRJ-TWO")

    async with httpx.AsyncClient(base_url=registry.base_url, headers=admin_headers) as api:

        async def newest() -> bool:
            body = (await api.get("/projects/PRJ-TWO")).json()
            return bool(body.get("status_as_of") == "2026-04-01")

        await eventually(newest, what="the second source's report applied")
    assert (
        await read_topic(
            settings, f"{settings.topic_prefix}status-changed.dlq", at_least=0, timeout=1
        )
        == []
    )


@pytest.mark.parametrize("binary", [False, True], ids=["structured", "binary"])
async def test_a_dead_letter_names_the_event_whose_envelope_was_readable(
    binary: bool,
    start_service: ServiceStarter,
    enterprise: Enterprise,
    settings: Settings,
    admin_headers: dict[str, str],
) -> None:
    monitoring = await start_service("monitoring")
    report = {"project_id": "PRJ-ID", "as_of": "2026-07-02", "percent_complete": 150}
    encode = binary_event if binary else structured_event
    bad_data_id, bad_time_id = str(uuid.uuid4()), str(uuid.uuid4())
    value, headers = encode("status-changed", {**report, "actual_cost": 1}, event_id=bad_data_id)
    await enterprise.send_raw("status-changed", value, headers=headers, key="PRJ-ID")
    value, headers = encode(
        "status-changed", {**report, "percent_complete": 5, "actual_cost": 1}, event_id=bad_time_id
    )
    if binary:
        headers = [*headers, ("ce_time", b"yesterday")]
    else:
        document = json.loads(value)
        document["time"] = "yesterday"
        value = json.dumps(document).encode()
    await enterprise.send_raw("status-changed", value, headers=headers, key="PRJ-ID")

    rows = await dead_letters(monitoring.base_url, admin_headers, 2)
    by_id = {row["event_id"]: row for row in rows}
    assert set(by_id) == {bad_data_id, bad_time_id}
    for row in rows:
        assert (row["event_type"], row["source"]) == ("pmo.status-changed", "/erp/test")
    assert by_id[bad_data_id]["reason"].startswith("data.percent_complete: must be at most 100")
    assert "time" in by_id[bad_time_id]["reason"]
    assert "RFC 3339" in by_id[bad_time_id]["reason"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"project_id": "a\x00b"}, "data.project_id: must not contain control characters"),
        ({"project_id": "P" * 10_000}, "data.project_id: must be at most 128 characters long"),
        ({"business_unit": "Ops\x00"}, "data.business_unit: must not contain control characters"),
        (
            {"objectives": [{"objective_id": "O\x00", "contribution": 1}]},
            "data.objectives[0].objective_id: must not contain control characters",
        ),
        ({"sponsor": "x\x00y"}, "data.sponsor: must not contain NUL characters"),
        ({"budget": True}, "data.budget: must be a number (got true)"),
        ({"budget": "500000"}, 'data.budget: must be a number (got "500000")'),
        ({"key_project": "yes"}, 'data.key_project: must be true or false (got "yes")'),
    ],
)
async def test_identifiers_and_types_are_checked_by_the_contract_with_the_field_named(
    changes: dict[str, Any],
    expected: str,
    start_service: ServiceStarter,
    enterprise: Enterprise,
    settings: Settings,
) -> None:
    await start_service("registry")
    await enterprise.send("project-started", {**project("PRJ-BAD"), **changes}, key="PRJ-BAD")
    await enterprise.send("project-started", project("PRJ-GOOD"), key="PRJ-BAD")

    dead = await read_topic(settings, f"{settings.topic_prefix}project-started.dlq")
    assert reason_of(dead[0]).startswith(expected), reason_of(dead[0])
    assert "sql" not in reason_of(dead[0]).lower()
    registered = await read_topic(settings, f"{settings.topic_prefix}project-registered")
    assert registered_ids(registered) == ["PRJ-GOOD"]


async def test_a_record_too_large_is_refused_at_the_door_and_its_dead_letter_still_published(
    start_service: ServiceStarter,
    settings: Settings,
    admin_headers: dict[str, str],
    enterprise: Enterprise,
) -> None:
    registry = await start_service("registry")
    big = AIOKafkaProducer(
        **settings.kafka_client_options(), enable_idempotence=False, max_request_size=4 << 20
    )
    await big.start()
    try:
        for project_id, budget in (("PRJ-HUGE-BAD", -1), ("PRJ-HUGE-OK", 10)):
            value, headers = structured_event(
                "project-started", project(project_id, budget=budget, padding="x" * 900_000)
            )
            await big.send_and_wait(
                f"{settings.topic_prefix}project-started",
                value=value,
                key=project_id.encode(),
                headers=headers,
            )
    finally:
        await big.stop()
    await enterprise.send("project-started", project("PRJ-SMALL"), key="PRJ-HUGE-OK")

    dead = await read_topic(settings, f"{settings.topic_prefix}project-started.dlq", at_least=2)
    for record in dead:
        assert reason_of(record).startswith("record is 9"), reason_of(record)
        assert "events of at most 262,144 bytes are accepted" in reason_of(record)
        assert record.value == b""
        assert int(dict(record.headers)["pmo-dlq-omitted"]) > 900_000
    rows = await dead_letters(registry.base_url, admin_headers, 2)
    assert all(len(row["value_base64"]) > 1_200_000 for row in rows)
    # Refused at the door, the envelope unread, yet the dead letter names the event.
    assert all(row["event_type"] == "pmo.project-started" for row in rows)
    assert all(row["source"] == "/erp/test" and row["event_id"] for row in rows)
    registered = await read_topic(settings, f"{settings.topic_prefix}project-registered")
    assert registered_ids(registered) == ["PRJ-SMALL"]
