"""Drain the outbox: execute each approved action exactly once, and say how it went.

Claim (SKIP LOCKED on PostgreSQL; an atomic conditional UPDATE with a lease on SQLite) → record
the attempt → call the connector with the action's idempotency key → record the result. A
crash anywhere leaves the row claimed with an expired lease; the next drain retries it with the
same key, and the receiving system de-duplicates — so a change takes effect once.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.blocks import numbered, system_label
from bot.notes import add_note
from canonical.model import Action
from connectors.base import Connector, ExecuteResult
from store.db import session_scope
from store.tables import (
    ActionRow,
    ConnectorHealth,
    ExecutionRow,
    OutboxRow,
    RecommendationRow,
    RecState,
)
from store.transitions import transition
from store.types import utcnow

log = logging.getLogger(__name__)

# Given a recommendation about to execute, None if its drift still holds, else why not.
Revalidator = Callable[[RecommendationRow], str | None]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base: timedelta = timedelta(seconds=2)
    cap: timedelta = timedelta(minutes=5)

    def delay(self, attempt: int) -> timedelta:
        """Exponential backoff with full jitter, capped."""
        ceiling = min(self.cap.total_seconds(), self.base.total_seconds() * 2 ** (attempt - 1))
        return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


class Executor:
    def __init__(self, engine: Engine, connectors: Mapping[str, Connector], *,
                 worker: str = "executor", revalidate: Revalidator | None = None,
                 retry: RetryPolicy = RetryPolicy(), lease: timedelta = timedelta(seconds=60),
                 clock: Callable[[], datetime] = utcnow):
        self.engine = engine
        self.connectors = connectors
        self.worker = worker
        self.revalidate = revalidate
        self.retry = retry
        self.lease = lease
        self.clock = clock
        # Called between rows: the runtime makes it wait while the Slack door answers a burst.
        self.checkpoint: Callable[[], None] = lambda: None

    def drain(self, limit: int = 20) -> int:
        """Process up to ``limit`` due outbox rows; returns how many were processed."""
        done = 0
        for outbox_id in self.claim(limit):
            self.checkpoint()
            try:
                self.process(outbox_id)
            except Exception:  # one bad row must not stop the others; lease expiry retries it
                log.exception("outbox row %s failed unexpectedly", outbox_id)
            done += 1
        return done

    def claim(self, limit: int) -> list[int]:
        now = self.clock()
        with session_scope(self.engine) as s:
            due = (select(OutboxRow.id)
                   .where(OutboxRow.state == "pending", OutboxRow.available_at <= now,
                          (OutboxRow.lease_until.is_(None)) | (OutboxRow.lease_until < now))
                   .order_by(OutboxRow.id).limit(limit)
                   .with_for_update(skip_locked=True))
            ids = list(s.exec(due).all())
            if not ids:
                return []
            claimed = s.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(ids), OutboxRow.state == "pending",
                       (OutboxRow.lease_until.is_(None)) | (OutboxRow.lease_until < now))
                .values(claimed_by=self.worker, lease_until=now + self.lease)
                .returning(OutboxRow.id)).scalars().all()
        return sorted(claimed)

    def process(self, outbox_id: int) -> None:
        stale_reason = self._revalidate_if_first(outbox_id)
        with session_scope(self.engine) as s:
            box = s.get(OutboxRow, outbox_id)
            action = s.get(ActionRow, box.action_id)
            rec = s.get(RecommendationRow, action.recommendation_id)
            if not self._ready(s, rec, box, action, stale_reason):
                return
            attempt = box.attempts + 1
            box.attempts = attempt
            s.add(box)
            execution = ExecutionRow(action_id=action.id, attempt=attempt, worker=self.worker,
                                     started_at=self.clock())
            s.add(execution)
            s.flush()
            execution_id = execution.id
            call = Action(system=action.system, connector=action.connector,
                          operation=action.operation, params=action.params,
                          idempotency_key=action.idempotency_key)
        # The attempt is on record before the call: a crash from here on is visible and the
        # retry reuses the idempotency key.
        result = self._call(call)
        self._record(outbox_id, execution_id, result)

    def _revalidate_if_first(self, outbox_id: int) -> str | None:
        """Re-check the drift before the first action of a recommendation runs.

        Runs outside any transaction: detection takes a while and must not hold a lock.
        """
        if self.revalidate is None:
            return None
        with session_scope(self.engine) as s:
            box = s.get(OutboxRow, outbox_id)
            rec = s.get(RecommendationRow, s.get(ActionRow, box.action_id).recommendation_id)
        return self.revalidate(rec) if rec.state == RecState.APPROVED else None

    def _ready(self, s: Session, rec: RecommendationRow, box: OutboxRow,
               action: ActionRow, stale_reason: str | None) -> bool:
        """Move the recommendation to executing (once); False to skip this row."""
        if rec.state == RecState.APPROVED:
            if stale_reason:
                self._supersede_stale(s, rec, stale_reason)
                return False
            transition(s, rec.id, from_states=[RecState.APPROVED], to_state=RecState.EXECUTING,
                       actor=f"system:{self.worker}", reason="re-validated; executing",
                       now=self.clock())
            add_note(s, rec.id, f"executing:{rec.id}",
                     ":gear: Re-checked against the latest data — still valid. Executing.")
            return True
        if rec.state == RecState.EXECUTING:
            return True
        box.state, box.last_error = "dead", f"recommendation is {rec.state}"
        action.status, action.detail = "skipped", f"recommendation is {rec.state}"
        s.add_all([box, action])
        return False

    def _supersede_stale(self, s: Session, rec: RecommendationRow, reason: str) -> None:
        now = self.clock()
        transition(s, rec.id, from_states=[RecState.APPROVED], to_state=RecState.SUPERSEDED,
                   actor=f"system:{self.worker}", reason=f"not executed: {reason}", now=now)
        actions = s.exec(select(ActionRow).where(ActionRow.recommendation_id == rec.id)).all()
        for a in actions:
            a.status, a.detail = "skipped", "situation changed before execution"
            s.add(a)
        s.execute(update(OutboxRow).where(OutboxRow.action_id.in_([a.id for a in actions]))
                  .values(state="dead", last_error="superseded before execution"))
        add_note(s, rec.id, f"stale:{rec.id}",
                 f":warning: Not executed — the situation changed since approval ({reason}). "
                 "Nothing was changed in either system; a fresh recommendation follows.")

    def _call(self, action: Action) -> ExecuteResult:
        connector = self.connectors.get(action.connector)
        if connector is None:
            return ExecuteResult(ok=False, status="rejected",
                                 detail=f"no connector named {action.connector!r} can execute "
                                        f"{action.system} actions (check alignbot.yml)")
        try:
            return connector.execute(action)
        except Exception as exc:  # a connector bug or network failure: retry within bounds
            return ExecuteResult(ok=False, status="error", retryable=True,
                                 detail=f"{type(exc).__name__}: {exc}")

    def _record(self, outbox_id: int, execution_id: int, result: ExecuteResult) -> None:
        now = self.clock()
        with session_scope(self.engine) as s:
            box = s.get(OutboxRow, outbox_id)
            action = s.get(ActionRow, box.action_id)
            execution = s.get(ExecutionRow, execution_id)
            execution.finished_at, execution.ok = now, result.ok
            execution.status, execution.detail = result.status, result.detail[:2000]
            execution.external_id = result.external_id
            box.lease_until, box.claimed_by = None, None
            if result.ok:
                box.state, action.status, action.detail = "done", "done", result.detail
                _mark_written(s, action.connector, now)
            elif result.retryable and box.attempts < self.retry.max_attempts:
                box.available_at = now + self.retry.delay(box.attempts)
                box.last_error = result.detail[:2000]
            else:
                box.state, box.last_error = "dead", result.detail[:2000]
                action.status, action.detail = "failed", result.detail[:2000]
            s.add_all([box, action, execution])
            s.flush()
            self._finish_if_complete(s, action.recommendation_id, now)

    def _finish_if_complete(self, s: Session, recommendation_id: int, now: datetime) -> None:
        actions = s.exec(select(ActionRow).where(
            ActionRow.recommendation_id == recommendation_id).order_by(ActionRow.position)).all()
        if any(a.status == "pending" for a in actions):
            return
        ok = [a for a in actions if a.status == "done"]
        systems = " and ".join(dict.fromkeys(system_label(a.system) for _, a in numbered(actions)))
        if len(ok) == len(actions):
            state, headline = RecState.EXECUTED, f":white_check_mark: Executed in {systems}."
        elif not ok:
            state, headline = RecState.FAILED, ":x: Execution failed; nothing was changed."
        else:
            state, headline = RecState.PARTIALLY_EXECUTED, (
                ":warning: Partially executed — finish the failed steps below by hand in their systems.")
        if not transition(s, recommendation_id, from_states=[RecState.EXECUTING], to_state=state,
                          actor=f"system:{self.worker}", reason=headline, now=now):
            return
        lines = [headline] + [
            f"{n}. {system_label(a.system)}: {a.operation.replace('_', ' ')} via {a.connector or '—'} — *{a.status}*"
            + (f" ({a.detail})" if a.detail and a.status != "done" else "")
            for n, a in numbered(actions)]
        add_note(s, recommendation_id, f"finished:{recommendation_id}", "\n".join(lines))


def _mark_written(s: Session, connector: str, now: datetime) -> None:
    """Tell detection that this connector's system changed: it reads it again before trusting
    its picture (so what was just done is not recommended again)."""
    mark = update(ConnectorHealth).where(ConnectorHealth.connector == connector).values(written_at=now)
    if s.execute(mark).rowcount:
        return
    try:
        with s.begin_nested():
            s.add(ConnectorHealth(connector=connector, written_at=now))
    except IntegrityError:  # its first poll created the row meanwhile
        s.execute(mark)
