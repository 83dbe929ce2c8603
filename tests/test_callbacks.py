"""Typed button data (bot/callbacks.py): one codec per action, the wire format of buttons already
sent kept for version 1, and data of the wrong shape answered as a stale button."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import pytest

from bot.callbacks import BadCallback, Callback
from handlers.meetings.common import CardVerb, MeetingAnswer, MeetingCard, NewMeeting, NoticeAnswer
from tests.conftest import World
from tests.test_meetings import create_meeting, link_members


class Colour(StrEnum):
    red = "r"


@dataclass(frozen=True)
class Sample(Callback):
    action: ClassVar[str] = "smp"
    version: ClassVar[int] = 2
    item: int
    colour: Colour
    urgent: bool
    note: str


@dataclass(frozen=True)
class WithOptional(Callback):
    action: ClassVar[str] = "opt"
    item: int
    note: str | None = None
    count: int | None = None


@pytest.mark.engine_neutral
def test_optional_trailing_fields_are_left_off_while_none() -> None:
    assert WithOptional(1).encode() == "a:opt:1"
    assert WithOptional(1, "x").encode() == "a:opt:1:x"
    assert WithOptional(1, "x", 0).encode() == "a:opt:1:x:0"  # 0 is a value, not "absent"
    assert WithOptional.decode(["1"]) == WithOptional(1)
    assert WithOptional.decode(["1", "x", "0"]) == WithOptional(1, "x", 0)
    for args in ([], ["1", "x", "0", "y"], ["1", "x", "z"]):
        with pytest.raises(BadCallback):
            WithOptional.decode(args)
    with pytest.raises(ValueError, match="trailing"):
        WithOptional(1, None, 3).encode()  # a gap would shift the fields after it


@pytest.mark.engine_neutral
def test_version_one_keeps_the_wire_format_of_buttons_already_in_chats() -> None:
    assert MeetingCard(5, CardVerb.change).encode() == "a:mtc:5:ch"
    assert MeetingAnswer(7, NoticeAnswer.absent).encode() == "a:mt:7:n"
    assert NewMeeting(3).encode() == "a:mtnew:3"
    assert MeetingCard.decode(["5", "apy"]) == MeetingCard(5, CardVerb.in_app_yes)


@pytest.mark.engine_neutral
def test_a_later_version_is_its_own_action_and_fields_round_trip() -> None:
    value = Sample(12, Colour.red, True, "x")
    assert value.encode() == "a:smp.2:12:r:1:x"
    assert Sample.key() == "smp.2"
    assert Sample.decode(value.encode().split(":")[2:]) == value


@pytest.mark.engine_neutral
@pytest.mark.parametrize(
    "args",
    [[], ["5"], ["5", "ch", "x"], ["five", "ch"], ["5", "zz"], ["", "ch"], ["5", ""]],
)
def test_data_of_the_wrong_shape_is_refused(args: list[str]) -> None:
    with pytest.raises(BadCallback):
        MeetingCard.decode(args)


@pytest.mark.engine_neutral
def test_a_field_that_would_break_the_format_is_refused_when_encoding() -> None:
    with pytest.raises(ValueError):
        Sample(1, Colour.red, False, "a:b").encode()


async def test_a_signed_press_of_the_wrong_shape_is_a_stale_button(world: World) -> None:
    """Signed by us but of an older shape (or a bug): refused politely, nothing changes."""
    await link_members(world)
    secretary = world.chat("bithu")
    await create_meeting(secretary)
    signer = world.app.services.signer
    for data in ("a:mtc:1:zz", "a:mtc:1", "a:mtc:x:ch", "a:mt:1:maybe", "a:mtnew:"):
        views = await secretary.press_data(signer.sign(data))
        assert "cũ" in views[-1].text, data
    views = await secretary.press_data(signer.sign(MeetingCard(1, CardVerb.status).encode()))
    assert "cũ" not in views[-1].text
