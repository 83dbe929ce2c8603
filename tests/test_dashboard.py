"""The staff web dashboard over plain HTTP (aiohttp's test client): sign-in links, sessions,
CSRF, headers and scoping. The browser tests (test_dashboard_browser.py) drive the same pages
in Chromium; these are the fast, adversarial cases.

The organisation is the demo's: ``canbo`` is staff of Xã Hợp Thành, ``admin`` administers the
province, ``bithu`` is a cell secretary (no dashboard).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import update
from sqlmodel import col

from bot.app import App
from bot.clock import FakeClock
from bot.demo import seed_demo
from bot.settings import Settings, load_settings
from handlers import dashboard
from handlers.dashboard import auth
from storage import queries
from storage.models import ChannelAccount, Member, Role, RoleGrant, Ticket, TicketStatus, Unit

PROVINCE = "Tỉnh Tuyên Quang"
COMMUNE = f"{PROVINCE} / Xã Hợp Thành"
OTHER_COMMUNE = f"{PROVINCE} / Xã Kháng Nhật"
CELL = f"{COMMUNE} / Chi bộ thôn Cầu Bâu"
OTHER_CELL = f"{OTHER_COMMUNE} / Chi bộ thôn Khuôn Thê"
STAFF_PHONE, ADMIN_PHONE, SECRETARY_PHONE = "0912000090", "0912000091", "0912000006"


@pytest.fixture
def web_settings(database_url: str) -> Settings:
    return load_settings(
        database_url=database_url,
        secret_key="test-secret",
        web_base_url="http://127.0.0.1:8099",
        _env_file=None,
    )


@pytest_asyncio.fixture
async def site(web_settings: Settings) -> AsyncIterator[tuple[App, TestClient]]:
    await seed_demo(web_settings, channel="rec")
    app = App(web_settings, clock=FakeClock())
    server = web.Application()
    dashboard.mount(app)(server)
    client = TestClient(TestServer(server))
    await client.start_server()
    yield app, client
    await client.close()
    await app.close()


async def unit_id(app: App, path: str) -> int:
    async with app.db.reader() as session:
        unit = await queries.unit_by_path(session, path=path)
        assert unit is not None
        return unit.id or 0


async def member_id(app: App, phone: str) -> int:
    async with app.db.reader() as session:
        member = await queries.member_by_phone(session, phone="+84" + phone[1:])
        assert member is not None
        return member.id or 0


async def link_for(app: App, phone: str) -> str:
    async with app.db.session() as session:
        return await auth.create_link(session, await member_id(app, phone), "vi", app.clock.now())


async def open_ticket(app: App, cell_path: str) -> int:
    """A ticket (no member) of the cell, for its commune's staff."""
    async with app.db.session() as session:
        cell = await queries.unit_by_path(session, path=cell_path)
        assert cell is not None
        ticket = Ticket(
            cell_id=cell.id or 0,
            unit_id=cell.parent_id or 0,
            category="install",
            created_at=app.clock.now(),
            sla_due_at=app.clock.now() + timedelta(hours=4),
        )
        session.add(ticket)
        await session.flush()
        return ticket.id or 0


async def sign_in(client: TestClient, token: str) -> web.Response:
    page = await client.get("/web/signin", params={"t": token})
    assert page.status == 200
    pre = re.search(r'name="pre" value="([^"]+)"', await page.text())
    assert pre is not None
    return await client.post(
        "/web/signin", data={"t": token, "pre": pre.group(1)}, allow_redirects=False
    )


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found is not None
    return found.group(1)


@pytest.mark.engine_neutral
async def test_a_link_signs_in_once_with_a_strict_httponly_cookie_and_safe_headers(site) -> None:
    app, client = site
    token = await link_for(app, STAFF_PHONE)
    signed = await sign_in(client, token)
    assert signed.status == 303 and signed.headers["Location"] == "/web/"
    cookie = next(v for k, v in signed.headers.items() if k == "Set-Cookie" and "sotay_web=" in v)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    assert "Max-Age=36000" in cookie  # SOTAY_WEB_SESSION's 10 hours

    home = await client.get("/web/")
    assert home.status == 200 and str(home.url).endswith(f"/web/unit/{await unit_id(app, COMMUNE)}")
    html = await home.text()
    assert "Xã Hợp Thành" in html and "Chi bộ thôn Cầu Bâu" in html
    assert "<script" not in html and "style=" not in html  # the CSP allows neither inline
    csp = home.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp
    assert home.headers["X-Content-Type-Options"] == "nosniff"
    assert home.headers["Referrer-Policy"] == "no-referrer"

    client.session.cookie_jar.clear()
    again = await sign_in(client, token)  # the same link a second time
    assert again.status == 403 and "đã dùng rồi" in await again.text()
    assert (await client.get("/web/")).status == 401


