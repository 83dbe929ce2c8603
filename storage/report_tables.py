"""Light Core views of the tables the rollout report reads (``sqlalchemy.table``).

The report needs a handful of columns; declaring them here, instead of importing the SQLModel
classes, spares ``sotay report`` building every table of the schema at start-up (a quarter of a
second, a quarter of its wall time). Names and types follow storage/models.py and
storage/rollup_models.py; tests/test_rollup.py checks each column exists there.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Integer, String, column, table

from storage.rollup import COUNTS
from storage.types import UTCDateTime

unit = table(
    "unit",
    column("id", Integer),
    column("parent_id", Integer),
    column("name", String),
    column("path", String),
)
unit_rollup = table(
    "unit_rollup", column("unit_id", Integer), *(column(c, Integer) for c in COUNTS)
)
meeting = table(
    "meeting",
    column("cell_id", Integer),
    column("status", String),
    column("starts_at", UTCDateTime()),
    column("entered_in_app", Boolean),
)
ticket = table(
    "ticket",
    column("cell_id", Integer),
    column("status", String),
    column("category", String),
)
