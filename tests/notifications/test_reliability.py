"""Retries with backoff, dead deliveries, retry by hand, and a restart that loses nothing."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from services.notifications.adapters.tables import SubscriptionRow
from tests.conftest import ServiceStarter
from tests.harness import Enterprise, eventually, stop_serving, webhook_receiver
from tests.notifications.conftest import QUICK, ApiFor, answering_receiver, at_risk, register

pytestmark = pytest.mark.e2e

SECRET = "subscriber-secret-0123456789"
ALWAYS = 10**9


def hook(url: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": "tool",
        "channel": "webhook",
        "recipient": url,
        "secret": SECRET,
        "event_types": ["project-at-risk"],
        "throttle_window_s": 0,
        **fields,
    }


async def test_a_receiver_failing_twice_then_answering_gets_exactly_one_delivery(
    start_service: ServiceStarter, enterprise: Enterprise, api_for: ApiFor
) -> None:
    async with webhook_receiver() as receiver:
        receiver.fail_first = 2
        service = await start_service("notifications", **QUICK)
        api = api_for(service)
        subscription = await api.subscribe(**hook(receiver.url))
        await register(enterprise, "PRJ-FLAKY")
        await enterprise.send("project-at-risk", at_risk("PRJ-FLAKY"))

        async def delivered() -> dict[str, Any] | None:
            found = await api.deliveries(subscription_id=subscription["id"])
            return found[0] if found and found[0]["state"] == "delivered" else None

        delivery = await eventually(delivered, timeout=30, what="the delivery after two failures")
        assert len(receiver.received) == 1
        assert delivery["attempts"] == 3
        detail = await api.delivery(delivery["id"])
        assert [(a["outcome"], a["status_code"]) for a in detail["attempt_log"]] == [
            ("failed", 503),
            ("failed", 503),
            ("delivered", 200),
        ]
        assert "HTTP 503" in (detail["attempt_log"][0]["error"] or "")


async def test_a_dead_receiver_ends_dead_after_its_attempts_while_others_flow_then_retries_by_hand(
    start_service: ServiceStarter, enterprise: Enterprise, api_for: ApiFor
) -> None:
    async with webhook_receiver() as dead_end, webhook_receiver() as healthy:
        dead_end.fail_first = ALWAYS
        service = await start_service("notifications", **QUICK)
        api = api_for(service)
        failing = await api.subscribe(**hook(dead_end.url, name="always down"))
        working = await api.subscribe(**hook(healthy.url, name="healthy"))
        projects = [f"PRJ-{n}" for n in range(4)]
        await register(enterprise, *projects)
        for project_id in projects:
            await enterprise.send("project-at-risk", at_risk(project_id))

        async def all_dead() -> list[dict[str, Any]] | None:
            found = await api.deliveries(subscription_id=failing["id"])
            done = len(found) == 4 and all(d["state"] == "dead" for d in found)
            return found if done else None

        dead = await eventually(all_dead, timeout=60, what="the failing receiver's deliveries dead")
        assert all(d["attempts"] == QUICK["notification_max_attempts"] for d in dead)
        assert all("HTTP 503" in (d["last_error"] or "") for d in dead)
        # The healthy receiver got every alert, once, while the other was failing.
        assert sorted(json.loads(body)["data"]["project_id"] for _, body in healthy.received) == (
            projects
        )
        assert {d["state"] for d in await api.deliveries(subscription_id=working["id"])} == {
            "delivered"
        }
        metrics = (await api.client.get("/metrics")).text
        assert 'pmo_notification_deliveries_dead_total{channel="webhook"} 4.0' in metrics
        assert 'pmo_alerts_failed_total{channel="webhook",service="notifications"} 12.0' in metrics

        # Only an administrator retries, only a dead delivery; once the receiver is back it lands.
        one = dead[0]["id"]
        assert (
            await api.client.post(f"/deliveries/{dead[0]['id'] + 10_000}/retry")
        ).status_code == 404
        delivered_one = next(d["id"] for d in await api.deliveries(subscription_id=working["id"]))
        refused = await api.client.post(f"/deliveries/{delivered_one}/retry")
        assert refused.status_code == 409
        assert "delivered" in refused.text
        dead_end.fail_first = 0
        retried = await api.client.post(f"/deliveries/{one}/retry")
        assert retried.status_code == 200, retried.text
        assert retried.json()["state"] == "pending"
        assert retried.json()["max_attempts"] == 2 * QUICK["notification_max_attempts"]

        async def redelivered() -> bool:
            return bool((await api.delivery(one))["state"] == "delivered")

        await eventually(redelivered, timeout=30, what="the dead delivery retried by hand")
        assert len(dead_end.received) == 1
        assert json.loads(dead_end.received[0][1])["delivery_id"] == one


async def test_a_failing_delivery_is_tried_again_now_by_hand_within_its_attempts(
    start_service: ServiceStarter, enterprise: Enterprise, api_for: ApiFor
) -> None:
    # The next attempt after a failure would be ten minutes away: only the retry can send it.
    patient = {
        **QUICK,
        "notification_retry_base_s": 600.0,
        "notification_retry_max_s": 600.0,
        "notification_max_attempts": 5,
    }
    async with webhook_receiver() as receiver:
        receiver.fail_first = 1
        service = await start_service("notifications", **patient)
        api = api_for(service)
        subscription = await api.subscribe(**hook(receiver.url))
        await register(enterprise, "PRJ-WAITING")
        await enterprise.send("project-at-risk", at_risk("PRJ-WAITING"))

        async def failing() -> dict[str, Any] | None:
            found = await api.deliveries(subscription_id=subscription["id"])
            waiting = found[0] if found else None
            return waiting if waiting and waiting["last_error"] else None

        waiting = await eventually(failing, timeout=30, what="a failed first attempt")
        assert (waiting["state"], waiting["attempts"]) == ("pending", 1)
        retried = await api.client.post(f"/deliveries/{waiting['id']}/retry")
        assert retried.status_code == 200, retried.text
        # Tried now, within the attempts it has: no new round.
        assert (retried.json()["state"], retried.json()["max_attempts"]) == ("pending", 5)

        async def delivered() -> dict[str, Any] | None:
            found = await api.delivery(waiting["id"])
            return found if found["state"] == "delivered" else None

        done = await eventually(delivered, timeout=30, what="the failing delivery sent by hand")
        assert done["attempts"] == 2
        assert len(receiver.received) == 1
        again = await api.client.post(f"/deliveries/{waiting['id']}/retry")
        assert again.status_code == 409
        assert "delivered" in again.text


async def test_a_restart_with_retries_pending_loses_nothing_and_sends_once(
    start_service: ServiceStarter, enterprise: Enterprise, api_for: ApiFor
) -> None:
    slow_retries = {**QUICK, "notification_retry_base_s": 2.0, "notification_max_attempts": 5}
    async with webhook_receiver() as receiver:
        receiver.fail_first = ALWAYS
        first = await start_service("notifications", **slow_retries)
        api = api_for(first)
        subscription = await api.subscribe(**hook(receiver.url))
        await register(enterprise, "PRJ-RESTART")
        await enterprise.send("project-at-risk", at_risk("PRJ-RESTART"))

        async def waiting_for_retry() -> dict[str, Any] | None:
            found = await api.deliveries(subscription_id=subscription["id"])
            pending = found and found[0]["state"] == "pending" and found[0]["attempts"] >= 1
            return found[0] if pending else None

        before = await eventually(waiting_for_retry, timeout=30, what="a failed first attempt")
        await stop_serving(first.server, first.task)
        received_while_down = len(receiver.received)
        receiver.fail_first = 0  # the receiver comes back while the service is down

        second = await start_service("notifications", **slow_retries)
        api = api_for(second)

        async def delivered() -> dict[str, Any] | None:
            found = await api.delivery(before["id"])
            return found if found["state"] == "delivered" else None

        after = await eventually(delivered, timeout=30, what="the retry by the new instance")
        assert received_while_down == 0
        assert len(receiver.received) == 1
        assert after["attempts"] >= 2
        outcomes = [a["outcome"] for a in after["attempt_log"]]
        assert outcomes[-1] == "delivered"
        assert outcomes.count("delivered") == 1
        assert len(await api.deliveries(subscription_id=subscription["id"])) == 1


async def test_a_recipient_the_client_refuses_ends_dead_at_once_with_its_error(
    start_service: ServiceStarter, enterprise: Enterprise, api_for: ApiFor
) -> None:
    service = await start_service("notifications", **QUICK)
    api = api_for(service)
    subscription = await api.subscribe(**hook("https://tool.example.com/hook"))
    # A row stored before recipients were checked this strictly: httpx refuses its port.
    async with service.runtime.sessions() as session, session.begin():
        stored = await session.get(SubscriptionRow, uuid.UUID(subscription["id"]))
        assert stored is not None
        stored.recipient = "http://example.com:abc/hook"
        session.add(stored)
    await register(enterprise, "PRJ-BADURL")
    await enterprise.send("project-at-risk", at_risk("PRJ-BADURL"))

    async def dead() -> dict[str, Any] | None:
        found = await api.deliveries(subscription_id=subscription["id"])
        return found[0] if found and found[0]["state"] == "dead" else None

    delivery = await eventually(dead, timeout=30, what="the unsendable delivery dead")
    assert delivery["attempts"] == 1
    assert "InvalidURL" in (delivery["last_error"] or "")
    detail = await api.delivery(delivery["id"])
    assert [a["outcome"] for a in detail["attempt_log"]] == ["failed"]
    metrics = (await api.client.get("/metrics")).text
    assert 'pmo_notification_deliveries_dead_total{channel="webhook"} 1.0' in metrics
    assert 'pmo_alerts_failed_total{channel="webhook",service="notifications"} 1.0' in metrics


async def test_an_outcome_the_database_cannot_take_at_once_is_recorded_later_and_not_sent_again(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    api_for: ApiFor,
    postgres_url: str,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 15.4: the database goes away after the receiver took the POST and before its
    outcome is written. The write is retried until the database is back; the delivery is
    delivered once, not sent again when its lease (60 s) ends."""
    database = database_url.partition("?")[0].rsplit("/", 1)[1]
    admin = await asyncpg.connect(postgres_url)
    outages: list[asyncio.Task[None]] = []

    async def database_away_for_a_while() -> None:
        # No new connection to the test's database, and every open one cut, as in a restart.
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )

        async def back_later() -> None:
            await asyncio.sleep(2)
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')

        outages.append(asyncio.create_task(back_later()))

    # The capturing handler takes the level of the last call: the lower one last.
    caplog.set_level(logging.ERROR, logger="asyncio")
    caplog.set_level(logging.WARNING, logger="services.notifications")
    try:
        async with answering_receiver(200) as receiver:
            receiver.before_answer = database_away_for_a_while
            service = await start_service("notifications", **QUICK)
            api = api_for(service)
            subscription = await api.subscribe(**hook(receiver.url))
            await register(enterprise, "PRJ-OUTCOME")
            await enterprise.send("project-at-risk", at_risk("PRJ-OUTCOME"))

            async def delivered() -> dict[str, Any] | None:
                # The API itself fails while the database is away: ask again.
                response = await api.client.get(
                    "/deliveries", params={"subscription_id": subscription["id"]}
                )
                found = response.json() if response.status_code == 200 else []
                return found[0] if found and found[0]["state"] == "delivered" else None

            delivery = await eventually(
                delivered, timeout=40, what="the outcome recorded once the database is back"
            )
            receiver.before_answer = None
            assert len(receiver.received) == 1
            detail = await api.delivery(delivery["id"])
            assert [(a["number"], a["outcome"]) for a in detail["attempt_log"]] == [
                (1, "delivered")
            ]
    finally:
        for outage in outages:
            await outage
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await admin.close()
    # Each failed write of the outcome is logged, with the try it was.
    mine = f"recording the outcome of delivery {delivery['id']} failed (try 1)"
    assert any(record.getMessage().startswith(mine) for record in caplog.records)
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