@pytest.mark.engine_neutral
async def test_links_are_hashed_at_rest_and_expire_after_ten_minutes(site) -> None:
    app, client = site
    token = await link_for(app, STAFF_PHONE)
    async with app.db.reader() as session:
        from sqlmodel import select

        from storage.web_models import WebLink

        stored = (await session.exec(select(WebLink))).all()
    assert [row.token_hash for row in stored] == [auth.token_hash(token)]
    assert token not in stored[0].token_hash
    app.clock.advance(timedelta(minutes=10, seconds=1))  # type: ignore[attr-defined]
    late = await sign_in(client, token)
    assert late.status == 403 and (await client.get("/web/")).status == 401


@pytest.mark.engine_neutral
async def test_a_forged_or_altered_cookie_is_refused(site) -> None:
    app, client = site
    await sign_in(client, await link_for(app, STAFF_PHONE))
    real = next(c.value for c in client.session.cookie_jar if c.key == "sotay_web")
    client.session.cookie_jar.clear()
    url = f"/web/unit/{await unit_id(app, COMMUNE)}"
    assert (await client.get(url, headers={"Cookie": f"sotay_web={real}"})).status == 200
    for forged in (real[:-2] + "xx", auth.new_token(), "", "x" * 500):
        page = await client.get(url, headers={"Cookie": f"sotay_web={forged}"})
        assert page.status == 401 and "chưa đăng nhập" in await page.text()


@pytest.mark.engine_neutral
async def test_every_form_needs_the_sessions_csrf_token(site) -> None:
    app, client = site
    await sign_in(client, await link_for(app, STAFF_PHONE))
    html = await (await client.get("/web/tickets")).text()
    token = csrf_of(html)
    altered = token[:-1] + ("1" if token.endswith("0") else "0")  # never the token itself
    for data in ({}, {"csrf": "0" * 64}, {"csrf": altered}):
        refused = await client.post("/web/signout", data=data, allow_redirects=False)
        assert refused.status == 403
    assert (await client.get("/web/tickets")).status == 200  # still signed in
    out = await client.post("/web/signout", data={"csrf": token})
    assert out.status == 200 and "Đã đăng xuất" in await out.text()
    assert (await client.get("/web/tickets")).status == 401

    # The sign-in form's own token: a POST without the cookie set by the form is refused.
    client.session.cookie_jar.clear()
    token = await link_for(app, STAFF_PHONE)
    cross = await client.post("/web/signin", data={"t": token, "pre": "guess"})
    assert cross.status == 403
    assert (await sign_in(client, token)).status == 303  # the link was not used up by that


@pytest.mark.engine_neutral
async def test_commune_staff_cannot_open_another_communes_pages_by_editing_the_url(site) -> None:
    app, client = site
    await sign_in(client, await link_for(app, STAFF_PHONE))
    own = await client.get(f"/web/unit/{await unit_id(app, CELL)}")
    assert own.status == 200
    for path in (OTHER_COMMUNE, OTHER_CELL, PROVINCE):
        uid = await unit_id(app, path)
        for suffix in ("", "/meetings", "/export.xlsx", "/export.csv"):
            page = await client.get(f"/web/unit/{uid}{suffix}")
            assert page.status == 404, (path, suffix)
            assert "ngoài phạm vi" in await page.text()
    assert (await client.get("/web/unit/999999")).status == 404  # same answer as a missing one
    assert (await client.get("/web/unit/abc")).status == 404

    # A ticket of the other commune: neither its page nor its actions.
    tid = await open_ticket(app, OTHER_CELL)
    assert (await client.get(f"/web/tickets/{tid}")).status == 404
    csrf = csrf_of(await (await client.get("/web/tickets")).text())
    claim = await client.post(f"/web/tickets/{tid}/claim", data={"csrf": csrf})
    assert claim.status == 404
    async with app.db.reader() as session:
        assert (await session.get(Ticket, tid)).status == TicketStatus.open  # type: ignore[union-attr]
    assert f"#{tid}" not in await (await client.get("/web/tickets")).text()


@pytest.mark.engine_neutral
async def test_names_of_laggards_only_for_staff_above_the_cell(site) -> None:
    app, client = site
    await sign_in(client, await link_for(app, STAFF_PHONE))
    page = await (await client.get(f"/web/unit/{await unit_id(app, CELL)}")).text()
    assert "Nguyễn Văn An" in page and 'id="laggards"' in page
    assert "0912" not in page and "+84" not in page  # never a phone number

    # Staff granted on the cell itself see the counts, not the names.
    async with app.db.session() as session:
        session.add(
            RoleGrant(
                member_id=await member_id(app, SECRETARY_PHONE),
                role=Role.staff,
                unit_id=await unit_id(app, CELL),
            )
        )
    client.session.cookie_jar.clear()
    await sign_in(client, await link_for(app, SECRETARY_PHONE))
    page = await (await client.get(f"/web/unit/{await unit_id(app, CELL)}")).text()
    assert 'id="laggards-counts"' in page and "Nguyễn Văn An" not in page


