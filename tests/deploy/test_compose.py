"""Offline checks of docker-compose.yml, .env.example, the collector config and the Dockerfile.

No Docker engine here: the compose file is validated against the compose-spec JSON schema (the copy
shipped in the `check-jsonschema` package), before and after interpolation with .env.example, and
the operational rules are asserted on it: KRaft Kafka sized for one broker, an init that creates
topics and migrates before the services start, health checks and restart policies, secrets only
from .env.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import SecretStr

from pmo.cli import lanes_of
from services.catalog import SERVICES as CATALOG
from shared.runtime import consumer_groups
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

# HTTP port published on the host for each service (the services' default ports), and for
# notifications' alert lane, which runs in a container of its own (as `pmo up` runs it).
SERVICE_PORTS = {
    "registry": 8001,
    "allocation": 8002,
    "monitoring": 8003,
    "notifications": 8004,
    "notifications-alerts": 8005,
}
# What each container runs when it is not its own name, and the lanes it joins (PMO_LANES).
RUNS = {"notifications-alerts": "notifications"}
LANES = {"notifications": "main", "notifications-alerts": "alerts"}
CONSUMER_SHUTDOWN_S = 30

SECRET_LOOKING = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|CREDENTIAL", re.IGNORECASE)
# Compose's own variables: meaningful in .env without being referenced in the file.
COMPOSE_BUILTINS = {"COMPOSE_PROFILES", "COMPOSE_PROJECT_NAME", "COMPOSE_FILE"}


# --- loading and interpolation --------------------------------------------------------------------


@functools.cache
def raw() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


@functools.cache
def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f".env.example: not KEY=VALUE: {line!r}"
        values[key.strip()] = value
    return values


_VARIABLE = re.compile(
    r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable substitution (${X}, ${X:-d}, ${X-d}, ${X:?e}, ${X?e}, ${X:+a}, $$)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name = match["name"] or match["bare"]
        op, arg = match["op"], match["arg"]
        is_set, current = name in env, env.get(name, "")
        if op in (":-", "-"):
            return current if (current if op == ":-" else is_set) else arg
        if op in (":?", "?"):
            if not (current if op == ":?" else is_set):
                raise KeyError(f"required variable {name} unset: {arg}")
            return current
        if op == ":+":
            return arg if current else ""
        return current

    return _VARIABLE.sub(substitute, value)


def strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*strings(k), *strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


def variables_used() -> dict[str, set[str]]:
    """Every ${NAME...} in the compose file's values, with the operators it is used with."""
    used: dict[str, set[str]] = {}
    for text in strings(raw()):
        for match in _VARIABLE.finditer(text):
            if match["name"]:
                used.setdefault(match["name"], set()).add(match["op"] or "")
    return used


@functools.cache
def resolved() -> dict[str, Any]:
    """The compose file as `docker compose config` sees it with .env copied from the example."""
    document: dict[str, Any] = interpolate(copy.deepcopy(raw()), env_example())
    return document


@functools.cache
def compose_schema() -> dict[str, Any]:
    path = (
        importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    )
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def services() -> dict[str, dict[str, Any]]:
    all_services: dict[str, dict[str, Any]] = resolved()["services"]
    return all_services


def pmo_services() -> dict[str, dict[str, Any]]:
    return {name: services()[name] for name in SERVICE_PORTS}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def raw_environment(name: str) -> dict[str, str]:
    return environment(raw()["services"][name])


def seconds(duration: str) -> float:
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration):
        total += float(amount) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}[unit]
    assert total, f"not a duration: {duration!r}"
    return total


# --- schema ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["as written", "interpolated with .env.example"])
def test_compose_file_matches_the_compose_spec(stage: str) -> None:
    document = raw() if stage == "as written" else resolved()
    validator = jsonschema.validators.validator_for(compose_schema())(compose_schema())
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document)]
    assert not errors, "\n".join(errors)


def test_compose_schema_rejects_a_misspelt_key() -> None:
    broken = copy.deepcopy(raw())
    broken["services"]["registry"]["helthcheck"] = {"test": ["CMD", "true"]}
    validator = jsonschema.validators.validator_for(compose_schema())(compose_schema())
    assert list(validator.iter_errors(broken))


