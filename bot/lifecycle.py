"""Detections in, recommendation lifecycle out: upsert, supersede, resolve, hold back.

The invariants live here: one active recommendation per fingerprint (re-detection edits it),
a material change supersedes it, a drift that went away resolves it, and a decided drift stays
decided (decision memory: it is raised again only when it gets materially worse, comes back
after going away, or its ``reraise_after`` time has passed). Every state change is a
compare-and-set with an audit row, so two replicas running this at once cannot both win.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, update
from sqlalchemy.orm import defer
from sqlmodel import Session, select

from bot.config import AlignbotConfig
from bot.notes import add_note
from bot.routing import route
from canonical.model import Action, Drift, Recommendation, action_key
from store.tables import (
    ACTIVE_STATES,
    ActionRow,
    AuditEvent,
    DecisionRow,
    DriftRow,
    RecommendationRow,
    RecState,
)
from store.transitions import transition

DETECTOR = "system:detector"
MATERIAL_CHANGE = 0.25  # relative change in value or quantity that makes a new recommendation
# Decided states whose drift is held back, by the ``lifecycle.reraise_after`` entry that applies.
DECISIONS = {RecState.REJECTED: "rejected", RecState.EXPIRED: "expired",
             RecState.EXECUTED: "executed", RecState.PARTIALLY_EXECUTED: "executed"}
_SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


@dataclass
class LifecycleReport:
    created: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    superseded: list[tuple[int, int]] = field(default_factory=list)  # (old, new)
    resolved: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)  # decided recommendations whose drift stays decided


def apply_detection(
    session: Session,
    drifts: Iterable[Drift],
    recommendations: Iterable[Recommendation],
    config: AlignbotConfig,
    now: datetime,
    *,
    scope: set[str] | None = None,
) -> LifecycleReport:
    """Bring the store in line with one detection pass.

    ``scope`` limits which previously open drifts may be closed: None for a full pass, the
    fingerprints a pushed event could affect for a partial one.
    """
    seen = upsert_drifts(session, list(drifts), now)
    return apply_recommendations(session, seen, recommendations, config, now, scope=scope)


def apply_recommendations(session: Session, seen: set[str],
                          recommendations: Iterable[Recommendation], config: AlignbotConfig,
                          now: datetime, *, scope: set[str] | None = None) -> LifecycleReport:
    """The second half of a pass, once its drifts (fingerprints ``seen``) are upserted."""
    report = LifecycleReport()
    _close_missing_drifts(session, seen, scope, now)
    recs = list(recommendations)
    active = _active_by_fingerprint(session, [r.fingerprint for r in recs])
    decided = _decided_by_fingerprint(session, [r.fingerprint for r in recs
                                                if r.fingerprint not in active])
    first_seen = _first_seen(session, [fp for r in recs if r.fingerprint in decided
                                       for fp in r.drift_fingerprints])
    for rec in recs:
        row = active.get(rec.fingerprint)
        if row is None:
            if is_empty(rec):
                continue  # nothing to decide: never posted
            memory = decided.get(rec.fingerprint)
            if memory is not None and stays_decided(memory, rec, first_seen, config, now):
                report.held.append(memory.id)
                continue
        _upsert_recommendation(session, rec, row, config, now, report)
    _mark_held(session, report.held, now)
    _resolve_gone(session, {r.fingerprint for r in recs}, now, report)
    return report


def is_empty(rec: Recommendation) -> bool:
    """A recommendation with no action, no units and no value asks nobody for anything."""
    impact = rec.impact_if_ignored
    return not rec.actions and not impact.units_short and not impact.units_excess \
        and not impact.value_at_risk


def reraise_after(config: AlignbotConfig, state: str) -> timedelta | None:
    """How long a decision in ``state`` holds while its drift does not change materially."""
    return getattr(config.lifecycle.reraise_after, DECISIONS[RecState(state)])


def stays_decided(memory: RecommendationRow, rec: Recommendation, first_seen: dict[str, datetime],
                  config: AlignbotConfig, now: datetime) -> bool:
    """Whether ``rec`` is the drift ``memory`` decided, not worse, within its re-raise time.

    The same drift: one of its drifts has been open since before the decision (a drift that
    went away and came back is a new episode and is raised again).
    """
    decided_at = memory.decided_at or memory.updated_at
    window = reraise_after(config, memory.state)
    if window is not None and now >= decided_at + window:
        return False
    if is_material_worsening(Situation.stored(memory), Situation.of(rec)):
        return False
    return any(fp in first_seen and first_seen[fp] <= decided_at for fp in rec.drift_fingerprints)


def _decided_by_fingerprint(session: Session,
                            fingerprints: list[str]) -> dict[str, RecommendationRow]:
    """The latest recommendation of each fingerprint, where that one was decided."""
    latest: dict[str, RecommendationRow] = {}
    for chunk in _in_lists(fingerprints):
        for row in session.exec(select(RecommendationRow).options(defer(RecommendationRow.body))
                                .where(RecommendationRow.fingerprint.in_(chunk))
                                .order_by(RecommendationRow.id)):
            latest[row.fingerprint] = row
    return {fp: row for fp, row in latest.items() if row.state in DECISIONS}


def _first_seen(session: Session, fingerprints: list[str]) -> dict[str, datetime]:
    """When each open drift's current episode began."""
    found: dict[str, datetime] = {}
    for chunk in _in_lists(list(set(fingerprints))):
        found.update(session.exec(select(DriftRow.fingerprint, DriftRow.first_seen).where(
            DriftRow.fingerprint.in_(chunk), DriftRow.is_open)).all())
    return found


