"""A roll call in a dialog: one option per member, marked or not, pressed to flip, then "done".

Meetings mark who was absent, training who came: the same step with other marks and words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bot.dialogs import Option
from storage.models import Member


def roll_call(
    members: Sequence[Member], marked: Iterable[int], marks: tuple[str, str], done: str
) -> list[Option]:
    """The members as options, ``marks[0]`` on the marked ones and ``marks[1]`` on the rest,
    then the ``done`` option."""
    chosen = set(marked)
    options = [
        Option(str(m.id), f"{marks[0] if m.id in chosen else marks[1]} {m.full_name or '?'}")
        for m in members
    ]
    return [*options, Option("done", done)]


def flipped(marked: list[int], member_id: int) -> list[int]:
    """The marked ids after a press on ``member_id``: marked now if it was not, and back."""
    return [m for m in marked if m != member_id] if member_id in marked else [*marked, member_id]
