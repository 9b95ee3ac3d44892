"""Local time and business days: time zones (zoneinfo, IANA names) and holiday calendars.

Pure functions of their arguments, so the CEL functions of engine.expressions, the contact
policy (engine.policy) and the task deadlines all compute the same thing, in a workflow, in
the simulator and at load time. Zone data comes from zoneinfo (the `tzdata` package where the
system has none); holidays from the `holidays` package, which ships its rules as code (no I/O).

A calendar is named by an ISO 3166 country code, optionally with a subdivision after a dash:
`US`, `US-NY`, `DE-BY`. Its business days are Monday to Friday except its public holidays.
Business hours are a daily window (08:00-17:00) on those days, counted on the wall clock.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

MAX_BUSINESS_DAYS = 2600  # about ten years: a bound, so a wrong number cannot loop for long
MAX_BUSINESS_HOURS = 20000  # about ten years of eight-hour days, for the same reason
_BUSINESS_DAYS = re.compile(r"^\s*(\d{1,4})\s+business\s+days?\s*$")
_BUSINESS_HOURS = re.compile(r"^\s*(\d{1,5})\s+business\s+hours?\s*$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class CalendarError(ValueError):
    """An unknown zone, calendar or clock time; the message says which and what is allowed."""


# ---------------------------------------------------------------- zones and clock times


@lru_cache(maxsize=512)
def zone(name: str | None) -> ZoneInfo:
    """The IANA zone `name` (e.g. America/New_York); raises CalendarError when unknown."""
    if not name:
        raise CalendarError("no time zone: set the customer's 'timezone' or the lifecycle's contact.timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CalendarError(f"unknown time zone '{name}' (an IANA name such as Europe/Berlin)") from None


def is_zone(name: str) -> bool:
    """Whether `name` is an IANA time zone this machine knows."""
    try:
        zone(name)
    except CalendarError:
        return False
    return True


def clock(text: str) -> time:
    """A clock time written HH:MM (24 hours, e.g. 08:00, 21:30); 24:00 means the end of the day."""
    if text == "24:00":
        return time(23, 59, 59, 999999)
    match = _CLOCK.match(text) if isinstance(text, str) else None
    if match is None:
        raise CalendarError(f"'{text}' is not a clock time: write HH:MM, e.g. 08:00 or 21:30")
    return time(int(match.group(1)), int(match.group(2)))


def local(moment: datetime, zone_name: str) -> datetime:
    """`moment` as a wall-clock time in `zone_name`."""
    return moment.astimezone(zone(zone_name))


def at_local_date(day: date, at: time, zone_name: str) -> datetime:
    """The instant (UTC) when the clock in `zone_name` shows `at` on `day`.

    On the day clocks go forward a time in the gap does not exist: it is read with the offset
    before the change, so 02:30 becomes 03:30. On the day they go back, an hour that happens
    twice means its first occurrence.
    """
    wall = datetime.combine(day, at, tzinfo=zone(zone_name))
    return wall.astimezone(timezone.utc)


def at_local(moment: datetime, hhmm: str, zone_name: str) -> datetime:
    """The instant at clock time `hhmm` on the local date of `moment` in `zone_name`."""
    return at_local_date(local(moment, zone_name).date(), clock(hhmm), zone_name)


def next_local(moment: datetime, hhmm: str, zone_name: str) -> datetime:
    """The first instant at or after `moment` when the clock in `zone_name` shows `hhmm`."""
    candidate = at_local(moment, hhmm, zone_name)
    day = local(moment, zone_name).date()
    while candidate < moment:
        day += timedelta(days=1)
        candidate = at_local_date(day, clock(hhmm), zone_name)
    return candidate


# ---------------------------------------------------------------- holiday calendars


def _split(name: str) -> tuple[str, str | None]:
    country, _, subdivision = name.partition("-")
    return country.upper(), (subdivision.upper() or None)


def calendar_problem(name: str) -> str | None:
    """Why `name` is not a holiday calendar (None when it is one)."""
    if not isinstance(name, str) or not name:
        return "no holiday calendar: set the customer's 'calendar' or the lifecycle's contact.calendar"
    country, subdivision = _split(name)
    supported = holidays.list_supported_countries()
    if country not in supported:
        return f"unknown holiday calendar '{name}': '{country}' is not a country code the holidays package knows"
    if subdivision is not None and subdivision not in supported[country]:
        known = ", ".join(supported[country][:12]) + (" ..." if len(supported[country]) > 12 else "")
        return f"unknown holiday calendar '{name}': '{subdivision}' is not a subdivision of {country}" \
               f"{' (' + known + ')' if known else ' (it has none)'}"
    return None


@lru_cache(maxsize=64)
def _calendar(name: str) -> holidays.HolidayBase:
    problem = calendar_problem(name)
    if problem:
        raise CalendarError(problem)
    country, subdivision = _split(name)
    entity = getattr(holidays, country).get_entity()  # the class itself, not its lazy loader

    class Dates(entity):  # type: ignore[misc, valid-type]
        """The entity's holidays without translated names: gettext would read the process's
        locale and files (non-deterministic, and refused inside a workflow); only dates count here."""

        def _init_translation(self) -> None:
            self.tr = str

    return Dates(subdiv=subdivision)


def holiday(day: date, calendar: str) -> str | None:
    """The name of the public holiday on `day` in `calendar`, or None."""
    return _calendar(calendar).get(day)


def is_business_date(day: date, calendar: str) -> bool:
    """Monday to Friday and not a public holiday of `calendar`."""
    return day.weekday() < 5 and day not in _calendar(calendar)


def _day_of(moment: datetime, zone_name: str | None) -> tuple[date, ZoneInfo | timezone]:
    tz: ZoneInfo | timezone = zone(zone_name) if zone_name else timezone.utc
    return moment.astimezone(tz).date(), tz


def _same_clock(moment: datetime, day: date, tz: ZoneInfo | timezone) -> datetime:
    """`moment`'s wall-clock time (in `tz`) on `day`, as an instant."""
    wall = moment.astimezone(tz)
    return datetime.combine(day, wall.time(), tzinfo=tz).astimezone(timezone.utc)


