"""Figures, counts, durations and reasons in words, as every template says them.

"1 notification", "2 days", "1 hour and 30 minutes", "Overdue milestones", "forecast 12 days
late": templates call these (they are Jinja globals) instead of printing raw numbers, codes and
field names. Durations come from `humanize`; a count picks the singular or the plural noun.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import humanize


def number(value: Any, digits: int = 2) -> str:
    """Figures as a PMO reads them: 0.6 -> "0.60", 250000 -> "250,000", None -> "n/a"."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _quantity(value: float) -> str:
    """A count or an amount of days as written: 3 -> "3", 2.5 -> "2.5", 1234 -> "1,234"."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def noun(value: float, singular: str, plural: str | None = None) -> str:
    """The noun that goes with `value`: singular for exactly 1 (or -1), plural otherwise."""
    return singular if abs(value) == 1 else (plural or f"{singular}s")


def count(value: Any, singular: str, plural: str | None = None) -> str:
    """`value` with its noun: 1 -> "1 notification", 2 -> "2 notifications", 0 -> "0 …s"."""
    if value is None or not isinstance(value, int | float) or isinstance(value, bool):
        return f"an unknown number of {plural or singular + 's'}"
    return f"{_quantity(value)} {noun(value, singular, plural)}"


def duration(seconds: Any) -> str:
    """A duration in words, to the unit that matters for its size.

    Under a minute to the second, under a day to the minute, from a day on to the hour:
    60 -> "1 minute", 5400 -> "1 hour and 30 minutes", 172800 -> "2 days",
    622800 -> "7 days and 5 hours". Never "0.0 days": a duration rounds to its smallest unit
    and shows at least one of it (0.4 s is "1 second"; only 0 is "0 seconds").
    """
    if seconds is None or not isinstance(seconds, int | float) or not math.isfinite(seconds):
        return "an unknown time"
    seconds = max(float(seconds), 0.0)
    if seconds == 0:
        return "0 seconds"
    minimum, unit = (
        ("seconds", 1) if seconds < 60 else ("minutes", 60) if seconds < 86400 else ("hours", 3600)
    )
    rounded = max(round(seconds / unit), 1) * unit
    return humanize.precisedelta(timedelta(seconds=rounded), minimum_unit=minimum, format="%0.0f")


def when(value: Any) -> str:
    """An ISO 8601 time as people read it, in UTC: "Thu 19 Nov 2026 10:00 UTC"."""
    if not isinstance(value, str):
        return "an unknown time" if value is None else str(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%a %d %b %Y %H:%M UTC")


def words(code: Any) -> str:
    """A code as words: "on_hold" -> "on hold", "resource-conflict" -> "resource conflict"."""
    return "" if code is None else str(code).replace("_", " ").replace("-", " ")


REASONS: dict[str, str] = {
    "schedule": "schedule",
    "cost": "cost",
    "milestone_overdue": "overdue milestones",
    "stale_status": "no recent status report",
    "reported_red": "reported red by the project manager",
    "reported_amber": "reported amber by the project manager",
    "resource_shortfall": "resource shortfall",
}
"""Monitoring's reason codes (RiskReason.code) in words; another code reads as its words."""


def reason(code: Any) -> str:
    """A reason code in words, for a list: "milestone_overdue" -> "overdue milestones"."""
    return REASONS.get(str(code), words(code))


def reason_heading(code: Any) -> str:
    """A reason code in words as a heading: "stale_status" -> "No recent status report"."""
    said = reason(code)
    return said[:1].upper() + said[1:]


def reasons(found: Any) -> str:
    """Reasons (RiskReason dicts, or their codes) as a list in words: "schedule, cost"."""
    if not isinstance(found, list):
        return ""
    codes = [r.get("code") if isinstance(r, Mapping) else r for r in found]
    return ", ".join(reason(code) for code in codes if code)


SIMILARITY: dict[str, str] = {
    "business_unit": "the same business unit",
    "methodology": "the same methodology",
    "objectives": "shared objectives",
}
"""What a suggested lesson's project shares with the new one (SuggestedLesson.similarity)."""


def alike(shared: Any) -> str:
    """Why a lesson's project is similar, in words: ["business_unit", "objectives"] ->
    "the same business unit and shared objectives"; nothing known -> "similar"."""
    if not isinstance(shared, list) or not shared:
        return "similar"
    said = [SIMILARITY.get(str(code), words(code)) for code in shared]
    return said[0] if len(said) == 1 else f"{', '.join(said[:-1])} and {said[-1]}"


def _days(value: float) -> str:
    return count(value, "day")


def _index(value: float) -> str:
    return number(value)


def _money(value: float) -> str:
    return number(value, 0) if abs(value) < 1000 else number(value)


def _fte(value: float) -> str:
    return f"{value:g} FTE"


def _share(value: float) -> str:
    return f"{value:.0%}"


def _milestones(value: float) -> str:
    return count(value, "milestone")


FIGURES: dict[str, tuple[str, Callable[[float], str]]] = {
    "spi": ("SPI {}", _index),
    "spi_t": ("SPI(t) {}", _index),
    "cpi": ("CPI {}", _index),
    "tcpi": ("TCPI {}", _index),
    "threshold": ("threshold {}", _index),
    "green_from": ("green from {}", _index),
    "amber_from": ("amber from {}", _index),
    "tcpi_red_above": ("red above {}", _index),
    "hysteresis_margin": ("margin {}", _index),
    "es_days": ("earned schedule {}", _days),
    "at_days": ("actual time {}", _days),
    "sv_t_days": ("schedule variance {}", _days),
    "forecast_delay_days": ("forecast {} late", _days),
    "eac": ("EAC {}", _money),
    "vac": ("VAC {}", _money),
    "ac": ("AC {}", _money),
    "ev": ("EV {}", _money),
    "pv": ("PV {}", _money),
    "bac": ("BAC {}", _money),
    "overdue": ("{} overdue", _milestones),
    "most_days_overdue": ("the latest {} overdue", _days),
    "red_after_days": ("red after {} overdue", _days),
    "days_without_report": ("{} without a report", _days),
    "stale_after_days": ("stale after {}", _days),
    "fte_requested": ("{} requested", _fte),
    "fte_granted": ("{} granted", _fte),
    "fte_short": ("{} short", _fte),
    "shortfall_share": ("{} of the request short", _share),
}
"""The figures behind monitoring's reasons (RiskReason.numbers), with their units in words."""


def figure(name: str, value: Any) -> str:
    """One figure with its name and unit: ("forecast_delay_days", 12) -> "forecast 12 days late".

    A figure left undefined (null) reads "n/a"; an unknown one reads as its words and number.
    """
    label, say = FIGURES.get(name, (f"{words(name)} {{}}", _index))
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return label.format(number(value))
    if not math.isfinite(value):
        return label.format("n/a")
    return label.format(say(value))


def figures(numbers: Any) -> str:
    """A reason's figures in words, comma-separated: "SPI 0.60, threshold 0.90"."""
    if not isinstance(numbers, Mapping):
        return ""
    return ", ".join(figure(str(name), value) for name, value in numbers.items())


TEMPLATE_GLOBALS: dict[str, Any] = {
    "number": number,
    "count": count,
    "noun": noun,
    "duration": duration,
    "when": when,
    "words": words,
    "reason": reason,
    "reason_heading": reason_heading,
    "reason_list": reasons,
    "figures": figures,
    "alike": alike,
}
"""What every template may call."""
