"""The Slack Web API client alignbot uses: bounded timeouts and rate-limit retries built in."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

DEFAULT_API_URL = "https://slack.com/api/"


def api_base_url(url: str | None) -> str:
    """slack_sdk joins method names onto the base URL, so a base with a path needs a '/'."""
    url = (url or DEFAULT_API_URL).strip()
    return url if url.endswith("/") else url + "/"


def make_web_client(token: str, api_url: str | None = None, *, timeout: int = 10,
                    max_rate_limit_retries: int = 3) -> WebClient:
    return WebClient(
        token=token,
        base_url=api_base_url(api_url),
        timeout=timeout,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=max_rate_limit_retries),
        ],
    )
