"""The dashboard's pages, mounted under ``/web`` on the process's one web server (bot/web.py).

Every request: security headers; the session cookie checked against the database (with the
member's grants read afresh); every unit or ticket named in the URL checked against the
viewer's scope on the server — outside it, the answer is the same 404 as for a unit that does
not exist, so editing the URL tells nothing. Every form carries the session's CSRF token.
Ticket actions call the very functions the chat buttons call (``handlers.support_core``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import reports
from bot.context import Ctx, Services
from bot.core import Inbound
from bot.i18n import t
from handlers import support_core as core
from handlers.rollout_data import cell_laggards
from storage.db import Database
from storage.models import Member, Ticket, TicketStatus, Unit

from . import auth, charts
from . import queries as q

log = logging.getLogger("sotay.dashboard")

HERE = Path(__file__).parent
SESSION_COOKIE = "sotay_web"
PRE_COOKIE = "sotay_pre"  # the sign-in form's own CSRF token, before there is a session
LANG_COOKIE = "sotay_lang"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
MAX_REPLY = core.MAX_TEXT
# Where the guard leaves the viewer for the page (a typed key where aiohttp has them).
VIEWER: Any = web.RequestKey("viewer", auth.Viewer) if hasattr(web, "RequestKey") else "viewer"
EXPORTS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


@dataclass
class Deps:
    """What the pages need from the app: the database, the services handlers get, and what to
    run after a write (wake the sender, re-arm the timer), as the router does after an event."""

    db: Database
    services: Services
    after_write: Callable[[bool], Awaitable[None]]
    throttle: auth.Throttle


ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def render(request: web.Request, name: str, status: int = 200, **values: Any) -> web.Response:
    lang = language(request)
    viewer: auth.Viewer | None = request.get(VIEWER)

    def tr(key: str, **more: object) -> str:
        return t(lang, key, **more)

    values.setdefault("unit", None)
    html = ENV.get_template(name).render(
        t=tr,
        home=q.home(viewer.actor) if viewer else None,
        lang=lang,
        viewer=viewer,
        csrf=viewer.csrf if viewer else "",
        path=request.path_qs,
        number=lambda n: reports.number(lang, n),
        pct=lambda share: reports.pct_text(lang, share),
        **values,
    )
    return web.Response(text=html, status=status, content_type="text/html")


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def language(request: web.Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "vi")
    return lang if lang in ("vi", "en") else "vi"


def client_of(request: web.Request) -> str:
    """The client's address; behind the local nginx, the one it forwards."""
    remote = request.remote or "?"
    if remote in ("127.0.0.1", "::1"):
        return request.headers.get("X-Real-IP", remote)
    return remote


def secure(deps: Deps) -> bool:
    return (deps.services.settings.web_base_url or "").startswith("https://")


def set_cookie(
    response: web.StreamResponse, deps: Deps, name: str, value: str, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/web",
        httponly=True,
        samesite="Strict",
        secure=secure(deps),
    )


# --- middleware -------------------------------------------------------------------------------


def middleware(deps: Deps) -> Any:
    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        """Headers on every answer; the viewer for every page but sign-in and static files;
        the CSRF token on every POST."""
        try:
            response = await _guarded(request, handler, deps)
        except web.HTTPException as exc:
            if exc.status >= 400:
                response = render(request, "message.html", exc.status, key=f"web.http.{exc.status}")
            else:  # a redirect
                response = web.Response(status=exc.status, headers=exc.headers)
        except Exception:
            log.exception("dashboard.failed path=%s", request.match_info.route.resource)
            response = render(request, "message.html", 500, key="web.http.500")
        response.headers.update(HEADERS)
        if request.path.startswith("/web/static/") and response.status == 200:
            response.headers["Cache-Control"] = "max-age=3600"  # one stylesheet, no secrets
        return response

    return guard


OPEN_PATHS = ("/web/signin", "/web/static/")


async def _guarded(request: web.Request, handler: Any, deps: Deps) -> web.StreamResponse:
    if request.path.startswith(OPEN_PATHS):
        return await handler(request)  # type: ignore[no-any-return]
    async with deps.db.reader() as session:
        viewer = await auth.viewer_of(
            session,
            request.cookies.get(SESSION_COOKIE),
            deps.services.clock.now(),
            deps.services.settings.signing_key,
        )
    if viewer is None:
        return render(request, "message.html", 401, key="web.signed_out")
    request[VIEWER] = viewer
    if request.method == "POST":
        form = await request.post()
        if not auth.same(str(form.get("csrf", "")), viewer.csrf):
            log.warning("dashboard.csrf_refused member=%s", viewer.member.id)
            raise web.HTTPForbidden()
    return await handler(request)  # type: ignore[no-any-return]


