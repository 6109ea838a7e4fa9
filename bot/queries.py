"""Read-only views of the store for the terminal (``alignbot drift``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import select

from store.db import read_scope
from store.tables import ACTIVE_STATES, DriftRow, RecommendationRow

SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


@dataclass(frozen=True)
class DriftLine:
    kind: str
    severity: str
    key: str
    value_at_risk: float
    recommendation: str
    state: str
    since: str


def open_drift_overview(engine: Engine, limit: int = 50) -> list[DriftLine]:
    """Open drifts, worst first, each with the active recommendation that answers it."""
    with read_scope(engine) as s:
        drifts = s.exec(select(DriftRow).where(DriftRow.is_open)).all()
        recs = s.exec(select(RecommendationRow).where(
            RecommendationRow.state.in_(ACTIVE_STATES))).all()
    answering = {fp: rec for rec in recs for fp in rec.body.get("drift_fingerprints", [])}
    drifts = sorted(drifts, key=lambda d: (SEVERITY_ORDER.get(d.severity, 9), -d.value_at_risk))
    lines = []
    for d in drifts[:limit]:
        rec = answering.get(d.fingerprint)
        lines.append(DriftLine(
            kind=d.kind, severity=d.severity,
            key=" ".join(f"{k}={v}" for k, v in d.key.items()), value_at_risk=d.value_at_risk,
            recommendation=f"#{rec.id}" if rec else "—", state=rec.state if rec else "—",
            since=d.first_seen.strftime("%Y-%m-%d %H:%M UTC")))
    return lines