def _mark_held(session: Session, held: list[int], now: datetime) -> None:
    """``held_at``: since when a decided recommendation's drift is held back (for ``/drift``)."""
    was = set(session.exec(select(RecommendationRow.id).where(
        RecommendationRow.held_at.is_not(None))).all())
    for chunk in _in_lists(sorted(set(held) - was)):
        session.exec(update(RecommendationRow).where(RecommendationRow.id.in_(chunk))
                     .values(held_at=now))
    for chunk in _in_lists(sorted(was - set(held))):
        session.exec(update(RecommendationRow).where(RecommendationRow.id.in_(chunk))
                     .values(held_at=None))


def open_fingerprints(session: Session) -> frozenset[str]:
    """Fingerprints of open drifts; detectors use them for hysteresis."""
    return frozenset(session.exec(select(DriftRow.fingerprint).where(DriftRow.is_open)).all())


def upsert_drifts(session: Session, drifts: list[Drift], now: datetime) -> set[str]:
    """Insert or refresh drifts by fingerprint; returns the fingerprints seen."""
    by_fp = {d.fingerprint: d for d in drifts}
    existing = {
        row.fingerprint: row
        for row in session.exec(select(DriftRow).where(DriftRow.fingerprint.in_(list(by_fp))))
    } if by_fp else {}
    for fp, drift in by_fp.items():
        row = existing.get(fp) or DriftRow(fingerprint=fp, kind=str(drift.kind), first_seen=now,
                                           severity=str(drift.severity))
        if row.id is not None and not row.is_open:
            row.first_seen = now  # a drift that comes back is a new episode
        row.key, row.cause = drift.key, drift.cause
        row.evidence = drift.model_dump(mode="json")["evidence"]
        row.impact = drift.impact.model_dump(mode="json")
        row.severity = str(drift.severity)
        row.value_at_risk = drift.impact.value_at_risk
        row.is_open, row.closed_at, row.last_seen = True, None, now
        session.add(row)
    session.flush()
    return set(by_fp)


def _in_lists(values: list) -> Iterator[list]:
    """``values`` in chunks of at most 500, to keep SQL IN lists a sane size."""
    for start in range(0, len(values), 500):
        yield values[start:start + 500]


def _close_missing_drifts(session: Session, seen: set[str], scope: set[str] | None,
                          now: datetime) -> None:
    # Ids and fingerprints only, and one UPDATE per chunk: loading every open drift's evidence
    # as objects took seconds at a storm's size, all of it inside the write transaction.
    query = select(DriftRow.id, DriftRow.fingerprint).where(DriftRow.is_open)
    if scope is not None:
        query = query.where(DriftRow.fingerprint.in_(list(scope)))
    gone = [row_id for row_id, fingerprint in session.exec(query) if fingerprint not in seen]
    for chunk in _in_lists(gone):
        session.exec(update(DriftRow).where(DriftRow.id.in_(chunk))
                     .values(is_open=False, closed_at=now))


def _active_by_fingerprint(session: Session,
                           fingerprints: list[str]) -> dict[str, RecommendationRow]:
    rows: dict[str, RecommendationRow] = {}
    for chunk in _in_lists(fingerprints):
        for row in session.exec(select(RecommendationRow).options(
                defer(RecommendationRow.body)).where(  # loaded only if the digest is missing
                RecommendationRow.fingerprint.in_(chunk),
                RecommendationRow.state.in_(ACTIVE_STATES))):
            rows[row.fingerprint] = row
    return rows


