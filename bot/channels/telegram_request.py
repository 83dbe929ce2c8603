"""python-telegram-bot's HTTP requests over aiohttp instead of httpx (issue 14, core throughput).

aiohttp is already how the bot serves its webhooks and talks to Zalo, and it spares each Bot API
call httpx's and anyio's layers (see bench.core_throughput for the bot's CPU per update). The
behaviour is that of PTB's own ``HTTPXRequest``: the same default timeouts (5 s to connect and
between reads, 1 s to get a pooled connection; aiohttp has no write timeout), files as
multipart, a timeout raised as ``TimedOut`` and any other transport failure as ``NetworkError``;
PTB maps the HTTP answer itself. Parameters without files go as a JSON body, which the Bot API
takes as well as a form: URL-encoding a Vietnamese text and its buttons costs aiohttp ~90 µs a
call against ~6 µs for the JSON (as the Bot API documents it: numbers as numbers, markup
as an object, text in UTF-8).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

DEFAULT_TIMEOUT = 5.0
DEFAULT_POOL_TIMEOUT = 1.0


def _given(value: ODVInput[float], default: float | None) -> float | None:
    return default if isinstance(value, DefaultValue) else value


class AiohttpRequest(BaseRequest):
    """A ``BaseRequest`` on one ``aiohttp.ClientSession`` with up to ``connections`` sockets."""

    def __init__(self, connections: int = 256, read_timeout: float = DEFAULT_TIMEOUT) -> None:
        self._connections = connections
        self._read_timeout = read_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connections)
            self._session = aiohttp.ClientSession(connector=connector)

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        body: Any = None
        headers = {"User-Agent": self.USER_AGENT}
        files = request_data.multipart_data if request_data else None
        if request_data is not None and files:
            body = aiohttp.FormData(request_data.json_parameters)
            for name, (filename, content, mime) in files.items():
                body.add_field(name, content, filename=filename, content_type=mime)
        elif request_data is not None and request_data.parameters:
            body = json.dumps(request_data.parameters, ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json"
        pool = _given(pool_timeout, DEFAULT_POOL_TIMEOUT)
        connect = _given(connect_timeout, DEFAULT_TIMEOUT)
        # As httpx: limits per step, none on the whole request (a large upload on a slow line
        # may take long). aiohttp has no write timeout; its connect covers waiting for a pooled
        # connection and opening a new one.
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=None if pool is None or connect is None else pool + connect,
            sock_connect=connect,
            sock_read=_given(read_timeout, self._read_timeout),
        )
        try:
            async with self._session.request(
                method,
                url,
                data=body,
                headers=headers,
                timeout=timeout,
            ) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc
