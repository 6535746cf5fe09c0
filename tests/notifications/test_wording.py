"""Every template says counts with the right noun, durations and reasons in words (issue 12.8)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from services.notifications.adapters.templates import BLOCKS, RenderedMessage, TemplateCatalog
from services.notifications.adapters.wording import (
    alike,
    count,
    duration,
    figure,
    reason_heading,
)
from services.notifications.domain.subscriptions import NOTICE_TYPES, SUMMARY_TYPE
from tests.notifications.test_templates import CONTEXTS, PROJECT, REGISTRY

pytestmark = pytest.mark.fast

ALL_REASONS = [
    {"code": "schedule", "message": "SPI(t) 0.70 is below 0.85.", "numbers": {"spi_t": 0.7}},
    {"code": "cost", "message": "CPI 0.80 is below 0.90.", "numbers": {"cpi": 0.8, "eac": 125000}},
    {
        "code": "milestone_overdue",
        "message": "1 milestone overdue.",
        "numbers": {"overdue": 1.0, "most_days_overdue": 1.0, "red_after_days": 14.0},
    },
    {
        "code": "stale_status",
        "message": "No status report for 15 days.",
        "numbers": {"days_without_report": 15.0, "stale_after_days": 14.0},
    },
    {"code": "reported_red", "message": "The project manager reports red.", "numbers": {}},
    {
        "code": "resource_shortfall",
        "message": "0.5 of the 1 FTE requested are not granted.",
        "numbers": {"fte_short": 0.5, "shortfall_share": 0.5},
    },
]


def singular_contexts() -> dict[str, dict[str, Any]]:
    """Every notice with one of everything: one notification, one minute, one project, one week."""
    contexts = copy.deepcopy(CONTEXTS)
    contexts["project-at-risk"]["event"]["data"]["reasons"] = ALL_REASONS
    contexts["project-escalated"]["escalation"] |= {
        "at_risk_s": 86400.0 + 60,
        "after_s": 86400.0,
        "days_at_risk": 1.0,
        "after_days": 1.0,
        "reasons": ALL_REASONS,
    }
    conflict = contexts["resource-conflict-resolved"]["event"]["data"]
    conflict["weeks"] = ["2026-W49"]
    contexts["portfolio-reprioritized"]["event"]["data"]["projects"] = contexts[
        "portfolio-reprioritized"
    ]["event"]["data"]["projects"][1:]
    digest = contexts["portfolio-digest"]["digest"]
    digest["lines"] = digest["lines"][:1]
    digest["totals"] = {"projects": 1, "red": 1, "amber": 0, "green": 0, "shortfall_fte": 1.5}
    contexts[SUMMARY_TYPE]["summary"] = {
        "count": 1,
        "window_s": 60.0,
        "items": [
            {
                "time": "2026-11-26 10:01 UTC",
                "title": "[PMO RED] Orion is at risk",
                "event_type": "pmo.project-at-risk",
                "severity": "red",
                "reasons": ["schedule", "cost"],
            }
        ],
    }
    return contexts


SINGULAR = singular_contexts()

WRONG = [
    re.compile(r"\b1 (notifications|minutes|hours|days|projects|weeks|milestones)\b"),
    re.compile(r"\b\d+\.\d+ (days|minutes|hours)\b"),  # "0.0 days", "7.2 days": not words
    re.compile(r"\b(milestone_overdue|stale_status|reported_red|resource_shortfall|on_hold)\b"),
    re.compile(r"\b\w+_(days|share|fte|from)\b"),  # a field name instead of words
]


@pytest.fixture(scope="module")
def catalog() -> TemplateCatalog:
    return TemplateCatalog(REGISTRY)


def everything(message: RenderedMessage) -> str:
    return "\n".join([message.title, message.text, message.html or ""])


@pytest.mark.parametrize("channel", sorted(BLOCKS))
@pytest.mark.parametrize("notice_type", [*NOTICE_TYPES, SUMMARY_TYPE])
def test_no_template_says_a_wrong_plural_a_fractional_duration_or_a_code(
    catalog: TemplateCatalog, channel: str, notice_type: str
) -> None:
    said = everything(catalog.render(channel, notice_type, SINGULAR[notice_type]))
    for wrong in WRONG:
        assert not wrong.search(said), (wrong.pattern, wrong.search(said), said)


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0 seconds"),
        (1, "1 second"),
        (45, "45 seconds"),
        (60, "1 minute"),
        (600, "10 minutes"),
        (3600, "1 hour"),
        (5400, "1 hour and 30 minutes"),
        (86400, "1 day"),
        (172800, "2 days"),
        (7 * 86400 + 5 * 3600, "7 days and 5 hours"),
        (0.04 * 86400, "58 minutes"),
        (None, "an unknown time"),
    ],
)
def test_durations_are_said_in_words(seconds: float | None, words: str) -> None:
    assert duration(seconds) == words


def test_counts_reasons_and_figures_are_said_in_words() -> None:
    assert count(1, "notification") == "1 notification"
    assert count(2, "notification") == "2 notifications"
    assert count(0, "project") == "0 projects"
    assert count(1200, "project") == "1,200 projects"
    assert reason_heading("milestone_overdue") == "Overdue milestones"
    assert reason_heading("stale_status") == "No recent status report"
    assert reason_heading("brand_new_reason") == "Brand new reason"
    assert figure("forecast_delay_days", 12.0) == "forecast 12 days late"
    assert figure("days_without_report", 1.0) == "1 day without a report"
    assert figure("sv_t_days", -2.5) == "schedule variance -2.5 days"
    assert figure("shortfall_share", 0.25) == "25% of the request short"
    assert figure("fte_short", 0.5) == "0.5 FTE short"
    assert figure("spi", None) == "SPI n/a"
    assert figure("overdue", 1.0) == "1 milestone overdue"


def test_a_summary_of_one_says_one_notification_one_minute_and_its_reasons_on_every_channel(
    catalog: TemplateCatalog,
) -> None:
    context = SINGULAR[SUMMARY_TYPE]
    email = catalog.render("email", SUMMARY_TYPE, context)
    assert email.title == "[PMO] 1 more notification about Orion <customer> portal & more"
    assert "within 1 minute of" in email.text
    assert "[PMO RED] Orion is at risk (schedule, cost)" in email.text
    assert email.html is not None
    assert "(schedule, cost)" in email.html
    slack = catalog.render("slack", SUMMARY_TYPE, context)
    assert slack.title.startswith("1 more notification about")
    assert "1 notification within 1 minute of the previous message" in slack.text
    assert "_(schedule, cost)_" in slack.text
    webhook = catalog.render("webhook", SUMMARY_TYPE, context)
    assert webhook.title.endswith("in the last 1 minute")
    assert webhook.title.startswith("1 more notification about")


def test_a_summary_queued_by_the_first_version_still_says_its_window_in_words(
    catalog: TemplateCatalog,
) -> None:
    old = copy.deepcopy(CONTEXTS[SUMMARY_TYPE])
    old["summary"] = {"count": 3, "window_minutes": 1, "items": old["summary"]["items"]}
    assert catalog.render("webhook", SUMMARY_TYPE, old).title.endswith(
        "3 more notifications about Orion <customer> portal & more in the last 1 minute"
    )


def test_an_escalation_says_how_long_in_words_and_why(catalog: TemplateCatalog) -> None:
    context = copy.deepcopy(SINGULAR["project-escalated"])
    context["escalation"]["at_risk_s"] = 0.04 * 86400  # the "at risk for 0.0 days" case
    context["escalation"]["after_s"] = 1800.0
    email = catalog.render("email", "project-escalated", context)
    assert email.title == "[PMO ESCALATION] Orion <customer> portal & more at risk for 58 minutes"
    assert "(58 minutes; escalated after 30 minutes)" in email.text
    assert "since Thu 19 Nov 2026 10:00 UTC" in email.text
    assert "Overdue milestones: 1 milestone overdue. (1 milestone overdue, the latest 1 day" in (
        email.text
    )
    assert "No recent status report: No status report for 15 days. (15 days without a report" in (
        email.text
    )
    slack = catalog.render("slack", "project-escalated", context)
    assert slack.title.endswith("at risk for 58 minutes")
    webhook = catalog.render("webhook", "project-escalated", context)
    assert webhook.title.endswith(
        "for 58 minutes (schedule, cost, overdue milestones, no recent status report, "
        "reported red by the project manager, resource shortfall)"
    )
    # A row queued by the first version carried only rounded days.
    old = copy.deepcopy(CONTEXTS["project-escalated"])
    assert catalog.render("email", "project-escalated", old).title.endswith(
        "at risk for 7 days and 5 hours"
    )


def test_the_at_risk_alert_names_every_reason_in_words_with_its_figures(
    catalog: TemplateCatalog,
) -> None:
    context = SINGULAR["project-at-risk"]
    email = catalog.render("email", "project-at-risk", context)
    assert "Resource shortfall: 0.5 of the 1 FTE requested are not granted. (0.5 FTE short, " in (
        email.text
    )
    assert "50% of the request short)" in email.text
    assert "Cost: CPI 0.80 is below 0.90. (CPI 0.80, EAC 125,000)" in email.text
    assert email.html is not None
    assert "<strong>Reported red by the project manager</strong>" in email.html
    slack = catalog.render("slack", "project-at-risk", context)
    assert "• *Overdue milestones*: 1 milestone overdue. _(1 milestone overdue," in slack.text
    webhook = catalog.render("webhook", "project-at-risk", context)
    assert webhook.title == (
        "RED: Orion <customer> portal & more is at risk (schedule, cost, overdue milestones, "
        "no recent status report, reported red by the project manager, resource shortfall)"
    )


def test_digest_reprioritization_conflict_and_lifecycle_count_in_words(
    catalog: TemplateCatalog,
) -> None:
    digest = SINGULAR["portfolio-digest"]
    email = catalog.render("email", "portfolio-digest", digest)
    assert email.title.endswith("1 red, 0 amber of 1 project")
    assert "1 running project: 1 red" in email.text
    assert "1 running project: *1 red*" in catalog.render("slack", "portfolio-digest", digest).text
    assert (
        ": 1 project, 1 red, 0 amber" in catalog.render("webhook", "portfolio-digest", digest).title
    )

    ranked = SINGULAR["portfolio-reprioritized"]
    assert catalog.render("webhook", "portfolio-reprioritized", ranked).title.endswith(
        "(1 project ranked)"
    )
    assert "(1 project):" in catalog.render("email", "portfolio-reprioritized", ranked).text

    conflict = SINGULAR["resource-conflict-resolved"]
    assert (
        "in week 2026-W49." in catalog.render("email", "resource-conflict-resolved", conflict).text
    )
    assert catalog.render("slack", "resource-conflict-resolved", conflict).text.startswith(
        "Week 2026-W49."
    )
    assert catalog.render("webhook", "resource-conflict-resolved", conflict).title.endswith(
        "in week 2026-W49: 1 project served, 1 short"
    )
    two_weeks = CONTEXTS["resource-conflict-resolved"]
    assert "in weeks 2026-W48, 2026-W49." in (
        catalog.render("email", "resource-conflict-resolved", two_weeks).text
    )

    lifecycle = copy.deepcopy(SINGULAR["project-lifecycle-changed"])
    email = catalog.render("email", "project-lifecycle-changed", lifecycle)
    assert email.title == f"[PMO] {PROJECT['name']} is now on hold"
    assert "moved from active to on hold." in email.text
    assert "Cause: directive" in email.text
    lifecycle["event"]["data"]["reason"] = "the board paused it for the budget review"
    slack = catalog.render("slack", "project-lifecycle-changed", lifecycle)
    assert "Why: the board paused it for the budget review" in slack.text
    assert catalog.render("webhook", "project-lifecycle-changed", lifecycle).title.endswith(
        ": active -> on hold"
    )


@pytest.mark.parametrize(
    ("shared", "said"),
    [
        (["business_unit"], "the same business unit"),
        (["methodology", "objectives"], "the same methodology and shared objectives"),
        (
            ["business_unit", "methodology", "objectives"],
            "the same business unit, the same methodology and shared objectives",
        ),
        (["sponsor_group"], "sponsor group"),
        ([], "similar"),
        (None, "similar"),
    ],
)
def test_why_a_lesson_is_suggested_is_said_in_words(shared: Any, said: str) -> None:
    assert alike(shared) == said
