"""The typed buttons of support and the FAQ (``a:tk``, ``a:sup``, ``a:grp``, ``a:faq``).

Buttons sent before the codecs existed are still in members' chats and in staff groups' topics:
version 1 of every codec must read their data and write exactly the same strings. Data of the
wrong shape is refused by the codec and answered as a stale button by the router.
"""

from __future__ import annotations

import pytest

from bot.callbacks import BadCallback, Callback
from handlers.faq import FaqPress, FaqVerb
from handlers.support_core import (
    VERBS,
    GroupPress,
    GroupVerb,
    MemberPress,
    MemberVerb,
    StaffVerb,
    TicketPress,
)
from tests.conftest import World
from tests.test_support import AN, link, one_ticket, report

# Every shape of data these features have sent, with the value it stands for.
WIRE: list[tuple[str, Callback]] = [
    ("a:tk:5:view", TicketPress(5, StaffVerb.view)),
    ("a:tk:5:claim", TicketPress(5, StaffVerb.claim)),
    ("a:tk:5:phone", TicketPress(5, StaffVerb.phone)),
    ("a:tk:5:fq:otp_not_received", TicketPress(5, StaffVerb.faq_send, "otp_not_received")),
    ("a:tk:5:fs", TicketPress(5, StaffVerb.faq_search)),
    ("a:sup:1:add:2", MemberPress(1, MemberVerb.add, 2)),
    ("a:sup:1:new:2", MemberPress(1, MemberVerb.new, 2)),
    ("a:sup:1:faq:2", MemberPress(1, MemberVerb.not_ticket, 2)),
    ("a:sup:1:solved", MemberPress(1, MemberVerb.solved)),
    ("a:sup:1:unsolved", MemberPress(1, MemberVerb.unsolved)),
    ("a:sup:1:close", MemberPress(1, MemberVerb.close)),
    ("a:sup:1:more", MemberPress(1, MemberVerb.more)),
    ("a:sup:1:rate:5", MemberPress(1, MemberVerb.rate, 5)),
    ("a:sup:1:skip", MemberPress(1, MemberVerb.skip)),
    ("a:grp:bind:7", GroupPress(GroupVerb.bind, 7)),
    ("a:grp:no", GroupPress(GroupVerb.cancel)),
    ("a:faq:ok:forgot_password:12", FaqPress(FaqVerb.solved, "forgot_password", 12)),
    ("a:faq:no:forgot_password:0", FaqPress(FaqVerb.not_solved, "forgot_password", 0)),
    ("a:faq:show:forgot_password:3", FaqPress(FaqVerb.show, "forgot_password", 3)),
    ("a:faq:show:forgot_password", FaqPress(FaqVerb.show, "forgot_password")),
    ("a:faq:nm:4", FaqPress(FaqVerb.no_match, None, 4)),
    ("a:faq:sup:0", FaqPress(FaqVerb.to_staff, None, 0)),
    ("a:faq:t:account", FaqPress(FaqVerb.topic, "account")),
]


@pytest.mark.engine_neutral
@pytest.mark.parametrize(("data", "value"), WIRE, ids=[data for data, _ in WIRE])
def test_version_one_reads_and_writes_the_data_of_buttons_already_sent(
    data: str, value: Callback
) -> None:
    _, action, *args = data.split(":")
    assert action == type(value).key()
    assert type(value).decode(args) == value
    assert value.encode() == data


@pytest.mark.engine_neutral
@pytest.mark.parametrize(
    ("codec", "args"),
    [
        (TicketPress, []),
        (TicketPress, ["5"]),
        (TicketPress, ["x", "view"]),
        (TicketPress, ["5", "steal"]),
        (TicketPress, ["5", "fq", "otp", "extra"]),
        (MemberPress, ["1"]),
        (MemberPress, ["1", "rate", "five"]),
        (MemberPress, ["1", "delete"]),
        (MemberPress, ["", "close"]),
        (GroupPress, []),
        (GroupPress, ["bind", "x"]),
        (GroupPress, ["join", "7"]),
        (FaqPress, []),
        (FaqPress, ["zz", "otp"]),
        (FaqPress, ["ok", "otp", "q"]),
        (FaqPress, ["nm", "x"]),
        (FaqPress, ["sup", "1", "2"]),
    ],
)
def test_data_of_the_wrong_shape_is_refused(codec: type[Callback], args: list[str]) -> None:
    with pytest.raises(BadCallback):
        codec.decode(args)


@pytest.mark.engine_neutral
def test_every_staff_button_is_checked_as_a_verb_of_the_policy() -> None:
    """``may`` knows nine verbs; the two FAQ presses are checked as "faq", none goes unchecked."""
    assert {verb.permission for verb in StaffVerb} == set(VERBS)
    assert StaffVerb.faq_send.permission == StaffVerb.faq_search.permission == "faq"


def raw(data: str) -> str:
    """A button's data without its signature."""
    return data.rsplit("~", 1)[0]


async def test_buttons_sent_keep_their_wire_format_and_misshapen_presses_are_stale(
    world: World,
) -> None:
    an = await link(world, "an", AN)
    staff = world.chat("canbo")  # the demo commune's support staff
    await report(an)
    card = staff.new()[-1]
    assert [raw(c.data) for row in card.choices for c in row] == [
        "a:tk:1:claim",
        "a:tk:1:reply",
        "a:tk:1:faq",
        "a:tk:1:db",
        "a:tk:1:done",
        "a:tk:1:up",
        "a:tk:1:down",
    ]
    await an.say("/tickets")
    assert [raw(c.data) for row in an.last.choices for c in row] == [
        "a:sup:1:more",
        "a:sup:1:close",
    ]
    signer = world.app.services.signer
    for data in ("a:sup:1:rate:x", "a:sup:1:bogus", "a:sup:x:close", "a:sup:1", "a:faq:zz"):
        views = await an.press_data(signer.sign(data))
        assert "đã cũ" in views[-1].text, data
    for data in ("a:tk:1:steal", "a:tk:1", "a:tk:1:view:otp:x", "a:grp:bind:x", "a:grp:join"):
        views = await staff.press_data(signer.sign(data))
        assert "đã cũ" in views[-1].text, data
    views = await an.press_data(signer.sign("a:sup:1:rate:9"))  # well formed, no such score
    assert "đã cũ" in views[-1].text
    assert (await one_ticket(world)).rating is None
    views = await staff.press_data(signer.sign("a:tk:1:claim"))  # the real thing still works
    assert "đã cũ" not in views[-1].text
    assert (await one_ticket(world)).claimed_by is not None
