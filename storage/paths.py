"""Unit paths ("Tỉnh X / Huyện Y / Chi bộ Z") and the one SQL test of "in this subtree".

Kept free of the table definitions so that a quick command (``sotay report``) can scope its
queries without loading every SQLModel table.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, or_

PATH_SEP = " / "


def within(path: str, scope: str) -> bool:
    """True when the unit at ``path`` is ``scope`` itself or lies below it."""
    return path == scope or path.startswith(scope + PATH_SEP)


def in_subtree(path_column: Any, scope_path: str) -> ColumnElement[bool]:
    """SQL for "the unit at ``path_column`` is ``scope_path`` or lies below it".

    The one way every query scopes by unit: the prefix is matched literally (LIKE wildcards
    escaped), so a unit whose name holds ``_`` or ``%`` never widens anyone's scope.
    """
    return or_(
        path_column == scope_path,
        path_column.startswith(scope_path + PATH_SEP, autoescape=True),
    )
