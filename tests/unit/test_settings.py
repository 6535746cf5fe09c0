"""Settings read from the environment: every documented duration form, and one line per mistake."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.settings import ConfigurationError, load_settings

pytestmark = pytest.mark.fast

DURATIONS = (
    "PMO_NOTIFICATION_THROTTLE_WINDOW",
    "PMO_NOTIFICATION_ESCALATE_AFTER",
    "PMO_DIGEST_CATCH_UP",
    "PMO_PARKED_EXPIRE_AFTER",
)
FORMS = {
    # The README's own forms first, then the others it documents.
    "10 min": timedelta(minutes=10),
    "12 h": timedelta(hours=12),
    "7 days": timedelta(days=7),
    "1 day": timedelta(days=1),
    "2 weeks": timedelta(weeks=2),
    "90 s": timedelta(seconds=90),
    "1 h 30 min": timedelta(minutes=90),
    "1h30m": timedelta(minutes=90),
    "1.5 hours": timedelta(minutes=90),
    " 10min ": timedelta(minutes=10),
    "1:30:00": timedelta(minutes=90),
    "PT10M": timedelta(minutes=10),
    "pt12h": timedelta(hours=12),
    "P7D": timedelta(days=7),
    "P1DT12H": timedelta(hours=36),
    "600": timedelta(minutes=10),
    "0.5": timedelta(milliseconds=500),
}


@pytest.mark.parametrize("variable", DURATIONS)
@pytest.mark.parametrize("text", FORMS)
def test_every_duration_setting_reads_every_documented_form(
    monkeypatch: pytest.MonkeyPatch, variable: str, text: str
) -> None:
    monkeypatch.setenv(variable, text)
    settings = load_settings()
    assert getattr(settings, variable.removeprefix("PMO_").lower()) == FORMS[text]


@pytest.mark.parametrize("variable", ["PMO_NOTIFICATION_THROTTLE_WINDOW", "PMO_DIGEST_CATCH_UP"])
def test_zero_turns_off_where_the_readme_says_so(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "0")
    assert getattr(load_settings(), variable.removeprefix("PMO_").lower()) == timedelta(0)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("PMO_NOTIFICATION_THROTTLE_WINDOW", "10 minz", "expected a duration such as `10 min`"),
        ("PMO_NOTIFICATION_THROTTLE_WINDOW", "-5 min", "expected a duration of 0 or more"),
        ("PMO_DIGEST_CATCH_UP", "soon", "expected a duration such as `10 min`"),
        ("PMO_NOTIFICATION_ESCALATE_AFTER", "0", "expected a duration above 0"),
        ("PMO_PARKED_EXPIRE_AFTER", "P", "expected a duration such as"),
        ("PMO_CONSUMER_BATCH_MAX", "abc", "expected a whole number"),
        ("PMO_CONSUMER_BATCH_MAX", "0", "expected a number at least 1"),
        ("PMO_SMTP_PORT", "70000", "expected a number at most 65535"),
        ("PMO_OUTBOX_POLL_INTERVAL_S", "fast", "expected a number"),
        ("PMO_LOG_JSON", "maybe", "expected true or false"),
        ("PMO_KAFKA_SECURITY_PROTOCOL", "TLS", "expected one of 'PLAINTEXT', 'SSL'"),
        ("PMO_SMTP_SECURITY", "ssl", "expected one of 'starttls', 'tls' or 'none'"),
        ("PMO_DATABASE_URL", "banana", "expected a PostgreSQL URL"),
        ("PMO_REGISTRY_DATABASE_URL", "mysql://h/db", "expected a PostgreSQL URL"),
        ("PMO_DIGEST_TIMEZONE", "Mars/Base", "expected an IANA time zone"),
        ("PMO_DIGEST_SCHEDULE", "banana", "expected a cron expression"),
        ("PMO_HTTP_PORT", "99999", "expected a number at most 65535"),
    ],
)
def test_an_invalid_setting_is_one_line_naming_the_variable_and_the_form(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    [line] = str(refused.value).splitlines()
    assert line.startswith(f"{variable}: {expected}"), line
    assert line.endswith(f"(got {value!r})"), line


def test_each_invalid_setting_gets_its_own_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PMO_DIGEST_CATCH_UP", "later")
    monkeypatch.setenv("PMO_TOPIC_PARTITIONS", "many")
    monkeypatch.setenv("PMO_KAFKA_SASL_MECHANISM", "hunter2-secret-ish")
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    lines = str(refused.value).splitlines()
    assert sorted(line.split(":")[0] for line in lines) == [
        "PMO_DIGEST_CATCH_UP",
        "PMO_KAFKA_SASL_MECHANISM",
        "PMO_TOPIC_PARTITIONS",
    ]
