"""Roster import: the committee's CSV of members becomes the Unit tree and Member rows.

The roster is what registration matches phone numbers against, so an import must never half-apply
a file it cannot read (whole-file problems raise ``RosterFileError`` before anything is written),
while one bad row among sixty thousand must not block the rest (it becomes a ``RowError`` with its
line number for the operator to fix). Re-importing the same file is a no-op, so committees can
simply import their latest spreadsheet again. Everything is read into dicts once and written in
batches: a per-row SELECT would make a province-sized file take minutes.
"""

from __future__ import annotations

import asyncio
import csv
import io
import sys
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, bindparam, insert, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from tqdm import tqdm

from bot.i18n import t
from bot.phones import PhoneError, normalize_phone
from bot.textfold import fold
from storage.db import Database
from storage.models import Member, MemberStatus, Unit, utcnow
from storage.queries import PATH_SEP

COLUMNS = ("member_code", "full_name", "phone", "unit_path", "has_smartphone")
REQUIRED = ("full_name", "phone", "unit_path")
_YES = frozenset({"yes", "y", "có", "co", "1", "true"})
_NO = frozenset({"no", "n", "không", "khong", "0", "false"})
# Column limits of storage.models: checked per row so PostgreSQL never aborts the whole batch.
_MAX_NAME, _MAX_CODE, _MAX_UNIT, _MAX_PATH = 200, 64, 200, 1000
BATCH = 1000
# Core tables, not the ORM bulk path: that one splits a batch wherever the set of non-None values
# changes, which for a roster (blank phones, blank answers) means one statement per few rows.
_UNITS: Table = Unit.__table__  # type: ignore[attr-defined]
_MEMBERS: Table = Member.__table__  # type: ignore[attr-defined]
_FIELDS = ("member_code", "full_name", "phone", "cell_id", "has_smartphone")
_UPDATE = (
    update(_MEMBERS)
    .where(_MEMBERS.c.id == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}") for name in _FIELDS})
)
LISTED_ERRORS = 50


class RosterFileError(Exception):
    """The file as a whole cannot be imported; nothing was written. One sentence for the CLI.

    ``key``/``values`` word it in the operator's language; ``str()`` is English, for logs."""

    def __init__(self, key: str, /, **values: object) -> None:
        self.key, self.values = key, values
        super().__init__(t("en", key, **values))


@dataclass(frozen=True)
class Reason:
    """Why a row is refused, as a catalog key and its values: the CLI words it in
    SOTAY_DEFAULT_LANGUAGE, a chat in the reader's language. A value may itself be a Reason."""

    key: str
    values: dict[str, object] = field(default_factory=dict)

    def text(self, lang: str) -> str:
        shown = {k: v.text(lang) if isinstance(v, Reason) else v for k, v in self.values.items()}
        return t(lang, self.key, **shown)

    def __str__(self) -> str:
        return self.text("en")


def reason(key: str, /, **values: object) -> Reason:
    return Reason(key, values)


@dataclass
class RowError:
    line: int  # physical line in the CSV, the header being line 1
    why: Reason

    @property
    def reason(self) -> str:
        """In English, for logs and tests; readers get ``text(lang)``."""
        return str(self.why)

    def text(self, lang: str) -> str:
        return t(lang, "op.import.row", line=self.line, reason=self.why.text(lang))


def render_errors(lang: str, errors: list[RowError]) -> list[str]:
    """One line per bad row, at most LISTED_ERRORS of them, so a terminal stays usable."""
    lines = [e.text(lang) for e in errors[:LISTED_ERRORS]]
    if len(errors) > LISTED_ERRORS:
        lines.append(t(lang, "op.import.more", n=len(errors) - LISTED_ERRORS))
    return lines


@dataclass
class RosterReport:
    rows: int
    created: int
    updated: int
    unchanged: int
    units_created: int
    errors: list[RowError] = field(default_factory=list)
    dry_run: bool = False

    def render(self, lang: str = "en") -> str:
        """A summary line, then one line per bad row (at most 50, so a terminal stays usable)."""
        summary = t(
            lang,
            "op.roster.dry_run" if self.dry_run else "op.roster.imported",
            n=self.rows,
            created=self.created,
            updated=self.updated,
            unchanged=self.unchanged,
            errors=len(self.errors),
            units=self.units_created,
        )
        return "\n".join([summary, *render_errors(lang, self.errors)])


@dataclass(slots=True)
class _Row:
    """One valid CSV row, normalised."""

    line: int
    code: str | None
    name: str
    phone: str | None
    raw_phone: str
    cell: str  # the unit path joined with PATH_SEP
    smartphone: bool | None


