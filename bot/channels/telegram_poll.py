"""Long polling that confirms an update only after it was handled (issue 14).

python-telegram-bot's ``Updater`` puts fetched updates on a queue and asks for the next batch at
once with ``offset = last + 1``, which confirms the batch to Telegram before any handler ran; a
process killed in between loses those updates (Telegram forgets confirmed updates; PTB keeps the
offset in memory only). Here the next ``getUpdates`` carries the new offset only after every
update of the batch went through the router, whose transaction records the update as processed
(``processedevent``) when it commits. A crash before that commit leaves the update unconfirmed,
so Telegram hands it out again and the router handles it once; a crash after it makes the
redelivered copy a recorded duplicate, answered by nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from telegram import Bot
from telegram.error import Conflict, RetryAfter, TelegramError

from bot.channels.telegram_request import DEFAULT_TIMEOUT

log = logging.getLogger("sotay.telegram")

POLL_TIMEOUT = 10  # seconds a getUpdates call may wait for something to arrive
MAX_BACKOFF = 30.0
JSONDict = dict[str, Any]


class ConfirmingPoller:
    """Fetch a batch, handle every update of it, only then ask for (and so confirm) the next."""

    def __init__(
        self,
        bot: Bot,
        handle: Callable[[JSONDict], Awaitable[None]],
        *,
        allowed_updates: Sequence[str],
        timeout: int = POLL_TIMEOUT,
    ) -> None:
        self._bot = bot
        self._handle = handle
        self._allowed = list(allowed_updates)
        self._timeout = timeout
        self._offset: int | None = None  # None: Telegram's earliest unconfirmed update
        self._task: asyncio.Task[None] | None = None
        self._fetching = False
        self._stopping = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="telegram-poll")

    async def stop(self, grace: float = 8.0) -> None:
        """Stop fetching; a batch being handled may finish (within ``grace``), its offset is
        then confirmed by nobody — the next process gets it again and skips what was recorded."""
        self._stopping = True
        task, self._task = self._task, None
        if task is None:
            return
        if self._fetching:
            task.cancel()  # only waiting for the server: nothing of ours is lost
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, timeout=grace)

    async def _run(self) -> None:
        backoff = 1.0
        while not self._stopping:
            try:
                updates = await self._fetch()
            except asyncio.CancelledError:
                raise
            except RetryAfter as exc:
                await asyncio.sleep(_seconds(exc.retry_after))
                continue
            except Conflict:
                log.warning("telegram.poll_conflict")  # another process polls this bot
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)
                continue
            except TelegramError as exc:
                log.warning("telegram.poll_failed error=%s", type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)
                continue
            backoff = 1.0
            ids = [u["update_id"] for u in updates if _has_update_id(u)]
            if len(ids) < len(updates):  # the Bot API sends none such; never fatal
                log.warning("telegram.poll_bad_updates count=%d", len(updates) - len(ids))
            if ids:
                await self._handle_batch([u for u in updates if _has_update_id(u)])
                self._offset = max(ids) + 1  # confirmed by the next fetch

    async def _fetch(self) -> list[Any]:
        """The next batch as the Bot API's JSON: the channel reads the fields it needs (PTB's
        ``get_updates`` builds an ``Update`` of each, ~3 % of the bot's CPU). The same request
        as ``get_updates``, its read timeout the poll's plus the usual one."""
        self._fetching = True
        params: JSONDict = {"timeout": self._timeout, "allowed_updates": self._allowed}
        if self._offset is not None:
            params["offset"] = self._offset
        try:
            result = await self._bot._post(  # noqa: SLF001
                "getUpdates", params, read_timeout=self._timeout + DEFAULT_TIMEOUT
            )
        finally:
            self._fetching = False
        return result if isinstance(result, list) else []

    async def _handle_batch(self, updates: Sequence[JSONDict]) -> None:
        """All at once, as PTB's concurrent updates did (the router keeps one user's in order).
        An update whose handling raised is logged and confirmed with the rest: redelivering it
        would fail the same way, forever."""
        results = await asyncio.gather(
            *(self._handle(update) for update in updates), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancelled: leave the batch unconfirmed
            if isinstance(result, Exception):
                log.error("telegram.update_failed error=%s", type(result).__name__)


def _seconds(value: object) -> float:
    total = getattr(value, "total_seconds", None)
    return float(total()) if callable(total) else float(value)  # type: ignore[arg-type]


def _has_update_id(update: object) -> bool:
    if not isinstance(update, dict):
        return False
    value = update.get("update_id")
    return isinstance(value, int) and not isinstance(value, bool)
