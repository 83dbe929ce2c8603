"""`sotay zalo-oa connect / status` and `sotay run` with only the OA, as an operator meets them,
against the fake OA platform; `sotay run` serving and processes racing are real processes. The
tokens are stored encrypted, never printed."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_zalo_oa import FakeZaloOA, text_of
from tests.harness import free_port
from tests.sotay_cli import run_sotay

SOTAY = [sys.executable, "-m", "bot.cli"]
# SQLite files of the operator's own, no fixture database; the fake OA keeps its usual token life.
pytestmark = [
    pytest.mark.engine_neutral,
    pytest.mark.usefixtures("scratch_folder"),
    pytest.mark.e2e(server=lambda clock: FakeZaloOA(clock.now)),
]


def environment(fake: FakeZaloOA, db: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "SOTAY_DATABASE_URL": f"sqlite:///{db}",
        "SOTAY_SECRET_KEY": "operator-secret",
        "SOTAY_ZALO_OA_APP_ID": fake.app_id,
        "SOTAY_ZALO_OA_APP_SECRET": fake.app_secret,
        "SOTAY_ZALO_OA_WEBHOOK_SECRET": fake.oa_secret,
        "SOTAY_ZALO_OA_API_URL": fake.root,
        "SOTAY_ZALO_OA_OAUTH_URL": fake.root,
        "SOTAY_ZNS_API_URL": fake.root,
        "SOTAY_WEB_PORT": str(port),
    }


async def sotay(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """``sotay ARGS`` run in this process as a new one would run it (tests/sotay_cli.py), in a
    thread, so the fake OA platform keeps answering."""
    done = await asyncio.to_thread(run_sotay, args, env=env, timeout=60)
    return done.returncode, done.stdout, done.stderr


async def sotay_process(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """``sotay ARGS`` as a process of its own: for processes racing each other."""
    process = await asyncio.create_subprocess_exec(
        *SOTAY, *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_connect_status_and_a_spent_token_refused(fake: FakeZaloOA, tmp_path: Path) -> None:
    db = tmp_path / "sotay.db"
    env = environment(fake, db, free_port())
    assert (await sotay(env, "db", "upgrade"))[0] == 0
    token = fake.consent_refresh_token()
    code, out, err = await sotay(env, "zalo-oa", "status")
    assert (
        code == 0
        and out.strip() == "chưa kết nối: hãy chạy `sotay zalo-oa connect --refresh-token TOKEN`"
    )
    code, out, err = await sotay(env, "zalo-oa", "connect", "--refresh-token", token)
    assert code == 0, err
    assert "Đã kết nối Zalo OA" in out and "tự gia hạn" in out and token not in out + err
    code, out, _err = await sotay(env, "zalo-oa", "status")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("OA: Đảng ủy xã")
    assert lines[1].startswith("access token hết hạn: ") and lines[2].startswith(
        "lần làm mới tới: "
    )
    assert lines[-1] == "webhook: chưa nhận sự kiện nào của đảng viên"
    english = {**env, "SOTAY_DEFAULT_LANGUAGE": "en"}
    code, out, _err = await sotay(english, "zalo-oa", "status")
    assert code == 0 and "Đảng ủy xã" in out and "access token expires: " in out
    assert out.splitlines()[-1] == "webhook: no member event received yet" and "hết hạn" not in out
    stored = db.read_bytes()
    assert token.encode() not in stored and b"at-" not in stored  # only Fernet tokens stored
    code, _out, err = await sotay(env, "zalo-oa", "connect", "--refresh-token", token)
    assert code == 1 and "Zalo từ chối token hoặc mã" in err and "Traceback" not in err
    assert token not in err
    code, _out, err = await sotay(english, "zalo-oa", "connect", "--refresh-token", token)
    assert code == 1 and "Zalo refused the token or code" in err and token not in err
    code, _out, err = await sotay(english, "zalo-oa", "connect")
    assert code == 1 and err.strip() == (
        "sotay: give --refresh-token TOKEN, or --code CODE with --code-verifier V."
    )
    verifier = "v" * 43
    code, _out, err = await sotay(
        env,
        "zalo-oa",
        "connect",
        "--code",
        fake.consent_code(verifier),
        "--code-verifier",
        verifier,
    )
    assert code == 0, err


async def test_connect_without_app_settings_says_what_is_missing(
    fake: FakeZaloOA, tmp_path: Path
) -> None:
    env = environment(fake, tmp_path / "sotay.db", free_port())
    del env["SOTAY_ZALO_OA_APP_SECRET"]
    assert (await sotay(env, "db", "upgrade"))[0] == 0
    code, _out, err = await sotay(env, "zalo-oa", "connect", "--refresh-token", "x")
    assert (
        code == 1 and err.strip() == "sotay: cần đặt SOTAY_ZALO_OA_APP_SECRET để kết nối Zalo OA."
    )
    code, _out, err = await sotay(env, "zalo-oa", "status")
    assert code == 1 and "cần đặt SOTAY_ZALO_OA_APP_SECRET" in err
    english = {**env, "SOTAY_DEFAULT_LANGUAGE": "en"}
    code, _out, err = await sotay(english, "zalo-oa", "status")
    assert code == 1 and "SOTAY_ZALO_OA_APP_SECRET must be set to connect the Zalo OA." in err
    del env["SOTAY_ZALO_OA_WEBHOOK_SECRET"]
    code, _out, err = await sotay(env, "run")
    assert code == 1 and "SOTAY_ZALO_OA_WEBHOOK_SECRET" in err and "Traceback" not in err
    assert "mọi sự kiện từ Zalo đều bị từ chối" in err


async def test_run_says_in_the_operators_language_when_the_oa_is_not_connected(
    fake: FakeZaloOA, tmp_path: Path
) -> None:
    env = environment(fake, tmp_path / "sotay.db", free_port())
    assert (await sotay(env, "db", "upgrade"))[0] == 0
    code, _out, err = await sotay(env, "run")
    assert code == 1 and "Zalo OA chưa được kết nối" in err and "Traceback" not in err
    code, _out, err = await sotay({**env, "SOTAY_DEFAULT_LANGUAGE": "en"}, "run")
    assert code == 1 and "the Zalo OA is not connected" in err


@pytest.mark.slow(seconds=12)
async def test_run_serves_the_oa_webhook_on_the_shared_web_server(
    fake: FakeZaloOA, tmp_path: Path
) -> None:
    port = free_port()
    env = environment(fake, tmp_path / "sotay.db", port)
    assert (await sotay(env, "db", "upgrade"))[0] == 0
    code, _out, err = await sotay(
        env, "zalo-oa", "connect", "--refresh-token", fake.consent_refresh_token()
    )
    assert code == 0, err
    process = await asyncio.create_subprocess_exec(
        *SOTAY, "run", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    fake.webhook_url = f"http://127.0.0.1:{port}/zalo-oa/webhook"
    member = fake.user("oa501", "An")
    try:
        # The web server listens before the channel starts; the channel asks who it is.
        await fake.wait_for(lambda: fake.getoa_calls > 0, timeout=30)
        assert (await member.send("/start")).status == 200
        assert "ngôn ngữ" in text_of(await member.next_message(timeout=30)).lower()
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err_bytes = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, err_bytes.decode()
    assert "oa501" not in err_bytes.decode() and "/start" not in err_bytes.decode()


@pytest.mark.slow(seconds=15)
async def test_two_processes_due_to_refresh_spend_the_refresh_token_once(
    fake: FakeZaloOA, tmp_path: Path
) -> None:
    db = tmp_path / "sotay.db"
    env = environment(fake, db, free_port())
    assert (await sotay(env, "db", "upgrade"))[0] == 0
    code, _out, err = await sotay(
        env, "zalo-oa", "connect", "--refresh-token", fake.consent_refresh_token()
    )
    assert code == 0, err
    with sqlite3.connect(db) as conn:  # 90% of the token's life has passed
        conn.execute("UPDATE zalo_oa_token SET refresh_at = '2000-01-01 00:00:00'")
    calls = fake.refresh_calls
    results = await asyncio.gather(*(sotay_process(env, "zalo-oa", "status") for _ in range(3)))
    assert all(code == 0 for code, _out, _err in results), results
    assert fake.refresh_calls == calls + 1 and fake.spent_attempts == 0
    assert all("Đảng ủy xã" in out for _code, out, _err in results)  # all use the new token
