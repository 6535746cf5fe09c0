"""An at-risk alert reaches its subscribers by e-mail, signed webhook and Slack, once each."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from services.notifications.domain.alerts import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature_is_valid,
)
from tests.conftest import ServiceStarter, bearer
from tests.harness import Enterprise, eventually, webhook_receiver
from tests.notifications.conftest import (
    QUICK,
    ApiFor,
    MailSink,
    at_risk,
    register,
    smtp_settings,
)

pytestmark = pytest.mark.e2e

SECRET = "subscriber-secret-0123456789"


async def test_an_at_risk_alert_goes_out_by_email_signed_webhook_and_slack_and_never_twice(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    smtp_server: MailSink,
    api_for: ApiFor,
) -> None:
    async with webhook_receiver() as hook, webhook_receiver() as slack:
        service = await start_service("notifications", **QUICK, **smtp_settings(smtp_server))
        api = api_for(service)
        director = await api.subscribe(
            name="PMO director",
            channel="email",
            recipient="director@example.com",
            event_types=["project-at-risk"],
        )
        tool = await api.subscribe(
            name="PMO tool",
            channel="webhook",
            recipient=hook.url,
            secret=SECRET,
            event_types=["project-at-risk", "project-recovered"],
            business_unit="Digital",
        )
        await api.subscribe(
            name="#pmo-alerts",
            channel="slack",
            recipient=slack.url,
            event_types=["project-at-risk"],
            min_severity="red",
        )
        # Not for this alert: another business unit, another project, another event type.
        unwanted: dict[str, Any]
        for unwanted in (
            {"business_unit": "Finance"},
            {"project_id": "PRJ-OTHER"},
            {"event_types": ["project-recovered"]},
        ):
            fields: dict[str, Any] = {
                "name": "not for this alert",
                "channel": "email",
                "recipient": "nobody@example.com",
                "event_types": ["project-at-risk"],
            }
            await api.subscribe(**(fields | unwanted))

        await register(enterprise, "PRJ-ORION")
        alert_id = await enterprise.send("project-at-risk", at_risk("PRJ-ORION"))

        await eventually(
            lambda: _all_arrived(hook.received, slack.received, smtp_server),
            timeout=30,
            what="the alert by webhook, Slack and e-mail",
        )

        # Webhook: signed as documented, verifiable by the receiver with its secret.
        ((headers, body),) = hook.received
        assert signature_is_valid(
            SECRET,
            headers[TIMESTAMP_HEADER.lower()],
            body,
            headers[SIGNATURE_HEADER.lower()],
            now=time.time(),
        )
        assert not signature_is_valid(
            "someone-elses-secret-xyz",
            headers[TIMESTAMP_HEADER.lower()],
            body,
            headers[SIGNATURE_HEADER.lower()],
            now=time.time(),
        )
        sent = json.loads(body)
        assert sent["event_id"] == alert_id
        assert sent["event_type"] == "pmo.project-at-risk"
        assert sent["subscription_id"] == tool["id"]
        assert sent["data"]["severity"] == "red"
        assert sent["project"]["name"] == "Project PRJ-ORION"
        assert sent["link"] == "https://pmo.example.com/dashboard/projects/PRJ-ORION"
        assert sent["title"] == "RED: Project PRJ-ORION is at risk (schedule)"
        assert headers[DELIVERY_HEADER.lower()] == str(sent["delivery_id"])
        assert headers["traceparent"]

        # Slack: a readable message with blocks, the reasons and numbers, the link.
        ((_, slack_body),) = slack.received
        message = json.loads(slack_body)
        assert message["text"] == ":red_circle: Project PRJ-ORION is red"
        section = message["blocks"][1]["text"]["text"]
        assert "*Schedule*: SPI 0.60 is below 0.90 _(SPI 0.60, threshold 0.90)_" in section
        assert "PRJ-ORION" in message["blocks"][2]["elements"][0]["text"]

        # E-mail: to the director only, plain text and HTML, with the reasons and the link.
        (mail,) = smtp_server.to("director@example.com")
        assert mail["Subject"] == "[PMO RED] Project PRJ-ORION is at risk"
        assert mail["From"] == "PMO <pmo@example.com>"
        plain = mail.get_body(("plain",))
        html = mail.get_body(("html",))
        assert plain is not None
        assert html is not None
        assert "Schedule: SPI 0.60 is below 0.90 (SPI 0.60, threshold 0.90)" in plain.get_content()
        assert 'href="https://pmo.example.com/dashboard/projects/PRJ-ORION"' in html.get_content()
        assert smtp_server.to("nobody@example.com") == []

        # The same event again (a redelivery) sends nothing new.
        await enterprise.send("project-at-risk", at_risk("PRJ-ORION"), event_id=alert_id)
        await enterprise.send("project-at-risk", at_risk("PRJ-NEXT-MARKER"))
        await register(enterprise, "PRJ-NEXT-MARKER")

        async def marker_handled() -> bool:
            return bool(await api.deliveries(project_id="PRJ-NEXT-MARKER"))

        await eventually(marker_handled, timeout=30, what="the event after the redelivery")
        mine = [
            d
            for d in await api.deliveries(project_id="PRJ-ORION")
            if d["channel"] != "webhook" or d["subscription_id"] == tool["id"]
        ]
        assert sorted((d["channel"], d["state"], d["attempts"]) for d in mine) == [
            ("email", "delivered", 1),
            ("slack", "delivered", 1),
            ("webhook", "delivered", 1),
        ]
        # The marker may have been delivered too by now: count what is about PRJ-ORION.
        assert sum(b"PRJ-ORION" in body for _, body in hook.received) == 1
        assert sum(b"PRJ-ORION" in body for _, body in slack.received) == 1
        assert sum("PRJ-ORION" in m["Subject"] for m in smtp_server.to("director@example.com")) == 1

        detail = await api.delivery(next(d["id"] for d in mine if d["channel"] == "email"))
        assert [(a["number"], a["outcome"]) for a in detail["attempt_log"]] == [(1, "delivered")]
        assert detail["subscription_id"] == director["id"]

        # Counted per channel (the marker's own deliveries may be counted too by now).
        metrics = (await api.client.get("/metrics")).text
        for channel in ("email", "slack", "webhook"):
            found = re.search(
                rf'pmo_alerts_delivered_total{{channel="{channel}",service="notifications"}} (\S+)',
                metrics,
            )
            assert found is not None, channel
            assert float(found.group(1)) >= 1.0, channel


async def _all_arrived(hook: Sequence[object], slack: Sequence[object], smtp: MailSink) -> bool:
    return bool(hook and slack and smtp.to("director@example.com"))


async def test_subscriptions_are_managed_by_admins_read_by_all_and_never_show_a_secret(
    start_service: ServiceStarter, api_for: ApiFor
) -> None:
    service = await start_service("notifications", alert_webhook_url="http://127.0.0.1:9/x")
    api = api_for(service)
    created = await api.subscribe(
        name="tool",
        channel="webhook",
        recipient="https://tool.example.com/pmo",
        secret=SECRET,
        event_types=["project-at-risk"],
    )
    assert created["has_secret"] is True
    assert SECRET not in json.dumps(created)
    slack = await api.subscribe(
        name="slack",
        channel="slack",
        recipient="https://hooks.slack.example.com/services/T0/B0/token",
        event_types=["portfolio-digest"],
    )
    async with httpx.AsyncClient(base_url=service.base_url) as anonymous:
        viewer = bearer("viewer", "viewer@example.com")
        listed = (await anonymous.get("/subscriptions", headers=viewer)).json()
        assert SECRET not in json.dumps(listed)
        by_id = {entry["id"]: entry for entry in listed}
        # The Slack URL is a credential: a viewer sees only where it points.
        assert by_id[slack["id"]]["recipient"] == "https://hooks.slack.example.com/…"
        environment = next(e for e in listed if e["managed_by"] == "environment")
        assert environment["recipient"] == "http://127.0.0.1:9/…"  # a viewer: host only
        assert environment["event_types"] == ["project-at-risk"]

        assert (await anonymous.get("/subscriptions")).status_code == 401
        refused = await anonymous.post(
            "/subscriptions",
            headers=viewer,
            json={
                "name": "x",
                "channel": "email",
                "recipient": "a@example.com",
                "event_types": ["project-at-risk"],
            },
        )
        assert refused.status_code == 403
        pm = bearer("project_manager", "pm@example.com")
        assert (
            await anonymous.delete(f"/subscriptions/{slack['id']}", headers=pm)
        ).status_code == 403

    bad: list[tuple[dict[str, Any], str]] = [
        ({"channel": "webhook", "recipient": "https://x.example.com"}, "needs a `secret`"),
        (
            {"channel": "webhook", "recipient": "https://x.example.com", "secret": "short"},
            "at least 16",
        ),
        ({"channel": "email", "recipient": "not-an-address"}, "e-mail subscription needs"),
        ({"channel": "slack", "recipient": "ftp://x"}, "http(s) URL"),
        (
            {"channel": "email", "recipient": "a@example.com", "event_types": []},
            "escalation_target",
        ),
    ]
    for fields, message in bad:
        body: dict[str, Any] = {"name": "bad", "event_types": ["project-at-risk"], **fields}
        response = await api.client.post("/subscriptions", json=body)
        assert response.status_code == 422, body
        assert message in response.text
    unknown_type = await api.client.post(
        "/subscriptions",
        json={
            "name": "x",
            "channel": "email",
            "recipient": "a@example.com",
            "event_types": ["project-exploded"],
        },
    )
    assert unknown_type.status_code == 422

    changed = await api.client.patch(
        f"/subscriptions/{created['id']}",
        json={"min_severity": "red", "secret": "a-new-secret-of-20ch"},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["min_severity"] == "red"
    assert "a-new-secret" not in changed.text
    environment_id = next(
        e["id"]
        for e in (await api.client.get("/subscriptions")).json()
        if e["managed_by"] == "environment"
    )
    refused_change = await api.client.patch(f"/subscriptions/{environment_id}", json={"name": "x"})
    assert refused_change.status_code == 409
    assert "PMO_ALERT_WEBHOOK_URL" in refused_change.text
    assert (await api.client.delete(f"/subscriptions/{slack['id']}")).status_code == 204
    assert (await api.client.get(f"/subscriptions/{slack['id']}")).status_code == 404


async def test_bad_urls_nulls_and_huge_ids_answer_422_and_webhook_urls_are_masked(
    start_service: ServiceStarter, api_for: ApiFor
) -> None:
    service = await start_service("notifications")
    api = api_for(service)
    token_url = "https://tool.example.com/hooks/secret-token-123"
    created = await api.subscribe(
        name="tool",
        channel="webhook",
        recipient=token_url,
        secret=SECRET,
        event_types=["project-at-risk"],
    )
    # A recipient httpx would refuse at every attempt is refused when subscribing or patching.
    for recipient in ("http://example.com:abc/hook", "http:///no-host"):
        for channel, extra in (("webhook", {"secret": SECRET}), ("slack", {})):
            response = await api.client.post(
                "/subscriptions",
                json={
                    "name": "bad",
                    "channel": channel,
                    "recipient": recipient,
                    "event_types": ["project-at-risk"],
                    **extra,
                },
            )
            assert response.status_code == 422, (recipient, channel, response.text)
            assert "http(s) URL with a host" in response.text
        patched = await api.client.patch(
            f"/subscriptions/{created['id']}", json={"recipient": recipient}
        )
        assert patched.status_code == 422, patched.text
        assert "http(s) URL with a host" in patched.text

    # Null for a field that cannot be empty: 422 naming it; nullable ones may be cleared.
    for name in ("recipient", "name", "min_severity", "enabled", "channel", "event_types"):
        response = await api.client.patch(f"/subscriptions/{created['id']}", json={name: None})
        assert response.status_code == 422, (name, response.text)
        assert f"{name} cannot be emptied" in response.text
    cleared = await api.client.patch(
        f"/subscriptions/{created['id']}", json={"project_id": None, "throttle_window_s": None}
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["recipient"] == token_url  # an administrator sees it whole

    # A webhook URL often carries a token: other roles see only where it points.
    async with httpx.AsyncClient(base_url=service.base_url) as anonymous:
        viewer = bearer("viewer", "viewer@example.com")
        listed = (await anonymous.get("/subscriptions", headers=viewer)).json()
        one = (await anonymous.get(f"/subscriptions/{created['id']}", headers=viewer)).json()
    assert "secret-token-123" not in json.dumps(listed)
    assert one["recipient"] == "https://tool.example.com/…"

    # Ids beyond int4 name nothing: 422, not a database error.
    huge = 2**31
    assert (await api.client.get(f"/deliveries/{huge}")).status_code == 422
    assert (await api.client.get(f"/deliveries/{2**31 - 1}")).status_code == 404
    assert (await api.client.post(f"/deliveries/{huge}/retry")).status_code == 422
    assert (await api.client.get("/deliveries", params={"before_id": huge})).status_code == 422
    assert (await api.client.get("/deliveries", params={"before_id": 2**31 - 1})).json() == []
    # A state no delivery can have is refused, naming the ones there are (it listed nothing).
    refused = await api.client.get("/deliveries", params={"state": "bogus"})
    assert refused.status_code == 422
    assert "'held'" in json.dumps(refused.json())
    assert (await api.client.get("/deliveries", params={"state": "held"})).status_code == 200


async def test_without_an_alert_webhook_url_the_builtin_webhook_queues_nothing(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    smtp_server: MailSink,
    api_for: ApiFor,
) -> None:
    """PMO_ALERT_WEBHOOK_URL unset: no channel, so no delivery is queued for the environment's
    subscription (none `no_channel`, none failed); the other subscribers get theirs."""
    service = await start_service("notifications", **QUICK, **smtp_settings(smtp_server))
    api = api_for(service)
    assert service.runtime.settings.alert_webhook_url is None
    listed = (await api.client.get("/subscriptions")).json()
    environment = next(s for s in listed if s["managed_by"] == "environment")
    assert environment["enabled"] is False
    await api.subscribe(
        name="PMO director",
        channel="email",
        recipient="director@example.com",
        event_types=["project-at-risk"],
    )
    await register(enterprise, "PRJ-QUIET")
    await enterprise.send("project-at-risk", at_risk("PRJ-QUIET"))

    async def mailed() -> list[dict[str, Any]] | None:
        found = await api.deliveries(project_id="PRJ-QUIET")
        return found if any(d["state"] == "delivered" for d in found) else None

    deliveries = await eventually(mailed, timeout=30, what="the alert delivered by e-mail")
    assert [(d["channel"], d["state"]) for d in deliveries] == [("email", "delivered")]
    assert await api.deliveries(state="no_channel") == []
    assert await api.deliveries(subscription_id=environment["id"]) == []
    metrics = (await api.client.get("/metrics")).text
    assert re.search(r"^pmo_alerts_failed_total\{[^}]*\} [1-9]", metrics, re.MULTILINE) is None
