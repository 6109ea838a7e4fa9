"""The Slack ingress: verify a request, store it in the inbox, ack. Nothing else.

Slack wants its answer within 3 s, and people click in bursts. The ingress runs in a process of
its own (``alignbot ingress``), so no detection pass, decision or Slack call shares its
interpreter: it checks the signature, answers what needs no application (``url_verification``,
a modal's input errors), stores the rest with a priority (clicks that open a modal first) and
acks. Workers (``bot.inbox_worker``) handle what it stored. Over Socket Mode it holds the
WebSocket and acks each envelope the same way: stored, then acked.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import queue
import signal
import threading
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bot.modal_input import opens_modal, submission_errors
from store import inbox
from store.inbox import InboxItem
from store.types import utcnow

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

PATH = "/slack/events"
MAX_BODY = 1 << 20  # Slack's payloads are kilobytes; a megabyte is not Slack
URGENT = 1  # the priority of a click that opens a modal


@dataclass(frozen=True)
class Answer:
    """What the ingress does with a verified request: store it (with a priority), and what the
    ack carries (``None``: an empty 200)."""

    store: bool
    priority: int = 0
    body: dict[str, Any] | None = None


def answer_for(payload: dict[str, Any]) -> Answer:
    if payload.get("type") == "url_verification":
        return Answer(store=False, body={"challenge": payload.get("challenge")})
    if payload.get("ssl_check"):
        return Answer(store=False)
    if errors := submission_errors(payload):  # the modal stays open and shows them
        return Answer(store=False, body={"response_action": "errors", "errors": errors})
    return Answer(store=True, priority=URGENT if opens_modal(payload) else 0)


class Unreadable(ValueError):
    """A signed request whose body is not a Slack request; the message says why (the 400)."""


def read_payload(body: bytes, content_type: str) -> dict[str, Any]:
    """The request as Bolt will read it (a form's ``payload`` JSON, a command's fields, an
    event's JSON), or ``Unreadable``: signed is not the same as well-formed."""
    try:
        text_body = body.decode()
    except UnicodeDecodeError:
        raise Unreadable("request body is not UTF-8") from None
    try:
        payload = parse_body(text_body, content_type.split(";")[0])
    except RecursionError:
        raise Unreadable("request body is JSON nested too deeply") from None
    except ValueError:
        raise Unreadable("request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise Unreadable("request body is not a JSON object")
    if "\x00" in text_body or len(content_type) > 80:  # nothing Slack sends; nothing to store
        raise Unreadable("request is not a Slack request alignbot can read")
    return payload


class GroupCommit:
    """Stores requests many to a commit: a burst's requests arrive together, and one durable
    commit for all of them is what lets each be acked soon."""

    BATCH = 200

    def __init__(self, engine: Engine, on_stored: Callable[[], None] | None = None):
        self.engine = engine
        self.on_stored = on_stored  # wakes an in-process worker; others are woken by the store
        self._queue: queue.SimpleQueue[tuple[InboxItem, Future[None]] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="inbox-writer", daemon=True)
        self._writer.start()

    async def store(self, item: InboxItem) -> None:
        """Return once the request is durably stored (or was already); raise if it cannot be."""
        await asyncio.wrap_future(self.submit(item))

    def submit(self, item: InboxItem) -> Future[None]:
        done: Future[None] = Future()
        self._queue.put((item, done))
        return done

    def _write_loop(self) -> None:
        while (first := self._queue.get()) is not None:
            batch = [first]
            while len(batch) < self.BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(nxt)
            self._write(batch)

    def _write(self, batch: list[tuple[InboxItem, Future[None]]]) -> None:
        # a request whose client went away is not stored: nobody waits for its ack
        self._store([(item, done) for item, done in batch if done.set_running_or_notify_cancel()])

    def _store(self, batch: list[tuple[InboxItem, Future[None]]]) -> None:
        try:
            inbox.record(self.engine, [item for item, _ in batch], now=utcnow())
        except Exception as exc:
            if len(batch) > 1:  # one request the store refuses must not fail the others
                for one in batch:
                    self._store([one])
                return
            log.exception("could not store a Slack request")  # its ack becomes an error
            for _, done in batch:
                done.set_exception(exc)
            return
        for _, done in batch:
            done.set_result(None)
        if self.on_stored is not None:
            self.on_stored()

    def stop(self) -> None:
        self._queue.put(None)
        self._writer.join(timeout=5)


def delivery_key(body: bytes) -> str:
    """Slack's retries resend the same body, so its digest identifies the delivery."""
    return hashlib.sha256(body).hexdigest()


class Ingress:
    """The ASGI app: ``POST /slack/events`` and ``GET /healthz``."""

    def __init__(self, engine: Engine, signing_secret: str, *,
                 on_stored: Callable[[], None] | None = None):
        self.engine = engine
        self.verifier = SignatureVerifier(signing_secret)
        self.commit = GroupCommit(engine, on_stored)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/healthz" and scope["method"] == "GET":
            await self._health(send)
        elif scope["path"] != PATH:
            await _answer(send, 404, b"not found")
        elif scope["method"] != "POST":
            await _answer(send, 405, b"POST only", [(b"allow", b"POST")])
        else:
            await self._slack(scope, receive, send)

    async def _slack(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await _read_body(receive)
        except TooLarge:
            await _answer(send, 413, b"request body too large")
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not self._verified(headers, body):
            await _answer(send, 401, b"invalid request signature or timestamp")
            return
        content_type = headers.get("content-type", "")
        try:
            answer = answer_for(read_payload(body, content_type))
        except Unreadable as exc:
            log.warning("refused a signed Slack request: %s", exc)
            await _answer(send, 400, str(exc).encode())
            return
        if answer.store:
            item = InboxItem(delivery_key(body), content_type, body.decode(), answer.priority)
            try:
                await self.commit.store(item)
            except Exception:  # not stored: Slack must show the user an error, not a 200
                await _answer(send, 503, b"could not record the request; try again")
                return
        if answer.body is None:
            await _answer(send, 200, b"")
        else:
            await _answer(send, 200, json.dumps(answer.body).encode(),
                          [(b"content-type", b"application/json")])

    def _verified(self, headers: dict[str, str], body: bytes) -> bool:
        timestamp = headers.get("x-slack-request-timestamp", "")
        signature = headers.get("x-slack-signature")
        # ASCII only: int() reads other digits ("١٢٣"), and "²" passes isdigit() but not int();
        # compare_digest raises on a non-ASCII str.
        if not (timestamp.isascii() and timestamp.isdigit()) or not signature \
                or not signature.isascii():
            return False
        try:
            return self.verifier.is_valid(body, timestamp, signature)
        except UnicodeDecodeError:
            return False

    async def _health(self, send: Send) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._inbox_reachable)
            report, status = {"ok": True, "role": "ingress", "inbox": {"ok": True}}, 200
        except Exception as exc:
            report = {"ok": False, "role": "ingress",
                      "inbox": {"ok": False, "error": str(exc)[:300]}}
            status = 503
        await _answer(send, status, json.dumps(report).encode(),
                      [(b"content-type", b"application/json")])

    def _inbox_reachable(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def stop(self) -> None:
        self.commit.stop()


class SocketModeIngress:
    """Holds Slack's Socket Mode WebSocket: each envelope is stored, then acked, as over HTTP.

    ``api_url`` is where ``apps.connections.open`` goes (Slack, or the stand-in).
    """

    def __init__(self, commit: GroupCommit, app_token: str, api_url: str | None = None):
        from slack_sdk import WebClient
        from slack_sdk.socket_mode import SocketModeClient

        web = WebClient(base_url=api_url or WebClient.BASE_URL, timeout=10)
        self.commit = commit
        self.client = SocketModeClient(app_token=app_token, web_client=web)
        self.client.socket_mode_request_listeners.append(self._on_request)

    def connect(self) -> SocketModeIngress:
        self.client.connect()
        return self

    def _on_request(self, client: Any, request: Any) -> None:
        from slack_sdk.socket_mode.response import SocketModeResponse

        payload = request.payload if isinstance(request.payload, dict) else {}
        answer = answer_for(payload)
        if answer.store:
            body = json.dumps(payload, sort_keys=True)
            item = InboxItem(delivery_key(body.encode()), "application/json", body,
                             answer.priority)
            try:
                self.commit.submit(item).result(timeout=2.5)
            except Exception:  # not acked: Slack shows the user an error
                log.exception("could not store a Socket Mode envelope")
                return
        client.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload=answer.body))

    def stop(self) -> None:
        self.client.auto_reconnect_enabled = False
        self.client.close()


class TooLarge(Exception):
    pass


async def _read_body(receive: Receive) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    head = [(b"content-length", str(len(body)).encode())] + list(headers or [])
    if body and not any(k.lower() == b"content-type" for k, _ in head):
        head.append((b"content-type", b"text/plain; charset=utf-8"))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


def serve_ingress(config: Any, *, host: str, port: int,
                  environ: Mapping[str, str] | None = None) -> None:
    """``alignbot ingress``: serve until SIGTERM."""
    import uvicorn

    from bot.config import database_url

    env = os.environ if environ is None else environ
    slack = config.slack
    engine = inbox.open_inbox(database_url(config, env))
    ingress = Ingress(engine, env[slack.signing_secret_env])
    socket = None
    try:
        if app_token := env.get(slack.app_token_env):
            socket = SocketModeIngress(ingress.commit, app_token, env.get(slack.api_url_env))
            socket.connect()
            log.info("Socket Mode connected; HTTP serves /healthz")
        server = uvicorn.Server(uvicorn.Config(ingress, host=host, port=port, lifespan="off",
                                               log_config=None, access_log=False))
        signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
        server.run()
    finally:
        if socket is not None:
            socket.stop()
        ingress.stop()
