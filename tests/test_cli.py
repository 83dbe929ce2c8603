"""The ``sotay`` command as an operator and a terminal user meet it: stdin/stdout, exit codes;
``sotay run`` serving members as a process of its own."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import _psql, postgres_available
from tests.fake_telegram import FakeTelegram
from tests.harness import telegram_server, telegram_settings
from tests.sotay_cli import run_sotay

SOTAY = [sys.executable, "-m", "bot.cli"]
PROMPT = "> "


pytestmark = pytest.mark.usefixtures("scratch_folder")


def sotay(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``sotay ARGS`` run in this process as a new one would run it (tests/sotay_cli.py); the
    tests below about processes (``sotay run`` serving, stopped by SIGTERM) start real ones."""
    full_env = {**os.environ, "SOTAY_SECRET_KEY": "k", **(env or {})}
    return run_sotay(args, env=full_env, stdin=stdin, cwd=cwd)


def test_demo_registers_a_roster_member_and_secretary_approves(tmp_path: Path) -> None:
    lines = [
        "/start",
        "1",
        "1",
        "0912 000 001",
        "nguyen van an",
        "1",
        "1",
        "2",
        ":user bithu",
        "1",
        ":user demo",
        "/me",
        ":quit",
    ]
    result = sotay(
        "demo", "--db", str(tmp_path / "demo.db"), stdin="\n".join(lines) + "\n", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "xin gõ họ và tên đầy đủ" in out
    assert "nhận là Nguyễn Văn An (Chi bộ thôn Cầu Bâu — Xã Hợp Thành)" in out
    assert "(gõ số 0912 000 001, chưa xác minh)" in out
    assert "Bí thư chi bộ đã duyệt. Chào đồng chí Nguyễn Văn An!" in out
    assert "Đã đăng nhập: Không" in out
    # every answer was complete before the next prompt was printed
    assert out.count(PROMPT) >= len(lines) - 1


def test_demo_report_ranks_the_communes_from_their_rollout_so_far(tmp_path: Path) -> None:
    lines = [":user admin", "/report", ":quit"]
    result = sotay("demo", "--db", str(tmp_path / "demo.db"), stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # both communes: one cell of three with a meeting entered in the app; Hợp Thành has fewer
    # installs (4 of 14 against 4 of 10), so it is listed first (worst first)
    assert "Họp trên Sổ tay: 2/6 chi bộ (33%)" in out
    assert "Cài 29% · KH 21%" in out and "Cài 40% · KH 20%" in out
    assert out.index("1. ⚠️ Xã Hợp Thành") < out.index("2. ⚠️ Xã Kháng Nhật")


def test_demo_keeps_its_state_between_runs(tmp_path: Path) -> None:
    db = str(tmp_path / "demo.db")
    first = ["/start", "1", "1", "0912 000 002", "Tran Thi Binh", "2", ":user bithu", "1", ":quit"]
    assert sotay("demo", "--db", db, stdin="\n".join(first) + "\n").returncode == 0
    again = sotay("demo", "--db", db, stdin="/me\n:quit\n")
    assert "Trần Thị Bình" in again.stdout


def test_demo_logs_to_a_file_and_sotay_report_in_the_same_folder_sees_its_data(
    tmp_path: Path,
) -> None:
    lines = [":user bithu", "/support", "1", "Khong cai duoc so tay", ":quit"]
    result = sotay("demo", stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    assert "Đã ghi nhận yêu cầu #1" in result.stdout
    assert " INFO " not in result.stdout + result.stderr  # nothing of the log inside the chat
    log = (tmp_path / "sotay-demo.log").read_text(encoding="utf-8")
    assert "INFO sotay.support ticket.created id=1" in log and "Khong cai" not in log
    assert "rồi chạy `sotay report` trong thư mục này" in result.stdout  # told how, before
    assert result.stdout.rstrip().endswith("Xem báo cáo trên dữ liệu demo: `sotay report`")
    report = sotay("report")  # no setting: the same default database as the demo
    assert report.returncode == 0, report.stderr
    assert "Họp trên Sổ tay: 2/6 chi bộ (33%)" in report.stdout  # the demo's seeded rollout
    tickets = sotay("tickets", "report")
    assert "Số yêu cầu: 1 (chờ nhận 1, đã nhận 0, đã giải quyết 0, đã đóng 0)" in tickets.stdout
    assert "Cài đặt ứng dụng" in tickets.stdout and "Tickets" not in tickets.stdout
    english = sotay("tickets", "report", env={"SOTAY_DEFAULT_LANGUAGE": "en"})
    assert "Tickets: 1 (open 1, claimed 0, resolved 0, closed 0)" in english.stdout
    assert "Installing the app" in english.stdout and "Số yêu cầu" not in english.stdout


def test_demo_fresh_deletes_only_a_demo_database(tmp_path: Path) -> None:
    assert sotay("demo", stdin=":user bithu\n/support\n1\nmot\n:quit\n").returncode == 0
    fresh = sotay("demo", "--fresh", stdin=":user bithu\n/tickets\n:quit\n")
    assert fresh.returncode == 0, fresh.stderr
    assert sotay("tickets", "report").stdout.count("Số yêu cầu: 0") == 1  # started over
    real = tmp_path / "real.db"
    env = {"SOTAY_DATABASE_URL": f"sqlite:///{real}"}
    assert sotay("db", "upgrade", env=env).returncode == 0
    refused = sotay("demo", "--fresh", env=env, stdin=":quit\n")
    assert refused.returncode == 1 and "không phải cơ sở dữ liệu demo" in refused.stderr
    assert real.exists()


def test_invite_code_from_the_command_line_is_typed_back_in_lower_case(tmp_path: Path) -> None:
    db = tmp_path / "inv.db"
    env = {"SOTAY_DATABASE_URL": f"sqlite:///{db}"}
    assert sotay("db", "upgrade", env=env).returncode == 0
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "full_name,phone,unit_path,has_smartphone\n"
        "Nguyễn Thị Hoa,0912345678,Tỉnh Tuyên Quang / Xã Hợp Thành / Chi bộ Cầu Bâu,có\n",
        encoding="utf-8",
    )
    assert sotay("roster", "import", str(roster), env=env).returncode == 0
    made = sotay("invite", "--role", "member", "--unit", "Chi bộ Cầu Bâu", env=env)
    assert made.returncode == 0, made.stderr
    shown = re.search(r"mã: ([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})", made.stdout)
    assert shown is not None, made.stdout
    assert "vai trò: đảng viên của" in made.stdout and "hết hạn:" in made.stdout
    typed = shown.group(1).lower().replace("-", " ")
    chat = sotay("chat", "--user", "moi", env=env, stdin=f"/start {typed}\n:quit\n")
    assert chat.returncode == 0, chat.stderr
    assert "Xin chọn ngôn ngữ" in chat.stdout and "Mã mời không đúng" not in chat.stdout
    wrong = sotay("chat", "--user", "khac", env=env, stdin="/start abcd efgh jkmn\n:quit\n")
    assert "Mã mời không đúng" in wrong.stdout
    english = sotay(
        "invite",
        "--role",
        "member",
        "--unit",
        "Cầu Bâu",
        env={**env, "SOTAY_DEFAULT_LANGUAGE": "en"},
    )
    assert english.returncode == 1 and "no unit named 'Cầu Bâu'" in english.stderr


def test_chat_with_numbers_labels_and_bad_input(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    env = {"SOTAY_DATABASE_URL": f"sqlite:///{db}"}
    assert sotay("db", "upgrade", env=env).returncode == 0
    lines = ["/start", "tieng viet", "khong dong y"]
    result = sotay("chat", "--user", "ba", env=env, stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    assert "Tôi không lưu thông tin gì" in result.stdout  # labels typed without diacritics work


def test_run_refuses_an_out_of_date_schema_in_one_line(tmp_path: Path) -> None:
    env = {"SOTAY_DATABASE_URL": f"sqlite:///{tmp_path / 'old.db'}", "SOTAY_TELEGRAM_TOKEN": "1:x"}
    result = sotay("run", env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "sotay: cơ sở dữ liệu chưa được nâng cấp lên phiên bản mới; hãy chạy `sotay db upgrade` "
        "trước."
    )
    english = sotay("run", env={**env, "SOTAY_DEFAULT_LANGUAGE": "en"})
    assert english.stderr.strip() == (
        "sotay: the database schema is out of date; run `sotay db upgrade` first."
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SOTAY_WEB_PORT": "99999"}, "Setting SOTAY_WEB_PORT is invalid"),
        ({"SOTAY_TIMEZONE": "Mars/Base"}, "'Mars/Base' is not a known time zone"),
        ({"SOTAY_DATABASE_URL": "mysql://x"}, "Setting SOTAY_DATABASE_URL is invalid"),
        ({"SOTAY_DEFAULT_LANGUAGE": "fr"}, "Setting SOTAY_DEFAULT_LANGUAGE is invalid"),
        ({"SOTAY_TELEGRAM_TOKEN": ""}, "chưa đặt SOTAY_TELEGRAM_TOKEN"),
        (
            {"SOTAY_TELEGRAM_TOKEN": "1:x", "SOTAY_WEBHOOK_URL": "https://x/tg"},
            "SOTAY_WEBHOOK_SECRET must be set",
        ),
        (
            {"SOTAY_ZALO_TOKEN": "1:x", "SOTAY_ZALO_WEBHOOK_URL": "https://x/zalo"},
            "SOTAY_ZALO_WEBHOOK_SECRET must be set",
        ),
        ({"SOTAY_ZALO_WEBHOOK_SECRET": "short"}, "Setting SOTAY_ZALO_WEBHOOK_SECRET is invalid"),
    ],
)
def test_bad_settings_stop_with_one_sentence(env: dict[str, str], message: str) -> None:
    result = sotay("run", env={"SOTAY_TELEGRAM_TOKEN": "", **env})
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_grant_and_invite_from_the_command_line(tmp_path: Path) -> None:
    env = {"SOTAY_DATABASE_URL": f"sqlite:///{tmp_path / 'g.db'}"}
    assert sotay("db", "upgrade", env=env).returncode == 0
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "full_name,phone,unit_path,has_smartphone\n"
        "Nguyễn Thị Hoa,0912345678,Tỉnh Tuyên Quang / Xã Hợp Thành / Chi bộ Cầu Bâu,có\n",
        encoding="utf-8",
    )
    assert sotay("roster", "import", str(roster), env=env).returncode == 0
    unknown = sotay(
        "grant", "--role", "admin", "--unit", "Tỉnh Nowhere", "--phone", "0912345678", env=env
    )
    assert unknown.returncode == 1 and "không có đơn vị nào tên" in unknown.stderr
    ok = sotay(
        "grant", "--role", "admin", "--unit", "Tỉnh Tuyên Quang", "--phone", "0912 345 678", env=env
    )
    assert ok.returncode == 0 and "đã giao vai trò quản trị của 'Tỉnh Tuyên Quang'" in ok.stdout
    stranger = sotay(
        "grant", "--role", "staff", "--unit", "Tỉnh Tuyên Quang", "--phone", "0987000000", env=env
    )
    assert stranger.returncode == 1 and "--name" in stranger.stderr
    invite = sotay(
        "invite",
        "--role",
        "secretary",
        "--unit",
        "Tỉnh Tuyên Quang / Xã Hợp Thành / Chi bộ Cầu Bâu",
        "--ttl",
        "2d",
        env=env,
    )
    assert invite.returncode == 0
    assert "https://t.me/<bot username>?start=" in invite.stdout and "mã: " in invite.stdout
    not_cell = sotay("invite", "--role", "member", "--unit", "Tỉnh Tuyên Quang", env=env)
    assert not_cell.returncode == 1 and "cần một chi bộ" in not_cell.stderr


@pytest.mark.skipif(not postgres_available(), reason="PostgreSQL is not running: skipped")
def test_db_upgrade_on_postgresql() -> None:
    _psql("DROP DATABASE IF EXISTS sotay_cli_test WITH (FORCE)")
    _psql("CREATE DATABASE sotay_cli_test")
    env = {"SOTAY_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/sotay_cli_test"}
    assert sotay("db", "upgrade", env=env).returncode == 0
    again = sotay("db", "upgrade", env=env)
    assert again.returncode == 0 and "phiên bản mới nhất" in again.stdout


@pytest.mark.slow(seconds=10)
async def test_run_serves_real_members_through_a_bot_api_server(tmp_path: Path) -> None:
    """`sotay run` as a process, pointed at a Bot API server by SOTAY_TELEGRAM_API_URL."""
    server = FakeTelegram(token="42:RUN", per_chat_rate=(20, 0.05))
    await server.start()
    db = tmp_path / "run.db"
    env = {
        **os.environ,
        "SOTAY_DATABASE_URL": f"sqlite:///{db}",
        "SOTAY_TELEGRAM_TOKEN": "42:RUN",
        "SOTAY_TELEGRAM_API_URL": server.root,
        "SOTAY_SECRET_KEY": "k",
    }
    upgrade = await asyncio.to_thread(run_sotay, ["db", "upgrade"], env=env)
    assert upgrade.returncode == 0, upgrade.stderr
    process = await asyncio.create_subprocess_exec(
        *SOTAY, "run", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        user = server.user(501, language_code="en")
        await server.wait_for(lambda: server.calls["getUpdates"] > 0, timeout=30)
        await user.send("/start")
        msg = await user.next_message(timeout=30)
        assert "Please choose a language" in msg["text"]
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(process.communicate(), timeout=30)
        await server.stop()
    assert process.returncode == 0, err.decode()
    assert "501" not in err.decode() and "/start" not in err.decode()  # logs carry no user data


def test_database_password_never_shows_in_errors(tmp_path: Path) -> None:
    env = {"SOTAY_DATABASE_URL": "postgresql://sotay:Hu7-very-secret-pw@127.0.0.1:1/nowhere"}
    for args in (("db", "upgrade"), ("run",)):
        result = sotay(*args, env={**env, "SOTAY_TELEGRAM_TOKEN": "1:x"}, cwd=tmp_path)
        assert result.returncode != 0
        assert "Hu7-very-secret-pw" not in result.stdout + result.stderr
        assert "***" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SOTAY_WEBHOOK_SECRET": "too-short"}, "at least 16 characters"),
        ({"SOTAY_WEBHOOK_SECRET": "long-enough-but-ünicode"}, "letters, digits"),
        ({"SOTAY_OUTBOX_RETENTION": "2h"}, "SOTAY_OUTBOX_RETENTION is invalid"),
    ],
)
def test_secret_and_retention_settings_are_checked(
    env: dict[str, str], message: str, tmp_path: Path
) -> None:
    result = sotay("run", env={"SOTAY_TELEGRAM_TOKEN": "1:x", **env}, cwd=tmp_path)
    assert result.returncode != 0 and message in result.stderr


@pytest.mark.slow(seconds=10)
async def test_run_serves_telegram_and_zalo_webhooks_on_one_web_server(tmp_path: Path) -> None:
    """`sotay run` with both channels on webhooks: one address and port, a route for each."""
    import socket

    import aiohttp

    from tests.fake_zalo import FakeZalo

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    telegram = FakeTelegram(token="42:RUN", per_chat_rate=(20, 0.05))
    zalo = FakeZalo(token="zalo-run", webhook_proxy=f"http://127.0.0.1:{port}")  # TLS ends there
    await telegram.start()
    await zalo.start()
    env = {
        **os.environ,
        "SOTAY_DATABASE_URL": f"sqlite:///{tmp_path / 'web.db'}",
        "SOTAY_TELEGRAM_TOKEN": "42:RUN",
        "SOTAY_TELEGRAM_API_URL": telegram.root,
        "SOTAY_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram",
        "SOTAY_WEBHOOK_SECRET": "telegram-secret-0123456789",
        "SOTAY_ZALO_TOKEN": "zalo-run",
        "SOTAY_ZALO_API_URL": zalo.root,
        "SOTAY_ZALO_WEBHOOK_URL": "https://bot.example.vn/zalo",
        "SOTAY_ZALO_WEBHOOK_SECRET": "zalo-secret-0123",
        "SOTAY_WEB_PORT": str(port),
        "SOTAY_SECRET_KEY": "k",
    }
    upgrade = await asyncio.to_thread(run_sotay, ["db", "upgrade"], env=env)
    assert upgrade.returncode == 0, upgrade.stderr
    process = await asyncio.create_subprocess_exec(
        *SOTAY, "run", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path
    )
    try:
        await telegram.wait_for(lambda: telegram.webhook_url is not None, timeout=30)
        await zalo.wait_for(lambda: zalo.webhook_url is not None, timeout=30)
        assert zalo.webhook_url == "https://bot.example.vn/zalo"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
            for path in ("/telegram", "/zalo"):  # both routes, both refuse a missing secret
                async with http.post(f"http://127.0.0.1:{port}{path}", json={}) as response:
                    assert response.status == 403
        member = telegram.user(501, language_code="en")
        await member.send("/start")
        assert "Please choose a language" in (await member.next_message(timeout=30))["text"]
        other = zalo.user("z501")
        await other.send("/start")
        assert "Xin chọn ngôn ngữ" in (await other.next_message(timeout=30))["text"]
        async with aiohttp.ClientSession() as http:  # the operator's view of the same process
            async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                ready = await response.json()
                assert response.status == 200 and ready["database"] and ready["scheduler"]
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                exposition = await response.text()
        assert 'sotay_updates_total{channel="telegram",outcome="ok"}' in exposition
        assert 'sotay_updates_total{channel="zalo",outcome="ok"}' in exposition
        assert 'sotay_sends_total{channel="telegram",outcome="sent"}' in exposition
        assert "sotay_outbox_backlog" in exposition
        labels = set(re.findall(r'[{,](\w+)="', exposition))
        assert labels <= {"channel", "outcome", "le"}  # never a chat, a user or a text
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(process.communicate(), timeout=30)
        await telegram.stop()
        await zalo.stop()
    assert process.returncode == 0, err.decode()


@pytest.mark.engine_neutral
@pytest.mark.e2e(server=telegram_server)
async def test_a_sigterm_while_starting_stops_gracefully_once_started(
    fake: FakeTelegram, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polling may answer the first updates before the dispatcher and the scheduler are up; a
    SIGTERM then must not kill the process (it used to: the handler came after the start)."""
    from bot import cli
    from bot.app import App

    starting, go_on = asyncio.Event(), asyncio.Event()
    start = App.start_background

    async def slow_start(app: App) -> None:
        starting.set()
        await go_on.wait()
        await start(app)

    monkeypatch.setattr(App, "start_background", slow_start)
    unhandled: list[int] = []  # SIGTERMs that reached no handler of sotay's
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: unhandled.append(signum))
    try:
        serving = asyncio.create_task(cli._serve(telegram_settings(database_url, fake.root)))
        await asyncio.wait_for(starting.wait(), timeout=30)
        os.kill(os.getpid(), signal.SIGTERM)
        go_on.set()
        await asyncio.wait_for(serving, timeout=10)  # stopped once started, without a second
        assert unhandled == []
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
        asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGTERM, previous)
