"""`pmo up`: the whole system on one machine, embedded broker and database unless configured."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

from pmo.embedded import (
    EmbeddedKafka,
    EmbeddedPostgres,
    port_is_free,
    set_parent_death_signal,
)
from shared.settings import (
    DASHBOARD_HTTP_PORT,
    DEFAULT_HTTP_PORTS,
    SERVICE_NAMES,
    ServiceName,
    Settings,
)

STACK_FILE = "stack.env"
"""Where `pmo up` writes the embedded broker's and database's addresses for `pmo demo`/`run`."""
DEMO_WEBHOOK_PORT = 8099
RESTART_LIMIT = 3
"""A service that exits this many times without running a minute in between keeps failing."""
RESTART_BACKOFF_S = 1.0
"""The wait before restarting a service that exited; doubled at each exit in a row."""
RESTART_BACKOFF_MAX_S = 60.0
"""The longest wait: a service that keeps failing is tried again this often."""
STABLE_AFTER_S = 60.0
"""A service that ran this long before exiting starts its backoff afresh."""
SLOW_START_S = 60.0
"""After this long without every service ready, `pmo up` says which ones it waits for."""
EMBEDDED_SESSION_TIMEOUT_MS = 3000
"""The consumers' session timeout on the embedded broker, unless one is configured: a single
machine has no network between a service and its broker, and a failed-over partition is
picked up sooner too."""
READY_POLL_S = 0.2
"""How often `pmo up` looks at its services (exits, /readyz)."""
MAIN_LANE = "main"
"""How `pmo run --lanes`/PMO_LANES name a service's own consumer group (`pmo-{service}`)."""
ALERT_LANE_FETCH_MAX_WAIT_MS = 5
"""The lane processes' PMO_CONSUMER_FETCH_MAX_WAIT_MS on the embedded broker, unless one is
configured: Tansu answers a fetch only when its wait runs out, so the wait is the hop's latency
(one produce -> consume hop there: p50 12 ms at the default 20, 5 ms at 5); the cost is more
fetches from an idle consumer (about 8 % of a core instead of 4 %, and as much again in the
broker, on the 2-core machine of bench/results/alert_latency.md), paid by the alert lane only.
Apache Kafka answers as soon as a record arrives, so deployments keep the default."""
ALERT_LANE_HTTP_PORT = 8005
"""Where notifications' alert-lane process serves its API (the whole of it) by default."""
LANE_PROCESSES: tuple[tuple[str, ServiceName, str, int], ...] = (
    ("notifications-alerts", "notifications", "alerts", ALERT_LANE_HTTP_PORT),
)
"""Lanes `pmo up` runs as processes of their own: (process name, service, lane, port). The
service's process then runs its other groups only (`--lanes main`), so an alert's batch never
waits on the event loop behind a batch of the service's busier topics (issue 11). Each lane
process is a replica of its service (same database, inbox, delivery worker) supervised like
the others, logging to `logs/<process name>.log`."""


def _say(message: str) -> None:
    print(message, flush=True)


def last_error_line(log: Path, offset: int = 0) -> str | None:
    """The last error a service wrote to its log from `offset` on, in one line, or None.

    Reads the JSON lines of `pmo run` (an ERROR line, with the last line of its exception) and
    plain text (the last line of a traceback, e.g. from an import that failed before logging
    was set up). An error carrying an exception wins over a later one without, because the
    later one is usually the consequence ("Application startup failed. Exiting.").
    """
    try:
        with log.open("rb") as handle:
            handle.seek(offset)
            text = handle.read()[-256_000:].decode("utf-8", errors="replace")
    except OSError:
        return None
    with_exception: str | None = None
    without: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            if entry.get("level") not in ("ERROR", "CRITICAL"):
                continue
            message = str(entry.get("message", "")).strip()
            error = str(entry.get("error") or "").strip()
            if message.startswith("Traceback"):  # uvicorn logs a failed start's traceback so
                with_exception = message.splitlines()[-1]
            elif error:
                with_exception = f"{message}: {error.splitlines()[-1]}" if message else error
            else:
                without = message
        elif _TRACEBACK_END.match(line) or line.startswith("pmo run "):
            # The last line of a traceback, or what `pmo run` says before it exits.
            with_exception = line
    found = with_exception or without
    return found[:300] if found else None