@dataclass(slots=True)
class _Known:
    """An existing active member, as far as the import compares it."""

    id: int
    code: str | None
    name: str | None
    phone: str | None
    cell: str | None
    smartphone: bool | None
    answered: bool = False  # the member or the secretary said since whether they have one

    def values(self) -> tuple[Any, ...]:
        return self.code, self.name, self.phone, self.cell, self.smartphone


def _clean(value: str) -> str:
    """NFC with single spaces: files from Macs carry NFD text, hand-typed cells double spaces."""
    return " ".join(unicodedata.normalize("NFC", value).split())


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """CSV records with the line each starts on (a quoted field may span lines)."""
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    try:
        for fields in reader:
            yield start, fields
            start = reader.line_num + 1
    except csv.Error as exc:
        raise RosterFileError("op.roster.file.csv", line=start, error=exc) from None


def _header(fields: list[str]) -> dict[str, int]:
    names = [_clean(name).lower() for name in fields]
    if not any(names):
        raise RosterFileError("op.roster.file.no_header", columns=", ".join(COLUMNS))
    if not set(names) & set(COLUMNS):
        raise RosterFileError("op.roster.file.not_header", columns=", ".join(COLUMNS))
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise RosterFileError("op.roster.file.missing", columns=", ".join(missing))
    for name in COLUMNS:
        if names.count(name) > 1:
            raise RosterFileError("op.import.file.twice", column=name)
    return {name: names.index(name) for name in COLUMNS if name in names}


def _row(line: int, fields: list[str], columns: dict[str, int], width: int) -> _Row | RowError:
    """Validate one record; the first problem found is the one reported."""
    if len(fields) != width:
        return RowError(line, reason("op.roster.row.width", want=width, found=len(fields)))
    value = {name: _clean(fields[index]) for name, index in columns.items()}
    code = value.get("member_code") or None
    name = value["full_name"]
    if not name:
        return RowError(line, reason("op.roster.row.no_name"))
    if len(name) > _MAX_NAME:
        return RowError(line, reason("op.roster.row.long_name", max=_MAX_NAME))
    if code is not None and len(code) > _MAX_CODE:
        return RowError(line, reason("op.roster.row.long_code", max=_MAX_CODE))
    raw_path = value["unit_path"]
    if not raw_path:
        return RowError(line, reason("op.roster.row.no_path"))
    segments = [segment.strip() for segment in raw_path.split("/")]
    if not all(segments):
        return RowError(line, reason("op.roster.row.empty_unit", path=raw_path))
    cell = PATH_SEP.join(segments)
    if len(cell) > _MAX_PATH or any(len(segment) > _MAX_UNIT for segment in segments):
        return RowError(line, reason("op.roster.row.long_path"))
    raw_phone = value["phone"]
    phone = None
    if raw_phone:
        try:
            phone = normalize_phone(raw_phone)
        except PhoneError as exc:
            kind = "foreign" if exc.reason == "foreign" else "bad"
            return RowError(line, reason(f"op.import.row.phone_{kind}", phone=raw_phone))
    flag = value.get("has_smartphone", "").lower()
    if flag and flag not in _YES | _NO:
        shown = value["has_smartphone"]
        return RowError(line, reason("op.roster.row.smartphone", value=shown))
    smartphone = True if flag in _YES else False if flag in _NO else None
    return _Row(line, code, name, phone, raw_phone, cell, smartphone)


def _parse(text: str) -> tuple[list[_Row], list[RowError], int]:
    """Whole-file checks, then per-row validation; no database access."""
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise RosterFileError("op.import.file.empty")
    if "\x00" in text:  # valid UTF-8, but PostgreSQL refuses it: really UTF-16 ("Unicode Text")
        raise RosterFileError("op.roster.file.nul")
    records = _records(text)
    _, header = next(records)
    columns = _header(header)
    rows: list[_Row] = []
    errors: list[RowError] = []
    count = 0
    for line, fields in records:
        if not any(f.strip() for f in fields):
            continue  # blank lines and the ";;;;" rows spreadsheets leave at the end
        count += 1
        result = _row(line, fields, columns, len(header))
        if isinstance(result, RowError):
            errors.append(result)
        else:
            rows.append(result)
    if count == 0:
        raise RosterFileError("op.roster.file.no_rows")
    return rows, errors, count


