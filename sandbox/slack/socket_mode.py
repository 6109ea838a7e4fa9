"""Slack's side of Socket Mode: the app connects out over a WebSocket and Slack sends it envelopes.

The protocol, as Slack runs it and as this stand-in serves it:

1. The app calls ``apps.connections.open`` with its app-level token (``xapp-…``) in the
   ``Authorization`` header and gets a single-use URL, ``ws://…/link/?ticket=…&app_id=…``.
2. On connect Slack sends ``{"type": "hello", "num_connections", "debug_info",
   "connection_info"}``.
3. Each delivery is an envelope ``{"envelope_id", "type", "payload",
   "accepts_response_payload"}`` whose ``type`` is ``slash_commands``, ``interactive`` or
   ``events_api``; Events API envelopes also carry ``retry_attempt`` and ``retry_reason``. The
   app acknowledges with ``{"envelope_id": …}`` within 3 s, with an optional ``payload`` that
   means what an HTTP response body would (a command's reply, a ``response_action``).
4. An Events API envelope that is not acknowledged is sent again as a new envelope with
   ``retry_attempt`` + 1 and ``retry_reason`` ``"timeout"`` (Slack retries at once, after 1 and
   after 5 minutes). A command or interaction that is not acknowledged fails for the person
   (``operation_timeout``; ``dispatch_failed`` when no connection is open) and is not retried.
5. Slack recycles connections: it sends ``{"type": "disconnect", "reason": "warning"}`` shortly
   before and ``"refresh_requested"`` when the app should reconnect now, then closes the old
   socket. The app opens a new connection meanwhile; it may hold several at once.

``SocketModeServer`` is also a transport for ``SlackStandin``: it has the same ``send_form``,
``send_interaction``, ``send_event`` and ``retry`` as the HTTP ``SigningClient``, so the
conversational helpers (``slack.click``, ``slack.command``) work unchanged in either mode.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from sandbox.slack._workspace import APP_ID, Workspace
from sandbox.slack.client import SLACK_ACK_TIMEOUT, Delivery, Envelope

EVENT_RETRY_DELAYS = (0.0, 60.0, 300.0)  # after a missed ack: at once, 1 minute, 5 minutes
CLOSE_AFTER = {"refresh_requested": 2.0, "warning": 10.0}  # then Slack closes the socket itself
PATH = "/link/"


@dataclass(eq=False)
class Connection:
    """One open WebSocket from the app."""

    id: int
    websocket: WebSocket
    loop: asyncio.AbstractEventLoop
    opened: float
    disconnect_reason: str | None = None  # set once Slack asked the app to reconnect
    closed: bool = False

    @property
    def host(self) -> str:
        return f"applink-standin-{self.id}"


@dataclass(frozen=True)
class Ack:
    envelope_id: str
    payload: Any
    connection: int
    time: float


class SocketModeServer:
    """The WebSocket endpoint and the envelopes sent over it (one app, up to 10 connections)."""

    def __init__(self, workspace: Workspace, *, ack_timeout: float = SLACK_ACK_TIMEOUT,
                 event_retry_delays: Iterable[float] = EVENT_RETRY_DELAYS):
        self.ws = workspace
        self.ack_timeout = ack_timeout
        self.event_retry_delays = tuple(event_retry_delays)
        self.envelopes: list[tuple[int, Envelope]] = []  # (connection id, envelope) as sent
        self.acks: list[Ack] = []
        self._sent: list[dict[str, Any]] = []
        self.opened = 0  # connections ever opened; a reconnect makes it grow
        self._connections: list[Connection] = []
        self._pending: dict[str, Future[Ack]] = {}
        self._timers: set[threading.Timer] = set()
        self._next = 0  # round robin over open connections
        self._closing = False

    @property
    def route(self) -> WebSocketRoute:
        return WebSocketRoute(PATH, self._endpoint)

    # -- what tests look at ----------------------------------------------------------------
    @property
    def connections(self) -> list[Connection]:
        """Open connections, oldest first."""
        with self.ws.lock:
            return [c for c in self._connections if not c.closed]

    def sent(self, type: str | None = None) -> list[dict[str, Any]]:
        """Every message Slack sent the app (hello, envelopes, disconnect), oldest first."""
        with self.ws.lock:
            return [m for m in self._sent if type is None or m.get("type") == type]

    # -- the WebSocket endpoint ------------------------------------------------------------
    async def _endpoint(self, websocket: WebSocket) -> None:
        if not self.ws.redeem_socket_ticket(websocket.query_params.get("ticket", "")):
            await websocket.close(code=1008)  # before accept: the handshake gets HTTP 403
            return
        await websocket.accept()
        with self.ws.changed:
            self.opened += 1
            conn = Connection(self.opened, websocket, asyncio.get_running_loop(), time.time())
            self._connections.append(conn)
            count = len(self.connections)
            self.ws.changed.notify_all()
        try:
            await self._send(conn, {
                "type": "hello", "num_connections": count,
                "debug_info": {"host": conn.host, "build_number": 1,
                               "approximate_connection_time": 18060},
                "connection_info": {"app_id": APP_ID}})
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text") or (message.get("bytes") or b"").decode("utf-8",
                                                                                   "replace")
                self._on_message(conn, text)
        finally:
            with self.ws.changed:
                conn.closed = True
                self._connections.remove(conn)
                self.ws.changed.notify_all()

    def _on_message(self, conn: Connection, text: str) -> None:
        """An ack ``{"envelope_id", "payload"?}``; Slack ignores anything else, and late acks."""
        try:
            message = json.loads(text)
        except ValueError:
            return
        if not isinstance(message, dict) or not isinstance(message.get("envelope_id"), str):
            return
        ack = Ack(message["envelope_id"], message.get("payload"), conn.id, time.time())
        with self.ws.changed:
            self.acks.append(ack)
            waiter = self._pending.pop(ack.envelope_id, None)
            self.ws.changed.notify_all()
        # An ack may come over another connection than its envelope: clients answer on their
        # newest connection, and the envelope's may be closing.
        if waiter is not None and not waiter.done():
            waiter.set_result(ack)

    async def _send(self, conn: Connection, message: dict[str, Any]) -> None:
        await conn.websocket.send_text(json.dumps(message))
        with self.ws.changed:
            self._sent.append(message)
            self.ws.changed.notify_all()

    def _send_from_thread(self, conn: Connection, message: dict[str, Any]) -> bool:
        try:
            asyncio.run_coroutine_threadsafe(self._send(conn, message), conn.loop).result(5)
            return True
        except Exception:  # the connection closed under us: as good as not connected
            return False

    # -- deliveries ------------------------------------------------------------------------
    def deliver(self, envelope: Envelope) -> Delivery:
        """Send one envelope on an open connection and wait up to ``ack_timeout`` for its ack."""
        started = time.monotonic()
        conn = self._pick()
        if conn is None:
            return Delivery(envelope, 0, "", {}, 0.0, error="dispatch_failed")
        waiter: Future[Ack] = Future()
        with self.ws.lock:
            self._pending[envelope.envelope_id] = waiter
            self.envelopes.append((conn.id, envelope))
        if not self._send_from_thread(conn, envelope.to_json()):
            with self.ws.lock:
                self._pending.pop(envelope.envelope_id, None)
            return Delivery(envelope, 0, "", {}, time.monotonic() - started,
                            error="dispatch_failed")
        try:
            ack = waiter.result(timeout=self.ack_timeout)
        except TimeoutError:
            with self.ws.lock:
                self._pending.pop(envelope.envelope_id, None)
            return Delivery(envelope, 0, "", {}, time.monotonic() - started, timed_out=True,
                            error="operation_timeout", extra={"connection": conn.id})
        payload = ack.payload
        body = "" if payload in (None, "", {}) else (
            payload if isinstance(payload, str) else json.dumps(payload))
        return Delivery(envelope, 200, body, {}, time.monotonic() - started,
                        extra={"connection": conn.id, "ack_connection": ack.connection})

    def _pick(self) -> Connection | None:
        """Round robin over open connections, preferring those Slack has not asked to leave."""
        with self.ws.lock:
            live = self.connections
            fresh = [c for c in live if c.disconnect_reason is None] or live
            if not fresh:
                return None
            self._next += 1
            return fresh[self._next % len(fresh)]

    def _deliver_event(self, envelope: Envelope) -> Delivery:
        delivery = self.deliver(envelope)
        if not delivery.ok:
            self._retry_later(envelope)
        return delivery

    def _retry_later(self, envelope: Envelope) -> None:
        attempt = envelope.retry_attempt + 1
        if attempt > len(self.event_retry_delays) or self._closing:
            return
        timer = threading.Timer(self.event_retry_delays[attempt - 1],
                                lambda: self._fire(timer, envelope.again(attempt, "timeout")))
        timer.daemon = True
        with self.ws.lock:
            self._timers.add(timer)
        timer.start()

    def _fire(self, timer: threading.Timer, envelope: Envelope) -> None:
        with self.ws.lock:
            self._timers.discard(timer)
        if not self._closing:
            self._deliver_event(envelope)

    # -- the transport SlackStandin uses ---------------------------------------------------
    def send_form(self, fields: dict[str, Any], **http_only: Any) -> Delivery:
        """A slash command: its form fields become the envelope's payload."""
        self._no_http_options(http_only)
        payload = {k: "" if v is None else str(v) for k, v in fields.items()}
        return self.deliver(Envelope("slash_commands", payload, True))

    def send_interaction(self, payload: dict[str, Any], **http_only: Any) -> Delivery:
        self._no_http_options(http_only)
        return self.deliver(Envelope("interactive", payload, True))

    def send_event(self, envelope: dict[str, Any], **http_only: Any) -> Delivery:
        """An Events API ``event_callback``; redelivered on Slack's schedule until acked."""
        self._no_http_options(http_only)
        if envelope.get("type") == "url_verification":
            raise ValueError("Socket Mode has no url_verification: that handshake is for "
                             "HTTP request URLs only")
        return self._deliver_event(Envelope("events_api", envelope, False))

    def retry(self, previous: Delivery, retry_num: int = 1, reason: str = "timeout",
              **http_only: Any) -> Delivery:
        """Deliver ``previous``'s payload once more, in a new envelope.

        Events API envelopes say so in ``retry_attempt``/``retry_reason``; commands and
        interactions carry no retry fields, so for them this is a plain duplicate delivery
        (what an app sees when a delivery races a connection refresh).
        """
        self._no_http_options(http_only)
        envelope = previous.request
        if not isinstance(envelope, Envelope):
            raise TypeError("That delivery went over HTTP; retry it with the HTTP client")
        return self.deliver(envelope.again(retry_num, reason))

    @staticmethod
    def _no_http_options(options: dict[str, Any]) -> None:
        if options:
            raise TypeError(f"{sorted(options)} only apply to HTTP deliveries (signatures, "
                            "headers, URLs); Socket Mode envelopes have none")

    # -- what Slack does to connections ----------------------------------------------------
    def disconnect(self, reason: str = "refresh_requested", connection: int | None = None,
                   close_after: float | None = None) -> list[int]:
        """Ask the app to reconnect, as Slack does before recycling a connection.

        Sends ``{"type": "disconnect", "reason": reason}`` on the given connection (default:
        every open one) and closes it ``close_after`` seconds later (default by reason:
        ``CLOSE_AFTER``) unless the app closed it first. Returns the connection ids.
        """
        targets = [c for c in self.connections if connection in (None, c.id)]
        if connection is not None and not targets:
            raise LookupError(f"No open connection {connection}; open: "
                              f"{[c.id for c in self.connections]}")
        delay = CLOSE_AFTER.get(reason, 0.0) if close_after is None else close_after
        for conn in targets:
            with self.ws.lock:
                conn.disconnect_reason = reason
            self._send_from_thread(conn, {"type": "disconnect", "reason": reason,
                                          "debug_info": {"host": conn.host}})
            conn.loop.call_soon_threadsafe(
                conn.loop.call_later, delay,
                lambda c=conn: asyncio.ensure_future(self._close(c), loop=c.loop))
        return [c.id for c in targets]

    async def _close(self, conn: Connection, code: int = 1000) -> None:
        if conn.closed:
            return
        try:
            await conn.websocket.close(code=code)
        except Exception:  # already closing from the app's side
            pass

    def drop(self, connection: int | None = None) -> None:
        """Close connections without a disconnect message first (a Slack server going away)."""
        for conn in self.connections:
            if connection in (None, conn.id):
                asyncio.run_coroutine_threadsafe(self._close(conn, 1001), conn.loop).result(5)

    def wait_connected(self, count: int = 1, timeout: float = 10.0,
                       after: int = 0) -> list[Connection]:
        """Wait until ``count`` connections are open, counting only those opened after the
        ``after``-th (``after=server.opened`` waits for a reconnect)."""
        deadline = time.monotonic() + timeout
        with self.ws.changed:
            while True:
                fresh = [c for c in self.connections if c.id > after]
                if len(fresh) >= count:
                    return fresh
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"Socket Mode: {len(fresh)} of {count} connection(s) "
                                       f"open after {timeout}s; is the app connecting with "
                                       "the app-level token?")
                self.ws.changed.wait(min(remaining, 0.1))

    def close(self) -> None:
        """Stop retrying; the HTTP server's shutdown closes the sockets."""
        self._closing = True
        with self.ws.lock:
            timers, self._timers = list(self._timers), set()
        for timer in timers:
            timer.cancel()
