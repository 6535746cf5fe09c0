"""The one settings object: every knob of every service, read from `PMO_*` environment variables."""

from __future__ import annotations

import os
import ssl
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ServiceName = Literal["registry", "monitoring", "allocation", "notifications"]
SERVICE_NAMES: tuple[ServiceName, ...] = ("registry", "monitoring", "allocation", "notifications")

# Where each service's HTTP API listens by default (`pmo up` and `pmo run`).
DEFAULT_HTTP_PORTS: dict[ServiceName, int] = {
    "registry": 8001,
    "allocation": 8002,
    "monitoring": 8003,
    "notifications": 8004,
}


class ConfigurationError(RuntimeError):
    """A setting the operator must provide is missing or wrong; the message says which."""


class Settings(BaseSettings):
    """Configuration of the PMO backend; 12-factor, so environment variables only.

    Operators and the test harness rely on these names; they are documented in the README.
    """

    model_config = SettingsConfigDict(env_prefix="PMO_", extra="ignore")

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
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    consumer_session_timeout_ms: int = Field(default=10_000, ge=1_000)
    """How long the group waits for a silent consumer; a shorter one joins and fails over faster."""

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
    http_port: int | None = None
    """Unset: the service's default port (registry 8001, allocation 8002, monitoring 8003,
    notifications 8004)."""
    admin_token: SecretStr | None = None
    """Bootstrap bearer token with the `pmo_admin` role for the HTTP APIs."""
    token_secret: SecretStr | None = None
    """HMAC key signing API tokens (`pmo token create`); the same in every service."""

    # --- Embedded stack (pmo up) ---------------------------------------------------------------
    data_dir: str = ".pmo"
    embedded_kafka_port: int = 9092

    # --- Notifications (thin first channel) ----------------------------------------------------
    alert_webhook_url: str | None = None
    """Where project-at-risk alerts are POSTed until subscriptions exist."""
    alert_webhook_secret: SecretStr | None = None
    """HMAC-SHA256 key signing each alert webhook body."""

    # --- Observability -------------------------------------------------------------------------
    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("database_url", "kafka_bootstrap_servers", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

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
            env[f"PMO_{name.upper()}"] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
        return env


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment; keyword overrides win (tests, `pmo up`)."""
    return Settings(**overrides)


def otel_exporter_configured() -> bool:
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
