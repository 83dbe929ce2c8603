"""The ``unit_rollup`` table: each unit's own active members counted, kept by triggers
(storage/rollup.py says how and why)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def _count() -> int:
    return Field(default=0, sa_column_kwargs={"server_default": "0", "nullable": False})  # type: ignore[no-any-return]


class UnitRollup(SQLModel, table=True):
    """Counts over the unit's own members (not its subtree: a report adds those up)."""

    __tablename__ = "unit_rollup"

    unit_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("unit.id", ondelete="CASCADE"), primary_key=True
        )
    )
    members: int = _count()
    registered: int = _count()
    smartphone: int = _count()
    installed: int = _count()
    activated: int = _count()
    installed_hb: int = _count()
    activated_hb: int = _count()
    hb_known: int = _count()
