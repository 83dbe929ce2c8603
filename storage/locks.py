"""PostgreSQL advisory locks for several workers sharing one database (issue 14).

SQLite serves one process, whose in-process locks suffice; on PostgreSQL several ``sotay run``
processes take the same decisions under these locks instead.
"""

from __future__ import annotations

from sqlalchemy import BindParameter, Subquery, func
from sqlmodel import select


def lock_key(*parts: str) -> str:
    return ":".join(parts)


def holding(key: str | BindParameter[str]) -> Subquery:
    """A one-row subquery that, when a statement reads from it, waits for and then holds until
    the transaction ends the advisory lock named ``key`` (two messages of one user, handled by
    two workers, never interleave). A statement that must run under the lock takes it in its
    own round trip (``INSERT … SELECT … FROM holding(key)``; ``SELECT … FROM holding(key)``
    alone just takes it). PostgreSQL evaluates it although no column
    of it is used: the lock function is volatile, and a volatile output is never pruned."""
    lock = func.pg_advisory_xact_lock(func.hashtextextended(key, 0))
    return select(lock.label("held")).subquery("held")
