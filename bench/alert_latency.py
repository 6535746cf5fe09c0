"""How long from a slipping status report published to its signed at-risk webhook received.

Registry, monitoring and notifications (which learns projects from the registry) run against the
real broker and PostgreSQL, each in a process of its own, and notifications' alert lane in one
more (`--alert-lane process`), as `pmo up`, the compose file and deploy/ run them
(`--alert-lane shared`: the lane in notifications' one process, as before `pmo up` ran it apart;
`--layout one-process` runs them all in this process, on one event loop, as the bench first
did: there every service's batch waits for the others' on the loop, which production never
does, so the figures mixed the services' contention with their latency). A local HTTP receiver
in this process stands for the PMO's webhook (signed with PMO_ALERT_WEBHOOK_SECRET). Two
loads, each measured per slipping report from just before it is published to the moment its
webhook arrives:
  * idle: one slipping report at a time, the system otherwise quiet;
  * steady: `--rate` reports a second for `--seconds`, most on plan, one in `--slip-every`
    slipping (each on a project not yet at risk, so each is an alert).
The baseline in the same run is one raw hop: an aiokafka produce to a consume on the same broker.

Progress is read from the services' inboxes (events taken), which every layout shares.

Usage: python -m bench.alert_latency [--rate 500] [--seconds 10] [--slip-every 50]
       [--layout processes|one-process] [--notifications-batch-max N]
       [--alert-lane process|shared]
Uses PMO_BENCH_KAFKA_BOOTSTRAP_SERVERS / PMO_BENCH_DATABASE_URL if set, else the embedded broker
and the PostgreSQL on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import psutil
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.consumer_throughput import START, bench_settings, machine, portfolio
from pmo.embedded import free_port
from pmo.stack import ALERT_LANE_FETCH_MAX_WAIT_MS
from pmo.topics import create_topics
from services.catalog import SERVICES
from shared.events import to_structured
from shared.events.contracts import StatusChanged
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings

LAYOUTS = ("processes", "one-process")


def progress(message: str) -> None:
    """A line on stderr while the run goes on (the figures come at the end, on stdout)."""
    print(f"# {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def report(project: int, day: int, slipping: bool) -> StatusChanged:
    # A year-long project on day `day`: on plan is day/365 done; slipping is far behind (red).
    planned = 100.0 * day / 365
    return StatusChanged(
        project_id=f"PRJ-{project}",
        as_of=START + timedelta(days=day),
        percent_complete=round(planned * (0.5 if slipping else 1.0), 3),
        actual_cost=round(1_000_000 * planned / 100, 2),
    )


async def raw_one_hop(settings: Settings, samples: int) -> list[float]:
    topic = f"{settings.topic_prefix}status-changed"
    consumer = AIOKafkaConsumer(
        topic,
        **settings.kafka_client_options(),
        group_id=f"bench-hop-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="latest",
        fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,  # as the services' consumers
        session_timeout_ms=2000,
        heartbeat_interval_ms=400,
    )
    producer = AIOKafkaProducer(**settings.kafka_client_options(), enable_idempotence=False)
    await consumer.start()
    await producer.start()
    try:
        await consumer.getmany(timeout_ms=3000)  # joins the group and takes its partitions
        await consumer.seek_to_end()
        hops = []
        for n in range(samples):
            sent = time.perf_counter()
            await producer.send_and_wait(topic, b"{}", key=f"hop-{n}".encode())
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                if any(r.key == f"hop-{n}".encode() for rs in batch.values() for r in rs):
                    break
            hops.append(time.perf_counter() - sent)
        return hops
    finally:
        await producer.stop()
        await consumer.stop()


async def taken(settings: Settings, service: ServiceName, event_type: str | None = None) -> int:
    """Events the service has taken in (its inbox rows), of `event_type` (e.g. "pmo.status-changed")
    only if given: read from the database, so the same in any layout."""
    connection = await asyncpg.connect(settings.database_url_for(service))
    try:
        count: int = await connection.fetchval(
            f"SELECT count(*) FROM {service}.inbox WHERE consumer = $1 "
            "AND ($2::text IS NULL OR event_type = $2)",
            service,
            event_type,
        )
        return count
    finally:
        await connection.close()


async def until_taken(
    settings: Settings, service: ServiceName, total: int, event_type: str | None = None
) -> None:
    """Wait until the service has taken `total` events (of `event_type`, if given)."""
    # Polled: the count lives in another process's database rows, no event to wait on.
    while await taken(settings, service, event_type) < total:  # noqa: ASYNC110
        await asyncio.sleep(0.1)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """Each process's CPU time so far (user + system seconds), by name."""
    spent = {}
    for name, pid in pids.items():
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            spent[name] = times.user + times.system
    return spent


