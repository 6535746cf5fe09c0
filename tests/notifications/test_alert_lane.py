"""Notifications' alert lane: an alert is delivered while a backlog of state events waits.

The service runs as usual against the harness's broker and database. The backlog's project row
is held locked by the test, so the consumer group of the bulk (`pmo-notifications`) cannot get
past its first batch, as behind a long backlog; the at-risk alert, published after the backlog,
must still reach the webhook, because its lane (`pmo-notifications-alerts`) fetches and commits
on its own. Without the lane the alert waits in the same consumer as the backlog, and this test
fails. A restart then shows that the lane's group committed its own offsets.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import sqlalchemy as sa

from shared.settings import Settings
from tests.conftest import ServiceStarter
from tests.harness import (
    Enterprise,
    RunningService,
    committed_offsets,
    eventually,
    stop_serving,
    structured_event,
    webhook_receiver,
)
from tests.notifications.conftest import QUICK, ApiFor, alerting_tool, assessed, at_risk

BACKLOG = 2_000


async def scalar(service: RunningService, query: str, **params: Any) -> Any:
    async with service.runtime.engine.connect() as connection:
        return (await connection.execute(sa.text(query).bindparams(**params))).scalar_one()


LANE_TOPICS = ("project-at-risk", "project-health-assessed")


async def test_an_alert_behind_a_backlog_is_delivered_first_and_its_lane_commits_its_offsets(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    api_for: ApiFor,
    settings: Settings,
) -> None:
    async with webhook_receiver() as receiver:
        service = await start_service("notifications", **QUICK)
        assert set(service.runtime.consumer_groups) == {
            f"{settings.topic_prefix}pmo-notifications",
            f"{settings.topic_prefix}pmo-notifications-alerts",
        }
        await alerting_tool(
            service, api_for(service), enterprise, receiver.url, "PRJ-LN-A", "PRJ-LN-B"
        )

        def alerts() -> list[float]:
            return [json.loads(body)["data"]["metrics"]["spi"] for _, body in receiver.received]

        def backlog_handled() -> Any:
            return scalar(
                service,
                "SELECT count(*) FROM inbox WHERE consumer = 'notifications' "
                "AND event_type = 'pmo.project-health-assessed'",
            )

        async with service.runtime.engine.connect() as blocker:
            held = await blocker.begin()
            await blocker.execute(
                sa.text(
                    "SELECT 1 FROM notifications.project WHERE project_id = 'PRJ-LN-B' FOR UPDATE"
                )
            )
            sends = []
            for _ in range(BACKLOG):
                value, headers = structured_event(
                    "project-health-assessed", assessed("PRJ-LN-B", "red")
                )
                sends.append(
                    await enterprise.producer.send(
                        f"{settings.topic_prefix}project-health-assessed",
                        value=value,
                        key=b"PRJ-LN-B",
                        headers=headers,
                    )
                )
            await asyncio.gather(*sends)
            await enterprise.send("project-at-risk", at_risk("PRJ-LN-A", spi=0.61))

            async def alerted() -> bool:
                return alerts() == [0.61]

            await eventually(alerted, timeout=60, what="the alert delivered behind the backlog")
            # The backlog has not moved: its first batch still waits for the project's row.
            assert await backlog_handled() == 0
            await held.rollback()

        async def drained() -> bool:
            return bool(await backlog_handled() == BACKLOG)

        await eventually(drained, timeout=120, what="the backlog drained")
        prefix = settings.topic_prefix

        async def lane_committed() -> bool:
            lane = await committed_offsets(
                enterprise, settings, f"{prefix}pmo-notifications-alerts", LANE_TOPICS
            )
            return lane.get("project-at-risk") == 1

        await eventually(lane_committed, timeout=30, what="the lane's group committing")
        bulk = await committed_offsets(
            enterprise, settings, f"{prefix}pmo-notifications", LANE_TOPICS
        )
        assert "project-at-risk" not in bulk
        assert bulk.get("project-health-assessed") == BACKLOG

        # Restart: the lane's group starts from its committed offset: the first alert is not
        # handled again (no duplicate), the next one is handled once.
        await stop_serving(service.server, service.task)
        start_service.running.remove(service)
        service = await start_service("notifications", **QUICK)
        await enterprise.send("project-at-risk", at_risk("PRJ-LN-A", spi=0.62))

        async def alerted_again() -> bool:
            return len(alerts()) >= 2

        await eventually(alerted_again, timeout=60, what="the alert after the restart")
        assert alerts() == [0.61, 0.62]
        duplicates = await scalar(
            service,
            "SELECT count(*) FROM dead_letter WHERE consumer = 'notifications' "
            "AND reason LIKE 'duplicate:%'",
        )
        assert duplicates == 0
