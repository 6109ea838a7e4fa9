"""Time-driven transitions: snoozes that end, and decisions that did not come in time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, select

from bot.config import AlignbotConfig
from bot.notes import add_note
from store.tables import RecommendationRow, RecState
from store.transitions import transition

SWEEPER = "system:sweep"


@dataclass
class SweepReport:
    reopened: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)


def sweep(session: Session, config: AlignbotConfig, now: datetime) -> SweepReport:
    report = SweepReport()
    woken = session.exec(select(RecommendationRow).where(
        RecommendationRow.state == RecState.SNOOZED, RecommendationRow.snoozed_until <= now)).all()
    for rec in woken:
        if transition(session, rec.id, from_states=[RecState.SNOOZED], to_state=RecState.OPEN,
                      actor=SWEEPER, reason="snooze ended", expected_version=rec.version,
                      changes={"snoozed_until": None}, now=now):
            add_note(session, rec.id, f"woke:{rec.id}:{rec.version}",
                     ":alarm_clock: Snooze ended — this needs a decision again.")
            report.reopened.append(rec.id)

    overdue = session.exec(select(RecommendationRow).where(
        RecommendationRow.state == RecState.OPEN, RecommendationRow.deadline_at <= now)).all()
    for rec in overdue:
        if transition(session, rec.id, from_states=[RecState.OPEN], to_state=RecState.EXPIRED,
                      actor=SWEEPER, reason="no decision before the deadline",
                      expected_version=rec.version,
                      changes={"escalated_at": now, "decided_at": now}, now=now):
            targets = [_mention(config.team(t).escalation) for t in rec.teams
                       if t in {team.name for team in config.teams}
                       and config.team(t).escalation]
            who = " ".join(targets) or "the owning team"
            add_note(session, rec.id, f"expired:{rec.id}",
                     f":rotating_light: Expired without a decision — escalating to {who}. "
                     "Nothing was changed in either system.")
            report.expired.append(rec.id)
    return report


def _mention(target: str | None) -> str:
    if not target:
        return ""
    if target.startswith("S"):
        return f"<!subteam^{target}>"
    if target.startswith(("U", "W")):
        return f"<@{target}>"
    return target
