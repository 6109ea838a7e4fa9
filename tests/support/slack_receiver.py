"""A stand-in for the *app* side of Slack: an ASGI app that records every request Slack sends
it and answers as told — for testing the Slack stand-in itself."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qsl


class Receiver:
    """Records what Slack sent and answers with ``reply`` (status, body) after ``delay`` s."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.reply: tuple[int, str] = (200, "")
        self.delay = 0.0

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        self.requests.append({"headers": {k.decode().lower(): v.decode()
                                          for k, v in scope["headers"]},
                              "body": body, "path": scope["path"]})
        if self.delay:
            await asyncio.sleep(self.delay)
        status, text = self.reply
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": text.encode()})

    def form(self, i: int = -1) -> dict:
        return dict(parse_qsl(self.requests[i]["body"].decode()))

    def payload(self, i: int = -1) -> dict:
        return json.loads(self.form(i)["payload"])

    @property
    def payloads(self) -> list[dict]:
        """Every request's interaction payload, or its form fields when it has none."""
        forms = [self.form(i) for i in range(len(self.requests))]
        return [json.loads(f["payload"]) if "payload" in f else f for f in forms]
