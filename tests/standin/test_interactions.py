"""What the stand-in sends the app (signed like Slack) and what the app can do with it."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from sandbox.slack import sign
from tests.standin.conftest import SECRET, TOKEN

APPROVAL = [
    {"type": "section", "block_id": "summary", "text": {"type": "mrkdwn", "text": "SKU-1 +40%"}},
    {"type": "actions", "block_id": "decide", "elements": [
        {"type": "button", "action_id": "approve", "value": "rec-7", "style": "primary",
         "text": {"type": "plain_text", "text": "Approve"}},
        {"type": "button", "action_id": "reject", "value": "rec-7",
         "text": {"type": "plain_text", "text": "Reject"}},
    ]},
]
MODAL = {
    "type": "modal", "callback_id": "modify", "private_metadata": "rec-7",
    "title": {"type": "plain_text", "text": "Modify"},
    "submit": {"type": "plain_text", "text": "Save"},
    "blocks": [
        {"type": "input", "block_id": "qty", "label": {"type": "plain_text", "text": "Qty"},
         "element": {"type": "number_input", "action_id": "qty_value", "is_decimal_allowed": False}},
        {"type": "input", "block_id": "mode", "label": {"type": "plain_text", "text": "Mode"},
         "element": {"type": "static_select", "action_id": "mode_value", "options": [
             {"text": {"type": "plain_text", "text": "Air"}, "value": "air"},
             {"text": {"type": "plain_text", "text": "Ocean"}, "value": "ocean"}]}},
    ],
}


def verified(request: dict) -> bool:
    h = request["headers"]
    return SignatureVerifier(SECRET).is_valid(
        body=request["body"], timestamp=h["x-slack-request-timestamp"],
        signature=h["x-slack-signature"])


def test_signature_matches_slack_sdk_verifier():
    body = "command=%2Fdrift&text=SKU-1"
    ts = str(int(time.time()))
    verifier = SignatureVerifier(SECRET)
    assert verifier.generate_signature(timestamp=ts, body=body) == sign(SECRET, ts, body)
    assert not verifier.is_valid(body=body, timestamp=ts, signature=sign("other", ts, body))


def test_slash_command_is_form_encoded_and_signed(slack, receiver):
    delivery = slack.command("/drift SKU-1 DC-EAST", as_user="U1", channel="C1")
    assert delivery.status == 200 and delivery.elapsed < 3
    req = receiver.requests[-1]
    assert req["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert verified(req)
    form = receiver.form()
    assert form["command"] == "/drift" and form["text"] == "SKU-1 DC-EAST"
    assert (form["user_id"], form["user_name"], form["channel_id"]) == ("U1", "alice", "C1")
    assert form["team_id"].startswith("T") and form["trigger_id"]
    assert form["response_url"].startswith(slack.url)


def test_command_ack_body_is_shown_to_the_user_only(slack, receiver):
    receiver.reply = (200, json.dumps({"text": "Looking into SKU-1..."}))
    slack.command("/drift SKU-1", as_user="U1", channel="C1")
    assert [m.text for m in slack.ephemeral_for("U1")] == ["Looking into SKU-1..."]
    assert slack.messages("C1") == []


def test_response_url_posts_ephemeral_or_in_channel(slack, receiver):
    slack.command("/drift SKU-1", as_user="U1", channel="C1")
    url = receiver.form()["response_url"]
    assert httpx.post(url, json={"text": "just you"}, timeout=5).json() == {"ok": True}
    httpx.post(url, json={"text": "everyone", "response_type": "in_channel"}, timeout=5)
    assert [m.text for m in slack.ephemeral_for("U1")] == ["just you"]
    assert [m.text for m in slack.messages("C1")] == ["everyone"]
    assert [c.args["text"] for c in slack.calls("response_url")] == ["just you", "everyone"]


def test_response_url_is_good_for_five_posts(slack, receiver):
    slack.command("/drift", as_user="U1", channel="C1")
    url = receiver.form()["response_url"]
    codes = [httpx.post(url, json={"text": str(n)}, timeout=5).status_code for n in range(6)]
    assert codes == [200] * 5 + [404]


def test_trigger_opens_one_modal_once(slack, client, receiver):
    slack.command("/drift", as_user="U2", channel="C1")
    trigger = receiver.form()["trigger_id"]
    view = client.views_open(trigger_id=trigger, view=MODAL)["view"]
    assert view["callback_id"] == "modify" and view["private_metadata"] == "rec-7"
    assert slack.modal("U2")["id"] == view["id"] and slack.modal("U1") is None
    with pytest.raises(SlackApiError) as again:
        client.views_open(trigger_id=trigger, view=MODAL)
    assert again.value.response["error"] == "exchanged_trigger_id"
    with pytest.raises(SlackApiError) as made_up:
        client.views_open(trigger_id="1.2.3abc", view=MODAL)
    assert made_up.value.response["error"] == "invalid_arguments"


def test_trigger_expires_after_three_seconds(slack, client, receiver):
    slack.command("/drift", as_user="U1", channel="C1")
    trigger = receiver.form()["trigger_id"]
    time.sleep(3.1)
    with pytest.raises(SlackApiError) as info:
        client.views_open(trigger_id=trigger, view=MODAL)
    assert info.value.response["error"] == "expired_trigger_id"
    assert slack.modal("U1") is None


def test_views_update_by_id_and_hash_conflict(slack, client, receiver):
    slack.command("/drift", as_user="U1", channel="C1")
    view = client.views_open(trigger_id=receiver.form()["trigger_id"], view=MODAL)["view"]
    updated = client.views_update(view_id=view["id"], hash=view["hash"],
                                  view={**MODAL, "title": {"type": "plain_text", "text": "Two"}})
    assert updated["view"]["id"] == view["id"]
    assert slack.modal("U1")["title"]["text"] == "Two"
    with pytest.raises(SlackApiError) as stale:
        client.views_update(view_id=view["id"], hash=view["hash"], view=MODAL)
    assert stale.value.response["error"] == "hash_conflict"
    with pytest.raises(SlackApiError) as missing:
        client.views_update(view_id="V404", view=MODAL)
    assert missing.value.response["error"] == "not_found"


def test_click_sends_block_actions_with_the_stored_message(slack, client, receiver):
    posted = client.chat_postMessage(channel="C1", text="SKU-1 +40%", blocks=APPROVAL)
    client.chat_update(channel="C1", ts=posted["ts"], text="SKU-1 +45%", blocks=APPROVAL)
    slack.click(slack.last_message("C1"), "Approve", as_user="U2")
    assert verified(receiver.requests[-1])
    p = receiver.payload()
    assert p["type"] == "block_actions" and p["user"]["id"] == "U2"
    assert p["channel"]["id"] == "C1" and p["container"]["message_ts"] == posted["ts"]
    assert p["message"]["text"] == "SKU-1 +45%" and p["message"]["blocks"] == APPROVAL
    action = p["actions"][0]
    assert (action["action_id"], action["block_id"], action["value"], action["type"]) == \
        ("approve", "decide", "rec-7", "button")
    assert action["action_ts"] and p["trigger_id"] and p["api_app_id"] and p["team"]["id"]
    with pytest.raises(LookupError, match="Approve"):
        slack.click(slack.last_message("C1"), "Escalate", as_user="U2")
    slack.click(slack.last_message("C1"), "reject", as_user="U2")  # by action_id too
    assert receiver.payload()["actions"][0]["action_id"] == "reject"


def test_response_url_replace_original_edits_the_clicked_message(slack, client, receiver):
    client.chat_postMessage(channel="C1", text="open", blocks=APPROVAL)
    slack.click(slack.last_message("C1"), "Approve", as_user="U2")
    url = receiver.payload()["response_url"]
    httpx.post(url, json={"replace_original": True, "text": "Approved by <@U2>"}, timeout=5)
    msg = slack.last_message("C1")
    assert msg.text == "Approved by <@U2>" and msg.buttons() == []
    assert msg.edits[0]["text"] == "open" and len(slack.messages("C1")) == 1


def test_submit_sends_view_submission_and_applies_response_action(slack, client, receiver):
    slack.command("/drift", as_user="U1", channel="C1")
    client.views_open(trigger_id=receiver.form()["trigger_id"], view=MODAL)
    receiver.reply = (200, json.dumps({"response_action": "errors",
                                       "errors": {"qty": "Must be positive"}}))
    d = slack.submit(values={"qty_value": "-5", "mode": "Ocean"}, as_user="U1")
    assert d.extra["errors"] == {"qty": "Must be positive"} and slack.modal("U1") is not None
    p = receiver.payload()
    assert p["type"] == "view_submission" and p["view"]["callback_id"] == "modify"
    assert p["view"]["private_metadata"] == "rec-7"
    values = p["view"]["state"]["values"]
    assert values["qty"]["qty_value"] == {"type": "number_input", "value": "-5"}
    assert values["mode"]["mode_value"]["selected_option"]["value"] == "ocean"
    receiver.reply = (200, "")
    slack.submit(values={"qty_value": "5", "mode_value": "air"}, as_user="U1")
    assert slack.modal("U1") is None
    with pytest.raises(LookupError):
        slack.submit(values={}, as_user="U1")


def test_app_home_opened_and_url_verification_are_json_events(slack, client, receiver):
    client.views_publish(user_id="U1", view={"type": "home", "blocks": []})
    slack.open_home("U1")
    req = receiver.requests[-1]
    assert req["headers"]["content-type"] == "application/json" and verified(req)
    env = json.loads(req["body"])
    assert env["type"] == "event_callback" and env["event_id"].startswith("Ev")
    assert isinstance(env["event_time"], int)
    assert env["event"]["type"] == "app_home_opened" and env["event"]["user"] == "U1"
    assert env["event"]["tab"] == "home" and env["event"]["view"]["type"] == "home"
    slack.verify_url("chal-123")
    assert json.loads(receiver.requests[-1]["body"]) == {
        "token": env["token"], "challenge": "chal-123", "type": "url_verification"}


def test_retry_resends_the_same_body_with_retry_headers(slack, receiver):
    first = slack.open_home("U1")
    again = slack.retry(first, retry_num=1, reason="http_timeout")
    a, b = receiver.requests[-2:]
    assert a["body"] == b["body"] and again.status == 200
    assert "x-slack-retry-num" not in a["headers"]
    assert b["headers"]["x-slack-retry-num"] == "1"
    assert b["headers"]["x-slack-retry-reason"] == "http_timeout"
    assert verified(b)


def test_bad_signature_and_stale_timestamp_are_sent_as_asked(slack, receiver):
    slack.command("/drift", as_user="U1", channel="C1", signature="v0=deadbeef")
    assert not verified(receiver.requests[-1])
    slack.command("/drift", as_user="U1", channel="C1", timestamp=int(time.time()) - 600)
    req = receiver.requests[-1]
    assert verified(req) is False  # the verifier refuses anything older than 5 minutes
    assert int(req["headers"]["x-slack-request-timestamp"]) < time.time() - 590


def test_slow_app_times_out_like_slack(slack, receiver):
    slack.signer.timeout = 0.3
    receiver.delay = 1.0
    d = slack.command("/drift", as_user="U1", channel="C1")
    assert d.timed_out and not d.ok and d.error == "operation_timeout"
    (shown,) = slack.ephemeral_for("U1")
    assert shown.text == '/drift failed with the error "operation_timeout"'


def test_failing_app_is_reported_to_the_user(slack, receiver):
    receiver.reply = (500, "")
    d = slack.command("/drift", as_user="U1", channel="C1")
    assert d.status == 500 and not d.ok
    assert [m.text for m in slack.ephemeral_for("U1")] == [
        '/drift failed with the error "dispatch_failed"']


def test_files_upload_v2_round_trip(slack, client):
    parent = client.chat_postMessage(channel="C1", text="SKU-1 drift")
    data = b"sku,qty\nSKU-1,40\n"
    resp = client.files_upload_v2(channel="C1", content=data, filename="evidence.csv",
                                  title="Evidence", initial_comment="Evidence attached",
                                  thread_ts=parent["ts"])
    assert resp["file"]["title"] == "Evidence" and resp["file"]["name"] == "evidence.csv"
    assert [c.method for c in slack.calls()][-3:] == [
        "files.getUploadURLExternal", "upload", "files.completeUploadExternal"]
    (uploaded,) = slack.files()
    assert uploaded.data == data and uploaded.channels == ["C1"]
    (reply,) = slack.thread(slack.last_message("C1"))
    assert reply.text == "Evidence attached" and reply.files[0]["id"] == uploaded.id
    got = httpx.get(resp["file"]["url_private"], headers={"Authorization": f"Bearer {TOKEN}"},
                    timeout=5)
    assert got.content == data
    with pytest.raises(SlackApiError) as info:
        client.files_completeUploadExternal(files=[{"id": "F404"}], channel_id="C1")
    assert info.value.response["error"] == "file_not_found"


def test_double_click_sends_two_distinct_block_actions(slack, client, receiver):
    client.chat_postMessage(channel="C1", text="open", blocks=APPROVAL)
    deliveries = slack.double_click(slack.last_message("C1"), "Approve", as_user="U2")
    assert [d.status for d in deliveries] == [200, 200]
    first, second = receiver.payload(-2), receiver.payload(-1)
    assert first["actions"][0]["action_id"] == second["actions"][0]["action_id"] == "approve"
    assert first["trigger_id"] != second["trigger_id"]
    assert all(verified(r) for r in receiver.requests[-2:])


def test_people_act_only_where_they_are(slack, client, receiver):
    client.chat_postMessage(channel="C2", text="logistics only", blocks=APPROVAL)
    with pytest.raises(PermissionError):
        slack.click(slack.last_message("C2"), "Approve", as_user="U1")  # U1 is not in C2
    with pytest.raises(PermissionError):
        slack.command("/drift", as_user="U1", channel="C2")
    assert receiver.requests == []


def test_response_url_delete_original_removes_the_clicked_message(slack, client, receiver):
    client.chat_postMessage(channel="C1", text="keep")
    client.chat_postMessage(channel="C1", text="open", blocks=APPROVAL)
    slack.click(slack.last_message("C1"), "Reject", as_user="U2")
    r = httpx.post(receiver.payload()["response_url"], json={"delete_original": True}, timeout=5)
    assert r.status_code == 200
    assert [m.text for m in slack.messages("C1")] == ["keep"]
