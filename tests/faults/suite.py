"""The fault suite: a workload streamed through `pmo up` while its parts are killed, then checked.

One run, from a seed: start `pmo up` (embedded Tansu and PostgreSQL) in its own data folder;
load the resource pool and a webhook subscription; stream the workload (`workload.py`) in
phases while faults are injected at seeded moments (`kill -9` of each service, PostgreSQL
immediate restarts, broker freezes); wait until every expected outbound event and webhook has
arrived and nothing is pending; then count. What is counted (`Report`):

- every expected outbound event exactly once by meaning (lost, effects twice, unexpected);
  records with one CloudEvents id seen more than once are at-least-once copies (counted only);
- no valid event dead-lettered (a redelivered record dead-lettered as a duplicate is counted);
- monitoring's final health and the registry's final stages equal to the truth, and each
  status report kept once;
- every webhook delivery received exactly once per (event, subscription), signed; the same
  delivery POSTed again (its `X-PMO-Delivery` repeated) is counted.

Traffic goes only to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI, Request

from pmo.embedded import free_port
from services.notifications.domain.alerts import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature_is_valid,
)
from shared.events import EventData, to_structured
from shared.events.contracts import INBOUND_EVENTS, OUTBOUND_EVENTS
from shared.settings import SERVICE_NAMES, ServiceName
from shared.topics import dead_letter_topic, topic_name
from tests.faults.stack import ADMIN_TOKEN, PmoUp
from tests.faults.workload import (
    SOURCE,
    UNPREDICTED,
    Meaning,
    Workload,
    build_workload,
    meaning_of,
    statement_of,
)

NOTICE_TYPES = (
    "project-at-risk",
    "project-recovered",
    "project-lifecycle-changed",
    "resource-conflict-resolved",
)
"""What the suite's own webhook subscription asks for (the built-in one: at-risk only)."""


