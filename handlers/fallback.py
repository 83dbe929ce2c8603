"""Free text outside any dialog is a question: the FAQ answers it (see handlers/faq.py)."""

from __future__ import annotations

from bot.context import Ctx
from bot.router import Router
from handlers.faq import on_question


async def on_free_text(ctx: Ctx, text: str) -> None:
    if not text.strip() and ctx.event.attachment is not None:
        ctx.reply(ctx.t("common.attachment_outside_dialog"))
        return
    await on_question(ctx, text)


def setup(router: Router) -> None:
    router.fallback = on_free_text
