"""The dashboard in a real headless browser (Debian's chromium through chromedriver/selenium).

The bot runs as in production: python-telegram-bot against the fake Bot API over HTTP, the
dashboard mounted on the process's web server. A staff member types /web in Telegram, the link
is read from the message the fake server received, and the browser signs in with it, drills
down, claims, answers and resolves a member's ticket (the member hears about each step in
Telegram: the page took the chat buttons' path), downloads the workbook, and signs out.

Selenium's calls block, and the bot serves the pages on this test's event loop: every browser
call runs in a worker thread (``Browser``), so the loop keeps serving while the browser waits.
One browser per module (a fixture), cookies cleared between tests.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.clock import ShiftedClock
from bot.demo import seed_demo
from bot.web import WebServer
from handlers import dashboard
from storage import queries
from tests.fake_telegram import FakeTelegram, button_texts
from tests.harness import Bot, free_port, telegram_server, telegram_settings
from tests.test_support_e2e import MEMBER, link, report

pytestmark = pytest.mark.e2e(server=telegram_server)

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
STAFF, SECRETARY, ADMIN = 9102, 9101, 9103
COMMUNE = "Tỉnh Tuyên Quang / Xã Hợp Thành"
CELL = f"{COMMUNE} / Chi bộ thôn Cầu Bâu"
OTHER_COMMUNE = "Tỉnh Tuyên Quang / Xã Kháng Nhật"
LINK = re.compile(r"(http://127\.0\.0\.1:\d+/web/signin\?t=[A-Za-z0-9_\-]+)")


def _require_browser() -> None:
    """CI (.ci/run sets SOTAY_REQUIRE_BROWSER=1 after installing them) fails without the browser;
    a developer's machine without it skips these tests and says why in the output."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    if missing:
        why = (
            f"{', '.join(missing)} missing: the dashboard's browser tests need Debian's "
            "chromium and chromium-driver (apt-get install -y chromium chromium-driver; "
            ".ci/run installs them)"
        )
        if os.environ.get("SOTAY_REQUIRE_BROWSER"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    """One headless Chromium for the module, with a fresh profile and a download folder."""
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="sotay-chromium-")
    downloads = tempfile.mkdtemp(prefix="sotay-downloads-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1366,900",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs", {"download.default_directory": downloads, "download.prompt_for_download": False}
    )
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads}
    )
    browser.downloads = Path(downloads)  # type: ignore[attr-defined]
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
        shutil.rmtree(downloads, ignore_errors=True)


class Browser:
    """The driver's blocking calls, each in a worker thread."""

    def __init__(self, driver: Any, base: str) -> None:
        self.driver, self.base = driver, base

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def open(self, url: str) -> None:
        await self._call(self.driver.get, url if url.startswith("http") else self.base + url)

    def _navigate(self, by: str, value: str) -> None:
        """Click, then wait until the next page has replaced this one (a click returns as soon
        as the browser took it, not when the page it leads to is there)."""
        from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        def press() -> Any:
            """The page as it is when the click lands: a page still settling (after a download
            or a redirect) may swap its nodes between the lookup and the click, so try again."""
            try:
                page = self.driver.find_element("tag name", "html")
                self.driver.find_element(by, value).click()
            except StaleElementReferenceException:
                return False
            except WebDriverException as exc:
                if "does not belong to the document" not in str(exc):
                    raise
                return False
            return page

        def replaced(driver: Any) -> bool:
            """The old page is gone; Chrome may say so as "no longer in the document"."""
            try:
                return bool(expected_conditions.staleness_of(page)(driver))
            except WebDriverException as exc:
                if "does not belong to the document" not in str(exc):
                    raise
                return True

        def loaded(driver: Any) -> bool:
            """The next page is parsed: the old one going stale says only that it left (a
            lookup right then found no "#history" once, in CI on a loaded machine)."""
            return bool(driver.execute_script("return document.readyState") == "complete")

        page = WebDriverWait(self.driver, 15).until(lambda _driver: press())
        WebDriverWait(self.driver, 15).until(replaced)
        WebDriverWait(self.driver, 15).until(loaded)

    async def click(self, css: str) -> None:
        """Press a button or link that leads to another page."""
        from selenium.webdriver.common.by import By

        await self._call(self._navigate, By.CSS_SELECTOR, css)

    async def click_link(self, text: str) -> None:
        from selenium.webdriver.common.by import By

        await self._call(self._navigate, By.LINK_TEXT, text)

    async def fill(self, css: str, text: str) -> None:
        from selenium.webdriver.common.by import By

        await self._call(lambda: self.driver.find_element(By.CSS_SELECTOR, css).send_keys(text))

    async def text(self, css: str = "body") -> str:
        from selenium.webdriver.common.by import By

        return str(await self._call(lambda: self.driver.find_element(By.CSS_SELECTOR, css).text))

    async def has(self, css: str) -> bool:
        from selenium.webdriver.common.by import By

        return bool(await self._call(lambda: self.driver.find_elements(By.CSS_SELECTOR, css)))

    @property
    def url(self) -> str:
        return str(self.driver.current_url)

    def _download(self, css: str, suffix: str) -> Path:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        folder: Path = self.driver.downloads
        for old in folder.iterdir():
            old.unlink()
        self.driver.find_element(By.CSS_SELECTOR, css).click()

        def finished(_driver: Any) -> Path | None:
            names = list(folder.iterdir())
            done = [p for p in names if p.suffix == suffix]
            return done[0] if done and not any(p.suffix == ".crdownload" for p in names) else None

        return WebDriverWait(self.driver, 20).until(finished)  # type: ignore[no-any-return]

    async def download(self, css: str, suffix: str) -> Path:
        """Click a download link; the finished file once it is in the download folder."""
        return await self._call(self._download, css, suffix)  # type: ignore[no-any-return]


