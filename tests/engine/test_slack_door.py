"""The Slack door over real HTTP: what is answered at once, what waits for Bolt, what is refused."""

from __future__ import annotations

import json
import logging
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
from sandbox.serving import BackgroundServer
from sandbox.slack.client import sign
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


@pytest.mark.parametrize(("body", "content_type", "reason"), [
    (b"payload={not json", FORM, "not valid JSON"),
    (b"payload=[1,2]", FORM, "not a JSON object"),
    (b"payload=null", FORM, "not a JSON object"),
    (b"[1,2]", "application/json", "not a JSON object"),
    (b"{not json", "application/json", "not valid JSON"),
    (b'{"type":"event_callback","team":1}', "application/json", "not a Slack request"),
    (b"payload=" + b"[" * 100_000, FORM, "nested too deeply"),
    (b'{"type":"event_callback","event":' + b"[" * 100_000, "application/json",
     "nested too deeply"),
], ids=["form-not-json", "form-list", "form-null", "json-list", "json-not-json",
        "json-wrong-shape", "form-deep", "json-deep"])
def test_a_signed_body_that_is_not_a_slack_request_gets_400_with_the_reason(
        door, caplog, body, content_type, reason):
    url, _, handled = door
    answer = _post(url + "/slack/events", body, content_type)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    assert reason in answer.text and len(answer.text) < 100
    assert handled == []
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.mark.parametrize("headers", [
    # latin-1 superscripts: str.isdigit() says yes, int() says no
    {"X-Slack-Request-Timestamp": "¹²³".encode("latin-1")},
    # Arabic-Indic digits as a client sends them (UTF-8), and a non-ASCII signature
    {"X-Slack-Request-Timestamp": "١٧٠٠٠٠٠٠٠٠".encode()},
    {"X-Slack-Signature": "v0=ÿ".encode("latin-1") + b"0" * 63},
], ids=["superscript-timestamp", "arabic-indic-timestamp", "non-ascii-signature"])
def test_non_ascii_signature_headers_get_401(door, caplog, headers):
    url, _, handled = door
    click = b'payload={"type":"block_actions"}'
    ts = str(int(time.time()))
    sent = {"Content-Type": FORM, "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": sign(SECRET, ts, click), **headers}
    answer = httpx.post(url + "/slack/events", content=click, headers=sent, timeout=10)
    assert answer.status_code == 401 and answer.text == "invalid request signature or timestamp"
    assert handled == []
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_a_timestamp_in_other_digits_is_refused_even_when_signed_with_them():
    """``int()`` reads Arabic-Indic digits: a header that decoded to them (say, a proxy's
    UTF-8) must still not pass for Slack's timestamp."""
    door = SlackDoor(lambda *_: None, inbox=None, verifier=SignatureVerifier(SECRET), bolt=None)
    body = b'payload={"type":"block_actions"}'
    arabic = str(int(time.time())).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    assert not door._verified({"x-slack-request-timestamp": arabic,
                               "x-slack-signature": sign(SECRET, arabic, body)}, body)
    ascii_ts = str(int(time.time()))
    assert door._verified({"x-slack-request-timestamp": ascii_ts,
                           "x-slack-signature": sign(SECRET, ascii_ts, body)}, body)
    door.stop()
