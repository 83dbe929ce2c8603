"""PostgreSQL advisory locks for several workers sharing one database (issue 14).

SQLite serves one process, whose in-process locks suffice; on PostgreSQL several ``sotay run``
processes take the same decisions under these locks instead (``Database.locked_session``).
"""

from __future__ import annotations

from hashlib import blake2b


def lock_key(*parts: str) -> int:
    """The advisory lock of ``parts`` (e.g. a channel and a user): a signed 64-bit integer, as
    ``pg_advisory_xact_lock`` takes it, the same in every worker. An integer, so the lock can be
    taken in the transaction's opening round trip (``Database.locked_session``) with nothing
    of the user's text written into SQL."""
    digest = blake2b(":".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
