"""Signed clicks carrying what no alignbot button does: each is dropped once, with one warning.

A stored click whose handling fails stays in the inbox and is tried again; that is right for a
database that was briefly away, wrong for a click that can never be handled, which would fail
(and log an error with a traceback) on every attempt."""

from __future__ import annotations

import json
import logging
import time
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
from sqlmodel import select

from bot.ingress import delivery_key
from sandbox.slack.client import sign
from store.db import session_scope
from store.tables import SlackInboxRow
from tests.security.conftest import WAIT, open_recommendations, recorded_for

PLANNER = "U0PLAN1"
DEAD = "http://127.0.0.1:9/slack/events"  # the captured click goes nowhere


def _stored(stack, key: str) -> SlackInboxRow | None:
    with session_scope(stack.runtime.inbox.engine) as s:
        return s.exec(select(SlackInboxRow).where(SlackInboxRow.delivery_key == key)).first()


def _captured(stack, message, kind: str) -> dict:
    if kind == "snooze":
        body = stack.slack.choose(message, "rec_snooze", "1h", as_user=PLANNER, url=DEAD)
    else:
        body = stack.slack.click(message, kind, as_user=PLANNER, url=DEAD)
    return json.loads(parse_qs(body.request.body.decode())["payload"][0])


@pytest.mark.parametrize(("kind", "field", "value", "named"), [
    ("Approve", "value", "abc", "'abc' is not a recommendation id"),
    # past any id: OverflowError on SQLite
    ("Approve", "value", "99999999999999999999999",
     "'99999999999999999999999' is not a recommendation id"),
    # more digits than int() reads (the message shows the first 40)
    ("Approve", "value", "9" * 5000, f"'{'9' * 40}' is not a recommendation id"),
    # a digit to str.isdigit(), not to int()
    ("Approve", "value", "²", "'²' is not a recommendation id"),
    ("Reject", "value", "abc", "'abc' is not a recommendation id"),  # opens a modal
    # a select carries its recommendation's id in the block id
    ("snooze", "block_id", "rec_actions:abc", "'abc' is not a recommendation id"),
    ("snooze", "selected_option", {"text": {"type": "plain_text", "text": "2y"}, "value": "2y"},
     "'2y' is not a snooze choice"),
], ids=["approve-abc", "approve-huge", "approve-5000-digits", "approve-superscript",
        "reject-abc", "snooze-block-abc", "snooze-2y"])
def test_a_click_alignbot_cannot_act_on_is_dropped_once_with_one_warning(
        stack, caplog, kind, field, value, named):
    message, rec = stack.slack.wait_for(
        lambda: (found := open_recommendations(stack)) and found[0], timeout=WAIT)
    payload = _captured(stack, message, kind)
    payload["actions"][0][field] = value
    body = urlencode({"payload": json.dumps(payload)}).encode()
    before = recorded_for(stack, rec.id)
    caplog.set_level(logging.INFO)

    ts = int(time.time())
    answer = httpx.post(stack.ingress.url + "/slack/events", content=body, timeout=10, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sign(stack.signing_secret, ts, body)})
    assert answer.status_code == 200  # stored and acked: what is wrong shows after

    row = stack.slack.wait_for(
        lambda: (r := _stored(stack, delivery_key(body))) and r.state != "pending" and r,
        timeout=10, message="the click is still pending: its handling failed")
    assert (row.state, row.attempts) == ("done", 1)
    assert recorded_for(stack, rec.id) == before
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and r.name == "bot.slack_app"]
    assert warnings == [f"dropped a click on {payload['actions'][0]['action_id']}: {named}"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]


def test_a_stored_click_bolt_cannot_read_is_dropped_once_with_one_warning(stack, caplog):
    """The door stores what starts like a click; if the rest is not JSON, Bolt can never read
    it, so retrying it would only log an error each time."""
    body = b'payload={"type":"block_actions","actions":[ not json'
    caplog.set_level(logging.INFO)
    ts = int(time.time())
    answer = httpx.post(stack.ingress.url + "/slack/events", content=body, timeout=10, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sign(stack.signing_secret, ts, body)})
    assert answer.status_code in (200, 400)
    if answer.status_code == 200:  # stored: handled after the ack
        row = stack.slack.wait_for(
            lambda: (r := _stored(stack, delivery_key(body))) and r.state != "pending" and r,
            timeout=10, message="the click is still pending: its handling failed")
        assert (row.state, row.attempts) == ("done", 1)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("cannot read" in w for w in warnings), warnings
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]
