"""``POST /slack/events`` as a bare ASGI app in front of the rest of the HTTP server.

Every request is verified here (Slack's ``v0`` signature, five-minute window), then:
clicks are stored in the inbox and acked, slash commands are acked and handled after, and
the rest (events, modal submissions whose answer may carry validation errors) go through
Bolt on the request. Bare ASGI rather than a framework route because a burst of fifty
clicks is read one after the other by one event loop: every tenth of a millisecond spent per
request is five milliseconds on the fiftieth click's ack.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier

from bot.logs import ContextThreadPoolExecutor, dispatch_in_log_context
from bot.slack_inbox import SlackInbox, classify

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)

PATH = "/slack/events"
MAX_BODY = 1 << 20  # Slack's payloads are kilobytes; a megabyte is not Slack


class TooLarge(Exception):
    pass


class Unreadable(ValueError):
    """A signed request whose body Bolt cannot read; the message says why, for the 400."""


class SlackDoor:
    """Serves ``/slack/events``; hands every other path to ``rest``."""

    def __init__(self, rest: ASGIApp, *, inbox: SlackInbox, verifier: SignatureVerifier,
                 bolt: App):
        self.rest = rest
        self.inbox = inbox
        self.verifier = verifier
        self.bolt = bolt
        # Bolt's dispatch blocks until ack(); it runs here, off the event loop.
        self._bolt_threads = ContextThreadPoolExecutor(max_workers=16,
                                                       thread_name_prefix="bolt-request")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH:
            await self.rest(scope, receive, send)
            return
        if scope["method"] != "POST":
            await _answer(send, 405, b"POST only", [(b"allow", b"POST")])
            return
        with self.inbox.acks_first.answering():
            try:
                body = await _read_body(receive)
            except TooLarge:
                await _answer(send, 413, b"request body too large")
                return
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            if not self._verified(headers, body):
                await _answer(send, 401, b"invalid request signature or timestamp")
                return
            content_type = headers.get("content-type", "")
            kind = classify(body, content_type)
            if kind == "block_actions":
                try:
                    await self.inbox.store(body, content_type)
                except Exception:  # not stored: Slack must show the user an error, not a 200
                    await _answer(send, 503, b"could not record the click; try again")
                    return
                await _answer(send, 200, b"")
                return
            if kind == "slash_command":  # answered through response_url once handled
                self.inbox.handle_soon(body, content_type)
                await _answer(send, 200, b"")
                return
        try:
            request = _bolt_request(body, headers, scope.get("query_string", b""))
        except Unreadable as exc:
            log.warning("refused a signed Slack request: %s", exc)
            await _answer(send, 400, str(exc).encode())
            return
        response = await asyncio.get_running_loop().run_in_executor(
            self._bolt_threads, dispatch_in_log_context, self.bolt, request)
        await _answer(send, response.status, response.body.encode(), [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in response.first_headers_without_set_cookie().items()
            if k.lower() != "content-length"])

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

    def stop(self) -> None:
        self._bolt_threads.shutdown(wait=False, cancel_futures=True)


def _bolt_request(body: bytes, headers: dict[str, str], query: bytes) -> BoltRequest:
    """The request as Bolt reads it, or ``Unreadable`` saying why it is not a Slack request.

    Signed is not the same as well-formed, and Bolt assumes Slack's shapes: a body that is not
    JSON, not an object, or nested past Python's recursion limit would otherwise be a 500 with
    a traceback.
    """
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise Unreadable("request body is not UTF-8") from None
    try:
        return BoltRequest(body=text, headers={k: [v] for k, v in headers.items()},
                           query=query.decode("latin-1"))
    except Exception:  # Bolt's errors here are whatever its parsing tripped over
        raise Unreadable(_why_unreadable(text, headers.get("content-type", ""))) from None


def _why_unreadable(text: str, content_type: str) -> str:
    try:
        parsed = parse_body(text, content_type.split(";")[0])  # as Bolt parses it
    except RecursionError:
        return "request body is JSON nested too deeply"
    except ValueError:
        return "request body is not valid JSON"
    if not isinstance(parsed, dict):
        return "request body is not a JSON object"
    return "request body is not a Slack request alignbot can read"


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
