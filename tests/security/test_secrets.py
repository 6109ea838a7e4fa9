"""Secrets never reach Slack: after a scenario step, an approval, its execution and people
looking at Home and /drift, nothing anyone can see in Slack holds the bot token, the signing
secret or the webhook secret (nor a recognisable piece of one)."""

from __future__ import annotations

import json

import httpx

from store.db import session_scope
from store.tables import RecommendationRow
from tests.security.conftest import WAIT, open_recommendations

APPROVER = {"planning": "U0PLAN1", "logistics": "U0LOG2"}
TERMINAL = ("executed", "partially_executed", "failed", "superseded")


def test_no_secret_in_anything_slack_shows(stack):
    stack.step()  # the next drift
    message, rec = stack.slack.wait_for(lambda: open_recommendations(stack)[-1:] or None,
                                        timeout=WAIT)[0]
    for team in rec.approvals_required:
        assert stack.slack.click(message, "Approve", as_user=APPROVER[team]).status == 200

    def state():
        with session_scope(stack.runtime.engine) as s:
            return s.get(RecommendationRow, rec.id).state
    stack.slack.wait_for(lambda: state() in TERMINAL, timeout=60,
                         message=f"#{rec.id} was approved but did not finish")
    for user in ("U0PLAN1", "U0LOG1", "U0SALES"):
        stack.slack.open_home(as_user=user)
        stack.slack.command("/drift", as_user=user, channel="C0PLANNING")
    for other, _ in open_recommendations(stack)[:1]:
        stack.slack.click(other, "Reject", as_user="U0SALES")  # a refusal, too
    stack.slack.wait_for(lambda: stack.slack.home("U0PLAN1"), timeout=WAIT)

    snapshot = json.dumps(stack.slack.snapshot(), ensure_ascii=False)
    calls = stack.slack.calls()
    # the token authenticates each call (Authorization header); it must not be in the content
    sent = json.dumps([{k: v for k, v in c.args.items() if k != "token"} for c in calls],
                      default=str, ensure_ascii=False)
    secrets = {"bot token": stack.bot_token, "signing secret": stack.signing_secret,
               "webhook secret": stack.webhook_secret}
    leaks = {name: where for name, value in secrets.items()
             for where, text in (("what people see", snapshot), ("what the bot sent", sent))
             if value in text or value[-12:] in text}
    received = [httpx.get(srv.url + "/received", timeout=5).text
                for srv in (stack.planning, stack.tms)]
    leaks.update({f"{name} (sent to a target system)": "sandbox"
                  for name, value in secrets.items() for text in received if value in text})
    print(f"\nsecrets scan: {len(snapshot):,} characters visible in Slack, {len(calls)} Web API "
          f"calls, recommendation #{rec.id} {state()}; leaks: {leaks or 'none'}")
    assert not leaks, leaks
