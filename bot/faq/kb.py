"""The FAQ knowledge base: typed entries loaded from (and written back to) one YAML file.

The file is edited by hand by people who are not programmers, so loading is strict and loud:
every problem is reported at once with where it is (the line for broken YAML, the entry id for
a bad entry), and a file with any problem yields no knowledge base at all, never a partial one.
Text is normalised to NFC on load so that what an editor's keyboard produced (NFC or NFD) does
not change matching or display. This module never matches anything: see ``matcher``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LANGS: tuple[str, ...] = ("vi", "en")
DEFAULT_KB_PATH: Path = Path(__file__).parent / "data" / "faq.yaml"

_ENTRY_KEYS = frozenset({"id", "topic", "questions", "answer", "keywords"})
_TOP_KEYS = frozenset({"version", "topics", "entries"})
_MAX_REPORTED = 12
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BASE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
"""libyaml when PyYAML has it (about 10x faster), the pure-Python classes otherwise."""
_ID = re.compile(r"[a-z][a-z0-9_]{0,31}")
"""Entry ids travel in button callback data (≤ 64 bytes with other fields): short and plain."""


class FaqFileError(ValueError):
    """The FAQ file cannot be used; ``str(error)`` says what is wrong and where."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or [message]


@dataclass(frozen=True)
class FaqTopic:
    id: str
    title: dict[str, str]


@dataclass(frozen=True)
class FaqEntry:
    id: str
    topic: str
    questions: dict[str, list[str]]
    answer: dict[str, str]
    keywords: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class KnowledgeBase:
    topics: list[FaqTopic]
    entries: list[FaqEntry]
    version: int

    def get(self, entry_id: str) -> FaqEntry:
        """The entry with this id; ``KeyError`` if there is none."""
        for entry in self.entries:
            if entry.id == entry_id:
                return entry
        raise KeyError(entry_id)


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


