"""Unit paths ("Tỉnh X / Huyện Y / Chi bộ Z") and the one SQL test of "in this subtree".

Kept free of the table definitions so that a quick command (``sotay report``) can scope its
queries without loading every SQLModel table.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from sqlalchemy import ColumnElement, or_

PATH_SEP = " / "


def normalized_path(path: str) -> str:
    """A path as typed ("Tỉnh X/ Huyện Y ") in the stored form ("Tỉnh X / Huyện Y")."""
    return PATH_SEP.join(part.strip() for part in path.split("/") if part.strip())


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


class UnitNotFound(LookupError):
    """An operator's ``--unit`` names no unit, or several: the message says which.

    ``key`` and ``values`` name the catalog text, so the command line can word it in the
    operator's language (storage does not read the catalogs); ``str()`` stays English."""

    def __init__(self, message: str, key: str, **values: object) -> None:
        super().__init__(message)
        self.key, self.values = key, values


class _HasPath(Protocol):
    @property
    def path(self) -> str: ...


U = TypeVar("U", bound=_HasPath)


def the_one(typed: str, found: list[U]) -> U:
    """The one unit an operator's ``--unit`` matched; else UnitNotFound saying what to type."""
    if len(found) == 1:
        return found[0]
    if not found:
        raise UnitNotFound(f"no unit named '{typed}'", "op.unit.none", path=typed)
    shown = ", ".join(f"'{unit.path}'" for unit in found[:5])
    raise UnitNotFound(
        f"'{typed}' names {len(found)} units ({shown}); give more of the path",
        "op.unit.many",
        path=typed,
        n=len(found),
        shown=shown,
    )
