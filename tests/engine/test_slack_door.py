"""The Slack door over real HTTP: what is answered at once, what waits for Bolt, what is refused."""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import urlencode

import httpx
import pytest
from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bot.slack_door import SlackDoor
from bot.slack_inbox import SlackInbox
from bot.standin.client import sign
from connectors.serving import BackgroundServer
from store.db import make_engine

SECRET = "door-signing-secret"
FORM = "application/x-www-form-urlencoded"


def _post(url: str, body: bytes, content_type: str = FORM, **headers: str) -> httpx.Response:
    ts = str(int(time.time()))
    return httpx.post(url, content=body, timeout=10, headers={
        "Content-Type": content_type, "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sign(SECRET, ts, body), **headers})


@pytest.fixture
def door(db_url):
    release = threading.Event()
    handled: list[str] = []

    def handle(body: str, content_type: str) -> bool:  # slow work: e.g. Slack calls
        release.wait(10)
        handled.append(body)
        return True

    bolt = App(signing_secret=SECRET, request_verification_enabled=False,
               authorize=lambda **_: AuthorizeResult(enterprise_id=None, team_id="T1",
                                                     bot_token="xoxb-door", bot_user_id="UB"))

    @bolt.view("reason")
    def needs_a_reason(ack, view):  # type: ignore[no-untyped-def]
        ack(response_action="errors", errors={"reason": "Say why."})

    inbox = SlackInbox(make_engine(db_url), handle)
    rest = Starlette(routes=[Route("/healthz", lambda _: PlainTextResponse("ok"))])
    app = SlackDoor(rest, inbox=inbox, verifier=SignatureVerifier(SECRET), bolt=bolt)
    with BackgroundServer(app) as server:
        yield server.url, release, handled
        release.set()
    inbox.stop()
    app.stop()


def test_a_click_is_acked_before_it_is_handled(door):
    url, release, handled = door
    click = urlencode({"payload": json.dumps({"type": "block_actions", "actions": []})}).encode()
    started = time.monotonic()
    answer = _post(url + "/slack/events", click)
    assert answer.status_code == 200 and answer.text == ""
    assert time.monotonic() - started < 2.0 and handled == []  # the handler is still blocked
    release.set()
    deadline = time.monotonic() + 10
    while not handled and time.monotonic() < deadline:
        time.sleep(0.02)
    assert handled == [click.decode()]


def test_a_slash_command_is_acked_before_it_is_handled(door):
    url, release, handled = door
    answer = _post(url + "/slack/events", b"command=%2Fdrift&text=mine&user_id=U1")
    assert answer.status_code == 200 and handled == []


def test_a_modal_submission_is_answered_by_bolt_on_the_request(door):
    url, _, _ = door
    body = urlencode({"payload": json.dumps({
        "type": "view_submission", "user": {"id": "U1"}, "team": {"id": "T1"},
        "view": {"id": "V1", "type": "modal", "callback_id": "reason",
                 "state": {"values": {}}}})}).encode()
    answer = _post(url + "/slack/events", body)
    assert answer.status_code == 200
    assert answer.json() == {"response_action": "errors", "errors": {"reason": "Say why."}}


def test_refusals(door):
    url, _, handled = door
    events = url + "/slack/events"
    click = b'payload={"type":"block_actions"}'
    assert httpx.get(events, timeout=5).status_code == 405
    forged = _post(events, click, **{"X-Slack-Signature": "v0=" + "0" * 64})
    assert forged.status_code == 401
    assert _post(events, b"payload=" + b"x" * (2 << 20)).status_code == 413
    assert httpx.get(url + "/healthz", timeout=5).text == "ok"  # other paths pass through
    assert handled == []
