"""Rollout reports: exact figures for the demo organisation, worst first; access by role and
unit (forged and stale buttons); the chart, the CSV export, nudging laggard cells once a day, the
weekly digest and the CLI; and /report → chart → export over HTTP against the fake Bot API."""

from __future__ import annotations

import asyncio
import csv
import io
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from sqlmodel import select

from bot import reports
from bot.clock import FakeClock, ShiftedClock
from bot.core import View
from bot.scheduler import ensure_recurring
from handlers.reports import cli_report
from storage import queries
from storage.models import (
    ChannelAccount,
    DueJob,
    JobStatus,
    Meeting,
    MeetingKind,
    MeetingStatus,
    Member,
    Role,
    RoleGrant,
    Ticket,
    TicketStatus,
    Unit,
)
from tests.conftest import World
from tests.fake_telegram import FakeTelegram
from tests.harness import telegram_server
from tests.sotay_cli import run_sotay
from tests.test_telegram_e2e import (
    Bot,
    start_bot,
    telegram_settings,
)

PROVINCE = "Tỉnh Tuyên Quang"
HOP_THANH = f"{PROVINCE} / Xã Hợp Thành"
KHANG_NHAT = f"{PROVINCE} / Xã Kháng Nhật"
NEW_COMMUNE = f"{PROVINCE} / Xã Mới"
CAU_BAU = f"{HOP_THANH} / Chi bộ thôn Cầu Bâu"
DONG_BEN = f"{HOP_THANH} / Chi bộ thôn Đồng Bèn"
HT_OFFICE = f"{HOP_THANH} / Chi bộ cơ quan xã"
DONG_GIAN = f"{KHANG_NHAT} / Chi bộ thôn Đồng Giàn"
KHUON_THE = f"{KHANG_NHAT} / Chi bộ thôn Khuôn Thê"
KN_OFFICE = f"{KHANG_NHAT} / Chi bộ cơ quan xã"
PNG = b"\x89PNG\r\n\x1a\n"
BOM = "\ufeff".encode()

# The Telegram tests use the fake server; the rest keep the fixed clock.
pytestmark = pytest.mark.e2e(server=telegram_server, clock=FakeClock)


# --- building the situation -----------------------------------------------------------------------


async def unit(world: World, path: str) -> Unit:
    async with world.app.db.reader() as session:
        found = await queries.unit_by_path(session, path=path)
    assert found is not None, path
    return found


async def answer(world: World, phone: str, *, installed: bool | None, activated: bool | None):  # type: ignore[no-untyped-def]
    async with world.app.db.session() as session:
        member = (await session.exec(select(Member).where(Member.phone == phone))).one()
        member.app_installed, member.app_activated = installed, activated
        session.add(member)


async def meeting(
    world: World,
    path: str,
    *,
    days_ago: float,
    entered: bool | None,
    status: MeetingStatus = MeetingStatus.scheduled,
) -> None:
    cell = await unit(world, path)
    now = world.clock.now()
    async with world.app.db.session() as session:
        session.add(
            Meeting(
                cell_id=cell.id or 0,
                kind=MeetingKind.regular,
                status=status,
                starts_at=now - timedelta(days=days_ago),
                place="Nhà văn hóa",
                agenda="Sinh hoạt chi bộ",
                created_at=now,
                updated_at=now,
                entered_in_app=entered,
            )
        )


async def new_commune(world: World) -> None:
    """A commune with one cell and no members yet (its roster is not imported)."""
    province = await unit(world, PROVINCE)
    async with world.app.db.session() as session:
        commune = Unit(parent_id=province.id, name="Xã Mới", path=NEW_COMMUNE, depth=1)
        session.add(commune)
        await session.flush()
        session.add(
            Unit(
                parent_id=commune.id,
                name="Chi bộ thôn Mới",
                path=f"{NEW_COMMUNE} / Chi bộ thôn Mới",
                depth=2,
            )
        )


