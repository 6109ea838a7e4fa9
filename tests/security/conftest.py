"""One running demo stack (sandboxes + Slack stand-in + bot, SQLite) for the security tests."""

from __future__ import annotations

import pytest
from sqlmodel import func, select

from bot.demo import DemoStack
from store.db import session_scope
from store.tables import AuditEvent, DecisionRow, OutboxRow, RecommendationRow

WAIT = 30.0
CHANNELS = ("C0PLANNING", "C0LOGISTICS")


@pytest.fixture(scope="session")
def stack():
    with DemoStack(fast=True) as demo:
        demo.step()  # a demand spike, delayed shipments and a carrier capacity cut
        demo.slack.wait_for(lambda: open_recommendations(demo), timeout=60,
                            message="the demo posted no recommendation within 60 s")
        yield demo


def open_recommendations(stack, channel: str | None = None, needs: str | None = None):
    """(message, recommendation row) for every open recommendation message, oldest first."""
    found = []
    for ch in ([channel] if channel else CHANNELS):
        for m in stack.slack.messages(ch):
            if not (m.metadata and m.metadata.get("event_type") == "alignbot_recommendation"):
                continue
            with session_scope(stack.runtime.engine) as s:
                rec = s.get(RecommendationRow, int(m.metadata["event_payload"]["id"]))
            if rec is None or rec.state != "open":
                continue
            if needs is not None and needs not in rec.approvals_required:
                continue
            found.append((m, rec))
    return found


def recorded_for(stack, rec_id: int) -> dict:
    """Everything a decision on ``rec_id`` would leave in the store."""
    with session_scope(stack.runtime.engine) as s:
        rec = s.get(RecommendationRow, rec_id)
        return {
            "state": rec.state,
            "decisions": s.exec(select(func.count()).select_from(DecisionRow).where(
                DecisionRow.recommendation_id == rec_id)).one(),
            "audit": s.exec(select(func.count()).select_from(AuditEvent).where(
                AuditEvent.entity == "recommendation",
                AuditEvent.entity_id == str(rec_id))).one(),
            "outbox": s.exec(select(func.count()).select_from(OutboxRow)).one(),
        }
