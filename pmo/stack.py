"""`pmo up`: the whole system on one machine, embedded broker and database unless configured."""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from pmo.embedded import (
    EmbeddedKafka,
    EmbeddedPostgres,
    port_is_free,
    set_parent_death_signal,
)
from pmo.topics import create_topics
from shared.database import migrate_url
from shared.settings import DASHBOARD_HTTP_PORT, DEFAULT_HTTP_PORTS, SERVICE_NAMES, Settings

STACK_FILE = "stack.env"
"""Where `pmo up` writes the embedded broker's and database's addresses for `pmo demo`/`run`."""
DEMO_WEBHOOK_PORT = 8099
RESTART_LIMIT = 5
"""A service that dies this many times within a minute is not restarted again."""


def _say(message: str) -> None:
    print(message, flush=True)


@dataclass
class _Child:
    name: str
    """A service, or `dashboard`."""
    port: int
    process: subprocess.Popen[bytes] | None = None
    deaths: list[float] = field(default_factory=list)


class Stack:
    """Starts the parts, supervises the four services, and stops everything on Ctrl-C/SIGTERM."""

    def __init__(self, settings: Settings, *, port_offset: int = 0) -> None:
        self.settings = settings
        self.port_offset = port_offset
        self.data_dir = Path(settings.data_dir).resolve()
        self.logs = self.data_dir / "logs"
        self._stop = False

    def run(self) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        previous = {
            sig: signal.signal(sig, self._request_stop)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # HUP: terminal closed
        }
        with ExitStack() as parts:
            try:
                env = self._start_parts(parts)
            except Exception as error:
                _say(f"pmo up: could not start: {error}")
                return 1
            children = [
                _Child(name, DEFAULT_HTTP_PORTS[name] + self.port_offset) for name in SERVICE_NAMES
            ]
            children.append(_Child("dashboard", DASHBOARD_HTTP_PORT + self.port_offset))
            try:
                for child in children:
                    self._spawn(child, env)
                self._announce(children)
                code = self._supervise(children, env)
            finally:
                self._stop_children(children)
                (self.data_dir / STACK_FILE).unlink(missing_ok=True)
            _say("pmo up: stopping the broker and the database")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _say("pmo up: stopped")
        return code

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop = True

    def _start_parts(self, parts: ExitStack) -> dict[str, str]:
        overrides: dict[str, str] = {}
        if not self.settings.kafka_bootstrap_servers:
            port = self.settings.embedded_kafka_port
            kafka = EmbeddedKafka(
                port=port if port_is_free(port) else 0, log_path=self.logs / "kafka.log"
            )
            _say("pmo up: starting the embedded Kafka-compatible broker (Tansu, in memory)")
            overrides["PMO_KAFKA_BOOTSTRAP_SERVERS"] = kafka.start()
            parts.callback(kafka.stop)
            # Its memory engine rejects InitProducerId; correctness never relied on idempotence.
            overrides["PMO_KAFKA_ENABLE_IDEMPOTENCE"] = "false"
        if not self.settings.database_url:
            postgres = EmbeddedPostgres(
                self.data_dir / "postgres", log_path=self.logs / "postgres.log"
            )
            _say(f"pmo up: starting the embedded PostgreSQL (data in {self.data_dir / 'postgres'})")
            overrides["PMO_DATABASE_URL"] = postgres.start()
            parts.callback(postgres.stop)
        if not self.settings.admin_token:
            overrides["PMO_ADMIN_TOKEN"] = self._secret("admin-token")
        if not self.settings.token_secret:
            overrides["PMO_TOKEN_SECRET"] = self._secret("token-secret")
        if not self.settings.alert_webhook_url:
            # Where `pmo demo` listens; configure PMO_ALERT_WEBHOOK_URL for a real receiver.
            demo_port = DEMO_WEBHOOK_PORT + self.port_offset
            overrides["PMO_ALERT_WEBHOOK_URL"] = f"http://127.0.0.1:{demo_port}/alerts"
            overrides["PMO_ALERT_WEBHOOK_SECRET"] = secrets.token_urlsafe(24)
        overrides.update(self._dashboard_urls())
        env = {**os.environ, **overrides}
        env.pop("PMO_HTTP_PORT", None)  # each service gets its own port below
        settings = Settings.model_validate(
            {**self.settings.model_dump(), **{k[4:].lower(): v for k, v in overrides.items()}}
        )
        _say("pmo up: creating topics and migrating the services' schemas")
        asyncio.run(self._prepare(settings))
        # For `pmo demo` and `pmo run` beside this stack; secrets in it, so readable by us only.
        stack_file = self.data_dir / STACK_FILE
        stack_file.touch(mode=0o600)
        stack_file.chmod(0o600)  # touch keeps the mode of a file left by an earlier run
        stack_file.write_text("".join(f"{key}={value}\n" for key, value in overrides.items()))
        return env

    def _local_host(self) -> str:
        """The address to reach this machine's services at (a wildcard bind is not one)."""
        host = self.settings.http_host
        return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host

    def _dashboard_urls(self) -> dict[str, str]:
        """Where the dashboard finds the services, and the public URL of its pages that the
        notification links use; all follow the port offset. Configured values win."""
        host = self._local_host()
        urls = {
            f"PMO_DASHBOARD_{name.upper()}_URL": f"http://{host}:{port + self.port_offset}"
            for name, port in DEFAULT_HTTP_PORTS.items()
        }
        urls["PMO_DASHBOARD_PUBLIC_URL"] = f"http://{host}:{DASHBOARD_HTTP_PORT + self.port_offset}"
        return {key: value for key, value in urls.items() if key not in os.environ}

    async def _prepare(self, settings: Settings) -> None:
        await create_topics(settings)
        for name in SERVICE_NAMES:
            await migrate_url(settings.database_url_for(name), name)

    def _secret(self, name: str) -> str:
        """A generated secret kept in the data folder, so it survives restarts."""
        path = self.data_dir / name
        if not path.exists():
            # Created readable by us only, before anything secret is in it.
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(24))
        return path.read_text().strip()

    def _spawn(self, child: _Child, env: dict[str, str]) -> None:
        log = (self.logs / f"{child.name}.log").open("ab")
        child.process = subprocess.Popen(
            [sys.executable, "-m", "pmo", "run", child.name, "--port", str(child.port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
            # If pmo up dies without stopping them (kill -9), the kernel tells them to stop.
            preexec_fn=functools.partial(set_parent_death_signal, signal.SIGTERM, os.getpid()),
        )
        log.close()

    def _announce(self, children: list[_Child]) -> None:
        _say("")
        _say("PMO backend is up:")
        for child in children:
            if child.name == "dashboard":
                continue
            _say(
                f"  {child.name:<14} http://{self.settings.http_host}:{child.port}"
                "  (docs: /docs, events: /asyncapi)"
            )
        dashboard = next(c for c in children if c.name == "dashboard")
        _say(
            f"  dashboard      http://{self._local_host()}:{dashboard.port}"
            "  (sign in with the admin token)"
        )
        _say(
            f"  admin token    {self.data_dir / 'admin-token'}"
            if not self.settings.admin_token
            else "  admin token    PMO_ADMIN_TOKEN"
        )
        _say(f"  logs           {self.logs}")
        _say("Run `pmo demo` in another terminal to see alerts; Ctrl-C stops everything.")

    def _supervise(self, children: list[_Child], env: dict[str, str]) -> int:
        while not self._stop:
            time.sleep(0.5)
            for child in children:
                if child.process is None or child.process.poll() is None:
                    continue
                now = time.monotonic()
                child.deaths = [t for t in child.deaths if now - t < 60] + [now]
                if len(child.deaths) >= RESTART_LIMIT:
                    _say(
                        f"pmo up: {child.name} keeps failing; "
                        f"see {self.logs / (child.name + '.log')}"
                    )
                    return 1
                _say(f"pmo up: {child.name} exited with {child.process.returncode}; restarting it")
                self._spawn(child, env)
        return 0

    def _stop_children(self, children: list[_Child]) -> None:
        _say("pmo up: stopping the services (finishing the batches in hand)")
        running = [
            c.process for c in children if c.process is not None and c.process.poll() is None
        ]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 35
        for process in running:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
