"""A project's manager gets the notices about their project by e-mail without anyone
subscribing them (issue 13): notifications keeps one system-owned subscription per project,
through the same subscriptions and delivery queue as every other notice."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest

from tests.conftest import ServiceStarter
from tests.harness import Enterprise, eventually
from tests.notifications.conftest import (
    QUICK,
    ApiFor,
    MailSink,
    NotificationsApi,
    charter,
    register,
    smtp_settings,
)
from tests.notifications.test_methodology_notices import MANAGER, lessons, review

pytestmark = pytest.mark.e2e

NEW_MANAGER = "grace.hopper@example.com"


def intervention(project_id: str, kind: str = "accepted") -> dict[str, Any]:
    """Allocation's intervention-accepted (or -declined) for `project_id`."""
    now = datetime.now(UTC).isoformat()
    decided: dict[str, Any] = (
        {"request_id": "INT-1", "accepted_by": "pmo-admin", "note": "", "accepted_at": now}
        if kind == "accepted"
        else {"declined_by": "pmo-admin", "reason": "in hand", "declined_at": now}
    )
    return {
        "project_id": project_id,
        "intervention_id": "INT-1",
        "origin": "risk",
        "specialty": "schedule-recovery",
        "expert_id": "exp-ana",
        "fte": 0.5,
        "start": "2026-11-30",
        "end": "2027-01-08",
        **decided,
    }


async def managers_subscriptions(api: NotificationsApi) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = (await api.client.get("/subscriptions")).json()
    return [s for s in listed if s["managed_by"] == "project-manager"]