async def test_deliveries_whose_worker_died_mid_send_are_sent_again_each_old_attempt_abandoned(
    start_service: ServiceStarter, enterprise: Enterprise, api_for: ApiFor
) -> None:
    # Two delivered notices made to look as a worker that died while sending them leaves
    # them (pending, lease run out, attempt in flight): the worker takes both again, marks
    # each old attempt abandoned and opens a new one for each.
    async with webhook_receiver() as receiver:
        service = await start_service("notifications", **QUICK)
        api = api_for(service)
        subscription = await api.subscribe(**hook(receiver.url))
        await register(enterprise, "PRJ-DIED-A", "PRJ-DIED-B")
        for project_id in ("PRJ-DIED-A", "PRJ-DIED-B"):
            await enterprise.send("project-at-risk", at_risk(project_id))

        async def both(state: str) -> list[dict[str, Any]] | None:
            found = await api.deliveries(subscription_id=subscription["id"])
            done = [d for d in found if d["state"] == state]
            return done if len(done) == 2 else None

        async def both_delivered() -> list[dict[str, Any]] | None:
            return await both("delivered")

        sent = await eventually(both_delivered, timeout=30, what="both notices delivered")
        ids = [delivery["id"] for delivery in sent]
        async with service.runtime.engine.begin() as connection:
            await connection.execute(
                sa.text(
                    "UPDATE notifications.delivery_attempt SET outcome = 'in_flight', "
                    "finished_at = NULL WHERE delivery_id = ANY(CAST(:ids AS bigint[]))"
                ).bindparams(ids=ids)
            )
            await connection.execute(
                sa.text(
                    "UPDATE notifications.delivery SET state = 'pending', delivered_at = NULL, "
                    "locked_until = now() - interval '1 second' "
                    "WHERE id = ANY(CAST(:ids AS bigint[]))"
                ).bindparams(ids=ids)
            )

        again = await eventually(both_delivered, timeout=30, what="both sent again")
        assert sorted(delivery["id"] for delivery in again) == sorted(ids)
        for delivery_id in ids:
            detail = await api.delivery(delivery_id)
            assert detail["attempts"] == 2
            assert [a["outcome"] for a in detail["attempt_log"]] == ["abandoned", "delivered"]
        assert len(receiver.received) == 4
