"""The working-hours calculator behind the support SLA (bot/workhours.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.workhours import WorkCalendar, WorkHoursError

VN = ZoneInfo("Asia/Ho_Chi_Minh")
OFFICE = "Mon-Fri 07:30-11:30,13:30-17:00"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A local time in December 2026 (the 1st is a Tuesday)."""
    return datetime(2026, 12, day, hour, minute, tzinfo=VN)


def local(moment: datetime) -> str:
    return moment.astimezone(VN).strftime("%a %d %H:%M")


@pytest.mark.parametrize(
    ("start", "hours", "due"),
    [
        (at(1, 8), 2, "Tue 01 10:00"),  # inside the morning
        (at(1, 10), 4, "Tue 01 16:00"),  # across lunch: 1:30 before, 2:30 after
        (at(1, 12), 1, "Tue 01 14:30"),  # sent at lunch: the clock starts at 13:30
        (at(1, 6), 1, "Tue 01 08:30"),  # sent before work
        (at(1, 18), 1, "Wed 02 08:30"),  # sent after work
        (at(4, 16), 4, "Mon 07 10:30"),  # Friday afternoon: over the weekend
        (at(5, 9), 4, "Mon 07 11:30"),  # sent on Saturday
        (at(1, 10), 0, "Tue 01 10:00"),  # no SLA at all
        (at(1, 10), 1.5, "Tue 01 11:30"),  # exactly to the end of a window
        (at(1, 7, 30), 7.5, "Tue 01 17:00"),  # a full working day
        (at(1, 7, 30), 7.5 * 5 + 1, "Tue 08 08:30"),  # a full working week
    ],
)
def test_office_hours(start: datetime, hours: float, due: str) -> None:
    calendar = WorkCalendar.parse(OFFICE, tz=VN)
    assert local(calendar.add(start, timedelta(hours=hours))) == due


def test_holidays_are_skipped() -> None:
    calendar = WorkCalendar.parse(OFFICE, "2026-12-02, 2026-12-03", VN)
    assert local(calendar.add(at(1, 16), timedelta(hours=4))) == "Fri 04 10:30"
    assert calendar.between(at(1, 16), at(4, 10, 30)) == timedelta(hours=4)
    assert not calendar.is_working(at(2, 9)) and calendar.is_working(at(4, 9))


def test_tet_comes_from_the_public_calendar_and_local_days_are_added() -> None:
    """Tết 2027 (lunar new year, 6 February) is known without anyone typing it in."""
    calendar = WorkCalendar.parse(OFFICE, "2027-02-11", VN, country="VN")
    friday_before = datetime(2027, 2, 5, 16, 0, tzinfo=VN)  # Lunar New Year's Eve: a day off
    assert calendar.is_holiday(friday_before.date())
    due = calendar.add(datetime(2027, 2, 3, 16, 0, tzinfo=VN), timedelta(hours=4))
    # Wed 3 Feb 16:00 + 1 h, then Thu 4 (29 Tết) .. Wed 10 off, Thu 11 a local day off: Fri 12
    assert due == datetime(2027, 2, 12, 10, 30, tzinfo=VN)
    without = WorkCalendar.parse(OFFICE, tz=VN)
    assert not without.is_holiday(friday_before.date())


def test_a_country_without_a_calendar_is_explained() -> None:
    with pytest.raises(WorkHoursError, match="no public holiday calendar"):
        WorkCalendar.parse(OFFICE, tz=VN, country="XX")


def test_always_open() -> None:
    calendar = WorkCalendar.parse("24/7", "2026-12-02", VN)
    start = at(5, 23)  # Saturday night
    assert calendar.add(start, timedelta(hours=4)) == start + timedelta(hours=4)
    assert calendar.between(start, start + timedelta(hours=3)) == timedelta(hours=3)
    assert calendar.is_working(at(2, 3))  # holidays do not apply to 24/7


def test_several_groups_and_saturday_morning() -> None:
    calendar = WorkCalendar.parse("Mon-Fri 07:30-17:00; Sat 07:30-11:30", tz=VN)
    assert local(calendar.add(at(4, 16), timedelta(hours=3))) == "Sat 05 09:30"
    assert local(calendar.add(at(5, 11), timedelta(hours=1))) == "Mon 07 08:00"


def test_between_counts_only_working_time() -> None:
    calendar = WorkCalendar.parse(OFFICE, tz=VN)
    assert calendar.between(at(1, 10), at(1, 16)) == timedelta(hours=4)
    assert calendar.between(at(4, 16), at(7, 10, 30)) == timedelta(hours=4)
    assert calendar.between(at(1, 16), at(1, 10)) == timedelta(0)


def test_result_is_utc_and_inputs_in_any_zone_work() -> None:
    calendar = WorkCalendar.parse(OFFICE, tz=VN)
    start = at(1, 10).astimezone(UTC)
    due = calendar.add(start, timedelta(hours=1))
    assert due.tzinfo == UTC and local(due) == "Tue 01 11:00"


def test_midnight_end() -> None:
    calendar = WorkCalendar.parse("Mon-Sun 20:00-24:00", tz=VN)
    assert local(calendar.add(at(1, 23), timedelta(hours=2))) == "Wed 02 21:00"


@pytest.mark.parametrize(
    ("spec", "holidays", "problem"),
    [
        ("Mon-Fri", "", "needs days and spans"),
        ("Mon-Fru 07:30-11:30", "", "not a day"),
        ("Fri-Mon 07:30-11:30", "", "runs backwards"),
        ("Mon-Fri 7h30-11h30", "", "not a span"),
        ("Mon-Fri 11:30-07:30", "", "ends before it starts"),
        ("Mon-Fri 25:00-26:00", "", "not a time of day"),
        ("Mon-Fri 07:30-12:00,11:00-17:00", "", "overlap"),
        ("Mon-Fri 07:30-11:30; Fri 13:00-17:00", "", "appears twice"),
        ("", "", "no working time"),
        (OFFICE, "2026-02-30", "not a date"),
    ],
)
def test_bad_settings_are_explained(spec: str, holidays: str, problem: str) -> None:
    with pytest.raises(WorkHoursError, match=problem):
        WorkCalendar.parse(spec, holidays, VN)
