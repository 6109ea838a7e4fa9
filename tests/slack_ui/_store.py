"""Build realistic store states through the engine itself (detection, decisions, sweeps)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from bot.lifecycle import apply_detection
from detectors.model import Drift, Recommendation
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
