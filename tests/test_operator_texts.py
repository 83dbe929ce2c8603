"""Operator texts that need no subprocess: import reasons and Zalo OA failures carry a catalog key,
are worded in the reader's language, and stay English in ``str()`` (logs)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from bot.cli import Fail, _start_zalo_oa
from bot.zalo_oa_tokens import TokenError
from handlers.rollout_data import StatusReport
from handlers.roster import RosterFileError, RosterReport, RowError, reason

pytestmark = pytest.mark.engine_neutral


def test_a_nested_reason_is_worded_in_one_language() -> None:
    why = reason(
        "op.status.row.column", column="installed", why=reason("op.status.row.flag", value="?")
    )
    assert str(why) == "installed '?' is not có/không, yes/no, 1/0 or a date dd/mm/yyyy"
    assert why.text("vi") == "installed: '?' không phải có/không, yes/no, 1/0 hay ngày dd/mm/yyyy"


def test_reports_render_in_the_language_asked_and_cap_the_error_list() -> None:
    errors = [RowError(n, reason("op.import.row.phone_bad", phone="12")) for n in range(2, 60)]
    report = StatusReport(rows=60, updated=2, unchanged=0, errors=errors)
    vi = report.render("vi").splitlines()
    assert vi[0] == "Đã nhập trạng thái, 60 dòng: 2 cập nhật, 0 không đổi, 58 có lỗi."
    assert vi[1] == "dòng 2: số điện thoại '12' không phải số Việt Nam"
    assert vi[-1] == "... và 8 dòng lỗi nữa" and len(vi) == 52
    roster = RosterReport(rows=1, created=1, updated=0, unchanged=0, units_created=1, dry_run=True)
    assert roster.render("vi").startswith("Chạy thử (không ghi gì), 1 dòng: 1 mới")
    assert roster.render("en").startswith("Dry run (nothing written), 1 rows: 1 new")


def test_whole_file_and_token_errors_keep_english_for_logs() -> None:
    empty = RosterFileError("op.import.file.empty")
    assert str(empty) == "the file is empty." and empty.key == "op.import.file.empty"
    missing = TokenError("op.oa.need_settings", names="SOTAY_SECRET_KEY")
    assert str(missing) == "SOTAY_SECRET_KEY must be set to connect the Zalo OA."
    assert missing.text("vi") == "cần đặt SOTAY_SECRET_KEY để kết nối Zalo OA."


class _Unreachable:
    async def start(self, web_server: Any) -> None:
        raise aiohttp.ClientConnectionError("refused")


class _Refused:
    async def start(self, web_server: Any) -> None:
        raise TokenError("op.oa.getoa_error", code=-216)


@pytest.mark.parametrize(
    ("lang", "channel", "message"),
    [
        (
            "vi",
            _Unreachable(),
            "không kết nối được Zalo OA API tại http://oa.test: ClientConnectionError",
        ),
        (
            "en",
            _Unreachable(),
            "cannot reach the Zalo OA API at http://oa.test: ClientConnectionError",
        ),
        ("vi", _Refused(), "Zalo trả lỗi -216 khi hỏi thông tin của OA."),
        ("en", _Refused(), "Zalo answered error -216 when asked for the OA's profile."),
    ],
)
async def test_oa_start_up_failures_are_one_sentence_in_the_operators_language(
    lang: str, channel: Any, message: str
) -> None:
    settings: Any = SimpleNamespace(default_language=lang, zalo_oa_api_url="http://oa.test")
    with pytest.raises(Fail) as caught:
        await _start_zalo_oa(channel, None, settings)  # type: ignore[arg-type]
    assert caught.value.message == message