async def commits(settings: Settings) -> int:
    """Transactions committed in the run's database so far, from PostgreSQL's statistics (a
    backend reports its counts up to a second late: read a second after the work settled)."""
    await asyncio.sleep(1.0)
    connection = await asyncpg.connect(settings.database_url_for("monitoring"))
    try:
        count: int = await connection.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        return count
    finally:
        await connection.close()


def serve(
    name: ServiceName,
    settings: Settings,
    ready: Any,
    stop: Any,
    lanes: tuple[str, ...] | None = None,
) -> None:
    """A child process's body: run one service (its `lanes` only, if given) until `stop` is
    set (`ready` once started)."""

    async def run() -> None:
        runtime = ServiceRuntime(SERVICES[name], settings, lanes=lanes)
        await runtime.start()
        ready.set()
        try:
            await asyncio.to_thread(stop.wait)  # a process's event, not the loop's
        finally:
            await runtime.stop()

    asyncio.run(run())


@contextlib.asynccontextmanager
async def services(
    layout: str,
    settings: Settings,
    notifications: Settings,
    alert_lane: str = "shared",
    alerts: Settings | None = None,
) -> AsyncIterator[dict[str, int]]:
    """Registry, monitoring and notifications running (in `layout`) until the block ends;
    `alert_lane="process"`: notifications' alert lane in a process of its own (with `alerts`'
    settings, if given), the rest of notifications in another (two replicas, each joining its
    groups only). Yields each child process's pid by name (none in one process)."""
    configured: list[tuple[ServiceName, Settings, tuple[str, ...] | None]] = [
        ("registry", settings, None),
        ("monitoring", settings, None),
    ]
    if alert_lane == "process":
        configured += [
            ("notifications", notifications, ("",)),
            ("notifications", alerts or notifications, ("alerts",)),
        ]
    else:
        configured.append(("notifications", notifications, None))
    if layout == "one-process":
        runtimes = [
            ServiceRuntime(SERVICES[name], each, lanes=lanes) for name, each, lanes in configured
        ]
        for runtime in runtimes:
            await runtime.start()
        try:
            yield {}
        finally:
            for runtime in reversed(runtimes):
                await runtime.stop()
        return
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter, as `pmo up` starts one
    stop = spawn.Event()
    children = []
    try:
        for name, each, lanes in configured:
            ready = spawn.Event()
            child = spawn.Process(
                target=serve,
                args=(name, each, ready, stop, lanes),
                name=" ".join([name, *(lane or "main" for lane in lanes or ())]),
            )
            child.start()
            children.append(child)
            while not ready.is_set():
                if not child.is_alive():
                    raise RuntimeError(f"{name} exited with {child.exitcode} while starting")
                await asyncio.sleep(0.1)
        yield {child.name: child.pid for child in children if child.pid is not None}
    finally:
        stop.set()
        for child in children:
            await asyncio.to_thread(child.join, 60)
            if child.is_alive():
                child.terminate()


STAGES = (
    "monitoring began its batch",
    "relay sent project-at-risk",
    "notifications began its batch",
    "delivery claimed",
    "webhook received",
)


async def path_stages(
    settings: Settings, published: dict[str, float], arrived: dict[str, float]
) -> dict[str, list[float]]:
    """Seconds from each report's publish to each stage of its alert's path, from the rows.

    A transaction's `now()` is when it began, so "began its batch" is when the consumer started
    the batch's transaction (the record was fetched by then); "sent" is the relay's time of the
    broker's acknowledgement; "claimed" is the delivery worker's lease.
    """
    topic = f"{settings.topic_prefix}project-at-risk"
    connection = await asyncpg.connect(settings.database_url_for("monitoring"))
    try:
        outbox = await connection.fetch(
            "SELECT convert_from(key, 'UTF8') AS project, created_at, published_at "
            "FROM monitoring.outbox WHERE topic = $1",
            topic,
        )
        deliveries = await connection.fetch(
            "SELECT d.project_id AS project, min(d.created_at) AS created_at, "
            "min(a.started_at) AS claimed_at FROM notifications.delivery d "
            "LEFT JOIN notifications.delivery_attempt a ON a.delivery_id = d.id "
            "WHERE d.project_id IS NOT NULL GROUP BY d.project_id"
        )
    finally:
        await connection.close()
    at: dict[str, dict[str, float]] = {project: {} for project in published}
    for row in outbox:
        if row["project"] in at:
            at[row["project"]][STAGES[0]] = row["created_at"].timestamp()
            if row["published_at"] is not None:
                at[row["project"]][STAGES[1]] = row["published_at"].timestamp()
    for row in deliveries:
        if row["project"] in at:
            at[row["project"]][STAGES[2]] = row["created_at"].timestamp()
            if row["claimed_at"] is not None:
                at[row["project"]][STAGES[3]] = row["claimed_at"].timestamp()
    for project, when in arrived.items():
        if project in at:
            at[project][STAGES[4]] = when
    return {
        stage: [at[p][stage] - t for p, t in published.items() if stage in at[p]]
        for stage in STAGES
    }