async def link(world: World, phone: str, ref: str, *, lang: str = "vi") -> Member:
    """Give a roster member a verified chat account, as if they had registered."""
    async with world.app.db.session() as session:
        member = (await session.exec(select(Member).where(Member.phone == phone))).one()
        session.add(
            ChannelAccount(
                channel="rec",
                user_ref=ref,
                chat_ref=ref,
                member_id=member.id or 0,
                language=lang,
                verified=True,
                created_at=world.clock.now(),
            )
        )
        return member


async def make_secretary(world: World, phone: str, ref: str, path: str, *, lang: str = "vi"):  # type: ignore[no-untyped-def]
    member = await link(world, phone, ref, lang=lang)
    cell = await unit(world, path)
    async with world.app.db.session() as session:
        session.add(
            RoleGrant(
                member_id=member.id or 0,
                role=Role.secretary,
                unit_id=cell.id or 0,
                created_at=world.clock.now(),
            )
        )


async def rollout(world: World) -> None:
    """Install/activation answers, meetings entered in the app or not, tickets, a new commune.

    Hợp Thành: Cầu Bâu and Đồng Bèn use the handbook in meetings, its office cell does not
    (only an unanswered meeting, and one in the future): 2/3. Kháng Nhật: only Đồng Giàn
    (Khuôn Thê's entered meeting is too old, the office cell's was cancelled): 1/3.
    """
    await answer(world, "+84912000001", installed=True, activated=True)
    await answer(world, "+84912000002", installed=True, activated=False)
    await answer(world, "+84912000003", installed=False, activated=False)
    await answer(world, "+84912000004", installed=True, activated=True)
    await answer(world, "+84912000008", installed=True, activated=None)
    await answer(world, "+84912000014", installed=True, activated=True)
    await meeting(world, CAU_BAU, days_ago=10, entered=True)
    await meeting(world, DONG_BEN, days_ago=5, entered=True)
    await meeting(world, DONG_BEN, days_ago=2, entered=False)
    await meeting(world, HT_OFFICE, days_ago=3, entered=None)
    await meeting(world, HT_OFFICE, days_ago=-5, entered=True)  # ahead: not yet held
    await meeting(world, DONG_GIAN, days_ago=20, entered=True)
    await meeting(world, KHUON_THE, days_ago=40, entered=True)  # before the window
    await meeting(world, KN_OFFICE, days_ago=1, entered=False)
    await meeting(world, KN_OFFICE, days_ago=2, entered=True, status=MeetingStatus.cancelled)
    cau_bau = await unit(world, CAU_BAU)
    hop_thanh = await unit(world, HOP_THANH)
    async with world.app.db.session() as session:
        an = (await session.exec(select(Member).where(Member.phone == "+84912000001"))).one()
        for status in (TicketStatus.open, TicketStatus.closed):
            session.add(
                Ticket(
                    member_id=an.id or 0,
                    cell_id=cau_bau.id or 0,
                    unit_id=hop_thanh.id or 0,
                    category="login",
                    status=status,
                    created_at=world.clock.now(),
                )
            )
    await new_commune(world)


def text_of(views: list[View]) -> str:
    return "\n".join(view.text for view in views)


def labels(view: View) -> list[str]:
    return [choice.label for row in view.choices for choice in row]


def sign(world: World, data: str) -> str:
    return world.app.services.signer.sign(data)


# --- the figures ----------------------------------------------------------------------------------


