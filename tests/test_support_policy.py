"""Who may do what on a ticket: the permission rule as a table, without a database.

The end-to-end table in tests/test_support.py presses every button as every role and checks the
replies and rows; this one checks the rule itself for every verb, role and place in the tree,
including pending accounts and deputies, in milliseconds.
"""

from __future__ import annotations

import pytest

from bot.context import Actor
from handlers.support_core import HELPER_VERBS, VERBS, may
from storage.models import ChannelAccount, Member, Role, RoleGrant, Unit

CELL = "Tỉnh Thử / Huyện Đông / Xã Xuân / Chi bộ Cây Thị"
PLACES = {
    "province": ("Tỉnh Thử", True),
    "district": ("Tỉnh Thử / Huyện Đông", True),
    "commune": ("Tỉnh Thử / Huyện Đông / Xã Xuân", True),
    "the cell": (CELL, True),
    "another commune": ("Tỉnh Thử / Huyện Đông / Xã Hạ", False),
    "another district": ("Tỉnh Thử / Huyện Tây", False),
    "a look-alike name": ("Tỉnh Thử / Huyện Đông / Xã Xuân Mới", False),
    "a wildcard name": ("Tỉnh Thử / Huyện Đông / Xã Xu_n", False),
}


def unit(path: str) -> Unit:
    return Unit(name=path.rsplit(" / ", 1)[-1], path=path, depth=path.count(" / "))


def actor(role: Role | None, path: str = CELL, *, pending: bool = False) -> Actor:
    member = Member(id=7, full_name="Người Thử")
    account = ChannelAccount(channel="x", user_ref="1", chat_ref="1", member_id=7, pending=pending)
    grants = [] if role is None else [(RoleGrant(member_id=7, role=role, unit_id=1), unit(path))]
    return Actor(account=account, member=member, grants=grants)


def expected(role: Role | None, serves: bool) -> set[str]:
    if role in (Role.staff, Role.admin) and serves:
        return set(VERBS)
    if role in (Role.secretary, Role.deputy) and serves:
        return set(HELPER_VERBS)
    return set()


@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("role", [None, Role.secretary, Role.deputy, Role.staff, Role.admin])
def test_every_verb_for_every_role_and_place(role: Role | None, place: str) -> None:
    path, serves = PLACES[place]
    who = actor(role, path)
    allowed = {verb for verb in VERBS if may(who, verb, unit(CELL))}
    assert allowed == expected(role, serves)


@pytest.mark.parametrize("role", [Role.staff, Role.admin, Role.secretary])
def test_a_pending_account_may_do_nothing_whatever_the_role(role: Role) -> None:
    who = actor(role, "Tỉnh Thử", pending=True)
    assert not any(may(who, verb, unit(CELL)) for verb in VERBS)


def test_an_unknown_verb_is_never_a_helper_verb() -> None:
    assert not may(actor(Role.secretary), "done-and-dusted", unit(CELL))