def _upsert_recommendation(session: Session, rec: Recommendation,
                           row: RecommendationRow | None, config: AlignbotConfig,
                           now: datetime, report: LifecycleReport) -> None:
    if row is None:
        report.created.append(create_recommendation(session, rec, config, now).id)
        return
    if row.state not in (RecState.OPEN, RecState.SNOOZED):
        return  # decided: execution owns it now
    if is_empty(rec):
        _resolve(session, row, "nothing is left to do: no units or value at risk", now, report)
        return
    before, after = Situation.stored(row), Situation.of(rec)
    if is_material_change(before, after):
        _supersede(session, row, rec, describe_change(before, after), config, now, report)
        return
    body = rec.model_dump(mode="json")
    digest = detection_digest(body)
    if digest == row.detection_digest:
        return  # what the detectors say has not changed (a Modify, if any, stands)
    if row.detection_digest is None and body == row.body:  # stored before digests existed
        row.detection_digest = digest
        session.add(row)
        return
    if modifier := _approved_with_modifications(session, row.id):
        # Editing in place would put the detectors' actions over that person's edit while their
        # approval still counts: everyone decides again on the new figures instead.
        _supersede(session, row, rec, f"the figures changed after <@{modifier}> approved it "
                   "with modifications", config, now, report)
        return
    row.body, row.summary, row.detection_digest = body, rec.summary, digest
    row.severity, row.value_at_risk = str(rec.severity), rec.impact_if_ignored.value_at_risk
    row.version += 1  # the message shows the latest numbers
    row.updated_at = now
    session.add(row)
    _replace_actions(session, row, rec.actions, config)
    report.updated.append(row.id)


def _supersede(session: Session, row: RecommendationRow, rec: Recommendation, reason: str,
               config: AlignbotConfig, now: datetime, report: LifecycleReport) -> None:
    if not transition(session, row.id, from_states=[row.state], to_state=RecState.SUPERSEDED,
                      actor=DETECTOR, reason=reason, expected_version=row.version):
        return  # someone decided meanwhile; their decision stands
    session.flush()
    new = create_recommendation(session, rec, config, now)
    row.superseded_by = new.id
    session.add(row)
    add_note(session, row.id, f"superseded:{row.id}",
             f":arrows_counterclockwise: Superseded — {reason}. "
             f"A new recommendation (#{new.id}) replaces this one.")
    report.superseded.append((row.id, new.id))


def _approved_with_modifications(session: Session, recommendation_id: int) -> str | None:
    """Who approved this recommendation with edits of their own, if anyone did."""
    for user_id, changes in session.exec(select(DecisionRow.user_id, DecisionRow.changes).where(
            DecisionRow.recommendation_id == recommendation_id,
            DecisionRow.verdict.in_(["approve", "modify"]))):
        if changes:
            return user_id
    return None


def create_recommendation(session: Session, rec: Recommendation, config: AlignbotConfig,
                          now: datetime) -> RecommendationRow:
    owner = route(rec, config)
    row = RecommendationRow(
        fingerprint=rec.fingerprint, kind=str(rec.kind), summary=rec.summary,
        severity=str(rec.severity), value_at_risk=rec.impact_if_ignored.value_at_risk,
        body=(body := rec.model_dump(mode="json")), detection_digest=detection_digest(body),
        teams=list(owner.teams),
        approvals_required=owner.approvals, requester_may_approve=owner.requester_may_approve,
        rule=owner.rule, deadline_at=now + owner.deadline,
        slack_channel=config.team(owner.teams[0]).channel, created_at=now, updated_at=now,
    )
    session.add(row)
    session.flush()
    _replace_actions(session, row, rec.actions, config)
    session.add(AuditEvent(entity="recommendation", entity_id=str(row.id), actor=DETECTOR,
                           from_state=None, to_state=RecState.OPEN, at=now,
                           reason=f"routed to {', '.join(owner.teams)} by {owner.rule}"))
    return row


def executing_connector(config: AlignbotConfig, action: Action) -> str:
    """The connector that carries out an action: named on it, else the first of its system."""
    if action.connector:
        return action.connector
    for conn in config.connectors:
        if conn.system == action.system and conn.executes:
            return conn.name
    return ""


