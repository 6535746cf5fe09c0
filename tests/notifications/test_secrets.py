"""Secrets stay hidden from every role below administrator, in every response and log line
(issue 12.9): webhook and Slack URLs (path, query, user:password), the environment's webhook,
signing secrets, the SMTP password, and error texts that quote a URL."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from services.notifications.domain.redaction import masked_url, scrubbed
from tests.conftest import ServiceStarter, bearer
from tests.harness import Enterprise, eventually
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

ENVIRONMENT_TOKEN = "envpathsecret7f3a"
ENVIRONMENT_QUERY = "envquerysecret19c2"
ENVIRONMENT_SIGNING = "envsigningsecret-5d8e0b"
SLACK_TOKEN = "slacktokensecret44aa"
HOOK_TOKEN = "hookpathsecret0e71"
HOOK_QUERY = "hookquerysecret9b3c"
BASIC_PASSWORD = "basicpasswordsecret"
SIGNING = "subscriber-signing-secret-2f6d"
SMTP_PASSWORD = "smtppasswordsecret"
SECRETS = [
    ENVIRONMENT_TOKEN,
    ENVIRONMENT_QUERY,
    ENVIRONMENT_SIGNING,
    SLACK_TOKEN,
    HOOK_TOKEN,
    HOOK_QUERY,
    BASIC_PASSWORD,
    SIGNING,
    SMTP_PASSWORD,
]


def leaked(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


async def everything_a_role_reads(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    """Every notifications response a role may read about subscriptions and deliveries."""
    texts: list[str] = []

    async def get(path: str) -> Any:
        response = await client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.text)
        texts.append(response.text)
        return response.json()

    for subscription in await get("/subscriptions"):
        await get(f"/subscriptions/{subscription['id']}")
    for delivery in await get("/deliveries"):
        await get(f"/deliveries/{delivery['id']}")
    await get("/alerts")
    return "\n".join(texts)


async def attempts_with_errors(api: NotificationsApi, channel: str, n: int) -> bool:
    found = [d for d in await api.deliveries() if d["channel"] == channel and d["last_error"]]
    return bool(found) and all(d["attempts"] >= n for d in found)


async def test_no_secret_reaches_a_non_administrator_or_a_log_line(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    smtp_server: MailSink,
    api_for: ApiFor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    for name in ("httpx", "httpcore", "aiosmtplib", "services.notifications"):
        caplog.set_level(logging.DEBUG, logger=name)
    async with (
        answering_receiver(200, path=f"services/T0/B0/{ENVIRONMENT_TOKEN}") as environment,
        answering_receiver(200, path=f"slack/{SLACK_TOKEN}") as slack,
        answering_receiver(503, path=f"hooks/{HOOK_TOKEN}", echo_url=True) as failing,
    ):
        environment_url = f"{environment.url}?key={ENVIRONMENT_QUERY}"
        hook = urlsplit(failing.url)
        hook_url = f"http://pmo:{BASIC_PASSWORD}@{hook.netloc}{hook.path}?sig={HOOK_QUERY}"
        service = await start_service(
            "notifications",
            **QUICK,
            **smtp_settings(smtp_server),
            alert_webhook_url=environment_url,
            alert_webhook_secret=ENVIRONMENT_SIGNING,
            # The test's SMTP server offers no AUTH: each e-mail attempt fails, and says why.
            smtp_username="pmo",
            smtp_password=SMTP_PASSWORD,
        )
        api = api_for(service)
        for fields in (
            {"channel": "webhook", "recipient": hook_url, "secret": SIGNING},
            {"channel": "slack", "recipient": slack.url},
            {"channel": "email", "recipient": "director@example.com"},
        ):
            await api.subscribe(
                name=f"by {fields['channel']}",
                event_types=["project-at-risk"],
                throttle_window_s=0,
                **fields,
            )
        await register(enterprise, "PRJ-SECRET")
        await enterprise.send("project-at-risk", at_risk("PRJ-SECRET"))

        async def sent_and_failed() -> bool:
            return bool(
                environment.received
                and slack.received
                and await attempts_with_errors(api, "webhook", 2)
                and await attempts_with_errors(api, "email", 2)
            )

        await eventually(sent_and_failed, timeout=30, what="deliveries sent and failed twice")

        async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as client:
            for role in ("viewer", "project_manager"):
                read = await everything_a_role_reads(client, bearer(role, f"{role}@example.com"))
                assert leaked(read) == [], role
                # What they see: where each URL points, never how to post to it.
                listed = (await client.get("/subscriptions", headers=bearer(role))).json()
                recipients = {s["recipient"] for s in listed}
                assert f"http://{urlsplit(environment.url).netloc}/…" in recipients
                assert f"http://{hook.netloc}/…" in recipients
                assert f"http://{urlsplit(slack.url).netloc}/…" in recipients
                assert "director@example.com" in recipients
                assert "has_secret" in listed[0]

            # An administrator sees the URLs whole (to fix them), never a signing secret, and
            # the stored errors are scrubbed for everybody.
            admin = (await api.client.get("/subscriptions")).text
            assert environment_url in admin
            assert hook_url in admin
            assert SIGNING not in admin
            assert ENVIRONMENT_SIGNING not in admin
            deliveries = (await api.client.get("/deliveries")).text
            assert leaked(deliveries) == []
            webhook_error = next(
                d["last_error"]
                for d in await api.deliveries()
                if d["channel"] == "webhook" and d["last_error"]
            )
            assert webhook_error == f"HTTP 503 from the receiver: no hook at http://{hook.netloc}/…"

    logged = "\n".join(
        f"{record.name}: {record.getMessage()} {record.exc_text or ''}"
        for record in caplog.records
        # Access lines of the test's own receivers (uvicorn) are not the service's log.
        if not record.name.startswith("uvicorn")
    )
    assert "HTTP Request: POST http://127.0.0.1:" in logged  # httpx logged each request
    assert "attempt 1 failed: HTTP 503" in logged
    assert leaked(logged) == []


def test_scrubbing_masks_every_url_and_each_named_secret() -> None:
    assert masked_url("https://hooks.slack.com/services/T0/B0/xyz") == "https://hooks.slack.com/…"
    assert (
        masked_url("https://u:pw@tool.example.com:8443/h?k=v") == "https://tool.example.com:8443/…"
    )
    assert masked_url("not a url") == "…"
    assert (
        scrubbed(
            "ConnectError for 'https://a.example.com/t0k?x=1' and http://b.example.com/p, "
            "key s3cr3t!",
            ["s3cr3t!"],
        )
        == "ConnectError for 'https://a.example.com/…' and http://b.example.com/…, key …"
    )
