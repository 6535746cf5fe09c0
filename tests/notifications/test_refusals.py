"""A receiver that refuses for good disables its subscription, tells the administrators, and only
an administrator enables it again (issue 12.7): HTTP 3xx (never followed), 401, 403, 404, 410;
a mail server's permanent refusal of the mailbox. A refusal of one message does not."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import ServiceStarter, bearer
from tests.harness import Enterprise, eventually, webhook_receiver
from tests.notifications.conftest import (
    QUICK,
    ApiFor,
    MailSink,
    NotificationsApi,
    answering_receiver,
    at_risk,
    register,
    smtp_settings,
)

pytestmark = pytest.mark.e2e

SECRET = "subscriber-secret-0123456789"
FINAL = ("delivered", "dead", "cancelled")


def webhook(url: str, name: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "channel": "webhook",
        "recipient": url,
        "secret": SECRET,
        "event_types": ["project-at-risk"],
        "throttle_window_s": 0,
        **fields,
    }


async def final_deliveries(api: NotificationsApi, subscription: dict[str, Any], n: int) -> bool:
    found = await api.deliveries(subscription_id=subscription["id"])
    return len(found) >= n and all(d["state"] in FINAL for d in found)


async def subscription(api: NotificationsApi, found: dict[str, Any]) -> dict[str, Any]:
    response = await api.client.get(f"/subscriptions/{found['id']}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_http_receivers_refusing_for_good_are_disabled_with_why_and_when_and_admins_told(
    start_service: ServiceStarter, enterprise: Enterprise, api_for: ApiFor
) -> None:
    async with (
        answering_receiver(410, path="hook/gone-token-1") as gone,
        answering_receiver(404, path="hook/missing-token-2") as missing,
        answering_receiver(403, path="hook/revoked-token-3") as revoked,
        answering_receiver(400, path="hook/picky") as picky,
        answering_receiver(308, path="services/T0/B0/moved-token-4") as moved,
        webhook_receiver() as new_home,
        webhook_receiver() as admins,
        webhook_receiver() as healthy,
    ):
        # Where the old address redirects to: a redirect is refused and never followed.
        moved.headers["Location"] = new_home.url
        service = await start_service("notifications", **QUICK)
        api = api_for(service)
        subs = {
            "gone": await api.subscribe(**webhook(gone.url, "gone")),
            "missing": await api.subscribe(**webhook(missing.url, "missing")),
            "revoked": await api.subscribe(**webhook(revoked.url, "revoked")),
            "moved": await api.subscribe(
                name="moved",
                channel="slack",
                recipient=moved.url,
                event_types=["project-at-risk"],
                throttle_window_s=0,
            ),
            "picky": await api.subscribe(**webhook(picky.url, "picky")),
            "healthy": await api.subscribe(**webhook(healthy.url, "healthy")),
        }
        await api.subscribe(
            **webhook(admins.url, "PMO administrators", event_types=["subscription-disabled"])
        )
        await register(enterprise, "PRJ-GONE")
        await enterprise.send("project-at-risk", at_risk("PRJ-GONE"))

        for name, sub in subs.items():
            await eventually(
                lambda sub=sub: final_deliveries(api, sub, 1),  # type: ignore[misc]
                timeout=30,
                what=f"the delivery to {name} final",
            )
        now = {name: await subscription(api, sub) for name, sub in subs.items()}
        reasons = {name: view["disabled_reason"] for name, view in now.items()}
        assert reasons["gone"] == "the receiver is gone (HTTP 410 Gone)"
        assert reasons["missing"] == "the receiver is gone (HTTP 404 Not Found)"
        assert reasons["revoked"] == "the receiver refuses our requests (HTTP 403 Forbidden)"
        assert reasons["moved"] == (
            f"the receiver redirects to http://{urlsplit(new_home.url).netloc}/… "
            "(HTTP 308 Permanent Redirect); redirects are not followed: subscribe the new "
            "address instead"
        )
        for name in ("gone", "missing", "revoked", "moved"):
            assert now[name]["enabled"] is False, name
            assert now[name]["disabled_at"] is not None, name
        # One message refused (400) is that delivery's end, not the subscription's.
        for name in ("picky", "healthy"):
            assert now[name]["enabled"] is True, name
            assert now[name]["disabled_reason"] is None, name
        (picky_delivery,) = await api.deliveries(subscription_id=subs["picky"]["id"])
        assert picky_delivery["state"] == "dead"
        (gone_delivery,) = await api.deliveries(subscription_id=subs["gone"]["id"])
        assert gone_delivery["state"] == "dead"
        assert gone_delivery["attempts"] == 1
        assert new_home.received == []  # the redirect was not followed

        # The administrators hear of each, once, with the reason and no secret path.
        async def told() -> list[dict[str, Any]] | None:
            notices = [json.loads(body) for _, body in admins.received]
            return notices if len(notices) >= 4 else None

        notices = await eventually(told, timeout=30, what="the administrators told")
        assert len(notices) == 4
        assert {n["event_type"] for n in notices} == {"pmo.subscription-disabled"}
        by_name = {n["data"]["disabled"]["name"]: n for n in notices}
        assert set(by_name) == {"gone", "missing", "revoked", "moved"}
        assert by_name["gone"]["title"] == (
            'Subscription "gone" (webhook) disabled: the receiver is gone (HTTP 410 Gone)'
        )
        assert by_name["moved"]["data"]["disabled"]["recipient"].endswith("/…")
        assert "token" not in json.dumps(notices)

        # A later alert goes to nobody gone; the healthy subscriber still gets it.
        await register(enterprise, "PRJ-LATER")
        await enterprise.send("project-at-risk", at_risk("PRJ-LATER"))
        await eventually(
            lambda: final_deliveries(api, subs["healthy"], 2),
            timeout=30,
            what="the second alert delivered",
        )
        assert [len(r.received) for r in (gone, missing, revoked, moved)] == [1, 1, 1, 1]
        assert len(picky.received) == 2
        metrics = (await api.client.get("/metrics")).text
        found = re.search(
            r'pmo_notification_subscriptions_disabled_total\{channel="webhook"\} (\S+)',
            metrics,
        )
        assert found is not None
        assert float(found.group(1)) == 3.0

        # Readers see it; only an administrator enables it again.
        async with httpx.AsyncClient(base_url=service.base_url) as other:
            viewer = bearer("viewer", "viewer@example.com")
            seen = await other.get(f"/subscriptions/{subs['gone']['id']}", headers=viewer)
            assert seen.json()["disabled_reason"] == reasons["gone"]
            refused = await other.post(
                f"/subscriptions/{subs['gone']['id']}/enable", headers=viewer
            )
            assert refused.status_code == 403
            pm = bearer("project_manager", "pm@example.com")
            refused = await other.post(f"/subscriptions/{subs['gone']['id']}/enable", headers=pm)
            assert refused.status_code == 403
        gone.status = 200
        enabled = await api.client.post(f"/subscriptions/{subs['gone']['id']}/enable")
        assert enabled.status_code == 200, enabled.text
        assert enabled.json()["enabled"] is True
        assert enabled.json()["disabled_reason"] is None
        assert enabled.json()["disabled_at"] is None
        await enterprise.send("project-at-risk", at_risk("PRJ-GONE", severity="amber"))
        await eventually(
            lambda: final_deliveries(api, subs["gone"], 2),
            timeout=30,
            what="a delivery to the enabled subscription",
        )
        newest = (await api.deliveries(subscription_id=subs["gone"]["id"]))[0]
        assert newest["state"] == "delivered"
        assert len(gone.received) == 2
        missing_id = subs["missing"]["id"]
        assert (await api.client.post(f"/subscriptions/{missing_id}/enable")).json()[
            "enabled"
        ] is True

        # An administrator who disables one by hand is named as the reason.
        paused = await api.client.patch(
            f"/subscriptions/{subs['healthy']['id']}", json={"enabled": False}
        )
        assert paused.json()["disabled_reason"] == "disabled by pmo-admin"
        assert paused.json()["disabled_at"] is not None


async def test_a_mail_server_refusing_the_mailbox_for_good_disables_the_email_subscription(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    smtp_server: MailSink,
    api_for: ApiFor,
) -> None:
    smtp_server.refuse = {
        "left@example.com": "550 5.1.1 <left@example.com>: no such mailbox",
        "nobody@example.com": "550 no such user here",
        "full@example.com": "552 5.2.2 mailbox full",
        "policy@example.com": "550 5.7.1 relaying denied",
    }
    service = await start_service("notifications", **QUICK, **smtp_settings(smtp_server))
    api = api_for(service)
    subs = {
        address: await api.subscribe(
            name=address,
            channel="email",
            recipient=address,
            event_types=["project-at-risk"],
            throttle_window_s=0,
        )
        for address in (*smtp_server.refuse, "pm-office@example.com")
    }
    admins = await api.subscribe(
        name="admins by mail",
        channel="email",
        recipient="admins@example.com",
        event_types=["subscription-disabled"],
    )
    await register(enterprise, "PRJ-MAIL")
    await enterprise.send("project-at-risk", at_risk("PRJ-MAIL"))
    for address, sub in subs.items():
        await eventually(
            lambda sub=sub: final_deliveries(api, sub, 1),  # type: ignore[misc]
            timeout=30,
            what=f"the delivery to {address} final",
        )
    now = {address: await subscription(api, sub) for address, sub in subs.items()}
    assert now["left@example.com"]["disabled_reason"] == (
        "the mail server refuses the mailbox for good "
        "(SMTP 550: 5.1.1 <left@example.com>: no such mailbox)"
    )
    assert now["nobody@example.com"]["disabled_reason"] == (
        "the mail server refuses the mailbox for good (SMTP 550: no such user here)"
    )
    # A full mailbox or a relay policy is not the address being gone: the delivery is dead,
    # the subscription stays.
    for address in ("full@example.com", "policy@example.com", "pm-office@example.com"):
        assert now[address]["enabled"] is True, address
    (full,) = await api.deliveries(subscription_id=subs["full@example.com"]["id"])
    assert full["state"] == "dead"
    assert "552" in full["last_error"]

    async def told() -> list[Any] | None:
        mails = smtp_server.to("admins@example.com")
        return mails if len(mails) >= 2 else None

    mails = await eventually(told, timeout=30, what="the administrators told by e-mail")
    subjects = sorted(str(mail["Subject"]) for mail in mails)
    assert subjects == [
        '[PMO ADMIN] Subscription "left@example.com" disabled: its receiver refused for good',
        '[PMO ADMIN] Subscription "nobody@example.com" disabled: its receiver refused for good',
    ]
    plain = mails[0].get_body(("plain",))
    assert plain is not None
    assert "POST /subscriptions/" in plain.get_content()
    assert admins["enabled"] is True
    assert smtp_server.refused.count("left@example.com") == 1
