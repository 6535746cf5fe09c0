"""How `pmo up` supervises its services: it says why one failed (issue 12.10: the last error line
of its log, whatever wrote it), restarts it with backoff and keeps one that keeps failing out
while the others go on (issue 15.2)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pmo.embedded import free_port
from pmo.stack import STABLE_AFTER_S, Stack, _Child, last_error_line
from shared.settings import SERVICE_NAMES, Settings, load_settings


def _json(level: str, message: str, error: str | None = None) -> str:
    entry = {"level": level, "logger": "x", "message": message}
    if error is not None:
        entry["error"] = error
    return json.dumps(entry)


def test_the_error_with_its_exception_wins_over_the_exit_notice_after_it(tmp_path: Path) -> None:
    log = tmp_path / "registry.log"
    log.write_text(
        "\n".join(
            [
                _json("INFO", "registry starting"),
                _json("WARNING", "slow database"),
                _json(
                    "ERROR",
                    "the relay could not start",
                    "Traceback (most recent call last):\n  File ...\n"
                    "aiokafka.errors.UnknownError: [Error -1] UnknownError",
                ),
                _json("ERROR", "Application startup failed. Exiting."),
                _json("INFO", "registry stopped"),
            ]
        )
    )
    assert last_error_line(log) == (
        "the relay could not start: aiokafka.errors.UnknownError: [Error -1] UnknownError"
    )


def test_a_plain_traceback_and_an_earlier_run_are_told_apart(tmp_path: Path) -> None:
    log = tmp_path / "monitoring.log"
    earlier = _json("ERROR", "an old failure", "ValueError: of an earlier run") + "\n"
    log.write_text(
        earlier
        + "Traceback (most recent call last):\n"
        + '  File "x.py", line 1, in <module>\n'
        + "ModuleNotFoundError: No module named 'missing'\n"
    )
    assert last_error_line(log) == "ModuleNotFoundError: No module named 'missing'"
    # From where this run's output begins, the earlier run's error is not this run's.
    assert last_error_line(log, offset=len(earlier)) == (
        "ModuleNotFoundError: No module named 'missing'"
    )
    log.write_text(earlier + _json("INFO", "fine"))
    assert last_error_line(log, offset=len(earlier)) is None
    assert last_error_line(tmp_path / "absent.log") is None


def test_a_service_that_cannot_start_leaves_its_reason_as_the_last_error(
    tmp_path: Path, settings: Settings
) -> None:
    """A real failed start, as `pmo up` runs it: the registry with a stage model file that is
    not there exits, and the line `pmo up` shows names the file."""
    missing = tmp_path / "no-such-stage-models.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMO_")}
    env.update(
        PMO_KAFKA_BOOTSTRAP_SERVERS=settings.bootstrap_servers(),
        PMO_DATABASE_URL=settings.database_url_for("registry"),
        PMO_TOPIC_PREFIX=settings.topic_prefix,
        PMO_KAFKA_ENABLE_IDEMPOTENCE="false",
        PMO_REGISTRY_STAGE_MODELS_FILE=str(missing),
        PMO_DATA_DIR=str(tmp_path / ".pmo"),
    )
    log = tmp_path / "registry.log"
    with log.open("ab") as out:
        code = subprocess.run(
            [sys.executable, "-m", "pmo", "run", "registry", "--port", "0"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=180,
            check=False,
        ).returncode
    assert code != 0
    line = last_error_line(log)
    assert line is not None, log.read_text()
    assert str(missing) in line, line


def test_a_traceback_logged_as_the_message_gives_its_last_line(tmp_path: Path) -> None:
    log = tmp_path / "registry.log"
    log.write_text(
        _json("ERROR", "Traceback (most recent call last):\n  File ...\nOSError: gone")
        + "\n"
        + _json("ERROR", "Application startup failed. Exiting.")
    )
    assert last_error_line(log) == "OSError: gone"


def _failing_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """A Stack whose services are `false`: each exits with code 1 as soon as it starts."""
    false = shutil.which("false")
    assert false is not None
    monkeypatch.setattr(sys, "executable", false)  # `false -m pmo run NAME ...`: exits with 1
    stack = Stack(load_settings(data_dir=str(tmp_path)), port_offset=free_port() - 8001)
    stack.logs.mkdir(parents=True)
    return stack


def _exit_of(child: _Child) -> None:
    assert child.process is not None
    child.process.wait(timeout=10)


def test_a_service_that_exits_is_restarted_with_doubling_backoff_then_kept_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = _failing_stack(tmp_path, monkeypatch)
    child = _Child("registry", 8001)
    stack._spawn(child, {})
    delays = []
    for _ in range(4):
        _exit_of(child)
        now = time.monotonic()
        stack._tend(child, {}, now)
        assert child.process is None
        assert child.restart_at is not None
        delays.append(round(child.restart_at - now))
        stack._tend(child, {}, child.restart_at - 0.1)
        assert child.process is None, "restarted before its backoff ended"
        stack._tend(child, {}, child.restart_at)
        assert child.process is not None, "not restarted when its backoff ended"
    assert delays == [1, 2, 4, 8]
    said = capsys.readouterr().out.splitlines()
    assert said[0].startswith("pmo up: registry exited with code 1 (no error logged; see ")
    assert said[0].endswith("restarting it in 1 s")
    assert said[2].startswith("pmo up: registry keeps failing (3 exits in a row, the last exited")
    assert said[2].endswith("kept out for 4 s while the others go on")
    # One that ran a minute before it exited starts its backoff afresh.
    _exit_of(child)
    stack._tend(child, {}, child.started_at + STABLE_AFTER_S)
    assert child.restart_at is not None
    assert round(child.restart_at - (child.started_at + STABLE_AFTER_S)) == 1
    assert not child.keeps_failing


def test_pmo_up_stops_only_when_every_service_keeps_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = _failing_stack(tmp_path, monkeypatch)
    children = [_Child(name, free_port()) for name in SERVICE_NAMES]
    for child in children:
        stack._spawn(child, {})
    assert stack._supervise(children, {}) == 1
    said = capsys.readouterr().out
    assert said.splitlines()[-1].startswith("pmo up: every service keeps failing; stopping")
    for name in SERVICE_NAMES:
        assert f"pmo up: {name} keeps failing (3 exits in a row" in said
    assert "PMO backend is up" not in said


def _early_stack(tmp_path: Path) -> Stack:
    stack = Stack(load_settings(data_dir=str(tmp_path)), port_offset=free_port() - 8001)
    stack.logs.mkdir(parents=True)
    return stack


def test_a_service_started_early_runs_with_the_environment_handed_to_it_later(
    tmp_path: Path,
) -> None:
    """`pmo up` starts its services before the broker and the database (they load their code
    meanwhile) and hands them the addresses once known: what it hands is what they run with.
    Here that is a setting out of bounds, which the service names as it exits."""
    stack = _early_stack(tmp_path)
    child = _Child("registry", free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMO_")}
    stack._spawn(child, env, early=True)
    stack._hand_environment(child, {**env, "PMO_CONSUMER_BATCH_MAX": "0"})
    assert child.process is not None
    assert child.process.wait(timeout=180) == 2
    said = (stack.logs / "registry.log").read_text()
    assert "PMO_CONSUMER_BATCH_MAX: expected a number at least 1" in said, said


def test_a_service_started_early_leaves_quietly_when_pmo_up_cannot_start_its_parts(
    tmp_path: Path,
) -> None:
    stack = _early_stack(tmp_path)
    children = [_Child(name, free_port()) for name in ("monitoring", "dashboard")]
    for child in children:
        stack._spawn(child, dict(os.environ), early=True)
    stack._abandon(children)  # what `pmo up` does when the broker or database fails to start
    for child in children:
        assert child.process is not None
        assert child.process.returncode is not None, f"{child.name} left running"
        assert "Traceback" not in (stack.logs / f"{child.name}.log").read_text(), child.name


def test_pmo_up_runs_notifications_alert_lane_as_a_process_of_its_own(tmp_path: Path) -> None:
    """Five service processes and the dashboard: notifications runs its own consumer group
    (`--lanes main`) and its alert lane runs apart (`--lanes alerts`), on a port of its own
    that follows the port offset, supervised and logged like the others."""
    stack = Stack(load_settings(data_dir=str(tmp_path)), port_offset=100)
    children = {child.name: child for child in stack.children()}
    assert list(children) == [*SERVICE_NAMES, "notifications-alerts", "dashboard"]
    alerts = children["notifications-alerts"]
    assert (alerts.service, alerts.lanes, alerts.port) == ("notifications", "alerts", 8105)
    assert children["notifications"].lanes == "main"
    assert [children[name].lanes for name in ("registry", "monitoring", "allocation")] == [None] * 3
    assert len({child.port for child in children.values()}) == len(children)
    # On the embedded broker (which answers a fetch only when its wait ends) the lane's
    # consumer waits less than the others; a configured wait, or broker, is left as it is.
    fetch_wait = {"PMO_CONSUMER_FETCH_MAX_WAIT_MS": "5"}
    assert stack._environment_of(alerts, {}) == fetch_wait
    assert stack._environment_of(children["notifications"], {}) == {}
    for configured in (
        {"kafka_bootstrap_servers": "kafka:9092"},
        {"consumer_fetch_max_wait_ms": 50},
    ):
        other = Stack(load_settings(data_dir=str(tmp_path), **configured))
        assert other._environment_of(alerts, {}) == {}
