"""``sotay chat``: read lines, hand them to the router, print what the outbox sends back.

After each line every message due for the current person is delivered before the next prompt
is printed, so a script (or a test) can read up to the prompt and know the answer is complete.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from bot.app import App
from bot.channels.terminal import PROMPT, TerminalChannel
from bot.i18n import t
from bot.settings import Settings
from bot.web import WebServer


async def _readline(stream: TextIO) -> str | None:
    line = await asyncio.get_running_loop().run_in_executor(None, stream.readline)
    return line if line else None


async def chat_loop(
    settings: Settings,
    user: str,
    *,
    hint: str | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> None:
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    app = App(settings)
    channel = TerminalChannel(user, stdout)
    app.add_channel(channel)
    web = await _dashboard(app)
    stdout.write(t(settings.default_language, "terminal.banner") + "\n")
    if hint:
        stdout.write(hint + "\n")
    try:
        await app.dispatcher.run_once(channel.name, channel.user)
        while True:
            stdout.write(PROMPT)
            stdout.flush()
            line = await _readline(stdin)
            if line is None or line.strip() in (":quit", ":q"):
                break
            line = line.strip()
            if not line:
                continue
            if line.startswith(":user"):
                channel.switch(line.removeprefix(":user").strip() or user)
                stdout.write(f"[{channel.user}]\n")
                await app.dispatcher.reschedule_chat(channel.name, channel.user)
            else:
                await app.router.handle(channel.inbound(line))
            await app.dispatcher.run_once(channel.name, channel.user)
    finally:
        stdout.write("\n")
        stdout.flush()
        if web is not None:
            await web.stop()
        await app.close()


async def _dashboard(app: App) -> WebServer | None:
    """With SOTAY_WEB_BASE_URL set, the staff dashboard is served next to the terminal chat
    (``sotay demo``: ``:user canbo``, then ``/web`` gives the sign-in link)."""
    if not app.settings.web_base_url:
        return None
    from handlers import dashboard

    web = WebServer(app.settings)
    web.mount(dashboard.mount(app))
    await web.start()
    return web
