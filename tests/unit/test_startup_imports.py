"""A service's process loads its own code only: what `pmo run <service>` imports at start."""

from __future__ import annotations

import subprocess
import sys

import pytest

from services.catalog import SERVICES
from shared.settings import SERVICE_NAMES

pytestmark = pytest.mark.fast

# The allocation solver's numerical libraries, and the service layers of the other services.
HEAVY = ("numpy", "highspy", "ortools")


def _loaded_after(code: str) -> set[str]:
    """The modules loaded in a fresh interpreter after running `code`."""
    result = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(result.stdout.split())


@pytest.mark.parametrize("name", [n for n in SERVICE_NAMES if n != "allocation"])
def test_running_a_service_loads_neither_the_others_nor_the_solver(name: str) -> None:
    loaded = _loaded_after(
        f"import pmo.cli\nfrom services.catalog import SERVICES\nSERVICES[{name!r}]"
    )
    assert f"services.{name}.entrypoints.service" in loaded
    # (`pmo resources import`, allocation's command, is registered in every `pmo`: its module
    # is loaded, what it needs only when it runs.)
    others = [n for n in SERVICE_NAMES if n != name]
    parts = ("domain", "service_layer", "adapters", "entrypoints.service", "entrypoints.api")
    assert not [
        m for m in loaded for o in others for part in parts if m.startswith(f"services.{o}.{part}")
    ]
    assert not [m for m in loaded if m.split(".")[0] in HEAVY]


def test_the_catalog_names_the_four_services_and_gives_each_definition() -> None:
    assert list(SERVICES) == list(SERVICE_NAMES)
    assert {name: SERVICES[name].name for name in SERVICES} == {n: n for n in SERVICE_NAMES}
    assert "dashboard" not in SERVICES
    with pytest.raises(KeyError):
        SERVICES["dashboard"]  # type: ignore[index]
