"""The weekly digest for one team: what drifted, what was decided, how fast, and what it saved.

The week is the last 7 calendar days in the team's time zone (today included), so "Monday"
in the chart is the team's Monday. The chart is drawn with matplotlib's Agg canvas directly
(no pyplot, no display, safe in the scheduler's threads).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from io import BytesIO
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from sqlmodel import Session, or_, select

from bot._format import (
    MAX_SECTION_TEXT,
    aware,
    clip,
    clip_lines,
    duration,
    key_text,
    kind_label,
    money,
    severity_emoji,
)
from bot.config import AlignbotConfig
from store.tables import DriftRow, RecommendationRow

DAYS = 7
TOP_OPEN = 5
APPROVED_STATES = ("approved", "executing", "executed", "failed", "partially_executed")
# time to decision counts people's decisions only; expiry and resolution are not decisions
DECIDED_BY_PEOPLE = (*APPROVED_STATES, "rejected")
_ACTIVE = ("open", "snoozed", "approved", "executing")
_KIND_COLORS = {"demand_change": "#1f77b4", "disruption": "#d62728",
                "capacity_shift": "#ff7f0e", "stockout_risk": "#9467bd"}


@dataclass
class Digest:
    team: str
    channel: str
    text: str  # the fallback text, also what the CLI prints
    blocks: list[dict]
    chart_png: bytes
    stats: dict[str, Any] = field(default_factory=dict)


def build_digest(session: Session, team: str, config: AlignbotConfig, now: datetime) -> Digest:
    """The digest of the last 7 days (team time zone) for ``team``; raises KeyError if unknown."""
    known = {t.name: t for t in config.teams}
    if team not in known:
        raise KeyError(f"no team {team!r} in the configuration (teams: {', '.join(known)})")
    cfg = known[team]
    zone = cfg.zone
    now = aware(now)
    today = now.astimezone(zone).date()
    first_day = today - timedelta(days=DAYS - 1)
    start = datetime.combine(first_day, time(0), tzinfo=zone)

    # whatever changed this week, and whatever is still active (its drifts may be this week's)
    recs = [r for r in session.exec(select(RecommendationRow).where(or_(
        RecommendationRow.state.in_(_ACTIVE), RecommendationRow.updated_at >= start))).all()
        if team in r.teams]
    fps = {fp for r in recs for fp in (r.body or {}).get("drift_fingerprints") or []}
    drifts = list(session.exec(select(DriftRow).where(DriftRow.fingerprint.in_(fps))).all()) \
        if fps else []

    def within(t: datetime | None) -> bool:
        return t is not None and start <= aware(t) <= now

    decided = [r for r in recs if within(r.decided_at)]
    approved = [r for r in decided if r.state in APPROVED_STATES]
    rejected = [r for r in decided if r.state == "rejected"]
    expired = [r for r in decided if r.state == "expired"]
    # a terminal state is the row's last transition, so updated_at is when execution finished
    executed = [r for r in recs if r.state == "executed" and within(r.updated_at)]
    partially = [r for r in recs if r.state == "partially_executed" and within(r.updated_at)]
    waits = [aware(r.decided_at) - aware(r.created_at) for r in decided
             if r.state in DECIDED_BY_PEOPLE]
    median = timedelta(seconds=statistics.median(w.total_seconds() for w in waits)) \
        if waits else None
    protected = sum(_protected(r) for r in executed)
    active_fps = {fp for r in recs if r.state in _ACTIVE
                  for fp in (r.body or {}).get("drift_fingerprints") or []}
    rec_of = {fp: r.id for r in recs for fp in (r.body or {}).get("drift_fingerprints") or []
              if r.state in _ACTIVE}
    top_open = sorted((d for d in drifts if d.is_open and d.fingerprint in active_fps),
                      key=lambda d: (-d.value_at_risk, d.id or 0))[:TOP_OPEN]

    days = [first_day + timedelta(days=i) for i in range(DAYS)]
    opened = _per_day(drifts, "first_seen", days, zone)
    closed = _per_day(drifts, "closed_at", days, zone)
    stats: dict[str, Any] = {
        "period_start": start.isoformat(), "period_end": now.astimezone(zone).isoformat(),
        "timezone": cfg.timezone,
        "drifts_detected": sum(1 for d in drifts if within(d.first_seen)),
        "drifts_closed": sum(1 for d in drifts if within(d.closed_at)),
        "recommendations": sum(1 for r in recs if within(r.created_at)),
        "approved": len(approved), "rejected": len(rejected), "expired": len(expired),
        "executed": len(executed), "partially_executed": len(partially),
        "median_time_to_decision_s": median.total_seconds() if median is not None else None,
        "value_protected": protected,
        "top_open": [{"drift_id": d.id, "recommendation_id": rec_of.get(d.fingerprint),
                      "kind": d.kind, "key": d.key, "severity": d.severity,
                      "value_at_risk": d.value_at_risk} for d in top_open],
        "opened_per_day": {k: [opened[k].get(day, 0) for day in days] for k in opened},
        "closed_per_day": {k: [closed[k].get(day, 0) for day in days] for k in closed},
        "days": [day.isoformat() for day in days],
    }
    text = _text(team, first_day, today, stats, median, config.currency)
    chart = render_chart(team, cfg.timezone, days, opened, closed)
    return Digest(team=team, channel=cfg.channel, text=text,
                  blocks=_blocks(team, first_day, today, stats, median, top_open, rec_of,
                                 config.currency),
                  chart_png=chart, stats=stats)


def _protected(rec: RecommendationRow) -> float:
    body = rec.body or {}
    ignored = float((body.get("impact_if_ignored") or {}).get("value_at_risk") or 0)
    approved = float((body.get("impact_if_approved") or {}).get("value_at_risk") or 0)
    return ignored - approved


def _per_day(drifts: list[DriftRow], attr: str, days: list[date], zone
             ) -> dict[str, dict[date, int]]:
    wanted = set(days)
    out: dict[str, dict[date, int]] = {}
    for d in drifts:
        at = getattr(d, attr)
        if at is None:
            continue
        day = aware(at).astimezone(zone).date()
        if day in wanted:
            per_kind = out.setdefault(d.kind, {})
            per_kind[day] = per_kind.get(day, 0) + 1
    return out


def _span(first: date, last: date) -> str:
    return f"{first:%a} {first.day} {first:%b} – {last:%a} {last.day} {last:%b %Y}"


def _median_text(median: timedelta | None) -> str:
    return duration(median) if median is not None else "no decisions yet"


def _text(team: str, first: date, last: date, stats: dict[str, Any],
          median: timedelta | None, currency: str) -> str:
    return (
        f"alignbot weekly digest for {team}, {_span(first, last)} ({stats['timezone']}): "
        f"{stats['drifts_detected']} drifts detected, {stats['approved']} approved, "
        f"{stats['rejected']} rejected, {stats['expired']} expired, "
        f"{stats['executed']} executed; median time to decision {_median_text(median)}; "
        f"value protected {money(stats['value_protected'], currency)}."
    )


def _blocks(team: str, first: date, last: date, stats: dict[str, Any], median: timedelta | None,
            top_open: list[DriftRow], rec_of: dict[str, int], currency: str) -> list[dict]:
    fields = [
        f"*Drifts detected*\n{stats['drifts_detected']}",
        f"*Drifts closed*\n{stats['drifts_closed']}",
        f"*Approved*\n{stats['approved']}",
        f"*Rejected*\n{stats['rejected']}",
        f"*Expired*\n{stats['expired']}",
        f"*Executed*\n{stats['executed']}"
        + (f" (+{stats['partially_executed']} partially)" if stats["partially_executed"] else ""),
        f"*Median time to decision*\n{_median_text(median)}",
        f"*Value protected*\n{money(stats['value_protected'], currency)}",
    ]
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=clip(f":bar_chart: Weekly digest — {team}", 150),
                                         emoji=True)),
        ContextBlock(elements=[MarkdownTextObject(
            text=f"{_span(first, last)} · times in {stats['timezone']}")]),
        SectionBlock(fields=[MarkdownTextObject(text=f) for f in fields]),
    ]
    if top_open:
        lines = [f"{severity_emoji(d.severity)} {money(d.value_at_risk, currency)} at risk — "
                 f"{kind_label(d.kind)} "
                 f"{key_text(d.key)}"
                 + (f" (#{rec_of[d.fingerprint]})" if d.fingerprint in rec_of else "")
                 for d in top_open]
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip_lines(
            lines, MAX_SECTION_TEXT, head="*Top open drift by value at risk*"))))
    else:
        blocks.append(SectionBlock(text=MarkdownTextObject(
            text=":white_check_mark: No open drift for this team right now.")))
    blocks.append(ContextBlock(elements=[MarkdownTextObject(
        text="Value protected = value at risk if ignored minus if approved, for recommendations "
             "executed this week. Median time to decision counts approvals and rejections.")]))
    return [b.to_dict() for b in blocks]


def render_chart(team: str, timezone: str, days: list[date],
                 opened: dict[str, dict[date, int]], closed: dict[str, dict[date, int]]) -> bytes:
    """PNG of drift opened vs closed per day, stacked by kind: two bars a day."""
    fig = Figure(figsize=(9, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = list(range(len(days)))
    width = 0.38
    kinds = sorted(set(opened) | set(closed))
    for offset, series, hatch, alpha, label in ((-width / 2, opened, "", 1.0, "opened"),
                                                (width / 2, closed, "//", 0.55, "closed")):
        bottom = [0] * len(days)
        for kind in kinds:
            counts = [series.get(kind, {}).get(day, 0) for day in days]
            if not any(counts):
                continue
            ax.bar([i + offset for i in x], counts, width, bottom=bottom, hatch=hatch,
                   color=_KIND_COLORS.get(kind, "#7f7f7f"), edgecolor="white", alpha=alpha,
                   label=f"{kind_label(kind)} — {label}")
            bottom = [b + c for b, c in zip(bottom, counts)]
    ax.set_xticks(x, [f"{d:%a}\n{d.day} {d:%b}" for d in days])
    ax.set_ylabel("drifts")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title(f"Drift opened (solid) vs closed (hatched) per day — {team} ({timezone})")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if kinds:
        ax.legend(fontsize="small", loc="upper left", frameon=False)
    else:
        ax.text(0.5, 0.5, "No drift this week", transform=ax.transAxes, ha="center",
                va="center", fontsize=12, color="#555555")
        ax.set_ylim(0, 1)
    fig.tight_layout()
    out = BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()