async def test_province_figures_are_exact_and_worst_first(world: World) -> None:
    await rollout(world)
    province = await unit(world, PROVINCE)
    async with world.app.db.reader() as session:
        report = await reports.unit_report(
            session, unit=province, span=reports.window(world.clock.now())
        )
    assert [c.name for c in report.children] == ["Xã Mới", "Xã Kháng Nhật", "Xã Hợp Thành"]
    new, kn, ht = report.children
    assert (new.members, new.cells, new.cells_using, new.of_members(0)) == (0, 1, 0, None)
    assert (kn.members, kn.registered, kn.installed, kn.activated) == (10, 1, 1, 1)
    assert (kn.cells, kn.cells_using, kn.meetings, kn.meetings_in_app) == (3, 1, 2, 1)
    assert (ht.members, ht.registered, ht.smartphone, ht.installed, ht.activated) == (
        14,
        2,
        10,
        4,
        2,
    )
    assert (ht.cells, ht.cells_using, ht.meetings, ht.meetings_in_app, ht.open_tickets) == (
        3,
        2,
        4,
        2,
        1,
    )
    total = report.scope
    assert (total.members, total.registered, total.installed, total.activated) == (24, 3, 5, 3)
    assert (total.cells, total.cells_using, total.open_tickets) == (7, 3, 1)
    assert total.last_meeting == world.clock.now() - timedelta(days=1)

    views = await world.chat("admin").say("/report")
    text = views[-1].text
    assert "📊 Triển khai Sổ tay: Tỉnh Tuyên Quang" in text
    assert "🗓 01/11/2026 – 01/12/2026 (30 ngày gần nhất)" in text
    assert text.index("Xã Mới") < text.index("Xã Kháng Nhật") < text.index("Xã Hợp Thành")
    assert "1. ⚠️ Xã Mới\n   0 ĐV · ĐK — · Cài — · KH —\n   Họp trên Sổ tay: 0/1 chi bộ (0%)" in text
    assert "2. ⚠️ Xã Kháng Nhật\n   10 ĐV · ĐK 10% · Cài 10% · KH 10%" in text
    assert "3. ⚠️ Xã Hợp Thành\n   14 ĐV · ĐK 14% · Cài 29% · KH 14%" in text
    assert "Họp trên Sổ tay: 2/3 chi bộ (67%) · 🆘 1" in text
    assert "Tổng cộng\n24 ĐV · ĐK 12% · Cài 21% · KH 12%\nHọp trên Sổ tay: 3/7 chi bộ (43%)" in text
    assert labels(views[-1]) == [
        "⚠️ Xã Mới",
        "⚠️ Xã Kháng Nhật",
        "⚠️ Xã Hợp Thành",
        "📊 Biểu đồ",
        "📄 Xuất CSV",
        "📗 Excel",
        "📝 Báo cáo",
        "🔔 Nhắc các chi bộ chậm",
    ]


async def test_zero_member_unit_shows_a_dash_not_an_error(world: World) -> None:
    await new_commune(world)
    admin = world.chat("admin")
    await admin.say("/report")
    views = await admin.press("⚠️ Xã Mới")
    text = views[-1].text
    assert "📊 Triển khai Sổ tay: Xã Mới" in text
    assert "0 ĐV · ĐK — · Cài — · KH —" in text
    assert "⬆️ Tỉnh Tuyên Quang" in labels(views[-1])


async def test_english_report_for_an_english_speaking_admin(world: World) -> None:
    await rollout(world)
    async with world.app.db.session() as session:
        account = (
            await session.exec(select(ChannelAccount).where(ChannelAccount.user_ref == "admin"))
        ).one()
        account.language = "en"
        session.add(account)
    views = await world.chat("admin", lang_hint="en").say("/report")
    text = views[-1].text
    assert "📊 Handbook rollout: Tỉnh Tuyên Quang" in text
    assert "10 mem · reg 10% · inst 10% · act 10%" in text
    assert "📊 Chart" in labels(views[-1])


# --- who may see what -----------------------------------------------------------------------------


