"""The one settings object: every knob of every service, read from `PMO_*` environment variables."""

from __future__ import annotations

import os
import ssl
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from pytimeparse.timeparse import timeparse

from shared.health_rules import AMBER_BELOW_GREEN, threshold_setting

ServiceName = Literal["registry", "monitoring", "allocation", "notifications"]
SERVICE_NAMES: tuple[ServiceName, ...] = ("registry", "monitoring", "allocation", "notifications")

# Where each service's HTTP API listens by default (`pmo up` and `pmo run`).
DEFAULT_HTTP_PORTS: dict[ServiceName, int] = {
    "registry": 8001,
    "allocation": 8002,
    "monitoring": 8003,
    "notifications": 8004,
}
DASHBOARD_HTTP_PORT = 8000
"""Where the dashboard listens by default (`pmo up`, `pmo run dashboard`)."""


class ConfigurationError(RuntimeError):
    """A setting the operator must provide is missing or wrong; the message says which."""


DURATION_FORMS = (
    "such as `10 min`, `12 h`, `7 days`, `1 h 30 min`, `90 s`, `1:30:00` "
    "or ISO 8601 `PT10M`; a bare number is seconds"
)
"""What every duration setting accepts, as the README documents it."""

_ISO_DURATION = TypeAdapter(timedelta)


