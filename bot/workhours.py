"""Working time: when the support SLA clock runs.

``SOTAY_WORKING_HOURS`` is ``24/7`` (always) or groups separated by ``;``, each ``DAYS SPANS``:
DAYS is ``Mon-Fri``, ``Mon,Wed,Fri`` or ``Sat``; SPANS is ``07:30-11:30,13:30-17:00`` (local time,
``SOTAY_TIMEZONE``). Public holidays come from python-holidays for ``SOTAY_PUBLIC_HOLIDAYS``
(default ``VN``: it knows the lunar Tết of every year, and the substituted days off);
``SOTAY_HOLIDAYS`` adds local days off as a comma list of ``YYYY-MM-DD``. Both are ignored under
``24/7``. A deadline of "4 working hours" after Friday 16:00 therefore
falls on Monday morning, and lunch breaks do not count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cache

import holidays as public_holidays

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALWAYS = "24/7"
_SPAN = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_MAX_DAYS = 800  # a calendar with working time finds it within this many days (holidays aside)

Span = tuple[time, time]


class WorkHoursError(ValueError):
    """A working-hours or holiday setting that cannot be understood."""


def _day(name: str, spec: str) -> int:
    try:
        return DAYS.index(name.strip().lower()[:3])
    except ValueError:
        raise WorkHoursError(f"'{name.strip()}' in '{spec}' is not a day like Mon or Fri") from None


def _days(text: str, spec: str) -> list[int]:
    found: list[int] = []
    for part in text.split(","):
        first, dash, last = part.partition("-")
        start = _day(first, spec)
        end = _day(last, spec) if dash else start
        if end < start:
            raise WorkHoursError(f"day range '{part.strip()}' runs backwards")
        found.extend(range(start, end + 1))
    return found


def _clock(hours: str, minutes: str, spec: str) -> time:
    h, m = int(hours), int(minutes)
    if h == 24 and m == 0:
        return time.max
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise WorkHoursError(f"'{hours}:{minutes}' in '{spec}' is not a time of day")
    return time(h, m)


def _spans(text: str, spec: str) -> tuple[Span, ...]:
    spans: list[Span] = []
    for part in text.split(","):
        match = _SPAN.match(part.strip())
        if not match:
            raise WorkHoursError(f"'{part.strip()}' in '{spec}' is not a span like 07:30-11:30")
        start = _clock(match.group(1), match.group(2), spec)
        end = _clock(match.group(3), match.group(4), spec)
        if end <= start:
            raise WorkHoursError(f"span '{part.strip()}' ends before it starts")
        spans.append((start, end))
    spans.sort()
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise WorkHoursError(f"spans in '{spec}' overlap")
    return tuple(spans)


def parse_holidays(text: str) -> frozenset[date]:
    days: set[date] = set()
    for part in text.split(","):
        if part.strip():
            try:
                days.add(date.fromisoformat(part.strip()))
            except ValueError:
                raise WorkHoursError(f"'{part.strip()}' is not a date like 2026-09-02") from None
    return frozenset(days)


@cache
def public_calendar(country: str) -> public_holidays.HolidayBase | None:
    """The public holidays of ``country`` (ISO code; empty: none), computed year by year."""
    if not country.strip():
        return None
    try:
        return public_holidays.country_holidays(country.strip().upper())
    except NotImplementedError:
        raise WorkHoursError(f"no public holiday calendar is known for '{country}'") from None


@dataclass(frozen=True)
class WorkingHours:
    """``SOTAY_WORKING_HOURS`` read: the working spans of each weekday, or ``None`` for 24/7."""

    week: dict[int, tuple[Span, ...]] | None

    @classmethod
    def parse(cls, spec: str) -> WorkingHours:
        if spec.strip().lower() == ALWAYS:
            return cls(None)
        week: dict[int, tuple[Span, ...]] = {}
        for group in spec.split(";"):
            group = group.strip()
            if not group:
                continue
            days_text, _, spans_text = group.partition(" ")
            if not spans_text.strip():
                raise WorkHoursError(f"'{group}' needs days and spans, like 'Mon-Fri 07:30-17:00'")
            spans = _spans(spans_text.replace(" ", ""), spec)
            for day in _days(days_text, spec):
                if day in week:
                    raise WorkHoursError(f"{DAYS[day].title()} appears twice in '{spec}'")
                week[day] = spans
        if not week:
            raise WorkHoursError(f"'{spec}' has no working time; use 24/7 for always")
        return cls(week)

    @property
    def always(self) -> bool:
        return self.week is None


@dataclass(frozen=True)
class WorkCalendar:
    """Working windows per weekday (``None``: always working) in the local time zone."""

    week: dict[int, tuple[Span, ...]] | None
    holidays: frozenset[date]
    tz: tzinfo
    public: public_holidays.HolidayBase | None = None

    @classmethod
    def parse(
        cls, spec: str, holidays: str = "", tz: tzinfo = UTC, country: str = ""
    ) -> WorkCalendar:
        public = public_calendar(country)
        return cls(WorkingHours.parse(spec).week, parse_holidays(holidays), tz, public)

    def is_holiday(self, day: date) -> bool:
        return day in self.holidays or (self.public is not None and day in self.public)

    @property
    def always(self) -> bool:
        return self.week is None

    def windows(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working windows of one local day, as aware datetimes."""
        if self.week is None:
            midnight = datetime.combine(day, time(0), tzinfo=self.tz)
            return [(midnight, midnight + timedelta(days=1))]
        if self.is_holiday(day):
            return []
        result = []
        for start, end in self.week.get(day.weekday(), ()):
            window_end = (
                datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.tz)
                if end == time.max
                else datetime.combine(day, end, tzinfo=self.tz)
            )
            result.append((datetime.combine(day, start, tzinfo=self.tz), window_end))
        return result

    def add(self, start: datetime, delta: timedelta) -> datetime:
        """The moment ``delta`` of working time after ``start`` (aware UTC)."""
        if self.week is None:
            return start + delta
        remaining = delta
        if remaining <= timedelta(0):
            return start
        day = start.astimezone(self.tz).date()
        for _ in range(_MAX_DAYS):
            for window_start, window_end in self.windows(day):
                begin = max(window_start, start)
                if begin >= window_end:
                    continue
                available = window_end - begin
                if remaining <= available:
                    return (begin + remaining).astimezone(UTC)
                remaining -= available
            day += timedelta(days=1)
        raise WorkHoursError("no working time found in the calendar")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Working time elapsed from ``start`` to ``end`` (zero when end is earlier)."""
        if end <= start:
            return timedelta(0)
        if self.week is None:
            return end - start
        total = timedelta(0)
        day = start.astimezone(self.tz).date()
        last = end.astimezone(self.tz).date()
        while day <= last:
            for window_start, window_end in self.windows(day):
                begin, finish = max(window_start, start), min(window_end, end)
                if finish > begin:
                    total += finish - begin
            day += timedelta(days=1)
        return total

    def is_working(self, at: datetime) -> bool:
        day = at.astimezone(self.tz).date()
        return any(start <= at < end for start, end in self.windows(day))
