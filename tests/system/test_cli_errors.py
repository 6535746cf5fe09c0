"""Every `pmo` command answers a user's mistake or an unreachable system in one line, never a
traceback (issue 12.12): invalid settings, `pmo demo` with no system running, no database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pmo.cli import main
from pmo.embedded import free_port

COMMANDS = {
    "up": ["up"],
    "run": ["run", "registry"],
    "demo": ["demo"],
    "migrate": ["migrate"],
    "topics create": ["topics", "create"],
    "token create": ["token", "create", "--subject", "ada@example.com"],
    "resources import": ["resources", "import", "pool.csv"],
}


def _pmo_here(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: str,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """`pmo ARGS` run in this process (imports once, which keeps the test quick), as `main`."""
    for name in os.environ:
        if name.startswith("PMO_"):
            monkeypatch.delenv(name)
    for name, value in {"PMO_DATA_DIR": str(tmp_path / ".pmo"), **env}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pmo", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    code = exited.value.code
    return subprocess.CompletedProcess(args, code if isinstance(code, int) else 1, out, err)


def _pmo(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`pmo ARGS` as a user runs it, in its own process."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PMO_")}
    return subprocess.run(
        [sys.executable, "-m", "pmo", *args],
        env={**clean, "PMO_DATA_DIR": str(tmp_path / ".pmo"), **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_line(result: subprocess.CompletedProcess[str], prefix: str) -> str:
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, lines
    assert lines[0].startswith(prefix), lines[0]
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_an_invalid_setting_stops_every_command_with_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    (tmp_path / "pool.csv").write_text("resource_id,name,skills,capacity_fte\n")
    result = _pmo_here(
        tmp_path, monkeypatch, capsys, *COMMANDS[command], PMO_DIGEST_CATCH_UP="12 hourz"
    )
    line = _one_line(result, f"pmo {command}: PMO_DIGEST_CATCH_UP: ")
    assert "expected a duration such as `10 min`" in line
    assert line.endswith("(got '12 hourz')")
    assert result.returncode == 2


def test_the_readmes_duration_forms_are_accepted_by_the_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = _pmo_here(
        tmp_path,
        monkeypatch,
        capsys,
        *COMMANDS["token create"],
        PMO_TOKEN_SECRET="s3cret-s3cret-s3cret-s3cret-s3cret",
        PMO_NOTIFICATION_THROTTLE_WINDOW="10 min",
        PMO_DIGEST_CATCH_UP="12 h",
        PMO_NOTIFICATION_ESCALATE_AFTER="7 days",
        PMO_PARKED_EXPIRE_AFTER="P7D",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("eyJ")  # a JWT: base64url of {"alg": ...
    off = _pmo_here(
        tmp_path,
        monkeypatch,
        capsys,
        *COMMANDS["token create"],
        PMO_TOKEN_SECRET="s" * 32,
        PMO_NOTIFICATION_THROTTLE_WINDOW="0",
    )
    assert off.returncode == 0, off.stderr


def test_the_demo_without_a_running_system_says_so_in_one_line(tmp_path: Path) -> None:
    result = _pmo(tmp_path, "demo", "--port-offset", str(free_port() - 8001))
    line = _one_line(result, "pmo demo: no PMO registry answers at http://127.0.0.1:")
    assert "start the system with `pmo up`" in line
    assert result.returncode == 2


@pytest.mark.parametrize("command", ["migrate", "resources import"])
def test_an_unreachable_database_is_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    (tmp_path / "pool.csv").write_text("resource_id,name,skills,capacity_fte\nr1,Ada,dev,1\n")
    url = f"postgresql://pmo@127.0.0.1:{free_port()}/pmo"
    result = _pmo_here(tmp_path, monkeypatch, capsys, *COMMANDS[command], PMO_DATABASE_URL=url)
    line = _one_line(result, f"pmo {command}: ")
    assert "Connect call failed" in line or "does not answer" in line, line
    assert result.returncode == 1


def test_a_service_whose_database_does_not_answer_stops_in_one_line(tmp_path: Path) -> None:
    # It waited, then uvicorn printed the start-up's traceback.
    url = f"postgresql://pmo:secret@127.0.0.1:{free_port()}/pmo"
    result = _pmo(
        tmp_path,
        "run",
        "monitoring",
        PMO_DATABASE_URL=url,
        PMO_DATABASE_WAIT_S="1",
        PMO_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9",
        PMO_TOKEN_SECRET="a-test-secret-of-at-least-32-characters",
        PMO_LOG_JSON="false",
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("pmo run monitoring: PostgreSQL at postgresql+asyncpg://pmo:***@127"), (
        last
    )
    assert "is not usable (PMO_DATABASE_URL): PostgreSQL did not answer within 1s" in last
    assert "secret" not in result.stderr
    assert result.returncode == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["migrate", "--service", "bogus"], "unknown service 'bogus'"),
        (["run", "bogus"], "unknown service 'bogus'"),
        (["run", "bogus"], "dashboard"),  # named among the services it runs
        (
            ["run", "notifications", "--lanes", "alerts,escalations"],
            "notifications has no lane escalations; expected a comma-separated list of main, "
            "alerts",
        ),
        (["token", "create", "--subject", "a@example.com", "--days", "-5"], "--days"),
        (["token", "create", "--subject", "a@example.com", "--role", "boss"], "unknown role"),
        (["topics", "create", "--partitions", "0"], "--partitions"),
        (["resources", "import", "no-such.csv"], "does not exist"),
    ],
)
def test_a_wrong_argument_is_a_usage_error_not_a_traceback(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    says: str,
) -> None:
    result = _pmo_here(tmp_path, monkeypatch, capsys, *args, PMO_TOKEN_SECRET="s" * 32)
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert says in " ".join((result.stdout + result.stderr).split())


@pytest.mark.parametrize("lanes", ["bogus", "alerts"])
def test_pmo_up_refuses_a_pmo_lanes_meant_for_one_process_in_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    lanes: str,
) -> None:
    # Left in the shell after a `pmo run`, it reached every service pmo up started: the ones
    # without such a lane exited at once and were restarted for ever.
    result = _pmo_here(
        tmp_path, monkeypatch, capsys, "up", PMO_LANES=lanes, PMO_TOKEN_SECRET="s" * 32
    )
    assert result.returncode == 2
    line = _one_line(result, "pmo up: PMO_LANES=")
    assert "unset PMO_LANES" in line


def test_pmo_ups_children_get_their_lanes_from_it_not_from_its_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pmo.stack import Stack

    monkeypatch.setenv("PMO_LANES", "alerts")
    assert "PMO_LANES" not in Stack._base_environment()