def _replace_actions(session: Session, row: RecommendationRow, actions: list[Action],
                     config: AlignbotConfig) -> None:
    # Bulk statements, not one object per action: a storm's recommendation carries thousands.
    session.exec(delete(ActionRow).where(ActionRow.recommendation_id == row.id))
    if actions:
        session.exec(insert(ActionRow), params=[{
            "recommendation_id": row.id, "position": position, "system": action.system,
            "connector": executing_connector(config, action), "operation": action.operation,
            "params": action.params, "idempotency_key": action_key(action),
            "status": "pending", "detail": "",
        } for position, action in enumerate(actions)])


def _resolve_gone(session: Session, current: set[str], now: datetime,
                  report: LifecycleReport) -> None:
    """Undecided recommendations whose drifts have all closed are resolved."""
    undecided = session.exec(
        select(RecommendationRow.id, RecommendationRow.fingerprint).where(
            RecommendationRow.state.in_([RecState.OPEN, RecState.SNOOZED]))).all()
    # Bodies only for those this pass did not detect again: usually none or a few.
    ids = [row_id for row_id, fingerprint in undecided if fingerprint not in current]
    if not ids:
        return
    candidates = [row for chunk in _in_lists(ids) for row in session.exec(
        select(RecommendationRow).where(RecommendationRow.id.in_(chunk)))]
    open_drifts = set(open_fingerprints(session))
    for row in candidates:
        if open_drifts.intersection(row.body.get("drift_fingerprints", [])):
            continue
        _resolve(session, row, "the drift went away before a decision", now, report)


def _resolve(session: Session, row: RecommendationRow, reason: str, now: datetime,
             report: LifecycleReport) -> None:
    if transition(session, row.id, from_states=[row.state], to_state=RecState.RESOLVED,
                  actor=DETECTOR, reason=reason, expected_version=row.version,
                  changes={"decided_at": now}, now=now):
        add_note(session, row.id, f"resolved:{row.id}",
                 ":white_check_mark: Resolved on its own — plan and execution agree again; "
                 "nothing to decide.")
        report.resolved.append(row.id)


@dataclass(frozen=True)
class Situation:
    """What people judge a recommendation by: its severity and the value at risk if ignored."""

    severity: str
    value_at_risk: float

    @classmethod
    def of(cls, rec: Recommendation) -> Situation:
        return cls(str(rec.severity), rec.impact_if_ignored.value_at_risk)

    @classmethod
    def stored(cls, row: RecommendationRow) -> Situation:
        """From the row's columns, without parsing its body."""
        return cls(row.severity, row.value_at_risk)


def is_material_change(before: Situation, after: Situation) -> bool:
    """A change people must look at again: another severity, or value at risk moved a lot.

    A different choice of source or carrier for the same problem is not material: the message
    is edited in place instead, so people are not asked to re-decide on every poll.
    """
    if before.severity != after.severity:
        return True
    return _relative(before.value_at_risk, after.value_at_risk) > MATERIAL_CHANGE


def is_material_worsening(before: Situation, after: Situation) -> bool:
    """A decided drift comes back only if it got materially worse: a higher severity, or value
    at risk up by more than ``MATERIAL_CHANGE``. Getting better needs no new decision."""
    if _SEVERITY_RANK.get(after.severity, 0) > _SEVERITY_RANK.get(before.severity, 0):
        return True
    return after.value_at_risk > before.value_at_risk \
        and _relative(before.value_at_risk, after.value_at_risk) > MATERIAL_CHANGE


def describe_change(before: Situation, after: Situation) -> str:
    if before.severity != after.severity:
        return f"severity went from {before.severity} to {after.severity}"
    if _relative(before.value_at_risk, after.value_at_risk) > MATERIAL_CHANGE:
        return f"value at risk went from {before.value_at_risk:,.0f} to {after.value_at_risk:,.0f}"
    return "the situation changed"


def detection_digest(body: dict) -> str:
    """sha256 of what people decide on: the actions, the drifts, the severity and the figures to
    two significant digits. Figures that move a little as the clock moves (a stock-out a few
    hours nearer) do not edit the message on every pass; a new action or quantity does."""
    def rough(value: object) -> object:
        return float(f"{value:.2g}") if isinstance(value, int | float) and not isinstance(value, bool) else value

    decided = {
        "actions": [[a.get("system"), a.get("operation"), a.get("params")] for a in body.get("actions") or []],
        "drifts": body.get("drift_fingerprints"), "severity": body.get("severity"), "cost": rough(body.get("cost", 0)),
        "figures": {side: {k: rough(v) for k, v in (body.get(side) or {}).items()}
                    for side in ("impact_if_ignored", "impact_if_approved")},
    }
    canonical = json.dumps(decided, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _relative(a: float, b: float) -> float:
    return abs(b - a) / max(abs(a), 1.0)


