"""The bot over Socket Mode: it connects out to the Slack stand-in with its app-level token, and
people's clicks and commands reach it as envelopes on that WebSocket — nothing over HTTP.

The same conversation as ``test_slack_flow.py``, through the same helpers.
"""

from __future__ import annotations

import time

import httpx
import pytest

from bot.demo import DemoStack
from sandbox.slack import Envelope
from tests.e2e.test_slack_flow import (
    COORDINATOR,
    OUTSIDER,
    PLANNER,
    WAIT,
    _deciders_once_decided,
    _decisions,
    _open_messages,
    _state,
    _take,
    _text,
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('socket') / 'alignbot.db'}"
    with DemoStack(fast=True, database_url=url, socket_mode=True) as demo:
        demo.step()  # a demand spike, delayed shipments and a carrier capacity cut
        yield demo


def _over_the_socket(delivery) -> bool:
    return isinstance(delivery.request, Envelope) and delivery.ok


def test_the_bot_connects_with_its_app_level_token(stack):
    assert stack.slack.app_url is None  # no request URL: Slack could not reach the bot anyway
    [opened] = stack.slack.calls("apps.connections.open")
    assert opened.ok and opened.args == {}  # the token went in the header, not the call log
    assert len(stack.slack.socket.connections) == 1
    assert stack.slack.socket.sent("hello")


def test_drift_appears_and_an_approval_over_the_socket_executes_once(stack):
    message, rec = _take(stack, "C0LOGISTICS", needs="logistics")
    assert "<!subteam^S0LOGISTICS>" in _text(message)
    before = {s: httpx.get(srv.url + "/received", timeout=5).json()["applied"]
              for s, srv in (("planning", stack.planning), ("logistics", stack.tms))}
    delivery = stack.slack.click(message, "Approve", as_user=COORDINATOR)
    assert _over_the_socket(delivery) and delivery.request.type == "interactive"
    assert delivery.elapsed < 3

    stack.slack.wait_for(lambda: _state(stack, rec.id) in ("executed", "partially_executed",
                                                             "failed"), timeout=WAIT)
    assert _state(stack, rec.id) == "executed"
    assert _decisions(stack, rec.id) == 1
    per_system: dict[str, int] = {}
    for action in rec.body["actions"]:
        per_system[action["system"]] = per_system.get(action["system"], 0) + 1
    for system, server in (("planning", stack.planning), ("logistics", stack.tms)):
        applied = httpx.get(server.url + "/received", timeout=5).json()["applied"]
        assert applied - before[system] == per_system.get(system, 0)  # exactly once each
    edited = stack.slack.wait_for(
        lambda: (m := stack.slack.message(message.channel, message.ts))
        and "xecuted" in _text(m) and m, timeout=WAIT)
    assert not any(b.get("type") == "actions" for b in edited.blocks)


def test_non_member_click_is_refused_and_nothing_recorded(stack):
    message, rec = _take(stack, "C0LOGISTICS", needs="logistics")
    assert _over_the_socket(stack.slack.click(message, "Approve", as_user=OUTSIDER))
    refusal = stack.slack.wait_for(lambda: stack.slack.ephemeral_for(OUTSIDER), timeout=WAIT)
    assert "Only members of logistics" in refusal[-1].text
    time.sleep(0.5)
    assert _decisions(stack, rec.id) == 0 and _state(stack, rec.id) == "open"


def test_drift_command_answers_over_the_socket(stack):
    _open_messages(stack, "C0LOGISTICS")
    delivery = stack.slack.command("/drift", as_user=PLANNER, channel="C0PLANNING")
    assert _over_the_socket(delivery) and delivery.request.type == "slash_commands"
    reply = stack.slack.wait_for(lambda: stack.slack.ephemeral_for(PLANNER, "C0PLANNING"),
                                 timeout=WAIT)[-1]
    shown = _text(reply).lower()
    assert any(kind in shown for kind in ("late shipment", "demand change", "capacity change",
                                          "stock-out risk"))


def test_reject_reason_is_validated_in_the_ack(stack):
    message, rec = _take(stack, "C0PLANNING")
    stack.slack.click(message, "Reject", as_user=PLANNER)
    modal = stack.slack.wait_for(lambda: stack.slack.modal(PLANNER), timeout=WAIT)
    empty = stack.slack.submit(modal, values={"reason_input": "  "}, as_user=PLANNER)
    assert empty.extra.get("errors", {}).get("reason")  # the ack's response_action
    stack.slack.submit(modal, values={"reason_input": "Promo was cancelled yesterday"},
                       as_user=PLANNER)
    stack.slack.wait_for(lambda: _state(stack, rec.id) == "rejected", timeout=WAIT)


def test_app_home_is_an_events_api_envelope(stack):
    delivery = stack.slack.open_home(as_user=COORDINATOR)
    assert _over_the_socket(delivery) and delivery.request.type == "events_api"
    home = stack.slack.wait_for(lambda: stack.slack.home(COORDINATOR), timeout=WAIT)
    assert "logistics" in str(home["blocks"]).lower()


def test_a_click_delivered_twice_and_double_clicked_records_one_decision(stack):
    message, rec = _take(stack, "C0LOGISTICS", needs="logistics")
    # Double-click while the buttons are there (once decided, the message loses them), then
    # Slack redelivers one of those clicks.
    clicks = stack.slack.double_click(message, "Approve", as_user=COORDINATOR)
    again = stack.slack.retry(clicks[0])  # the same payload in a second envelope
    assert all(_over_the_socket(d) for d in [*clicks, again])
    assert _deciders_once_decided(stack, rec.id) == [COORDINATOR]  # 3 deliveries, 1 decision


def test_after_slack_refreshes_the_connection_the_bot_reconnects_and_still_decides(stack):
    socket = stack.slack.socket
    before = socket.opened
    [old] = socket.disconnect("refresh_requested")
    socket.wait_connected(after=before, timeout=WAIT)
    stack.slack.wait_for(lambda: old not in [c.id for c in socket.connections], timeout=WAIT,
                         message="the refreshed connection should be closed")
    assert len(stack.slack.calls("apps.connections.open")) == 2  # a new URL for the new socket

    message, rec = _take(stack, "C0LOGISTICS", needs="logistics")
    delivery = stack.slack.click(message, "Approve", as_user=COORDINATOR)
    assert _over_the_socket(delivery) and delivery.extra["connection"] > old
    stack.slack.wait_for(lambda: _state(stack, rec.id) == "executed", timeout=WAIT)
    assert _decisions(stack, rec.id) == 1