async def subscription_of(api: NotificationsApi, project_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        found = [s for s in await managers_subscriptions(api) if s["project_id"] == project_id]
        return found[0] if found else None

    return await eventually(probe, timeout=30, what=f"the manager's subscription of {project_id}")


async def test_the_manager_gets_the_accepted_intervention_and_the_lessons_once_unsubscribed(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    smtp_server: MailSink,
    api_for: ApiFor,
) -> None:
    service = await start_service(
        "notifications", **QUICK, **smtp_settings(smtp_server, managers=True)
    )
    api = api_for(service)
    registered = charter("PRJ-ATLAS")
    registration = await enterprise.send("project-registered", registered)
    kept = await subscription_of(api, "PRJ-ATLAS")
    assert (kept["channel"], kept["recipient"], kept["enabled"]) == ("email", MANAGER, True)
    assert kept["name"] == "Manager of Project PRJ-ATLAS"
    assert kept["escalation_target"] is True
    assert set(kept["event_types"]) >= {
        "intervention-accepted",
        "lessons-suggested",
        "gate-reviewed",
        "project-at-risk",
        "project-recovered",
    }

    # Ada manages a second, new project too: its suggested lessons are the other e-mail (two
    # notices of one project within the throttle window would make one e-mail and a summary).
    await register(enterprise, "PRJ-GEMINI")
    accepted = intervention("PRJ-ATLAS")
    accepted_id = await enterprise.send("intervention-accepted", accepted)
    # Redelivered: the same project-registered and the same intervention-accepted again.
    await enterprise.send("project-registered", registered, event_id=registration)
    await enterprise.send("intervention-accepted", accepted, event_id=accepted_id)
    await enterprise.send("project-registered", registered)  # the same facts, a new event
    await enterprise.send(
        "lessons-suggested",
        lessons("PRJ-GEMINI", (4, "PRJ-ATLAS", "Freeze the scope", ["business_unit"])),
    )

    async def both_mailed() -> list[EmailMessage] | None:
        mails = smtp_server.to(MANAGER)
        return mails if len(mails) >= 2 else None

    mails = await eventually(both_mailed, timeout=30, what="both e-mails to the manager")
    subjects = sorted(str(mail["Subject"]).strip() for mail in mails)
    assert len(subjects) == 2, subjects
    assert subjects[0] == "[PMO] 1 lesson learned for Project PRJ-GEMINI from similar projects"
    assert subjects[1] == "[PMO] PMO expert exp-ana sent to Project PRJ-ATLAS (schedule recovery)"

    # The redelivered intervention was recognised (the inbox's duplicate), and queued nothing.
    async def duplicate_seen() -> bool:
        found = (await api.client.get("/dead-letters")).json()
        return any(
            entry["event_id"] == accepted_id and entry["reason"].startswith("duplicate")
            for entry in found
        )

    await eventually(duplicate_seen, timeout=30, what="the redelivery recognised")
    atlas = [s for s in await managers_subscriptions(api) if s["project_id"] == "PRJ-ATLAS"]
    assert [s["id"] for s in atlas] == [kept["id"]]
    deliveries = await api.deliveries(subscription_id=kept["id"])
    assert [(d["event_type"], d["event_id"]) for d in deliveries] == [
        ("pmo.intervention-accepted", accepted_id)
    ]
    gemini = await subscription_of(api, "PRJ-GEMINI")
    assert [d["event_type"] for d in await api.deliveries(subscription_id=gemini["id"])] == [
        "pmo.lessons-suggested"
    ]


async def test_a_new_manager_takes_the_subscription_over_and_disabling_it_stops_it(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    smtp_server: MailSink,
    api_for: ApiFor,
) -> None:
    service = await start_service(
        "notifications", **QUICK, **smtp_settings(smtp_server, managers=True)
    )
    api = api_for(service)
    office = await api.subscribe(
        name="PMO office",
        channel="email",
        recipient="office@example.com",
        event_types=["gate-reviewed", "intervention-declined"],
    )
    await register(enterprise, "PRJ-HERMES")
    first = await subscription_of(api, "PRJ-HERMES")
    await enterprise.send("project-registered", {**charter("PRJ-HERMES"), "manager": NEW_MANAGER})

    async def moved() -> dict[str, Any] | None:
        found = await subscription_of(api, "PRJ-HERMES")
        return found if found["recipient"] == NEW_MANAGER else None

    kept = await eventually(moved, timeout=30, what="the subscription moved to the new manager")
    assert kept["id"] == first["id"]
    await enterprise.send("gate-reviewed", review("PRJ-HERMES", "passed"))

    async def mailed_new() -> list[EmailMessage] | None:
        return smtp_server.to(NEW_MANAGER) or None

    (mail,) = await eventually(mailed_new, timeout=30, what="the gate review to the new manager")
    assert "PRJ-HERMES passed the gate" in str(mail["Subject"])
    assert smtp_server.to(MANAGER) == []

    # Only `enabled` is the administrator's: the rest follows the registry.
    changed = await api.client.patch(
        f"/subscriptions/{kept['id']}", json={"recipient": "x@example.com"}
    )
    assert changed.status_code == 409, changed.text
    assert "only `enabled`" in changed.json()["detail"]
    deleted = await api.client.delete(f"/subscriptions/{kept['id']}")
    assert deleted.status_code == 409, deleted.text
    disabled = await api.client.patch(f"/subscriptions/{kept['id']}", json={"enabled": False})
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["enabled"] is False

    # A later registration does not switch it on again; the notice reaches the office only.
    await enterprise.send("project-registered", {**charter("PRJ-HERMES"), "manager": NEW_MANAGER})
    declined_id = await enterprise.send("intervention-declined", intervention("PRJ-HERMES", "x"))

    async def at_the_office() -> list[dict[str, Any]] | None:
        found = await api.deliveries(subscription_id=office["id"])
        return found if any(d["event_id"] == declined_id for d in found) else None

    await eventually(at_the_office, timeout=30, what="the declined intervention at the office")
    assert [d["event_type"] for d in await api.deliveries(subscription_id=kept["id"])] == [
        "pmo.gate-reviewed"
    ]
    assert (await subscription_of(api, "PRJ-HERMES"))["enabled"] is False
    assert len(smtp_server.to(NEW_MANAGER)) == 1


async def test_without_smtp_nothing_is_queued_for_the_managers(
    start_service: ServiceStarter, enterprise: Enterprise, api_for: ApiFor
) -> None:
    """SMTP unset: the managers' subscriptions are kept but have no channel, so nothing is
    queued for them (none `no_channel`, none failed); another subscriber gets its notice."""
    service = await start_service("notifications", **QUICK)
    api = api_for(service)
    assert service.runtime.settings.smtp_host is None
    assert service.runtime.settings.notify_project_managers is True
    pmo = await api.subscribe(
        name="PMO tool",
        channel="slack",
        recipient="https://hooks.slack.com/services/T0/B0/never-sent",
        event_types=["intervention-accepted"],
    )
    await register(enterprise, "PRJ-MUTE")
    kept = await subscription_of(api, "PRJ-MUTE")
    accepted_id = await enterprise.send("intervention-accepted", intervention("PRJ-MUTE"))

    async def queued_for_the_pmo() -> list[dict[str, Any]] | None:
        found = await api.deliveries(subscription_id=pmo["id"])
        return found if any(d["event_id"] == accepted_id for d in found) else None

    await eventually(queued_for_the_pmo, timeout=30, what="the notice queued for the PMO tool")
    assert await api.deliveries(subscription_id=kept["id"]) == []
    assert await api.deliveries(state="no_channel") == []


async def test_switched_off_no_manager_is_subscribed(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    smtp_server: MailSink,
    api_for: ApiFor,
) -> None:
    """`notify_project_managers` off: no subscription is made for them, none is mailed."""
    service = await start_service("notifications", **QUICK, **smtp_settings(smtp_server))
    api = api_for(service)
    office = await api.subscribe(
        name="PMO office",
        channel="email",
        recipient="office@example.com",
        event_types=["intervention-accepted"],
    )
    await register(enterprise, "PRJ-OFF")
    await enterprise.send("intervention-accepted", intervention("PRJ-OFF"))

    async def at_the_office() -> list[dict[str, Any]] | None:
        return await api.deliveries(subscription_id=office["id"], state="delivered") or None

    await eventually(at_the_office, timeout=30, what="the intervention at the office")
    assert await managers_subscriptions(api) == []
    assert smtp_server.to(MANAGER) == []
