"""The staff web dashboard (issue 13): rollout, meetings, tickets and FAQ gaps per unit, in a
browser, for committee staff and admins. ``/web`` in the chat gives a one-time sign-in link;
``routes`` serves the pages on the process's one web server; ``auth`` holds links, sessions and
CSRF; ``queries`` reads inside the viewer's scope; ``charts`` draws inline SVG.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.router import Router

from .chat import cmd_web

if TYPE_CHECKING:
    from aiohttp import web

    from bot.app import App


def setup(router: Router) -> None:
    from .auth import STAFF

    router.command("web", requires=STAFF)(cmd_web)


def mount(app: App) -> Callable[[web.Application], None]:
    """What ``WebServer.mount`` takes for this app: the dashboard's routes bound to its
    database and services (call only when SOTAY_WEB_BASE_URL is set)."""
    from .auth import Throttle
    from .routes import Deps, add_routes

    async def after_write(scheduled: bool) -> None:
        if scheduled:
            await app.scheduler.rearm()
        app.dispatcher.wake()

    return add_routes(Deps(app.db, app.services, after_write, Throttle()))
