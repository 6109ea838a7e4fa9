"""The App Home tab: what waits for the viewer's teams, what is snoozed, what came of the rest.

Rendered fresh on every ``app_home_opened``, so it reads the store and never keeps state.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View
from sqlmodel import Session, select

from bot._format import (
    MAX_SECTION_TEXT,
    MAX_VIEW_BLOCKS,
    SEVERITY_RANK,
    aware,
    clip,
    kind_label,
    local_time,
    money,
    rec_zone,
    severity_emoji,
    state_label,
)
from bot.blocks import approval_tally
from bot.config import AlignbotConfig
from store.tables import DecisionRow, RecommendationRow

RECENT = timedelta(days=7)
OUTCOME_STATES = ("executed", "rejected", "expired", "partially_executed", "failed")
WAITING_STATES = ("open", "approved", "executing")
SECTION_LIMIT = 25  # items per section, so the three sections stay under 100 blocks
_OUTCOME_EMOJI = {"executed": ":white_check_mark:", "rejected": ":x:", "expired": ":hourglass:",
                  "partially_executed": ":warning:", "failed": ":x:"}


def render_home(session: Session, user_id: str, user_teams: set[str], config: AlignbotConfig,
                now: datetime) -> dict:
    """The ``home`` view for one user; publish it with ``views.publish``."""
    now = aware(now)
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text="alignbot — your decisions"))]
    known = [t.name for t in config.teams if t.name in user_teams]
    if not known:
        blocks.append(_section(
            "You are not in any team alignbot routes decisions to, so nothing here is yours to "
            "decide. Ask an admin to add your Slack user id to a team's `members` (or you to its "
            "user group) in alignbot.yml. Meanwhile `/drift` shows all open drift."))
        return _view(blocks)
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=clip(
        "Your teams: " + ", ".join(f"*{t}*" for t in known)
        + f" · updated {local_time(now, config.team(known[0]).zone, now)}", 2000))]))

    mine = [r for r in session.exec(select(RecommendationRow).where(
        RecommendationRow.state.in_([*WAITING_STATES, "snoozed"]))).all()
        if set(r.teams) & user_teams]
    recent = [r for r in session.exec(select(RecommendationRow).where(
        RecommendationRow.state.in_(OUTCOME_STATES),
        RecommendationRow.updated_at >= now - RECENT)).all() if set(r.teams) & user_teams]
    ids = [r.id for r in [*mine, *recent]]
    decisions: dict[int, list[DecisionRow]] = {}
    if ids:
        for d in session.exec(select(DecisionRow).where(DecisionRow.recommendation_id.in_(ids))):
            decisions.setdefault(d.recommendation_id, []).append(d)

    waiting = sorted((r for r in mine if r.state in WAITING_STATES), key=lambda r: (
        r.state != "open", aware(r.deadline_at) if r.deadline_at else now + RECENT,
        -SEVERITY_RANK.get(r.severity, -1)))
    blocks.append(DividerBlock())
    blocks.append(_section(f"*Open decisions* ({len(waiting)})"))
    if waiting:
        blocks += _items([_waiting_line(r, decisions.get(r.id, []), user_id, user_teams, config,
                                        now) for r in waiting], "use `/drift mine` for the rest")
    else:
        blocks.append(_section(":tada: Nothing waits for your teams. New drift is posted to your "
                               "team channel and shows up here."))

    snoozed = sorted((r for r in mine if r.state == "snoozed"),
                     key=lambda r: aware(r.snoozed_until) if r.snoozed_until else now)
    blocks.append(DividerBlock())
    blocks.append(_section(f"*Snoozed* ({len(snoozed)})"))
    if snoozed:
        blocks += _items([_snoozed_line(r, config, now) for r in snoozed],
                         "use `/drift mine` for the rest")
    else:
        blocks.append(_section("_Nothing snoozed._"))

    recent.sort(key=lambda r: aware(r.updated_at), reverse=True)
    blocks.append(DividerBlock())
    blocks.append(_section(f"*Outcomes, last 7 days* ({len(recent)})"))
    if recent:
        blocks += _items([_outcome_line(r, decisions.get(r.id, []), config, now)
                          for r in recent], "older ones are in the team channel threads")
    else:
        blocks.append(_section("_No decisions came to an end in the last 7 days._"))
    return _view(blocks)


def _view(blocks: list[Block]) -> dict:
    if len(blocks) > MAX_VIEW_BLOCKS:  # cannot happen with SECTION_LIMIT, but never fail
        blocks = blocks[: MAX_VIEW_BLOCKS - 1] + [_section("_+ more not shown_")]
    return View(type="home", blocks=blocks).to_dict()


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=clip(text, MAX_SECTION_TEXT)))


def _items(lines: Sequence[str], where_else: str) -> list[Block]:
    shown = [_section(line) for line in lines[:SECTION_LIMIT]]
    if len(lines) > SECTION_LIMIT:
        shown.append(ContextBlock(elements=[MarkdownTextObject(
            text=f"+{len(lines) - SECTION_LIMIT} more — {where_else}")]))
    return shown


def _title(rec: RecommendationRow, config: AlignbotConfig) -> str:
    return (f"{severity_emoji(rec.severity)} *#{rec.id}* {kind_label(rec.kind)} · "
            f"{money(rec.value_at_risk, config.currency)} at risk\n{clip(rec.summary, 300)}")


def _waiting_line(rec: RecommendationRow, decisions: list[DecisionRow], user_id: str,
                  user_teams: set[str], config: AlignbotConfig, now: datetime) -> str:
    zone = rec_zone(config, rec.teams)
    if rec.state != "open":
        return f"{_title(rec, config)}\n_{state_label(rec.state)}_ — approved, running in the systems"
    tally, missing = approval_tally(rec, decisions)
    already = any(user_id in users for users in tally.values())
    can_give = [t for t in missing if t in user_teams]
    waiting_for = ", ".join(f"{n} from {t}" for t, n in missing.items())
    if already:
        status = f"you approved · waiting for {waiting_for}"
    elif rec.requester == user_id and not rec.requester_may_approve:
        status = f"you asked for it, so someone else approves · waiting for {waiting_for}"
    elif can_give or not rec.approvals_required:
        status = "*needs your approval*"
    else:
        status = f"waiting for {waiting_for}"
    deadline = f" · decide by {local_time(rec.deadline_at, zone, now)}" if rec.deadline_at else ""
    return f"{_title(rec, config)}\n{status}{deadline}"


def _snoozed_line(rec: RecommendationRow, config: AlignbotConfig, now: datetime) -> str:
    zone = rec_zone(config, rec.teams)
    until = local_time(rec.snoozed_until, zone, now) if rec.snoozed_until else "later"
    return f"{_title(rec, config)}\n:zzz: back for a decision {until}"


def _outcome_line(rec: RecommendationRow, decisions: list[DecisionRow], config: AlignbotConfig,
                  now: datetime) -> str:
    zone = rec_zone(config, rec.teams)
    deciders = [d for d in decisions if d.verdict in ("approve", "modify", "reject")]
    who = ", ".join(dict.fromkeys(f"<@{d.user_id}>" for d in deciders))
    when = local_time(rec.decided_at or rec.updated_at, zone, now)
    if rec.state == "expired":
        by = f"expired at {when} without a decision"
    elif rec.state == "rejected":
        reason = next((d.reason for d in deciders if d.verdict == "reject" and d.reason), "")
        by = f"rejected by {who or 'someone'} at {when}" + (f": {clip(reason, 200)}"
                                                          if reason else "")
    else:
        by = f"approved by {who or 'someone'} at {when}, {state_label(rec.state)}"
    return f"{_OUTCOME_EMOJI.get(rec.state, '')} {_title(rec, config)}\n{by}"
