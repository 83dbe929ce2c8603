"""The FAQ as members meet it: free text answered or suggested, unknown questions offered to
staff and recorded without identity, browsing, admin editing, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import unicodedata
from pathlib import Path

import pytest
from sqlmodel import select

from bot.faq import DEFAULT_KB_PATH, load_kb
from storage.faq_models import FaqEntryRow, FaqQuery
from tests.conftest import World
from tests.harness import telegram_server
from tests.sotay_cli import run_sotay
from tests.test_telegram_e2e import bot  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e(server=telegram_server)

KB = load_kb(DEFAULT_KB_PATH)


def answer_of(entry_id: str, lang: str = "vi") -> str:
    return KB.get(entry_id).answer[lang]


def labels(view) -> list[str]:  # type: ignore[no-untyped-def]
    return [c.label for row in view.choices for c in row]


async def queries(world: World) -> list[FaqQuery]:
    async with world.app.db.reader() as session:
        return list((await session.exec(select(FaqQuery))).all())


@pytest.mark.parametrize(
    ("text", "entry_id"),
    [
        ("ko nhan dc ma otp", "otp_not_received"),
        ("quên mk", "forgot_password"),
        ("Khong nhan duoc ma OTP", "otp_not_received"),
    ],
)
async def test_member_gets_the_answer_with_solved_buttons(
    world: World, text: str, entry_id: str
) -> None:
    chat = world.chat("q1")
    views = await chat.say(text)
    assert views[-1].text == answer_of(entry_id)
    assert labels(views[-1]) == ["✓ Đã giải quyết", "✗ Chưa giải quyết"]
    views = await chat.press("✓ Đã giải quyết")
    assert "vui" in views[-1].text


async def test_english_question_gets_an_english_answer(world: World) -> None:
    views = await world.chat("q2", lang_hint="en").say("I forgot my password for the handbook app")
    assert views[-1].text == answer_of("forgot_password", "en")


async def test_nfd_input_gets_the_same_answer_as_nfc(world: World) -> None:
    text = "Quên mật khẩu thì làm sao?"
    nfc = await world.chat("q3").say(text)
    nfd = await world.chat("q4").say(unicodedata.normalize("NFD", text))
    assert nfc[-1].text == nfd[-1].text == answer_of("forgot_password")


async def test_unknown_question_is_offered_to_staff_and_recorded_anonymously(world: World) -> None:
    question = "Con trâu nhà tôi bị ốm, gọi tôi số 0912 345 678"
    views = await world.chat("q5").say(question)  # someone who never consented
    assert "chưa có câu trả lời" in views[-1].text
    assert "📨 Gửi cho cán bộ hỗ trợ" in labels(views[-1])
    assert await queries(world) == []  # answered, but nothing of theirs is kept
    views = await world.chat("bithu").say(question)  # a registered member
    assert "chưa có câu trả lời" in views[-1].text
    [query] = await queries(world)
    assert query.outcome == "none" and "0912" not in query.text and "…" in query.text
    assert query.asker_id is not None and not hasattr(query, "chat_ref")  # kept only for /forget


async def test_uncertain_match_offers_choices_and_none_of_these(world: World) -> None:
    chat = world.chat("bithu")  # registered: their questions are kept for the gaps digest
    views = await chat.say("điện thoại")
    assert views[-1].text.startswith("Tôi chưa chắc")
    assert labels(views[-1])[-1] == "Không phải các câu trên" and 2 <= len(labels(views[-1])) <= 4
    views = await chat.press("Không phải các câu trên")
    assert "cán bộ hỗ trợ" in views[-1].text
    assert [q.outcome for q in await queries(world)] == ["no_match"]


async def test_not_solved_is_recorded_and_offered_to_staff(world: World) -> None:
    chat = world.chat("bithu")
    await chat.say("quên mật khẩu")
    views = await chat.press("✗ Chưa giải quyết")
    assert "Gửi cho cán bộ hỗ trợ" in str(views[-1].choices)
    [query] = await queries(world)
    assert (query.outcome, query.entry_id) == ("not_solved", "forgot_password")


@pytest.mark.parametrize(
    "text",
    [
        "🙂🙂🙂",
        "?!?!...",
        "'; DROP TABLE member; --",
        "<script>alert(1)</script>",
        "x" * 5000,
        "今天天气怎么样",
        "Как установить приложение?",
    ],
)
@pytest.mark.engine_neutral  # the matcher, in memory
async def test_odd_questions_never_get_a_confident_wrong_answer(world: World, text: str) -> None:
    views = await world.chat("q8").say(text)
    assert views and "lỗi" not in views[-1].text
    assert "✓ Đã giải quyết" not in labels(views[-1])


async def test_browse_topics_then_questions_then_answer(world: World) -> None:
    chat = world.chat("q9")
    views = await chat.say("/faq")
    assert "Tài khoản và đăng nhập" in labels(views[-1])
    await chat.press("Tài khoản và đăng nhập")
    views = await chat.press(KB.get("otp_not_received").questions["vi"][0])
    assert views[-1].text == answer_of("otp_not_received")


async def test_admin_adds_a_phrasing_in_the_chat_and_it_is_used(world: World) -> None:
    admin = world.chat("admin")
    await admin.say("/faqedit")
    views = await admin.say("quên mật khẩu")
    assert "Quên mật khẩu Sổ tay đảng viên" in labels(views[-1])
    await admin.press("Quên mật khẩu Sổ tay đảng viên")
    await admin.press("Thêm một cách hỏi (tiếng Việt)")
    views = await admin.say("Mật mã vào Sổ tay bị mất rồi")
    assert "Đã lưu" in views[-1].text
    async with world.app.db.reader() as session:
        row = await session.get(FaqEntryRow, "forgot_password")
    assert row is not None and "Mật mã vào Sổ tay bị mất rồi" in row.questions["vi"]
    views = await world.chat("q10").say("Mật mã vào Sổ tay bị mất rồi")
    assert views[-1].text == answer_of("forgot_password")


async def test_only_admins_edit_the_faq(world: World) -> None:
    views = await world.chat("bithu").say("/faqedit")
    assert "không có quyền" in views[-1].text


async def test_monthly_digest_reaches_admins(world: World) -> None:
    from datetime import timedelta

    from bot.scheduler import ensure_recurring

    await world.chat("bithu").say("Bóng đá tối nay")
    await world.chat("canbo").say("Bóng đá tối nay")
    await world.chat("q12").say("Bóng đá tối nay")  # not registered: answered, not counted
    async with world.app.db.session() as session:
        await ensure_recurring(session, world.app.settings, world.clock.now())
    world.clock.advance(timedelta(days=32))
    await world.app.scheduler.tick()
    await world.app.dispatcher.run_once()
    digest = world.recorder.sent["admin"][-1].text
    assert "2 × Bóng đá tối nay" in digest


def sotay(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    """``sotay ARGS`` in this process as a new one would run it (tests/sotay_cli.py)."""
    env = {**os.environ, "SOTAY_DATABASE_URL": f"sqlite:///{db}"}
    return run_sotay(args, env=env, cwd=db.parent)  # a scratch folder: no developer .env is read


def test_cli_ask_import_export_and_errors(tmp_path: Path) -> None:
    db = tmp_path / "faq.db"
    assert sotay("db", "upgrade", db=db).returncode == 0
    result = sotay("faq", "ask", "ko nhan dc ma otp", "--json", db=db)
    data = json.loads(result.stdout)
    assert data["decision"] == "answer" and data["candidates"][0]["id"] == "otp_not_received"
    assert sotay("faq", "ask", "bóng đá tối nay", "--json", db=db).stdout.count('"none"') == 1
    again = sotay("faq", "import", str(DEFAULT_KB_PATH), db=db)
    assert "0 mới, 0 cập nhật" in again.stdout  # idempotent; in the operator's language (vi)
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ntopics:\n  - id: a\n    title: {vi: A, en: A\n", encoding="utf-8")
    failed = sotay("faq", "import", str(bad), db=db)
    assert failed.returncode == 1 and "line" in failed.stderr
    exported = tmp_path / "out.yaml"
    assert sotay("faq", "export", "-o", str(exported), db=db).returncode == 0
    assert len(load_kb(exported).entries) == len(KB.entries)
    assert "không có câu hỏi nào chưa được trả lời" in sotay("faq", "gaps", db=db).stdout


async def test_member_asks_over_telegram_and_gets_the_answer(bot) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    user = bot.server.user(4242, language_code="vi")
    await user.send("ko nhan dc ma otp")
    reply = await user.next_message()
    assert reply["text"] == answer_of("otp_not_received")
    await user.press(reply, "✗ Chưa giải quyết")
    assert "cán bộ hỗ trợ" in (await user.next_message())["text"]


def test_cli_ask_on_a_fresh_checkout_answers_and_leaves_no_file(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOTAY_")}
    result = run_sotay(
        ["faq", "ask", "ko nhan dc ma otp", "--json"],
        env={**env, "PYTHONPATH": str(Path(__file__).parent.parent)},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["candidates"][0]["id"] == "otp_not_received"
    assert "sotay db upgrade" in result.stderr
    assert list(tmp_path.iterdir()) == []
