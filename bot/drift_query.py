"""The ``/drift`` slash command: parse what was typed, answer with ephemeral-ready blocks.

Parsing is separate from answering so the handler can reply with the usage at once (inside
Slack's 3 s) and only query the store for a well-formed request.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from sqlmodel import Session, select

from bot._format import (
    MAX_BUTTON_VALUE,
    MAX_HEADER_TEXT,
    MAX_MESSAGE_BLOCKS,
    MAX_SECTION_TEXT,
    SEVERITY_RANK,
    aware,
    clip,
    clip_lines,
    duration,
    key_text,
    kind_label,
    local_time,
    money,
    rec_zone,
    severity_emoji,
    state_label,
)
from bot.config import AlignbotConfig
from store.tables import ACTIVE_STATES, DecisionRow, DriftRow, RecommendationRow

# Recommendation ids are INTEGER columns: 32 bits on PostgreSQL, 64 on SQLite. No row has a
# larger id, and neither database compares one with a larger number: PostgreSQL fails the
# query ("integer out of range"), SQLite's driver raises OverflowError past 64 bits.
MAX_RECOMMENDATION_ID = 2**31 - 1

PAGE_SIZE = 10
PAGE_ACTION = "drift_page"
RECENT = timedelta(days=30)  # how far back a search looks at decided recommendations

DRIFT_USAGE = (
    "*How to use `/drift`*\n"
    "• `/drift` — open drift by kind and team, worst first\n"
    "• `/drift mine` — open recommendations for your teams\n"
    "• `/drift held` — decided drift that is still there but held back, and when it comes back\n"
    "• `/drift SKU-10042` — everything about a SKU (also a location like `DC-DAL`, "
    "a lane like `DC-ATL>DC-DAL`, or a carrier like `XPO`)\n"
    "• `/drift 42` or `/drift #42` — one recommendation\n"
    "• `/drift help` — this text"
)

_TERM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-:/]*$")
_LANE_ARROWS = re.compile(r"\s*(?:->|→|>)\s*")


@dataclass(frozen=True)
class DriftQuery:
    """A well-formed request: ``kind`` says which answer, ``text`` is what to page with."""

    kind: Literal["summary", "mine", "held", "search", "recommendation"]
    text: str = ""
    term: str | None = None
    rec_id: int | None = None


@dataclass(frozen=True)
class Usage:
    """Not a query: show the usage, and ``problem`` (if any) says what was wrong."""

    problem: str | None = None

    @property
    def text(self) -> str:
        return (f":warning: {self.problem}\n\n" if self.problem else "") + DRIFT_USAGE

    def blocks(self) -> list[dict]:
        return [SectionBlock(text=MarkdownTextObject(text=clip(self.text, MAX_SECTION_TEXT)))
                .to_dict()]


def parse_drift_args(text: str) -> DriftQuery | Usage:
    """What the user typed after ``/drift`` → a query, or the usage saying what was wrong."""
    raw = " ".join((text or "").split())
    if not raw:
        return DriftQuery("summary")
    lowered = raw.lower()
    if lowered in ("help", "-h", "--help", "?"):
        return Usage()
    if lowered in ("mine", "held"):
        return DriftQuery(lowered, text=lowered)
    lane = _LANE_ARROWS.split(raw)
    if len(lane) == 2 and all(_TERM.match(p) for p in lane):
        term = f"{lane[0]}>{lane[1]}"
        return DriftQuery("search", text=term, term=term)
    if " " in raw:
        return Usage(f"`/drift` takes one search term, not {len(raw.split())} "
                     f"(`{clip(raw, 80)}`). Search one SKU, location, lane or carrier at a time.")
    if re.fullmatch(r"#?\d+", raw):
        # any script's digits: "#４２" from a Japanese keyboard is #42
        digits = "".join(str(unicodedata.decimal(c)) for c in raw.lstrip("#")).lstrip("0")
        if not digits:
            return Usage(f"`{clip(raw, 80)}` is not a recommendation id; they start at #1.")
        # past any id it is still a question about one, answered "no such recommendation"
        return DriftQuery("recommendation", text=f"#{digits}", rec_id=recommendation_id(digits))
    if raw.startswith("#"):
        return Usage(f"`{clip(raw, 80)}` is not a recommendation id; use a number like `#42`.")
    if len(raw) > 64 or not _TERM.match(raw):
        return Usage(f"`{clip(raw, 80)}` does not look like a SKU, location, lane, carrier or "
                     "recommendation id (letters, digits, `-`, `_`, `.`, `:` or `/`).")
    return DriftQuery("search", text=raw, term=raw)


def recommendation_id(value: object) -> int | None:
    """The recommendation id ``value`` names (a button's value, the number after ``/drift #``),
    or None when it names none: not ASCII digits, 0, or past ``MAX_RECOMMENDATION_ID``."""
    if not (isinstance(value, str) and value.isascii() and value.isdigit()):
        return None
    digits = value.lstrip("0")
    if len(digits) > len(str(MAX_RECOMMENDATION_ID)):  # (int() refuses 4,300 digits or more)
        return None
    number = int(digits or "0")
    return number if 1 <= number <= MAX_RECOMMENDATION_ID else None


def drift_response(session: Session, query: DriftQuery | Usage, user_teams: set[str],
                   config: AlignbotConfig, page: int = 0, now: datetime | None = None
                   ) -> list[dict]:
    """Ephemeral-ready blocks answering one ``/drift`` query, ``PAGE_SIZE`` items a page."""
    if isinstance(query, Usage):
        return query.blocks()
    now = aware(now or datetime.now().astimezone())
    page = max(0, page)
    if query.kind == "recommendation":
        rec = session.get(RecommendationRow, query.rec_id) if query.rec_id else None
        if rec is None:
            return _text_blocks(f"No recommendation {clip(query.text, 40)}. `/drift mine` lists "
                                "the open ones for your teams.")
        return _page_blocks(f"Recommendation #{rec.id}", [], [_rec_item(rec, config, now)],
                            query, 0, now)
    if query.kind == "mine":
        if not user_teams:
            return _text_blocks("You are not in any team alignbot knows, so nothing is yours "
                                "to decide. Ask an admin to add you to a team in alignbot.yml "
                                "(members or usergroup_id). `/drift` shows all open drift.")
        recs = [r for r in _active(session) if set(r.teams) & user_teams]
        teams = ", ".join(sorted(user_teams))
        items = [_rec_item(r, config, now) for r in _worst_first(recs)]
        empty = f":tada: Nothing open for {teams}. New drift shows up in your team channel."
        return _page_blocks(f"Open for {teams}", [], items, query, page, now, empty=empty)
    if query.kind == "held":
        items = [_held_item(session, r, config, now) for r in _worst_first(_held(session))]
        empty = ("Nothing is held back: no decided drift is still there. A drift whose "
                 "recommendation was rejected, expired or executed shows up here while it lasts.")
        return _page_blocks("Held back — decided, still there", [], items, query, page, now,
                            empty=empty)
    if query.kind == "search":
        return _search(session, query, config, page, now)
    return _summary(session, query, config, page, now)


# --- answers --------------------------------------------------------------------------------


def _active(session: Session) -> list[RecommendationRow]:
    return list(session.exec(select(RecommendationRow).where(
        RecommendationRow.state.in_([str(s) for s in ACTIVE_STATES]))).all())


def _held(session: Session) -> list[RecommendationRow]:
    """Decided recommendations whose drift detection still sees and holds back."""
    return list(session.exec(select(RecommendationRow).where(
        RecommendationRow.held_at.is_not(None))).all())


def _worst_first(recs: list[RecommendationRow]) -> list[RecommendationRow]:
    return sorted(recs, key=lambda r: (-SEVERITY_RANK.get(r.severity, -1), -r.value_at_risk,
                                       r.id or 0))


def _rec_of_drift(recs: list[RecommendationRow]) -> dict[str, RecommendationRow]:
    out: dict[str, RecommendationRow] = {}
    for rec in recs:
        for fp in (rec.body or {}).get("drift_fingerprints") or []:
            out.setdefault(fp, rec)
    return out


def _summary(session: Session, query: DriftQuery, config: AlignbotConfig, page: int,
             now: datetime) -> list[dict]:
    drifts = session.exec(select(DriftRow).where(DriftRow.is_open)).all()
    recs = _active(session)
    owner = _rec_of_drift(recs)
    held = _rec_of_drift(_held(session))
    groups: dict[tuple[str, str], list[DriftRow]] = {}
    for d in drifts:
        rec = owner.get(d.fingerprint)
        if rec is None and d.fingerprint in held:
            team = "held back (`/drift held`)"
        else:
            team = rec.teams[0] if rec and rec.teams else "not routed yet"
        groups.setdefault((d.kind, team), []).append(d)
    lines = []
    ranked = sorted(groups.items(), key=lambda kv: (
        -max(SEVERITY_RANK.get(d.severity, -1) for d in kv[1]),
        -sum(d.value_at_risk for d in kv[1])))
    for (kind, team), rows in ranked:
        worst = max(rows, key=lambda d: SEVERITY_RANK.get(d.severity, -1)).severity
        lines.append(f"{severity_emoji(worst)} *{kind_label(kind)}* · {team} — "
                     f"{len(rows)} open, "
                     f"worst {worst}, {money(sum(d.value_at_risk for d in rows), config.currency)} at risk")
    head = [clip_lines(lines, MAX_SECTION_TEXT, head="*Open drift by kind and team*")] if lines \
        else []
    items = [_rec_item(r, config, now) for r in _worst_first(recs)]
    empty = (":white_check_mark: No open drift — plan and execution agree. "
             "Try `/drift help` for searches.")
    return _page_blocks("Open drift", head, items, query, page, now, empty=empty)


def _norm(value: Any) -> str:
    return str(value).strip().lower()


def _matches(term: str, docs: list[dict]) -> bool:
    """A term matches a value exactly (case-insensitive); a lane also matches origin+destination."""
    t = _norm(term)
    origin, _, dest = t.partition(">")
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        values = {_norm(v) for v in doc.values() if isinstance(v, (str, int, float))}
        if t in values:
            return True
        if dest:
            pairs = (("origin", "destination"), ("from", "to"))
            if any(_norm(doc.get(a, "")) == origin and _norm(doc.get(b, "")) == dest
                   for a, b in pairs):
                return True
    return False


def _search(session: Session, query: DriftQuery, config: AlignbotConfig, page: int,
            now: datetime) -> list[dict]:
    term = query.term or ""
    drifts = session.exec(select(DriftRow).where(DriftRow.is_open)).all()
    hit_fps = {d.fingerprint for d in drifts if _matches(term, [d.key, d.cause])}
    recent = session.exec(select(RecommendationRow).where(
        RecommendationRow.created_at >= now - RECENT)).all()
    recs = {r.id: r for r in [*_active(session), *recent]}
    found = [r for r in recs.values()
             if _matches(term, [(r.body or {}).get("cause") or {},
                                *((r.body or {}).get("affected") or []),
                                *[a.get("params") or {} for a in (r.body or {}).get("actions")
                                  or [] if isinstance(a, dict)]])
             or hit_fps & set((r.body or {}).get("drift_fingerprints") or [])]
    active = [r for r in found if r.state in {str(s) for s in ACTIVE_STATES}]
    decided = sorted((r for r in found if r not in active),
                     key=lambda r: aware(r.updated_at), reverse=True)
    items = [_rec_item(r, config, now) for r in [*_worst_first(active), *decided]]
    covered = {fp for r in found for fp in (r.body or {}).get("drift_fingerprints") or []}
    items += [_drift_item(d, config, now) for d in sorted(
        (d for d in drifts if d.fingerprint in hit_fps and d.fingerprint not in covered),
        key=lambda d: -d.value_at_risk)]
    empty = (f"Nothing about `{term}` in open drift or in the last {RECENT.days} days of "
             "recommendations. Check the spelling (ids are matched exactly) or try `/drift`.")
    return _page_blocks(f"Drift about {term}", [], items, query, page, now, empty=empty)


# --- items and pages ------------------------------------------------------------------------


def _rec_item(rec: RecommendationRow, config: AlignbotConfig, now: datetime) -> str:
    zone = rec_zone(config, rec.teams)
    opened = aware(rec.created_at)
    line = (f"{severity_emoji(rec.severity)} *#{rec.id}* · {state_label(rec.state)} · "
            f"{rec.severity} · {money(rec.value_at_risk, config.currency)} at risk · "
            f"{', '.join(rec.teams) or 'no team'} · opened {local_time(opened, zone, now)} "
            f"({_ago(now - opened)})")
    if rec.state == "open" and rec.deadline_at:
        line += f" · decide by {local_time(rec.deadline_at, zone, now)}"
    return line + "\n" + clip(rec.summary, 400)


def _held_item(session: Session, rec: RecommendationRow, config: AlignbotConfig,
               now: datetime) -> str:
    """Who decided what, and what would bring the drift back."""
    from bot.lifecycle import MATERIAL_CHANGE, reraise_after

    zone = rec_zone(config, rec.teams)
    decided = aware(rec.decided_at or rec.updated_at)
    verdicts = {"rejected": ["reject"], "executed": ["approve", "modify"],
                "partially_executed": ["approve", "modify"]}.get(rec.state, [])
    decisions = session.exec(select(DecisionRow).where(
        DecisionRow.recommendation_id == rec.id, DecisionRow.verdict.in_(verdicts))).all()
    who = ", ".join(f"<@{d.user_id}>" for d in decisions) or "nobody (deadline passed)"
    reason = next((d.reason for d in decisions if d.reason), "")
    window = reraise_after(config, rec.state)
    back = [f"value at risk above {money(rec.value_at_risk * (1 + MATERIAL_CHANGE), config.currency)}",
            f"severity above {rec.severity}", "the drift goes away and comes back"]
    if window is not None:
        back.append(f"after {local_time(decided + window, zone, now)}")
    line = (f"{severity_emoji(rec.severity)} *#{rec.id}* · {state_label(rec.state)} by {who} "
            f"{local_time(decided, zone, now)}" + (f" — “{clip(reason, 200)}”" if reason else "")
            + f" · held back since {local_time(aware(rec.held_at), zone, now)}\n"
            + clip(rec.summary, 300) + "\nRaised again if: " + "; ".join(back))
    return line


def _ago(delta: timedelta) -> str:
    return "just now" if delta < timedelta(minutes=1) else f"{duration(delta)} ago"


def _drift_item(drift: DriftRow, config: AlignbotConfig, now: datetime) -> str:
    key = key_text(drift.key)
    return (f"{severity_emoji(drift.severity)} *{kind_label(drift.kind)}* {key} · "
            f"{money(drift.value_at_risk, config.currency)} at risk · seen for "
            f"{duration(now - aware(drift.first_seen))} · no recommendation yet")


def _text_blocks(text: str) -> list[dict]:
    return [SectionBlock(text=MarkdownTextObject(text=clip(text, MAX_SECTION_TEXT))).to_dict()]


def _page_blocks(title: str, head: list[str], items: list[str], query: DriftQuery, page: int,
                 now: datetime, *, empty: str = "Nothing found.") -> list[dict]:
    pages = max(1, -(-len(items) // PAGE_SIZE))
    page = min(page, pages - 1)
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=clip(title, MAX_HEADER_TEXT)))]
    if page == 0:
        blocks += [SectionBlock(text=MarkdownTextObject(text=h)) for h in head]
    if not items:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(empty, MAX_SECTION_TEXT))))
        return [b.to_dict() for b in blocks]
    if head and page == 0:
        blocks.append(DividerBlock())
    shown = items[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
    blocks += [SectionBlock(text=MarkdownTextObject(text=clip(i, MAX_SECTION_TEXT)))
               for i in shown]
    first = page * PAGE_SIZE + 1
    blocks.append(ContextBlock(elements=[MarkdownTextObject(
        text=f"{first}–{first + len(shown) - 1} of {len(items)} · page {page + 1} of {pages}")]))
    if page + 1 < pages:
        value = json.dumps({"q": query.text[:200], "page": page + 1})
        blocks.append(ActionsBlock(block_id="drift_paging", elements=[ButtonElement(
            text=PlainTextObject(text="Next page"), action_id=PAGE_ACTION,
            value=value[:MAX_BUTTON_VALUE])]))
    return [b.to_dict() for b in blocks[:MAX_MESSAGE_BLOCKS]]
