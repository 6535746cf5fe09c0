"""Messages rendered from the Jinja2 templates under `services/notifications/templates/`.

One template per notice type and channel: `templates/<channel>/<notice-type>.j2`. Each defines
the blocks its channel needs: `title` (every channel: e-mail subject, Slack header, webhook
`title`), `text` and `html` (e-mail: the plain-text and HTML parts), `body` (Slack mrkdwn).
Shared pieces are partials (`_*.j2`) in each channel's folder; HTML partials end in `.html.j2`
and are autoescaped, as is each template's `html` block. Slack templates escape every value for
mrkdwn on output. The context a template sees is described by `DEFAULTS` and `render`; the
functions it may call (counts with the right noun, durations and reasons in words, figures with
their units) are in `wording`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from jinja2.utils import concat

from services.notifications.adapters.wording import TEMPLATE_GLOBALS

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

BLOCKS: dict[str, tuple[str, ...]] = {
    "email": ("title", "text", "html"),
    "slack": ("title", "body"),
    "webhook": ("title",),
}
"""The blocks each channel's templates must define."""


@dataclass(frozen=True)
class RenderedMessage:
    title: str
    text: str = ""
    """E-mail: the plain-text part; Slack: the mrkdwn body."""
    html: str | None = None


DEFAULTS: dict[str, Any] = {
    "event": None,  # {id, type, source, time, data}: the PMO event, for event notices
    "project": None,  # the project as notifications knows it (name, business_unit, ...)
    "projects": {},  # project id -> name, for events about several projects
    # {at_risk_since, at_risk_s, after_s, severity, reasons, metrics} (days_at_risk and
    # after_days in rows queued by earlier versions)
    "escalation": None,
    # {count, window_s, items: [{time, title, event_type, severity, reasons}]} (window_minutes
    # in rows queued by earlier versions)
    "summary": None,
    "digest": None,  # {slot_label, lines: [...], totals: {...}}
    "disabled": None,  # {subscription_id, name, channel, recipient, reason, at, delivery_id}
}


def _slack_escape(value: Any) -> str:
    # Slack's mrkdwn treats &, < and > as control characters (links, mentions): escape what
    # comes from events so a project named "<!channel>" cannot ping everyone.
    text = "" if value is None else str(value)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _current(context: Mapping[str, Any]) -> Mapping[str, Any]:
    """A context as today's templates read it, also from rows queued by an earlier version.

    Escalations once carried their durations as rounded days, summaries their window in
    minutes; the templates now take seconds (and say them in words).
    """
    escalation, summary = context.get("escalation"), context.get("summary")
    if isinstance(escalation, Mapping) and "at_risk_s" not in escalation:
        escalation = {
            **escalation,
            "at_risk_s": float(escalation.get("days_at_risk") or 0) * 86400,
            "after_s": float(escalation.get("after_days") or 0) * 86400,
        }
        context = {**context, "escalation": escalation}
    if isinstance(summary, Mapping) and "window_s" not in summary:
        summary = {**summary, "window_s": float(summary.get("window_minutes") or 0) * 60}
        context = {**context, "summary": summary}
    return context


class TemplateCatalog:
    """The templates of every channel, with the project link pointing at the project's page on
    the PMO dashboard (or, without a dashboard URL, at the registry API)."""

    def __init__(
        self, registry_url: str, directory: Path = TEMPLATES, *, dashboard_url: str | None = None
    ) -> None:
        self.registry_url = registry_url.rstrip("/")
        self.dashboard_url = dashboard_url.rstrip("/") if dashboard_url else None
        self._environments = {channel: self._environment(channel, directory) for channel in BLOCKS}

    def _environment(self, channel: str, directory: Path) -> jinja2.Environment:
        environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(directory / channel),
            undefined=jinja2.StrictUndefined,
            # HTML partials always; e-mail templates turn it on around their `html` block.
            autoescape=lambda name: name is not None and name.endswith(".html.j2"),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            # Slack: everything that comes from an event is escaped for mrkdwn on output.
            finalize=_slack_escape if channel == "slack" else None,
        )
        environment.globals.update(TEMPLATE_GLOBALS)
        environment.globals["project_link"] = self.project_link
        environment.globals["registry_url"] = self.registry_url
        return environment

    def project_link(self, project_id: str | None) -> str:
        """The project's dashboard page (`PMO_DASHBOARD_PUBLIC_URL`), the portfolio without one."""
        base = self.dashboard_url or self.registry_url
        if not project_id:
            return base
        return f"{base}/projects/{quote(project_id, safe='')}"

    def compile(self, notice_types: Iterable[str]) -> None:
        """Compile these notices' templates for every channel now, not at their first message.

        Jinja compiles a template when it is first asked for (on this machine 15-60 ms per
        channel for project-at-risk, with its includes); a delivery worker compiles the alerts'
        at start, so the first alert after a start is not the slowest. A notice type without
        a template in a channel is left to fail at render, as it would."""
        wanted = [f"{notice_type}.j2" for notice_type in notice_types]
        for environment in self._environments.values():
            # The partials (`_reasons`, heads and feet) too: an include is loaded at render.
            partials = environment.list_templates(filter_func=lambda name: name.startswith("_"))
            for name in [*partials, *wanted]:
                with contextlib.suppress(jinja2.TemplateNotFound):
                    environment.get_template(name)

    def render(self, channel: str, notice_type: str, context: Mapping[str, Any]) -> RenderedMessage:
        """Render the blocks of `<channel>/<notice_type>.j2`; template errors propagate."""
        template = self._environments[channel].get_template(f"{notice_type}.j2")
        variables = {**DEFAULTS, **_current(context)}
        project = variables["project"] or {}
        project_id = project.get("project_id") or variables.get("project_id")
        variables.setdefault("project_name", project.get("name") or project_id or "the portfolio")
        variables.setdefault("link", self.project_link(project_id))
        parts: dict[str, str] = {}
        for name in BLOCKS[channel]:
            block = template.blocks.get(name)
            if block is None:
                raise jinja2.TemplateError(
                    f"template {channel}/{notice_type}.j2 has no block {name!r}"
                )
            parts[name] = concat(block(template.new_context(variables))).strip()
        return RenderedMessage(
            title=" ".join(parts["title"].split()),
            text=parts.get("text") or parts.get("body") or "",
            html=parts.get("html"),
        )

    def title(self, channel: str, notice_type: str, context: Mapping[str, Any]) -> str:
        return self.render(channel, notice_type, context).title