def test_interpolation_fails_without_the_required_secrets() -> None:
    # ${VAR:?} makes compose refuse to start rather than run with an empty password.
    with pytest.raises(KeyError):
        interpolate(copy.deepcopy(raw()), {})


# --- .env and secrets -----------------------------------------------------------------------------


def test_env_example_documents_every_variable() -> None:
    used = variables_used()
    documented = env_example()
    required = {name for name, ops in used.items() if ":?" in ops or "?" in ops or "" in ops}
    assert required <= documented.keys(), f"undocumented: {sorted(required - documented.keys())}"
    unused = documented.keys() - used.keys() - COMPOSE_BUILTINS
    assert not unused, f".env.example sets variables compose never reads: {sorted(unused)}"
    commented = re.findall(r"^#\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE)
    assert set(commented) <= used.keys() | COMPOSE_BUILTINS


def test_env_example_holds_placeholders_only() -> None:
    for key, value in env_example().items():
        if SECRET_LOOKING.search(key):
            assert value in {"", "CHANGE-ME"}, f".env.example: {key} must be a placeholder"


def test_no_secret_is_hard_coded() -> None:
    for name, service in raw()["services"].items():
        for key, value in environment(service).items():
            if SECRET_LOOKING.search(key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}", value), (
                    f"{name}.{key} must come from .env (${{...}}), not be written here"
                )
                assert not re.search(r":-[^}]", value), f"{name}.{key}: no default secret"
            if key.endswith("DATABASE_URL"):
                # The password part of the URL must be a variable too: replace each ${...} by a
                # token, then read the URL's password.
                variables = re.findall(r"\$\{[^}]*\}", value)
                tokenized = value
                for i, variable in enumerate(variables):
                    tokenized = tokenized.replace(variable, f"var{i}", 1)
                password = urllib.parse.urlsplit(tokenized).password
                assert password, f"{name}.{key}: no password in the URL"
                assert re.fullmatch(r"var\d+", password), f"{name}.{key}: password not from .env"


def test_every_pmo_variable_is_a_setting_and_every_secret_setting_is_passed() -> None:
    settings = {f"PMO_{name.upper()}" for name in Settings.model_fields}
    secret_settings = {
        f"PMO_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if SecretStr in getattr(field.annotation, "__args__", (field.annotation,))
    } - {"PMO_KAFKA_SASL_PASSWORD"}  # the compose broker has no SASL
    for name in ("init", *SERVICE_PORTS):
        env = raw_environment(name)
        unknown = {k for k in env if k.startswith("PMO_")} - settings
        assert not unknown, f"{name}: not settings of shared/settings.py: {sorted(unknown)}"
        assert secret_settings <= env.keys(), f"{name}: missing {secret_settings - env.keys()}"


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".env", ".git", ".venv"} <= ignored


# --- Kafka and PostgreSQL -------------------------------------------------------------------------


def test_kafka_is_a_single_kraft_node_from_the_official_image() -> None:
    kafka = services()["kafka"]
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", kafka["image"])
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert not [k for k in env if "ZOOKEEPER" in k]
    assert not [n for n in services() if "zookeeper" in n]
    # One broker: anything above 1 could never be satisfied.
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
        "KAFKA_MIN_INSYNC_REPLICAS",
        "KAFKA_DEFAULT_REPLICATION_FACTOR",
    ):
        assert env[key] == "1", key
    for service in pmo_services().values():
        assert environment(service)["PMO_TOPIC_REPLICATION_FACTOR"] == "1"
    # Topics come from init, with the configured partition count.
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_partition_count_is_configurable() -> None:
    for name in [*SERVICE_PORTS, "init"]:
        assert raw_environment(name)["PMO_TOPIC_PARTITIONS"].startswith("${PMO_TOPIC_PARTITIONS")
    assert (
        interpolate(
            raw()["services"]["init"]["environment"]["PMO_TOPIC_PARTITIONS"],
            {"PMO_TOPIC_PARTITIONS": "12"},
        )
        == "12"
    )