class _Checker:
    """Collects every problem of one file, so an editor fixes them in one round."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(where, f"must be a non-empty text, got {value!r:.60}")
            return ""
        return _nfc(value)

    def texts(self, value: Any, where: str, *, required: bool = True) -> list[str]:
        if value is None and not required:
            return []
        if not isinstance(value, list) or (required and not value):
            self.fail(where, f"must be a non-empty list of texts, got {value!r:.60}")
            return []
        return [self.text(item, f"{where}[{i}]") for i, item in enumerate(value)]

    def per_lang(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(where, f"must map each language ({', '.join(LANGS)}), got {value!r:.60}")
            return {}
        missing = [lang for lang in LANGS if lang not in value]
        extra = [str(key) for key in value if key not in LANGS]
        if missing:
            self.fail(where, f"missing language(s): {', '.join(missing)}")
        if extra:
            self.fail(where, f"unknown language(s): {', '.join(extra)}")
        return {lang: value[lang] for lang in LANGS if lang in value}


def _parse_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
        raise FaqFileError(f"FAQ file is not valid YAML ({line}): {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise FaqFileError(f"FAQ file is not valid YAML: {exc}") from exc


def _topics(raw: Any, check: _Checker) -> list[FaqTopic]:
    if not isinstance(raw, list) or not raw:
        check.fail("topics", "must be a non-empty list")
        return []
    topics: list[FaqTopic] = []
    for i, item in enumerate(raw):
        where = f"topics[{i}]"
        if not isinstance(item, dict):
            check.fail(where, "must be a mapping with id and title")
            continue
        topic_id = check.text(item.get("id"), f"{where}.id")
        titles = check.per_lang(item.get("title"), f"topic {topic_id or i!r} title")
        title = {
            lang: check.text(v, f"topic {topic_id!r} title.{lang}") for lang, v in titles.items()
        }
        if topic_id in {topic.id for topic in topics}:
            check.fail(where, f"duplicate topic id {topic_id!r}")
        topics.append(FaqTopic(id=topic_id, title=title))
    return topics


def _entry(item: Any, index: int, topic_ids: set[str], check: _Checker) -> FaqEntry | None:
    if not isinstance(item, dict):
        check.fail(f"entries[{index}]", "must be a mapping")
        return None
    entry_id = check.text(item.get("id"), f"entries[{index}].id")
    where = f"entry {entry_id!r}" if entry_id else f"entries[{index}]"
    if entry_id and not _ID.fullmatch(entry_id):
        check.fail(where, "id must be 1-32 of a-z, 0-9, _ and start with a letter")
    unknown = sorted(str(key) for key in item if key not in _ENTRY_KEYS)
    if unknown:
        check.fail(where, f"unknown field(s): {', '.join(unknown)}")
    topic = check.text(item.get("topic"), f"{where} topic")
    if topic and topic not in topic_ids:
        check.fail(where, f"unknown topic {topic!r} (known: {', '.join(sorted(topic_ids))})")
    if "questions" not in item:
        check.fail(where, "questions are missing")
    questions = {
        lang: check.texts(value, f"{where} questions.{lang}")
        for lang, value in check.per_lang(item.get("questions"), f"{where} questions").items()
    }
    if "answer" not in item:
        check.fail(where, "answer is missing")
    answer = {
        lang: check.text(value, f"{where} answer.{lang}")
        for lang, value in check.per_lang(item.get("answer"), f"{where} answer").items()
    }
    keywords = check.texts(item.get("keywords"), f"{where} keywords", required=False)
    return FaqEntry(entry_id, topic, questions, answer, keywords)


def _entries(raw: Any, topic_ids: set[str], check: _Checker) -> list[FaqEntry]:
    if not isinstance(raw, list) or not raw:
        check.fail("entries", "must be a non-empty list")
        return []
    entries: list[FaqEntry] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        entry = _entry(item, index, topic_ids, check)
        if entry is None:
            continue
        if entry.id in seen:
            check.fail(f"entries[{index}]", f"duplicate id {entry.id!r}")
        seen.add(entry.id)
        entries.append(entry)
    return entries


def _read(path_or_text: str | Path) -> str:
    is_path = isinstance(path_or_text, Path) or (
        "\n" not in path_or_text and path_or_text.strip().endswith((".yaml", ".yml"))
    )
    if not is_path:
        return str(path_or_text)
    try:
        return Path(path_or_text).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FaqFileError(f"cannot read FAQ file {path_or_text}: {exc}") from exc


def load_kb(path_or_text: str | Path) -> KnowledgeBase:
    """Load and validate a FAQ file.

    ``path_or_text`` is a ``Path``, a path string ending in .yaml/.yml, or the YAML text itself.
    Raises ``FaqFileError`` listing every problem found; returns only a fully valid base.
    """
    raw = _parse_yaml(_read(path_or_text))
    if not isinstance(raw, dict):
        raise FaqFileError("FAQ file must be a mapping with version, topics and entries")
    check = _Checker()
    unknown = sorted(str(key) for key in raw if key not in _TOP_KEYS)
    if unknown:
        check.fail("file", f"unknown top-level field(s): {', '.join(unknown)}")
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        check.fail("version", f"must be a positive integer, got {version!r:.40}")
    topics = _topics(raw.get("topics"), check)
    entries = _entries(raw.get("entries"), {topic.id for topic in topics}, check)
    if check.problems:
        shown = check.problems[:_MAX_REPORTED]
        more = len(check.problems) - len(shown)
        tail = f"\n  ... and {more} more" if more else ""
        message = "FAQ file has problems:\n  " + "\n  ".join(shown) + tail
        raise FaqFileError(message, check.problems)
    assert isinstance(version, int)  # checked above: no problems means a valid version
    return KnowledgeBase(topics=topics, entries=entries, version=version)


class _Dumper(_BASE_DUMPER):  # type: ignore[misc,valid-type]
    """Writes multi-line answers as literal blocks so the file stays hand-editable."""


def _represent_text(dumper: yaml.representer.SafeRepresenter, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_text)


def _entry_data(entry: FaqEntry) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": entry.id,
        "topic": entry.topic,
        "questions": {lang: list(entry.questions[lang]) for lang in LANGS},
        "answer": {lang: entry.answer[lang] for lang in LANGS},
    }
    if entry.keywords:
        data["keywords"] = list(entry.keywords)
    return data


def dump_kb(kb: KnowledgeBase) -> str:
    """YAML text that ``load_kb`` reads back to an equal base; Vietnamese stays readable UTF-8."""
    data = {
        "version": kb.version,
        "topics": [
            {"id": t.id, "title": {lang: t.title[lang] for lang in LANGS}} for t in kb.topics
        ],
        "entries": [_entry_data(entry) for entry in kb.entries],
    }
    return yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100)
