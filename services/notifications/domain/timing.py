"""The clocks of notifications: throttle windows, escalation deadlines, digest schedule slots."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError


class ScheduleError(ValueError):
    """The digest schedule or its time zone cannot be used; the message says which and why."""


def throttle_window(subscription_window_s: int | None, default: timedelta) -> timedelta:
    """A subscription's own window when it has one, else the service-wide setting."""
    if subscription_window_s is not None:
        return timedelta(seconds=subscription_window_s)
    return default


def time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ScheduleError(
            f"PMO_DIGEST_TIMEZONE {name!r} is not an IANA time zone (like Europe/Berlin)"
        ) from error


def check_schedule(schedule: str, zone: str) -> None:
    """Refuse a schedule that cannot work, at start rather than at the first slot."""
    tz = time_zone(zone)
    try:
        CronSim(schedule, datetime(2026, 1, 1, tzinfo=tz))
    except CronSimError as error:
        raise ScheduleError(
            f"PMO_DIGEST_SCHEDULE {schedule!r} is not a cron expression "
            f"(minute hour day month weekday, e.g. '0 8 * * MON'): {error}"
        ) from error


def due_slot(schedule: str, zone: str, *, now: datetime, catch_up: timedelta) -> datetime | None:
    """The schedule slot due at `now`: the latest firing time not after `now`, if it is at most
    `catch_up` old (a service that was down at 08:00 still sends at 09:00, not days later).

    Slots are computed in the schedule's time zone (08:00 stays 08:00 across daylight saving)
    and returned as aware datetimes, so every replica names a slot identically.
    """
    tz = time_zone(zone)
    local_now = now.astimezone(tz)
    # CronSim's reverse iteration starts strictly before its start: a slot firing exactly now
    # is found by starting one second later.
    previous = next(CronSim(schedule, local_now + timedelta(seconds=1), reverse=True))
    if local_now - previous > catch_up:
        return None
    return previous