class _Plan:
    """Decides, row by row, which member each row is; dicts only, so it costs no queries.

    Matching order: member_code, then phone, then (full_name, cell). A member can be claimed by
    one row only, and a phone may not move onto a member while another member still holds it:
    either would silently merge two people, which registration could never undo.
    """

    def __init__(self, known: list[_Known], blocked_codes: set[str]) -> None:
        self.by_code = {m.code: m for m in known if m.code}
        self.by_phone: dict[str, _Known] = {}
        self.by_name: dict[tuple[str | None, str | None], list[_Known]] = {}
        for m in known:  # ordered by id: the oldest holder of a shared phone wins, as at login
            if m.phone:
                self.by_phone.setdefault(m.phone, m)
            self.by_name.setdefault((m.name, m.cell), []).append(m)
        self.blocked_codes = blocked_codes
        self.claimed: dict[int, int] = {}  # member id -> line
        self.seen_codes: dict[str, int] = {}
        self.seen_phones: dict[str, int] = {}
        self.creates: list[_Row] = []
        self.updates: list[tuple[_Known, _Row]] = []
        self.unchanged = 0
        self.errors: list[RowError] = []

    def _match(self, row: _Row) -> _Known | None | Reason:
        """The existing member this row is, None for a new one, or why the row is refused."""
        phone_holder = self.by_phone.get(row.phone) if row.phone else None
        if row.code and (member := self.by_code.get(row.code)):
            if phone_holder and phone_holder is not member:
                return reason(
                    "op.roster.row.phone_taken", phone=row.raw_phone, who=_who(phone_holder)
                )
        elif row.code and row.code in self.blocked_codes:
            return reason("op.roster.row.forgotten", code=row.code)
        elif phone_holder:
            if row.code and phone_holder.code:
                return reason(
                    "op.roster.row.phone_taken", phone=row.raw_phone, who=_who(phone_holder)
                )
            member = phone_holder
        else:
            candidates = self.by_name.get((row.name, row.cell), [])
            free = [m for m in candidates if m.id not in self.claimed and not (row.code and m.code)]
            if not free:
                return None
            member = free[0]
        if member.id in self.claimed:
            return reason("op.roster.row.same_member", first=self.claimed[member.id])
        return member

    def add(self, row: _Row) -> None:
        if row.code and row.code in self.seen_codes:
            first = self.seen_codes[row.code]
            self.errors.append(
                RowError(row.line, reason("op.roster.row.code_twice", code=row.code, first=first))
            )
            return
        if row.phone and row.phone in self.seen_phones:
            first = self.seen_phones[row.phone]
            self.errors.append(
                RowError(
                    row.line, reason("op.roster.row.phone_twice", phone=row.raw_phone, first=first)
                )
            )
            return
        if row.code:
            self.seen_codes[row.code] = row.line
        if row.phone:
            self.seen_phones[row.phone] = row.line
        match = self._match(row)
        if isinstance(match, Reason):
            self.errors.append(RowError(row.line, match))
        elif match is None:
            self.creates.append(row)
        else:
            self._update(match, row)

    def _update(self, member: _Known, row: _Row) -> None:
        self.claimed[member.id] = row.line
        before = member.values()
        # A blank cell means "not known" in a roster, so it never erases a phone or an answer.
        member.code = row.code or member.code
        member.name, member.cell = row.name, row.cell
        if row.phone and row.phone != member.phone:
            if self.by_phone.get(member.phone or "") is member:
                del self.by_phone[member.phone or ""]  # the old number is free for a later row
            member.phone = row.phone
            self.by_phone[row.phone] = member
        # A re-imported roster does not undo what the member or the secretary answered since.
        if row.smartphone is not None and not member.answered:
            member.smartphone = row.smartphone
        if member.values() == before:
            self.unchanged += 1
        else:
            self.updates.append((member, row))


def _who(member: _Known) -> str:
    return member.code or member.name or f"#{member.id}"


def _bar(progress: bool, total: int, desc: str) -> tqdm[Any]:
    return tqdm(total=total, desc=desc, unit="row", disable=not progress, file=sys.stderr)


