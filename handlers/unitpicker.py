"""Choosing a unit step by step down the tree, or by typing part of its name.

Used for an applicant's cell and an admin's invite unit. The picker keeps its position in the
dialog's data, so it survives a restart like any other step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from bot.context import Ctx
from bot.dialogs import Answer, Option, Prompt, Retry
from bot.textfold import fold
from storage import queries
from storage.ids import id_of
from storage.models import Unit

PAGE = 8


class PickerState(TypedDict, total=False):
    """The picker's position, kept in the dialog's data of the flow that uses it."""

    pick_root: int  # picking below this unit (absent: the whole tree)
    pick_parent: int | None  # the unit whose children are shown
    pick_page: int
    pick_found: list[int]  # units found by the last search
    pick_inner: bool  # a unit with children may be chosen too


@dataclass(frozen=True)
class Picked:
    unit: Unit


async def _root(ctx: Ctx, state: PickerState) -> Unit | None:
    root_id = state.get("pick_root")
    return await ctx.session.get(Unit, root_id) if root_id else None


def _labels(units: list[Unit]) -> list[str]:
    """Names as shown; two units of the same name ("Chi bộ cơ quan xã" in two communes) carry
    their parent's name too, so a person picks the right one."""
    names = [u.name for u in units]
    return [
        f"{u.name} — {u.path.split(queries.PATH_SEP)[-2]}"
        if names.count(u.name) > 1 and queries.PATH_SEP in u.path
        else u.name
        for u in units
    ]


async def prompt(ctx: Ctx, state: PickerState, *, question_key: str) -> Prompt:
    """Children of the current node (a page of them), or the units found by the last search."""
    found = state.get("pick_found")
    if found:
        units = [u for u in [await ctx.session.get(Unit, unit_id) for unit_id in found] if u]
        options = [
            Option(f"u{u.id}", label) for u, label in zip(units, _labels(units), strict=True)
        ]
        options.append(Option("browse", ctx.t("picker.browse")))
        return Prompt(ctx.t("picker.found"), options, free_text=True)
    parent_id = state.get("pick_parent") or state.get("pick_root")
    children = list(await queries.child_units(ctx.session, parent_id=parent_id))
    page = state.get("pick_page", 0)
    shown = children[page * PAGE : (page + 1) * PAGE]
    options = [Option(f"u{u.id}", u.name) for u in shown]
    if (page + 1) * PAGE < len(children):
        options.append(Option("more", ctx.t("picker.more")))
    if parent_id and parent_id != state.get("pick_root"):
        options.append(Option("up", ctx.t("picker.up")))
    parent = await ctx.session.get(Unit, parent_id) if parent_id else None
    if parent is not None and state.get("pick_inner"):
        options.insert(0, Option("here", ctx.t("picker.here", unit=parent.name)))
    where = ctx.t("picker.inside", unit=parent.name) if parent else ""
    return Prompt(f"{ctx.t(question_key)}{where}\n{ctx.t('picker.hint')}", options, free_text=True)


async def answer(ctx: Ctx, state: PickerState, reply: Answer) -> Picked | Retry | None:
    """``Picked`` when a unit was chosen; ``None`` to ask again at the new position."""
    value = reply.value
    if value == "browse":
        state.pop("pick_found", None)
        return None
    if value == "here":
        here = await ctx.session.get(Unit, state.get("pick_parent") or state.get("pick_root"))
        return Picked(here) if here is not None else Retry("common.stale_button")
    if value == "more":
        state["pick_page"] = state.get("pick_page", 0) + 1
        return None
    if value == "up":
        parent = await ctx.session.get(Unit, state.get("pick_parent"))
        state["pick_parent"] = parent.parent_id if parent else None
        state["pick_page"] = 0
        return None
    if value and value.startswith("u"):
        return await _choose(ctx, state, int(value[1:]))
    return await _search(ctx, state, reply.text or "")


async def _choose(ctx: Ctx, state: PickerState, unit_id: int) -> Picked | Retry | None:
    unit = await ctx.session.get(Unit, unit_id)
    root = await _root(ctx, state)
    if unit is None or (root is not None and not queries.within(unit.path, root.path)):
        return Retry("common.stale_button")
    state.pop("pick_found", None)
    if not await queries.is_leaf(ctx.session, unit_id=unit_id):
        state["pick_parent"], state["pick_page"] = unit_id, 0
        return None
    return Picked(unit)


async def _search(ctx: Ctx, state: PickerState, text: str) -> Retry | None:
    folded = fold(text)
    if len(folded) < 2:
        return Retry("picker.too_short")
    root = await _root(ctx, state)
    units = await queries.search_units(
        ctx.session, folded_query=folded, under_path=root.path if root else None
    )
    if not units:
        return Retry("picker.none_found")
    state["pick_found"] = [id_of(u) for u in units]
    return None


def reset(state: PickerState, *, root_id: int | None = None, inner: bool = False) -> None:
    """Start picking below ``root_id`` (the whole tree when None); ``inner`` allows non-cells."""
    state.pop("pick_parent", None)
    state.pop("pick_page", None)
    state.pop("pick_found", None)
    state.pop("pick_root", None)
    if root_id is not None:
        state["pick_root"] = root_id
    state["pick_inner"] = inner
