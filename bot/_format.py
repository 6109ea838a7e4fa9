"""Text helpers shared by the Slack views: numbers, money, times in a team's zone, Slack's limits.

Every view formats through these, so a figure reads the same in a message, its details, App
Home and the digest: thousands separators, decimals only where a quantity has them, money with
the configured currency's symbol, times in the team's zone with its abbreviation. A value that
is missing or not a number is left out of the sentence rather than shown as ``None`` or ``nan``.

Slack rejects a whole message when one block is over a limit, so every piece of text that can
grow with the data goes through ``clip``/``clip_lines`` and says how much it left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.config import CURRENCY_SYMBOLS, WHOLE_CURRENCIES, AlignbotConfig

# Slack's published limits (Block Kit reference).
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_CONTEXT_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_BUTTON_VALUE = 2000
MAX_VIEW_TITLE = 24

ELLIPSIS = "…"

SEVERITY_EMOJI = {
    "critical": ":rotating_light:",
    "high": ":red_circle:",
    "medium": ":large_orange_circle:",
    "low": ":large_blue_circle:",
}
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
KIND_LABEL = {
    "demand_change": "Demand change",
    "disruption": "Late shipment",
    "capacity_shift": "Capacity change",
    "stockout_risk": "Stock-out risk",
}
STATE_LABEL = {
    "open": "open",
    "snoozed": "snoozed",
    "approved": "approved",
    "executing": "executing",
    "executed": "executed",
    "failed": "failed",
    "partially_executed": "partially executed",
    "rejected": "rejected",
    "expired": "expired",
    "superseded": "superseded",
    "resolved": "resolved",
}


def clip(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, ending in an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)].rstrip() + ELLIPSIS


def clip_lines(lines: Sequence[str], limit: int, *, head: str = "",
               more: str = "_+{n} more_") -> str:
    """Join as many whole lines as fit in ``limit`` and say how many were left out."""
    out = head
    for i, line in enumerate(lines):
        rest = len(lines) - i - 1
        tail = "\n" + more.format(n=rest) if rest else ""
        candidate = (out + "\n" if out else "") + line
        if len(candidate) + len(tail) <= limit:
            out = candidate
            continue
        # this line does not fit: end with the "+N more" for it and everything after
        note = more.format(n=len(lines) - i)
        if not out:  # not even one line fits: show the first one cut short
            return clip(line, limit - len(note) - 1) + "\n" + note
        return out + "\n" + note
    return out


def severity_emoji(severity: str) -> str:
    return SEVERITY_EMOJI.get(str(severity), ":white_circle:")


def severity_word(severity: str) -> str:
    """``Critical``, ``High``…; an unknown severity in words, never blank."""
    return str(severity or "unrated").replace("_", " ").capitalize()


def kind_label(kind: str) -> str:
    return KIND_LABEL.get(str(kind), str(kind).replace("_", " ").capitalize())


def state_label(state: str) -> str:
    return STATE_LABEL.get(str(state), str(state).replace("_", " "))


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is missing or not a number (nan, "n/a")."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def num(value: Any) -> str:
    """A quantity as a planner reads it: thousands separators, decimals only when they matter."""
    x = number(value)
    if x is None:
        return str(value)
    if abs(x - round(x)) < 0.005:
        return f"{round(x):,}"
    return f"{x:,.2f}".rstrip("0").rstrip(".")


def plural(count: Any, word: str, many: str | None = None) -> str:
    """``1 shipment``, ``2 shipments``, ``12.5 units``: the count as ``num`` shows it."""
    shown = num(count)
    return f"{shown} {word if shown in ('1', '-1') else (many or word + 's')}"


def units(value: Any) -> str:
    return plural(value, "unit")


def money(value: Any, currency: str = "USD") -> str:
    """``$5,500``, ``$7.81``, ``-$40``: the currency's symbol, no decimals from 100 up."""
    x = number(value) or 0.0
    symbol = CURRENCY_SYMBOLS.get(currency, f"{currency} ")
    whole = abs(x) >= 100 or currency in WHOLE_CURRENCIES or abs(x - round(x)) < 0.005
    amount = f"{abs(round(x)):,}" if whole else f"{abs(x):,.2f}"
    return ("-" if x < 0 and amount.strip("0.,") else "") + symbol + amount


def days(value: Any) -> str:
    x = number(value) or 0.0
    return f"{num(round(x, 1))} day" + ("" if abs(x - 1) < 0.05 else "s")


def span(value_days: Any) -> str:
    """A stretch of time given in days: ``7.3 days``, ``1 day``, ``8 hours``, ``under an hour``."""
    x = number(value_days) or 0.0
    if x >= 0.95:
        return days(x)
    hours = round(x * 24)
    return plural(hours, "hour") if hours >= 1 else "under an hour"


def zone_of(config: AlignbotConfig, team: str | None) -> ZoneInfo:
    """The team's zone; UTC for a team the config no longer knows."""
    for t in config.teams:
        if t.name == team:
            return t.zone
    return ZoneInfo("UTC")


def rec_zone(config: AlignbotConfig, teams: Iterable[str]) -> ZoneInfo:
    """A recommendation is shown in the time zone of its first owning team."""
    first = next(iter(teams), None)
    return zone_of(config, first)


def aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def zone_abbreviation(value: datetime) -> str:
    """``CST``, ``CET``; ``UTC-03`` for zones whose abbreviation is only an offset."""
    name = value.strftime("%Z")
    return f"UTC{name}" if name[:1] in "+-" else name


def local_time(value: datetime, zone: ZoneInfo, now: datetime | None = None) -> str:
    """``Wed 18 Nov 10:42 CST``; just ``10:42 CST`` when ``now`` is the same day there.

    Messages stay in the channel for days, so without ``now`` the date is always shown.
    """
    here = aware(value).astimezone(zone)
    clock = f"{here:%H:%M} {zone_abbreviation(here)}"
    if now is not None:
        today = aware(now).astimezone(zone).date()
        if here.date() == today:
            return clock
        if here.year != today.year:
            return f"{here:%a} {here.day} {here:%b %Y} {clock}"
    return f"{here:%a} {here.day} {here:%b} {clock}"


def duration(delta: timedelta) -> str:
    """``45 min``, ``2 h 5 min``, ``3 d 4 h``: short and exact enough for a person."""
    seconds = int(abs(delta.total_seconds()))
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m = rem // 60
    if d:
        return f"{d} d {h} h" if h else f"{d} d"
    if h:
        return f"{h} h {m} min" if m else f"{h} h"
    return f"{m} min"


def team_mentions(config: AlignbotConfig, teams: Iterable[str]) -> list[str]:
    known = {t.name: t for t in config.teams}
    return [known[name].mention if name in known else f"*{name}*" for name in teams]


# PostgreSQL's JSONB does not keep key order, so dicts from the store are shown in this order
# (then alphabetically): the same message on either backend.
KEY_ORDER = ("kind", "shipment_id", "sku", "location", "resource_type", "resource_id", "resource",
             "lane", "carrier", "origin", "destination", "from", "to", "period", "direction")


def ordered_items(mapping: dict[str, Any] | None) -> list[tuple[str, Any]]:
    rank = {k: i for i, k in enumerate(KEY_ORDER)}
    return sorted((mapping or {}).items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))


def key_text(key: dict[str, Any] | None) -> str:
    """A business key as ``SKU-1 · DC-DAL · 2026-11-23``."""
    return " · ".join(str(v) for _, v in ordered_items(key) if v not in (None, ""))
