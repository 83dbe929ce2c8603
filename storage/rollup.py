"""Per-unit rollout figures kept up to date by the database itself: the ``unit_rollup`` table.

Why: a national report (5.6 million members on PostgreSQL) cannot scan every member on each
request; even a plain GROUP BY over ``member`` took 25 s there. So every unit has one row with
the counts of its own active members (members, registered, smartphone, installed, activated,
and the handbook system's installed / activated / known), and a report reads a few hundred
thousand small rows instead of millions of members.

Design (the simplest that is correct whatever writes the members): triggers, in the same
transaction as the write. Members are written by the ORM (chat answers, /forget, approvals),
by bulk statements (roster and status imports, in batches) and by hand (operators, benchmarks);
a hook in Python would miss some of them, a trigger misses none, and it commits or rolls back
with the write it counts.

- ``member``: each changed row adds its new contribution to its cell's row and takes its old
  one away (a move between cells, a status change, /forget — status ``forgotten`` — and a
  delete are all "old out, new in"). On PostgreSQL the triggers are per statement, with
  transition tables: an import's batch of thousands of rows becomes one grouped UPDATE of the
  cells it touched, and rows whose counted columns did not change update nothing (no lock, no
  write). SQLite has only row triggers; they run in-process and cost microseconds.
- ``channelaccount``: "registered" (a verified, non-pending account) depends on another table;
  a change there recounts ``registered`` of that member's cell from its members (a cell is a
  few dozen members; accounts change one at a time).
- ``unit``: a new unit gets its zero row at insert; a deleted unit's row goes with it
  (``ON DELETE CASCADE``).

``rebuild`` recomputes every row from the members (the migration's backfill, and a repair if
the triggers were ever dropped — e.g. an SQLite batch migration that recreates ``member``
recreates it without them). Tests compare the table with a fresh GROUP BY after each kind of
write (tests/test_rollup.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

COUNTS = (
    "members",
    "registered",
    "smartphone",
    "installed",
    "activated",
    "installed_hb",
    "activated_hb",
    "hb_known",
)

# Columns of ``member`` the counts read: an UPDATE touching none of them changes no count.
_WATCHED = (
    "cell_id",
    "status",
    "has_smartphone",
    "app_installed",
    "app_activated",
    "hb_installed",
    "hb_activated",
)

_REGISTERED = (
    "EXISTS (SELECT 1 FROM channelaccount a WHERE a.member_id = {r}.id"
    " AND a.verified AND NOT a.pending)"
)


def _contributions(r: str) -> dict[str, str]:
    """What one active member row (alias ``r``) adds to each count, as SQL both engines run."""

    def flag(condition: str) -> str:
        return f"CASE WHEN {condition} THEN 1 ELSE 0 END"

    return {
        "members": "1",
        "registered": flag(_REGISTERED.format(r=r)),
        "smartphone": flag(f"{r}.has_smartphone"),
        "installed": flag(f"coalesce({r}.hb_installed, {r}.app_installed)"),
        "activated": flag(f"coalesce({r}.hb_activated, {r}.app_activated)"),
        "installed_hb": flag(f"{r}.hb_installed"),
        "activated_hb": flag(f"{r}.hb_activated"),
        "hb_known": flag(f"{r}.hb_installed IS NOT NULL OR {r}.hb_activated IS NOT NULL"),
    }


def _recount_registered(cells: str) -> str:
    """Recount ``registered`` of the cells selected by ``cells`` from their members."""
    return (
        "UPDATE unit_rollup SET registered = (SELECT count(*) FROM member m"
        " WHERE m.cell_id = unit_rollup.unit_id AND m.status = 'active' AND "
        + _REGISTERED.format(r="m")
        + f") WHERE unit_id IN ({cells})"
    )


def group_by_members() -> str:
    """The counts of every unit straight from ``member``: the truth the table must equal."""
    sums = ", ".join(
        f"sum({expr}) AS {name}" if name != "members" else "count(*) AS members"
        for name, expr in _contributions("m").items()
    )
    return (
        f"SELECT m.cell_id AS unit_id, {sums} FROM member m"
        " WHERE m.status = 'active' AND m.cell_id IS NOT NULL GROUP BY m.cell_id"
    )


def rebuild_sql() -> list[str]:
    """Statements that make ``unit_rollup`` exact again: every unit, its counts from members."""
    counts = ", ".join(f"coalesce(g.{name}, 0)" for name in COUNTS)
    return [
        "DELETE FROM unit_rollup",
        f"INSERT INTO unit_rollup (unit_id, {', '.join(COUNTS)}) SELECT u.id, {counts}"
        f" FROM unit u LEFT JOIN ({group_by_members()}) g ON g.unit_id = u.id",
    ]


async def rebuild(session: AsyncSession) -> None:
    """Recompute every row, inside the caller's write transaction."""
    connection = await session.connection()
    for statement in rebuild_sql():
        await connection.execute(text(statement))


# --- SQLite: row triggers ---------------------------------------------------------------------


def _sqlite_delta(r: str, sign: str) -> str:
    sets = ", ".join(f"{name} = {name} {sign} ({expr})" for name, expr in _contributions(r).items())
    return f"UPDATE unit_rollup SET {sets} WHERE unit_id = {r}.cell_id AND {r}.status = 'active'"


