"""slack_sdk's WebClient, unmodified, against the stand-in: every method the bot uses."""

from __future__ import annotations

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.slack import BOT_USER_ID
from tests.standin.conftest import TOKEN

BLOCKS = [{"type": "section", "block_id": "s", "text": {"type": "mrkdwn", "text": "*drift*"}}]


def error_of(call) -> str:
    with pytest.raises(SlackApiError) as info:
        call()
    return info.value.response["error"]


def test_auth_test_identifies_the_bot(client):
    resp = client.auth_test()
    assert resp["user_id"] == BOT_USER_ID and resp["team_id"].startswith("T")


def test_bad_or_missing_token_is_rejected_like_slack(slack):
    assert error_of(WebClient("xoxb-wrong", base_url=slack.api_url).auth_test) == "invalid_auth"
    assert error_of(WebClient(base_url=slack.api_url).auth_test) == "not_authed"
    # token as a form field works too, as on Slack
    r = httpx.post(slack.api_url + "auth.test", data={"token": TOKEN}, timeout=5)
    assert r.json()["ok"] is True


def test_unknown_method(client):
    assert error_of(lambda: client.api_call("chat.flyToTheMoon")) == "unknown_method"


def test_post_message_returns_ts_channel_message_and_is_stored(slack, client):
    resp = client.chat_postMessage(channel="C1", text="Demand drift on SKU-1", blocks=BLOCKS)
    assert resp["channel"] == "C1" and resp["message"]["blocks"] == BLOCKS
    stored = slack.last_message("C1")
    assert stored.ts == resp["ts"] and stored.text == "Demand drift on SKU-1"
    assert resp["message"]["bot_id"]


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_post_message_errors(client):
    assert error_of(lambda: client.chat_postMessage(channel="C404", text="x")) == \
        "channel_not_found"
    assert error_of(lambda: client.chat_postMessage(channel="C1")) == "no_text"
    assert error_of(lambda: client.chat_postMessage(channel="C4", text="x")) == "not_in_channel"
    assert error_of(lambda: client.chat_postMessage(channel="C1", text="x",
                                                    blocks=[{"no": "type"}])) == "invalid_blocks"


def test_thread_replies_attach_to_their_parent(slack, client):
    parent = client.chat_postMessage(channel="C1", text="parent")
    client.chat_postMessage(channel="C1", text="first", thread_ts=parent["ts"])
    reply = client.chat_postMessage(channel="C1", text="second", thread_ts=parent["ts"])
    assert reply["message"]["thread_ts"] == parent["ts"]
    root = slack.last_message("C1")
    assert root.text == "parent"  # replies stay out of the channel timeline
    assert [m.text for m in slack.thread(root)] == ["first", "second"]
    assert root.to_api()["reply_count"] == 2
    shout = client.chat_postMessage(channel="C1", text="executed", thread_ts=parent["ts"],
                                    reply_broadcast=True)
    assert slack.last_message("C1").ts == shout["ts"]  # broadcast replies show in the channel
    assert [m.text for m in slack.thread(root)] == ["first", "second", "executed"]


def test_conversations_replies_returns_the_thread_with_metadata_only_when_asked(client):
    meta = {"event_type": "alignbot_note", "event_payload": {"key": "progress:1:0"}}
    parent = client.chat_postMessage(channel="C1", text="parent")
    first = client.chat_postMessage(channel="C1", text="first", thread_ts=parent["ts"],
                                    metadata=meta)
    client.chat_postMessage(channel="C1", text="second", thread_ts=parent["ts"])
    client.chat_postMessage(channel="C1", text="elsewhere")

    plain = client.conversations_replies(channel="C1", ts=parent["ts"])
    assert [m["text"] for m in plain["messages"]] == ["parent", "first", "second"]
    assert plain["messages"][0]["reply_count"] == 2
    assert all("metadata" not in m for m in plain["messages"])
    assert plain["has_more"] is False
    full = client.conversations_replies(channel="C1", ts=parent["ts"], include_all_metadata=True)
    assert full["messages"][1]["metadata"] == meta
    assert full["messages"][1]["ts"] == first["ts"]
    # ts may name any message of the thread; a message without replies comes back alone
    by_reply = client.conversations_replies(channel="C1", ts=first["ts"])
    assert [m["text"] for m in by_reply["messages"]] == ["parent", "first", "second"]
    lone = client.conversations_replies(channel="C1", ts=client.chat_postMessage(
        channel="C1", text="lone")["ts"])
    assert [m["text"] for m in lone["messages"]] == ["lone"]


