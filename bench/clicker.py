"""A load generator in its own process: fire signed Slack requests at once, time each answer.

    python -m bench.clicker < requests.json > timings.json

It prints ``ready`` once its imports are done, before it reads its input: a click's modal
trigger lives 3 s from the click, so the bench makes its clicks only when the clicker can
send them at once (starting Python and importing took it over a second).

Input: ``{"url", "signing_secret", "requests": [{"body", "content_type"}, ...]}``. Every
request is signed as Slack signs it at the moment of sending, goes out on its own fresh
connection (as Slack's deliveries do), and all of them start together. Output: per request
``{"status", "seconds", "error"}`` in input order.

It is a separate process so that the client's own work does not share the bot's CPU time
slice or the bench's GIL, and it writes pre-built HTTP/1.1 bytes on asyncio streams because an
HTTP client library's per-request overhead (≈ 1 ms of Python each) would itself queue fifty
requests by tens of milliseconds and be measured as the bot's latency. For the same reason it
runs on uvloop: asyncio's own loop spends ≈ 0.3 ms of Python opening each connection, so the
fiftieth click left this process some 15 ms after the first (measured: p99 54 → 38 ms on
PostgreSQL with the same bot), where Slack's senders open their connections independently.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit

import uvloop

from sandbox.slack.client import sign

TIMEOUT = 10.0


def _raw_request(host: str, port: int, path: str, body: bytes, content_type: str,
                 secret: str) -> bytes:
    ts = str(int(time.time()))
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nX-Slack-Request-Timestamp: {ts}\r\n"
            f"X-Slack-Signature: {sign(secret, ts, body)}\r\n"
            "User-Agent: Slackbot 1.0 (+https://api.slack.com/robots)\r\nConnection: close\r\n\r\n")
    return head.encode() + body


async def _one(host: str, port: int, raw: bytes, start: asyncio.Event) -> dict:
    await start.wait()
    t0 = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), TIMEOUT)  # Connection: close → EOF
        elapsed = time.perf_counter() - t0
        writer.close()
        status_line = answer.split(b"\r\n", 1)[0].split()
        status = int(status_line[1]) if len(status_line) > 1 else 0
        return {"status": status, "seconds": elapsed, "error": None}
    except (OSError, TimeoutError, ValueError) as exc:
        return {"status": 0, "seconds": time.perf_counter() - t0,
                "error": f"{type(exc).__name__}: {exc}"}


async def fire(url: str, secret: str, requests: list[dict]) -> list[dict]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    raws = [_raw_request(host, port, parts.path, r["body"].encode(), r["content_type"], secret)
            for r in requests]
    start = asyncio.Event()
    tasks = [asyncio.create_task(_one(host, port, raw, start)) for raw in raws]
    await asyncio.sleep(0)  # every task is waiting at the gate
    start.set()
    return list(await asyncio.gather(*tasks))


def main() -> None:
    print("ready", flush=True)
    job = json.load(sys.stdin)
    results = uvloop.run(fire(job["url"], job["signing_secret"], job["requests"]))
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
