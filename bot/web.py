"""The one web server of a process. Every webhook channel mounts its route here (and the
dashboard will), so a process listens on one address and port whatever it serves."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.settings import Settings

AddRoutes = Callable[[web.Application], None]
Readiness = Callable[[], Awaitable[tuple[bool, dict[str, object]]]]
MetricsText = Callable[[], Awaitable[bytes]]


async def _healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


class WebServer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._app = web.Application()
        self._app.router.add_get("/healthz", _healthz)
        self._runner: web.AppRunner | None = None
        self.mounted = 0

    def mount(self, add_routes: AddRoutes) -> None:
        """Add a feature's routes; only before ``start``."""
        add_routes(self._app)
        self.mounted += 1

    def mount_operations(self, ready: Readiness, metrics: MetricsText) -> None:
        """``/readyz`` (200 or 503 with the checks as JSON) and ``/metrics`` (Prometheus)."""

        async def readyz(_request: web.Request) -> web.Response:
            ok, checks = await ready()
            body = json.dumps({"ready": ok, **checks})
            return web.Response(
                text=body, status=200 if ok else 503, content_type="application/json"
            )

        async def exposition(_request: web.Request) -> web.Response:
            from bot.metrics import CONTENT_TYPE

            return web.Response(body=await metrics(), headers={"Content-Type": CONTENT_TYPE})

        self._app.router.add_get("/readyz", readyz)
        self._app.router.add_get("/metrics", exposition)

    async def start(self) -> None:
        # No access log: paths carry no personal data, but it would keep client addresses for
        # nothing. Requests in progress at a stop get 3 s (SIGTERM's budget is 10 s in all).
        self._runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=3.0)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            self._settings.web_host,
            self._settings.web_port,
            reuse_port=self._settings.web_reuse_port or None,  # `sotay run --workers N`
        )
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def serve_alone(settings: Settings, add_routes: AddRoutes) -> WebServer:
    """A server for one channel started on its own (tests, a single-channel process)."""
    server = WebServer(settings)
    server.mount(add_routes)
    await server.start()
    return server
