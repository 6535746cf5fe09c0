"""The clock's duties end to end: a burst throttled into one summary, escalation, the weekly
digest once. The rules (windows, severities, once per episode, finished projects) are tested
on the fake unit of work in `test_clock_rules.py`."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import ServiceStarter
from tests.harness import Enterprise, eventually, stop_serving, webhook_receiver
from tests.notifications.conftest import (
    QUICK,
    ApiFor,
    MailSink,
    assessed,
    at_risk,
    register,
    smtp_settings,
)

pytestmark = pytest.mark.e2e

SECRET = "subscriber-secret-0123456789"


def lifecycle(project_id: str, before: str, after: str) -> dict[str, Any]:
    return {"project_id": project_id, "from": before, "to": after, "cause": "directive"}


async def test_a_burst_about_one_project_becomes_one_message_and_one_summary(
    start_service: ServiceStarter, enterprise: Enterprise, api_for: ApiFor
) -> None:
    async with webhook_receiver() as receiver:
        service = await start_service("notifications", **QUICK)
        api = api_for(service)
        subscription = await api.subscribe(
            name="tool",
            channel="webhook",
            recipient=receiver.url,
            secret=SECRET,
            event_types=["project-at-risk", "project-lifecycle-changed"],
            throttle_window_s=6,
        )
        await register(enterprise, "PRJ-BURST", "PRJ-CALM")
        for spi in (0.8, 0.7, 0.6):
            await enterprise.send(
                "project-at-risk", at_risk("PRJ-BURST", severity="amber", spi=spi)
            )
        await enterprise.send(
            "project-lifecycle-changed", lifecycle("PRJ-BURST", "active", "on_hold")
        )
        await enterprise.send("project-at-risk", at_risk("PRJ-CALM"))

        def about(project_id: str) -> list[dict[str, Any]]:
            bodies = [json.loads(body) for _, body in receiver.received]
            return [b for b in bodies if (b["project"] or {}).get("project_id") == project_id]

        async def summarized() -> list[dict[str, Any]] | None:
            messages = about("PRJ-BURST")
            return messages if len(messages) >= 2 else None

        first, summary = await eventually(summarized, timeout=40, what="the burst's summary")
        assert summary["event_type"] == "pmo.notification-summary"
        assert summary["data"]["summary"]["count"] == 3
        assert summary["title"].startswith("3 more notifications about Project PRJ-BURST")
        items = summary["data"]["summary"]["items"]
        assert first["delivery_id"] not in [item["delivery_id"] for item in items]
        assert sorted(item["event_type"] for item in [*items, first]) == [
            "pmo.project-at-risk",
            "pmo.project-at-risk",
            "pmo.project-at-risk",
            "pmo.project-lifecycle-changed",
        ]
        # Another project in the same window is not held back by this burst.
        assert len(about("PRJ-CALM")) == 1

        async def recorded() -> list[dict[str, Any]] | None:
            # The receiver has a message a moment before the worker records it delivered.
            found = await api.deliveries(subscription_id=subscription["id"], project_id="PRJ-BURST")
            return found if all(d["state"] != "pending" for d in found) else None

        deliveries = await eventually(recorded, timeout=30, what="the burst's outcomes recorded")
        states = sorted(d["state"] for d in deliveries)
        assert states == ["delivered", "delivered", "summarized", "summarized", "summarized"]
        summary_id = next(
            d["id"] for d in deliveries if d["event_type"] == "pmo.notification-summary"
        )
        assert {d["summary_id"] for d in deliveries if d["state"] == "summarized"} == {summary_id}
        await asyncio.sleep(1.0)  # a few more clock ticks: nothing else goes out
        assert len(about("PRJ-BURST")) == 2


async def test_a_project_at_risk_too_long_is_escalated_once_per_episode(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    smtp_server: MailSink,
    api_for: ApiFor,
) -> None:
    service = await start_service(
        "notifications",
        **QUICK,
        **smtp_settings(smtp_server),
        notification_escalate_after=timedelta(seconds=4),
    )
    api = api_for(service)
    await api.subscribe(
        name="PMO director",
        channel="email",
        recipient="director@example.com",
        event_types=[],
        escalation_target=True,
    )
    await api.subscribe(
        name="PMO office",
        channel="email",
        recipient="office@example.com",
        event_types=["project-at-risk", "project-recovered"],
        throttle_window_s=0,
    )
    await register(enterprise, "PRJ-LATE", "PRJ-BACK")
    # Monitoring's assessment says how long a project is at risk; its alert tells the office.
    await enterprise.send("project-health-assessed", assessed("PRJ-LATE"))
    await enterprise.send("project-at-risk", at_risk("PRJ-LATE"))
    await enterprise.send("project-health-assessed", assessed("PRJ-BACK", "amber"))
    await enterprise.send("project-at-risk", at_risk("PRJ-BACK", severity="amber"))

    async def alerted(count: int) -> bool:
        return len(smtp_server.to("office@example.com")) >= count

    await eventually(lambda: alerted(2), timeout=30, what="both at-risk alerts")
    # PRJ-BACK recovers before the escalation deadline: its episode ends unescalated.
    await enterprise.send("project-health-assessed", assessed("PRJ-BACK", "green", spi=1.0))
    await enterprise.send("project-recovered", {"project_id": "PRJ-BACK", "metrics": {"spi": 1.0}})

    async def escalations(count: int) -> list[Any] | None:
        found = smtp_server.to("director@example.com")
        return found if len(found) >= count else None

    (escalation,) = await eventually(lambda: escalations(1), timeout=30, what="the escalation")
    assert str(escalation["Subject"]).startswith("[PMO ESCALATION] Project PRJ-LATE at risk for")
    plain = escalation.get_body(("plain",))
    assert plain is not None
    text = plain.get_content()
    assert "Health now: red" in text
    assert "SPI 0.60 is below 0.90" in text
    assert "https://pmo.example.com/dashboard/projects/PRJ-LATE" in text

    escalated = await api.deliveries(event_type="pmo.project-escalated")
    assert [d["project_id"] for d in escalated] == ["PRJ-LATE"]


async def test_the_weekly_digest_is_sent_once_per_slot_by_two_replicas(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    smtp_server: MailSink,
    api_for: ApiFor,
) -> None:
    mail = {**QUICK, **smtp_settings(smtp_server), "digest_timezone": "Europe/Berlin"}
    # First a replica whose digest is not due, to learn the portfolio from the events.
    learner = await start_service(
        "notifications", **mail, digest_schedule="0 8 1 1 *", digest_catch_up=timedelta(0)
    )
    api = api_for(learner)
    await api.subscribe(
        name="PMO weekly",
        channel="email",
        recipient="pmo@example.com",
        event_types=["portfolio-digest"],
    )
    await api.subscribe(
        name="Finance weekly",
        channel="email",
        recipient="finance@example.com",
        event_types=["portfolio-digest"],
        business_unit="Finance",
    )
    await register(enterprise, "PRJ-A", "PRJ-B", "PRJ-DONE")
    await register(enterprise, "PRJ-F", unit="Finance")
    await enterprise.send("project-lifecycle-changed", lifecycle("PRJ-DONE", "active", "completed"))
    await enterprise.send("project-health-assessed", assessed("PRJ-B", spi=0.6))
    # PRJ-A is assessed green; PRJ-F has no status report yet: never shown green by default.
    await enterprise.send("project-health-assessed", assessed("PRJ-A", "green", spi=1.0))
    await enterprise.send(
        "portfolio-reprioritized",
        {
            "strategy_version": 2,
            "projects": [
                {"project_id": p, "score": s, "rank": r, "action": "continue", "why": "fit"}
                for p, s, r in (("PRJ-B", 0.9, 1), ("PRJ-A", 0.7, 2), ("PRJ-F", 0.5, 3))
            ],
        },
        key="2",
    )
    await enterprise.send(
        "resource-allocated",
        {
            "request_id": "REQ-1",
            "project_id": "PRJ-A",
            "skill": "architect",
            "fte_granted": 0.5,
            "fte_requested": 2.0,
            "weeks": ["2026-W48"],
            "status": "partial",
            "reason": "capacity",
        },
    )

    async def learned() -> dict[str, Any] | None:
        preview: dict[str, Any] = (await api.client.get("/portfolio")).json()
        lines = {line["project_id"]: line for line in preview["lines"]}
        complete = (
            set(lines) == {"PRJ-A", "PRJ-B", "PRJ-F"}
            and lines["PRJ-B"]["health"] == "red"
            and lines["PRJ-A"]["health"] == "green"
            and lines["PRJ-F"]["rank"] == 3
            and lines["PRJ-A"]["shortfall_fte"] == 1.5
        )
        return preview if complete else None

    preview = await eventually(learned, timeout=30, what="the portfolio learned from the events")
    assert preview["totals"] == {
        "projects": 3,
        "red": 1,
        "amber": 0,
        "green": 1,
        "no_report_yet": 1,
        "shortfall_fte": 1.5,
    }
    assert {line["project_id"]: line["health"] for line in preview["lines"]}["PRJ-F"] == (
        "no report yet"
    )
    await stop_serving(learner.server, learner.task)

    # Two replicas whose slot (a minute ago, Berlin time) is due: one digest between them.
    berlin_minute_ago = (datetime.now(UTC) - timedelta(minutes=1)).astimezone(
        ZoneInfo("Europe/Berlin")
    )
    due = {
        **mail,
        "digest_schedule": f"{berlin_minute_ago.minute} {berlin_minute_ago.hour} * * *",
        "digest_catch_up": timedelta(hours=1),
    }
    first, second = await asyncio.gather(
        start_service("notifications", **due), start_service("notifications", **due)
    )

    async def digests() -> bool:
        return bool(smtp_server.to("pmo@example.com") and smtp_server.to("finance@example.com"))

    await eventually(digests, timeout=30, what="the portfolio digest")
    await asyncio.sleep(1.5)  # both clocks tick several more times: nothing more is sent
    (digest,) = smtp_server.to("pmo@example.com")
    (finance,) = smtp_server.to("finance@example.com")

    runs = (await api_for(first).client.get("/digests")).json()
    assert len(runs) == 1
    assert runs[0]["deliveries"] == 2
    assert runs[0]["projects"] == 3
    assert datetime.fromisoformat(runs[0]["slot"]) == berlin_minute_ago.replace(
        second=0, microsecond=0
    )
    claimed = [
        _digests_metric((await api_for(replica).client.get("/metrics")).text)
        for replica in (first, second)
    ]
    assert sorted(claimed) == [0.0, 1.0]

    assert str(digest["Subject"]).endswith("1 red, 0 amber of 3 projects")
    plain = digest.get_body(("plain",))
    html = digest.get_body(("html",))
    assert plain is not None
    assert html is not None
    text = plain.get_content()
    assert (
        "3 running projects: 1 red, 0 amber, 1 green, 1 with no report yet; 1.50 FTE short." in text
    )
    rows = [line for line in text.splitlines() if "Project PRJ-" in line]
    assert [row.split()[0] for row in rows] == ["1", "2", "3"]
    assert "Project PRJ-B" in rows[0]
    assert "red" in rows[0]
    assert "0.60" in rows[0]
    assert "Project PRJ-A" in rows[1]
    assert "1.50" in rows[1]
    assert "PRJ-DONE" not in text
    assert 'href="https://pmo.example.com/dashboard/projects/PRJ-B"' in html.get_content()
    finance_text = finance.get_body(("plain",))
    assert finance_text is not None
    assert "1 running project:" in finance_text.get_content()
    assert "Project PRJ-F" in finance_text.get_content()
    assert "Project PRJ-A" not in finance_text.get_content()


def _digests_metric(text: str) -> float:
    for line in text.splitlines():
        if line.startswith("pmo_notification_digests_total "):
            return float(line.split()[1])
    return 0.0
