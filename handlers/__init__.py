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
        feedback,
        install_help,
        meetings,
        notices,
        registration,
        reports,
        rollout_data,
        smalltalk,
        support,
        training,
        venues,
    )

    for module in (
        registration,
        account,
        admin,
        approvals,
        meetings,
        notices,
        reports,
        rollout_data,
        faq,
        fallback,
        smalltalk,
        support,
        training,
        venues,
        feedback,
        install_help,
    ):
        module.setup(router)
    from handlers import dashboard

    dashboard.setup(router)
