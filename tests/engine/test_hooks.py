"""``POST /hooks/<connector>`` at its edges: oversized bodies, odd headers, hostile JSON."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from bot.hooks import MAX_BODY_BYTES, sign, verify, webhook_endpoint
from sandbox.serving import BackgroundServer

SECRET = "whsec-edges-0123456789"


@pytest.fixture
def hooks():
    accepted: list = []
    app = Starlette(routes=[Route("/hooks/{connector}", webhook_endpoint(
        {"tms": SECRET}, lambda *args: accepted.append(args)), methods=["POST"])])
    with BackgroundServer(app) as server:
        yield app, server.url + "/hooks/tms", accepted


def _signed(body: bytes, **headers: str) -> dict[str, str]:
    ts = str(int(time.time()))
    return {"Content-Type": "application/json", "X-Alignbot-Timestamp": ts,
            "X-Alignbot-Signature": sign(SECRET, ts, body), **headers}


def _no_errors(caplog) -> list:
    return [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_a_declared_oversized_body_is_refused_before_it_is_sent(hooks):
    """A sender announcing 300 MB gets its 413 at once, without uploading (or the bot
    reading) any of it."""
    _, url, accepted = hooks
    host, port = httpx.URL(url).host, httpx.URL(url).port
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(b"POST /hooks/tms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 314572800\r\n\r\n" + b"{" * 1000)
        conn.settimeout(5)
        try:
            head = conn.recv(4096)
        except TimeoutError:
            head = b"(no answer within 5 s: the server waits for the whole body)"
    assert head.startswith(b"HTTP/1.1 413 "), head[:200]
    assert b"body too large" in head
    assert accepted == []


def test_a_chunked_body_is_read_no_further_than_the_limit(hooks):
    """Without a Content-Length the body is read as it comes, and refused as soon as it has
    passed the limit: the rest is never asked for."""
    app, _, accepted = hooks
    chunk = b"x" * 65536
    chunks = 2 * MAX_BODY_BYTES // len(chunk)  # twice the limit on offer
    asked = 0

    async def receive():
        nonlocal asked
        asked += 1
        return {"type": "http.request", "body": chunk, "more_body": asked < chunks}

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/hooks/tms", "raw_path": b"/hooks/tms",
             "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
             "headers": [(b"content-type", b"application/json"),
                         (b"transfer-encoding", b"chunked")]}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=10))
    assert sent[0]["status"] == 413
    assert asked * len(chunk) <= MAX_BODY_BYTES + len(chunk)
    assert accepted == []


@pytest.mark.parametrize("body", [
    b"[" * 100_000,
    b'{"records": [' + b"[" * 100_000,
    b'{"records": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}",
], ids=["unterminated", "in-records", "balanced"])
def test_signed_json_nested_too_deeply_gets_400(hooks, caplog, body):
    _, url, accepted = hooks
    answer = httpx.post(url, content=body, headers=_signed(body), timeout=10)
    assert answer.status_code == 400, answer.text
    assert "nested too deeply" in answer.json()["error"]
    assert accepted == [] and not _no_errors(caplog)


@pytest.mark.parametrize("headers", [
    {"X-Alignbot-Signature": "v1=ÿ".encode("latin-1") + b"0" * 63},
    {"X-Alignbot-Timestamp": "¹²³".encode("latin-1")},
    {"X-Alignbot-Timestamp": "١٧٠٠٠٠٠٠٠٠".encode()},
], ids=["non-ascii-signature", "superscript-timestamp", "arabic-indic-timestamp"])
def test_non_ascii_signature_headers_get_401(hooks, caplog, headers):
    _, url, accepted = hooks
    body = json.dumps({"records": []}).encode()
    answer = httpx.post(url, content=body, headers={**_signed(body), **headers}, timeout=10)
    assert answer.status_code == 401, answer.text
    assert accepted == [] and not _no_errors(caplog)


def test_verify_takes_only_ascii():
    """``int()`` reads Arabic-Indic digits and ``compare_digest`` raises on non-ASCII text: a
    timestamp must be ASCII digits, and a non-ASCII signature is simply a bad one."""
    body = b'{"records": []}'
    now = int(time.time())
    arabic = str(now).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    assert verify(SECRET, arabic, sign(SECRET, arabic, body), body) == (
        "X-Alignbot-Timestamp must be Unix seconds")
    assert verify(SECRET, str(now), "v1=é" + "0" * 63, body) == "bad signature"
    assert verify(SECRET, str(now), sign(SECRET, str(now), body), body) is None
