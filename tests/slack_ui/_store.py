"""Build realistic store states through the engine itself (detection, decisions, sweeps)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from bot.lifecycle import apply_detection
from canonical.model import Drift, Recommendation
from store.tables import ActionRow, DecisionRow, DriftRow, RecommendationRow
from tests.support.builders import config


def detect(session: Session, drift: Drift, rec: Recommendation, now: datetime,
           cfg=None) -> int:
    """Record one detection without closing anything else (a partial pass)."""
    report = apply_detection(session, [drift], [rec], cfg or config(), now, scope=set())
    return report.created[0]


def rows(session: Session, rec_id: int):
    """The rows ``render_recommendation`` takes, as the integrator would load them."""
    rec = session.get(RecommendationRow, rec_id)
    session.refresh(rec)
    actions = session.exec(select(ActionRow).where(ActionRow.recommendation_id == rec_id)).all()
    decisions = session.exec(select(DecisionRow).where(
        DecisionRow.recommendation_id == rec_id)).all()
    fps = rec.body.get("drift_fingerprints", [])
    drifts = session.exec(select(DriftRow).where(DriftRow.fingerprint.in_(fps))).all()
    return rec, list(actions), list(decisions), list(drifts)


def texts(blocks: list[dict]) -> str:
    """Every piece of text a person sees in the blocks, one per line."""
    out = []
    for b in blocks:
        if b.get("text"):
            out.append(b["text"]["text"])
        for f in b.get("fields") or []:
            out.append(f["text"])
        if b["type"] == "context":
            out += [e["text"] for e in b["elements"]]
    return "\n".join(out)


def assert_within_slack_limits(blocks: list[dict], max_blocks: int = 50) -> None:
    assert len(blocks) <= max_blocks
    for b in blocks:
        if b["type"] == "header":
            assert len(b["text"]["text"]) <= 150
        if b["type"] == "section":
            if b.get("text"):
                assert len(b["text"]["text"]) <= 3000
            assert len(b.get("fields") or []) <= 10
            assert all(len(f["text"]) <= 2000 for f in b.get("fields") or [])
        if b["type"] == "context":
            assert len(b["elements"]) <= 10
        if b["type"] == "actions":
            assert all(len(e.get("value", "")) <= 2000 for e in b["elements"])


# --- every message kind, in every state, through the engine ----------------------------------

BOTH_DECIDE = {"default_team": "planning", "rules": [
    {"name": "both decide", "match": {}, "teams": ["planning", "logistics"],
     "approvals": {"planning": 1, "logistics": 1}, "deadline": "4h"}]}
STATES = ("open", "partly approved", "approved", "executing", "executed", "failed",
          "partially executed", "rejected", "snoozed", "expired", "superseded", "resolved")
_APPROVER = {"planning": "U0PLAN1", "logistics": "U0LOG1"}


def store_scenario(session: Session, drifts: list[Drift], rec: Recommendation, now: datetime,
                   cfg, tag: str = "") -> int:
    """Record a detected recommendation; ``tag`` gives it (and its drifts) fingerprints of its
    own, so one store can hold the same scenario in several states."""
    if tag:
        drifts = [d.model_copy(update={"fingerprint": f"{d.fingerprint}:{tag}"}) for d in drifts]
        rec = rec.model_copy(update={"fingerprint": f"{rec.fingerprint}:{tag}",
                                     "drift_fingerprints": [d.fingerprint for d in drifts]})
    report = apply_detection(session, drifts, [rec], cfg, now, scope=set())
    return report.created[0]


def drive(session: Session, rec_id: int, state: str, now: datetime) -> None:
    """Put a recommendation in ``state`` the way the engine gets it there."""
    from datetime import timedelta

    from bot.decisions import decide
    from store.transitions import transition

    rec = session.get(RecommendationRow, rec_id)
    need = dict(rec.approvals_required or {rec.teams[0]: 1})
    later = now + timedelta(minutes=20)
    if state == "open":
        return
    if state == "partly approved":
        assert len(need) > 1, "partly approved needs two teams to approve"
        team = next(iter(need))
        assert decide(session, rec_id, _APPROVER[team], {team}, "approve", now=later).recorded
        return
    if state == "rejected":
        decide(session, rec_id, "U0PLAN2" if "planning" in rec.teams else "U0LOG2",
               set(rec.teams), "reject", now=later, reason="the customer order was cancelled")
        return
    if state == "snoozed":
        decide(session, rec_id, _APPROVER[rec.teams[0]], {rec.teams[0]}, "snooze", now=later,
               snooze_for=timedelta(hours=4))
        return
    if state in ("expired", "superseded", "resolved"):
        assert transition(session, rec_id, from_states=["open"], to_state=state, actor="system:t",
                          changes={"decided_at": later}, now=later)
        return
    for team in need:
        decide(session, rec_id, _APPROVER[team], {team}, "approve", now=later)
    if state == "approved":
        return
    transition(session, rec_id, from_states=["approved"], to_state="executing", actor="system:t",
               now=later)
    actions = session.exec(select(ActionRow).where(ActionRow.recommendation_id == rec_id)
                           .order_by(ActionRow.position)).all()
    if state == "executing":
        actions[0].status = "done"
    for i, action in enumerate(actions if state != "executing" else []):
        ok = state == "executed" or (state == "partially executed" and i == 0)
        action.status = "done" if ok else "failed"
        action.detail = "" if ok else "TMS refused: lane closed"
    session.add_all(actions)
    if state != "executing":
        final = {"partially executed": "partially_executed"}.get(state, state)
        assert transition(session, rec_id, from_states=["executing"], to_state=final,
                          actor="system:t", now=later)
