"""Local time and business days (engine.calendars), and the CEL functions built on them: pure, no Temporal."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from engine import calendars
from engine.expressions import ExpressionError, evaluate

NY = "America/New_York"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def test_nine_local_on_the_days_clocks_change_in_new_york():
    # 2026-03-08: clocks go forward at 02:00 (EST -5 → EDT -4); 2026-11-01: back at 02:00.
    assert calendars.at_local(utc(2026, 3, 7, 15), "09:00", NY) == utc(2026, 3, 7, 14)
    assert calendars.at_local(utc(2026, 3, 8, 15), "09:00", NY) == utc(2026, 3, 8, 13)
    assert calendars.at_local(utc(2026, 11, 1, 15), "09:00", NY) == utc(2026, 11, 1, 14)
    assert calendars.at_local(utc(2026, 10, 31, 15), "09:00", NY) == utc(2026, 10, 31, 13)


def test_a_time_that_does_not_exist_moves_forward_and_a_repeated_one_is_the_first():
    # 02:30 does not happen on 2026-03-08 in New York: it is read as 03:30 EDT.
    assert calendars.at_local(utc(2026, 3, 8, 12), "02:30", NY) == utc(2026, 3, 8, 7, 30)
    # 01:30 happens twice on 2026-11-01: the first one, still EDT.
    assert calendars.at_local(utc(2026, 11, 1, 12), "01:30", NY) == utc(2026, 11, 1, 5, 30)


def test_next_local_is_today_or_tomorrow_across_the_change():
    # 23:00 EST on 2026-03-07 is 04:00Z on the 8th; the next 09:00 is that day's, in EDT.
    assert calendars.next_local(utc(2026, 3, 8, 4), "09:00", NY) == utc(2026, 3, 8, 13)
    assert calendars.next_local(utc(2026, 3, 8, 13), "09:00", NY) == utc(2026, 3, 8, 13)  # at it: itself
    assert calendars.next_local(utc(2026, 3, 8, 13, 1), "09:00", NY) == utc(2026, 3, 9, 13)


def test_business_days_skip_weekends_and_the_calendars_holidays():
    # Independence Day 2026 is a Saturday, observed on Friday July 3 in the US.
    thursday = utc(2026, 7, 2, 15)
    assert calendars.add_business_days(thursday, 1, "US") == utc(2026, 7, 6, 15)
    assert calendars.add_business_days(thursday, 2, "US") == utc(2026, 7, 7, 15)
    # In Germany July 3 is an ordinary Friday.
    assert calendars.add_business_days(thursday, 1, "DE") == utc(2026, 7, 3, 15)
    assert calendars.add_business_days(utc(2026, 7, 6, 15), -1, "US") == utc(2026, 7, 2, 15)
    assert calendars.add_business_days(thursday, 0, "US") == thursday


def test_a_subdivisions_own_holiday_counts_only_there():
    # Epiphany (Jan 6) is a holiday in Bavaria, not in Berlin.
    monday = utc(2026, 1, 5, 9)
    assert calendars.add_business_days(monday, 1, "DE-BY") == utc(2026, 1, 7, 9)
    assert calendars.add_business_days(monday, 1, "DE-BE") == utc(2026, 1, 6, 9)
    assert calendars.holiday(date(2026, 1, 6), "DE-BY")


def test_business_days_count_local_dates():
    # 03:00Z on Monday July 6 is still Sunday evening in New York.
    sunday_evening = utc(2026, 7, 6, 3)
    assert not calendars.is_business_day(sunday_evening, "US", NY)
    assert calendars.is_business_day(sunday_evening, "US")
    assert calendars.next_business_day(sunday_evening, "US", NY) == utc(2026, 7, 7, 3)  # Monday 23:00 EDT


def test_next_business_day_of_a_holiday_and_of_a_business_day():
    new_year = utc(2027, 1, 1, 10)  # a Friday and a holiday
    assert calendars.next_business_day(new_year, "US") == utc(2027, 1, 4, 10)
    assert calendars.next_business_day(utc(2027, 1, 4, 10), "US") == utc(2027, 1, 4, 10)


@pytest.mark.parametrize("name, problem", [
    ("XX", "'XX' is not a country code"),
    ("US-ZZ", "'ZZ' is not a subdivision of US"),
    ("", "no holiday calendar"),
])
def test_unknown_calendars_say_what_is_wrong(name, problem):
    assert problem in (calendars.calendar_problem(name) or "")


def test_business_day_spans():
    assert calendars.business_days("2 business days") == 2
    assert calendars.business_days("1 business day") == 1
    assert calendars.business_days("2d") is None
    assert calendars.business_days("days(2)") is None


# ---------------------------------------------------------------- business hours

BERLIN, CAIRO = "Europe/Berlin", "Africa/Cairo"
OFFICE = ("08:00", "17:00")


@pytest.mark.parametrize("why, created, hours, calendar, zone_name, window, due", [
    # Friday 16:00 CET: one hour on Friday, three on Monday.
    ("across a weekend", utc(2026, 1, 9, 15), 4, "DE-BY", BERLIN, OFFICE, utc(2026, 1, 12, 10)),
    # Friday 16:00 EDT before Memorial Day (Monday May 25): Tuesday 11:00.
    ("across a weekend and a Monday holiday", utc(2026, 5, 22, 20), 4, "US", NY, OFFICE, utc(2026, 5, 26, 15)),
    ("on a Saturday: from Monday's opening", utc(2026, 1, 10, 9), 1, "DE-BY", BERLIN, OFFICE, utc(2026, 1, 12, 8)),
    ("before the opening", utc(2026, 1, 12, 5), 2, "DE-BY", BERLIN, OFFICE, utc(2026, 1, 12, 9)),
    ("after the close", utc(2026, 1, 12, 17), 1, "DE-BY", BERLIN, OFFICE, utc(2026, 1, 13, 8)),
    # Friday 16:30: half an hour left on Friday, half an hour on Monday.
    ("inside the last hour", utc(2026, 1, 9, 15, 30), 1, "DE-BY", BERLIN, OFFICE, utc(2026, 1, 12, 7, 30)),
    ("ending exactly at the close", utc(2026, 1, 9, 15), 1, "DE-BY", BERLIN, OFFICE, utc(2026, 1, 9, 16)),
    ("a whole day's window", utc(2026, 1, 12, 7), 9, "DE-BY", BERLIN, OFFICE, utc(2026, 1, 12, 16)),
    ("one more than the window", utc(2026, 1, 12, 7), 10, "DE-BY", BERLIN, OFFICE, utc(2026, 1, 13, 8)),
    # Friday March 6 16:00 EST (-5); clocks go forward on Sunday: Monday 09:00 is EDT (-4).
    ("across the weekend clocks change", utc(2026, 3, 6, 21), 2, "US", NY, OFFICE, utc(2026, 3, 9, 13)),
    # Cairo moves its clocks forward at midnight on Friday April 24 2026, a business day of a
    # Monday-Friday calendar: the 00:00-24:00 window counts 24 wall-clock hours that day, 23
    # elapsed. Thursday 22:00 (+2) + 4: two hours on Thursday, then 02:00 (+3) on Friday.
    ("on the weekday clocks change", utc(2026, 4, 23, 20), 4, "US", CAIRO, ("00:00", "24:00"),
     utc(2026, 4, 23, 23)),
    # Due at 00:30 on that Friday, which does not exist: read with the offset before (01:30 +3).
    ("due in the skipped hour", utc(2026, 4, 23, 21, 30), 1, "US", CAIRO, ("00:00", "24:00"),
     utc(2026, 4, 23, 22, 30)),
    ("to midnight", utc(2026, 1, 12, 23), 2, "DE", "UTC", ("00:00", "24:00"), utc(2026, 1, 13, 1)),
    ("zero inside the window is now", utc(2026, 1, 12, 10), 0, "DE-BY", BERLIN, OFFICE, utc(2026, 1, 12, 10)),
    ("zero outside is the next opening", utc(2026, 1, 10, 10), 0, "DE-BY", BERLIN, OFFICE, utc(2026, 1, 12, 7)),
    # 2,000 hours of 9-hour days from Monday's opening: 222 whole days and 2 hours of the 223rd,
    # six weekday holidays of Bavaria skipped (Good Friday ... Corpus Christi): Nov 26, 10:00 CET.
    ("a large count", utc(2026, 1, 12, 7), 2000, "DE-BY", BERLIN, OFFICE, utc(2026, 11, 26, 9)),
])
def test_business_hours_count_only_the_window_on_business_days(why, created, hours, calendar, zone_name,
                                                               window, due):
    assert calendars.add_business_hours(created, hours, calendar, zone_name, *window) == due, why


def test_a_large_count_of_business_hours_agrees_with_counting_days():
    # 9 hours a day from an opening: N * 9 hours are N - 1 business days later, at the close.
    monday = utc(2026, 1, 12, 7)
    for days in (1, 5, 40, 400):
        assert calendars.add_business_hours(monday, days * 9, "DE-BY", BERLIN, *OFFICE) == \
            calendars.at_local(calendars.add_business_days(monday, days - 1, "DE-BY", BERLIN), "17:00", BERLIN)


def test_business_hours_are_bounded():
    assert calendars.business_hours_limit(*OFFICE) == calendars.MAX_BUSINESS_HOURS
    assert calendars.business_hours_limit("09:00", "10:00") == calendars.MAX_BUSINESS_DAYS
    monday = utc(2026, 1, 12, 7)
    calendars.add_business_hours(monday, calendars.MAX_BUSINESS_HOURS, "DE-BY", BERLIN, *OFFICE)
    with pytest.raises(calendars.CalendarError, match="is not between 0 and 20000"):
        calendars.add_business_hours(monday, calendars.MAX_BUSINESS_HOURS + 1, "DE-BY", BERLIN, *OFFICE)
    with pytest.raises(calendars.CalendarError, match="take more than 2600 business days"):
        calendars.add_business_hours(monday, 5000, "DE-BY", BERLIN, "09:00", "10:00")
    with pytest.raises(calendars.CalendarError, match="must open before they close"):
        calendars.add_business_hours(monday, 1, "DE-BY", BERLIN, "17:00", "08:00")


def test_business_hour_spans():
    assert calendars.business_hours("4 business hours") == 4
    assert calendars.business_hours(" 1 business hour ") == 1
    assert calendars.business_hours("4h") is None
    assert calendars.business_hours("4 business days") is None
    assert calendars.business_hours("4 business minutes") is None


# ---------------------------------------------------------------- as CEL functions


def test_the_functions_in_expressions():
    names = {"now": utc(2026, 3, 8, 5), "customer": {"timezone": NY, "calendar": "US-NY"}}
    assert evaluate("at_local(now, '09:00', customer.timezone)", names) == utc(2026, 3, 8, 13)
    assert evaluate("next_local(now, '09:00', customer.timezone)", names) == utc(2026, 3, 8, 13)
    assert evaluate("add_business_days(now, 2, customer.calendar)", names) == utc(2026, 3, 10, 5)
    assert evaluate("add_business_days(now, 1, customer.calendar, customer.timezone)", names) == utc(2026, 3, 9, 4)  # same local clock, EDT now
    assert evaluate("next_business_day(now, 'US', customer.timezone)", names) == utc(2026, 3, 9, 4)
    assert evaluate("is_business_day(now, 'US')", names) is False


@pytest.mark.parametrize("source, message", [
    ("at_local(now, '09:00', 'Mars/Olympus')", "unknown time zone 'Mars/Olympus'"),
    ("at_local(now, '9 am', 'UTC')", "'9 am' is not a clock time"),
    ("add_business_days(now, 2, 'XX')", "unknown holiday calendar 'XX'"),
    ("add_business_days(now, 100000, 'US')", "more than 2600"),
])
def test_a_bad_argument_fails_with_the_reason(source, message):
    with pytest.raises(ExpressionError, match=message):
        evaluate(source, {"now": utc(2026, 3, 8, 5)})


def test_the_checker_knows_the_functions(ws):
    ws.sale("""\
      - kind: wait
        until: at_local(now, 9, customer.timezone)
    """)
    assert ws.errors() == ["p/sale.yaml:4:20: at_local() cannot take (timestamp, int, string)"]
    ws.sale("""\
      - kind: wait
        until: add_business_days(at_local(now, '09:00', customer.timezone), 2, customer.calendar)
    """)
    ws.load()