REGISTERED = "pmo.project-registered"
REPORTED = "pmo.status-changed"


async def main(
    rate: int,
    seconds: int,
    slip_every: int,
    notifications_batch_max: int | None = None,
    layout: str = "processes",
    alert_lane: str = "process",
    alert_fetch_wait_ms: int | None = None,
) -> None:
    arrived: dict[str, float] = {}
    arrival = asyncio.Event()

    async def hook(request: Request) -> Response:
        body = json.loads(await request.body())
        project = body.get("project_id") or body.get("data", {}).get("project_id")
        if project and project not in arrived:
            arrived[project] = time.time()
            arrival.set()
        return Response(status_code=204)

    async def until_arrived(projects: list[str], timeout: float) -> None:
        deadline = time.time() + timeout
        while any(p not in arrived for p in projects) and time.time() < deadline:
            arrival.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrival.wait(), max(deadline - time.time(), 0))

    port = free_port()
    receiver = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/hook", hook, methods=["POST"])]),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    serving = asyncio.create_task(receiver.serve())
    total = rate * seconds
    slipping_count = total // slip_every
    idle_samples = 20
    projects = total + idle_samples  # one report per project: every slipping one is new
    try:
        async with bench_settings(
            alert_webhook_url=f"http://127.0.0.1:{port}/hook",
            alert_webhook_secret="bench-secret",
            notification_throttle_window=timedelta(0),
            log_level="WARNING",
        ) as settings:
            await create_topics(settings, partitions=6)
            # `--notifications-batch-max`: notifications' transactions only (a delivery is
            # claimed once the transaction that queued it commits).
            notifications_settings = settings.model_copy(
                update={
                    "consumer_batch_max": notifications_batch_max or settings.consumer_batch_max
                }
            )
            # The alert lane's process: its fetch wait as `pmo up` sets it on the embedded
            # broker, unless given.
            embedded = not os.environ.get("PMO_BENCH_KAFKA_BOOTSTRAP_SERVERS")
            alerts_settings = notifications_settings.model_copy(
                update={
                    "consumer_fetch_max_wait_ms": alert_fetch_wait_ms
                    or (ALERT_LANE_FETCH_MAX_WAIT_MS if embedded else None)
                    or settings.consumer_fetch_max_wait_ms
                }
            )
            async with services(
                layout, settings, notifications_settings, alert_lane, alerts_settings
            ) as pids:
                producer = AIOKafkaProducer(
                    **settings.kafka_client_options(), enable_idempotence=False, linger_ms=0
                )
                await producer.start()
                try:

                    async def send(event: StatusChanged | object) -> None:
                        assert hasattr(event, "event_name")
                        value, headers = to_structured(event, source="/bench")  # type: ignore[arg-type]
                        await producer.send(
                            f"{settings.topic_prefix}{event.event_name}",
                            value,
                            key=event.key().encode(),  # type: ignore[attr-defined]
                            headers=headers,
                        )

                    for event in portfolio(projects):
                        await send(event)
                    await producer.flush()
                    await until_taken(settings, "monitoring", projects)
                    # And by notifications (from the registry's project-registered), so that
                    # the first idle alert does not wait behind that backlog.
                    await until_taken(settings, "notifications", projects, REGISTERED)
                    progress(
                        f"{projects} projects registered, taken in by monitoring, notifications"
                    )

                    # Idle: one slipping report at a time.
                    idle_published: dict[str, float] = {}
                    for n in range(idle_samples):
                        project = f"PRJ-{total + n}"
                        idle_published[project] = time.time()
                        await send(report(total + n, 180, slipping=True))
                        await producer.flush()
                        await until_arrived([project], 60)
                    idle = [arrived[p] - t for p, t in idle_published.items() if p in arrived]
                    idle_stages = await path_stages(settings, idle_published, arrived)
                    progress(f"idle: {len(idle)} of {idle_samples} alerts received")

                    # Steady: `rate` a second, one in `slip_every` slipping. The reports are
                    # encoded before the clock starts: the enterprise system's own work is not
                    # the PMO's, and on 2 cores it took CPU from the services under test.
                    topic = f"{settings.topic_prefix}{StatusChanged.event_name}"
                    steady_load = [
                        (event.key().encode(), *to_structured(event, source="/bench"))
                        for n in range(total)
                        for event in (report(n, 180, n % slip_every == slip_every - 1),)
                    ]
                    published: dict[str, float] = {}
                    before = await taken(settings, "monitoring", REPORTED)
                    cpu_before = cpu_seconds(pids)
                    commits_before = await commits(settings)
                    began = time.perf_counter()
                    for n in range(total):
                        due = began + n / rate
                        if (wait := due - time.perf_counter()) > 0:
                            await asyncio.sleep(wait)
                        if n % slip_every == slip_every - 1:
                            published[f"PRJ-{n}"] = time.time()
                        key, value, headers = steady_load[n]
                        await producer.send(topic, value, key=key, headers=headers)
                    await producer.flush()
                    sending = time.perf_counter() - began
                    progress(f"steady: {total} reports sent in {sending:.1f} s; waiting for alerts")
                    await until_arrived(list(published), 300)
                    steady = [arrived[p] - t for p, t in published.items() if p in arrived]
                    took = await taken(settings, "monitoring", REPORTED) - before
                    cpu = {
                        name: spent - cpu_before.get(name, 0.0)
                        for name, spent in cpu_seconds(pids).items()
                    }
                    committed = await commits(settings) - commits_before
                    stages = await path_stages(settings, published, arrived)
                finally:
                    await producer.stop()
            hops = await raw_one_hop(settings, 200)

            def line(name: str, values: list[float]) -> str:
                return (
                    f"{name:<34} {len(values):>6} {1000 * statistics.median(values):>9.1f} "
                    f"{1000 * percentile(values, 0.99):>9.1f} {1000 * max(values):>9.1f}"
                )

            print(f"machine: {machine()}")
            print(
                f"steady load: {total} status reports at {rate}/s (sent in {sending:.1f} s), "
                f"{slipping_count} slipping, on {projects} projects; monitoring took {took}; "
                f"layout: {layout}"
                + (
                    ", notifications' alert lane in its own process (fetch wait "
                    f"{alerts_settings.consumer_fetch_max_wait_ms} ms, the others' "
                    f"{settings.consumer_fetch_max_wait_ms} ms)"
                    if alert_lane == "process"
                    else ""
                )
            )
            print(f"{'path':<34} {'n':>6} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
            print(line("raw one hop (baseline)", hops))
            print(line("report -> webhook, idle", idle))
            print(line(f"report -> webhook, {rate}/s", steady))
            missing = len(published) - len(steady)
            if missing:
                print(f"not received within 300 s: {missing}")
            ratio = percentile(idle, 0.99) / percentile(hops, 0.99)
            print(f"ratio p99 idle / raw hop p99: {ratio:.1f}")
            ratio = percentile(steady, 0.99) / percentile(hops, 0.99)
            print(f"ratio p99 at {rate}/s / raw hop p99: {ratio:.1f}")
            print(
                f"steady phase, until the last alert: {committed} database transactions "
                "committed; CPU s (user + system) per process: "
                + ", ".join(f"{name} {spent:.1f}" for name, spent in cpu.items())
            )
            for load, by_stage in (("idle", idle_stages), (f"{rate}/s", stages)):
                print(f"where the time goes, {load} (ms from the report's publish, cumulative):")
                print(f"{'stage':<34} {'n':>6} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
                for name, values in by_stage.items():
                    if values:
                        print(line(name, values))
    finally:
        receiver.should_exit = True
        with contextlib.suppress(Exception):
            await serving


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rate", type=int, default=500, help="status reports per second, steady (default: 500)"
    )
    parser.add_argument(
        "--seconds", type=int, default=10, help="how long the steady load lasts (default: 10)"
    )
    parser.add_argument(
        "--slip-every",
        type=int,
        default=50,
        help="one report in this many slips, and its alert is timed (default: 50)",
    )
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="processes",
        help="each service in its own process (as deployed; default) or all in this one",
    )
    parser.add_argument(
        "--notifications-batch-max",
        type=int,
        default=None,
        help="events per transaction in notifications only (default: PMO_CONSUMER_BATCH_MAX)",
    )
    parser.add_argument(
        "--alert-lane",
        choices=("process", "shared"),
        default="process",
        help="notifications' alert lane in a process of its own (as `pmo up` runs it; default) "
        "or in notifications' one process",
    )
    parser.add_argument(
        "--alert-fetch-wait-ms",
        type=int,
        default=None,
        help="the alert lane's process's PMO_CONSUMER_FETCH_MAX_WAIT_MS (default: as `pmo up` "
        "sets it)",
    )
    arguments = parser.parse_args()
    asyncio.run(
        main(
            arguments.rate,
            arguments.seconds,
            arguments.slip_every,
            arguments.notifications_batch_max,
            arguments.layout,
            arguments.alert_lane,
            arguments.alert_fetch_wait_ms,
        )
    )
