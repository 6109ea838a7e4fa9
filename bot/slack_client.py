"""The Slack Web API client alignbot uses: bounded timeouts and rate-limit retries built in."""

from __future__ import annotations

import copy

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


def without_rate_limit_retries(client: WebClient) -> WebClient:
    """A copy of ``client`` that hands a 429 to the caller instead of sleeping out Retry-After.

    For a worker with other work to do meanwhile (the Slack sync). Every other retry handler
    (connection errors, the metrics observer) is kept. Anything that is not a WebClient (a test
    double wrapping one) is returned as it is.
    """
    if not isinstance(client, WebClient):
        return client
    handlers = [h for h in client.retry_handlers
                if not isinstance(h, RateLimitErrorRetryHandler)]
    if len(handlers) == len(client.retry_handlers):
        return client
    twin = copy.copy(client)
    twin.retry_handlers = handlers
    return twin