def is_business_day(moment: datetime, calendar: str, zone_name: str | None = None) -> bool:
    """Whether the date of `moment` (in `zone_name`, UTC when none) is a business day."""
    day, _ = _day_of(moment, zone_name)
    return is_business_date(day, calendar)


def next_business_day(moment: datetime, calendar: str, zone_name: str | None = None) -> datetime:
    """`moment` itself when its date is a business day, else the same clock time on the next one."""
    day, tz = _day_of(moment, zone_name)
    if is_business_date(day, calendar):
        return moment
    while not is_business_date(day, calendar):
        day += timedelta(days=1)
    return _same_clock(moment, day, tz)


def add_business_days(moment: datetime, days: int, calendar: str, zone_name: str | None = None) -> datetime:
    """The same clock time `days` business days later (earlier when negative).

    Counting starts from the date of `moment` whatever it is: Friday + 1 is Monday, and
    Saturday + 1 is Monday too (the first business day after it). Zero gives `moment`.
    """
    if abs(days) > MAX_BUSINESS_DAYS:
        raise CalendarError(f"{days} business days is more than {MAX_BUSINESS_DAYS} (about ten years)")
    day, tz = _day_of(moment, zone_name)
    step = 1 if days >= 0 else -1
    for _ in range(abs(days)):
        day += timedelta(days=step)
        while not is_business_date(day, calendar):
            day += timedelta(days=step)
    return moment if days == 0 else _same_clock(moment, day, tz)


def business_days(text: object) -> int | None:
    """The count in a span written `2 business days` (or `1 business day`); None for anything else."""
    match = _BUSINESS_DAYS.match(text) if isinstance(text, str) else None
    return int(match.group(1)) if match else None


def business_hours(text: object) -> int | None:
    """The count in a span written `4 business hours` (or `1 business hour`); None for anything else."""
    match = _BUSINESS_HOURS.match(text) if isinstance(text, str) else None
    return int(match.group(1)) if match else None


def _since_midnight(hhmm: str) -> timedelta:
    """A clock time as the wall-clock time since midnight (24:00 is a whole day, not 23:59:59)."""
    if hhmm == "24:00":
        return timedelta(hours=24)
    at = clock(hhmm)
    return timedelta(hours=at.hour, minutes=at.minute)


def business_hours_limit(opens: str, closes: str) -> int:
    """The most business hours a window counts: MAX_BUSINESS_HOURS, or fewer when MAX_BUSINESS_DAYS
    days of a short window hold fewer."""
    per_day = (_since_midnight(closes) - _since_midnight(opens)) / timedelta(hours=1)
    return min(MAX_BUSINESS_HOURS, int(per_day * MAX_BUSINESS_DAYS))


def add_business_hours(moment: datetime, hours: int, calendar: str, zone_name: str, opens: str,
                       closes: str) -> datetime:
    """The instant `hours` business hours after `moment`: only the time inside the daily window
    `opens`-`closes` (HH:MM, in `zone_name`) of business days of `calendar` counts.

    Time before the window, after it, on weekends and on holidays does not count: Friday 16:00 +
    4 hours of 08:00-17:00 is Monday 11:00, and Saturday 10:00 + 1 is Monday 09:00. A count that
    ends exactly at the close is due at the close (16:00 + 1 is 17:00 the same day). Hours are
    wall-clock hours of the window, so on a day the clocks change the window is as long as it
    says (08:00-17:00 is nine hours) whatever the offset did at night; a due time that falls in
    the hour skipped when clocks go forward is read as at_local_date reads it (02:30 is 03:30).
    """
    if hours < 0 or hours > MAX_BUSINESS_HOURS:
        raise CalendarError(f"{hours} business hours is not between 0 and {MAX_BUSINESS_HOURS} (about ten years)")
    start_of, end_of = _since_midnight(opens), _since_midnight(closes)
    if start_of >= end_of:
        raise CalendarError(f"the business hours {opens}-{closes} must open before they close")
    tz = zone(zone_name)
    wall = moment.astimezone(tz)
    day = wall.date()
    at = wall.replace(tzinfo=None) - datetime.combine(day, time(0))  # wall-clock time since midnight
    left = timedelta(hours=hours)
    days_used = 0
    for _ in range(MAX_BUSINESS_DAYS * 2 + 400):  # weekends and holidays included: a bound, never reached
        if is_business_date(day, calendar):
            begin = max(at, start_of)
            if begin < end_of and left <= end_of - begin:
                wall_due = datetime.combine(day, time(0)) + begin + left
                return wall_due.replace(tzinfo=tz).astimezone(timezone.utc)
            if begin < end_of:
                left -= end_of - begin
            days_used += 1
            if days_used > MAX_BUSINESS_DAYS + 1:  # + 1: the first one may have been partly gone
                break
        day += timedelta(days=1)
        at = timedelta(0)
    raise CalendarError(f"{hours} business hours of {opens}-{closes} take more than {MAX_BUSINESS_DAYS} "
                        f"business days (about ten years)")
