"""Helpers the sandbox operations share: read a parameter or refuse the action with a reason."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from connectors.sandbox._world import ActionError, week_start


def text(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ActionError(f"params.{name} is required (a non-empty string)")
    return value.strip()


def number(params: dict[str, Any], name: str, *, minimum: float = 0.0,
           default: float | None = None) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ActionError(f"params.{name} is required (a number)")
    if value < minimum:
        raise ActionError(f"params.{name} must be at least {minimum}, got {value}")
    return float(value)


def week(params: dict[str, Any], name: str) -> str:
    """A period parameter as the Monday of its week, the sandbox's planning bucket."""
    try:
        day = date.fromisoformat(str(params.get(name))[:10])
    except ValueError:
        raise ActionError(f"params.{name} must be an ISO date, e.g. 2026-11-30") from None
    return week_start(day).isoformat()
