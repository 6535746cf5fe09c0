"""`pmo up` and `pmo demo` as a newcomer runs them: alerts arrive; Ctrl-C leaves nothing behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from pmo.embedded import free_port, port_is_free
from tests.harness import with_database

pytestmark = pytest.mark.e2e

SERVICE_PORTS = (8001, 8002, 8003, 8004)
DASHBOARD_PORT = 8000


def _offset() -> int:
    """A port offset under which the four service ports and the demo port are all free."""
    for _ in range(50):
        offset = free_port() - 8001
        ports = (*SERVICE_PORTS, DASHBOARD_PORT, 8099)
        if offset > 0 and all(port_is_free(port + offset) for port in ports):
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


def _wait_ready(offset: int, up: subprocess.Popen[str], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    pending = {port + offset for port in (*SERVICE_PORTS, DASHBOARD_PORT)}
    while pending and time.monotonic() < deadline:
        assert up.poll() is None, f"pmo up exited early:\n{up.stdout.read() if up.stdout else ''}"
        for port in list(pending):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    pending.discard(port)
            except httpx.HTTPError:
                pass
        time.sleep(0.5)
    assert not pending, f"services on {sorted(pending)} never became ready"


@contextlib.contextmanager
def _running_stack(tmp_path: Path, env: dict[str, str]) -> Iterator[str]:
    """`pmo up` until the demo has run (yields the demo's output), then Ctrl-C and checks."""
    offset = _offset()
    up = _pmo("up", "--port-offset", str(offset), env=env, cwd=tmp_path)
    family: list[psutil.Process] = []
    try:
        _wait_ready(offset, up)
        family = psutil.Process(up.pid).children(recursive=True)
        assert len(family) >= 4, "the four services run as processes of pmo up"
        demo = _pmo("demo", "--port-offset", str(offset), "--timeout", "60", env=env, cwd=tmp_path)
        output, _ = demo.communicate(timeout=120)
        assert demo.returncode == 0, output
        yield output
    finally:
        up.send_signal(signal.SIGINT)  # what Ctrl-C sends
        up.wait(timeout=90)
    _, alive = psutil.wait_procs(family, timeout=10)
    assert not alive, f"left behind: {[p.info for p in alive]}"
    assert up.returncode == 0


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMO_")}
    env.update(PMO_DATA_DIR=str(data_dir), PMO_LOG_JSON="true", **extra)
    return env


def test_pmo_up_on_the_embedded_default_alerts_then_stops_cleanly(tmp_path: Path) -> None:
    with _running_stack(tmp_path, _env(tmp_path / ".pmo")) as output:
        assert "ALERT pmo.project-at-risk PRJ-ATLAS-" in output
        assert "ALERT pmo.project-at-risk PRJ-CIRRUS-" in output
        assert "signature verified" in output
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
            PMO_KAFKA_ENABLE_IDEMPOTENCE="false",
            PMO_TOPIC_PREFIX=f"{name}.",
        )
        with _running_stack(tmp_path, env) as output:
            assert "ALERT pmo.project-at-risk PRJ-ATLAS-" in output
        logs = tmp_path / ".pmo" / "logs"
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