def test_conversations_replies_pages_windows_and_errors(client):
    parent = client.chat_postMessage(channel="C1", text="parent")
    replies = [client.chat_postMessage(channel="C1", text=f"r{i}", thread_ts=parent["ts"])
               for i in range(3)]
    page = client.conversations_replies(channel="C1", ts=parent["ts"], limit=2)
    assert [m["text"] for m in page["messages"]] == ["parent", "r0"] and page["has_more"]
    rest = client.conversations_replies(channel="C1", ts=parent["ts"], limit=2,
                                        cursor=page["response_metadata"]["next_cursor"])
    assert [m["text"] for m in rest["messages"]] == ["r1", "r2"] and not rest["has_more"]
    after = client.conversations_replies(channel="C1", ts=parent["ts"], oldest=replies[0]["ts"])
    assert [m["text"] for m in after["messages"]] == ["r1", "r2"]
    inclusive = client.conversations_replies(channel="C1", ts=parent["ts"],
                                             oldest=replies[0]["ts"], inclusive=True)
    assert [m["text"] for m in inclusive["messages"]] == ["r0", "r1", "r2"]
    assert error_of(lambda: client.conversations_replies(
        channel="C1", ts="1.000001")) == "thread_not_found"
    assert error_of(lambda: client.conversations_replies(
        channel="C9", ts=parent["ts"])) == "channel_not_found"


def test_update_edits_in_place_and_keeps_history(slack, client):
    posted = client.chat_postMessage(channel="C1", text="open")
    resp = client.chat_update(channel="C1", ts=posted["ts"], text="approved by <@U2>")
    assert resp["ts"] == posted["ts"] and resp["text"] == "approved by <@U2>"
    assert len(slack.messages("C1")) == 1
    msg = slack.last_message("C1")
    assert msg.text == "approved by <@U2>" and [e["text"] for e in msg.edits] == ["open"]
    assert msg.to_api()["edited"]["ts"]
    assert error_of(lambda: client.chat_update(channel="C1", ts="1.000001", text="x")) == \
        "message_not_found"


def test_post_ephemeral_only_the_user_sees_it(slack, client):
    resp = client.chat_postEphemeral(channel="C1", user="U1", text="only you can approve")
    assert resp["message_ts"]
    assert [m.text for m in slack.ephemeral_for("U1")] == ["only you can approve"]
    assert slack.ephemeral_for("U2") == [] and slack.messages("C1") == []
    assert error_of(lambda: client.chat_postEphemeral(channel="C2", user="U1", text="x")) == \
        "user_not_in_channel"
    assert error_of(lambda: client.chat_postEphemeral(channel="C1", user="U9", text="x")) == \
        "user_not_found"


def test_get_permalink(client):
    posted = client.chat_postMessage(channel="C1", text="x")
    link = client.chat_getPermalink(channel="C1", message_ts=posted["ts"])["permalink"]
    assert link.endswith("/archives/C1/p" + posted["ts"].replace(".", ""))
    assert error_of(lambda: client.chat_getPermalink(channel="C1", message_ts="9.9")) == \
        "message_not_found"


def test_post_message_to_user_id_opens_a_dm(slack, client):
    resp = client.chat_postMessage(channel="U2", text="you have 2 decisions waiting")
    assert resp["channel"].startswith("D")
    assert [m.text for m in slack.dms("U2")] == ["you have 2 decisions waiting"]


def test_conversations_list_paginates_with_cursor(client):
    first = client.conversations_list(limit=2)
    assert [c["id"] for c in first["channels"]] == ["C1", "C2"]
    cursor = first["response_metadata"]["next_cursor"]
    assert cursor
    second = client.conversations_list(limit=2, cursor=cursor)
    assert [c["id"] for c in second["channels"]] == ["C4"]  # C3 is private
    assert second["response_metadata"]["next_cursor"] == ""
    everything = client.conversations_list(types="public_channel,private_channel")
    assert {c["id"] for c in everything["channels"]} == {"C1", "C2", "C3", "C4"}
    assert error_of(lambda: client.conversations_list(cursor="bm9wZTp4")) == "invalid_cursor"


