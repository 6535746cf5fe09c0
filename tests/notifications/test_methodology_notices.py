"""Lessons learned suggested to a new project's manager and gate reviews reach their subscribers
(the project manager, the PMO) once each, by the same subscriptions and delivery queue as every
other notice; a malformed one is dead-lettered with its reason (issue 13.2)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import ServiceStarter
from tests.harness import Enterprise, eventually, webhook_receiver
from tests.notifications.conftest import (
    QUICK,
    ApiFor,
    MailSink,
    NotificationsApi,
    register,
    smtp_settings,
    until_known,
)

pytestmark = pytest.mark.e2e

MANAGER = "ada.lovelace@example.com"  # the manager of every project `register` registers
LINK = "https://pmo.example.com/dashboard/projects/{}"


def lessons(project_id: str, *suggested: tuple[int, str, str, list[str]]) -> dict[str, Any]:
    """The registry's lessons-suggested: (lesson id, source project, title, similarity) each."""
    return {
        "project_id": project_id,
        "manager": MANAGER,
        "lessons": [
            {"lesson_id": lesson_id, "project_id": source, "title": title, "similarity": shared}
            for lesson_id, source, title, shared in suggested
        ],
    }


def review(project_id: str, decision: str, **fields: Any) -> dict[str, Any]:
    """The registry's gate-reviewed for the gate proposed -> approved of the stage_gate model."""
    now = datetime.now(UTC).isoformat()
    return {
        "project_id": project_id,
        "review_id": 1,
        "from": "proposed",
        "to": "approved",
        "decision": decision,
        "reviewer": "grace.hopper",
        "reviewed_at": now,
        "deliverables": [
            {
                "name": "business_case",
                "evidence": "https://docs.example.com/business-case-v2",
                "submitted_by": "ada.lovelace",
                "submitted_at": now,
            }
        ],
        "evidence": "Business case signed by the sponsor",
        "methodology": "stage_gate",
        **fields,
    }


async def dead_letter_reasons(api: NotificationsApi, *event_ids: str) -> dict[str, str]:
    """Event id -> dead-letter reason, once notifications dead-lettered every one of them."""

    async def probe() -> dict[str, str] | None:
        found = {
            entry["event_id"]: entry["reason"]
            for entry in (await api.client.get("/dead-letters")).json()
            if entry["event_id"] in event_ids
        }
        return found if len(found) == len(event_ids) else None

    return await eventually(probe, timeout=30, what=f"dead letters of {event_ids}")


async def test_suggested_lessons_reach_the_manager_once_with_titles_sources_and_the_link(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    smtp_server: MailSink,
    api_for: ApiFor,
) -> None:
    service = await start_service("notifications", **QUICK, **smtp_settings(smtp_server))
    api = api_for(service)
    manager = await api.subscribe(
        name="Ada, manager of PRJ-LEO",
        channel="email",
        recipient=MANAGER,
        event_types=["lessons-suggested"],
        project_id="PRJ-LEO",
    )
    await api.subscribe(
        name="another project's manager",
        channel="email",
        recipient="nobody@example.com",
        event_types=["lessons-suggested"],
        project_id="PRJ-OTHER",
    )
    await register(enterprise, "PRJ-APOLLO", "PRJ-LEO")
    # The notice names the projects notifications knows when it renders it (it waits for none):
    # both registrations in, on their own partitions, before the suggestion.
    await until_known(service, "PRJ-APOLLO", "PRJ-LEO")
    suggested = lessons(
        "PRJ-LEO",
        (4, "PRJ-APOLLO", "Freeze the scope before the pilot", ["business_unit", "objectives"]),
        (9, "PRJ-ARCHIVED", "Book the test lab early", ["methodology"]),
    )
    event_id = await enterprise.send("lessons-suggested", suggested)

    async def mailed() -> list[Any]:
        return smtp_server.to(MANAGER)

    (mail,) = await eventually(mailed, timeout=30, what="the lessons e-mail to the manager")
    assert mail["Subject"] == "[PMO] 2 lessons learned for Project PRJ-LEO from similar projects"
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None
    assert html is not None
    text = plain.get_content().replace("\r\n", "\n")
    assert f"{MANAGER}, Project PRJ-LEO (PRJ-LEO) is newly registered." in text
    assert (
        "- Freeze the scope before the pilot\n"
        "  from Project PRJ-APOLLO (PRJ-APOLLO): the same business unit and shared objectives"
    ) in text
    # A lesson of a project notifications never heard of names it by its id: it does not wait.
    assert "- Book the test lab early\n  from PRJ-ARCHIVED: the same methodology" in text
    assert LINK.format("PRJ-LEO") in text
    assert f'href="{LINK.format("PRJ-LEO")}"' in html.get_content()

    # The same event again (a redelivery): the inbox drops it, no second notice is queued.
    await enterprise.send("lessons-suggested", suggested, event_id=event_id)
    reasons = await dead_letter_reasons(api, event_id)
    assert reasons[event_id].startswith(f"duplicate: event {event_id!r}")
    (delivery,) = await api.deliveries(project_id="PRJ-LEO")
    assert (delivery["subscription_id"], delivery["event_id"]) == (manager["id"], event_id)

    async def delivered() -> bool:
        return bool((await api.delivery(delivery["id"]))["state"] == "delivered")

    await eventually(delivered, timeout=30, what="the delivery recorded as delivered")
    assert len(smtp_server.to(MANAGER)) == 1
    assert smtp_server.to("nobody@example.com") == []