async def test_staff_the_bot_cannot_write_to_still_work_tickets_on_the_web(site) -> None:
    """A send that failed (the staff member never started the bot, or blocked it) marks their
    chat account unreachable; their web session is who they are and keeps its rights (it once
    answered their own commune's ticket with "outside your scope")."""
    app, client = site
    await sign_in(client, await link_for(app, STAFF_PHONE))
    tid = await open_ticket(app, CELL)
    async with app.db.session() as session:
        await session.exec(  # type: ignore[call-overload]
            update(ChannelAccount)
            .where(col(ChannelAccount.member_id) == await member_id(app, STAFF_PHONE))
            .values(reachable=False)
        )
    page = await client.get(f"/web/tickets/{tid}")
    assert page.status == 200 and f"#{tid}" in await page.text()
    csrf = csrf_of(await (await client.get("/web/tickets")).text())
    claim = await client.post(f"/web/tickets/{tid}/claim", data={"csrf": csrf})
    assert claim.status in (200, 303)
    async with app.db.reader() as session:
        claimed = await session.get(Ticket, tid)
        assert claimed is not None and claimed.claimed_by == await member_id(app, STAFF_PHONE)


@pytest.mark.engine_neutral
async def test_a_member_who_lost_the_staff_role_is_signed_out_on_the_next_click(site) -> None:
    app, client = site
    await sign_in(client, await link_for(app, STAFF_PHONE))
    assert (await client.get("/web/tickets")).status == 200
    async with app.db.session() as session:
        from sqlalchemy import delete

        await session.exec(  # type: ignore[call-overload]
            delete(RoleGrant).where(RoleGrant.member_id == await member_id(app, STAFF_PHONE))
        )
    assert (await client.get("/web/tickets")).status == 401


@pytest.mark.engine_neutral
async def test_sign_in_attempts_are_rate_limited(site) -> None:
    app, client = site
    page = await client.get("/web/signin", params={"t": "nope"})
    pre = re.search(r'name="pre" value="([^"]+)"', await page.text())
    assert pre is not None
    statuses = [
        (await client.post("/web/signin", data={"t": f"guess{i}", "pre": pre.group(1)})).status
        for i in range(12)
    ]
    assert statuses[:10] == [403] * 10 and statuses[10:] == [429, 429]
    token = await link_for(app, STAFF_PHONE)  # even a good link waits for the window
    assert (await client.post("/web/signin", data={"t": token, "pre": pre.group(1)})).status == 429


@pytest.mark.engine_neutral
async def test_the_session_cookie_is_secure_behind_https(web_settings: Settings) -> None:
    settings = web_settings.model_copy(update={"web_base_url": "https://sotay.example.vn"})
    await seed_demo(settings, channel="rec")
    app = App(settings, clock=FakeClock())
    server = web.Application()
    dashboard.mount(app)(server)
    async with TestClient(TestServer(server)) as client:
        token = await link_for(app, ADMIN_PHONE)
        form = await client.get("/web/signin", params={"t": token})
        pre_cookie = form.headers["Set-Cookie"]
        assert "Secure" in pre_cookie  # the browser keeps it for https only
        pre = re.search(r'name="pre" value="([^"]+)"', await form.text())
        assert pre is not None
        signed = await client.post(
            "/web/signin",
            data={"t": token, "pre": pre.group(1)},
            headers={"Cookie": f"sotay_pre={pre.group(1)}"},
            allow_redirects=False,
        )
        cookie = next(v for k, v in signed.headers.items() if k == "Set-Cookie" and "web=" in v)
        assert "Secure" in cookie and "HttpOnly" in cookie
    await app.close()


