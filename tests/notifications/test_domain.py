"""Notifications' pure rules: signatures, backoff, who wants what, the clocks, the digest lines."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notifications.domain.alerts import (
    is_permanent,
    retry_delay,
    signature,
    signature_is_valid,
)
from services.notifications.domain.portfolio import (
    PortfolioLine,
    RequestOutcome,
    narrowed,
    portfolio_lines,
    portfolio_totals,
    shortfall,
)
from services.notifications.domain.subscriptions import (
    NOTICE_TYPES,
    SUBSCRIPTION_DISABLED,
    Audience,
    Notice,
    wants,
)
from services.notifications.domain.timing import (
    ScheduleError,
    check_schedule,
    due_slot,
    throttle_window,
)
from shared.events.contracts import OUTBOUND_EVENTS

pytestmark = pytest.mark.fast

# --- signatures ------------------------------------------------------------------------------


def test_signature_is_the_hmac_of_timestamp_dot_body_as_a_receiver_computes_it() -> None:
    body = b'{"event_type":"pmo.project-at-risk"}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("s3cret", "1700000000", body) == f"sha256={expected}"


def test_a_receiver_accepts_a_fresh_signature_and_refuses_tampering_replays_and_wrong_keys() -> (
    None
):
    body = b'{"a":1}'
    signed = signature("key-one-1234567890", "1700000000", body)
    now = 1_700_000_100.0
    assert signature_is_valid("key-one-1234567890", "1700000000", body, signed, now=now)
    assert not signature_is_valid("key-one-1234567890", "1700000000", b'{"a":2}', signed, now=now)
    assert not signature_is_valid("another-key-123456", "1700000000", body, signed, now=now)
    assert not signature_is_valid("key-one-1234567890", "1700000001", body, signed, now=now)
    assert not signature_is_valid(
        "key-one-1234567890", "1700000000", body, signed, now=1_700_000_000 + 301
    )
    assert not signature_is_valid("key-one-1234567890", "yesterday", body, signed, now=now)


# --- backoff ---------------------------------------------------------------------------------


@given(
    attempts=st.integers(min_value=1, max_value=60),
    base=st.floats(min_value=0.01, max_value=30),
    cap=st.floats(min_value=1, max_value=3600),
    jitter=st.floats(min_value=0, max_value=1),
)
def test_retry_delay_doubles_within_half_jitter_and_never_exceeds_the_cap(
    attempts: int, base: float, cap: float, jitter: float
) -> None:
    delay = retry_delay(attempts, base_s=base, max_s=cap, jitter=lambda: jitter).total_seconds()
    exponential = min(base * 2 ** (attempts - 1), cap)
    assert exponential / 2 - 1e-6 <= delay <= exponential + 1e-6
    assert delay <= cap + 1e-6


def test_retry_delay_grows_exponentially_until_capped() -> None:
    delays = [
        retry_delay(n, base_s=2, max_s=600, jitter=lambda: 1.0).total_seconds()
        for n in range(1, 12)
    ]
    assert delays[:5] == [2, 4, 8, 16, 32]
    assert delays[-1] == 600


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        (None, False),
        (500, False),
        (503, False),
        (408, False),
        (429, False),
        (425, False),
        (400, True),
        (401, True),
        (404, True),
        (410, True),
    ],
)
def test_only_a_receivers_final_refusals_are_permanent(status: int | None, permanent: bool) -> None:
    assert is_permanent(status) is permanent


# --- who wants what ----------------------------------------------------------------------------

AT_RISK_RED = Notice("project-at-risk", "red", ("PRJ-1",), ("Digital",))


@pytest.mark.parametrize(
    ("audience", "wanted"),
    [
        (Audience(frozenset({"project-at-risk"})), True),
        (Audience(frozenset({"project-recovered"})), False),
        (Audience(frozenset({"project-at-risk"}), min_severity="red"), True),
        (Audience(frozenset({"project-at-risk"}), project_id="PRJ-1"), True),
        (Audience(frozenset({"project-at-risk"}), project_id="PRJ-2"), False),
        (Audience(frozenset({"project-at-risk"}), business_unit="Digital"), True),
        (Audience(frozenset({"project-at-risk"}), business_unit="Finance"), False),
    ],
)
def test_a_subscription_filters_by_type_severity_project_and_business_unit(
    audience: Audience, wanted: bool
) -> None:
    assert wants(audience, AT_RISK_RED) is wanted


def test_minimum_severity_keeps_amber_out_of_a_red_only_subscription_and_news_out_of_amber() -> (
    None
):
    red_only = Audience(frozenset({"project-at-risk", "project-recovered"}), min_severity="red")
    assert not wants(red_only, Notice("project-at-risk", "amber", ("P",), ("U",)))
    amber = Audience(frozenset({"project-recovered"}), min_severity="amber")
    assert not wants(amber, Notice("project-recovered", "info", ("P",), ("U",)))


def test_escalations_go_to_escalation_targets_whatever_their_event_types() -> None:
    escalation = Notice("project-escalated", "red", ("PRJ-1",), ("Digital",))
    director = Audience(frozenset(), escalation_target=True)
    assert wants(director, escalation)
    assert not wants(Audience(frozenset({"project-escalated", "project-at-risk"})), escalation)
    assert not wants(
        Audience(frozenset(), escalation_target=True, business_unit="Finance"), escalation
    )


def test_portfolio_events_reach_a_project_subscriber_when_the_project_is_among_them() -> None:
    ranking = Notice("portfolio-reprioritized", "info", ("PRJ-1", "PRJ-2"), ("Digital", "Ops"))
    assert wants(Audience(frozenset({"portfolio-reprioritized"}), project_id="PRJ-2"), ranking)
    assert not wants(Audience(frozenset({"portfolio-reprioritized"}), project_id="X"), ranking)


def test_the_digest_ignores_severity_and_is_sent_even_if_the_filters_leave_it_empty() -> None:
    digest = Notice("portfolio-digest", "info", (), ())
    assert wants(
        Audience(frozenset({"portfolio-digest"}), min_severity="red", business_unit="Ops"), digest
    )


# --- clocks ------------------------------------------------------------------------------------


def test_a_subscriptions_throttle_window_overrides_the_service_setting() -> None:
    assert throttle_window(None, timedelta(minutes=10)) == timedelta(minutes=10)
    assert throttle_window(30, timedelta(minutes=10)) == timedelta(seconds=30)
    assert throttle_window(0, timedelta(minutes=10)) == timedelta(0)


MONDAY_8 = "0 8 * * MON"


def test_the_due_slot_is_this_mondays_8_oclock_in_the_configured_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    now = datetime(2026, 11, 23, 8, 30, tzinfo=berlin)  # a Monday
    slot = due_slot(MONDAY_8, "Europe/Berlin", now=now.astimezone(UTC), catch_up=timedelta(hours=1))
    assert slot == datetime(2026, 11, 23, 8, 0, tzinfo=berlin)
    assert slot is not None
    assert slot.utcoffset() == timedelta(hours=1)


def test_a_slot_is_due_at_its_very_minute_and_not_after_the_catch_up_window() -> None:
    at_eight = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert due_slot(MONDAY_8, "UTC", now=at_eight, catch_up=timedelta(hours=1)) == at_eight
    later = at_eight + timedelta(hours=1, seconds=1)
    assert due_slot(MONDAY_8, "UTC", now=later, catch_up=timedelta(hours=1)) is None
    assert (
        due_slot(MONDAY_8, "UTC", now=at_eight - timedelta(seconds=1), catch_up=timedelta(1))
        is None
    )


def test_the_slot_stays_at_8_local_time_across_daylight_saving() -> None:
    summer = due_slot(
        MONDAY_8,
        "Europe/Berlin",
        now=datetime(2026, 7, 6, 6, 5, tzinfo=UTC),
        catch_up=timedelta(hours=1),
    )
    assert summer is not None
    assert (summer.hour, summer.utcoffset()) == (8, timedelta(hours=2))


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)))
def test_every_replica_names_the_same_slot_whenever_it_looks_within_the_week(
    moment: datetime,
) -> None:
    now = moment.replace(tzinfo=UTC)
    slot = due_slot(MONDAY_8, "UTC", now=now, catch_up=timedelta(days=7))
    assert slot is not None
    assert slot.weekday() == 0
    assert (slot.hour, slot.minute) == (8, 0)
    assert timedelta(0) <= now - slot < timedelta(days=7)
    # Looked at a little later in the same week, it is the same slot.
    later = min(slot + timedelta(days=7) - timedelta(seconds=1), now + timedelta(hours=3))
    assert due_slot(MONDAY_8, "UTC", now=later, catch_up=timedelta(days=7)) == slot


def test_a_wrong_schedule_or_time_zone_is_refused_with_the_setting_named() -> None:
    with pytest.raises(ScheduleError, match="PMO_DIGEST_SCHEDULE"):
        check_schedule("every monday", "UTC")
    with pytest.raises(ScheduleError, match="PMO_DIGEST_TIMEZONE"):
        check_schedule(MONDAY_8, "Mars/Olympus")


# --- the digest's lines ------------------------------------------------------------------------


def line(
    pid: str,
    *,
    rank: int | None,
    lifecycle: str = "active",
    health: str = "green",
    unit: str = "Digital",
    short: float = 0.0,
) -> PortfolioLine:
    return PortfolioLine(pid, f"Project {pid}", unit, lifecycle, health, 0.9, 1.0, rank, short)


def test_the_digest_lists_running_projects_by_rank_then_unranked_by_name() -> None:
    lines = portfolio_lines(
        [
            line("C", rank=None),
            line("B", rank=2),
            line("A", rank=1),
            line("DONE", rank=3, lifecycle="completed"),
            line("STOP", rank=4, lifecycle="terminated"),
            line("IDEA", rank=None, lifecycle="proposed"),
            line("PAUSED", rank=5, lifecycle="on_hold"),
        ]
    )
    assert [entry.project_id for entry in lines] == ["A", "B", "PAUSED", "C"]


def test_totals_and_filters_of_the_digest() -> None:
    lines = [
        line("A", rank=1, health="red", short=1.5),
        line("B", rank=2, health="amber", unit="Ops", short=0.5),
        line("C", rank=3),
        line("D", rank=4, health="no report yet"),
    ]
    assert portfolio_totals(lines) == {
        "projects": 4,
        "red": 1,
        "amber": 1,
        "green": 1,
        "no_report_yet": 1,
        "shortfall_fte": 2.0,
    }
    assert [
        entry.project_id for entry in narrowed(lines, project_id=None, business_unit="Ops")
    ] == ["B"]
    assert [entry.project_id for entry in narrowed(lines, project_id="C", business_unit=None)] == [
        "C"
    ]


@given(st.lists(st.tuples(st.floats(0, 10), st.floats(0, 10)), max_size=20))
def test_shortfall_counts_what_was_asked_and_not_granted_and_never_goes_negative(
    pairs: list[tuple[float, float]],
) -> None:
    outcomes = [RequestOutcome(requested, granted) for requested, granted in pairs]
    total = shortfall(outcomes)
    assert total >= 0
    assert total == pytest.approx(
        sum(max(requested - granted, 0) for requested, granted in pairs), abs=1e-3
    )


def test_every_notice_type_is_a_pmo_event_or_one_notifications_makes_itself() -> None:
    # A subscription names events by the catalog's names; a misspelt one would never match.
    own = {"project-escalated", "portfolio-digest", SUBSCRIPTION_DISABLED}
    events = set(OUTBOUND_EVENTS)
    assert set(NOTICE_TYPES) - own <= events, set(NOTICE_TYPES) - own - events
    assert not own & events
