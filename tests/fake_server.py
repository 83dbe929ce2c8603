"""What every fake messenger server of the tests shares (Telegram, Zalo Bot Platform, Zalo OA).

An aiohttp application on a free loopback port, a client session and a background task for
delivering webhooks, and one way to wait: every state change wakes the waiters, who re-check
their condition, so a test waits for what it needs and never sleeps. The protocol of each
messenger stays in its own module.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, Self

from aiohttp import ClientSession, web


class FakeServer:
    def __init__(self) -> None:
        self.root = ""
        self._closing = False
        self._changed_event = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self._background: asyncio.Task[None] | None = None

    async def start(self) -> str:
        raise NotImplementedError

    async def _serve(
        self,
        app: web.Application,
        background: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> str:
        """Serve ``app`` on 127.0.0.1 at a free port (its root URL is returned) and run
        ``background`` (e.g. the webhook delivery loop) until :meth:`stop`."""
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.root = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._session = ClientSession()
        if background is not None:
            self._background = asyncio.create_task(background())
        return self.root

    async def stop(self) -> None:
        """Wake pending waiters and long polls, stop the background task, close the server."""
        self._closing = True
        self._changed()
        if self._background:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background
        if self._session:
            await self._session.close()
        if self._runner:
            await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _changed(self) -> None:
        """Wake every waiter; each waits on the event that was current when it checked."""
        event, self._changed_event = self._changed_event, asyncio.Event()
        event.set()

    async def _wait_change(self, seconds: float | None) -> bool:
        """Wait for the next state change; False when ``seconds`` pass first."""
        event = self._changed_event
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            return False
        return True

    async def wait_until(
        self,
        predicate: Callable[[], object],
        timeout: float,  # noqa: ASYNC109
        describe: Callable[[], str],
    ) -> None:
        """Wait until ``predicate()`` holds, re-checked on every state change; a timeout says
        what was awaited (``describe``) instead of a bare assertion."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0 or not await self._wait_change(remaining):
                if predicate():
                    return
                raise AssertionError(f"timed out after {timeout}s: {describe()}")
