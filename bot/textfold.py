"""Text keys for search and matching: "Chi bộ thôn Cầu Bâu" and "chi bo thon cau bau" match.

Members type on cheap phones with or without diacritics, sometimes in NFD from older keyboards
and with invisible characters pasted along; every place that compares what they typed (unit
names, times, commands, FAQ questions) uses these two functions so that all agree on one form.
Never show folded text to a member.
"""

from __future__ import annotations

import re
import unicodedata

_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad]")


def clean(text: str) -> str:
    """NFC, invisible control characters removed, lowercase, whitespace collapsed."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFC", text))
    return " ".join(text.lower().split())


def strip_marks(text: str) -> str:
    """Diacritics removed and đ→d, nothing else changed."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def fold(text: str) -> str:
    """``clean`` plus diacritics removed (đ→d): the form members type without accents."""
    return strip_marks(clean(text))