@dataclass(frozen=True)
class Size:
    """How big a run is: the workload, the faults, and how long the stream lasts."""

    health_projects: int = 12
    max_reports: int = 4
    conflict_groups: int = 3
    terminated: int = 2
    kills: int = 4
    """`kill -9`s, spread over the four services (each at least once when kills >= 4)."""
    database_restarts: int = 1
    freezes: int = 1
    freeze_s: float = 8.0
    stream_s: float = 40.0
    """Faults happen within this many seconds of the first event; events are paced over it."""
    quiescence_timeout_s: float = 240.0
    settle_s: float = 8.0
    """Quiet seconds after everything expected arrived, to catch late copies and extras."""

    @classmethod
    def scaled(cls, size: int) -> Size:
        """A longer run: `size` health projects, up to 13 reports each, 12 kills, 45 s freeze."""
        return cls(
            health_projects=size,
            max_reports=13,
            conflict_groups=max(3, size // 10),
            terminated=max(2, size // 50),
            kills=12,
            database_restarts=2,
            freezes=1,
            freeze_s=45.0,
            stream_s=max(120.0, size * 1.0),
            quiescence_timeout_s=900.0,
            settle_s=15.0,
        )


@dataclass
class Fault:
    at_s: float
    kind: str  # kill, database-restart, broker-freeze
    target: str = ""
    seconds: float = 0.0
    done: bool = False
    note: str = ""


def plan_faults(seed: int, size: Size) -> list[Fault]:
    """The faults of a run, at seeded moments: the same plan for the same seed and size."""
    rng = random.Random(seed * 7919 + 1)
    services: list[ServiceName] = list(SERVICE_NAMES)
    targets = [services[n % len(services)] for n in range(size.kills)]
    rng.shuffle(targets)
    window = (2.0, size.stream_s)
    faults = [Fault(rng.uniform(*window), "kill", target) for target in targets]
    faults += [
        Fault(rng.uniform(*window), "database-restart", "postgres", rng.uniform(1.0, 4.0))
        for _ in range(size.database_restarts)
    ]
    faults += [
        Fault(rng.uniform(*window), "broker-freeze", "tansu", size.freeze_s)
        for _ in range(size.freezes)
    ]
    return sorted(faults, key=lambda fault: fault.at_s)


@dataclass
class Webhook:
    path: str
    delivery_id: str
    event_id: str
    event_type: str
    signed: bool


@dataclass
class Report:
    """The figures of one run; `problems` lists every broken promise (empty: the run passed)."""

    seed: int
    size: Size
    inbound_sent: int = 0
    inbound_resent: int = 0
    faults: list[Fault] = field(default_factory=list)
    outbound_records: int = 0
    outbound_events: int = 0
    same_id_copies: int = 0
    expected: int = 0
    lost: list[Meaning] = field(default_factory=list)
    twice: list[Meaning] = field(default_factory=list)
    unexpected: list[Meaning] = field(default_factory=list)
    dead_lettered_valid: list[str] = field(default_factory=list)
    duplicates_dead_lettered: int = 0
    webhooks_expected: int = 0
    webhooks_received: int = 0
    webhook_repeats: int = 0
    webhooks_missing: list[str] = field(default_factory=list)
    webhooks_twice: list[str] = field(default_factory=list)
    webhooks_unsigned: int = 0
    state_mismatches: list[str] = field(default_factory=list)
    restarts_seen: int = 0
    seconds_to_events: float = 0.0
    """From the first event sent until every expected outbound event had been published."""
    seconds_to_webhooks: float = 0.0
    seconds_to_quiescence: float = 0.0
    seconds_total: float = 0.0
    data_dir: str = ""
    aborted: str = ""
    """Why the run ended early (pmo up itself stopped), if it did."""

    @property
    def problems(self) -> list[str]:
        found = [self.aborted] if self.aborted else []
        if self.lost:
            found.append(f"lost {len(self.lost)}: {self.lost[:10]}")
        if self.twice:
            found.append(f"effect twice {len(self.twice)}: {self.twice[:10]}")
        if self.unexpected:
            found.append(f"unexpected {len(self.unexpected)}: {self.unexpected[:10]}")
        if self.dead_lettered_valid:
            found.append(f"valid events dead-lettered: {self.dead_lettered_valid[:10]}")
        if self.webhooks_missing:
            missing = self.webhooks_missing
            found.append(f"webhooks missing {len(missing)}: {missing[:10]}")
        if self.webhooks_twice:
            found.append(f"webhooks delivered twice: {self.webhooks_twice[:10]}")
        if self.webhooks_unsigned:
            found.append(f"{self.webhooks_unsigned} webhooks without a valid signature")
        if self.state_mismatches:
            found.append(f"final state wrong: {self.state_mismatches[:10]}")
        return found

    def render(self) -> str:
        kinds = Counter(f.kind for f in self.faults if f.done)
        lines = [
            f"fault suite, seed {self.seed}: {'PASSED' if not self.problems else 'FAILED'}",
            f"  inbound events        {self.inbound_sent} sent ({self.inbound_resent} resent)",
            f"  faults                {sum(kinds.values())} injected: "
            + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
            + f"; pmo up restarted services {self.restarts_seen} times",
            f"  outbound events       {self.outbound_events} distinct "
            f"({self.outbound_records} records, {self.same_id_copies} same-id copies); "
            f"{self.expected} expected",
            f"  lost                  {len(self.lost)}",
            f"  effect twice          {len(self.twice)}",
            f"  unexpected            {len(self.unexpected)}",
            f"  dead-lettered valid   {len(self.dead_lettered_valid)}"
            f" (redeliveries dead-lettered as duplicates: {self.duplicates_dead_lettered})",
            f"  webhooks              {self.webhooks_received}/{self.webhooks_expected} delivered"
            f" ({self.webhook_repeats} repeated POSTs of one delivery, "
            f"{len(self.webhooks_twice)} twice, {self.webhooks_unsigned} unsigned)",
            f"  final state wrong     {len(self.state_mismatches)}",
            f"  all events after      {self.seconds_to_events:.0f} s, all webhooks after "
            f"{self.seconds_to_webhooks:.0f} s, quiet after {self.seconds_to_quiescence:.0f} s "
            f"(run {self.seconds_total:.0f} s)",
        ]
        for fault in self.faults:
            lines.append(
                f"    t={fault.at_s:6.1f}s {fault.kind:<17} {fault.target:<14}"
                + (f" {fault.seconds:4.1f}s" if fault.seconds else "      ")
                + ("" if fault.done else " (not injected)")
                + (f" {fault.note}" if fault.note else "")
            )
        for problem in self.problems:
            lines.append(f"  PROBLEM: {problem}")
        lines.append(f"  data and logs: {self.data_dir}")
        return "\n".join(lines)


class Receiver:
    """A real HTTP webhook receiver on 127.0.0.1 that checks signatures and keeps every POST."""

    def __init__(self, secret: str, subscription_secret: str) -> None:
        self.port = free_port()
        self.received: list[Webhook] = []
        app = FastAPI()
        secrets_by_path = {"alerts": secret, "notices": subscription_secret}

        @app.post("/{path}")
        async def receive(path: str, request: Request) -> dict[str, str]:
            body = await request.body()
            signed = signature_is_valid(
                secrets_by_path.get(path, ""),
                request.headers.get(TIMESTAMP_HEADER, ""),
                body,
                request.headers.get(SIGNATURE_HEADER, ""),
                now=time.time(),
            )
            content = json.loads(body)
            self.received.append(
                Webhook(
                    path,
                    request.headers.get("X-PMO-Delivery", ""),
                    content.get("event_id", ""),
                    content.get("event_type", ""),
                    signed,
                )
            )
            return {"status": "received"}

        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.task: asyncio.Task[None] | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def __aenter__(self) -> Receiver:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await asyncio.sleep(0.05)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task


class Collector:
    """Reads every outbound and dead-letter topic from the start, for the whole run."""

    def __init__(self, bootstrap: str) -> None:
        names = [*OUTBOUND_EVENTS, *INBOUND_EVENTS]
        self.topics = [topic_name(name) for name in OUTBOUND_EVENTS]
        self.topics += [dead_letter_topic(topic_name(name)) for name in names]
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            request_timeout_ms=120_000,
            metadata_max_age_ms=2_000,
        )
        self.records: list[tuple[str, bytes, list[tuple[str, bytes]]]] = []
        self.last_record_at = time.monotonic()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Collector:
        await self.consumer.start()
        self.consumer.subscribe(self.topics)
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            try:
                batches = await self.consumer.getmany(timeout_ms=500)
            except Exception:  # the broker is frozen or restarting: ask again
                await asyncio.sleep(0.5)
                continue
            for records in batches.values():
                for record in records:
                    self.records.append((record.topic, record.value or b"", list(record.headers)))
                    self.last_record_at = time.monotonic()

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.consumer.stop()


class Database:
    """Read-only look at the services' schemas, patient with the restarts the suite causes."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        while True:
            try:
                connection = await asyncpg.connect(self.url, timeout=5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                await asyncio.sleep(0.5)
                continue
            try:
                rows: list[asyncpg.Record] = await connection.fetch(query, *args)
                return rows
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await connection.close()

    async def count(self, query: str, *args: Any) -> int:
        rows = await self.fetch(query, *args)
        return int(rows[0][0])


async def _until(condition: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return True
        await asyncio.sleep(0.5)
    return False


class Run:
    """One run of the suite; `execute()` returns its report."""

    def __init__(self, seed: int, size: Size, data_dir: Path) -> None:
        self.seed = seed
        self.size = size
        self.data_dir = data_dir
        self.work: Workload = build_workload(
            seed,
            health_projects=size.health_projects,
            max_reports=size.max_reports,
            conflict_groups=size.conflict_groups,
            terminated=size.terminated,
        )
        self.report = Report(seed=seed, size=size, data_dir=str(data_dir))
        self.report.faults = plan_faults(seed, size)
        self.alert_secret = secrets.token_urlsafe(16)
        self.notice_secret = secrets.token_urlsafe(16)
        self.sequence = 0

    def execute(self) -> Report:
        """Run it all; blocks until the run is over and `pmo up` has stopped."""
        return asyncio.run(self._execute())

    async def _execute(self) -> Report:
        started = time.monotonic()
        async with Receiver(self.alert_secret, self.notice_secret) as receiver:
            self.receiver = receiver
            stack = PmoUp(
                self.data_dir,
                webhook_url=receiver.url("alerts"),
                webhook_secret=self.alert_secret,
            )
            # PostgreSQL restarts run in one thread that lives as long as the run: the server
            # they start is told to stop when the thread that started it ends.
            self.database_thread = ThreadPoolExecutor(1, thread_name_prefix="faults-postgres")
            try:
                await asyncio.to_thread(stack.start)
                await self._while_up(stack)
            finally:
                self.report.restarts_seen = stack.tail(100_000).count("; restarting it")
                await asyncio.to_thread(stack.stop)
                self.database_thread.shutdown()
        self.report.seconds_total = time.monotonic() - started
        return self.report

    async def _while_up(self, stack: PmoUp) -> None:
        """Run the suite on `stack`, but end it at once, saying why, if `pmo up` exits."""
        run = asyncio.create_task(self._run_on(stack))
        while not run.done():
            await asyncio.wait({run}, timeout=1.0)
            process = stack.process
            if not run.done() and process is not None and process.poll() is not None:
                run.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run
                self.report.aborted = (
                    f"pmo up exited with {process.returncode} during the run: {stack.tail(3)}"
                )
                return
        run.result()

    async def _run_on(self, stack: PmoUp) -> None:
        env = stack.stack_env()
        self.db = Database(env["PMO_DATABASE_URL"])
        bootstrap = env["PMO_KAFKA_BOOTSTRAP_SERVERS"]
        await self._configure(stack)
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            enable_idempotence=False,
            acks="all",
            # Long enough to wait out a broker freeze rather than send a record twice.
            request_timeout_ms=120_000,
        )
        await producer.start()
        try:
            async with Collector(bootstrap) as collector:
                faults = asyncio.create_task(self._inject(stack))
                try:
                    self.stream_started = time.monotonic()
                    await self._stream(producer)
                    await faults  # every fault happens before the waiting for quiescence
                finally:
                    faults.cancel()  # when the run is cut short (a frozen broker is thawed)
                await self._quiesce(collector)
                self.report.seconds_to_quiescence = time.monotonic() - self.stream_started
                await self._check(collector)
        finally:
            await producer.stop()

    async def _configure(self, stack: PmoUp) -> None:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(headers=headers, timeout=30) as http:
            for resource in self.work.resources:
                answer = await http.post(f"{stack.url('allocation')}/resources", json=resource)
                answer.raise_for_status()
            answer = await http.post(
                f"{stack.url('notifications')}/subscriptions",
                json={
                    "name": "fault suite",
                    "channel": "webhook",
                    "recipient": self.receiver.url("notices"),
                    "event_types": list(NOTICE_TYPES),
                    "min_severity": "info",
                    "throttle_window_s": 0,
                    "secret": self.notice_secret,
                },
            )
            answer.raise_for_status()

    async def _send(self, producer: AIOKafkaProducer, events: list[EventData], span: float) -> None:
        """Send `events` evenly over `span` seconds, each with an id fixed by the seed."""
        pause = span / max(len(events), 1)
        for event in events:
            self.sequence += 1
            value, headers = to_structured(
                event, source=SOURCE, event_id=f"fault-{self.seed}-{self.sequence:06d}"
            )
            topic = topic_name(event.event_name)
            while True:
                try:
                    await producer.send_and_wait(
                        topic, value=value, key=event.key().encode(), headers=headers
                    )
                    break
                except Exception:  # unknown outcome: send it again, the inbox keeps it once
                    self.report.inbound_resent += 1
                    await asyncio.sleep(1)
            self.report.inbound_sent += 1
            await asyncio.sleep(pause)

    async def _stream(self, producer: AIOKafkaProducer) -> None:
        work, span = self.work, self.size.stream_s
        await self._send(producer, list(work.projects), span * 0.15)
        ids = [p.project_id for p in work.projects]
        # Requests and their priorities need the projects known to allocation first.
        await _until(lambda: self._all_known(ids), self.size.quiescence_timeout_s)
        reports = asyncio.create_task(self._send(producer, list(work.reports), span * 0.6))
        await self._send(producer, list(work.first_requests), 0)
        first = [r.request_id for r in work.first_requests]
        await _until(lambda: self._decided(first), self.size.quiescence_timeout_s)
        await self._send(producer, list(work.second_requests), span * 0.1)
        await reports
        assert work.strategy is not None
        await self._send(producer, [work.strategy], 0)

    async def _all_known(self, ids: list[str]) -> bool:
        counts = [
            await self.db.count(
                f"SELECT count(*) FROM {table} WHERE project_id = ANY($1::text[]){extra}", ids
            )
            for table, extra in (
                ("registry.project", ""),
                ("monitoring.monitored_project", ""),
                ("allocation.project", " AND lifecycle IS NOT NULL"),
            )
        ]
        return all(count == len(ids) for count in counts)

    async def _decided(self, request_ids: list[str]) -> bool:
        decided = await self.db.count(
            "SELECT count(*) FROM allocation.resource_request"
            " WHERE request_id = ANY($1::text[]) AND decided_at IS NOT NULL",
            request_ids,
        )
        return decided == len(request_ids)

    async def _inject(self, stack: PmoUp) -> None:
        started = time.monotonic()
        for fault in self.report.faults:
            await asyncio.sleep(max(fault.at_s - (time.monotonic() - started), 0))
            if fault.kind == "kill":
                service: ServiceName = fault.target  # type: ignore[assignment]
                # A service still coming back from an earlier kill is killed once it runs again.
                for _ in range(60):
                    if stack.kill_service(service):
                        fault.done = True
                        break
                    await asyncio.sleep(1)
            elif fault.kind == "database-restart":
                await asyncio.get_running_loop().run_in_executor(
                    self.database_thread, stack.restart_database, fault.seconds
                )
                fault.done = True
            elif fault.kind == "broker-freeze":
                pid = stack.freeze_broker()
                try:
                    await asyncio.sleep(fault.seconds)
                finally:
                    stack.thaw_broker(pid)
                fault.done = True

    def _outbound(self, collector: Collector) -> tuple[dict[str, Any], Counter[str], list[Any]]:
        """First copy of each outbound event by id, copies per id, and the dead letters."""
        events: dict[str, Any] = {}
        copies: Counter[str] = Counter()
        dead: list[Any] = []
        for topic, value, headers in list(collector.records):
            if topic.endswith(".dlq"):
                dead.append((topic, dict(headers)))
                continue
            envelope = json.loads(value)
            copies[envelope["id"]] += 1
            events.setdefault(envelope["id"], envelope)
        return events, copies, dead

    def _meanings(self, events: dict[str, Any]) -> dict[Meaning, set[str]]:
        meanings: dict[Meaning, set[str]] = defaultdict(set)
        for event_id, envelope in events.items():
            name = envelope["type"].removeprefix("pmo.")
            meanings[meaning_of(name, envelope["data"])].add(event_id)
        return meanings

    def _expected_webhooks(self, events: dict[str, Any]) -> set[tuple[str, str]]:
        wanted = set()
        for event_id, envelope in events.items():
            name = envelope["type"].removeprefix("pmo.")
            if name == "project-at-risk":
                wanted.add(("alerts", event_id))
            if name in NOTICE_TYPES:
                wanted.add(("notices", event_id))
        return wanted

    async def _quiesce(self, collector: Collector) -> None:
        async def done() -> bool:
            events, _, _ = self._outbound(collector)
            if not self.work.expected <= set(self._meanings(events)):
                return False
            if not self.report.seconds_to_events:
                self.report.seconds_to_events = time.monotonic() - self.stream_started
            received = {(w.path, w.event_id) for w in self.receiver.received}
            if not self._expected_webhooks(events) <= received:
                return False
            if not self.report.seconds_to_webhooks:
                self.report.seconds_to_webhooks = time.monotonic() - self.stream_started
            pending = await self.db.count(
                "SELECT (SELECT count(*) FROM notifications.delivery WHERE state = 'pending')"
                + "".join(
                    f" + (SELECT count(*) FROM {name}.outbox WHERE state = 'pending')"
                    for name in SERVICE_NAMES
                )
            )
            return pending == 0 and time.monotonic() - collector.last_record_at > self.size.settle_s

        await _until(done, self.size.quiescence_timeout_s)

    async def _check(self, collector: Collector) -> None:
        report, work = self.report, self.work
        events, copies, dead = self._outbound(collector)
        meanings = self._meanings(events)
        report.outbound_records = sum(copies.values())
        report.outbound_events = len(events)
        report.same_id_copies = sum(n - 1 for n in copies.values())
        report.expected = len(work.expected)
        report.lost = sorted(work.expected - set(meanings), key=repr)
        # Allocation restates a decision or conflict whose reason changed while the people
        # stayed (issue 10: never keep a stale "not registered"): same meaning, new statement.
        # That is a new fact, not a second effect; the same statement twice is.
        statements = {
            event_id: statement_of(envelope["data"]) for event_id, envelope in events.items()
        }
        report.twice = sorted(
            (
                m
                for m, ids in meanings.items()
                if len({statements[event_id] for event_id in ids}) < len(ids)
            ),
            key=repr,
        )
        report.unexpected = sorted(
            (m for m in set(meanings) - work.expected if m[0] not in UNPREDICTED), key=repr
        )

        for name in SERVICE_NAMES:
            for row in await self.db.fetch(
                f"SELECT reason, topic, event_id FROM {name}.dead_letter ORDER BY id"
            ):
                if row["reason"].startswith("duplicate:"):
                    report.duplicates_dead_lettered += 1
                else:
                    report.dead_lettered_valid.append(
                        f"{name}: {row['topic']} {row['event_id']}: {row['reason'][:200]}"
                    )

        for topic, headers in dead:  # what operators see on the dead-letter topics
            reason = headers.get("pmo-dlq-reason", b"").decode(errors="replace")
            if not reason.startswith("duplicate:"):
                report.dead_lettered_valid.append(f"{topic}: {reason[:200]}")

        wanted = self._expected_webhooks(events)
        by_event: dict[tuple[str, str], set[str]] = defaultdict(set)
        posts: Counter[tuple[str, str]] = Counter()
        for hook in self.receiver.received:
            by_event[(hook.path, hook.event_id)].add(hook.delivery_id)
            posts[(hook.path, hook.delivery_id)] += 1
            report.webhooks_unsigned += not hook.signed
        report.webhooks_expected = len(wanted)
        report.webhooks_received = len(wanted & set(by_event))
        report.webhook_repeats = sum(n - 1 for n in posts.values())
        report.webhooks_missing = sorted(f"{path}:{eid}" for path, eid in wanted - set(by_event))
        report.webhooks_twice = sorted(
            f"{path}:{eid}" for (path, eid), ids in by_event.items() if len(ids) > 1
        )

        ids = list(work.final_health)
        health = {
            row["project_id"]: row["health"]
            for row in await self.db.fetch(
                "SELECT project_id, health FROM monitoring.monitored_project"
                " WHERE project_id = ANY($1::text[])",
                ids,
            )
        }
        for pid, truth in work.final_health.items():
            if health.get(pid) != truth:
                report.state_mismatches.append(f"monitoring {pid}: {health.get(pid)} != {truth}")
        stages = {
            row["project_id"]: row["lifecycle"]
            for row in await self.db.fetch(
                "SELECT project_id, lifecycle FROM registry.project"
                " WHERE project_id = ANY($1::text[])",
                list(work.final_lifecycle),
            )
        }
        for pid, truth in work.final_lifecycle.items():
            if stages.get(pid) != truth:
                report.state_mismatches.append(f"registry {pid}: {stages.get(pid)} != {truth}")
        kept = await self.db.count(
            "SELECT count(*) FROM registry.status_report WHERE project_id = ANY($1::text[])",
            ids,
        )
        if kept != len(work.reports):
            report.state_mismatches.append(
                f"registry keeps {kept} status reports of {len(work.reports)} sent"
            )
        decisions = {
            row["request_id"]: (row["status"], row["fte_granted"])
            for row in await self.db.fetch(
                "SELECT request_id, status, fte_granted FROM allocation.resource_request"
            )
        }
        decided = {r.request_id: ("granted", 1.0) for r in work.first_requests}
        decided |= {r.request_id: ("denied", 0.0) for r in work.second_requests}
        for request_id, decision in decided.items():
            if decisions.get(request_id) != decision:
                report.state_mismatches.append(
                    f"allocation {request_id}: {decisions.get(request_id)} != {decision}"
                )
        assessed = await self.db.count(
            "SELECT count(*) FROM monitoring.health_assessment"
            " WHERE trigger = 'status-changed' AND project_id = ANY($1::text[])",
            ids,
        )
        if assessed != len(work.reports):
            report.state_mismatches.append(
                f"monitoring assessed {assessed} status reports of {len(work.reports)} sent"
            )


def run_suite(seed: int, size: Size, data_dir: Path) -> Report:
    """One run of the fault suite (blocks; call from the main thread)."""
    return Run(seed, size, data_dir).execute()
