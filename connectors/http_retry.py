"""Bounded retries for httpx calls: backoff with jitter on transient failures, honour 429.

Every connector call goes through ``RetryPolicy.send`` so that a flaky planning system costs a
few seconds, never a hung poll: each attempt has a timeout, the number of attempts is fixed, and
a server's ``Retry-After`` is obeyed only up to a cap.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Errors where the request may not have reached the server, or its answer never came back.
RETRY_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.PoolTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
)


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

    Any method is retried, so send a non-idempotent request only with an idempotency key.
    ``sleep`` and ``rng`` are injectable so tests run in milliseconds and deterministically.
    """

    max_attempts: int = 4
    timeout: float = 10.0  # seconds, per attempt, used when the caller gives none
    backoff_base: float = 0.5  # first retry waits about this long, then doubles
    backoff_max: float = 10.0
    jitter: float = 0.5  # +/- this fraction of the backoff, so clients do not retry in step
    retry_after_cap: float = 60.0  # never wait longer than this, whatever the server says
    retry_statuses: frozenset[int] = RETRY_STATUSES
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")

    def with_attempts(self, max_attempts: int) -> RetryPolicy:
        return replace(self, max_attempts=max_attempts)

    def backoff(self, attempt: int) -> float:
        """Wait before retry number ``attempt`` (1-based): exponential, capped, jittered."""
        base = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        spread = base * self.jitter
        return max(0.0, base + self.rng.uniform(-spread, spread))

    def delay_for(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None and response.status_code in (429, 503):
            after = parse_retry_after(response.headers.get("Retry-After"))
            if after is not None:
                return min(after, self.retry_after_cap)
        return self.backoff(attempt)

    def send(self, client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send with retries. Returns the last response (maybe an error status); raises the
        last transport error when every attempt failed without one."""
        kwargs.setdefault("timeout", self.timeout)
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = client.request(method, url, **kwargs)
            except RETRY_EXCEPTIONS as exc:
                if attempt == self.max_attempts:
                    raise
                delay = self.delay_for(attempt, None)
                log.info("%s %s failed (%s); retry %d/%d in %.2fs", method, _safe(url),
                         type(exc).__name__, attempt, self.max_attempts - 1, delay)
                self.sleep(delay)
                continue
            if response.status_code not in self.retry_statuses or attempt == self.max_attempts:
                return response
            delay = self.delay_for(attempt, response)
            log.info("%s %s answered %d; retry %d/%d in %.2fs", method, _safe(url),
                     response.status_code, attempt, self.max_attempts - 1, delay)
            response.close()
            self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


def _safe(url: str) -> str:
    """The URL without its query string: queries sometimes carry keys."""
    return url.split("?", 1)[0]