async def test_the_admin_sees_the_province_weakest_first_and_switches_to_english(site) -> None:
    app, client = site
    from bot.demo import seed_history
    from storage.models import RolloutSnapshot

    async with app.db.session() as session:
        await seed_history(session, app.clock.now())  # meetings in two communes
        for week, installed in enumerate((3, 6)):
            session.add(
                RolloutSnapshot(
                    unit_id=await unit_id(app, PROVINCE),
                    taken_on=(app.clock.now() - timedelta(days=14 - 7 * week)).date(),
                    members=24,
                    installed=installed,
                    cells=6,
                    cells_using=week,
                )
            )
    await sign_in(client, await link_for(app, ADMIN_PHONE))
    page = await client.get("/web/")
    assert str(page.url).endswith(f"/web/unit/{await unit_id(app, PROVINCE)}")
    html = await page.text()
    rows = html[html.index('id="children"') :]
    # Weakest first: both communes have 1 of 3 cells meeting in the app; Hợp Thành has fewer
    # members installed, so it comes first (the chat report's order).
    assert rows.index("Xã Hợp Thành") < rows.index("Xã Kháng Nhật")
    assert '<svg class="trend"' in html and "polyline" in html  # two snapshots: a line
    latest = (app.clock.now() - timedelta(days=7)).date()
    assert f'<td>{latest:%d/%m/%Y}</td><td class="n">24</td><td class="n">6</td>' in html
    csrf = csrf_of(html)
    english = await client.post(
        "/web/lang", data={"csrf": csrf, "lang": "en", "back": page.url.path}
    )
    assert english.status == 200 and "Units below (weakest first)" in await english.text()
    evil = await client.post(
        "/web/lang",
        data={"csrf": csrf, "lang": "vi", "back": "//evil.example/"},
        allow_redirects=False,
    )
    assert evil.headers["Location"] == "/web/"  # never an open redirect
    for kind in ("csv", "xlsx", "docx"):
        got = await client.get(f"/web/unit/{await unit_id(app, PROVINCE)}/export.{kind}")
        assert got.status == 200 and len(await got.read()) > 100
        assert "attachment" in got.headers["Content-Disposition"]
    assert (await client.get("/web/gaps")).status == 200
    for url in (page.url.path, "/web/tickets", "/web/gaps", f"{page.url.path}/meetings"):
        body = await (await client.get(url)).text()
        forms = re.findall(r"<form.*?</form>", body, re.S)
        assert forms and all(f'name="csrf" value="{csrf}"' in form for form in forms), url
    assert (await client.get("/web", allow_redirects=False)).headers["Location"] == "/web/"
    meetings = await client.get(f"/web/unit/{await unit_id(app, PROVINCE)}/meetings")
    text = await meetings.text()
    assert meetings.status == 200 and 'id="meetings-past"' in text
    past = text[text.index('id="meetings-past"') :]
    for cell in ("Chi bộ thôn Đồng Bèn", "Chi bộ thôn Khuôn Thê", "Chi bộ thôn Đồng Giàn"):
        assert cell in past
    assert "2/6 chi bộ đã sinh hoạt trên Sổ tay" in text


async def test_web_off_in_the_chat_ends_every_session(world, settings) -> None:  # type: ignore[no-untyped-def]
    """``/web`` from the chat (the recording channel): a link for staff, a refusal for a
    secretary; ``/web off`` revokes every session of that member."""
    from storage.web_models import WebSession

    await seed_demo(settings, channel="rec")
    staff = world.chat("canbo")
    secretary = world.chat("bithu")
    [refused] = await secretary.say("/web")
    assert "không có quyền" in refused.text and "http" not in refused.text
    [off_server] = await staff.say("/web")
    assert "SOTAY_WEB_BASE_URL" in off_server.text  # the dashboard is off on this server
    async with world.app.db.session() as session:
        member = await queries.member_by_phone(session, phone="+84912000090")
        assert member is not None
        for _ in range(2):
            await auth.start_session(session, member.id or 0, world.clock.now(), timedelta(hours=1))
    [off] = await staff.say("/web off")
    assert "2 phiên" in off.text
    async with world.app.db.reader() as session:
        from sqlmodel import select

        rows = (await session.exec(select(WebSession))).all()
    assert len(rows) == 2 and all(row.revoked_at is not None for row in rows)
    assert Member  # noqa: B018 - imported for the type in other tests
    assert Unit  # noqa: B018


@pytest.mark.engine_neutral
async def test_the_terminal_demo_serves_the_dashboard_when_a_base_url_is_set(
    web_settings: Settings,
) -> None:
    import socket

    from aiohttp import ClientSession

    from bot.terminal_chat import _dashboard

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = web_settings.model_copy(update={"web_port": port})
    app = App(settings, clock=FakeClock())
    web_server = await _dashboard(app)
    assert web_server is not None
    try:
        async with (
            ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/web/signin?t=x") as page,
        ):
            assert page.status == 200 and 'id="signin"' in await page.text()
    finally:
        await web_server.stop()
        await app.close()
    off = web_settings.model_copy(update={"web_base_url": None})
    quiet = App(off, clock=FakeClock())
    assert await _dashboard(quiet) is None  # no address, no dashboard
    await quiet.close()
