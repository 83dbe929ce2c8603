"""The 7-day rule's way around, through the real dispatcher: a message a channel may not
deliver (``OutsideWindow``) goes by the member's other channel, else the secretary is told."""

from __future__ import annotations

from sqlmodel import select

from bot.channels.base import Capabilities, OutsideWindow
from bot.core import View
from storage.models import ChannelAccount, Member, OutboxMessage, OutboxStatus
from tests.conftest import World

AN_PHONE = "+84912000001"


class Windowed:
    """A channel whose every member is outside its window."""

    name = "windowed"
    text_limit = 2000
    capabilities = Capabilities()

    def __init__(self) -> None:
        self.tried: list[str] = []

    async def send(self, chat_ref: str, view: View) -> str:
        self.tried.append(chat_ref)
        raise OutsideWindow("-230")


async def member_an(world: World, *, also_rec: bool) -> Member:
    async with world.app.db.session() as session:
        member = (await session.exec(select(Member).where(Member.phone == AN_PHONE))).one()
        session.add(
            ChannelAccount(
                channel="windowed", user_ref="w1", chat_ref="w1", member_id=member.id or 0
            )
        )
        if also_rec:
            session.add(
                ChannelAccount(
                    channel="rec", user_ref="r1", chat_ref="r1", member_id=member.id or 0
                )
            )
    return member


async def queue(world: World, member: Member) -> int:
    async with world.app.db.session() as session:
        row = world.app.services.outbox.add(
            session,
            channel="windowed",
            chat_ref="w1",
            view=View("Nhắc lịch: họp chi bộ 19:30"),
            member_id=member.id,
        )
        await session.flush()
        return row.id or 0


async def outcome(world: World, row_id: int) -> OutboxMessage:
    async with world.app.db.reader() as session:
        row = await session.get(OutboxMessage, row_id)
    assert row is not None
    return row


async def send_outside(world: World, *, also_rec: bool) -> tuple[Windowed, OutboxMessage]:
    """Queue a reminder to An on the windowed channel and let the dispatcher run twice (the
    message, then whatever reached An or the secretary instead)."""
    windowed = Windowed()
    world.app.add_channel(windowed)
    row_id = await queue(world, await member_an(world, also_rec=also_rec))
    await world.app.dispatcher.run_once()
    await world.app.dispatcher.run_once()
    return windowed, await outcome(world, row_id)


async def test_outside_the_window_the_member_gets_it_on_their_other_channel(world: World) -> None:
    windowed, row = await send_outside(world, also_rec=True)
    assert windowed.tried == ["w1"]
    assert [v.text for v in world.recorder.sent["r1"]] == ["Nhắc lịch: họp chi bộ 19:30"]
    assert (
        row.status == OutboxStatus.failed
        and row.last_error == "outside window: sent by another channel"
    )


async def test_with_no_other_channel_nor_zns_the_secretary_is_told_once(world: World) -> None:
    _windowed, row = await send_outside(world, also_rec=False)
    told = [v.text for views in world.recorder.sent.values() for v in views]
    assert len(told) == 1 and "Nguyễn Văn An" in told[0] and "7 ngày" in told[0]
    assert row.last_error is not None and row.last_error.startswith("outside window: secretaries")
