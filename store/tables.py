"""The tables: what alignbot saw, what it recommended, who decided, what it did.

Each row type is a SQLModel class (the table and its validation at once). Unique keys carry the
invariants: one active recommendation per fingerprint, one decision per person and verdict, one
outbox row per action.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from store.types import JSONDoc, UTCDateTime, utcnow


def _ts(*, nullable: bool) -> Any:
    """A UTC timestamp column: required ones default to now, optional ones to None."""
    column = Column(UTCDateTime(), nullable=nullable)
    if nullable:
        return Field(default=None, sa_column=column)
    return Field(default_factory=utcnow, sa_column=column)


def _json(**kw: Any) -> Any:
    return Field(default_factory=dict, sa_column=Column(JSONDoc, nullable=False, **kw))


class RecState(StrEnum):
    OPEN = "open"
    SNOOZED = "snoozed"
    APPROVED = "approved"
    EXECUTING = "executing"
    EXECUTED = "executed"
    FAILED = "failed"
    PARTIALLY_EXECUTED = "partially_executed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"
    RESOLVED = "resolved"


# While a recommendation is in one of these, it owns its fingerprint.
ACTIVE_STATES = (RecState.OPEN, RecState.SNOOZED, RecState.APPROVED, RecState.EXECUTING)
_ACTIVE_SQL = "state IN ('open', 'snoozed', 'approved', 'executing')"


class DriftRow(SQLModel, table=True):
    __tablename__ = "drifts"

    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(max_length=64, unique=True)
    kind: str = Field(max_length=32, index=True)
    key: dict = _json()
    cause: dict = _json()
    evidence: dict = _json()
    impact: dict = _json()
    severity: str = Field(max_length=16)
    value_at_risk: float = 0.0
    is_open: bool = Field(default=True, index=True)
    first_seen: datetime = _ts(nullable=False)
    last_seen: datetime = _ts(nullable=False)
    closed_at: datetime | None = _ts(nullable=True)


class RecommendationRow(SQLModel, table=True):
    __tablename__ = "recommendations"
    __table_args__ = (
        Index("uq_recommendation_active_fingerprint", "fingerprint", unique=True,
              sqlite_where=text(_ACTIVE_SQL), postgresql_where=text(_ACTIVE_SQL)),
    )

    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=32)
    state: str = Field(default=RecState.OPEN, max_length=24, index=True)
    version: int = 1  # bumped by every compare-and-set transition
    summary: str
    severity: str = Field(max_length=16)
    value_at_risk: float = 0.0
    body: dict = _json()  # the full Recommendation as detectors produced it
    # sha256 of the detectors' JSON last written to ``body`` (before any Modify): a pass tells
    # an unchanged recommendation by it without parsing every body (tens of KB, thousands a pass)
    detection_digest: str | None = Field(default=None, max_length=64)
    teams: list = Field(default_factory=list, sa_column=Column(JSONDoc, nullable=False))
    approvals_required: dict = _json()  # team -> number of approvers
    requester_may_approve: bool = True
    requester: str | None = None  # Slack user who asked for it (e.g. via /drift), if any
    rule: str | None = None
    deadline_at: datetime | None = _ts(nullable=True)
    snoozed_until: datetime | None = _ts(nullable=True)
    slack_channel: str | None = None
    slack_ts: str | None = None
    slack_version: int = 0  # the version the Slack message shows; behind `version` = edit due
    slack_claim_until: datetime | None = _ts(nullable=True)  # a worker is talking to Slack
    superseded_by: int | None = Field(default=None, foreign_key="recommendations.id")
    escalated_at: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)
    decided_at: datetime | None = _ts(nullable=True)
    # decided, and its drift is still there: detection holds it back (decision memory)
    held_at: datetime | None = _ts(nullable=True)


class ActionRow(SQLModel, table=True):
    __tablename__ = "actions"
    __table_args__ = (UniqueConstraint("recommendation_id", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    recommendation_id: int = Field(foreign_key="recommendations.id", index=True)
    position: int
    system: str = Field(max_length=16)
    connector: str = Field(max_length=64)
    operation: str = Field(max_length=64)
    params: dict = _json()
    # derived from the business change, so two recommendations carrying the same change share it
    idempotency_key: str = Field(max_length=80, index=True)
    status: str = Field(default="pending", max_length=16)  # pending, done, failed, skipped
    detail: str = ""


class DecisionRow(SQLModel, table=True):
    __tablename__ = "decisions"
    __table_args__ = (UniqueConstraint("recommendation_id", "user_id", "verdict"),)

    id: int | None = Field(default=None, primary_key=True)
    recommendation_id: int = Field(foreign_key="recommendations.id", index=True)
    user_id: str = Field(max_length=32)
    team: str | None = None
    verdict: str = Field(max_length=16)  # approve, reject, modify, snooze
    reason: str = ""
    changes: dict = _json()
    created_at: datetime = _ts(nullable=False)


class OutboxRow(SQLModel, table=True):
    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="actions.id", unique=True)
    state: str = Field(default="pending", max_length=16, index=True)  # pending, done, dead
    attempts: int = 0
    available_at: datetime = _ts(nullable=False)
    claimed_by: str | None = None
    lease_until: datetime | None = _ts(nullable=True)
    last_error: str = ""
    created_at: datetime = _ts(nullable=False)


class ExecutionRow(SQLModel, table=True):
    """One attempt to execute one action, whatever came of it."""

    __tablename__ = "executions"

    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="actions.id", index=True)
    attempt: int
    worker: str = ""
    started_at: datetime = _ts(nullable=False)
    finished_at: datetime | None = _ts(nullable=True)
    ok: bool | None = None
    status: str = ""  # done, duplicate, rejected, error
    detail: str = ""
    external_id: str | None = None


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    entity: str = Field(max_length=24)  # recommendation, drift, action, connector
    entity_id: str = Field(max_length=64, index=True)
    actor: str = Field(max_length=64)  # a Slack user id, or system:<job>
    from_state: str | None = None
    to_state: str | None = None
    reason: str = ""
    details: dict = _json()
    at: datetime = _ts(nullable=False)


class ConnectorRun(SQLModel, table=True):
    __tablename__ = "connector_runs"

    id: int | None = Field(default=None, primary_key=True)
    connector: str = Field(max_length=64, index=True)
    started_at: datetime = _ts(nullable=False)
    finished_at: datetime | None = _ts(nullable=True)
    ok: bool | None = None
    records: int = 0
    quarantined: int = 0
    error: str = ""


class ConnectorHealth(SQLModel, table=True):
    """Where each connector stands: its cursor and whether its data can be trusted."""

    __tablename__ = "connector_health"

    connector: str = Field(primary_key=True, max_length=64)
    cursor: str | None = None
    last_success_at: datetime | None = _ts(nullable=True)
    last_attempt_at: datetime | None = _ts(nullable=True)
    consecutive_failures: int = 0
    last_error: str = ""
    stale: bool = False
    stale_notified: bool = False
    written_at: datetime | None = _ts(nullable=True)  # an approved action last changed its system


class QuarantinedRecord(SQLModel, table=True):
    __tablename__ = "quarantined_records"

    id: int | None = Field(default=None, primary_key=True)
    connector: str = Field(max_length=64, index=True)
    run_id: int | None = Field(default=None, foreign_key="connector_runs.id")
    source: str
    position: str
    reason: str
    raw: str = ""
    at: datetime = _ts(nullable=False)


class SlackNote(SQLModel, table=True):
    """A message for Slack that must be posted exactly once (thread notes, escalations, digests).

    The recommendation message itself is synced from its row; everything else goes here, with
    a dedupe key so a retried job never posts the same note twice.
    """

    __tablename__ = "slack_notes"

    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(max_length=120, unique=True)
    recommendation_id: int | None = Field(default=None, foreign_key="recommendations.id",
                                          index=True)
    channel: str | None = None  # None: the channel of the recommendation's message
    in_thread: bool = True
    text: str
    blocks: list = Field(default_factory=list, sa_column=Column(JSONDoc, nullable=False))
    state: str = Field(default="pending", max_length=16, index=True)  # pending, posted, dead
    attempts: int = 0
    claim_until: datetime | None = _ts(nullable=True)
    ts: str | None = None
    created_at: datetime = _ts(nullable=False)
    posted_at: datetime | None = _ts(nullable=True)


class SlackInboxRow(SQLModel, table=True):
    """A verified Slack request, stored by the ingress before Slack gets its ack.

    Slack never resends a request it got a 200 for; the row is what survives the process. The
    key is a digest of the raw body: a retried delivery resends the same body and is stored once.
    Workers claim pending rows, the highest ``priority`` first, until ``claim_until``.
    """

    __tablename__ = "slack_inbox"

    id: int | None = Field(default=None, primary_key=True)
    delivery_key: str = Field(max_length=64, unique=True)
    content_type: str = Field(max_length=80)
    body: str
    priority: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    state: str = Field(default="pending", max_length=16, index=True)  # pending, done, failed
    attempts: int = 0  # claims so far
    claim_until: datetime = _ts(nullable=False)  # until then the worker that claimed it owns it
    error: str | None = None
    received_at: datetime = _ts(nullable=False)
    done_at: datetime | None = _ts(nullable=True)


__all__ = [
    "ACTIVE_STATES", "ActionRow", "AuditEvent", "ConnectorHealth", "ConnectorRun", "DecisionRow",
    "DriftRow", "ExecutionRow", "OutboxRow", "QuarantinedRecord", "RecState",
    "RecommendationRow", "SlackInboxRow", "SlackNote", "utcnow",
]