def test_postgres_is_pinned_and_healthchecked() -> None:
    postgres = services()["postgres"]
    assert re.fullmatch(r"postgres:16\.\d+(-[a-z]+)?", postgres["image"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert environment(raw()["services"]["postgres"])["POSTGRES_PASSWORD"].startswith("${")


def test_third_party_images_are_pinned() -> None:
    for name, service in services().items():
        if "build" in service:
            continue
        image = service["image"]
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        assert tag not in {"", "latest"}, f"{name}: {image} not pinned"
        assert re.search(r"\d", tag), f"{name}: {image} not pinned to a version"


# --- init and the four services -------------------------------------------------------------------


def test_init_creates_topics_then_migrates_once_kafka_and_postgres_are_healthy() -> None:
    init = services()["init"]
    script = " ".join([*init.get("entrypoint", []), *init.get("command", [])])
    assert re.search(r"pmo topics create\s*&&\s*pmo migrate", script), script
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert init["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert init.get("restart", "no") == "no", "a one-shot job must not be restarted"


@pytest.mark.parametrize("name", SERVICE_PORTS)
def test_service_waits_for_init_runs_its_service_and_listens_on_all_interfaces(name: str) -> None:
    service = services()[name]
    assert service["command"] == ["run", RUNS.get(name, name)]
    assert service["depends_on"]["init"]["condition"] == "service_completed_successfully"
    env = environment(service)
    assert env["PMO_HTTP_HOST"] == "0.0.0.0"
    assert env["PMO_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["OTEL_SERVICE_NAME"] == f"pmo-{name}"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://otel-collector:")
    # Published on loopback only, on the service's usual port.
    assert service["ports"] == [f"127.0.0.1:{SERVICE_PORTS[name]}:{env['PMO_HTTP_PORT']}"]


def test_notifications_alert_lane_runs_in_its_own_container_and_the_rest_in_the_other() -> None:
    """Between them the two notifications containers join every one of its consumer groups,
    each group in one of them only."""
    definition = CATALOG["notifications"]
    joined = []
    for name, lanes in LANES.items():
        env = environment(services()[name])
        assert env["PMO_LANES"] == lanes, name
        chosen = lanes_of(definition, env["PMO_LANES"])
        assert chosen is not None
        runtime_groups = consumer_groups(definition)
        group = "pmo-notifications"
        joined += [g for g in runtime_groups if g.removeprefix(group).removeprefix("-") in chosen]
    assert sorted(joined) == sorted(consumer_groups(definition))
    assert "PMO_LANES" not in environment(services()["registry"])


@pytest.mark.parametrize("name", SERVICE_PORTS)
def test_service_has_readiness_healthcheck_restart_policy_and_grace(name: str) -> None:
    service = services()[name]
    check = " ".join(service["healthcheck"]["test"])
    # The slim image has no curl: python's urllib, against /readyz on the container port.
    assert "urllib" in check
    assert f":{environment(service)['PMO_HTTP_PORT']}/readyz" in check
    assert service["restart"] in {"unless-stopped", "always", "on-failure"}
    assert seconds(service["stop_grace_period"]) > CONSUMER_SHUTDOWN_S


def test_every_long_running_container_restarts_and_infrastructure_is_healthchecked() -> None:
    for name, service in services().items():
        if name == "init":
            continue
        assert service.get("restart") in {"unless-stopped", "always", "on-failure"}, name
    # The collector and Jaeger images are distroless (nothing to probe with); nothing waits on them.
    for name in ("kafka", "postgres", *SERVICE_PORTS):
        assert services()[name].get("healthcheck", {}).get("test"), f"{name}: no healthcheck"


def test_one_image_for_init_and_services() -> None:
    pmo = [services()[n] for n in ("init", *SERVICE_PORTS)]
    assert len({s["image"] for s in pmo}) == 1
    assert all(s["build"]["context"] == "." for s in pmo)
    assert all(s.get("read_only") is True and s.get("cap_drop") == ["ALL"] for s in pmo)


# --- OpenTelemetry collector and the tracing profile ----------------------------------------------


def deep_merge(base: Any, overlay: Any) -> Any:
    """The collector's merge of several --config files: maps merge, lists and scalars replace."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for key, value in overlay.items():
            merged[key] = deep_merge(base.get(key), value) if key in base else value
        return merged
    return overlay


def collector_config(overlay_file: str | None) -> dict[str, Any]:
    collector = services()["otel-collector"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in collector["volumes"]}
    files = [arg.removeprefix("--config=") for arg in collector["command"]]
    if overlay_file:
        files[-1] = files[-1].rsplit("/", 1)[0] + "/" + overlay_file
    merged: dict[str, Any] = {}
    for container_path in files:
        assert container_path in mounts, f"{container_path} is not mounted"
        merged = deep_merge(merged, yaml.safe_load((ROOT / mounts[container_path]).read_text()))
    return merged


def check_pipelines(config: dict[str, Any]) -> None:
    for name, pipeline in config["service"]["pipelines"].items():
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline.get(section, []):
                assert component in config.get(section, {}), f"{name}: {component} undefined"
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")


def test_collector_without_tracing_profile_only_logs() -> None:
    config = collector_config(None)
    check_pipelines(config)
    assert config["service"]["pipelines"]["traces"]["exporters"] == ["debug"]


def test_tracing_profile_sends_traces_to_jaeger() -> None:
    overlay = re.search(r"^# OTEL_COLLECTOR_OVERLAY=(\S+)$", ENV_EXAMPLE.read_text(), re.MULTILINE)
    assert overlay, ".env.example explains how to turn the Jaeger exporter on"
    config = collector_config(overlay[1])
    check_pipelines(config)
    exporters = config["service"]["pipelines"]["traces"]["exporters"]
    jaeger_exporters = [e for e in exporters if "jaeger" in e]
    assert jaeger_exporters
    assert "debug" in exporters
    host = config["exporters"][jaeger_exporters[0]]["endpoint"].split(":")[0]
    assert services()[host]["profiles"] == ["tracing"]
    assert re.fullmatch(
        r"jaegertracing/(jaeger|all-in-one):\d+\.\d+\.\d+", services()[host]["image"]
    )
    assert "COMPOSE_PROFILES=tracing" in ENV_EXAMPLE.read_text()


# --- Dockerfile -----------------------------------------------------------------------------------


@functools.cache
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def instruction(name: str) -> list[str]:
    return re.findall(rf"^{name}\s+(.+)$", dockerfile(), re.MULTILINE)


def test_dockerfile_is_multi_stage_on_a_pinned_slim_python_311() -> None:
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile(), re.MULTILINE)
    assert base, "the base image is an ARG"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", base[1]), "exact slim tag"
    stages = instruction("FROM")
    assert len(stages) >= 2
    assert all(s.startswith("${PYTHON_IMAGE}") for s in stages)


def test_dockerfile_installs_exactly_the_lock_with_a_pinned_uv() -> None:
    assert re.search(r"ARG UV_VERSION=\d+\.\d+\.\d+", dockerfile())
    syncs = [line for line in dockerfile().splitlines() if "uv sync" in line]
    assert syncs
    assert all("--frozen" in s and "--no-dev" in s for s in syncs)
    assert "uv.lock" in " ".join(instruction("COPY"))


def test_dockerfile_uses_the_uv_that_writes_the_lock() -> None:
    # The Makefile pins the uv that developers and CI lock and sync with; the image uses the same.
    makefile = re.search(r"^UV_VERSION\s*:?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    image = re.search(r"^ARG UV_VERSION=(\S+)$", dockerfile(), re.MULTILINE)
    assert makefile, "Makefile: UV_VERSION not found"
    assert image, "Dockerfile: ARG UV_VERSION not found"
    assert image[1] == makefile[1]


def test_dockerfile_runs_pmo_as_a_non_root_user() -> None:
    (user,) = instruction("USER")
    assert re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", user.strip()), "numeric, non-root USER"
    assert instruction("ENTRYPOINT") == ['["pmo"]']
    assert instruction("CMD") == ['["run", "registry"]']
    assert "PMO_HTTP_HOST=0.0.0.0" in dockerfile()
