"""The local tool's WebSocket connection to the helper stack's API.

Why it is more than ``websockets.connect``: API Gateway closes a connection after 10 idle
minutes and after 2 hours in any case, refuses frames over 32 KB, and a laptop's network
drops. This class keeps the connection alive with application pings, splits large messages
into frames, and reconnects with the same session (the authorizer lets the identity that
created a live session back in; every connect carries a fresh proof of that identity).
Messages sent while the connection is down are queued and sent after the reconnect.

A reconnect survives any failure (network down, AWS throttling, expired credentials that
botocore has not refreshed yet): it says what happened and retries with a bounded back-off.
Only a session that is over (:class:`plldb.session.sessions.SessionLost`) ends it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

from plldb import limits
from plldb import protocol as p
from plldb.session.connect_url import connect_url
from plldb.session.sessions import SessionLost

log = logging.getLogger(__name__)

MessageHandler = Callable[[dict[str, Any]], Awaitable[None]]


class ConnectionRefused(Exception):
    """The helper stack refused the WebSocket upgrade (the authorizer said Deny)."""


class Connection:
    """One logical connection for a session, surviving drops and API Gateway's limits."""

    def __init__(
        self,
        url: str,
        query: dict[str, str],
        on_message: MessageHandler,
        headers: Callable[[], dict[str, str]],
        check_live: Callable[[], None],
        ping_interval: float = 240.0,
        pong_timeout: float = 30.0,
        max_reconnect_delay: float = 10.0,
    ) -> None:
        """``headers`` gives each connect's upgrade headers (a fresh identity proof);
        ``check_live`` runs before each reconnect and raises SessionLost when the session is
        over."""
        self.url = connect_url(url, query)
        self.on_message = on_message
        self.headers = headers
        self.check_live = check_live
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.max_reconnect_delay = max_reconnect_delay
        self.closing = False
        self.reconnects = 0
        self._ws: ClientConnection | None = None
        self._queue: list[str] = []
        self._pong = asyncio.Event()
        self._connected = asyncio.Event()

    async def _connect(self) -> ClientConnection:
        headers = await asyncio.to_thread(self.headers)
        return await connect(
            self.url, max_size=None, ping_interval=None, additional_headers=headers
        )

    async def open(self) -> None:
        """First connection: a refusal here is a clear error, not a retry."""
        try:
            self._ws = await self._connect()
        except websockets.exceptions.InvalidStatus as exc:
            raise ConnectionRefused(
                f"the helper stack refused the connection (HTTP {exc.response.status_code}): "
                "it could not verify your identity, the session is over, or the stack was "
                "attached by someone else meanwhile (`plldb status` shows who; --force takes "
                "it over)"
            ) from exc
        self._connected.set()

    async def run(self) -> None:
        """Receive until :meth:`close`; reconnect whenever the connection drops."""
        keepalive = asyncio.create_task(self._keepalive())
        try:
            while not self.closing:
                if self._ws is None:
                    await self._reconnect()
                    continue
                await self._flush_queue()
                await self._receive(self._ws)
                self._ws = None
                self._connected.clear()
        finally:
            keepalive.cancel()

    async def _receive(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                await self._dispatch(raw)
        except websockets.exceptions.ConnectionClosed as exc:
            log.info("connection closed: %s", exc)

    async def _dispatch(self, raw: str | bytes) -> None:
        try:
            message = p.parse_server_message(raw)
        except p.ProtocolError as exc:
            log.warning("ignored an invalid message from the helper stack: %s", exc)
            return
        if message["type"] == p.TYPE_PONG:
            self._pong.set()
            return
        await self.on_message(message)

    async def _reconnect(self) -> None:
        """Re-open the session and connect again until it works, the session is lost, or close.

        Every failure is logged with its cause: a new cause as a warning (the user sees why
        debugging is paused), the same cause again at info level. The delay doubles up to
        ``max_reconnect_delay``.
        """
        delay = 0.2
        last_cause = ""
        while not self.closing:
            try:
                await asyncio.to_thread(self.check_live)
                self._ws = await self._connect()
                self._connected.set()
                self.reconnects += 1
                log.info("reconnected (%d so far)", self.reconnects)
                return
            except SessionLost:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure is retried, never fatal
                cause = describe_failure(exc)
                level = logging.INFO if cause == last_cause else logging.WARNING
                log.log(level, "reconnect failed (%s); retrying in %.1f s", cause, delay)
                last_cause = cause
                await asyncio.sleep(delay)
                delay = min(self.max_reconnect_delay, delay * 2)

    async def _keepalive(self) -> None:
        """Application pings keep API Gateway's idle timer from closing the connection."""
        while not self.closing:
            await asyncio.sleep(self.ping_interval)
            ws = self._ws
            if ws is None:
                continue
            self._pong.clear()
            await self.send({"action": p.ACTION_PING})
            try:
                await asyncio.wait_for(self._pong.wait(), self.pong_timeout)
            except asyncio.TimeoutError:
                log.info("no pong within %.0fs: dropping the connection", self.pong_timeout)
                await ws.close()

    async def send(self, message: dict[str, Any]) -> None:
        """Send now if connected, otherwise queue until the reconnect."""
        text = p.encode(message)
        if len(text.encode()) > limits.MESSAGE_SIZE:
            raise ValueError(
                f"message over {limits.MESSAGE_SIZE} bytes (the 128 KB WebSocket quota less a "
                "margin): offload its payload"
            )
        ws = self._ws
        if ws is None:
            self._queue.append(text)
            return
        try:
            await self._send_text(ws, text)
        except websockets.exceptions.ConnectionClosed:
            self._queue.append(text)

    async def _send_text(self, ws: ClientConnection, text: str) -> None:
        pieces = p.fragments(text)
        await ws.send(pieces[0] if len(pieces) == 1 else pieces)

    async def _flush_queue(self) -> None:
        while self._queue and self._ws is not None:
            text = self._queue.pop(0)
            try:
                await self._send_text(self._ws, text)
            except websockets.exceptions.ConnectionClosed:
                self._queue.insert(0, text)
                return

    async def close(self) -> None:
        self.closing = True
        if self._ws is not None:
            await self._ws.close()

    async def drop(self) -> None:
        """Close the current connection without ending the session (tests, lifetime limit)."""
        if self._ws is not None:
            await self._ws.close()


def describe_failure(exc: BaseException) -> str:
    """What went wrong in a reconnect attempt, in one line (an AWS error names its code)."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
