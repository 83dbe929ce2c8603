"""Text catalogs (vi, en). Handlers name a key; the words live in YAML files.

Each language has one core file (``vi.yaml``) and one file per feature in a folder of the same
name (``vi/faq.yaml``), so a feature brings its own words without editing a shared file. A key
given in two files is an error at load time, not a silent override.

A text that depends on a number is a mapping of plural forms (CLDR categories): English uses
``one`` and ``other``; Vietnamese has no plural, so ``other`` alone. The value ``n`` picks.

Language choice order: the member's stored choice, else the messenger's language hint, else
``SOTAY_DEFAULT_LANGUAGE``.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from pathlib import Path

LANGUAGES = ("vi", "en")
_DIR = Path(__file__).parent

Entry = str | dict[str, str]


def catalog_files(lang: str) -> list[Path]:
    """The core file first, then the feature files in name order."""
    return [_DIR / f"{lang}.yaml", *sorted((_DIR / lang).glob("*.yaml"))]


def _nfc(value: object) -> str:
    return unicodedata.normalize("NFC", str(value)).rstrip("\n")


@cache
def raw_catalog(lang: str) -> dict[str, Entry]:
    """Every key of ``lang`` as written: a text, or a mapping of plural forms to texts."""
    import yaml  # here: `sotay report --json` prints no text and skips loading PyYAML

    merged: dict[str, Entry] = {}
    for path in catalog_files(lang):
        with path.open(encoding="utf-8") as handle:
            raw = yaml.safe_load(handle) or {}
        for key, value in raw.items():
            if key in merged:
                raise ValueError(f"{path.name}: key {key!r} is already given in another file")
            merged[key] = (
                {form: _nfc(text) for form, text in value.items()}
                if isinstance(value, dict)
                else _nfc(value)
            )
    return merged


@cache
def catalog(lang: str) -> dict[str, str]:
    """Every key of ``lang`` as one text (the ``other`` form for plural entries)."""
    return {
        key: value if isinstance(value, str) else value["other"]
        for key, value in raw_catalog(lang).items()
    }


def plural_form(lang: str, count: int) -> str:
    """The CLDR plural category of ``count``: Vietnamese has none, English has one/other."""
    return "one" if lang == "en" and count == 1 else "other"


def t(lang: str, key: str, /, **values: object) -> str:
    """The text for ``key`` in ``lang`` (falling back to Vietnamese), with values filled in.

    For a plural entry the ``n`` value chooses the form.
    """
    lang = lang if lang in LANGUAGES else "vi"
    entry = raw_catalog(lang).get(key)
    if entry is None:
        lang, entry = "vi", raw_catalog("vi")[key]
    if isinstance(entry, dict):
        count = values.get("n")
        if not isinstance(count, int):
            raise TypeError(f"{key!r} has plural forms: pass n=<int>")
        entry = entry.get(plural_form(lang, count), entry["other"])
    return entry.format(**values) if values else entry


def pick_language(stored: str | None, hint: str | None, default: str) -> str:
    if stored in LANGUAGES:
        return stored
    if hint:
        short = hint.split("-")[0].lower()
        if short in LANGUAGES:
            return short
    return default
