"""Slack's 429s: per-method tiers, chat.postMessage per channel, and slack_sdk's retry handler."""

from __future__ import annotations

import time

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from sandbox.slack import RateLimits
from sandbox.slack._ratelimit import RateLimiter
from tests.standin.conftest import TOKEN


def test_post_message_is_limited_per_channel_with_retry_after(slack, client):
    slack.rate_limits = RateLimits().with_post_message(per_second=1, burst=2)
    client.chat_postMessage(channel="C1", text="1")
    client.chat_postMessage(channel="C1", text="2")
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel="C1", text="3")
    resp = info.value.response
    assert resp.status_code == 429 and resp["error"] == "ratelimited"
    assert resp.headers["retry-after"] == "1"
    client.chat_postMessage(channel="C2", text="other channel has its own budget")
    assert slack.ratelimited("chat.postMessage") == 1
    assert [m.text for m in slack.messages("C1")] == ["1", "2"]
    assert [c.status for c in slack.calls("chat.postMessage")] == [200, 200, 429, 200]


def test_retry_handler_rides_through_the_429(slack):
    slack.rate_limits = RateLimits().with_post_message(per_second=1, burst=1)
    client = WebClient(TOKEN, base_url=slack.api_url, timeout=5,
                       retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)])
    started = time.monotonic()
    for n in range(2):
        client.chat_postMessage(channel="C1", text=f"decision {n}")
    assert time.monotonic() - started >= 1.0  # it waited Retry-After
    assert [m.text for m in slack.messages("C1")] == ["decision 0", "decision 1"]
    assert slack.ratelimited() == 1


def test_method_tier_limit_is_configurable(slack, client):
    slack.rate_limits = RateLimits().with_method("users.info", per_minute=6, burst=1)
    client.users_info(user="U1")
    with pytest.raises(SlackApiError) as info:
        client.users_info(user="U1")
    assert info.value.response.status_code == 429
    assert int(info.value.response.headers["retry-after"]) == 10  # 6/min → one every 10 s
    client.auth_test()  # other methods are unaffected


def test_default_limits_allow_a_short_burst_then_429(slack, client):
    texts = []
    for n in range(8):
        try:
            client.chat_postMessage(channel="C1", text=str(n))
            texts.append(str(n))
        except SlackApiError:
            break
    assert texts == ["0", "1", "2", "3", "4"]  # ~1/s per channel, bursts of 5


def test_unlimited(slack, client):
    slack.rate_limits = RateLimits.unlimited()
    for n in range(30):
        client.chat_postMessage(channel="C1", text=str(n))
    assert len(slack.messages("C1")) == 30 and slack.ratelimited() == 0


def test_bucket_refills_over_time():
    now = [0.0]
    limiter = RateLimiter(RateLimits().with_method("views.open", per_minute=60, burst=2),
                          clock=lambda: now[0])
    assert limiter.check("views.open") is None
    assert limiter.check("views.open") is None
    assert limiter.check("views.open") == 1
    now[0] += 1.0
    assert limiter.check("views.open") is None
    assert limiter.rejected["views.open"] == 1


def test_rejected_posts_do_not_spend_the_workspace_budget(slack, client):
    limits = RateLimits().with_method("chat.postMessage", per_minute=1, burst=3)
    slack.rate_limits = limits.with_post_message(per_second=0.1, burst=1)
    client.chat_postMessage(channel="C1", text="first")
    for _ in range(3):
        with pytest.raises(SlackApiError):
            client.chat_postMessage(channel="C1", text="too soon")
    client.chat_postMessage(channel="C2", text="other channel")
    client.chat_postMessage(channel="C3", text="third channel")
    assert slack.ratelimited("chat.postMessage") == 3
