"""Requests that did not come from Slack (or from the TMS) are refused with 401 and change
nothing: unsigned, signed with the wrong secret, a captured request replayed later, a
timestamp from the future, and a body altered after signing."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from sqlmodel import func, select

from bot.hooks import sign as sign_webhook
from sandbox.slack.client import sign as sign_slack
from store.db import session_scope
from store.tables import QuarantinedRecord, SlackInboxRow
from tests.security.conftest import WAIT, open_recommendations, recorded_for

COORDINATOR, PLANNER = "U0LOG1", "U0PLAN1"
SIX_MINUTES = 6 * 60


def _stored_clicks(stack) -> int:
    with session_scope(stack.runtime.inbox.engine) as s:
        return s.exec(select(func.count()).select_from(SlackInboxRow)).one()


def _post(url: str, body: bytes, content_type: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url, content=body, headers={"Content-Type": content_type, **headers},
                      timeout=10)


def _slack_forgeries(secret: str, body: bytes) -> dict[str, dict[str, str]]:
    now = int(time.time())
    old, future = now - SIX_MINUTES, now + SIX_MINUTES
    return {
        "unsigned": {},
        "signature only, no timestamp": {"X-Slack-Signature": sign_slack(secret, now, body)},
        "mis-signed (wrong secret)": {"X-Slack-Request-Timestamp": str(now),
                                      "X-Slack-Signature": sign_slack("not-the-secret", now,
                                                                      body)},
        "garbage signature": {"X-Slack-Request-Timestamp": str(now),
                              "X-Slack-Signature": "v0=" + "0" * 64},
        # exactly what a captured request looks like six minutes later: once valid
        "replayed (old timestamp, once-valid signature)": {
            "X-Slack-Request-Timestamp": str(old),
            "X-Slack-Signature": sign_slack(secret, old, body)},
        "stale timestamp, fresh signature for another time": {
            "X-Slack-Request-Timestamp": str(old),
            "X-Slack-Signature": sign_slack(secret, now, body)},
        "from the future": {"X-Slack-Request-Timestamp": str(future),
                            "X-Slack-Signature": sign_slack(secret, future, body)},
        "body altered after signing": {"X-Slack-Request-Timestamp": str(now),
                                       "X-Slack-Signature": sign_slack(secret, now,
                                                                       body + b"&x=1")},
    }


def test_forged_slack_requests_get_401_and_record_nothing(stack):
    message, rec = stack.slack.wait_for(
        lambda: (found := open_recommendations(stack, needs="logistics")) and found[0],
        timeout=WAIT)
    # A genuine click, captured but aimed at nowhere, so we hold its exact body.
    captured = stack.slack.click(message, "Approve", as_user=COORDINATOR,
                                 url="http://127.0.0.1:9/slack/events")
    body = captured.request.body
    command = stack.slack.command("/drift mine", as_user=COORDINATOR, channel="C0LOGISTICS",
                                  url="http://127.0.0.1:9/slack/events").request.body
    before = recorded_for(stack, rec.id)
    stored_before = _stored_clicks(stack)
    ephemerals_before = len(stack.slack.ephemeral_for(COORDINATOR))
    url = stack.ingress.url + "/slack/events"

    results = {}
    for what, payload in (("click", body), ("/drift", command)):
        for name, headers in _slack_forgeries(stack.signing_secret, payload).items():
            results[f"{what}: {name}"] = _post(url, payload, "application/x-www-form-urlencoded",
                                               headers).status_code
    time.sleep(1.0)  # anything accepted would have been recorded by now
    after = recorded_for(stack, rec.id)
    # only the "failed with dispatch_failed" notes the stand-in itself wrote for the two
    # captured deliveries aimed at a dead port may appear; nothing from the app
    app_ephemerals = [m for m in stack.slack.ephemeral_for(COORDINATOR)[ephemerals_before:]
                      if m.user != "USLACKBOT"]

    print("\nforged Slack requests:", json.dumps(results, indent=1))
    assert all(code == 401 for code in results.values()), results
    assert after == before, f"a forged request changed the store: {before} -> {after}"
    assert _stored_clicks(stack) == stored_before, "a forged click reached the Slack inbox"
    assert not app_ephemerals, [m.text for m in app_ephemerals]

    # the same click, properly signed, is accepted: the 401s were about the signature
    genuine = _post(url, body, "application/x-www-form-urlencoded", {
        "X-Slack-Request-Timestamp": str(int(time.time())),
        "X-Slack-Signature": sign_slack(stack.signing_secret, int(time.time()), body)})
    assert genuine.status_code == 200
    stack.slack.wait_for(lambda: recorded_for(stack, rec.id)["decisions"] == 1, timeout=WAIT)


def test_slack_request_with_a_non_numeric_timestamp_gets_401(stack):
    message, rec = stack.slack.wait_for(
        lambda: (found := open_recommendations(stack)) and found[0], timeout=WAIT)
    body = stack.slack.click(message, "Approve", as_user=PLANNER,
                             url="http://127.0.0.1:9/slack/events").request.body
    before = recorded_for(stack, rec.id)
    status = _post(stack.ingress.url + "/slack/events", body, "application/x-www-form-urlencoded",
                   {"X-Slack-Request-Timestamp": "yesterday",
                    "X-Slack-Signature": sign_slack(stack.signing_secret, "yesterday", body)}
                   ).status_code
    time.sleep(0.5)
    assert recorded_for(stack, rec.id) == before  # refused either way: nothing recorded
    print(f"\nnon-numeric Slack timestamp answered HTTP {status}")
    assert status == 401


def _quarantined(stack) -> int:
    with session_scope(stack.runtime.engine) as s:
        return s.exec(select(func.count()).select_from(QuarantinedRecord).where(
            QuarantinedRecord.source == "webhook:tms")).one()


@pytest.fixture
def push_body() -> bytes:
    # One record the bot cannot use: an accepted push leaves a quarantine row we can count.
    return json.dumps({"records": [{"type": "telegram", "shipment_id": "SHP-10001",
                                    "note": "security-test"}]}).encode()


def test_forged_webhook_pushes_get_401_and_record_nothing(stack, push_body):
    url = stack.bot.url + "/hooks/tms"
    secret = stack.webhook_secret
    now = int(time.time())
    old, future = now - SIX_MINUTES, now + SIX_MINUTES
    forgeries = {
        "unsigned": {},
        "no timestamp": {"X-Alignbot-Signature": sign_webhook(secret, str(now), push_body)},
        "mis-signed (wrong secret)": {
            "X-Alignbot-Timestamp": str(now),
            "X-Alignbot-Signature": sign_webhook("guessed", str(now), push_body)},
        "signed with the Slack signing secret": {
            "X-Alignbot-Timestamp": str(now),
            "X-Alignbot-Signature": sign_webhook(stack.signing_secret, str(now), push_body)},
        "replayed (old timestamp, once-valid signature)": {
            "X-Alignbot-Timestamp": str(old),
            "X-Alignbot-Signature": sign_webhook(secret, str(old), push_body)},
        "from the future": {
            "X-Alignbot-Timestamp": str(future),
            "X-Alignbot-Signature": sign_webhook(secret, str(future), push_body)},
        "body altered after signing": {
            "X-Alignbot-Timestamp": str(now),
            "X-Alignbot-Signature": sign_webhook(secret, str(now), push_body + b" ")},
        "v0 scheme": {"X-Alignbot-Timestamp": str(now), "X-Alignbot-Signature":
                      sign_webhook(secret, str(now), push_body).replace("v1=", "v0=")},
    }
    before = _quarantined(stack)
    results = {name: _post(url, push_body, "application/json", headers)
               for name, headers in forgeries.items()}
    time.sleep(1.0)
    codes = {name: r.status_code for name, r in results.items()}
    print("\nforged webhook pushes:", json.dumps(codes, indent=1))
    assert all(code == 401 for code in codes.values()), codes
    assert all("quarantined" not in r.text for r in results.values())  # body never parsed
    assert _quarantined(stack) == before, "a forged push was recorded"

    # the control: properly signed, the push is taken (202) and its bad record quarantined
    ts = str(int(time.time()))
    genuine = _post(url, push_body, "application/json", {
        "X-Alignbot-Timestamp": ts, "X-Alignbot-Signature": sign_webhook(secret, ts, push_body)})
    assert genuine.status_code == 202, genuine.text
    stack.slack.wait_for(lambda: _quarantined(stack) == before + 1, timeout=WAIT)