@pytest_asyncio.fixture
async def site(
    fake: FakeTelegram, database_url: str, driver: Any
) -> AsyncIterator[tuple[Bot, Browser]]:
    """The bot on the fake Bot API, the dashboard on its web server, and the browser."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = telegram_settings(database_url, fake.root, web_base_url=base, web_port=port)
    refs = {"bithu": str(SECRETARY), "canbo": str(STAFF), "admin": str(ADMIN)}
    await seed_demo(settings, channel="telegram", refs=refs)
    await link(settings, MEMBER, "0912000001")
    bot = await Bot.launch(fake, settings, ShiftedClock())
    web = WebServer(settings)
    web.mount(dashboard.mount(bot.app))
    await web.start()
    await asyncio.to_thread(driver.delete_all_cookies)
    try:
        yield bot, Browser(driver, base)
    finally:
        await web.stop()
        await bot.stop()


async def link_from_chat(bot: Bot, user_id: int) -> str:
    """/web in Telegram; the sign-in link as the fake Bot API received it."""
    user = bot.server.user(user_id, first_name="Cán bộ", language_code="vi")
    await user.send("/web")
    seen = []
    for _ in range(3):  # a ticket card for the staff may arrive first
        message = await user.next_message()
        found = LINK.search(message.get("text") or "")
        if found is not None:
            assert "10 phút" in message["text"]
            return found.group(1)
        seen.append(message.get("text"))
    raise AssertionError(f"no sign-in link; got {seen!r}")


async def unit_id(bot: Bot, path: str) -> int:
    async with bot.app.db.reader() as session:
        unit = await queries.unit_by_path(session, path=path)
        assert unit is not None
        return unit.id or 0


async def test_staff_signs_in_from_the_chat_works_a_ticket_downloads_and_signs_out(site) -> None:
    bot, browser = site
    member = bot.server.user(MEMBER, first_name="An", language_code="vi")
    await report(member, "Không nhận được mã OTP")  # ticket #1, for the commune's staff
    url = await link_from_chat(bot, STAFF)

    await browser.open(url)
    await browser.click("#signin")
    assert browser.url.endswith(f"/web/unit/{await unit_id(bot, COMMUNE)}")
    assert await browser.text("#unit-name") == "Xã Hợp Thành"
    children = await browser.text("#children")
    assert "Chi bộ thôn Cầu Bâu" in children and "Chi bộ thôn Đồng Bèn" in children

    await browser.click_link("Chi bộ thôn Cầu Bâu")  # drill down to the cell
    assert browser.url.endswith(f"/web/unit/{await unit_id(bot, CELL)}")
    laggards = await browser.text("#laggards")
    assert "Trần Thị Bình" in laggards  # names: the viewer serves the commune above the cell
    assert "0912" not in await browser.text()

    await browser.click_link("Yêu cầu hỗ trợ")
    queue = await browser.text("#queue")
    assert "#1" in queue and "Tài khoản, kích hoạt, mã OTP" in queue
    await browser.click_link("#1")
    assert "Không nhận được mã OTP" in await browser.text("#history")
    await browser.click("#claim")
    assert "đã nhận xử lý" in await browser.text("#flash")
    assert "đã nhận yêu cầu #1" in (await member.next_message())["text"]  # the chat's path
    assert (await bot.ticket()).status.value == "claimed"

    await browser.fill("#reply-text", "Đồng chí bấm «Gửi lại mã» rồi chờ 2 phút")
    await browser.click("#send-reply")
    assert "Đang gửi câu trả lời" in await browser.text("#flash")
    answer = await member.next_message()
    assert "Gửi lại mã" in answer["text"] and "Trả lời yêu cầu #1" in answer["text"]

    await browser.click("#resolve")
    assert "đã giải quyết" in (await browser.text("#flash")).lower()
    question = await member.next_message()
    assert button_texts(question) == ["✅ Đã xong", "❌ Chưa xong"]
    assert (await bot.ticket()).status.value == "resolved"
    assert not await browser.has("#claim") and not await browser.has("#resolve")

    await browser.open(f"/web/unit/{await unit_id(bot, COMMUNE)}")
    workbook = await browser.download("#dl-xlsx", ".xlsx")
    from openpyxl import load_workbook

    summary = load_workbook(workbook).worksheets[0]
    rows = {row[0]: row for row in summary.iter_rows(min_row=3, values_only=True)}
    total = rows["Tổng cộng"]
    assert total[1] == 14  # members of Xã Hợp Thành in the demo roster
    assert rows["Chi bộ thôn Cầu Bâu"][1] == 7
    members_on_page = await browser.text("#fig-members")
    assert members_on_page == "14"

    await browser.click("#signout")
    assert "Đã đăng xuất" in await browser.text("#message")
    await browser.open("/web/")
    assert "chưa đăng nhập" in await browser.text("#message")


@pytest.mark.engine_neutral
async def test_a_used_or_expired_link_and_a_forged_cookie_are_refused(site) -> None:
    bot, browser = site
    url = await link_from_chat(bot, STAFF)
    await browser.open(url)
    await browser.click("#signin")
    assert await browser.has("#unit-name"), await browser.text()
    await asyncio.to_thread(browser.driver.delete_all_cookies)
    await browser.open(url)  # the same link again
    await browser.click("#signin")
    assert "đã dùng rồi" in await browser.text("#message")

    late = await link_from_chat(bot, STAFF)
    bot.clock.advance(timedelta(minutes=11))
    await browser.open(late)
    await browser.click("#signin")
    assert "đã hết hạn" in await browser.text("#message")

    await browser.open("/web/static/style.css")  # a page of the site, to set a cookie on it
    await asyncio.to_thread(
        browser.driver.add_cookie,
        {"name": "sotay_web", "value": "forged-" + "a" * 36, "path": "/web"},
    )
    await browser.open("/web/")
    assert "chưa đăng nhập" in await browser.text("#message")


@pytest.mark.engine_neutral
async def test_commune_staff_cannot_open_another_commune_by_editing_the_url(site) -> None:
    bot, browser = site
    await browser.open(await link_from_chat(bot, STAFF))
    await browser.click("#signin")
    own = browser.url
    other = await unit_id(bot, OTHER_COMMUNE)
    for path in (f"/web/unit/{other}", f"/web/unit/{other}/meetings"):
        await browser.open(path)
        assert "ngoài phạm vi" in await browser.text("#message")
        assert "Xã Kháng Nhật" not in await browser.text()
    await browser.open(own)
    assert await browser.text("#unit-name") == "Xã Hợp Thành"


def test_the_ci_script_installs_the_browser_when_it_is_missing() -> None:
    script = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert "[ -x /usr/bin/chromedriver ]" in script and "chromium-driver" in script
    assert os.access(CHROMEDRIVER, os.X_OK) or "CI" not in os.environ
