"""What the assistant does, independent of any messenger. ``setup`` wires it into a router."""

from __future__ import annotations

from bot.router import Router


def setup(router: Router) -> None:
    from handlers import (
        account,
        admin,
        approvals,
        fallback,
        faq,
        meetings,
        notices,
        registration,
        reports,
        smalltalk,
        support,
    )

    for module in (
        registration,
        account,
        admin,
        approvals,
        meetings,
        notices,
        reports,
        faq,
        fallback,
        smalltalk,
        support,
    ):
        module.setup(router)