async def test_secretary_sees_only_their_own_cell(world: World) -> None:
    await rollout(world)
    secretary = world.chat("bithu")
    views = await secretary.say("/report")
    text = views[-1].text
    assert "📊 Triển khai Sổ tay: Chi bộ thôn Cầu Bâu" in text
    assert "Đảng viên: 7" in text and "Đã cài Sổ tay: 3 (43%)" in text
    assert "Cuộc họp trong kỳ: 1, đã nhập vào Sổ tay: 1" in text
    assert "Cuộc họp gần nhất: 21/11/2026" in text
    assert "Đồng Bèn" not in text
    assert labels(views[-1]) == ["👥 Ai chưa cài, chưa kích hoạt"]
    hop_thanh = await unit(world, HOP_THANH)
    views = await secretary.press_data(sign(world, f"a:rp:{hop_thanh.id}:v"))
    assert "ngoài phạm vi" in views[-1].text and "Xã Hợp Thành" not in views[-1].text
    cau_bau = await unit(world, CAU_BAU)
    views = await secretary.press_data(sign(world, f"a:rp:{cau_bau.id}:y"))  # nudging is staff's
    assert "ngoài phạm vi" in views[-1].text


async def test_plain_member_is_told_it_is_for_committee_staff(world: World) -> None:
    await link(world, "+84912000001", "an")
    views = await world.chat("an").say("/report")
    assert "dành cho bí thư chi bộ và cán bộ" in views[-1].text
    assert "Báo cáo triển khai" not in labels((await world.chat("an").say("/menu"))[-1])
    assert "📊 Báo cáo triển khai" in labels((await world.chat("canbo").say("/menu"))[-1])
    views = await world.chat("stranger").say("/report")
    assert "chưa đăng ký" in views[-1].text


async def test_forged_or_stale_drill_down_into_another_commune_is_refused(world: World) -> None:
    await rollout(world)
    staff = world.chat("canbo")  # staff of Xã Hợp Thành
    views = await staff.say("/report")
    assert "📊 Triển khai Sổ tay: Xã Hợp Thành" in views[-1].text
    assert "Kháng Nhật" not in views[-1].text
    assert labels(views[-1])[:3] == [
        "⚠️ Chi bộ cơ quan xã",
        "✅ Chi bộ thôn Đồng Bèn",  # both cells meet in the handbook: fewer installs first
        "✅ Chi bộ thôn Cầu Bâu",
    ]
    kn = await unit(world, KHANG_NHAT)
    for verb in ("v", "c", "x", "n", "y"):  # a signed button for a unit outside their subtree
        views = await staff.press_data(sign(world, f"a:rp:{kn.id}:{verb}"))
        assert "ngoài phạm vi" in views[-1].text and views[-1].upload is None
    views = await staff.press_data(f"a:rp:{kn.id}:v~forged00")  # a bad signature
    assert "Nút này đã cũ" in views[-1].text
    views = await staff.press("⚠️ Chi bộ cơ quan xã")  # their own subtree drills down fine
    assert "📊 Triển khai Sổ tay: Chi bộ cơ quan xã" in views[-1].text
    assert "Cuộc họp trong kỳ: 1, đã nhập vào Sổ tay: 0" in views[-1].text
    assert "⬆️ Xã Hợp Thành" in labels(views[-1])


# --- files ----------------------------------------------------------------------------------------


async def test_chart_is_a_png_photo(world: World) -> None:
    await rollout(world)
    admin = world.chat("admin")
    await admin.say("/report")
    views = await admin.press("📊 Biểu đồ")
    upload = views[-1].upload
    assert upload is not None and upload.kind == "photo"
    assert upload.data.startswith(PNG) and len(upload.data) > 10_000
    assert upload.name == "sotay-tinh-tuyen-quang-2026-12-01.png"
    assert "Tỉnh Tuyên Quang" in views[-1].text


