"""Helpers the sandbox operations share: read a parameter or refuse the action with a reason.

Where the detectors and older callers name a parameter differently (``to_qty`` / ``qty``,
``from`` / ``origin``), ``pick`` accepts either and refuses the action if both are given and
disagree, so an ambiguous request is never half-applied.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from sandbox.systems._world import ActionError, World, week_start


def pick(params: dict[str, Any], *names: str) -> str:
    """The first of ``names`` present (and not null) in ``params``; the first name if none is.

    Two aliases with different values are refused: the caller must say one thing.
    """
    present = [n for n in names if params.get(n) is not None]
    for other in present[1:]:
        if params[other] != params[present[0]]:
            raise ActionError(f"params.{present[0]} and params.{other} disagree "
                              f"({params[present[0]]!r} vs {params[other]!r}); send one of them")
    return present[0] if present else names[0]


def text(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ActionError(f"params.{name} is required (a non-empty string)")
    return value.strip()


def optional_text(params: dict[str, Any], name: str) -> str | None:
    """A string parameter that may be absent, null or empty (then None)."""
    value = params.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ActionError(f"params.{name} must be a string, got {value!r}")
    return value.strip()


def number(params: dict[str, Any], name: str, *, minimum: float = 0.0,
           default: float | None = None) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ActionError(f"params.{name} is required (a number)")
    if value < minimum:
        raise ActionError(f"params.{name} must be at least {minimum:g}, got {value:g}")
    return float(value)


def positive(params: dict[str, Any], name: str) -> float:
    """A quantity that must be more than zero."""
    value = number(params, name)
    if value <= 0:
        raise ActionError(f"params.{name} must be more than 0, got {value:g}")
    return value


def expect(world: World, params: dict[str, Any], name: str, current: float, what: str) -> None:
    """Refuse a stale action: ``params[name]`` (if sent) is what the recommender saw as ``what``.

    The action was computed from a snapshot; if the system has moved on since (someone else
    re-planned), applying it blindly would overwrite their change. A world made with
    ``checks_from=False`` applies it anyway, as many real systems do: then only the idempotency
    key keeps one change from being applied twice.
    """
    if params.get(name) is None or not world.checks_from:
        return
    seen = number(params, name)
    if abs(seen - current) > 0.5:
        raise ActionError(f"{what} is {current:g} now, but the action was computed for "
                          f"{seen:g} (params.{name}); re-check the recommendation")


def day(params: dict[str, Any], name: str) -> date:
    """An ISO date (a date-time is cut to its date)."""
    try:
        return date.fromisoformat(str(params.get(name))[:10])
    except ValueError:
        raise ActionError(f"params.{name} must be an ISO date, e.g. 2026-11-30, "
                          f"got {params.get(name)!r}") from None


def week(params: dict[str, Any], name: str) -> str:
    """A period parameter as the Monday of its week, the sandbox's planning bucket."""
    return week_start(day(params, name)).isoformat()


def known(name: str, value: str, allowed: set[str] | tuple[str, ...]) -> str:
    if value not in allowed:
        raise ActionError(f"unknown {name} {value!r}; known: {', '.join(sorted(allowed))}")
    return value
