"""Schema-driven fuzz of every HTTP API (schemathesis): no 5xx, and answers as the OpenAPI says.

Each service runs against the real broker and database; schemathesis (its CLI, in a child
process, so the services keep their event loop) generates calls from the service's own
`/openapi.json` and checks every answer. Bounded here by `PMO_FUZZ_EXAMPLES` (default 10 per
operation); a longer run: `PMO_FUZZ_EXAMPLES=200 make test` or the same pytest node alone.

Every check runs but `positive_data_acceptance`: rules across fields (a finish not before its
start, at least one positive weight, `fte` or `hours` but not both) cannot be said in JSON
Schema, so data valid by the schema alone may rightly be refused; each such rule is stated in
the field's description and answered with a 422 that names the field.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from shared.settings import ServiceName
from tests.conftest import ServiceStarter

EXAMPLES = int(os.environ.get("PMO_FUZZ_EXAMPLES", "10"))
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "unsupported_method",
        "allow_header_conformance",
        "ignored_auth",
    )
)


@pytest.mark.parametrize("service", ["registry", "monitoring", "allocation", "notifications"])
async def test_every_operation_answers_as_its_openapi_says(
    service: ServiceName,
    start_service: ServiceStarter,
    admin_headers: dict[str, str],
    tmp_path: Path,
) -> None:
    running = await start_service(service)
    schemathesis = Path(sys.executable).with_name("schemathesis")
    process = await asyncio.create_subprocess_exec(
        str(schemathesis),
        "run",
        f"{running.base_url}/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        str(EXAMPLES),
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",
        "--seed",
        "1",
        "--header",
        f"Authorization: {admin_headers['Authorization']}",
        "--request-timeout",
        "20",
        "--no-color",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    output, _ = await process.communicate()
    text = output.decode("utf-8", "replace")
    (tmp_path / "schemathesis.txt").write_text(text)
    summary = text[text.rfind("SUMMARY") :] if "SUMMARY" in text else text[-2000:]
    print(f"{service}: {summary}")  # `pytest -s` shows the figures of a run
    assert process.returncode == 0, text[-20000:]
