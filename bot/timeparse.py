"""Dates and times as secretaries type them: 20/12, 20/12/2026, 19:30, 19h30, 7h30 tối.

Ambiguous input is not guessed silently: "7h" returns the morning reading and says it is
ambiguous, so the dialog can show the interpretation and ask.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, time, timedelta

from bot.textfold import fold

_DATE = re.compile(r"^\s*(\d{1,2})\s*[/.\-]\s*(\d{1,2})(?:\s*[/.\-]\s*(\d{2,4}))?\s*$")
_TIME = re.compile(r"^\s*(\d{1,2})\s*(?:[:h]\s*(\d{1,2})?)?\s*(?:phut|p)?\s*(.*?)\s*$")
_EVENING = ("toi", "chieu", "pm", "dem")
_MORNING = ("sang", "am", "trua")


class DateError(ValueError):
    """``reason``: 'format' (not a date) or 'invalid' (no such day, e.g. 31/02)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Days named relative to today, as typed (folded): "hôm nay", "mai", "ngày kia".
_RELATIVE_DAYS = {
    "hom nay": 0,
    "nay": 0,
    "toi nay": 0,
    "chieu nay": 0,
    "sang nay": 0,
    "mai": 1,
    "ngay mai": 1,
    "sang mai": 1,
    "chieu mai": 1,
    "toi mai": 1,
    "kia": 2,
    "ngay kia": 2,
    "mot": 2,
    "ngay mot": 2,
    "today": 0,
    "tomorrow": 1,
}


def relative_day(text: str, today: date) -> date | None:
    """ "hôm nay", "mai", "tối mai", "ngày kia" as a date; None when the text names no day."""
    offset = _RELATIVE_DAYS.get(" ".join(fold(text).split()))
    return None if offset is None else today + timedelta(days=offset)


@dataclass(frozen=True)
class ParsedDate:
    value: date
    rolled: bool  # typed without a year, already past this year: moved to next year (confirm!)


def read_date(text: str, today: date) -> ParsedDate:
    """A typed day: relative words or day/month[/year]. A day/month already past this year is
    read as next year's but flagged ``rolled``: the caller confirms it, never silently."""
    relative = relative_day(text, today)
    if relative is not None:
        return ParsedDate(relative, rolled=False)
    plain = _DATE.match(text)
    value = parse_date(text, today)
    return ParsedDate(value, rolled=bool(plain and not plain.group(3) and value.year > today.year))


def parse_date(text: str, today: date) -> date:
    """A day/month[/year]; without a year, the next such day from ``today`` on."""
    match = _DATE.match(text)
    if not match:
        raise DateError("format")
    day, month = int(match.group(1)), int(match.group(2))
    year_text = match.group(3)
    year = (
        int(year_text) + (2000 if year_text and len(year_text) == 2 else 0)
        if year_text
        else today.year
    )
    try:
        result = date(year, month, day)
    except ValueError:
        raise DateError("invalid") from None
    if not year_text and result < today:
        try:
            result = date(year + 1, month, day)
        except ValueError:
            raise DateError("invalid") from None
    return result


@dataclass(frozen=True)
class ParsedTime:
    value: time
    ambiguous: bool  # "7h": morning or evening? ask before using it


# A part of the day typed alone ("tối", "chiều nay"): the usual meeting hour, which the preview
# shows before anything is sent (the quick choices of the time step are the same hours).
_PART_OF_DAY = {"toi": time(19, 30), "chieu": time(14, 0), "sang": time(8, 0)}
_DAY_WORDS = ("nay", "mai", "kia")


def part_of_day(text: str) -> time | None:
    """ "tối" → 19:30, "chiều nay" → 14:00, "sáng mai" → 08:00; None for anything else."""
    words = fold(text).split()
    if not words or len(words) > 2 or (len(words) == 2 and words[1] not in _DAY_WORDS):
        return None
    return _PART_OF_DAY.get(words[0])


def parse_time(text: str) -> ParsedTime | None:
    """19:30, 19h30, 19h, 7h30 tối, 7 giờ tối, tối; None when it is not a time."""
    usual = part_of_day(text)
    if usual is not None:
        return ParsedTime(usual, ambiguous=False)
    words = fold(text).split()
    if len(words) > 1 and words[0] in _PART_OF_DAY:  # "tối 7h" as "7h tối"
        text = " ".join([*words[1:], words[0]])
    folded = fold(text).replace("gio", "h").replace(" h", "h")
    match = _TIME.match(folded)
    if not match or (":" not in folded and "h" not in folded and not match.group(3)):
        return None
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    rest = match.group(3)
    if rest and not any(word in rest for word in _EVENING + _MORNING):
        return None
    evening = any(word in rest for word in _EVENING)
    morning = any(word in rest for word in _MORNING)
    if evening and hour < 12:
        hour += 12
    if hour > 23 or minute > 59:
        return None
    ambiguous = not (evening or morning) and 1 <= hour <= 11 and ":" not in folded
    return ParsedTime(time(hour, minute), ambiguous)
