"""Every notice renders on every channel, readable, escaped for where it goes, with the link."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from services.notifications.adapters.channels import email_message, slack_payload
from services.notifications.adapters.templates import BLOCKS, TemplateCatalog
from services.notifications.domain.subscriptions import NOTICE_TYPES, SUMMARY_TYPE
from shared.settings import Settings

pytestmark = pytest.mark.fast

REGISTRY = "https://pmo.example.com/registry"
PROJECT = {
    "project_id": "PRJ-ORION",
    "name": "Orion <customer> portal & more",
    "business_unit": "Digital",
    "manager": "ada@example.com",
    "lifecycle": "active",
    "rank": 2,
    "health": "red",
}
REASONS = [
    {
        "code": "schedule",
        "message": "SPI 0.60 below 0.90",
        "numbers": {"spi": 0.6, "threshold": 0.9},
    },
    {"code": "cost", "message": "CPI 0.80 below 0.90", "numbers": {"cpi": 0.8, "threshold": None}},
]


def event(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "e-1",
        "type": f"pmo.{event_type}",
        "source": "/pmo/monitoring",
        "time": "2026-11-26T10:00:00+00:00",
        "data": data,
    }


CONTEXTS: dict[str, dict[str, Any]] = {
    "project-at-risk": {
        "project": PROJECT,
        "event": event(
            "project-at-risk",
            {
                "project_id": "PRJ-ORION",
                "severity": "red",
                "reasons": REASONS,
                "metrics": {"spi": 0.6, "cpi": 0.8},
            },
        ),
    },
    "project-recovered": {
        "project": PROJECT,
        "event": event(
            "project-recovered", {"project_id": "PRJ-ORION", "metrics": {"spi": 1.0, "cpi": 1.1}}
        ),
    },
    "project-escalated": {
        "project": PROJECT,
        "escalation": {
            "at_risk_since": "2026-11-19T10:00+00:00",
            "days_at_risk": 7.2,
            "after_days": 7.0,
            "severity": "red",
            "reasons": REASONS,
            "metrics": {"spi": 0.6, "cpi": None},
        },
    },
    "resource-conflict-resolved": {
        "projects": {"PRJ-ORION": PROJECT["name"]},
        "event": event(
            "resource-conflict-resolved",
            {
                "conflict_id": "C-1",
                "skill": "architect",
                "resource_id": None,
                "weeks": ["2026-W48", "2026-W49"],
                "winners": [
                    {
                        "request_id": "R-1",
                        "project_id": "PRJ-ORION",
                        "fte_granted": 1.0,
                        "fte_requested": 1.0,
                        "why": "rank 1",
                    }
                ],
                "losers": [
                    {
                        "request_id": "R-2",
                        "project_id": "PRJ-OTHER",
                        "fte_granted": 0.0,
                        "fte_requested": 1.0,
                        "why": "rank 4",
                    }
                ],
                "rationale": "Strategic priority decides.",
            },
        ),
    },
    "allocation-changed": {
        "project": PROJECT,
        "event": event(
            "allocation-changed",
            {
                "project_id": "PRJ-ORION",
                "request_id": "R-1",
                "before": {"fte_granted": 1.0, "weeks": [], "resource_id": None},
                "after": {"fte_granted": 0.5, "weeks": [], "resource_id": None},
                "cause": "strategy v3",
            },
        ),
    },
    "project-lifecycle-changed": {
        "project": PROJECT,
        "event": event(
            "project-lifecycle-changed",
            {"project_id": "PRJ-ORION", "from": "active", "to": "on_hold", "cause": "directive"},
        ),
    },
    "portfolio-reprioritized": {
        "projects": {"PRJ-ORION": PROJECT["name"]},
        "event": event(
            "portfolio-reprioritized",
            {
                "strategy_version": 3,
                "projects": [
                    {
                        "project_id": "PRJ-B",
                        "score": 0.4,
                        "rank": 2,
                        "previous_rank": 1,
                        "action": "pause",
                        "why": "low fit",
                    },
                    {
                        "project_id": "PRJ-ORION",
                        "score": 0.9,
                        "rank": 1,
                        "previous_rank": None,
                        "action": "accelerate",
                        "why": "digital",
                    },
                ],
            },
        ),
    },
    "portfolio-digest": {
        "digest": {
            "slot": "2026-11-23T08:00:00+01:00",
            "slot_label": "Mon 23 Nov 2026 08:00 CET",
            "time_zone": "Europe/Berlin",
            "lines": [
                {
                    "project_id": "PRJ-ORION",
                    "name": PROJECT["name"],
                    "business_unit": "Digital",
                    "lifecycle": "active",
                    "health": "red",
                    "spi": 0.6,
                    "cpi": 0.8,
                    "rank": 1,
                    "shortfall_fte": 1.5,
                },
                {
                    "project_id": "PRJ-B",
                    "name": "Billing",
                    "business_unit": "Finance",
                    "lifecycle": "on_hold",
                    "health": "green",
                    "spi": None,
                    "cpi": None,
                    "rank": None,
                    "shortfall_fte": 0.0,
                },
            ],
            "totals": {"projects": 2, "red": 1, "amber": 0, "green": 1, "shortfall_fte": 1.5},
        }
    },
    "subscription-disabled": {
        "disabled": {
            "subscription_id": "6d1f3c2e-0000-4000-8000-000000000001",
            "name": "PMO tool",
            "channel": "webhook",
            "recipient": "https://tool.example.com/…",
            "reason": "the receiver is gone (HTTP 410 Gone)",
            "at": "2026-11-26T10:00:00+00:00",
            "delivery_id": 42,
            "event_type": "pmo.project-at-risk",
        }
    },
    SUMMARY_TYPE: {
        "project": PROJECT,
        "summary": {
            "count": 2,
            "window_minutes": 10,
            "items": [
                {
                    "time": "2026-11-26 10:01",
                    "title": "Orion is now on_hold",
                    "event_type": "pmo.project-lifecycle-changed",
                },
                {
                    "time": "2026-11-26 10:02",
                    "title": "Allocation changed",
                    "event_type": "pmo.allocation-changed",
                },
            ],
        },
    },
}


def _intervention(event_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "project": PROJECT,
        "event": event(
            event_type,
            {
                "project_id": "PRJ-ORION",
                "intervention_id": "INT-1",
                "origin": "risk",
                "specialty": "schedule-recovery",
                "expert_id": "exp-ana",
                "fte": 0.5,
                "start": "2026-11-30",
                "end": "2027-01-08",
                **extra,
            },
        ),
    }


CONTEXTS.update(
    {
        "intervention-proposed": _intervention(
            "intervention-proposed",
            reasons=["key project red", "SPI 0.60 below 0.90"],
            staffing="Granted in full: Ana (exp-ana) 0.5 FTE in 2026-W49 to 2027-W02.",
            requested_by=None,
            proposed_at="2026-11-29T10:00:00+00:00",
        ),
        "intervention-accepted": _intervention(
            "intervention-accepted",
            request_id="INT-1",
            accepted_by="pmo-admin",
            note="",
            accepted_at="2026-11-29T11:00:00+00:00",
        ),
        "intervention-declined": _intervention(
            "intervention-declined",
            declined_by="pmo-admin",
            reason="the project manager has it in hand",
            declined_at="2026-11-29T11:00:00+00:00",
        ),
        "intervention-ended": _intervention(
            "intervention-ended",
            reason="project recovered (health back to green)",
            was_accepted=True,
            ended_at="2026-12-20T11:00:00+00:00",
        ),
    }
)


def test_the_intervention_notices_say_who_what_and_why(catalog: TemplateCatalog) -> None:
    proposed = catalog.render("email", "intervention-proposed", CONTEXTS["intervention-proposed"])
    assert proposed.title == (
        "[PMO] PMO expert proposed for Orion <customer> portal & more: schedule recovery"
    )
    assert "Expert: exp-ana." in proposed.text
    assert "Why: key project red; SPI 0.60 below 0.90" in proposed.text
    ended = catalog.render("slack", "intervention-ended", CONTEXTS["intervention-ended"])
    assert "Expert exp-ana is released." in ended.text


@pytest.fixture(scope="module")
def catalog() -> TemplateCatalog:
    return TemplateCatalog(REGISTRY)


@pytest.mark.parametrize("channel", sorted(BLOCKS))
@pytest.mark.parametrize("notice_type", [*NOTICE_TYPES, SUMMARY_TYPE])
def test_every_notice_renders_on_every_channel(
    catalog: TemplateCatalog, channel: str, notice_type: str
) -> None:
    message = catalog.render(channel, notice_type, CONTEXTS[notice_type])
    assert message.title
    assert "\n" not in message.title
    if channel != "webhook":
        assert message.text.strip()
    if channel == "email":
        assert message.html is not None
        assert message.html.lstrip().startswith("<!DOCTYPE html>")


def test_the_at_risk_email_names_the_project_reasons_numbers_and_links_it(
    catalog: TemplateCatalog,
) -> None:
    message = catalog.render("email", "project-at-risk", CONTEXTS["project-at-risk"])
    assert message.title == "[PMO RED] Orion <customer> portal & more is at risk"
    assert "Schedule: SPI 0.60 below 0.90 (SPI 0.60, threshold 0.90)" in message.text
    assert "threshold n/a" in message.text
    assert f"{REGISTRY}/projects/PRJ-ORION" in message.text
    assert message.html is not None
    # The HTML part escapes what came from events; the text part keeps it as written.
    assert "Orion &lt;customer&gt; portal &amp; more" in message.html
    assert "<customer>" not in message.html
    assert f'href="{REGISTRY}/projects/PRJ-ORION"' in message.html
    assert "<strong>Schedule</strong>" in message.html


def test_slack_messages_escape_event_text_but_keep_their_own_formatting(
    catalog: TemplateCatalog,
) -> None:
    message = catalog.render("slack", "project-at-risk", CONTEXTS["project-at-risk"])
    assert "*Orion &lt;customer&gt; portal &amp; more*" in message.text
    assert "• *Schedule*: SPI 0.60 below 0.90" in message.text
    payload = slack_payload(message, catalog.project_link("PRJ-ORION"))
    assert payload["text"] == message.title
    assert [block["type"] for block in payload["blocks"]] == ["header", "section", "context"]
    assert payload["blocks"][2]["elements"][0]["text"] == (
        f"<{REGISTRY}/projects/PRJ-ORION|Open in the PMO dashboard>"
    )
    json.dumps(payload)  # what is POSTed


def test_the_digest_email_has_every_running_project_as_html_and_as_plain_text(
    catalog: TemplateCatalog,
) -> None:
    message = catalog.render("email", "portfolio-digest", CONTEXTS["portfolio-digest"])
    email = email_message(
        Settings(smtp_from="PMO <pmo@example.com>"), "director@example.com", message, delivery_id=7
    )
    assert email.get_content_type() == "multipart/alternative"
    text = email.get_body(("plain",))
    html = email.get_body(("html",))
    assert text is not None
    assert html is not None
    plain = text.get_content()
    assert "2 running projects: 1 red, 0 amber, 1 green; 1.50 FTE short." in plain
    assert "Billing" in plain
    assert "on hold" in plain
    assert "on_hold" not in plain
    assert "Orion &lt;customer&gt; portal &amp; more" in html.get_content()
    assert "pmo-delivery-7" in email["Message-ID"]


def test_a_missing_template_is_an_error_not_an_empty_message(catalog: TemplateCatalog) -> None:
    import jinja2

    with pytest.raises(jinja2.TemplateNotFound):
        catalog.render("email", "no-such-notice", {})
    with pytest.raises(jinja2.UndefinedError):
        catalog.render("webhook", "project-at-risk", {"project": PROJECT})


# --- methodology notices: lessons learned suggested, gate reviews (issue 13.2) --------------------

CONTEXTS.update(
    {
        "lessons-suggested": {
            "project": PROJECT,
            "projects": {"PRJ-APOLLO": "Apollo <billing> rewrite"},
            "event": event(
                "lessons-suggested",
                {
                    "project_id": "PRJ-ORION",
                    "manager": "ada@example.com",
                    "lessons": [
                        {
                            "lesson_id": 7,
                            "project_id": "PRJ-APOLLO",
                            "title": "Freeze the scope before the <pilot>",
                            "similarity": ["business_unit", "objectives"],
                        },
                        {
                            "lesson_id": 9,
                            "project_id": "PRJ-GONE",
                            "title": "Book the test lab early",
                            "similarity": ["methodology"],
                        },
                    ],
                },
            ),
        },
        "gate-reviewed": {
            "project": PROJECT,
            "event": event(
                "gate-reviewed",
                {
                    "project_id": "PRJ-ORION",
                    "review_id": 3,
                    "from": "active",
                    "to": "on_hold",
                    "decision": "failed",
                    "reviewer": "grace.hopper",
                    "reviewed_at": "2026-11-26T10:00:00+00:00",
                    "deliverables": [
                        {
                            "name": "business_case",
                            "evidence": "https://docs.example.com/bc-orion",
                            "submitted_by": "ada",
                            "submitted_at": "2026-11-25T09:00:00+00:00",
                        }
                    ],
                    "evidence": "The risk register is missing",
                    "methodology": "waterfall",
                },
            ),
        },
    }
)


def test_the_lessons_notice_lists_each_lesson_where_it_comes_from_and_why_with_the_link() -> None:
    catalog = TemplateCatalog(REGISTRY, dashboard_url="https://pmo.example.com/dashboard")
    context = CONTEXTS["lessons-suggested"]
    email = catalog.render("email", "lessons-suggested", context)
    assert email.title == (
        "[PMO] 2 lessons learned for Orion <customer> portal & more from similar projects"
    )
    assert "- Freeze the scope before the <pilot>\n" in email.text
    assert (
        "from Apollo <billing> rewrite (PRJ-APOLLO): the same business unit and shared objectives"
    ) in email.text
    assert "- Book the test lab early\n  from PRJ-GONE: the same methodology" in email.text
    assert "https://pmo.example.com/dashboard/projects/PRJ-ORION" in email.text
    assert email.html is not None
    assert "<strong>Freeze the scope before the &lt;pilot&gt;</strong>" in email.html
    assert 'href="https://pmo.example.com/dashboard/projects/PRJ-ORION"' in email.html
    slack = catalog.render("slack", "lessons-suggested", context)
    assert "*Freeze the scope before the &lt;pilot&gt;*, from Apollo &lt;billing&gt;" in slack.text
    one = copy.deepcopy(context)
    del one["event"]["data"]["lessons"][1]
    assert catalog.render("webhook", "lessons-suggested", one).title == (
        "1 lesson learned from similar projects for Orion <customer> portal & more"
    )


def test_the_gate_review_notice_says_the_decision_reviewer_and_evidence() -> None:
    catalog = TemplateCatalog(REGISTRY)
    failed = CONTEXTS["gate-reviewed"]
    email = catalog.render("email", "gate-reviewed", failed)
    assert email.title == (
        "[PMO] Orion <customer> portal & more failed the gate from active to on hold"
    )
    assert (
        "grace.hopper reviewed the gate of Orion <customer> portal & more (PRJ-ORION) from active"
        " to on hold (waterfall stage model) on Thu 26 Nov 2026 10:00 UTC: failed."
    ) in email.text
    assert "cannot move to on hold until a review of this gate passes" in email.text
    assert "Reviewer's evidence: The risk register is missing" in email.text
    assert (
        "- business case: https://docs.example.com/bc-orion (submitted by ada, "
        "Wed 25 Nov 2026 09:00 UTC)"
    ) in email.text
    passed = copy.deepcopy(failed)
    passed["event"]["data"] |= {"decision": "passed", "deliverables": [], "evidence": None}
    slack = catalog.render("slack", "gate-reviewed", passed)
    assert slack.title.startswith(":white_check_mark:")
    assert "*passed*" in slack.text
    assert "The project may now move to on hold." in slack.text
    assert "Reviewer's evidence: none given" in slack.text
    assert "No deliverables were submitted." in slack.text
    assert catalog.render("webhook", "gate-reviewed", passed).title == (
        "Orion <customer> portal & more: gate active -> on hold passed (grace.hopper)"
    )


def test_compiled_notices_render_without_reading_their_files_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fresh = TemplateCatalog(REGISTRY)
    fresh.compile(["project-at-risk", "no-such-notice"])  # a type with no template is skipped

    def unreadable(*_: Any) -> Any:
        raise AssertionError("a template was read after compile()")

    for environment in fresh._environments.values():
        assert environment.loader is not None
        monkeypatch.setattr(environment.loader, "get_source", unreadable)
    for channel in BLOCKS:
        assert fresh.render(channel, "project-at-risk", CONTEXTS["project-at-risk"]).title
    with pytest.raises(AssertionError, match="read after compile"):
        fresh.render("webhook", "project-recovered", CONTEXTS["project-recovered"])