def _parse_duration(value: Any) -> Any:
    """A duration in any documented form: words (`10 min`), clock (`1:30:00`), ISO 8601, seconds.

    Raises ValueError naming the accepted forms for anything else.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return timedelta(seconds=float(text))
        except (ValueError, OverflowError):
            pass
        seconds = timeparse(text)
        if seconds is not None:
            return timedelta(seconds=seconds)
        if text[:1] in ("P", "p", "-") and "P" in text.upper():
            try:  # ISO 8601 (`PT10M`, `P7D`), which pydantic reads
                return _ISO_DURATION.validate_python(text.upper())
            except ValidationError:
                pass
    raise ValueError(f"expected a duration {DURATION_FORMS}")


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError(f"expected a duration of 0 or more, {DURATION_FORMS}")
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError(f"expected a duration above 0, {DURATION_FORMS}")
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration), AfterValidator(_not_negative)]
"""A duration setting where 0 is meaningful (e.g. "off")."""
PositiveDuration = Annotated[timedelta, BeforeValidator(_parse_duration), AfterValidator(_positive)]
"""A duration setting that must be above 0."""


class Settings(BaseSettings):
    """Configuration of the PMO backend; 12-factor, so environment variables only.

    Operators and the test harness rely on these names; they are documented in the README.
    """

    # Compose passes unset optional values as empty strings: empty means unset.
    model_config = SettingsConfigDict(env_prefix="PMO_", extra="ignore", env_ignore_empty=True)

    # --- Kafka -----------------------------------------------------------------------------
    kafka_bootstrap_servers: str | None = None
    """Unset under `pmo up`: the embedded broker is started. Required by `pmo run`."""
    topic_prefix: str = ""
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    kafka_enable_idempotence: bool = True
    """On for Apache Kafka; the embedded broker's memory engine rejects InitProducerId, so
    `pmo up` turns it off there. Correctness never depends on it: consumers are idempotent."""
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)

    # --- Consumption -------------------------------------------------------------------------
    consumer_batch_max: int = Field(default=500, ge=1)
    """Most events one consumer batch (one database transaction) takes."""
    consumer_batch_timeout_ms: int = Field(default=50, ge=1)
    consumer_fetch_max_wait_ms: int = Field(default=20, ge=1, le=10_000)
    """Longest a fetch waits at the broker for records. Apache Kafka answers as soon as a record
    arrives; the embedded broker answers only when this runs out, so it is each hop's latency
    there (500, aiokafka's default, made every hop about 250 ms)."""
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    lanes: str | None = None
    """The consumer groups this instance joins, comma-separated: `main` (the service's own
    group) and/or lanes by name (notifications: `alerts`); unset: all of them. `pmo up`, the
    compose file and deploy/ run notifications' alert lane (`alerts`) as a process of its own
    and the rest (`main`) in another; `pmo run --lanes` sets it for one process."""
    consumer_session_timeout_ms: int = Field(default=10_000, ge=1_000)
    """How long the group waits for a silent consumer; a shorter one joins and fails over faster."""

    database_wait_s: float = Field(default=60.0, ge=0)
    """How long a starting service waits for PostgreSQL to answer before it gives up."""
    broker_wait_s: float = Field(default=120.0, ge=0)
    """How long a starting service waits for an unreachable broker before it gives up."""
    max_event_bytes: int = Field(default=262_144, ge=1_024, le=8_388_608)
    """Largest inbound record (value, key and headers, in bytes) taken in; a larger one is
    dead-lettered with its size, so nothing accepted is too large to publish again."""

    parked_expire_after: PositiveDuration = timedelta(days=7)
    """An event parked this long (what it waits for never came) is dead-lettered with why."""

    # --- Outbox relay ------------------------------------------------------------------------
    outbox_poll_interval_s: float = Field(default=0.5, gt=0)
    outbox_batch_size: int = Field(default=500, ge=1)

    # --- PostgreSQL --------------------------------------------------------------------------
    database_url: str | None = None
    """Unset under `pmo up`: embedded PostgreSQL keeping its data under `data_dir`."""
    registry_database_url: str | None = None
    monitoring_database_url: str | None = None
    allocation_database_url: str | None = None
    notifications_database_url: str | None = None
    database_pool_size: int = Field(default=5, ge=1)

    # --- HTTP --------------------------------------------------------------------------------
    http_host: str = "127.0.0.1"
    http_port: int | None = Field(default=None, ge=1, le=65535)
    """Unset: the service's default port (registry 8001, allocation 8002, monitoring 8003,
    notifications 8004)."""
    admin_token: SecretStr | None = None
    """Bootstrap bearer token with the `pmo_admin` role for the HTTP APIs."""
    token_secret: SecretStr | None = Field(default=None, min_length=32)
    """HMAC-SHA256 key signing the API tokens (`pmo token create`); the same in every service.
    At least 32 characters: RFC 7518 section 3.2 wants an HS256 key as long as the hash."""

    # --- Dashboard ---------------------------------------------------------------------------
    dashboard_public_url: str = "http://127.0.0.1:8000"
    """Where people reach the PMO dashboard: the project links in notifications point at
    `<this>/projects/<id>` (`pmo up` sets it, port offset included)."""
    dashboard_registry_url: str = "http://127.0.0.1:8001"
    """The registry API as the dashboard reaches it (and likewise the three below)."""
    dashboard_allocation_url: str = "http://127.0.0.1:8002"
    dashboard_monitoring_url: str = "http://127.0.0.1:8003"
    dashboard_notifications_url: str = "http://127.0.0.1:8004"
    dashboard_session_hours: float = Field(default=12.0, gt=0)
    """How long a dashboard sign-in lasts before the person signs in again."""

    # --- Embedded stack (pmo up) ---------------------------------------------------------------
    data_dir: str = ".pmo"
    embedded_kafka_port: int = 9092

    # --- Notifications ---------------------------------------------------------------------
    alert_webhook_url: str | None = None
    """A built-in webhook subscription to every project-at-risk alert (`pmo up` points it at
    `pmo demo`); subscriptions made through the API come on top of it."""
    alert_webhook_secret: SecretStr | None = None
    """HMAC-SHA256 key signing each POST to `alert_webhook_url`."""
    notify_project_managers: bool = True
    """Keep one system-owned e-mail subscription per project for its manager (interventions,
    lessons, gate reviews, the project's at-risk/recovered/escalated alerts); off: none is
    queued for them. Nothing is queued for them either while `smtp_host` is unset."""
    registry_public_url: str = "http://127.0.0.1:8001"
    """Public base URL of the registry API (the digest's link to the project list)."""
    smtp_host: str | None = None
    """SMTP server for e-mail notifications; unset: e-mail deliveries fail and say so."""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    """SMTP port: 587 for STARTTLS, 465 for implicit TLS, 25 for plain relays."""
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    """`starttls` upgrades the connection (required), `tls` connects with TLS, `none` is plain."""
    smtp_username: str | None = None
    """SMTP login; unset: no authentication."""
    smtp_password: SecretStr | None = None
    """SMTP password (never logged)."""
    smtp_from: str = "PMO <pmo@localhost>"
    """The From header of PMO e-mails."""
    smtp_cafile: str | None = None
    """CA bundle to verify the SMTP server's certificate; unset: the system's."""
    notification_max_attempts: int = Field(default=8, ge=1)
    """Attempts per delivery before it is dead (retry it by hand through the API)."""
    notification_retry_base_s: float = Field(default=2.0, gt=0)
    """First retry delay; doubled each attempt, with jitter."""
    notification_retry_max_s: float = Field(default=600.0, gt=0)
    """Longest retry delay."""
    notification_send_timeout_s: float = Field(default=10.0, gt=0)
    """Per-request timeout of one delivery attempt (HTTP or SMTP)."""
    notification_concurrency: int = Field(default=16, ge=1)
    """Deliveries one replica sends at the same time."""
    notification_poll_interval_s: float = Field(default=0.5, gt=0)
    """How often the delivery worker looks for due deliveries when idle."""
    notification_throttle_window: Duration = timedelta(minutes=10)
    """Per subscription and project: after one message, the rest of a burst within this window
    is held and sent as one summary at its end; 0 turns throttling off."""
    notification_escalate_after: PositiveDuration = timedelta(days=7)
    """A project at risk this long is escalated to the escalation targets (once per episode)."""
    notification_clock_interval_s: float = Field(default=30.0, gt=0)
    """How often the clock looks for ended throttle windows, escalations and the digest slot."""
    digest_schedule: str = "0 8 * * MON"
    """Cron expression (minute hour day month weekday) of the weekly portfolio digest."""
    digest_timezone: str = "UTC"
    """IANA time zone of `digest_schedule`, e.g. Europe/Berlin."""
    digest_catch_up: Duration = timedelta(hours=12)
    """A digest slot missed (service down) is still sent if it is at most this late."""

    # --- Monitoring ----------------------------------------------------------------------------
    # Default health rules; a PMO administrator may override them with PUT /thresholds. Each
    # rule's meaning and bounds are `HealthThresholds`' (shared/health_rules.py); only the
    # default is stated here.
    monitoring_spi_green_from: float = threshold_setting("spi_green_from", 0.95)
    monitoring_spi_amber_from: float = threshold_setting("spi_amber_from", 0.90)
    monitoring_cpi_green_from: float = threshold_setting("cpi_green_from", 0.95)
    monitoring_cpi_amber_from: float = threshold_setting("cpi_amber_from", 0.90)
    monitoring_tcpi_red_above: float = threshold_setting("tcpi_red_above", 1.10)
    monitoring_hysteresis_margin: float = threshold_setting("hysteresis_margin", 0.02)
    monitoring_stale_after_days: int = threshold_setting("stale_after_days", 14)
    monitoring_milestone_red_after_days: int = threshold_setting("milestone_red_after_days", 30)
    monitoring_resource_shortfall_red_from: float = threshold_setting(
        "resource_shortfall_red_from", 0.5
    )
    monitoring_staleness_check_interval_s: float = Field(default=60.0, gt=0)
    """How often the staleness clock looks for projects without a recent report."""

    # --- Registry ------------------------------------------------------------------------------
    registry_stage_models_file: str | None = None
    """JSON file of the stage models by methodology (format: services/registry/stage_models.json,
    which is used when unset); an operator's file replaces the shipped one."""
    registry_key_project_bonus: float = Field(default=0.1, ge=0)
    """Added to a key project's strategic score (scores of other projects lie in 0..1)."""
    registry_accelerate_top_share: float = Field(default=0.2, ge=0, le=1)
    """Share of the ranked portfolio, from the top, recommended to accelerate (with the score)."""
    registry_accelerate_min_score: float = Field(default=0.6, ge=0)
    """Least score for a top-ranked project to be recommended to accelerate."""
    registry_pause_bottom_share: float = Field(default=0.2, ge=0, le=1)
    """Share of the ranked portfolio, from the bottom, recommended to pause (key projects not)."""
    registry_terminate_below_score: float = Field(default=0.1, ge=0)
    """A project scoring below this is recommended to terminate (key projects not)."""

    # --- Allocation ----------------------------------------------------------------------------
    allocation_hours_per_fte_week: float = Field(default=40.0, gt=0)
    """Hours one FTE works in a week: a request in `hours` is spread evenly over its ISO weeks."""
    allocation_solver_time_limit_s: float = Field(default=10.0, gt=0)
    """Longest one re-resolution's solver may run: weeks its exact flow has not reached by then
    take the greedy rule's answer (2,000 requests x 500 people x 26 weeks take 1-3 s)."""
    allocation_move_penalty: float = Field(default=0.05, ge=0)
    """Cost of each FTE-week of an existing allocation moved, in priority levels: among equally
    good solutions the one moving the least work wins; a gain smaller than this per FTE-week
    never moves anyone."""
    allocation_resolution_poll_s: float = Field(default=2.0, gt=0)
    """How often the re-resolution worker looks for pending work besides being notified."""
    allocation_resolution_coalesce_s: float = Field(default=1.0, ge=0, le=60)
    """Longest a re-resolution waits for more work to join it: while the consumer is behind
    (a backlog of requests being consumed) it waits at least as long as its last run took,
    then for a pause of 0.1 s, at most this long, so that one solve takes many batches and the
    worker leaves the consumer about half the time; once the consumer has caught up, and for
    a lone request, it waits for a pause of 0.1 s only. Seconds."""

    allocation_registration_grace_s: float = Field(default=2.0, ge=0, le=300)
    """How long a new request whose project allocation has not learned yet (its
    `project-registered` still on the way: the enterprise's request can overtake the registry's
    registration) waits before it is decided, so that its first decision is explained with the
    project's real standing rather than "not registered"; 0 decides at once. Seconds."""

    allocation_intervention_amber_after: PositiveDuration = timedelta(days=14)
    """A key project amber (at risk) longer than this gets a PMO expert proposed, as a red one
    does at once (ISO 8601 duration like P14D, or seconds)."""
    allocation_intervention_fte: float = Field(default=0.5, gt=0, le=1)
    """FTE of a PMO expert's time a risk-pushed intervention asks for."""
    allocation_intervention_weeks: int = Field(default=6, ge=1, le=52)
    """How many weeks a risk-pushed intervention runs at most (it ends earlier on recovery)."""
    allocation_intervention_check_interval_s: float = Field(default=60.0, gt=0)
    """How often the intervention clock looks for long amber projects and passed end dates."""

    # --- Observability -------------------------------------------------------------------------
    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("database_url", "kafka_bootstrap_servers", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator(
        "database_url",
        "registry_database_url",
        "monitoring_database_url",
        "allocation_database_url",
        "notifications_database_url",
    )
    @classmethod
    def _postgresql_url(cls, value: str | None) -> str | None:
        # Checked here so that every command refuses it in one line, before connecting.
        scheme = value.partition("://")[0].split("+", 1)[0] if value is not None else ""
        if value is not None and ("://" not in value or scheme not in ("postgresql", "postgres")):
            raise ValueError("expected a PostgreSQL URL like postgresql://user:pass@host:5432/db")
        return value

    @field_validator(*(f"monitoring_{index}_amber_from" for index in AMBER_BELOW_GREEN))
    @classmethod
    def _amber_below_green(cls, value: float, info: ValidationInfo) -> float:
        # The rule is HealthThresholds' (AMBER_BELOW_GREEN); checked here too so that every
        # command refuses it in one line naming both variables, not monitoring at its start.
        green_field = str(info.field_name).replace("_amber_from", "_green_from")
        green = info.data.get(green_field)
        if green is not None and value > green:
            raise ValueError(f"expected at most PMO_{green_field.upper()} ({green})")
        return value

    @field_validator("digest_timezone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA time zone like Europe/Berlin or UTC") from None
        return value

    @field_validator("digest_schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            CronSim(value, datetime(2026, 1, 1, tzinfo=UTC))
        except CronSimError:
            raise ValueError(
                "expected a cron expression: minute hour day month weekday, e.g. '0 8 * * MON'"
            ) from None
        return value

    def database_url_for(self, service: ServiceName) -> str:
        """The PostgreSQL URL a service uses: its own override, else the shared one."""
        url = getattr(self, f"{service}_database_url") or self.database_url
        if not url:
            raise ConfigurationError(
                "No database configured: set PMO_DATABASE_URL "
                f"(or PMO_{service.upper()}_DATABASE_URL), or use `pmo up` for the embedded one."
            )
        return str(url)

    def bootstrap_servers(self) -> str:
        if not self.kafka_bootstrap_servers:
            raise ConfigurationError(
                "No Kafka configured: set PMO_KAFKA_BOOTSTRAP_SERVERS, "
                "or use `pmo up` for the embedded broker."
            )
        return self.kafka_bootstrap_servers

    def http_port_for(self, service: ServiceName) -> int:
        return self.http_port or DEFAULT_HTTP_PORTS[service]

    def kafka_client_options(self) -> dict[str, Any]:
        """Connection options shared by every aiokafka client (consumer, producer, admin)."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers(),
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            context = ssl.create_default_context(cafile=self.kafka_ssl_cafile)
            if self.kafka_ssl_certfile:
                context.load_cert_chain(self.kafka_ssl_certfile, self.kafka_ssl_keyfile)
            options["ssl_context"] = context
        if self.kafka_security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.kafka_sasl_mechanism or "PLAIN"
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        return options

    def environment(self) -> dict[str, str]:
        """These settings as `PMO_*` variables, for handing to a child process."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if isinstance(value, timedelta):
                value = value.total_seconds()  # a bare number is seconds when read back
            env[f"PMO_{name.upper()}"] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
        return env


_EXPECTED = {
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
}


def _expected(problem: Any) -> str:
    kind, context = problem["type"], problem.get("ctx") or {}
    if kind in _EXPECTED:
        return _EXPECTED[kind]
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("above", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("below", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"expected a number {words} {context.get(key)}"
    if kind == "literal_error":
        return f"expected one of {context.get('expected')}"
    if kind in ("too_short", "string_too_short"):
        return f"expected at least {context.get('min_length')} characters"
    message = str(problem["msg"]).removeprefix("Value error, ")
    return message if message.startswith("expected") else f"expected: {message}"


def describe_invalid_settings(error: ValidationError) -> str:
    """One line per invalid setting: the variable, what it expects, and what it got.

    Values of secret settings (passwords, tokens, keys) are never shown.
    """
    lines = []
    for problem in error.errors():
        name = str(problem["loc"][0]) if problem["loc"] else "?"
        variable = f"PMO_{name.upper()}"
        value = problem.get("input")
        secret = any(word in name for word in ("password", "secret", "token"))
        shown = "" if secret or isinstance(value, dict) else f" (got {str(value)[:60]!r})"
        lines.append(f"{variable}: {_expected(problem)}{shown}")
    return "\n".join(dict.fromkeys(lines))


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment; keyword overrides win (tests, `pmo up`).

    Raises ConfigurationError with one line per invalid setting (never a pydantic dump).
    """
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigurationError(describe_invalid_settings(error)) from None


def otel_exporter_configured() -> bool:
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