def sqlite_ddl() -> list[str]:
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _WATCHED)
    registered = "SELECT cell_id FROM member WHERE id IN ({ids})"
    return [
        "CREATE TRIGGER rollup_unit_insert AFTER INSERT ON unit BEGIN"
        " INSERT INTO unit_rollup (unit_id) VALUES (NEW.id); END",
        f"CREATE TRIGGER rollup_member_insert AFTER INSERT ON member BEGIN"
        f" {_sqlite_delta('NEW', '+')}; END",
        f"CREATE TRIGGER rollup_member_delete AFTER DELETE ON member BEGIN"
        f" {_sqlite_delta('OLD', '-')}; END",
        f"CREATE TRIGGER rollup_member_update AFTER UPDATE OF {', '.join(_WATCHED)} ON member"
        f" WHEN {changed} BEGIN {_sqlite_delta('OLD', '-')}; {_sqlite_delta('NEW', '+')}; END",
        "CREATE TRIGGER rollup_account_insert AFTER INSERT ON channelaccount BEGIN "
        + _recount_registered(registered.format(ids="NEW.member_id"))
        + "; END",
        "CREATE TRIGGER rollup_account_delete AFTER DELETE ON channelaccount BEGIN "
        + _recount_registered(registered.format(ids="OLD.member_id"))
        + "; END",
        "CREATE TRIGGER rollup_account_update AFTER UPDATE OF member_id, verified, pending"
        " ON channelaccount BEGIN "
        + _recount_registered(registered.format(ids="OLD.member_id, NEW.member_id"))
        + "; END",
    ]


SQLITE_TRIGGERS = (
    "rollup_unit_insert",
    "rollup_member_insert",
    "rollup_member_delete",
    "rollup_member_update",
    "rollup_account_insert",
    "rollup_account_delete",
    "rollup_account_update",
)


# --- PostgreSQL: statement triggers with transition tables ------------------------------------


def _pg_delta(parts: list[tuple[str, str]]) -> str:
    """One grouped UPDATE from transition tables: ``parts`` are (table, sign) pairs."""
    selects = []
    for table, sign in parts:
        values = ", ".join(
            f"{sign}({expr}) AS {name}" for name, expr in _contributions("r").items()
        )
        selects.append(
            f"SELECT r.cell_id, {values} FROM {table} r"
            " WHERE r.status = 'active' AND r.cell_id IS NOT NULL"
        )
    sums = ", ".join(f"sum(x.{name}) AS {name}" for name in COUNTS)
    sets = ", ".join(f"{name} = u.{name} + d.{name}" for name in COUNTS)
    nonzero = " OR ".join(f"d.{name} <> 0" for name in COUNTS)
    return (
        f"UPDATE unit_rollup u SET {sets} FROM (SELECT x.cell_id, {sums} FROM"
        f" ({' UNION ALL '.join(selects)}) x GROUP BY x.cell_id) d"
        f" WHERE u.unit_id = d.cell_id AND ({nonzero})"
    )


def _pg_function(name: str, body: str) -> str:
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN {body}; RETURN NULL; END $$"
    )


def postgresql_ddl() -> list[str]:
    recount = "SELECT cell_id FROM member WHERE id IN ({ids})"
    account_body = (
        "IF TG_OP = 'INSERT' THEN "
        + _recount_registered(recount.format(ids="NEW.member_id"))
        + "; ELSIF TG_OP = 'DELETE' THEN "
        + _recount_registered(recount.format(ids="OLD.member_id"))
        + "; ELSE "
        + _recount_registered(recount.format(ids="OLD.member_id, NEW.member_id"))
        + "; END IF"
    )
    return [
        _pg_function(
            "rollup_unit_insert", "INSERT INTO unit_rollup (unit_id) SELECT id FROM new_units"
        ),
        "CREATE TRIGGER rollup_unit_insert AFTER INSERT ON unit REFERENCING NEW TABLE AS"
        " new_units FOR EACH STATEMENT EXECUTE FUNCTION rollup_unit_insert()",
        _pg_function("rollup_member_insert", _pg_delta([("new_rows", "+")])),
        "CREATE TRIGGER rollup_member_insert AFTER INSERT ON member REFERENCING NEW TABLE AS"
        " new_rows FOR EACH STATEMENT EXECUTE FUNCTION rollup_member_insert()",
        _pg_function("rollup_member_delete", _pg_delta([("old_rows", "-")])),
        "CREATE TRIGGER rollup_member_delete AFTER DELETE ON member REFERENCING OLD TABLE AS"
        " old_rows FOR EACH STATEMENT EXECUTE FUNCTION rollup_member_delete()",
        _pg_function("rollup_member_update", _pg_delta([("old_rows", "-"), ("new_rows", "+")])),
        "CREATE TRIGGER rollup_member_update AFTER UPDATE ON member REFERENCING OLD TABLE AS"
        " old_rows NEW TABLE AS new_rows FOR EACH STATEMENT"
        " EXECUTE FUNCTION rollup_member_update()",
        _pg_function("rollup_account", account_body),
        "CREATE TRIGGER rollup_account AFTER INSERT OR DELETE OR UPDATE OF member_id, verified,"
        " pending ON channelaccount FOR EACH ROW EXECUTE FUNCTION rollup_account()",
    ]


POSTGRESQL_TRIGGERS = (
    ("rollup_unit_insert", "unit"),
    ("rollup_member_insert", "member"),
    ("rollup_member_delete", "member"),
    ("rollup_member_update", "member"),
    ("rollup_account", "channelaccount"),
)
POSTGRESQL_FUNCTIONS = (
    "rollup_unit_insert",
    "rollup_member_insert",
    "rollup_member_delete",
    "rollup_member_update",
    "rollup_account",
)


def create_sql(dialect: str) -> list[str]:
    return postgresql_ddl() if dialect == "postgresql" else sqlite_ddl()


def drop_sql(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {t} ON {table}" for t, table in POSTGRESQL_TRIGGERS] + [
            f"DROP FUNCTION IF EXISTS {f}()" for f in POSTGRESQL_FUNCTIONS
        ]
    return [f"DROP TRIGGER IF EXISTS {t}" for t in SQLITE_TRIGGERS]
