"""A real Bolt app over HTTP, driven by the stand-in exactly as Slack would drive it."""

from __future__ import annotations

import time

import pytest
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import SlackRequestHandler
from slack_sdk import WebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from sandbox.serving import BackgroundServer
from tests.standin.conftest import SECRET, TOKEN
from tests.standin.test_interactions import APPROVAL, MODAL


def build_app(api_url: str, seen: list) -> App:
    app = App(client=WebClient(TOKEN, base_url=api_url, timeout=5), signing_secret=SECRET)

    @app.command("/drift")
    def drift(ack, command, client):
        ack(f"Checking {command['text']}...")
        client.chat_postMessage(channel=command["channel_id"], text=f"{command['text']} +40%",
                                blocks=APPROVAL)

    @app.action("approve")
    def approve(ack, body, client):
        ack()
        client.chat_update(channel=body["channel"]["id"], ts=body["message"]["ts"],
                           text=f"Approved by <@{body['user']['id']}>", blocks=[])

    @app.action("reject")
    def reject(ack, body, client):
        ack()
        client.views_open(trigger_id=body["trigger_id"], view=MODAL)

    @app.view("modify")
    def modify(ack, view, respond):
        qty = view["state"]["values"]["qty"]["qty_value"]["value"]
        if int(qty) <= 0:
            ack(response_action="errors", errors={"qty": "Must be positive"})
        else:
            ack()

    @app.event("app_home_opened")
    def home(event, client, request):
        seen.append(request.headers.get("x-slack-retry-num", ["0"])[0])
        client.views_publish(user_id=event["user"], view={
            "type": "home", "blocks": [{"type": "section", "text": {
                "type": "mrkdwn", "text": f"Hi <@{event['user']}>"}}]})

    return app


@pytest.fixture
def bolt(slack):
    seen: list = []
    handler = SlackRequestHandler(build_app(slack.api_url, seen))

    async def events(req: Request):
        return await handler.handle(req)

    server = BackgroundServer(Starlette(routes=[Route("/slack/events", events,
                                                      methods=["POST"])]))
    with server:
        slack.app_url = server.url + "/slack/events"
        yield seen


def test_bolt_checked_its_token_with_auth_test(slack, bolt):
    assert [c.ok for c in slack.calls("auth.test")] == [True]


def test_command_then_click_approve(slack, bolt):
    d = slack.command("/drift SKU-1", as_user="U1", channel="C1")
    assert d.status == 200 and d.elapsed < 3
    assert [m.text for m in slack.ephemeral_for("U1")] == ["Checking SKU-1..."]
    msg = slack.wait_for(lambda: slack.last_message("C1"))
    assert msg.text == "SKU-1 +40%"
    assert slack.click(msg, "Approve", as_user="U2").status == 200
    slack.wait_for(lambda: slack.last_message("C1").edits)
    assert slack.last_message("C1").text == "Approved by <@U2>"


def test_click_opens_modal_and_submit_validates(slack, bolt):
    slack.command("/drift SKU-1", as_user="U1", channel="C1")
    msg = slack.wait_for(lambda: slack.last_message("C1"))
    slack.click(msg, "Reject", as_user="U2")
    modal = slack.wait_for(lambda: slack.modal("U2"))
    assert modal["callback_id"] == "modify"
    bad = slack.submit(values={"qty_value": "0", "mode_value": "air"}, as_user="U2")
    assert bad.extra["errors"] == {"qty": "Must be positive"} and slack.modal("U2")
    slack.submit(values={"qty_value": "12", "mode_value": "air"}, as_user="U2")
    assert slack.modal("U2") is None


def test_home_tab_and_retry_headers(slack, bolt):
    first = slack.open_home("U1")
    slack.wait_for(lambda: slack.home("U1"))
    assert "Hi <@U1>" in slack.home("U1")["blocks"][0]["text"]["text"]
    slack.retry(first, retry_num=2, reason="http_error")
    slack.wait_for(lambda: len(bolt) == 2)
    assert bolt == ["0", "2"]


def test_url_verification_challenge_is_echoed(slack, bolt):
    d = slack.verify_url("chal-42")
    assert d.status == 200 and d.json() == {"challenge": "chal-42"}


def test_bolt_rejects_a_bad_signature(slack, bolt):
    d = slack.command("/drift SKU-1", as_user="U1", channel="C1", signature="v0=" + "0" * 64)
    assert d.status == 401
    time.sleep(0.3)
    assert slack.messages("C1") == []


def test_bolt_rejects_a_timestamp_older_than_five_minutes(slack, bolt):
    d = slack.command("/drift SKU-1", as_user="U1", channel="C1",
                      timestamp=int(time.time()) - 5 * 60 - 10)
    assert d.status == 401
    d = slack.command("/drift SKU-1", as_user="U1", channel="C1",
                      timestamp=int(time.time()) - 60)  # a minute of clock skew is fine
    assert d.status == 200


def test_demo_ui_drives_the_bot_through_the_control_routes(slack, bolt):
    import httpx

    with httpx.Client(base_url=slack.url, timeout=5) as ui:
        r = ui.post("/standin/command", json={"text": "/drift SKU-9", "user": "U1",
                                              "channel": "C1"})
        assert r.json()["ok"] and r.json()["delivery"]["status"] == 200
        msg = slack.wait_for(lambda: slack.last_message("C1"))
        r = ui.post("/standin/click", json={"channel": "C1", "ts": msg.ts,
                                            "button": "Approve", "user": "U2"})
        assert r.json()["ok"]
        slack.wait_for(lambda: slack.last_message("C1").edits)
        (c1,) = [c for c in ui.get("/standin/state").json()["channels"] if c["id"] == "C1"]
        assert [(m["text"], m["edit_count"]) for m in c1["messages"]] == \
            [("Approved by <@U2>", 1)]
        bad = ui.post("/standin/click", json={"channel": "C1", "ts": msg.ts,
                                              "button": "Nope", "user": "U2"})
        assert bad.status_code == 400 and "Nope" in bad.json()["error"]
