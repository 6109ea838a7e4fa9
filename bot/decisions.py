"""A click becomes a decision: authorize, record once, and on the final approval fill the outbox.

Everything for one decision happens in one transaction that first locks the recommendation row
(PostgreSQL ``FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE`` already serializes writers), so two
approvers arriving together are counted one after the other, and a double click or a Slack
retry finds its decision already there.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.modal_input import EDITABLE_PARAMS, coerce
from bot.tracing import traced
from canonical.model import Action, action_key
from store.tables import ActionRow, DecisionRow, OutboxRow, RecommendationRow, RecState
from store.transitions import transition

Verdict = Literal["approve", "reject", "modify", "snooze"]
DECIDABLE = (RecState.OPEN, RecState.SNOOZED)


@dataclass
class DecisionResult:
    recorded: bool
    state: str
    message: str  # what the person who clicked is told
    approvals: dict[str, list[str]] = field(default_factory=dict)  # team -> approvers so far
    missing: dict[str, int] = field(default_factory=dict)  # team -> approvals still needed


class DecisionError(ValueError):
    """The decision cannot be taken as asked (bad modification values, missing reason)."""


def approvals_so_far(session: Session, rec: RecommendationRow) -> dict[str, list[str]]:
    rows = session.exec(select(DecisionRow).where(
        DecisionRow.recommendation_id == rec.id,
        DecisionRow.verdict.in_(["approve", "modify"]))).all()
    tally: dict[str, list[str]] = {team: [] for team in rec.approvals_required}
    for row in rows:
        if row.team in tally and row.user_id not in tally[row.team]:
            tally[row.team].append(row.user_id)
    return tally


def missing_approvals(rec: RecommendationRow, tally: dict[str, list[str]]) -> dict[str, int]:
    return {team: need - len(tally.get(team, [])) for team, need in rec.approvals_required.items()
            if need > len(tally.get(team, []))}


@traced("decision", "recommendation_id", "verdict")
def decide(
    session: Session,
    recommendation_id: int,
    user_id: str,
    user_teams: set[str],
    verdict: Verdict,
    *,
    now: datetime,
    reason: str = "",
    changes: dict[str, Any] | None = None,
    snooze_for: timedelta | None = None,
) -> DecisionResult:
    """Record one person's decision; the caller commits the session."""
    rec = session.exec(select(RecommendationRow).where(RecommendationRow.id == recommendation_id)
                       .with_for_update()).first()
    if rec is None:
        return DecisionResult(False, "unknown", f"Recommendation #{recommendation_id} not found.")
    owning = [t for t in rec.teams if t in user_teams]
    if not owning:
        return DecisionResult(False, rec.state, "Only members of "
                              + " or ".join(rec.teams) + " can decide on this recommendation.")
    if rec.state not in DECIDABLE:
        return DecisionResult(False, rec.state, f"Already {rec.state.replace('_', ' ')}; "
                              "nothing was changed.")
    if verdict in ("approve", "modify") and not rec.requester_may_approve \
            and rec.requester == user_id:
        return DecisionResult(False, rec.state, "You requested this change, so the routing rule "
                              "needs someone else to approve it.")
    if verdict == "reject" and not reason.strip():
        raise DecisionError("a rejection needs a reason")
    if verdict == "snooze" and (snooze_for is None or snooze_for <= timedelta(0)):
        raise DecisionError("a snooze needs a positive duration")

    if verdict in ("approve", "modify"):
        return _approve(session, rec, user_id, owning, now, verdict, changes or {})

    decision = DecisionRow(recommendation_id=rec.id, user_id=user_id, team=owning[0],
                           verdict=verdict, reason=reason.strip(), created_at=now,
                           changes={"snooze_seconds": snooze_for.total_seconds()}
                           if snooze_for else {})
    if not _insert_once(session, decision):
        return DecisionResult(False, rec.state, "Your decision was already recorded.")
    if verdict == "reject":
        moved = transition(session, rec.id, from_states=DECIDABLE, to_state=RecState.REJECTED,
                           actor=user_id, reason=reason.strip(), changes={"decided_at": now},
                           now=now)
        return DecisionResult(moved, RecState.REJECTED if moved else rec.state,
                              "Rejected. The reason is in the thread." if moved else
                              "Someone decided first; your rejection was not applied.")
    until = now + snooze_for
    moved = transition(session, rec.id, from_states=[RecState.OPEN], to_state=RecState.SNOOZED,
                       actor=user_id, reason=f"snoozed until {until.isoformat()}",
                       changes={"snoozed_until": until}, now=now)
    return DecisionResult(moved, RecState.SNOOZED if moved else rec.state,
                          "Snoozed." if moved else "It is already snoozed.")


