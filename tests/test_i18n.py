"""The text catalogs: Vietnamese and English say the same things with the same blanks."""

from __future__ import annotations

import string
import unicodedata
from pathlib import Path

import pytest
import yaml

from bot.i18n import LANGUAGES, catalog

CATALOGS = Path(__file__).parent.parent / "bot" / "i18n"


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


class UniqueKeyLoader(yaml.SafeLoader):
    """A loader that refuses a key given twice (YAML would silently keep the last one)."""


def _unique_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:  # type: ignore[type-arg]
    seen: set[object] = set()
    for key_node, _value in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ValueError(f"key {key!r} given twice (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _unique_mapping,  # type: ignore[arg-type]
)


def test_both_catalogs_have_the_same_keys() -> None:
    vi, en = catalog("vi"), catalog("en")
    assert sorted(set(vi) - set(en)) == []
    assert sorted(set(en) - set(vi)) == []


def test_every_text_has_the_same_blanks_in_both_languages() -> None:
    vi, en = catalog("vi"), catalog("en")
    differ = {k: (placeholders(vi[k]), placeholders(en[k])) for k in vi if k in en}
    assert {k: v for k, v in differ.items() if v[0] != v[1]} == {}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_catalog_files_are_nfc_and_have_no_duplicate_keys(lang: str) -> None:
    raw = (CATALOGS / f"{lang}.yaml").read_text(encoding="utf-8")
    assert unicodedata.normalize("NFC", raw) == raw
    yaml.load(raw, Loader=UniqueKeyLoader)  # noqa: S506 - a safe loader that also checks keys
