"""Slack's Web API rate limits as token buckets, so the bot meets 429s locally before it does in prod.

Slack limits each method per app per workspace by tier (1+, 20+, 50+, 100+ per minute, with some
burst tolerated) and chat.postMessage specially: about one message per second per channel with
short bursts allowed. The numbers are configuration so tests can tighten or relax them.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Limit:
    """A sustained rate (requests per minute) with a burst allowance (bucket size)."""

    per_minute: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_minute <= 0 or self.burst < 1:
            raise ValueError(f"Limit needs per_minute > 0 and burst >= 1, got {self}")


DEFAULT_TIERS: dict[int, Limit] = {
    1: Limit(1, 2),
    2: Limit(20, 10),
    3: Limit(50, 20),
    4: Limit(100, 50),
}

# Tiers as published on each method's reference page; "special" methods get the tier that
# matches their documented behaviour (chat.postMessage is handled per channel on top).
METHOD_TIERS: dict[str, int] = {
    "apps.connections.open": 1,
    "auth.test": 4,
    "chat.postMessage": 4,
    "chat.update": 3,
    "chat.postEphemeral": 4,
    "chat.getPermalink": 4,
    "conversations.list": 2,
    "conversations.info": 3,
    "conversations.history": 3,
    "conversations.replies": 3,
    "users.info": 4,
    "usergroups.users.list": 2,
    "views.open": 4,
    "views.update": 4,
    "views.publish": 4,
    "files.getUploadURLExternal": 4,
    "files.completeUploadExternal": 4,
}


@dataclass(frozen=True)
class RateLimits:
    """Which limits the stand-in enforces. ``RateLimits.unlimited()`` turns them off."""

    enabled: bool = True
    tiers: dict[int, Limit] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    method_tiers: dict[str, int] = field(default_factory=lambda: dict(METHOD_TIERS))
    overrides: dict[str, Limit] = field(default_factory=dict)
    post_message_per_channel: Limit = Limit(60, 5)

    @classmethod
    def unlimited(cls) -> RateLimits:
        return cls(enabled=False)

    def with_method(self, method: str, per_minute: float, burst: int) -> RateLimits:
        """A copy where ``method`` has its own limit (e.g. tighten views.open in one test)."""
        return replace(self, overrides={**self.overrides, method: Limit(per_minute, burst)})

    def with_post_message(self, per_second: float, burst: int) -> RateLimits:
        return replace(self, post_message_per_channel=Limit(per_second * 60, burst))

    def limit_for(self, method: str) -> Limit:
        if method in self.overrides:
            return self.overrides[method]
        return self.tiers[self.method_tiers.get(method, 3)]


class RateLimiter:
    """Thread-safe token buckets keyed by method (and by channel for chat.postMessage)."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self._clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()
        self.rejected: Counter[str] = Counter()

    def check(self, method: str, channel: str | None = None) -> int | None:
        """Take a token for this call; return None if allowed, else Retry-After seconds."""
        if not self.limits.enabled:
            return None
        with self._lock:
            keys = [((method, ""), self.limits.limit_for(method))]
            if method == "chat.postMessage" and channel:
                keys.append((("chat.postMessage#channel", channel),
                             self.limits.post_message_per_channel))
            waits = [self._peek(key, limit) for key, limit in keys]
            wait = max(waits)
            if wait > 0:  # rejected calls spend nothing, so one busy channel starves no other
                self.rejected[method] += 1
                return max(1, math.ceil(wait))
            for key, _limit in keys:
                self._spend(key)
            return None

    def _refill(self, key: tuple[str, str], limit: Limit) -> float:
        now = self._clock()
        tokens, last = self._buckets.get(key, (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + (now - last) * limit.per_minute / 60.0)
        self._buckets[key] = (tokens, now)
        return tokens

    def _peek(self, key: tuple[str, str], limit: Limit) -> float:
        """Seconds until this bucket has a token (0 if it has one now)."""
        tokens = self._refill(key, limit)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / (limit.per_minute / 60.0)

    def _spend(self, key: tuple[str, str]) -> None:
        tokens, last = self._buckets[key]
        self._buckets[key] = (tokens - 1.0, last)

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
            self.rejected.clear()