def _approve(session: Session, rec: RecommendationRow, user_id: str, owning: list[str],
             now: datetime, verdict: Verdict, changes: dict[str, Any]) -> DecisionResult:
    tally = approvals_so_far(session, rec)
    if any(user_id in users for users in tally.values()):
        return DecisionResult(False, rec.state, "You have already approved this.", tally,
                              missing_approvals(rec, tally))
    # count the approver for the first of their teams that still needs someone
    missing = missing_approvals(rec, tally)
    team = next((t for t in owning if t in missing), owning[0])
    if changes:
        apply_modifications(session, rec, changes)
    decision = DecisionRow(recommendation_id=rec.id, user_id=user_id, team=team,
                           verdict=verdict, changes=changes, created_at=now)
    if not _insert_once(session, decision):
        return DecisionResult(False, rec.state, "Your approval was already recorded.", tally,
                              missing)
    tally.setdefault(team, []).append(user_id)
    missing = missing_approvals(rec, tally)
    if missing:
        transition(session, rec.id, from_states=[rec.state], to_state=rec.state, actor=user_id,
                   reason=f"approved for {team}; still needed: "
                   + ", ".join(f"{n} from {t}" for t, n in missing.items()), now=now)
        return DecisionResult(True, rec.state, "Approval recorded; waiting for "
                              + ", ".join(f"{n} more from {t}" for t, n in missing.items()) + ".",
                              tally, missing)
    moved = transition(session, rec.id, from_states=DECIDABLE, to_state=RecState.APPROVED,
                       actor=user_id, reason="all approvals in", changes={"decided_at": now},
                       now=now)
    if moved:
        enqueue_actions(session, rec.id, now)
    return DecisionResult(moved, RecState.APPROVED if moved else rec.state,
                          "Approved — executing now." if moved else
                          "Someone decided first; your approval was not applied.", tally, {})


def enqueue_actions(session: Session, recommendation_id: int, now: datetime) -> int:
    """Write every action of an approved recommendation to the outbox (same transaction)."""
    actions = session.exec(select(ActionRow).where(
        ActionRow.recommendation_id == recommendation_id)).all()
    for action in actions:
        session.add(OutboxRow(action_id=action.id, available_at=now, created_at=now))
    session.flush()
    return len(actions)


def apply_modifications(session: Session, rec: RecommendationRow,
                        changes: dict[str, Any]) -> None:
    """Apply ``{"<position>.<param>": value}`` edits from the Modify modal, validated."""
    actions = {a.position: a for a in session.exec(
        select(ActionRow).where(ActionRow.recommendation_id == rec.id))}
    edited: dict[int, dict[str, Any]] = {}
    for dotted, raw in changes.items():
        position_text, _, param = dotted.partition(".")
        if not position_text.isdigit() or int(position_text) not in actions:
            raise DecisionError(f"no action {position_text!r} to modify")
        action = actions[int(position_text)]
        if param not in action.params or param not in EDITABLE_PARAMS:
            raise DecisionError(f"{param!r} cannot be modified on {action.operation}")
        edited.setdefault(action.position, dict(action.params))[param] = _coerce(param, raw)
    body_actions = copy.deepcopy(rec.body.get("actions", []))  # JSON columns compare by value
    for position, params in edited.items():
        action = actions[position]
        action.params = params
        action.idempotency_key = action_key(Action(
            system=action.system, operation=action.operation, params=params))
        session.add(action)
        if position < len(body_actions):
            body_actions[position] = {**body_actions[position], "params": params}
    rec.body = {**rec.body, "actions": body_actions}
    session.add(rec)
    session.flush()


def _coerce(param: str, raw: Any) -> Any:
    try:
        return coerce(param, raw)
    except ValueError as exc:
        raise DecisionError(str(exc)) from None


def _insert_once(session: Session, decision: DecisionRow) -> bool:
    try:
        with session.begin_nested():
            session.add(decision)
    except IntegrityError:
        return False
    return True
