"""The routes behind the demo UI, without a browser: the page, the watch, choose, close, files."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from slack_sdk import WebClient

from sandbox.serving import BackgroundServer
from sandbox.slack import SlackStandin
from tests.support.slack_receiver import Receiver

TOKEN, SECRET = "xoxb-ui-test", "ui-signing-secret"


@pytest.fixture
def slack():
    app = Receiver()
    with BackgroundServer(app) as server, SlackStandin(
            TOKEN, SECRET, server.url + "/slack/events",
            channels=[{"id": "C1", "name": "planning"}],
            users=[{"id": "U1", "name": "priya"}, {"id": "U2", "name": "sam"}]) as standin:
        standin.app = app
        yield standin


@pytest.fixture
def web(slack):
    with httpx.Client(base_url=slack.url, timeout=10) as client:
        yield client


@pytest.fixture
def bot(slack):
    return WebClient(TOKEN, base_url=slack.api_url, timeout=5)


SNOOZE = {"type": "actions", "block_id": "rec_actions:7", "elements": [
    {"type": "button", "action_id": "rec_approve", "text": {"type": "plain_text", "text": "Approve"},
     "style": "primary", "value": "7"},
    {"type": "static_select", "action_id": "rec_snooze",
     "placeholder": {"type": "plain_text", "text": "Snooze"},
     "options": [{"text": {"type": "plain_text", "text": "1 h"}, "value": "1h"},
                 {"text": {"type": "plain_text", "text": "4 h"}, "value": "4h"}]}]}


def test_the_page_and_its_modules_are_served(web):
    page = web.get("/")
    assert page.status_code == 200 and "alignbot demo — local Slack stand-in" in page.text
    for asset in ("app.js", "blocks.js", "mrkdwn.js", "emoji.js", "app.css"):
        r = web.get(f"/ui/{asset}")
        assert r.status_code == 200, asset
    assert "javascript" in web.get("/ui/app.js").headers["content-type"]


def test_watch_answers_changes_at_once_and_waits_when_nothing_changed(web, bot):
    first = web.get("/standin/watch").json()
    assert first["etag"] and first["state"]["channels"][0]["id"] == "C1"
    assert "calls" not in first["state"]

    started = time.monotonic()
    idle = web.get("/standin/watch", params={"since": first["etag"], "wait": 0.4}).json()
    assert idle == {"etag": first["etag"], "state": None}
    assert time.monotonic() - started >= 0.35

    bot.auth_test()  # an API call alone is no change anyone can see
    timer = threading.Timer(0.5, lambda: bot.chat_postMessage(channel="C1", text="*hello*"))
    timer.start()
    started = time.monotonic()
    changed = web.get("/standin/watch", params={"since": first["etag"], "wait": 5}).json()
    timer.join()
    assert time.monotonic() - started < 2.5, "a change must wake the watch, not its timeout"
    assert changed["etag"] != first["etag"]
    assert changed["state"]["channels"][0]["messages"][-1]["text"] == "*hello*"


def test_choose_sends_the_select_payload_slack_sends(slack, web, bot):
    posted = bot.chat_postMessage(channel="C1", text="rec", blocks=[SNOOZE])
    r = web.post("/standin/choose", json={"channel": "C1", "ts": posted["ts"],
                                          "action_id": "rec_snooze", "option": "4h", "user": "U1"})
    assert r.json()["ok"] and r.json()["delivery"]["status"] == 200
    (payload,) = slack.app.payloads
    assert payload["type"] == "block_actions" and payload["user"]["id"] == "U1"
    (action,) = payload["actions"]
    assert action["action_id"] == "rec_snooze" and action["selected_option"]["value"] == "4h"
    bad = web.post("/standin/choose", json={"channel": "C1", "ts": posted["ts"],
                                            "action_id": "rec_snooze", "option": "9y",
                                            "user": "U1"})
    assert bad.status_code == 400 and "9y" in bad.json()["error"]


def test_cancel_closes_the_modal_and_tells_the_app_when_asked(slack, web, bot):
    def open_modal(notify: bool) -> str:
        trigger = slack.workspace.issue_trigger("U1")
        view = bot.views_open(trigger_id=trigger, view={
            "type": "modal", "callback_id": "reject_modal", "notify_on_close": notify,
            "title": {"type": "plain_text", "text": "Reject #7"},
            "blocks": [{"type": "input", "block_id": "reason", "label": {
                "type": "plain_text", "text": "Why?"},
                "element": {"type": "plain_text_input", "action_id": "reason_input"}}]})
        return view["view"]["id"]

    quiet = open_modal(notify=False)
    r = web.post("/standin/close", json={"view_id": quiet, "user": "U1"})
    assert r.json() == {"ok": True, "delivery": None}
    assert slack.modal("U1") is None and slack.app.payloads == []

    told = open_modal(notify=True)
    assert web.post("/standin/close", json={"user": "U1"}).json()["delivery"]["status"] == 200
    assert slack.modal("U1") is None
    (payload,) = slack.app.payloads
    assert payload["type"] == "view_closed" and payload["view"]["id"] == told
    again = web.post("/standin/close", json={"user": "U1"})
    assert again.status_code == 400


def test_uploaded_files_are_served_to_the_browser(slack, web, bot):
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
    bot.files_upload_v2(channel="C1", file=png, filename="digest.png", title="Weekly digest")
    (f,) = slack.files()
    r = web.get(f"/standin/files/{f.id}")
    assert r.status_code == 200 and r.content == png
    assert r.headers["content-type"] == "image/png"
    assert web.get("/standin/files/F404").status_code == 404


def test_actions_need_a_json_body(web):
    r = web.post("/standin/click", content=b'{"channel": "C1"}',
                 headers={"content-type": "text/plain"})
    assert r.status_code == 415
