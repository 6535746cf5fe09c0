"""`pmo up` and `pmo demo` as a newcomer runs them: "up" only when up; alerts and the promised
conflict arrive; a flapping service is kept out while the others go on; Ctrl-C leaves nothing."""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pmo.embedded import port_is_free
from shared.runtime import idempotence_refusal
from tests.harness import with_database

pytestmark = pytest.mark.e2e

SERVICE_PORTS = (8001, 8002, 8003, 8004)
ALERT_LANE_PORT = 8005
"""notifications' alert lane, a process of its own (`pmo.stack.LANE_PROCESSES`)."""
DASHBOARD_PORT = 8000


def _offset() -> int:
    """A port offset under which the four service ports and the demo port are all free.

    Below the kernel's ephemeral range (32768 up on Linux), so the local end of some outgoing
    connection cannot take a service's port between this check and its bind.
    """
    for _ in range(50):
        offset = random.randrange(10_000, 24_000)
        ports = (*SERVICE_PORTS, ALERT_LANE_PORT, DASHBOARD_PORT, 8099)
        if all(port_is_free(port + offset) for port in ports):
            return offset
    raise AssertionError("no free block of ports for pmo up")


def _pmo(*args: str, env: dict[str, str], cwd: Path, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "pmo", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


class Console:
    """What `pmo up` prints, read as it comes, so a test can wait for a line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float, after: int = 0) -> int:
        """The index of the first line from `after` on containing `text`; fails after timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index in range(after, len(self.lines)):
                if text in self.lines[index]:
                    return index
            assert self.process.poll() is None, "pmo up exited:\n" + "\n".join(self.lines)
            time.sleep(0.2)
        raise AssertionError(f"no {text!r} within {timeout:.0f}s:\n" + "\n".join(self.lines))


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _at_risk_taken(port: int, outcomes: set[str] | None = None) -> float:
    """project-at-risk events the process on `port` took (its /metrics), with one of
    `outcomes` (processed, parked, dead_lettered, duplicate) if given."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "pmo_events_consumed_total"
        and sample.labels.get("topic") == "project-at-risk"
        and (outcomes is None or sample.labels.get("outcome") in outcomes)
    )


def _service_process(up: subprocess.Popen[str], name: str, not_pid: int = 0) -> psutil.Process:
    """The process of service `name` that `pmo up` runs now (another than `not_pid`)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for child in psutil.Process(up.pid).children():
            with contextlib.suppress(psutil.Error):
                if child.pid != not_pid and child.cmdline()[-3:-2] == [name]:
                    return child
        time.sleep(0.1)
    raise AssertionError(f"pmo up never (re)started {name}")


@dataclass
class Stack:
    """A running `pmo up`: its console, ports, admin headers and data folder."""

    up: subprocess.Popen[str]
    console: Console
    offset: int
    env: dict[str, str]
    cwd: Path

    def port(self, service: str) -> int:
        return {
            "registry": 8001,
            "allocation": 8002,
            "monitoring": 8003,
            "notifications": 8004,
            "notifications-alerts": ALERT_LANE_PORT,
        }[service] + self.offset

    def api(self, service: str, path: str) -> Any:
        token = (Path(self.env["PMO_DATA_DIR"]) / "admin-token").read_text().strip()
        answer = httpx.get(
            f"http://127.0.0.1:{self.port(service)}{path}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def demo(self) -> str:
        demo = _pmo(
            "demo", "--port-offset", str(self.offset), "--timeout", "90", env=self.env, cwd=self.cwd
        )
        output, _ = demo.communicate(timeout=150)
        assert demo.returncode == 0, output
        return output


@contextlib.contextmanager
def _running_stack(tmp_path: Path, env: dict[str, str]) -> Iterator[Stack]:
    """`pmo up` until the test is done with it, then Ctrl-C and checks nothing is left behind."""
    offset = _offset()
    up = _pmo("up", "--port-offset", str(offset), env=env, cwd=tmp_path)
    console = Console(up)
    family: list[psutil.Process] = []
    try:
        up_at = console.wait_for("PMO backend is up", timeout=180)
        # "Up" only when up (issue 12.11): every service said to be up answers /readyz. One
        # kept out (its port taken meanwhile by another program on a busy machine, say) is
        # named, and said to be up again once it is.
        header = console.lines[up_at]
        without = re.match(r"PMO backend is up without ([a-z, -]+) \(", header)
        missing = without.group(1).split(", ") if without else []
        assert header == "PMO backend is up:" or missing, header
        # The four services, and notifications' alert lane in a process of its own.
        services = ("registry", "allocation", "monitoring", "notifications", "notifications-alerts")
        ports = (*SERVICE_PORTS, ALERT_LANE_PORT)
        for name, port in zip(services, ports, strict=True):
            if name not in missing:
                assert _ready(port + offset), name
        for name in missing:
            console.wait_for(f"pmo up: {name} is up again", timeout=120, after=up_at)
        assert [_ready(port + offset) for port in ports] == [True] * 5
        listed = "\n".join(console.lines[up_at:])
        for name, port in zip(services, ports, strict=True):
            assert re.search(rf"{name}\s+http://127.0.0.1:{port + offset}", listed), listed
        # Where to publish: the configured broker, or the embedded one's address as written
        # for `pmo demo` and `pmo run`.
        written = (tmp_path / ".pmo" / "stack.env").read_text()
        embedded = re.search(r"PMO_KAFKA_BOOTSTRAP_SERVERS=(\S+)", written)
        broker = env.get("PMO_KAFKA_BOOTSTRAP_SERVERS") or (embedded and embedded.group(1))
        assert broker, written
        assert re.search(rf"kafka\s+{re.escape(broker)}(\s|$)", listed, re.M), listed
        family = psutil.Process(up.pid).children(recursive=True)
        assert len(family) >= 5, "the services and the alert lane run as processes of pmo up"
        yield Stack(up, console, offset, env, tmp_path)
        family = psutil.Process(up.pid).children(recursive=True)
    finally:
        up.send_signal(signal.SIGINT)  # what Ctrl-C sends
        up.wait(timeout=90)
    _, alive = psutil.wait_procs(family, timeout=10)
    assert not alive, f"left behind: {[p.info for p in alive]}"
    assert up.returncode == 0, "\n".join(console.lines)


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMO_")}
    env.update(PMO_DATA_DIR=str(data_dir), PMO_LOG_JSON="true", **extra)
    return env


def test_pmo_up_on_the_embedded_default_alerts_then_stops_cleanly(tmp_path: Path) -> None:
    with _running_stack(tmp_path, _env(tmp_path / ".pmo")) as stack:
        # Nothing configured by default fails by itself (issue 12.13): no built-in webhook
        # pointing at a receiver that listens only while `pmo demo` runs.
        assert "PMO_ALERT_WEBHOOK_URL" not in (tmp_path / ".pmo" / "stack.env").read_text()
        [built_in] = stack.api("notifications", "/subscriptions")
        assert (built_in["managed_by"], built_in["enabled"]) == ("environment", False)

        first = stack.demo()
        assert "ALERT pmo.project-at-risk PRJ-ATLAS-" in first
        assert "ALERT pmo.project-at-risk PRJ-CIRRUS-" in first
        assert "signature verified" in first
        # The at-risk alerts were taken from Kafka by notifications' alert lane, in its process
        # of its own (handled, or parked until their project's registration arrived); the other
        # process does not join that group, so it takes none from Kafka (it may replay one the
        # lane parked, when it handles that project's registration).
        assert _at_risk_taken(stack.port("notifications-alerts")) >= 2
        assert _at_risk_taken(stack.port("notifications"), outcomes={"parked"}) == 0
        assert "UNSIGNED" not in first
        # The promised conflict (issue 12.14): the architect is in the pool, two teams want
        # her, the key project wins by priority and Beacon gets what is left.
        assert "CONFLICT" in first
        assert re.search(r"won  PRJ-ATLAS-\w+: [0-9.]+ of 1 FTE", first), first
        assert re.search(r"lost PRJ-BEACON-\w+: [0-9.]+ of 0.8 FTE", first), first
        # A re-run is a fresh portfolio with its own architect and the next strategy version.
        second = stack.demo()
        assert re.search(r"won  PRJ-ATLAS-\w+: [0-9.]+ of 1 FTE", second), second
        strategies = stack.api("registry", "/strategies")
        assert sorted((s["strategy_version"], s["outcome"]) for s in strategies) == [
            (1, "applied"),
            (2, "applied"),
        ]
        # A later strategy with a normal version is taken, not ignored as out of date.
        assert stack.api("registry", "/objectives")["strategy_version"] == 2
        # The demo's own subscriptions end with it: nothing is left to fail by itself (the
        # project managers' own subscriptions stay, but without SMTP nothing is queued for them).
        assert [
            s["managed_by"]
            for s in stack.api("notifications", "/subscriptions")
            if s["managed_by"] != "project-manager"
        ] == ["environment"]

        # One flapping service does not stop the others (issue 15.2): it is kept out, with
        # backoff and a clear message, and comes back while the rest go on.
        killed = 0
        for _ in range(3):
            registry = _service_process(stack.up, "registry", not_pid=killed)
            killed = registry.pid
            registry.kill()
        kept_out = stack.console.wait_for("pmo up: registry keeps failing", timeout=60)
        assert "the others go on" in stack.console.lines[kept_out]
        assert stack.up.poll() is None
        for service in ("allocation", "monitoring", "notifications"):
            assert _ready(stack.port(service)), service
        stack.console.wait_for("pmo up: registry is up again", timeout=120, after=kept_out)
        assert _ready(stack.port("registry"))
    # The embedded database keeps its data where a restart will find it.
    assert (tmp_path / ".pmo" / "postgres" / "PG_VERSION").exists()


async def test_pmo_up_uses_the_configured_kafka_and_database_instead(
    tmp_path: Path, postgres_url: str, kafka_bootstrap: str
) -> None:
    name = f"pmo_up_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        env = _env(
            tmp_path / ".pmo",
            PMO_DATABASE_URL=with_database(postgres_url, name),
            PMO_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
            # Idempotence on, as for Apache Kafka: a broker refusing it (the embedded Tansu
            # the tests may use) must not stop the system (issue 12.10).
            PMO_KAFKA_ENABLE_IDEMPOTENCE="true",
            PMO_TOPIC_PREFIX=f"{name}.",
        )
        refused = await idempotence_refusal({"bootstrap_servers": kafka_bootstrap})
        with _running_stack(tmp_path, env) as stack:
            output = stack.demo()
            assert "ALERT pmo.project-at-risk PRJ-ATLAS-" in output
        logs = tmp_path / ".pmo" / "logs"
        for service in ("registry", "allocation", "monitoring", "notifications"):
            warned = "refuses idempotent producers" in (logs / f"{service}.log").read_text()
            assert warned == (refused is not None), service
        assert not (tmp_path / ".pmo" / "postgres").exists(), "no embedded database was started"
        assert not (logs / "kafka.log").exists(), "no embedded broker was started"
        database = await asyncpg.connect(with_database(postgres_url, name))
        try:
            delivered = await database.fetch(
                "SELECT project_id FROM notifications.delivery"
                " WHERE state = 'delivered' AND event_type = 'pmo.project-at-risk'"
            )
        finally:
            await database.close()
        flagged = {row["project_id"].rsplit("-", 1)[0] for row in delivered}
        assert {"PRJ-ATLAS", "PRJ-CIRRUS"} <= flagged, flagged
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