async def test_csv_export_has_bom_header_and_one_row_per_cell(world: World) -> None:
    await rollout(world)
    staff = world.chat("canbo")
    await staff.say("/report")
    views = await staff.press("📄 Xuất CSV")
    upload = views[-1].upload
    assert upload is not None and upload.kind == "document" and upload.name.endswith(".csv")
    assert upload.data.startswith(BOM)
    rows = list(csv.reader(io.StringIO(upload.data[len(BOM) :].decode("utf-8"))))
    assert rows[0] == [
        "Đơn vị cấp trên",
        "Chi bộ",
        "Đảng viên",
        "Đã đăng ký trợ lý",
        "Có điện thoại thông minh",
        "Đã cài Sổ tay",
        "Đã kích hoạt",
        "Cuộc họp trong kỳ",
        "Cuộc họp nhập vào Sổ tay",
        "Cuộc họp gần nhất",
    ]
    assert rows[1:] == [
        [HOP_THANH, "Chi bộ cơ quan xã", "1", "1", "1", "0", "0", "1", "0", "2026-11-28"],
        [HOP_THANH, "Chi bộ thôn Cầu Bâu", "7", "1", "5", "3", "2", "1", "1", "2026-11-21"],
        [HOP_THANH, "Chi bộ thôn Đồng Bèn", "6", "0", "4", "1", "0", "2", "1", "2026-11-29"],
    ]
    assert "3 chi bộ" in views[-1].text


# --- nudging laggards -----------------------------------------------------------------------------


async def test_nudge_reaches_each_laggard_secretary_once_a_day(world: World) -> None:
    await meeting(world, CAU_BAU, days_ago=3, entered=True)  # Cầu Bâu is not a laggard
    await make_secretary(world, "+84912000008", "hanh", DONG_BEN)
    await make_secretary(world, "+84912000019", "viet", KHUON_THE, lang="en")
    bithu, hanh, viet = world.chat("bithu"), world.chat("hanh"), world.chat("viet", "en")
    admin = world.chat("admin")
    await admin.say("/report")
    views = await admin.press("🔔 Nhắc các chi bộ chậm")
    assert "5 chi bộ thuộc Tỉnh Tuyên Quang chưa có cuộc họp nào" in views[-1].text
    views = await admin.press("🔔 Gửi nhắc (5 chi bộ)")
    report = views[-1].text
    assert "Đã gửi lời nhắc tới bí thư của 2 chi bộ" in report
    assert (
        "Không có bí thư để nhắc (3 chi bộ): Xã Hợp Thành / Chi bộ cơ quan xã, "
        "Xã Kháng Nhật / Chi bộ cơ quan xã, Xã Kháng Nhật / Chi bộ thôn Đồng Giàn."
    ) in report
    [to_hanh] = hanh.new()
    assert "Chi bộ thôn Đồng Bèn" in to_hanh.text and "/meeting" in to_hanh.text
    [to_viet] = viet.new()
    assert to_viet.text.startswith("Dear secretary of Chi bộ thôn Khuôn Thê")
    assert bithu.new() == []

    views = await admin.press("🔔 Gửi nhắc (5 chi bộ)")  # pressed again the same day
    assert "Đã gửi lời nhắc tới bí thư của 0 chi bộ" in views[-1].text
    assert "2 chi bộ đã được nhắc hôm nay" in views[-1].text
    await world.chat("canbo").press_data(sign(world, f"a:rp:{(await unit(world, HOP_THANH)).id}:y"))
    assert hanh.new() == [] and viet.new() == []

    world.clock.advance(timedelta(days=1))  # a new day: a new nudge is due
    await admin.press("🔔 Gửi nhắc (5 chi bộ)")
    assert len(hanh.new()) == 1 and len(viet.new()) == 1


async def test_nudge_when_every_cell_uses_the_handbook(world: World) -> None:
    staff = world.chat("canbo")
    for path in (CAU_BAU, DONG_BEN, HT_OFFICE):
        await meeting(world, path, days_ago=4, entered=True)
    await staff.say("/report")
    views = await staff.press("🔔 Nhắc các chi bộ chậm")
    assert "Không cần nhắc" in views[-1].text and views[-1].choices == []


# --- the weekly digest ----------------------------------------------------------------------------


async def weekly_jobs(world: World) -> list[DueJob]:
    async with world.app.db.reader() as session:
        stmt = select(DueJob).where(DueJob.kind == "rp_weekly").order_by(DueJob.due_at)
        return list((await session.exec(stmt)).all())


