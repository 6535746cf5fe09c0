"""What `pmo up` says when a service fails to start (issue 12.10): the last error line of its log,
whatever wrote it (JSON log lines, a traceback before logging was set up)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pmo.stack import last_error_line
from shared.settings import Settings


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
