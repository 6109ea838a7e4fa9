"""The stand-in's Socket Mode, driven by slack_sdk's own SocketModeClient (what Bolt runs)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import httpx
import pytest
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.builtin.connection import Connection
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from sandbox.slack import APP_ID, RateLimits, SlackStandin
from tests.standin.conftest import SECRET, TOKEN
from tests.standin.test_bolt import build_app
from tests.standin.test_interactions import APPROVAL

APP_TOKEN = "xapp-1-A0ALIGNBOT-1-standin"
log = logging.getLogger(__name__)


@pytest.fixture
def slack():
    with SlackStandin(TOKEN, SECRET, app_token=APP_TOKEN, ack_timeout=1.0,
                      event_retry_delays=(0.0, 0.2, 0.2),
                      rate_limits=RateLimits().with_method("apps.connections.open", 600, 20),
                      channels=[{"id": "C1", "name": "planning"}],
                      users=[{"id": "U1", "name": "alice"}, {"id": "U2", "name": "bob"}]) as s:
        yield s


class App:
    """A Socket Mode app: slack_sdk's client, answering each envelope with ``answer(req)``
    (a payload dict, None for a bare ack, or ``NO_ACK``) and keeping every message it got."""

    NO_ACK = object()

    def __init__(self, slack: SlackStandin):
        self.messages: list[dict] = []
        self.requests: list[SocketModeRequest] = []
        self.answer: Callable[[SocketModeRequest], object] = lambda req: None
        self.client = SocketModeClient(APP_TOKEN, logger=log, ping_interval=2,
                                       web_client=WebClient(TOKEN, base_url=slack.api_url))
        # every text frame, as received (disconnect messages never reach message_listeners)
        self.client.on_message_listeners.append(lambda raw: self.messages.append(json.loads(raw)))
        self.client.socket_mode_request_listeners.append(self._on_request)

    def close(self, slack: SlackStandin) -> None:
        """Close quickly: with the socket closed by Slack first, the client's receive loop is
        not left waiting out its 3 s read timeout."""
        self.client.auto_reconnect_enabled = False
        slack.socket.drop()
        self.client.close()

    def _on_request(self, client: SocketModeClient, req: SocketModeRequest) -> None:
        self.requests.append(req)
        payload = self.answer(req)
        if payload is not App.NO_ACK:
            client.send_socket_mode_response(
                SocketModeResponse(envelope_id=req.envelope_id, payload=payload))


@pytest.fixture
def app(slack):
    sm_app = App(slack)
    sm_app.client.connect()
    slack.socket.wait_connected()
    yield sm_app
    sm_app.close(slack)


def _post_approval(slack: SlackStandin):
    WebClient(TOKEN, base_url=slack.api_url).chat_postMessage(channel="C1", text="SKU-1 +40%",
                                                               blocks=APPROVAL)
    return slack.last_message("C1")


# -- apps.connections.open: the app-level token, and only it ---------------------------------------

def test_app_level_token_opens_a_websocket_url(slack):
    url = WebClient(TOKEN, base_url=slack.api_url).apps_connections_open(app_token=APP_TOKEN)["url"]
    assert url.startswith(slack.url.replace("http://", "ws://") + "/link/?ticket=")
    assert url.endswith(f"&app_id={APP_ID}")


@pytest.mark.parametrize("token, error", [(TOKEN, "not_allowed_token_type"),
                                          ("xapp-1-A0OTHER-1-nope", "invalid_auth")])
def test_apps_connections_open_refuses_other_tokens(slack, token, error):
    with pytest.raises(SlackApiError) as exc:
        WebClient(base_url=slack.api_url).apps_connections_open(app_token=token)
    assert exc.value.response.data == {"ok": False, "error": error}


def test_app_token_must_come_in_the_authorization_header(slack):
    answer = httpx.post(slack.api_url + "apps.connections.open", data={"token": APP_TOKEN})
    assert answer.json() == {"ok": False, "error": "not_authed"}


def test_bot_methods_refuse_the_app_level_token(slack):
    with pytest.raises(SlackApiError) as exc:
        WebClient(APP_TOKEN, base_url=slack.api_url).chat_postMessage(channel="C1", text="hi")
    assert exc.value.response["error"] == "not_allowed_token_type"


def test_without_an_app_token_there_is_no_socket_mode():
    with SlackStandin(TOKEN, SECRET) as plain:
        assert not plain.socket_mode
        with pytest.raises(SlackApiError) as exc:
            WebClient(base_url=plain.api_url).apps_connections_open(app_token=TOKEN)
        assert exc.value.response["error"] == "not_allowed_token_type"


# -- connecting --------------------------------------------------------------------------------------

def test_hello_on_connect_counts_connections(slack, app):
    hello = slack.wait_for(lambda: [m for m in app.messages if m.get("type") == "hello"])[0]
    assert hello["num_connections"] == 1
    assert hello["connection_info"] == {"app_id": APP_ID}
    assert set(hello["debug_info"]) >= {"host", "approximate_connection_time"}
    second = App(slack)
    second.client.connect()
    try:
        slack.socket.wait_connected(2)
        assert slack.wait_for(lambda: second.messages)[0]["num_connections"] == 2
    finally:
        second.close(slack)


def test_a_url_opens_one_connection(slack):
    url = WebClient(TOKEN, base_url=slack.api_url).apps_connections_open(app_token=APP_TOKEN)["url"]
    first, again = Connection(url, log), Connection(url, log)
    try:
        first.connect()
        assert first.is_active()
        again.connect()  # the ticket is spent: the handshake is refused
        assert not again.is_active()
        assert len(slack.socket.connections) == 1
    finally:
        first.close()
        again.close()


# -- envelopes and acks ------------------------------------------------------------------------------

def test_command_arrives_as_an_envelope_and_the_ack_payload_is_the_reply(slack, app):
    app.answer = lambda req: {"text": f"Checking {req.payload['text']}..."}
    delivery = slack.command("/drift SKU-1", as_user="U1", channel="C1")
    assert delivery.ok and delivery.elapsed < 1
    sent = slack.socket.sent("slash_commands")[-1]
    assert set(sent) == {"envelope_id", "type", "payload", "accepts_response_payload"}
    assert sent["accepts_response_payload"] is True
    assert sent["payload"]["command"] == "/drift" and sent["payload"]["user_id"] == "U1"
    assert [m.text for m in slack.ephemeral_for("U1")] == ["Checking SKU-1..."]
    assert [a.envelope_id for a in slack.socket.acks] == [sent["envelope_id"]]


def test_click_arrives_as_an_interactive_envelope(slack, app):
    message = _post_approval(slack)
    assert slack.click(message, "Approve", as_user="U2").ok
    req = app.requests[-1]
    assert req.type == "interactive" and req.accepts_response_payload
    assert req.payload["type"] == "block_actions"
    assert req.payload["actions"][0]["action_id"] == "approve"


def test_unacked_command_fails_for_the_person_and_is_not_retried(slack, app):
    app.answer = lambda req: App.NO_ACK
    delivery = slack.command("/drift SKU-1", as_user="U1", channel="C1")
    assert delivery.timed_out and delivery.error == "operation_timeout"
    assert 1.0 <= delivery.elapsed < 3
    assert slack.ephemeral_for("U1")[-1].text == '/drift failed with the error "operation_timeout"'
    time.sleep(0.6)
    assert len(app.requests) == 1


def test_unacked_event_is_redelivered_with_the_next_retry_attempt(slack, app):
    app.answer = lambda req: App.NO_ACK if req.retry_attempt == 0 else None
    first = slack.open_home("U1")
    assert first.timed_out
    slack.wait_for(lambda: len(slack.socket.acks) == 1, timeout=5)
    events = slack.socket.sent("events_api")
    assert [(e["retry_attempt"], e["retry_reason"]) for e in events] == [(0, ""), (1, "timeout")]
    assert events[0]["accepts_response_payload"] is False
    assert events[0]["envelope_id"] != events[1]["envelope_id"]  # a new envelope each time
    assert events[0]["payload"] == events[1]["payload"]  # the same event_id
    time.sleep(0.6)
    assert len(slack.socket.sent("events_api")) == 2  # acked: no more retries


def test_event_retries_stop_after_three(slack, app):
    app.answer = lambda req: App.NO_ACK
    slack.open_home("U1")
    slack.wait_for(lambda: len(slack.socket.sent("events_api")) == 4, timeout=10)
    time.sleep(1.5)  # the last one's ack wait and a retry delay: no fifth
    assert [e["retry_attempt"] for e in slack.socket.sent("events_api")] == [0, 1, 2, 3]


def test_nothing_connected_is_dispatch_failed(slack):
    delivery = slack.command("/drift", as_user="U1", channel="C1")
    assert delivery.error == "dispatch_failed" and not delivery.ok
    assert slack.ephemeral_for("U1")[-1].text == '/drift failed with the error "dispatch_failed"'


def test_manual_retry_resends_the_payload_in_a_new_envelope(slack, app):
    message = _post_approval(slack)
    click = slack.click(message, "Approve", as_user="U2")
    again = slack.retry(click)
    assert again.ok
    first, second = app.requests
    assert first.envelope_id != second.envelope_id and first.payload == second.payload


def test_http_only_options_are_refused_in_socket_mode(slack, app):
    with pytest.raises(TypeError, match="only apply to HTTP"):
        slack.command("/drift", as_user="U1", channel="C1", signature="v0=" + "0" * 64)


# -- Slack recycling connections ---------------------------------------------------------------------

@pytest.mark.parametrize("reason", ["refresh_requested", "warning"])
def test_disconnect_makes_the_client_reconnect(slack, app, reason):
    before = slack.socket.opened
    [old] = slack.socket.disconnect(reason)
    slack.socket.wait_connected(after=before)
    slack.wait_for(lambda: [c.id for c in slack.socket.connections] == [before + 1], timeout=15,
                   message="the old connection should close")
    assert {"type": "disconnect", "reason": reason,
            "debug_info": {"host": f"applink-standin-{old}"}} in app.messages
    app.answer = lambda req: {"text": "still here"}
    delivery = slack.command("/drift", as_user="U1", channel="C1")
    assert delivery.ok and delivery.extra["connection"] == before + 1


def test_slack_closes_a_connection_the_app_does_not_leave(slack):
    url = WebClient(TOKEN, base_url=slack.api_url).apps_connections_open(app_token=APP_TOKEN)["url"]
    raw = Connection(url, log)  # only a socket: it never reacts to the disconnect message
    raw.connect()
    try:
        slack.socket.wait_connected()
        slack.socket.disconnect("refresh_requested", close_after=0.2)
        slack.wait_for(lambda: not slack.socket.connections, timeout=5)
    finally:
        raw.close()


def test_dropped_connection_is_replaced(slack, app):
    before = slack.socket.opened
    slack.socket.drop()
    slack.socket.wait_connected(after=before, timeout=15)
    assert slack.command("/drift", as_user="U1", channel="C1").ok


# -- a real Bolt app, the same helpers as over HTTP ----------------------------------------------------

@pytest.fixture
def bolt(slack):
    seen: list = []
    handler = SocketModeHandler(build_app(slack.api_url, seen), APP_TOKEN)
    handler.connect()
    slack.socket.wait_connected()
    yield seen
    handler.client.auto_reconnect_enabled = False  # as App.close: Slack closes first
    slack.socket.drop()
    handler.close()


def test_bolt_command_click_and_modal_over_the_socket(slack, bolt):
    assert slack.command("/drift SKU-1", as_user="U1", channel="C1").ok
    assert [m.text for m in slack.ephemeral_for("U1")] == ["Checking SKU-1..."]
    msg = slack.wait_for(lambda: slack.last_message("C1"))
    slack.click(msg, "Reject", as_user="U2")
    slack.wait_for(lambda: slack.modal("U2"))
    bad = slack.submit(values={"qty_value": "0", "mode_value": "air"}, as_user="U2")
    assert bad.extra["errors"] == {"qty": "Must be positive"} and slack.modal("U2")
    slack.submit(values={"qty_value": "12", "mode_value": "air"}, as_user="U2")
    assert slack.modal("U2") is None
    assert slack.click(msg, "Approve", as_user="U2").ok
    slack.wait_for(lambda: slack.last_message("C1").edits)
    assert slack.last_message("C1").text == "Approved by <@U2>"
    assert slack.calls("apps.connections.open")[0].args == {}  # the token never in the log


def test_bolt_sees_event_retries_as_retry_headers(slack, bolt):
    first = slack.open_home("U1")
    slack.wait_for(lambda: slack.home("U1"))
    slack.retry(first, retry_num=2)
    slack.wait_for(lambda: len(bolt) == 2)
    assert bolt == ["0", "2"]