async def test_a_gate_review_reaches_the_project_manager_and_the_pmo_passed_or_failed(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    smtp_server: MailSink,
    api_for: ApiFor,
) -> None:
    async with webhook_receiver() as pmo:
        service = await start_service("notifications", **QUICK, **smtp_settings(smtp_server))
        api = api_for(service)
        await api.subscribe(
            name="Ada, manager of PRJ-VEGA",
            channel="email",
            recipient=MANAGER,
            event_types=["gate-reviewed"],
            project_id="PRJ-VEGA",
        )
        office = await api.subscribe(
            name="PMO tool",
            channel="webhook",
            recipient=pmo.url,
            secret="pmo-tool-secret-0123456789",
            event_types=["gate-reviewed", "lessons-suggested"],
        )
        await register(enterprise, "PRJ-VEGA", "PRJ-RIGEL")
        passed_id = await enterprise.send("gate-reviewed", review("PRJ-VEGA", "passed"))
        failed_id = await enterprise.send(
            "gate-reviewed",
            review("PRJ-RIGEL", "failed", deliverables=[], evidence="No business case yet"),
        )

        async def both_at_the_pmo() -> bool:
            return len(pmo.received) == 2 and bool(smtp_server.to(MANAGER))

        await eventually(both_at_the_pmo, timeout=30, what="both reviews at the PMO, one mailed")

        # The PMO: every gate review, passed or failed, with the reviewer and the evidence.
        sent = {body["event_id"]: body for body in (json.loads(b) for _, b in pmo.received)}
        assert {body["subscription_id"] for body in sent.values()} == {office["id"]}
        assert sent[passed_id]["title"] == (
            "Project PRJ-VEGA: gate proposed -> approved passed (grace.hopper)"
        )
        assert sent[passed_id]["link"] == LINK.format("PRJ-VEGA")
        assert sent[passed_id]["data"]["evidence"] == "Business case signed by the sponsor"
        assert sent[failed_id]["title"] == (
            "Project PRJ-RIGEL: gate proposed -> approved failed (grace.hopper)"
        )
        assert sent[failed_id]["event_type"] == "pmo.gate-reviewed"

        # The project manager: their project's review only, in words, with the evidence.
        (mail,) = smtp_server.to(MANAGER)
        assert mail["Subject"] == (
            "[PMO] Project PRJ-VEGA passed the gate from proposed to approved"
        )
        plain = mail.get_body(("plain",))
        assert plain is not None
        text = plain.get_content().replace("\r\n", "\n")
        assert "grace.hopper reviewed the gate of Project PRJ-VEGA (PRJ-VEGA) from proposed to" in (
            text
        )
        assert "(stage gate stage model)" in text
        assert "The project may now move to approved." in text
        assert "Reviewer's evidence: Business case signed by the sponsor" in text
        assert "- business case: https://docs.example.com/business-case-v2 (submitted by" in text
        assert LINK.format("PRJ-VEGA") in text

        # The AsyncAPI document lists both topics among what notifications consumes.
        channels = (await api.client.get("/asyncapi.json")).json()["channels"]
        assert any("gate-reviewed" in name for name in channels), sorted(channels)
        assert any("lessons-suggested" in name for name in channels), sorted(channels)


async def test_malformed_lessons_and_gate_reviews_are_dead_lettered_with_their_reason(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    smtp_server: MailSink,
    api_for: ApiFor,
) -> None:
    service = await start_service("notifications", **QUICK, **smtp_settings(smtp_server))
    api = api_for(service)
    await api.subscribe(
        name="PMO office",
        channel="email",
        recipient="pmo@example.com",
        event_types=["gate-reviewed", "lessons-suggested"],
    )
    await register(enterprise, "PRJ-DENEB")
    no_lessons = await enterprise.send("lessons-suggested", lessons("PRJ-DENEB"))
    undecided = await enterprise.send("gate-reviewed", review("PRJ-DENEB", "postponed"))
    reasons = await dead_letter_reasons(api, no_lessons, undecided)
    assert reasons[no_lessons].startswith("data.lessons:"), reasons
    assert reasons[undecided].startswith("data.decision:"), reasons

    # The consumer goes on: the next, well-formed review is notified, the bad ones never are.
    await enterprise.send("gate-reviewed", review("PRJ-DENEB", "failed"))

    async def mailed() -> list[Any]:
        return smtp_server.to("pmo@example.com")

    (mail,) = await eventually(mailed, timeout=30, what="the well-formed review's notice")
    assert mail["Subject"] == "[PMO] Project PRJ-DENEB failed the gate from proposed to approved"
    assert {d["event_id"] for d in await api.deliveries(project_id="PRJ-DENEB")}.isdisjoint(
        {no_lessons, undecided}
    )