# --- sign-in and out --------------------------------------------------------------------------


def make_routes(deps: Deps) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    @routes.get("/signin")
    async def signin_form(request: web.Request) -> web.Response:
        token = request.query.get("t", "")
        pre = secrets.token_urlsafe(24)
        response = render(request, "signin.html", token=token, pre=pre)
        set_cookie(response, deps, PRE_COOKIE, pre, 900)
        return response

    @routes.post("/signin")
    async def signin(request: web.Request) -> web.StreamResponse:
        if not deps.throttle.allow(client_of(request)):
            log.warning("dashboard.signin_throttled")
            return render(request, "message.html", 429, key="web.http.429")
        form = await request.post()
        pre = request.cookies.get(PRE_COOKIE, "")
        if not pre or not auth.same(str(form.get("pre", "")), pre):
            raise web.HTTPForbidden()
        now = deps.services.clock.now()
        async with deps.db.session() as session:
            link = await auth.use_link(session, str(form.get("t", ""))[:100], now)
            if link is None:
                log.info("dashboard.signin_refused")
                return render(request, "message.html", 403, key="web.link_invalid")
            lasts = deps.services.settings.web_session
            token = await auth.start_session(session, link.member_id, now, lasts)
            lang = link.lang if link.lang in ("vi", "en") else "vi"
        log.info("dashboard.signed_in member=%s", link.member_id)
        response = see_other("/web/")
        set_cookie(response, deps, SESSION_COOKIE, token, int(lasts.total_seconds()))
        set_cookie(response, deps, LANG_COOKIE, lang, 400 * 86400)
        response.del_cookie(PRE_COOKIE, path="/web")
        return response

    @routes.post("/signout")
    async def signout(request: web.Request) -> web.StreamResponse:
        viewer: auth.Viewer = request[VIEWER]
        async with deps.db.session() as session:
            await auth.revoke(session, viewer.token, deps.services.clock.now())
        response = render(request, "message.html", 200, key="web.signed_out_now")
        response.del_cookie(SESSION_COOKIE, path="/web")
        return response

    @routes.post("/lang")
    async def switch_language(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        lang = str(form.get("lang", "vi"))
        back = str(form.get("back", "/web/"))
        if not back.startswith("/web/") or "//" in back:  # never an open redirect
            back = "/web/"
        response = see_other(back)
        set_cookie(response, deps, LANG_COOKIE, lang if lang in ("vi", "en") else "vi", 400 * 86400)
        return response

    routes.static("/static", HERE / "static")

    # --- pages ------------------------------------------------------------------------------

    async def scoped_unit(request: web.Request, session: AsyncSession) -> Unit:
        """The unit of the URL, if the viewer may see it; else 404 (never telling which)."""
        viewer: auth.Viewer = request[VIEWER]
        raw = request.match_info["unit"]
        unit = await session.get(Unit, int(raw)) if raw.isdigit() and len(raw) < 12 else None
        if unit is None or not q.may_see(viewer.actor, unit):
            if unit is not None:
                log.warning("dashboard.outside member=%s unit=%s", viewer.member.id, unit.id)
            raise web.HTTPNotFound()
        return unit

    @routes.get("/")
    async def start(request: web.Request) -> web.StreamResponse:
        viewer: auth.Viewer = request[VIEWER]
        unit = q.home(viewer.actor)
        assert unit is not None  # viewer_of admits staff and admins only
        raise web.HTTPSeeOther(f"/web/unit/{unit.id}")

    @routes.get("/unit/{unit}")
    async def rollout(request: web.Request) -> web.Response:
        viewer: auth.Viewer = request[VIEWER]
        lang = language(request)
        now = deps.services.clock.now()
        tz = deps.services.settings.tz
        async with deps.db.reader() as session:
            unit = await scoped_unit(request, session)
            span = reports.window(now)
            report = await reports.unit_report(session, unit=unit, span=span)
            crumbs = await q.trail(session, viewer.actor, unit)
            snaps = await q.snapshots(session, unit.id or 0, now.astimezone(tz).date())
            laggards = None
            named = False
            if report.is_cell:
                named = q.may_name_members(viewer.actor, unit)
                laggards = await cell_laggards(session, unit.id or 0)
        points = [
            (
                s.taken_on,
                s.installed / s.members if s.members else None,
                s.cells_using / s.cells if s.cells else None,
            )
            for s in snaps
        ]
        labels = (
            t(lang, "web.trend.installed"),
            t(lang, "web.trend.using"),
            t(lang, "web.goal", target=round(reports.TARGET * 100)),
        )
        return render(
            request,
            "rollout.html",
            unit=unit,
            report=report,
            crumbs=crumbs,
            window=reports.window_text(lang, report.window, tz).removeprefix("🗓").strip(),
            bar=charts.bar,
            trend=charts.trend(points, labels),
            snaps=snaps,
            laggards=laggards,
            named=named,
            target=round(reports.TARGET * 100),
        )

    @routes.get("/unit/{unit}/meetings")
    async def meetings(request: web.Request) -> web.Response:
        viewer: auth.Viewer = request[VIEWER]
        now = deps.services.clock.now()
        async with deps.db.reader() as session:
            unit = await scoped_unit(request, session)
            span = reports.window(now)
            report = await reports.unit_report(session, unit=unit, span=span)
            past = await q.meetings(session, unit, start=span.start, end=now)
            ahead = await q.meetings(session, unit, start=now, end=now + timedelta(days=60))
            crumbs = await q.trail(session, viewer.actor, unit)
        return render(
            request,
            "meetings.html",
            unit=unit,
            report=report,
            past=past,
            ahead=ahead,
            crumbs=crumbs,
            when=lambda at: core.when(deps.services.settings, at),
        )

    @routes.get("/unit/{unit}/export.{kind}")
    async def export(request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if kind not in EXPORTS:
            raise web.HTTPNotFound()
        lang = language(request)
        tz, now = deps.services.settings.tz, deps.services.clock.now()
        async with deps.db.reader() as session:
            unit = await scoped_unit(request, session)
            span = reports.window(now)
            rows = await reports.scope_rows(session, unit=unit, span=span)
            difficulties = (
                await reports.open_difficulties(session, unit=unit) if kind == "docx" else {}
            )
        report = reports.report_from_rows(unit, rows, span)
        cells = [row for row in rows if row.cells]
        data = await asyncio.to_thread(_file, kind, lang, report, cells, difficulties, tz)
        name = f"{reports.file_stem(report.scope, span, tz)}.{kind}"
        return web.Response(
            body=data,
            headers={
                "Content-Type": EXPORTS[kind],
                "Content-Disposition": f'attachment; filename="{name}"',
            },
        )

    @routes.get("/tickets")
    async def tickets(request: web.Request) -> web.Response:
        viewer: auth.Viewer = request[VIEWER]
        now = deps.services.clock.now()
        async with deps.db.reader() as session:
            rows = await q.queue(session, viewer.actor)
        by_category: dict[str, int] = {}
        for row in rows:
            by_category[row.ticket.category] = by_category.get(row.ticket.category, 0) + 1
        lang = language(request)
        return render(
            request,
            "tickets.html",
            rows=rows,
            by_category=sorted(by_category.items(), key=lambda item: -item[1]),
            category=lambda c: core.category_label(lang, c),
            age=lambda tk: core.duration_text(lang, now - (tk.created_at or now)),
            overdue=lambda tk: (
                tk.status == TicketStatus.open
                and tk.sla_due_at is not None
                and tk.sla_due_at <= now
            ),
            when=lambda at: core.when(deps.services.settings, at),
        )

    async def scoped_ticket(request: web.Request, session: Any, verb: str) -> tuple[Ticket, Unit]:
        viewer: auth.Viewer = request[VIEWER]
        raw = request.match_info["ticket"]
        ticket = await session.get(Ticket, int(raw)) if raw.isdigit() and len(raw) < 12 else None
        cell = await session.get(Unit, ticket.cell_id) if ticket else None
        if ticket is None or cell is None or not core.may(viewer.actor, verb, cell):
            raise web.HTTPNotFound()
        return ticket, cell

    @routes.get("/tickets/{ticket}")
    async def ticket_page(request: web.Request) -> web.Response:
        lang = language(request)
        async with deps.db.reader() as session:
            ticket, cell = await scoped_ticket(request, session, "view")
            unit = await session.get(Unit, ticket.unit_id)
            entries = await core.history(session, ticket.id or 0)
            claimer = await session.get(Member, ticket.claimed_by) if ticket.claimed_by else None
            member = await session.get(Member, ticket.member_id) if ticket.member_id else None
        return render(
            request,
            "ticket.html",
            ticket=ticket,
            cell=cell,
            unit=unit,
            member=member,
            entries=entries,
            state=core.status_text(lang, ticket, claimer),
            category=core.category_label(lang, ticket.category),
            when=lambda at: core.when(deps.services.settings, at),
            done=request.query.get("done", ""),
            active=ticket.status in q.ACTIVE,
            closed=ticket.status == TicketStatus.closed,
            max_reply=MAX_REPLY,
        )

    @routes.post("/tickets/{ticket}/{verb}")
    async def ticket_action(request: web.Request) -> web.StreamResponse:
        """Claim, reply or resolve: the chat buttons' own functions, in one transaction."""
        viewer: auth.Viewer = request[VIEWER]
        verb = request.match_info["verb"]
        if verb not in ("claim", "reply", "done"):
            raise web.HTTPNotFound()
        form = await request.post()
        text = str(form.get("text", "")).strip()
        lang = language(request)
        if verb == "reply" and not 1 <= len(text) <= MAX_REPLY:
            raise web.HTTPSeeOther(f"/web/tickets/{request.match_info['ticket']}?done=empty")
        async with deps.db.session() as session:
            ticket, _cell = await scoped_ticket(request, session, verb)
            ticket = await core.lock_ticket(session, ticket.id or 0) or ticket
            ctx = web_ctx(session, deps.services, viewer, lang)
            outcome = await act(ctx, ticket, verb, text)
        await deps.after_write(bool(session.info.get("scheduled")))
        log.info("dashboard.ticket id=%s verb=%s outcome=%s", ticket.id, verb, outcome)
        raise web.HTTPSeeOther(f"/web/tickets/{ticket.id}?done={outcome}")

    @routes.get("/gaps")
    async def gaps(request: web.Request) -> web.Response:
        from handlers.faq_gaps import gap_clusters

        async with deps.db.reader() as session:
            clusters = await gap_clusters(session)
        return render(request, "gaps.html", clusters=clusters[: q.SHOWN])

    return routes


def _file(
    kind: str, lang: str, report: Any, cells: Any, difficulties: dict[str, int], tz: Any
) -> bytes:
    from bot import report_files

    if kind == "csv":
        return reports.render_csv(lang, cells, tz)
    if kind == "xlsx":
        return report_files.render_xlsx(lang, report, cells, tz)
    return report_files.render_docx(lang, report, difficulties, tz)


def web_ctx(session: Any, services: Services, viewer: auth.Viewer, lang: str) -> Ctx:
    """A handler context for an action taken on the page: the viewer's own chat account is the
    event's chat, so notices the chat path sends "here" (an answer delivered or not) reach the
    staff member's chat, and the actor is checked by the same rules as a button press."""
    account = viewer.actor.account
    channel, chat = (account.channel, account.chat_ref) if account else ("web", "web")
    event = Inbound(
        channel=channel,
        user_ref=account.user_ref if account else "web",
        chat_ref=chat,
        key=f"web:{uuid.uuid4().hex}",
    )
    return Ctx(session=session, services=services, event=event, actor=viewer.actor, lang=lang)


async def act(ctx: Ctx, ticket: Ticket, verb: str, text: str) -> str:
    """One ticket action through ``handlers.support_core``, as the chat's buttons do it."""
    if verb == "claim":
        return await core.claim(ctx, ticket)
    if verb == "done":
        return "resolved" if await core.resolve(ctx, ticket) else "not_open"
    where = core.Chat(ctx.event.channel, ctx.event.chat_ref, None, ctx.lang, False)
    sent = await core.staff_answer(ctx, ticket, text=text, attachment=None, where=where)
    return "sent" if sent else "not_sent"


async def _to_start(_request: web.Request) -> web.Response:
    return see_other("/web/")


def add_routes(deps: Deps) -> Callable[[web.Application], None]:
    """For ``WebServer.mount``: the dashboard's routes and its guard on the process's server."""

    def mount(app: web.Application) -> None:
        sub = web.Application(middlewares=[middleware(deps)])
        sub.add_routes(make_routes(deps))
        app.router.add_get("/web", _to_start)  # before the sub-application, which takes "/web"
        app.add_subapp("/web/", sub)  # the guard applies to /web/... only

    return mount