def test_sdk_iterates_pages(client):
    ids = [c["id"] for page in client.conversations_list(limit=1) for c in page["channels"]]
    assert ids == ["C1", "C2", "C4"]


def test_conversations_info_and_users_info(client):
    info = client.conversations_info(channel="C2")["channel"]
    assert info["name"] == "logistics" and info["num_members"] == 1
    assert error_of(lambda: client.conversations_info(channel="C9")) == "channel_not_found"
    user = client.users_info(user="U1")["user"]
    assert user["name"] == "alice" and user["profile"]["email"] == "alice@example.com"
    assert error_of(lambda: client.users_info(user="U9")) == "user_not_found"


def test_usergroup_members(client):
    assert client.usergroups_users_list(usergroup="S_LOG")["users"] == ["U2", "U1"]
    assert error_of(lambda: client.usergroups_users_list(usergroup="S_NOPE")) == \
        "no_such_subteam"


def test_json_without_charset_gets_slacks_warning(slack):
    r = httpx.post(slack.api_url + "auth.test", content=b"{}",
                   headers={"Authorization": f"Bearer {TOKEN}",
                            "Content-Type": "application/json"}, timeout=5)
    assert r.json()["warning"] == "missing_charset"
    assert r.json()["response_metadata"]["warnings"] == ["missing_charset"]


def test_every_call_is_recorded(slack, client):
    client.chat_postMessage(channel="C1", text="hello")
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C404", text="hello")
    calls = slack.calls("chat.postMessage")
    assert [c.args["channel"] for c in calls] == ["C1", "C404"]
    assert [c.ok for c in calls] == [True, False]
    assert calls[1].response["error"] == "channel_not_found"


def test_publish_home_tab_per_user(slack, client):
    home = {"type": "home", "blocks": BLOCKS}
    resp = client.views_publish(user_id="U1", view=home)
    assert resp["view"]["type"] == "home" and resp["view"]["id"]
    assert slack.home("U1")["blocks"] == BLOCKS and slack.home("U2") is None
    again = client.views_publish(user_id="U1", view={"type": "home", "blocks": []})
    assert again["view"]["id"] == resp["view"]["id"]
    assert error_of(lambda: client.views_publish(user_id="U1", view={"type": "modal",
                                                                       "blocks": []})) == \
        "invalid_arguments"


def test_blocks_get_ids_filled_in_and_duplicates_refused(client):
    resp = client.chat_postMessage(channel="C1", text="x", blocks=[
        {"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Go"}}]}])
    block = resp["message"]["blocks"][0]
    assert block["block_id"] and block["elements"][0]["action_id"]
    twice = [{"type": "section", "block_id": "a", "text": {"type": "mrkdwn", "text": "1"}},
             {"type": "section", "block_id": "a", "text": {"type": "mrkdwn", "text": "2"}}]
    assert error_of(lambda: client.chat_postMessage(channel="C1", text="x", blocks=twice)) == \
        "invalid_blocks"
    same_action = [{"type": "actions", "elements": [
        {"type": "button", "action_id": "go", "text": {"type": "plain_text", "text": "A"}},
        {"type": "button", "action_id": "go", "text": {"type": "plain_text", "text": "B"}}]}]
    assert error_of(lambda: client.chat_postMessage(channel="C1", text="x",
                                                    blocks=same_action)) == "invalid_blocks"


def test_a_standin_bug_fails_loudly_and_is_recorded(slack, client, monkeypatch):
    from sandbox.slack import webapi

    def broken(ws, args):
        raise RuntimeError("boom")

    monkeypatch.setitem(webapi.METHODS, "auth.test", broken)
    with pytest.raises(SlackApiError) as info:
        client.auth_test()
    assert info.value.response.status_code == 500
    assert "boom" in slack.calls("auth.test")[-1].response["standin_bug"]
