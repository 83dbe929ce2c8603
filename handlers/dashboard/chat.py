"""``/web``: a one-time sign-in link to the dashboard; ``/web off``: sign out everywhere.

Roles are checked by the router (staff or admin) and again here; the link goes only to the
chat the command came from, and the log keeps the member id, never the link.
"""

from __future__ import annotations

import logging

from bot.context import Ctx
from bot.core import View

from . import auth

log = logging.getLogger("sotay.dashboard")


async def cmd_web(ctx: Ctx, args: str) -> None:
    member = ctx.actor.member
    if member is None or not ctx.actor.registered or not ctx.actor.holds(*auth.STAFF):
        ctx.reply(ctx.t("web.only_staff"))
        return
    if args.strip().lower() in ("off", "tắt", "tat", "thoát", "thoat"):
        ended = await auth.sign_out_everywhere(ctx.session, member.id or 0, ctx.now)
        log.info("dashboard.signed_out_everywhere member=%s sessions=%s", member.id, ended)
        ctx.reply(ctx.t("web.off", n=ended))
        return
    base = ctx.settings.web_base_url
    if not base:
        ctx.reply(ctx.t("web.not_configured"))
        return
    token = await auth.create_link(ctx.session, member.id or 0, ctx.lang, ctx.now)
    minutes = int(auth.LINK_TTL.total_seconds() // 60)
    log.info("dashboard.link member=%s", member.id)
    ctx.reply(View(ctx.t("web.link", url=f"{base}/web/signin?t={token}", minutes=minutes)))
