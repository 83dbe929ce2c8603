"""Text catalogs (vi, en). Handlers name a key; the words live in ``vi.yaml`` and ``en.yaml``.

Language choice order: the member's stored choice, else the messenger's language hint, else
``SOTAY_DEFAULT_LANGUAGE``.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from pathlib import Path

import yaml

LANGUAGES = ("vi", "en")
_DIR = Path(__file__).parent


@cache
def catalog(lang: str) -> dict[str, str]:
    with (_DIR / f"{lang}.yaml").open(encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    return {
        key: unicodedata.normalize("NFC", str(value)).rstrip("\n") for key, value in raw.items()
    }


def t(lang: str, key: str, /, **values: object) -> str:
    """The text for ``key`` in ``lang`` (falling back to Vietnamese), with values filled in."""
    text = catalog(lang if lang in LANGUAGES else "vi").get(key)
    if text is None:
        text = catalog("vi")[key]
    return text.format(**values) if values else text


def pick_language(stored: str | None, hint: str | None, default: str) -> str:
    if stored in LANGUAGES:
        return stored
    if hint:
        short = hint.split("-")[0].lower()
        if short in LANGUAGES:
            return short
    return default