async def test_weekly_digest_fires_monday_0800_local_and_rearms(world: World) -> None:
    await rollout(world)  # the clock: Tuesday 1 December 2026, 10:00 in Hà Nội
    async with world.app.db.session() as session:
        await ensure_recurring(session, world.app.settings, world.clock.now())
    async with world.app.db.session() as session:  # ensured twice: still one
        await ensure_recurring(session, world.app.settings, world.clock.now())
    [job] = await weekly_jobs(world)
    monday = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội
    assert job.due_at == monday

    admin = world.chat("admin")
    world.clock.advance(monday - timedelta(minutes=1) - world.clock.now())
    await world.app.scheduler.tick()  # other daily work (the outbox purge) may run meanwhile
    [job] = await weekly_jobs(world)
    assert job.status == JobStatus.pending
    world.clock.advance(timedelta(minutes=1))
    assert await world.app.scheduler.tick() >= 1
    await world.app.dispatcher.run_once()
    digest = admin.new()[-1]
    assert digest.text.startswith("📬 Báo cáo tuần: triển khai Sổ tay\n📈 Tuần đầu ghi nhận")
    assert "\n📊 Triển khai Sổ tay: Tỉnh Tuyên Quang" in digest.text
    assert digest.text.index("Xã Mới") < digest.text.index("Xã Kháng Nhật")
    assert "📊 Biểu đồ" in labels(digest)
    done, rearmed = await weekly_jobs(world)
    assert done.status == JobStatus.done and done.note == "sent to 1"
    assert rearmed.status == JobStatus.pending and rearmed.due_at == monday + timedelta(days=7)

    world.clock.advance(timedelta(days=9))  # the bot was down through the next Monday
    assert await world.app.scheduler.tick() >= 1
    await world.app.dispatcher.run_once()
    assert admin.new() == []  # two days late: skipped on purpose, not sent stale
    jobs = await weekly_jobs(world)
    assert jobs[1].status == JobStatus.skipped and jobs[1].note.endswith("h late")
    assert jobs[2].status == JobStatus.pending and jobs[2].due_at == monday + timedelta(days=14)


# --- the CLI --------------------------------------------------------------------------------------


async def test_cli_report_text_csv_and_chart(world: World, tmp_path: Path) -> None:
    await rollout(world)
    csv_path, chart_path = tmp_path / "out.csv", tmp_path / "out.png"
    text = await cli_report(
        world.app.settings,
        unit_path=HOP_THANH,
        csv_path=csv_path,
        chart_path=chart_path,
        now=world.clock.now(),
    )
    assert "📊 Triển khai Sổ tay: Xã Hợp Thành" in text
    assert "14 ĐV · ĐK 14% · Cài 29% · KH 14%\nHọp trên Sổ tay: 2/3 chi bộ (67%)" in text
    assert f"CSV: {csv_path} (3 chi bộ)" in text
    data = csv_path.read_bytes()
    assert data.startswith(BOM) and data.count(b"\r\n") == 4
    assert chart_path.read_bytes().startswith(PNG)
    root = await cli_report(world.app.settings, now=world.clock.now())
    assert root.startswith("📊 Triển khai Sổ tay: Tỉnh Tuyên Quang")


async def test_cli_command_prints_the_report_and_fails_in_one_line(
    world: World, tmp_path: Path
) -> None:
    env = {**os.environ, "SOTAY_DATABASE_URL": world.app.settings.database_url}

    async def sotay(*args: str) -> tuple[int, str, str]:
        # in this process as a new one would run it (tests/sotay_cli.py); in a scratch folder:
        # no developer .env or sotay.db is read
        done = await asyncio.to_thread(run_sotay, args, env=env, cwd=tmp_path)
        return done.returncode, done.stdout, done.stderr

    chart = tmp_path / "c.png"
    code, out, _ = await sotay("report", "--unit", KHANG_NHAT, "--chart", str(chart))
    assert code == 0 and "📊 Triển khai Sổ tay: Xã Kháng Nhật" in out
    assert chart.read_bytes().startswith(PNG)
    code, _, err = await sotay("report", "--unit", "Tỉnh Không Có")
    assert code == 1 and err.strip().endswith("sotay: không có đơn vị nào tên 'Tỉnh Không Có'")
    code, out, _ = await sotay("report", "--unit", "Xã Kháng Nhật")  # the end of the path is enough
    assert code == 0 and "📊 Triển khai Sổ tay: Xã Kháng Nhật" in out
    code, _, err = await sotay("report", "--unit", "Chi bộ cơ quan xã")  # two cells of that name
    assert code == 1 and "trùng tên 2 đơn vị" in err and "Xã Hợp Thành / Chi bộ cơ quan xã" in err


