from __future__ import annotations

import pytest
from slack_sdk import WebClient

from bot.standin import SlackStandin

TOKEN = "xoxb-standin-test"
SECRET = "standin-signing-secret"


@pytest.fixture
def slack():
    with SlackStandin(
        TOKEN, SECRET,
        channels=[{"id": "C1", "name": "planning"},
                  {"id": "C2", "name": "logistics", "members": ["U2"]},
                  {"id": "C3", "name": "private-ops", "is_private": True},
                  {"id": "C4", "name": "outsiders", "is_member": False}],
        users=[{"id": "U1", "name": "alice", "email": "alice@example.com"},
               {"id": "U2", "name": "bob"}],
        usergroups={"S_PLAN": ["U1"], "S_LOG": ["U2", "U1"]},
    ) as standin:
        yield standin


@pytest.fixture
def client(slack):
    return WebClient(TOKEN, base_url=slack.api_url, timeout=5)


class Receiver:
    """A stand-in *app*: records what Slack sent and answers with ``reply`` (status, body)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.reply: tuple[int, str] = (200, "")
        self.delay = 0.0

    async def __call__(self, scope, receive, send):
        import asyncio

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
        from urllib.parse import parse_qsl

        return dict(parse_qsl(self.requests[i]["body"].decode()))

    def payload(self, i: int = -1) -> dict:
        import json

        return json.loads(self.form(i)["payload"])


@pytest.fixture
def receiver(slack):
    from connectors.serving import BackgroundServer

    app = Receiver()
    with BackgroundServer(app) as server:
        slack.app_url = server.url + "/slack/events"
        yield app
