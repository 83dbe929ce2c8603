"""The text catalogs: Vietnamese and English say the same things with the same blanks."""

from __future__ import annotations

import string
import unicodedata
from pathlib import Path

import pytest
import yaml

from bot.i18n import LANGUAGES, catalog, catalog_files, raw_catalog, t

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
    for path in catalog_files(lang):
        raw = path.read_text(encoding="utf-8")
        assert unicodedata.normalize("NFC", raw) == raw, path.name
        yaml.load(raw, Loader=UniqueKeyLoader)  # noqa: S506 - a safe loader that also checks keys


def test_each_language_has_the_same_feature_files() -> None:
    names = {lang: [p.name for p in catalog_files(lang)[1:]] for lang in LANGUAGES}
    assert names["vi"] == names["en"]


PLURAL_FORMS = {"vi": {"other"}, "en": {"one", "other"}}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_plural_entries_use_the_languages_forms_with_the_same_blanks(lang: str) -> None:
    plural = {k: v for k, v in raw_catalog(lang).items() if isinstance(v, dict)}
    for key, forms in plural.items():
        assert "other" in forms and set(forms) <= PLURAL_FORMS[lang], key
        assert len({frozenset(placeholders(text)) for text in forms.values()}) == 1, key
        assert "n" in placeholders(forms["other"]), key


def test_english_counts_agree_with_their_noun() -> None:
    assert t("en", "mt.reminded", n=1) == "Reminded 1 member who had not answered."
    assert t("en", "mt.reminded", n=2) == "Reminded 2 members who had not answered."
    assert t("en", "mt.reminded", n=0) == "Reminded 0 members who had not answered."
    assert t("vi", "mt.reminded", n=1) == "Đã nhắc 1 đảng viên chưa trả lời."


def test_a_plural_entry_without_its_number_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="n=<int>"):
        t("en", "mt.reminded")