async def test_an_operators_unit_is_a_path_or_its_unique_end(world: World) -> None:
    from storage.queries import UnitNotFound, operator_unit, units_named

    async with world.app.db.reader() as session:
        assert (
            await operator_unit(session, "Xã Hợp Thành")
        ).path == "Tỉnh Tuyên Quang / Xã Hợp Thành"
        full = await operator_unit(session, "Tỉnh Tuyên Quang / Xã Kháng Nhật / Chi bộ cơ quan xã")
        assert full.name == "Chi bộ cơ quan xã"
        assert await units_named(session, path="Xã H_p Thành") == []  # no LIKE wildcards
        assert await units_named(session, path="Hợp Thành") == []  # whole parts only
        with pytest.raises(UnitNotFound, match="names 2 units"):
            await operator_unit(session, "Chi bộ cơ quan xã")


# --- end to end over HTTP -------------------------------------------------------------------------

STAFF_ID = 9002


@pytest_asyncio.fixture
async def staff_bot(fake: FakeTelegram, database_url: str) -> AsyncIterator[Bot]:  # noqa: F811
    from bot.demo import seed_demo

    clock = ShiftedClock()
    settings = telegram_settings(database_url, fake.root)
    await seed_demo(settings, channel="telegram", refs={"canbo": str(STAFF_ID)})
    app, channel = await start_bot(settings, clock)
    running = Bot(fake, app, channel, settings, clock)
    yield running
    await running.stop()


async def test_staff_gets_report_chart_and_export_over_telegram(staff_bot: Bot) -> None:
    server = staff_bot.server
    async with staff_bot.app.db.reader() as session:
        pending = (await session.exec(select(DueJob).where(DueJob.kind == "rp_weekly"))).all()
    assert len(pending) == 1  # start_background armed the weekly digest
    staff = server.user(STAFF_ID, language_code="vi")
    await staff.send("/report")
    report = await staff.next_message()
    assert "📊 Triển khai Sổ tay: Xã Hợp Thành" in report["text"]
    assert "Tổng cộng" in report["text"]

    await staff.press(report, "📊 Biểu đồ")
    chart = await staff.next_message()
    assert server.count("sendPhoto", 200) == 1
    assert chart["content"].startswith(PNG) and chart["filename"].endswith(".png")
    assert "Xã Hợp Thành" in chart["caption"]

    await staff.press(report, "📄 Xuất CSV")
    export = await staff.next_message()
    assert server.count("sendDocument", 200) == 1
    assert export["filename"].endswith(".csv") and export["content"].startswith(BOM)
    assert export["content"].decode("utf-8-sig").count("\r\n") == 4  # header + 3 cells


async def test_terminal_writes_an_upload_to_a_file_and_prints_its_path(tmp_path: Path) -> None:
    from bot.channels.terminal import TerminalChannel
    from bot.core import Upload

    out = io.StringIO()
    terminal = TerminalChannel("canbo", out=out, files_dir=tmp_path)
    view = View.from_payload(
        View("Báo cáo", upload=Upload("a/../bc.csv", "document", BOM)).to_payload()
    )
    await terminal.send("canbo", view)
    [name] = os.listdir(tmp_path)
    written = tmp_path / name
    assert written.name.endswith("-bc.csv") and written.read_bytes() == BOM
    assert f"[document] {written}" in out.getvalue()
