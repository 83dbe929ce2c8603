"""The primary key of a stored row, as an ``int``.

SQLModel types ``id`` as ``int | None`` because a new row has no key until it is flushed. Code
that holds a row read from the database (or flushed) asks ``id_of(row)``: it is an ``int`` to the
type checker, and a row without a key fails loudly here instead of becoming id 0 in a query.
"""

from __future__ import annotations

from typing import Protocol


class HasId(Protocol):
    @property
    def id(self) -> int | None: ...


def id_of(row: HasId) -> int:
    """``row.id``, which must be set: the row was loaded, or added and flushed."""
    if row.id is None:
        raise ValueError(f"{type(row).__name__} has no id yet: add it and flush first")
    return row.id
