"""The FAQ index follows the knowledge base in a running bot: every import and every edit bumps
a version counter, and the index is rebuilt when the counter moves (issue 10's staleness bug)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from bot.faq import DEFAULT_KB_PATH, FaqEntry, KnowledgeBase, load_kb
from handlers.faq import FaqService, import_kb, kb_version
from storage.db import Database
from tests.conftest import World

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def swapped(kb: KnowledgeBase) -> KnowledgeBase:
    """The base with its last entry removed and a new entry, same revision, in its place.

    The old stamp (count, sum of revisions) is identical before and after this change."""
    last = kb.entries[-1]
    party_fee = FaqEntry(
        "party_fee_zz",
        last.topic,
        {"vi": ["Đóng đảng phí qua ứng dụng zzqx"], "en": ["Pay the party fee zzqx"]},
        {"vi": "Trả lời thử.", "en": "Test answer."},
        [],
    )
    return replace(kb, entries=[*kb.entries[:-1], party_fee])


async def test_replace_import_that_swaps_an_entry_is_seen_at_once(database_url: str) -> None:
    db = Database(database_url)
    service = FaqService()
    try:
        async with db.session() as session:
            before = await service.index(session, NOW)
            assert "party_fee_zz" not in {e.id for e in before.kb.entries}
            first = await kb_version(session)
        async with db.session() as session:
            result = await import_kb(
                session, swapped(load_kb(DEFAULT_KB_PATH)), now=NOW, replace=True
            )
            assert (result.created, result.removed) == (1, 1)
        async with db.session() as session:
            assert await kb_version(session) == first + 1
            after = await service.index(session, NOW)
        assert after is not before
        assert "party_fee_zz" in {e.id for e in after.kb.entries}
        assert after.ask("Đóng đảng phí qua ứng dụng zzqx").candidates[0].entry_id == "party_fee_zz"
    finally:
        await db.dispose()


async def test_topic_only_change_is_seen(database_url: str) -> None:
    db = Database(database_url)
    service = FaqService()
    try:
        async with db.session() as session:
            await service.index(session, NOW)
        kb = load_kb(DEFAULT_KB_PATH)
        retitled = replace(
            kb,
            topics=[
                replace(kb.topics[0], title={"vi": "Mục mới", "en": "New heading"}),
                *kb.topics[1:],
            ],
        )
        async with db.session() as session:
            await import_kb(session, retitled, now=NOW)
        async with db.session() as session:
            index = await service.index(session, NOW)
        assert index.kb.topics[0].title["vi"] == "Mục mới"
    finally:
        await db.dispose()


async def test_unchanged_base_keeps_the_same_index(database_url: str) -> None:
    db = Database(database_url)
    service = FaqService()
    try:
        async with db.session() as session:
            first = await service.index(session, NOW)
        async with db.session() as session:
            assert await service.index(session, NOW) is first
    finally:
        await db.dispose()


async def test_faqedit_bumps_the_version(world: World) -> None:
    admin = world.chat("admin")
    await admin.say("/faqedit")  # the first use imports the shipped base
    async with world.app.db.reader() as session:
        before = await kb_version(session)
    await admin.say("quên mật khẩu")
    await admin.press("Quên mật khẩu Sổ tay đảng viên")
    await admin.press("Thêm một cách hỏi (tiếng Việt)")
    await admin.say("Mật mã vào Sổ tay bị mất rồi")
    async with world.app.db.reader() as session:
        assert await kb_version(session) == before + 1
