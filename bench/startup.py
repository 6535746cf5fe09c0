"""How long `pmo up` takes until every service answers /readyz, and how much memory each holds.

Runs `pmo up` on the embedded default (Tansu broker, embedded PostgreSQL) in a fresh data
folder, twice: a first start (the database is created) and a restart on the data kept. For each
run it records when `pmo up` printed each of its lines, and for each service (notifications' alert
lane, a process of its own, included) and the dashboard:
when its process was spawned, when it began serving (uvicorn's "Started server process" in its
log: code loaded and the broker's and database's addresses received), when its start-up ended
("Application startup complete": database, migrations, consumer-group join), when its /readyz
first answered 200 (polled every 50 ms) and the CPU time it had used by then (with psutil; on
a loaded machine the wall-clock times stretch, the CPU times much less). After `--idle` quiet
seconds it reads each process's resident memory (RSS) and stops the stack with Ctrl-C (SIGINT),
as a user would.

Usage: python -m bench.startup [--runs 2] [--idle 10] [--port-offset N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import psutil

from bench.consumer_throughput import machine
from pmo.embedded import port_is_free
from pmo.stack import LANE_PROCESSES
from shared.settings import DASHBOARD_HTTP_PORT, DEFAULT_HTTP_PORTS, SERVICE_NAMES

# The processes `pmo up` runs: the services, the lanes run apart (notifications-alerts), the
# dashboard.
PARTS = (*SERVICE_NAMES, *(name for name, *_ in LANE_PROCESSES), "dashboard")
PORTS: dict[str, int] = {name: port for name, port in DEFAULT_HTTP_PORTS.items()}
PORTS.update({name: port for name, _, _, port in LANE_PROCESSES})
PORTS["dashboard"] = DASHBOARD_HTTP_PORT
READY_TARGET_S = 15.0
RSS_TARGET_MB = 150.0


@dataclass
class Part:
    """What one run saw of one service (or the dashboard); times in seconds from the launch."""

    name: str
    spawned: float | None = None
    serving: float | None = None
    """uvicorn's "Started server process": code loaded, settings read (after `pmo up` handed
    over the broker's and database's addresses)."""
    started: float | None = None
    ready: float | None = None
    cpu_s: float | None = None
    """CPU seconds (user + system) the process had used when its /readyz first answered."""
    rss_mb: float | None = None


@dataclass
class Run:
    """One `pmo up`: its printed lines with their times, and each part."""

    label: str
    lines: list[tuple[float, str]] = field(default_factory=list)
    up: float | None = None
    parts: dict[str, Part] = field(default_factory=dict)


def free_offset() -> int:
    """A port offset under which every port `pmo up` binds is free (below the ephemeral range)."""
    for _ in range(50):
        offset = random.randrange(10_000, 24_000)
        if all(port_is_free(port + offset) for port in (*PORTS.values(), 8099)):
            return offset
    raise SystemExit("no free block of ports for pmo up")


def _log_time(log: Path, offset: int, message: str) -> float | None:
    """The wall-clock time (epoch seconds) of the first JSON log line from byte `offset` on
    whose message starts with `message`."""
    try:
        with log.open("rb") as handle:
            handle.seek(offset)
            lines = handle.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            entry = json.loads(line)
            if str(entry["message"]).startswith(message):
                return datetime.fromisoformat(entry["time"]).timestamp()
    return None


def run_once(label: str, data_dir: Path, offset: int, idle: float, timeout: float) -> Run:
    """Start `pmo up`, time it to ready, measure memory after `idle` seconds, stop it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMO_")}
    env.update(PMO_DATA_DIR=str(data_dir), PMO_LOG_JSON="true")
    run = Run(label, parts={name: Part(name) for name in PARTS})
    logs = data_dir / "logs"
    # A restart appends to the logs of the run before: read only what this run wrote.
    offsets = {name: _size(logs / f"{name}.log") for name in PARTS}
    launched_wall = time.time()
    launched = time.monotonic()
    up = subprocess.Popen(
        [sys.executable, "-m", "pmo", "up", "--port-offset", str(offset)],
        env=env,
        cwd=data_dir.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )

    def read() -> None:
        assert up.stdout is not None
        for line in up.stdout:
            run.lines.append((time.monotonic() - launched, line.rstrip()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        with httpx.Client(timeout=0.5) as client:
            while time.monotonic() - launched < timeout and up.poll() is None:
                processes = _processes(up.pid, offset)
                for name, part in run.parts.items():
                    if part.ready is None:
                        with contextlib.suppress(httpx.HTTPError):
                            url = f"http://127.0.0.1:{PORTS[name] + offset}/readyz"
                            if client.get(url).status_code == 200:
                                part.ready = time.monotonic() - launched
                                if (process := processes.get(name)) is not None:
                                    with contextlib.suppress(psutil.Error):
                                        times = process.cpu_times()
                                        part.cpu_s = times.user + times.system
                if run.up is None:
                    run.up = next(
                        (t for t, line in run.lines if line.startswith("PMO backend is up")), None
                    )
                if run.up is not None and all(p.ready is not None for p in run.parts.values()):
                    break
                time.sleep(0.05)
        if up.poll() is not None:
            raise SystemExit(f"pmo up exited ({up.returncode}):\n" + "\n".join(_said(run)))
        time.sleep(idle)
        for name, process in _processes(up.pid, offset).items():
            with contextlib.suppress(psutil.Error):
                part = run.parts[name]
                part.spawned = process.create_time() - launched_wall
                part.rss_mb = process.memory_info().rss / 2**20
        for name, part in run.parts.items():
            log, offset = logs / f"{name}.log", offsets[name]
            if (at := _log_time(log, offset, "Started server process")) is not None:
                part.serving = at - launched_wall
            if (at := _log_time(log, offset, "Application startup complete")) is not None:
                part.started = at - launched_wall
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
        reader.join(timeout=5)
    return run


def _processes(pid: int, offset: int) -> dict[str, psutil.Process]:
    """`pmo up`'s service processes by part, told apart by their port (`python -m pmo run
    [...] NAME --port N`: notifications and its alert lane run the same NAME)."""
    by_port = {port + offset: name for name, port in PORTS.items()}
    found: dict[str, psutil.Process] = {}
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error, ValueError, IndexError):
                command = child.cmdline()
                if command[-2] == "--port" and (name := by_port.get(int(command[-1]))):
                    found[name] = child
    return found


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _said(run: Run) -> list[str]:
    return [f"{t:7.2f}s  {line}" for t, line in run.lines if line.startswith("pmo up")]


def _s(value: float | None) -> str:
    return f"{value:8.2f}" if value is not None else f"{'-':>8}"


def main(runs: int, idle: float, offset: int | None, timeout: float) -> None:
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at the start")
    offset = offset if offset is not None else free_offset()
    with tempfile.TemporaryDirectory(prefix="pmo-startup-") as folder:
        data_dir = Path(folder) / ".pmo"
        for n in range(runs):
            label = "first start (new database)" if n == 0 else "restart (data kept)"
            run = run_once(label, data_dir, offset, idle, timeout)
            print(f"\n{label}: 'PMO backend is up' printed at {_s(run.up).strip()} s")
            for line in _said(run):
                print(f"  {line}")
            print(
                f"  {'part':<21} {'spawned':>8} {'serving':>8} {'started':>8} {'ready':>8}"
                f" {'CPU s':>8} {'RSS MB':>8}"
            )
            for part in run.parts.values():
                print(
                    f"  {part.name:<21} {_s(part.spawned)} {_s(part.serving)} {_s(part.started)}"
                    f" {_s(part.ready)} {_s(part.cpu_s)} {_s(part.rss_mb)}"
                )
            print(
                f"  (seconds from the launch; CPU s: the process's CPU time until ready; "
                f"RSS after {idle:.0f} s idle)"
            )
            readies = [p.ready for p in run.parts.values()]
            last = max((r for r in readies if r is not None), default=None)
            said_early = run.up is not None and last is not None and run.up < last
            rss = [p.rss_mb for p in run.parts.values() if p.rss_mb is not None]
            print(
                f"  all ready at {_s(last).strip()} s (target {READY_TARGET_S:.0f} s); "
                f"'up' said {'BEFORE' if said_early else 'after'} every /readyz answered; "
                f"largest RSS {max(rss, default=0):.0f} MB (target {RSS_TARGET_MB:.0f} MB)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="first start, then restarts")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds before reading RSS")
    parser.add_argument("--port-offset", type=int, default=None, help="default: a free one")
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="seconds to wait for readiness (default: 180)"
    )
    arguments = parser.parse_args()
    main(arguments.runs, arguments.idle, arguments.port_offset, arguments.timeout)
