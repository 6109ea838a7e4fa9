"""Bounded retries as an httpx transport: backoff with jitter on transient failures, honour 429.

Every connector's client sends through a ``RetryTransport`` so that a flaky planning system
costs a few seconds, never a hung poll: each attempt has the client's timeout, the number of
attempts is fixed, and a server's ``Retry-After`` is obeyed only up to a cap. The transport
wraps any other one, so tests run connectors over ``httpx.MockTransport`` with a fake ``sleep``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Errors where the request may not have reached the server, or its answer never came back.
RETRY_EXCEPTIONS = (httpx.TimeoutException, httpx.ConnectError, httpx.ReadError, httpx.WriteError,
                    httpx.RemoteProtocolError)
# Sending these twice does no more than sending them once (RFC 9110 §9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
# Request extensions: ``{"retry": True}`` marks another method safe to repeat (a token request);
# ``{"max_attempts": 1}`` sends once (a health check should report, not wait).
ONE_ATTEMPT = {"max_attempts": 1}
SAFE_TO_REPEAT = {"retry": True}


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry one HTTP call.

    ``sleep`` is injectable so tests record the waits instead of sitting through them.
    """

    max_attempts: int = 4
    backoff_base: float = 0.5  # first retry waits about this long, then doubles
    backoff_max: float = 10.0
    jitter: float = 0.5  # +/- this fraction of the backoff, so clients do not retry in step
    retry_after_cap: float = 60.0  # never wait longer than this, whatever the server says
    retry_statuses: frozenset[int] = RETRY_STATUSES
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")

    def backoff(self, attempt: int) -> float:
        """Wait before retry number ``attempt`` (1-based): exponential, capped, jittered."""
        base = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        spread = base * self.jitter
        return max(0.0, base + random.uniform(-spread, spread))

    def delay_for(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None and response.status_code in (429, 503):
            after = parse_retry_after(response.headers.get("Retry-After"))
            if after is not None:
                return min(after, self.retry_after_cap)
        return self.backoff(attempt)


class RetryTransport(httpx.BaseTransport):
    """Sends through ``inner`` and retries what ``policy`` calls transient.

    Only a request that is safe to repeat is retried: an idempotent method, a request that
    carries an ``Idempotency-Key`` (the server deduplicates it), or one marked
    ``extensions={"retry": True}``. The body is read here, so an answer cut off mid-way is
    retried like a lost connection. Returns the last response (maybe an error status); raises
    the last transport error when every attempt failed without one.
    """

    def __init__(self, inner: httpx.BaseTransport | None = None,
                 policy: RetryPolicy = RetryPolicy()):
        self.inner = inner or httpx.HTTPTransport()
        self.policy = policy

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        policy = self.policy
        attempts = request.extensions.get("max_attempts", policy.max_attempts)
        if not (request.method in IDEMPOTENT_METHODS or "Idempotency-Key" in request.headers
                or request.extensions.get("retry") is True):
            attempts = 1
        for attempt in range(1, attempts + 1):
            response = None
            try:
                response = self._send(request)
            except RETRY_EXCEPTIONS as exc:
                if attempt == attempts:
                    raise
                failure = type(exc).__name__
            else:
                if response.status_code not in policy.retry_statuses or attempt == attempts:
                    return response
                failure = f"HTTP {response.status_code}"
            delay = policy.delay_for(attempt, response)
            log.info("%s %s: %s; retry %d/%d in %.2fs", request.method,  # the query may hold a key
                     request.url.copy_with(query=None), failure, attempt, attempts - 1, delay)
            policy.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        try:
            raw = b"".join(response.stream)  # still encoded: the client decodes it
        finally:
            response.close()
        return httpx.Response(response.status_code, headers=response.headers,
                              stream=httpx.ByteStream(raw), extensions=response.extensions)

    def close(self) -> None:
        self.inner.close()


def retrying_client(policy: RetryPolicy, timeout: float,
                    transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """A connector's client: every call times out, every retry is bounded, no redirects (they
    could carry credentials elsewhere)."""
    return httpx.Client(transport=RetryTransport(transport, policy),
                        timeout=httpx.Timeout(timeout), follow_redirects=False)
