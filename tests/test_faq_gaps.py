"""From gaps to entries (issue 16): unanswered questions grouped by topic, and an administrator
turning a group into a phrasing of an entry or a new entry in the chat, used at once."""

from __future__ import annotations

from sqlmodel import select

from bot.faq.gaps import cluster_questions, content_key
from handlers.faq_gaps import gap_clusters, settle
from storage.faq_models import FaqEntryRow, FaqQuery
from tests.conftest import World

FOOTBALL = ("Bóng đá tối nay", "bong da toi nay")


def labels(view) -> list[str]:  # type: ignore[no-untyped-def]
    return [c.label for row in view.choices for c in row]


def test_variants_of_one_question_form_one_cluster_and_topics_stay_apart() -> None:
    questions = list(
        enumerate(
            [
                "đảng phí bao nhiêu",
                "dang phi bao nhieu a",
                "quên mật khẩu zalo",
                "quen mat khau wifi",
                "mat khau zalo quen roi",
            ],
            start=1,
        )
    )
    clusters = cluster_questions(questions)
    assert [(c.text, c.count, sorted(c.ids)) for c in clusters] == [
        ("đảng phí bao nhiêu", 2, [1, 2]),  # equal counts: the earliest asked first
        ("quên mật khẩu zalo", 2, [3, 5]),
        ("quen mat khau wifi", 1, [4]),
    ]
    assert content_key("Quên MẬT KHẨU zalo ạ!") == content_key("zalo quen mat khau")


async def _ask_unanswerable(world: World) -> None:
    await world.chat("bithu").say(FOOTBALL[0])
    await world.chat("canbo").say(FOOTBALL[1])
    async with world.app.db.reader() as session:
        clusters = await gap_clusters(session)
    assert [(c.text, c.count) for c in clusters] == [(FOOTBALL[0], 2)]


async def test_admin_adds_a_cluster_to_an_entry_and_it_answers_at_once(world: World) -> None:
    await _ask_unanswerable(world)
    admin = world.chat("admin")
    views = await admin.say("/faqgaps")
    assert "2 lần × Bóng đá tối nay" in labels(views[-1])
    views = await admin.press("2 lần × Bóng đá tối nay")
    assert "hỏi 2 lần" in views[-1].text
    await admin.press("🔎 Thêm vào mục khác…")
    views = await admin.say("tin tức")
    news = "Xem tin tức trên sổ tay ở đâu?"
    assert news in labels(views[-1])
    views = await admin.press(news)
    assert "«news»" in views[-1].text and "2 câu hỏi" in views[-1].text
    async with world.app.db.reader() as session:
        row = await session.get(FaqEntryRow, "news")
        assert row is not None and FOOTBALL[0] in row.questions["vi"]
        outcomes = {q.outcome for q in (await session.exec(select(FaqQuery))).all()}
        assert outcomes == {"added"}
        assert await gap_clusters(session) == []
    views = await world.chat("q20").say(FOOTBALL[0])
    assert views[-1].text == row.answer["vi"]
    assert "Không còn câu hỏi" in (await admin.say("/faqgaps"))[-1].text


async def test_admin_writes_a_new_entry_from_a_cluster(world: World) -> None:
    await _ask_unanswerable(world)
    admin = world.chat("admin")
    await admin.say("/faqgaps")
    await admin.press("2 lần × Bóng đá tối nay")
    await admin.press("🆕 Viết mục mới")
    await admin.press("Các chức năng khác")
    await admin.say("Trợ lý có báo kết quả bóng đá không?")
    await admin.say("Không. Trợ lý chỉ giúp về Sổ tay đảng viên và sinh hoạt chi bộ.")
    await admin.say("Does the assistant give football results?")
    views = await admin.say("No. The assistant only helps with the handbook and cell meetings.")
    assert "Đã lưu" in views[-1].text
    views = await world.chat("q21").say(FOOTBALL[1])
    assert views[-1].text == "Không. Trợ lý chỉ giúp về Sổ tay đảng viên và sinh hoạt chi bộ."
    async with world.app.db.reader() as session:
        assert await gap_clusters(session) == []


async def test_only_a_top_administrator_reviews_gaps(world: World) -> None:
    views = await world.chat("bithu").say("/faqgaps")
    assert "không có quyền" in views[-1].text


async def test_a_cluster_handled_meanwhile_is_refused_as_stale(world: World) -> None:
    await _ask_unanswerable(world)
    admin = world.chat("admin")
    await admin.say("/faqgaps")
    await admin.press("2 lần × Bóng đá tối nay")
    async with world.app.db.session() as session:  # another administrator dismisses it
        ids = [q.id for q in (await session.exec(select(FaqQuery))).all() if q.id is not None]
        assert await settle(session, ids, outcome="dismissed", entry_id=None) == 2
    views = await admin.press("🗑 Bỏ qua (không cần trả lời)")
    assert "không còn" in views[-1].text.lower() or "cũ" in views[-1].text.lower()
    async with world.app.db.reader() as session:
        assert {q.outcome for q in (await session.exec(select(FaqQuery))).all()} == {"dismissed"}
