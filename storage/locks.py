"""PostgreSQL advisory locks for several workers sharing one database (issue 14).

SQLite serves one process, whose in-process locks suffice; on PostgreSQL several ``sotay run``
processes take the same decisions under these locks instead.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession


def lock_key(*parts: str) -> str:
    return ":".join(parts)


async def hold_for_transaction(session: AsyncSession, key: str) -> None:
    """Wait for, then hold until this transaction ends, the advisory lock named ``key`` (two
    messages of one user, handled by two workers, never interleave)."""
    await session.exec(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))