_TRACEBACK_END = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Failed)\b.*")


def _how_it_ended(code: int) -> str:
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


@dataclass
class _Child:
    name: str
    """A service, `dashboard`, or a lane's process (`notifications-alerts`)."""
    port: int
    service: str | None = None
    """What `pmo run` runs when it is not `name` (a lane's process: its service)."""
    lanes: str | None = None
    """`pmo run --lanes`: the consumer groups it joins; None: all."""
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    log_offset: int = 0
    deaths: list[float] = field(default_factory=list)
    """When it exited, since it last ran for STABLE_AFTER_S."""
    restart_at: float | None = None
    ready: bool = False

    @property
    def keeps_failing(self) -> bool:
        """Exited RESTART_LIMIT times in a row and not (yet) back: kept out, retried later."""
        return len(self.deaths) >= RESTART_LIMIT and not self.ready


class Stack:
    """Starts the parts, supervises the four services, and stops everything on Ctrl-C/SIGTERM."""

    def __init__(self, settings: Settings, *, port_offset: int = 0) -> None:
        self.settings = settings
        self.port_offset = port_offset
        self.data_dir = Path(settings.data_dir).resolve()
        self.logs = self.data_dir / "logs"
        self._stop = False
        self._kafka = settings.kafka_bootstrap_servers or ""
        """Where the broker listens, as `pmo up` announces it (the embedded one's once started)."""
        embedded = not settings.kafka_bootstrap_servers
        self._lane_environment: dict[str, str] = (
            {"PMO_CONSUMER_FETCH_MAX_WAIT_MS": str(ALERT_LANE_FETCH_MAX_WAIT_MS)}
            if embedded and "consumer_fetch_max_wait_ms" not in settings.model_fields_set
            else {}
        )
        """What the lane processes get on top of the others' environment."""

    def run(self) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        previous = {
            sig: signal.signal(sig, self._request_stop)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # HUP: terminal closed
        }
        children = self.children()
        with ExitStack() as parts:
            # The services start first and load their code (seconds of CPU each) while the
            # broker and the database start; then they are handed their environment.
            for child in children:
                self._spawn(child, self._base_environment(), early=True)
            try:
                env = self._start_parts(parts)
            except Exception as error:
                self._abandon(children)
                _say(f"pmo up: could not start: {error}")
                return 1
            try:
                for child in children:
                    self._hand_environment(child, env)
                code = self._supervise(children, env)
            finally:
                self._stop_children(children)
                (self.data_dir / STACK_FILE).unlink(missing_ok=True)
            _say("pmo up: stopping the broker and the database")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _say("pmo up: stopped")
        return code

    def children(self) -> list[_Child]:
        """The processes `pmo up` runs: the four services, the lanes run apart
        (`LANE_PROCESSES`; their service then runs its own group only), the dashboard."""
        offset = self.port_offset
        apart: dict[str, list[str]] = {}
        children = []
        for name, service, lane, port in LANE_PROCESSES:
            children.append(_Child(name, port + offset, service=service, lanes=lane))
            apart.setdefault(service, []).append(lane)
        services = [
            _Child(
                name,
                DEFAULT_HTTP_PORTS[name] + offset,
                lanes=MAIN_LANE if name in apart else None,
            )
            for name in SERVICE_NAMES
        ]
        return [*services, *children, _Child("dashboard", DASHBOARD_HTTP_PORT + offset)]

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop = True

    def _start_parts(self, parts: ExitStack) -> dict[str, str]:
        overrides: dict[str, str] = {}
        if not self.settings.kafka_bootstrap_servers:
            port = self.settings.embedded_kafka_port
            free = port_is_free(port)
            kafka = EmbeddedKafka(port=port if free else 0, log_path=self.logs / "kafka.log")
            _say("pmo up: starting the embedded Kafka-compatible broker (Tansu, in memory)")
            overrides["PMO_KAFKA_BOOTSTRAP_SERVERS"] = self._kafka = kafka.start()
            if not free:  # a broker or a process left behind holds it: say where this one is
                _say(f"pmo up: port {port} is taken; the broker listens on {self._kafka}")
            parts.callback(kafka.stop)
            # Its memory engine rejects InitProducerId; correctness never relied on idempotence.
            overrides["PMO_KAFKA_ENABLE_IDEMPOTENCE"] = "false"
            if "consumer_session_timeout_ms" not in self.settings.model_fields_set:
                # Tansu completes a consumer-group join only after half the session timeout:
                # 5 s of every service's start at the default 10 s, 1.5 s at this one.
                overrides["PMO_CONSUMER_SESSION_TIMEOUT_MS"] = str(EMBEDDED_SESSION_TIMEOUT_MS)
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
        # No built-in webhook by default: nothing configured by default may fail by itself.
        # `pmo demo` subscribes its own receiver for as long as it runs.
        overrides.update(self._dashboard_urls())
        env = {**self._base_environment(), **overrides}
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
        # Imported here: SQLAlchemy and Alembic would delay the services' early start.
        from pmo.topics import create_topics
        from shared.database import migrate_url

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

    @staticmethod
    def _base_environment() -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PMO_HTTP_PORT", None)  # each service gets its own port
        env.pop("PMO_LANES", None)  # and its own lanes (`--lanes`), where it runs some only
        return env

    def _spawn(self, child: _Child, env: dict[str, str], *, early: bool = False) -> None:
        """Start `child`; `early`: before the broker and the database, with its environment
        to come on its stdin (see `_hand_environment`)."""
        log_path = self.logs / f"{child.name}.log"
        log = log_path.open("ab")
        child.log_offset = log.tell()  # its last error is looked for from here
        # The flag before the name: tools that find a service by its command line's end
        # (`... run NAME --port N`) find it either way.
        flag = ["--stack-environment-on-stdin"] if early else []
        if child.lanes is not None:
            flag += ["--lanes", child.lanes]
        run = [child.service or child.name, "--port", str(child.port)]
        child.process = subprocess.Popen(
            [sys.executable, "-m", "pmo", "run", *flag, *run],
            env=env,
            stdin=subprocess.PIPE if early else subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
            # If pmo up dies without stopping them (kill -9), the kernel tells them to stop.
            preexec_fn=functools.partial(set_parent_death_signal, signal.SIGTERM, os.getpid()),
        )
        log.close()
        child.started_at = time.monotonic()
        child.restart_at = None
        child.ready = False

    def _environment_of(self, child: _Child, env: dict[str, str]) -> dict[str, str]:
        """`env`, with what a lane process gets on top (`_lane_environment`)."""
        return {**env, **self._lane_environment} if child.service else env

    def _hand_environment(self, child: _Child, env: dict[str, str]) -> None:
        """Send an early-started child the variables `pmo up` set (addresses, secrets) and
        let it start; one that already exited is restarted by the supervision as usual."""
        process = child.process
        if process is None or process.stdin is None:
            return
        env = self._environment_of(child, env)
        overrides = {key: value for key, value in env.items() if os.environ.get(key) != value}
        try:
            process.stdin.write((json.dumps(overrides) + "\n").encode())
            process.stdin.close()
        except OSError:
            pass  # it exited meanwhile (BrokenPipeError): `_tend` sees it and says why

    def _abandon(self, children: list[_Child]) -> None:
        """Stop children started early when the broker or the database could not start:
        they have started nothing yet, so there is nothing to finish."""
        for child in children:
            if child.process is not None:
                if child.process.stdin is not None:
                    with contextlib.suppress(OSError):
                        child.process.stdin.close()  # its end of input: it exits by itself
                child.process.terminate()  # or now, if it is still loading its code
        for child in children:
            if child.process is not None:
                try:
                    child.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.process.kill()
                    child.process.wait()

    def _log_of(self, child: _Child) -> Path:
        return self.logs / f"{child.name}.log"

    def _last_error(self, child: _Child) -> str:
        line = last_error_line(self._log_of(child), child.log_offset)
        return f"last error: {line}" if line else f"no error logged; see {self._log_of(child)}"

    def _announce(self, children: list[_Child]) -> None:
        kept_out = [child for child in children if not child.ready]
        _say("")
        _say(
            "PMO backend is up:"
            if not kept_out
            else f"PMO backend is up without {', '.join(c.name for c in kept_out)} "
            "(it keeps failing and is retried; the others go on):"
        )
        width = max(len(child.name) for child in children) + 1
        for child in children:
            if child.name == "dashboard":
                continue
            what = (
                f"(its {child.lanes} lane, a process of its own; the same API)"
                if child.service
                else "(docs: /docs, events: /asyncapi)"
            )
            _say(
                f"  {child.name:<{width}} http://{self.settings.http_host}:{child.port}  {what}"
                + ("" if child.ready else "  NOT RUNNING")
            )
        dashboard = next(c for c in children if c.name == "dashboard")
        _say(
            f"  {'dashboard':<{width}} http://{self._local_host()}:{dashboard.port}"
            "  (sign in with the admin token)"
        )
        _say(
            f"  {'kafka':<{width}} {self._kafka}"
            + (
                ""
                if self.settings.kafka_bootstrap_servers
                else "  (embedded, in memory: events it holds that no service has taken yet "
                "are gone when it stops)"
            )
        )
        token = self.data_dir / "admin-token" if not self.settings.admin_token else None
        _say(f"  {'admin token':<{width}} {token or 'PMO_ADMIN_TOKEN'}")
        _say(f"  {'logs':<{width}} {self.logs}")
        _say("Run `pmo demo` in another terminal to see alerts; Ctrl-C stops everything.")

    def _is_ready(self, child: _Child) -> bool:
        """Whether the service answers 200 on /readyz (its database and broker answer)."""
        url = f"http://{self.settings.http_host}:{child.port}/readyz"
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def _supervise(self, children: list[_Child], env: dict[str, str]) -> int:
        """Restart services that exit, with backoff; announce "up" once every one is ready.

        A service that keeps failing is kept out (retried at most every RESTART_BACKOFF_MAX_S)
        while the others go on; only when every service keeps failing does `pmo up` stop.
        """
        announced = False
        began = time.monotonic()
        slow_said = False
        while not self._stop:
            time.sleep(READY_POLL_S)
            now = time.monotonic()
            for child in children:
                self._tend(child, env, now)
            if all(child.keeps_failing for child in children):
                _say("pmo up: every service keeps failing; stopping (see the last errors above)")
                return 1
            for child in children:
                running = child.process is not None and child.process.poll() is None
                if running and not child.ready and self._is_ready(child):
                    child.ready = True
                    if announced:
                        _say(f"pmo up: {child.name} is up again")
            if not announced and all(c.ready or c.keeps_failing for c in children):
                self._announce(children)
                announced = True
            elif not announced and not slow_said and now - began > SLOW_START_S:
                waiting = [c for c in children if not c.ready]
                _say(f"pmo up: still waiting for {', '.join(c.name for c in waiting)} to be ready")
                for child in waiting:
                    _say(f"  {child.name}: {self._last_error(child)}")
                slow_said = True
        return 0

    def _tend(self, child: _Child, env: dict[str, str], now: float) -> None:
        """Restart `child` when its backoff ends; note its exit and say why when it exits."""
        if child.process is None:
            if child.restart_at is not None and now >= child.restart_at:
                self._spawn(child, self._environment_of(child, env))
            return
        code = child.process.poll()
        if code is None:
            if child.deaths and now - child.started_at >= STABLE_AFTER_S:
                child.deaths.clear()  # it runs again: a later exit starts the backoff afresh
            return
        child.process = None
        child.ready = False
        if now - child.started_at >= STABLE_AFTER_S:
            child.deaths.clear()
        child.deaths.append(now)
        delay = min(RESTART_BACKOFF_S * 2 ** (len(child.deaths) - 1), RESTART_BACKOFF_MAX_S)
        child.restart_at = now + delay
        why = self._last_error(child)
        how = _how_it_ended(code)
        if child.keeps_failing:
            _say(
                f"pmo up: {child.name} keeps failing ({len(child.deaths)} exits in a row, "
                f"the last {how}; {why}); kept out for {delay:.0f} s while the others go on"
            )
        else:
            _say(f"pmo up: {child.name} {how} ({why}); restarting it in {delay:.0f} s")

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
