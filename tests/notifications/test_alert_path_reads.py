"""What an alert's transaction reads and wakes: only what it needs (issue 11, alert latency).

There is a project manager's subscription per project, so "every enabled subscription" is
thousands of rows: queueing a project's notice reads only those for any project or for that
one (and managers' only when they can be served). And a commit that wrote no outbox row does
not wake the outbox relay (notifications commits a batch per status report and publishes
nothing), while the process's other commit listeners (the delivery worker) are still told.
An alert only reads its project, so it does not wait for another transaction holding the
project's row. Real broker and database, the service started as usual.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from services.notifications.adapters.repository import SqlSubscriptionRepository
from services.notifications.adapters.tables import ENVIRONMENT_WEBHOOK_ID, SubscriptionRow
from services.notifications.domain.subscriptions import Notice
from services.notifications.service_layer.managers import manager_subscription_id
from services.notifications.service_layer.queue import Queued, queue_notices
from shared.messaging.dead_letters import UndeliverableRecord
from shared.settings import Settings
from tests.conftest import ServiceStarter
from tests.harness import Enterprise, RunningService, eventually, webhook_receiver
from tests.notifications.conftest import QUICK, ApiFor, alerting_tool, at_risk


async def add_subscriptions(service: RunningService) -> dict[str, uuid.UUID]:
    """Managers' subscriptions of P-1 to P-3, and the API's: one for P-1, one for P-2, one for
    any project; by name."""
    made: dict[str, uuid.UUID] = {}
    rows: list[dict[str, Any]] = []
    for n in (1, 2, 3):
        made[f"manager P-{n}"] = manager_subscription_id(f"P-{n}")
        rows.append(
            {
                "id": made[f"manager P-{n}"],
                "name": f"manager P-{n}",
                "channel": "email",
                "recipient": f"m{n}@example.com",
                "event_types": ["project-at-risk"],
                "project_id": f"P-{n}",
                "managed_by": "project-manager",
            }
        )
    for name, project in (("api P-1", "P-1"), ("api P-2", "P-2"), ("api any", None)):
        made[name] = uuid.uuid4()
        rows.append(
            {
                "id": made[name],
                "name": name,
                "channel": "webhook",
                "recipient": "https://hooks.example.com/pmo",
                "event_types": ["project-at-risk"],
                "project_id": project,
                "managed_by": "api",
            }
        )
    async with service.runtime.unit_of_work() as uow:
        await uow.session.exec(sa.insert(SubscriptionRow).values(rows))
        await uow.commit()
    return made


@pytest.mark.parametrize("managers", [False, True])
async def test_queueing_a_projects_alert_reads_only_the_subscriptions_that_may_want_it(
    start_service: ServiceStarter,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    managers: bool,
) -> None:
    # Managers are served only with SMTP configured; no mail is sent here (nothing runs the
    # deliveries before the test reads them).
    smtp: dict[str, Any] = {"smtp_host": "127.0.0.1", "smtp_port": 1} if managers else {}
    service = await start_service("notifications", notify_project_managers=True, **smtp)
    made = await add_subscriptions(service)
    read: list[uuid.UUID] = []
    enabled = SqlSubscriptionRepository.enabled

    async def recording(self: SqlSubscriptionRepository, **narrowing: Any) -> list[Any]:
        found = await enabled(self, **narrowing)
        read.extend(subscription.id for subscription in found)
        return found

    monkeypatch.setattr(SqlSubscriptionRepository, "enabled", recording)
    async with service.runtime.unit_of_work() as uow:
        queued = await queue_notices(
            uow.session,
            [
                Queued(
                    Notice("project-at-risk", "red", ("P-1",), ("Digital",)),
                    event_id=str(uuid.uuid4()),
                    event_type="pmo.project-at-risk",
                    context_for=lambda _: {"project_id": "P-1"},
                    project_id="P-1",
                )
            ],
            settings=service.runtime.settings,
        )
        await uow.commit()

    wanted = {made["api P-1"], made["api any"]} | ({made["manager P-1"]} if managers else set())
    # The built-in webhook (PMO_ALERT_WEBHOOK_URL, unset here) is read too: it is for any project.
    assert set(read) == wanted | {ENVIRONMENT_WEBHOOK_ID}
    assert queued == len(wanted)


async def test_a_commit_wakes_the_relay_only_when_it_wrote_outbox_rows(
    start_service: ServiceStarter, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = await start_service("notifications")
    runtime = service.runtime
    wakes: list[str] = []
    told: list[str] = []  # other commits of the running service may be told too
    monkeypatch.setattr(runtime.relay, "wake", lambda: wakes.append("relay"))
    runtime.on_commit(lambda _: told.append("listener"))

    async with runtime.unit_of_work() as uow:  # changes rows, publishes nothing
        await uow.session.exec(sa.text("SELECT 1"))  # type: ignore[call-overload]
        await uow.commit()
    assert wakes == []
    assert told  # the delivery worker's wake-up does not depend on the outbox

    async with runtime.unit_of_work() as uow:  # a dead letter leaves by the outbox
        await uow.dead_letter(
            UndeliverableRecord(f"{settings.topic_prefix}project-at-risk", 0, 1, None, b"?", []),
            reason="a test's",
        )
        await uow.commit()
    assert wakes == ["relay"]


async def test_an_alert_does_not_wait_for_a_transaction_holding_its_projects_row(
    start_service: ServiceStarter, enterprise: Enterprise, api_for: ApiFor
) -> None:
    async with webhook_receiver() as receiver:
        service = await start_service("notifications", **QUICK)
        await alerting_tool(service, api_for(service), enterprise, receiver.url, "PRJ-RL-1")
        async with service.runtime.engine.connect() as holder:
            # As the clock escalating the project, or an API change to it, would hold it.
            held = await holder.begin()
            await holder.execute(
                sa.text(
                    "SELECT 1 FROM notifications.project WHERE project_id = 'PRJ-RL-1' FOR UPDATE"
                )
            )
            await enterprise.send("project-at-risk", at_risk("PRJ-RL-1"))

            async def alerted() -> bool:
                return len(receiver.received) == 1

            await eventually(alerted, timeout=30, what="the alert while its project's row is held")
            await held.rollback()
