"""The bounded fault run: kills, a database restart and a broker freeze lose and double nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.suite import Size, run_suite

pytestmark = pytest.mark.e2e


def test_nothing_lost_nothing_twice_under_kills_a_database_restart_and_a_broker_freeze(
    tmp_path: Path,
) -> None:
    report = run_suite(seed=15, size=Size(), data_dir=tmp_path / ".pmo")
    print(report.render())
    assert all(fault.done for fault in report.faults), report.render()
    assert not report.problems, report.render()
