"""The last stage of the free-text pipeline: anything else typed is a question for the FAQ."""

from __future__ import annotations

from bot.context import Ctx
from bot.router import Router, TextStage
from handlers.faq import on_question


async def on_free_text(ctx: Ctx, text: str) -> bool:
    if not text.strip() and ctx.event.attachment is not None:
        ctx.reply(ctx.t("common.attachment_outside_dialog"))
        return True
    await on_question(ctx, text)
    return True


def setup(router: Router) -> None:
    router.free_text(TextStage.QUESTIONS)(on_free_text)
