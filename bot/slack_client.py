"""The Slack Web API client alignbot uses: bounded timeouts and rate-limit retries built in."""

from __future__ import annotations

import copy
import socket
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

DEFAULT_API_URL = "https://slack.com/api/"

# Methods a repeated call would repeat in Slack: a second message, with no key to drop it by.
NOT_IDEMPOTENT = frozenset({"chat.postMessage"})


class ConnectionErrorRetries(ConnectionErrorRetryHandler):
    """slack_sdk's connection-error retries, except where the first call may have landed.

    A connection reset or a dropped answer can come after Slack has posted the message; a retry
    would post it again. Those calls fail instead, and the Slack sync, unsure whether the
    message went out, looks for it in the channel (by its metadata) before posting again. A
    refused connection or an unknown host never reached Slack, so those are still retried.
    """

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:  # type: ignore[no-untyped-def]
        if request.url.rstrip("/").rsplit("/", 1)[-1] in NOT_IDEMPOTENT \
                and not _never_sent(error):
            return False
        return super()._can_retry(state=state, request=request, response=response, error=error)


def _never_sent(error: Exception | None) -> bool:
    reason = error.reason if isinstance(error, URLError) else error
    return isinstance(reason, ConnectionRefusedError | socket.gaierror)


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
            ConnectionErrorRetries(max_retry_count=2),
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