def _chunks(items: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    return (items[i : i + BATCH] for i in range(0, len(items), BATCH))


async def _load(
    session: AsyncSession,
) -> tuple[dict[str, int], list[_Known], set[str]]:
    """Every unit (path -> id), the active members, and the codes of forgotten members."""
    found = (await session.exec(select(Unit.id, Unit.path))).all()
    units = {path: uid for uid, path in found if uid is not None}
    paths = {uid: path for path, uid in units.items()}
    # sqlmodel's select() is typed for at most four columns.
    stmt = select(  # type: ignore[call-overload,misc]
        Member.id,
        Member.member_code,
        Member.full_name,
        Member.phone,
        Member.cell_id,
        Member.has_smartphone,
        Member.status,
        Member.smartphone_source,
    ).order_by(col(Member.id))
    known: list[_Known] = []
    blocked: set[str] = set()
    for mid, code, name, phone, cell_id, smartphone, status, said in (
        await session.exec(stmt)
    ).all():
        if status == MemberStatus.forgotten:
            if code:
                blocked.add(code)
            continue
        cell = paths.get(cell_id) if cell_id is not None else None
        answered = said in ("member", "secretary")
        known.append(_Known(mid, code, name, phone, cell, smartphone, answered))
    return units, known, blocked


def _missing_units(units: dict[str, int], cells: Iterable[str]) -> list[str]:
    """Paths of every unit the cells need that does not exist yet, parents first."""
    missing: set[str] = set()
    for cell in cells:
        segments = cell.split(PATH_SEP)
        for depth in range(1, len(segments) + 1):
            path = PATH_SEP.join(segments[:depth])
            if path not in units:
                missing.add(path)
    return sorted(missing, key=lambda p: (p.count(PATH_SEP), p))


async def _create_units(session: AsyncSession, units: dict[str, int], missing: list[str]) -> None:
    """Insert the missing units one depth at a time, so each level knows its parents' ids."""
    by_depth: dict[int, list[str]] = {}
    for path in missing:
        by_depth.setdefault(path.count(PATH_SEP), []).append(path)
    for depth, paths in sorted(by_depth.items()):
        params = []
        for path in paths:
            parent, _, name = path.rpartition(PATH_SEP)
            params.append(
                {
                    "parent_id": units[parent] if parent else None,
                    "name": name,
                    "path": path,
                    "depth": depth,
                    "folded_name": fold(name),
                }
            )
        stmt = insert(_UNITS).returning(_UNITS.c.id, _UNITS.c.path)
        result = await session.exec(stmt, params=params)
        units.update({path: uid for uid, path in result.all()})


async def import_roster_text(
    session: AsyncSession,
    text: str,
    *,
    dry_run: bool = False,
    now: datetime,
    progress: bool = False,
) -> RosterReport:
    """Import a roster inside the caller's transaction; a dry run only reads.

    Raises ``RosterFileError`` before any write when the file as a whole is unusable.
    """
    rows, errors, count = _parse(text)
    units, known, blocked = await _load(session)
    plan = _Plan(known, blocked)
    with _bar(progress, len(rows), "checking") as bar:
        for row in rows:
            plan.add(row)
            bar.update()
    missing = _missing_units(
        units, [row.cell for row in plan.creates] + [row.cell for _, row in plan.updates]
    )
    if not dry_run:
        with _bar(progress, len(plan.creates) + len(plan.updates), "writing") as bar:
            await _create_units(session, units, missing)
            new = [
                {
                    "member_code": row.code,
                    "full_name": row.name,
                    "phone": row.phone,
                    "cell_id": units[row.cell],
                    "has_smartphone": row.smartphone,
                    "smartphone_source": "roster" if row.smartphone is not None else None,
                    "status": MemberStatus.active,
                    "source": "roster",
                    "created_at": now,
                }
                for row in plan.creates
            ]
            changed = [
                {
                    "b_id": m.id,
                    "b_member_code": m.code,
                    "b_full_name": m.name,
                    "b_phone": m.phone,
                    "b_cell_id": units[m.cell or ""],
                    "b_has_smartphone": m.smartphone,
                }
                for m, _ in plan.updates
            ]
            for chunk in _chunks(new):
                await session.exec(insert(_MEMBERS), params=chunk)
                bar.update(len(chunk))
            for chunk in _chunks(changed):
                await session.exec(_UPDATE, params=chunk)
                bar.update(len(chunk))
    return RosterReport(
        rows=count,
        created=len(plan.creates),
        updated=len(plan.updates),
        unchanged=plan.unchanged,
        units_created=len(missing),
        errors=sorted(errors + plan.errors, key=lambda e: e.line),
        dry_run=dry_run,
    )


def read_roster(path: Path) -> str:
    """The file's text, strictly UTF-8: a guessed encoding would store mangled names."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RosterFileError("op.import.file.unreadable", path=path, error=exc.strerror) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RosterFileError(
            "op.import.file.not_utf8",
            name=path.name,
            byte=f"0x{data[exc.start]:02x}",
            offset=exc.start,
        ) from None


async def import_roster_file(
    database_url: str, path: Path, *, dry_run: bool = False, progress: bool = False
) -> RosterReport:
    """Import a CSV file in one transaction: committed unless ``dry_run``."""
    text = await asyncio.to_thread(read_roster, path)
    db = Database(database_url)
    try:
        async with db.reader() as session:
            report = await import_roster_text(
                session, text, dry_run=dry_run, now=utcnow(), progress=progress
            )
            if dry_run:
                await session.rollback()
            else:
                await session.commit()
        return report
    finally:
        await db.dispose()
