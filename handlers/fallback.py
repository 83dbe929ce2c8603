"""Free text outside any dialog. The FAQ will answer here; until then, point to the menu."""

from __future__ import annotations

from bot.context import Ctx
from bot.router import Router
from handlers.membership import menu_view


async def on_free_text(ctx: Ctx, text: str) -> None:
    if ctx.actor.registered:
        ctx.reply(menu_view(ctx, intro=ctx.t("common.free_text")))
    else:
        ctx.reply(ctx.t("common.start_first"))


def setup(router: Router) -> None:
    router.fallback = on_free_text
