"""The fault suite's own `pmo up`, and its faults: kill -9, database restart, broker freeze.

`pmo up` runs in its own data folder (`PMO_DATA_DIR`) with a port offset, on the embedded Tansu
broker and embedded PostgreSQL, exactly as a newcomer runs it; the suite finds its processes from
its process tree and the PostgreSQL data folder:

- a service is killed with SIGKILL, and `pmo up` restarts it;
- PostgreSQL is restarted as `pg_ctl restart -m immediate` does it: SIGQUIT to the postmaster
  (every backend quits at once, nothing is flushed, the next start runs crash recovery), a pause,
  then a new postmaster on the same data folder and port (`pmo up` does not supervise the
  database, so the suite starts it, with the same launcher `pmo up` uses);
- the broker is frozen with SIGSTOP and thawed with SIGCONT.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from pmo.embedded import EmbeddedPostgres, EmbeddedProcessError, free_port, port_is_free
from pmo.stack import ALERT_LANE_HTTP_PORT, DEMO_WEBHOOK_PORT, STACK_FILE
from shared.settings import DASHBOARD_HTTP_PORT, DEFAULT_HTTP_PORTS, SERVICE_NAMES, ServiceName

ADMIN_TOKEN = "fault-suite-admin-token-0123456789"
TOKEN_SECRET = "fault-suite-token-secret-0123456789"


def _ephemeral_ports() -> tuple[int, int]:
    """The range the kernel takes the local ports of outgoing connections from."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def port_offset() -> int:
    """An offset under which every port `pmo up` listens on (the services', the alert lane's,
    the dashboard's) and the demo receiver's port are free.

    The ports stay below the ephemeral range: there, while a killed service is down, any
    outgoing connection may take its port as a local port, and the restarted service could
    never listen again.
    """
    ports = (
        *DEFAULT_HTTP_PORTS.values(),
        ALERT_LANE_HTTP_PORT,
        DASHBOARD_HTTP_PORT,
        DEMO_WEBHOOK_PORT,
    )
    low, _ = _ephemeral_ports()
    if low - max(ports) < 1000:
        raise RuntimeError(f"the ephemeral port range starts at {low}: no room for pmo up's ports")
    chooser = random.SystemRandom()  # not the run's seed: parallel runs must not collide
    for _ in range(200):
        offset = chooser.randrange(100, low - max(ports))
        if all(port_is_free(port + offset) for port in ports):
            return offset
    raise RuntimeError("no free block of ports for pmo up")


class PmoUp:
    """One `pmo up` process with its own data folder; stopped (Ctrl-C) by `stop()`."""

    def __init__(self, data_dir: Path, *, webhook_url: str, webhook_secret: str) -> None:
        self.data_dir = data_dir
        self.offset = port_offset()
        self.ports: dict[ServiceName, int] = {
            name: DEFAULT_HTTP_PORTS[name] + self.offset for name in SERVICE_NAMES
        }
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PMO_", "OTEL_"))}
        self.env.update(
            PMO_DATA_DIR=str(data_dir),
            PMO_ADMIN_TOKEN=ADMIN_TOKEN,
            PMO_TOKEN_SECRET=TOKEN_SECRET,
            PMO_ALERT_WEBHOOK_URL=webhook_url,
            PMO_ALERT_WEBHOOK_SECRET=webhook_secret,
            # Each notice is its own delivery: a summary would merge the alerts counted here.
            PMO_NOTIFICATION_THROTTLE_WINDOW="PT0S",
            PMO_NOTIFICATION_RETRY_BASE_S="1",
            PMO_NOTIFICATION_RETRY_MAX_S="5",
            PMO_NOTIFICATION_MAX_ATTEMPTS="100",
            PMO_TOPIC_PARTITIONS="3",
            PMO_LOG_JSON="true",
            # The ports of our own broker and database are chosen free by the embedded parts.
            PMO_EMBEDDED_KAFKA_PORT=str(free_port()),
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.database: EmbeddedPostgres | None = None
        """The PostgreSQL the suite restarted (the first one is `pmo up`'s own)."""
        self.output = data_dir / "pmo-up.out"

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    def start(self, timeout: float = 240.0) -> None:
        """Start `pmo up` and wait until every service answers `/readyz`."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.output.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pmo", "up", "--port-offset", str(self.offset)],
                env=self.env,
                cwd=self.data_dir,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = set(self.ports.values())
        while pending:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"pmo up exited early:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"services on {sorted(pending)} never ready:\n{self.tail()}")
            for port in list(pending):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=3).status_code == 200:
                        pending.discard(port)
            time.sleep(0.5)

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.output.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stack_env(self) -> dict[str, str]:
        """What `pmo up` wrote for `pmo run`/`demo`: the broker's and the database's addresses."""
        pairs = (self.data_dir / STACK_FILE).read_text().splitlines()
        return dict(line.split("=", 1) for line in pairs if "=" in line)

    def url(self, service: ServiceName) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def _family(self) -> list[psutil.Process]:
        assert self.process is not None
        try:
            return psutil.Process(self.process.pid).children(recursive=False)
        except psutil.NoSuchProcess:
            return []

    def service_pid(self, service: ServiceName) -> int | None:
        for child in self._family():
            with contextlib.suppress(psutil.Error):
                command = child.cmdline()
                if "run" in command and service in command and child.status() != "zombie":
                    return child.pid
        return None

    def broker_pid(self) -> int:
        for child in self._family():
            with contextlib.suppress(psutil.Error):
                if "broker" in child.cmdline() and "--cluster-id" in child.cmdline():
                    return child.pid
        raise RuntimeError("the embedded broker is not running under pmo up")

    def kill_service(self, service: ServiceName) -> bool:
        """SIGKILL the service's process; False when it was not running (being restarted)."""
        pid = self.service_pid(service)
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return True

    def freeze_broker(self) -> int:
        pid = self.broker_pid()
        os.kill(pid, signal.SIGSTOP)
        return pid

    @staticmethod
    def thaw_broker(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)

    def restart_database(self, down_s: float) -> None:
        """Immediate shutdown of PostgreSQL, `down_s` seconds away, then a start on its data.

        Call from a thread that outlives the run: the new postmaster is told to stop when the
        calling thread ends (what keeps a crashed suite from leaving a server behind).
        """
        pgdata = self.data_dir / "postgres"
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        postmaster, port = int(lines[0]), int(lines[3])
        os.kill(postmaster, signal.SIGQUIT)  # what pg_ctl stop -m immediate sends
        deadline = time.monotonic() + 30
        while psutil.pid_exists(postmaster) and time.monotonic() < deadline:
            with contextlib.suppress(psutil.Error):
                if psutil.Process(postmaster).status() == psutil.STATUS_ZOMBIE:
                    break
            time.sleep(0.05)
        time.sleep(down_s)
        if self.database is None:
            self.database = EmbeddedPostgres(
                pgdata, port=port, log_path=self.logs / "postgres-restarted.log"
            )
        for attempt in range(30):
            try:
                self.database.start(timeout=120)
                return
            except EmbeddedProcessError as error:
                # Its port is in the ephemeral range: while it was down, an outgoing connection
                # may have taken it as a local port; those end, the services need this port.
                if "could not bind" not in str(error) or attempt == 29:
                    raise
                time.sleep(2)

    def stop(self) -> int | None:
        """Ctrl-C `pmo up` (services first, then broker and database); its exit code."""
        code = None
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                code = self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        elif self.process is not None:
            code = self.process.returncode
        if self.database is not None:
            self.database.stop()
        return code
