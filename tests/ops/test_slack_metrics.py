"""Slack call and 429 counting with a real WebClient against the local Slack stand-in."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.metrics import Metrics, instrumented_web_client, slack_method
from sandbox.slack import RateLimits, SlackStandin
from tests.ops._prom import by_label, parse

TOKEN = "xoxb-42-metrics-test"
SECRET = "metrics-signing-secret"


@pytest.fixture
def slack():
    limits = RateLimits().with_post_message(per_second=1, burst=1)
    with SlackStandin(TOKEN, SECRET, channels=["C1", "C2"], users=["U1"],
                      rate_limits=limits) as standin:
        yield standin


def _counts(metrics: Metrics) -> tuple[dict[str, float], dict[str, float]]:
    m = parse(metrics.render()[0])
    return (by_label(m, "alignbot_slack_api_calls_total", "method"),
            by_label(m, "alignbot_slack_api_ratelimited_total", "method"))


def test_a_429_ridden_through_counts_one_call_and_one_ratelimit(slack):
    metrics = Metrics(None)
    client = instrumented_web_client(TOKEN, slack.api_url, metrics, timeout=5)
    client.auth_test()
    client.chat_postMessage(channel="C1", text="first")
    client.chat_postMessage(channel="C1", text="second")  # 429, waits Retry-After, succeeds

    assert [m.text for m in slack.messages("C1")] == ["first", "second"]
    assert slack.ratelimited("chat.postMessage") == 1
    calls, limited = _counts(metrics)
    assert calls == {"auth.test": 1, "chat.postMessage": 2}  # calls, not HTTP attempts
    assert limited == {"chat.postMessage": 1}
    assert [c.status for c in slack.calls("chat.postMessage")] == [200, 429, 200]


def test_a_429_that_exhausts_the_retries_is_still_counted(slack):
    metrics = Metrics(None)
    client = instrumented_web_client(TOKEN, slack.api_url, metrics, timeout=5,
                                     max_rate_limit_retries=0)
    client.chat_postMessage(channel="C1", text="first")
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel="C1", text="dropped")
    assert info.value.response.status_code == 429
    client.chat_postMessage(channel="C2", text="another channel has its own budget")

    calls, limited = _counts(metrics)
    assert calls == {"chat.postMessage": 3}
    assert limited == {"chat.postMessage": 1} == {"chat.postMessage": slack.ratelimited()}


def test_bolt_style_per_request_clients_are_counted_too(slack):
    """Bolt builds a WebClient per request, copying the app client's retry handlers."""
    metrics = Metrics(None)
    app_client = instrumented_web_client(TOKEN, slack.api_url, metrics, timeout=5)
    per_request = WebClient(token=TOKEN, base_url=app_client.base_url,
                            timeout=app_client.timeout,
                            retry_handlers=app_client.retry_handlers.copy())
    per_request.chat_postEphemeral(channel="C1", user="U1", text="only you can see this")
    per_request.users_info(user="U1")
    calls, _ = _counts(metrics)
    assert calls == {"chat.postEphemeral": 1, "users.info": 1}


def test_slack_api_errors_are_calls_too(slack):
    metrics = Metrics(None)
    client = instrumented_web_client(TOKEN, slack.api_url, metrics, timeout=5)
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C404", text="nobody home")
    assert _counts(metrics)[0] == {"chat.postMessage": 1}


def test_method_labels_cannot_explode():
    assert slack_method("https://slack.com/api/chat.postMessage") == "chat.postMessage"
    assert slack_method("http://127.0.0.1:1234/api/admin.apps.approved.list?x=1") == \
        "admin.apps.approved.list"
    assert slack_method("https://files.slack.com/upload/v1/CwABAAAAXwo") == "other"
    assert slack_method("https://hooks.slack.com/actions/T1/123/abc") == "other"
