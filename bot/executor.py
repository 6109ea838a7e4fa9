"""Drain the outbox: execute each approved action exactly once, and say how it went.

Claim (SKIP LOCKED on PostgreSQL; an atomic conditional UPDATE with a lease on SQLite), then
each row through ``Executor.stages``: revalidate → begin (the attempt on record) → call the
connector with the action's idempotency key → record the result → notify. A crash anywhere
leaves the row claimed with an expired lease; the next drain retries it with the same key, and
the receiving system de-duplicates — so a change takes effect once.
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
from bot.stages import Stage, in_transaction, run
from bot.tracing import mark_failed, span
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


@dataclass
class Attempt:
    """One claimed outbox row on its way through the stages."""
    outbox_id: int
    stale: str | None = None  # why the approved drift no longer holds, if it does not
    call: Action | None = None
    execution_id: int = 0
    result: ExecuteResult | None = None
    s: Session | None = None  # the transaction of an ``in_transaction`` stage


class Executor:
    def __init__(self, engine: Engine, connectors: Mapping[str, Connector], *,
                 worker: str = "executor", revalidate: Revalidator | None = None,
                 retry: RetryPolicy = RetryPolicy(), lease: timedelta = timedelta(seconds=60),
                 clock: Callable[[], datetime] = utcnow):
        self.engine = engine
        self.connectors = connectors
        self.worker = worker
        self.revalidator = revalidate
        self.retry = retry
        self.lease = lease
        self.clock = clock
        self.stages: list[Stage[Attempt]] = [
            self._revalidate,
            in_transaction(engine, self._begin),
            self._call,
            # The outcome of the recommendation is written with its last action's result: a
            # crash cannot leave it executing with nothing left to run.
            in_transaction(engine, self._record, self._notify),
        ]

    def drain(self, limit: int = 20) -> int:
        """Process up to ``limit`` due outbox rows; returns how many were processed."""
        claimed = self.claim(limit)
        for outbox_id in claimed:
            try:
                run(self.stages, Attempt(outbox_id))
            except Exception:  # one bad row must not stop the others; lease expiry retries it
                log.exception("outbox row %s failed unexpectedly", outbox_id)
        return len(claimed)

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

    def _revalidate(self, a: Attempt) -> Attempt:
        """Re-check the drift before a recommendation's first action runs (outside any
        transaction: detection takes a while and must not hold a lock)."""
        if self.revalidator is not None:
            with session_scope(self.engine) as s:
                box = s.get(OutboxRow, a.outbox_id)
                rec = s.get(RecommendationRow, s.get(ActionRow, box.action_id).recommendation_id)
            a.stale = self.revalidator(rec) if rec.state == RecState.APPROVED else None
        return a

    def _begin(self, a: Attempt) -> Attempt | None:
        """Move the recommendation to executing (once); put the attempt on record before the
        call, so that a crash from here on is visible and the retry reuses the idempotency key."""
        s = a.s
        box = s.get(OutboxRow, a.outbox_id)
        action = s.get(ActionRow, box.action_id)
        rec = s.get(RecommendationRow, action.recommendation_id)
        if rec.state == RecState.APPROVED:
            if a.stale:
                self._supersede_stale(s, rec, a.stale)
                return None
            transition(s, rec.id, from_states=[RecState.APPROVED], to_state=RecState.EXECUTING,
                       actor=f"system:{self.worker}", reason="re-validated; executing",
                       now=self.clock())
            add_note(s, rec.id, f"executing:{rec.id}",
                     ":gear: Re-checked against the latest data — still valid. Executing.")
        elif rec.state != RecState.EXECUTING:
            box.state, box.last_error = "dead", f"recommendation is {rec.state}"
            action.status, action.detail = "skipped", f"recommendation is {rec.state}"
            return None
        box.attempts += 1
        execution = ExecutionRow(action_id=action.id, attempt=box.attempts, worker=self.worker,
                                 started_at=self.clock())
        s.add(execution)
        s.flush()
        a.execution_id = execution.id
        a.call = Action(system=action.system, connector=action.connector,
                        operation=action.operation, params=action.params,
                        idempotency_key=action.idempotency_key)
        return a

    def _supersede_stale(self, s: Session, rec: RecommendationRow, reason: str) -> None:
        now = self.clock()
        transition(s, rec.id, from_states=[RecState.APPROVED], to_state=RecState.SUPERSEDED,
                   actor=f"system:{self.worker}", reason=f"not executed: {reason}", now=now)
        actions = s.exec(select(ActionRow).where(ActionRow.recommendation_id == rec.id)).all()
        for a in actions:
            a.status, a.detail = "skipped", "situation changed before execution"
        s.execute(update(OutboxRow).where(OutboxRow.action_id.in_([a.id for a in actions]))
                  .values(state="dead", last_error="superseded before execution"))
        add_note(s, rec.id, f"stale:{rec.id}",
                 f":warning: Not executed — the situation changed since approval ({reason}). "
                 "Nothing was changed in either system; a fresh recommendation follows.")

    def _call(self, a: Attempt) -> Attempt:
        action, connector = a.call, self.connectors.get(a.call.connector)
        with span("execution", connector=action.connector, operation=action.operation,
                  outbox_id=a.outbox_id):
            try:
                a.result = connector.execute(action) if connector else ExecuteResult(
                    ok=False, status="rejected", detail=f"no connector named "
                    f"{action.connector!r} can execute {action.system} actions (check alignbot.yml)")
            except Exception as exc:  # a connector bug or network failure: retry within bounds
                a.result = ExecuteResult(ok=False, status="error", retryable=True,
                                         detail=f"{type(exc).__name__}: {exc}")
            if not a.result.ok:
                mark_failed(a.result.detail)
        return a

    def _record(self, a: Attempt) -> Attempt:
        """The result: done, retried after a backoff, or dead once retries are spent."""
        now, result, s = self.clock(), a.result, a.s
        box = s.get(OutboxRow, a.outbox_id)
        action = s.get(ActionRow, box.action_id)
        execution = s.get(ExecutionRow, a.execution_id)
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
        return a

    def _notify(self, a: Attempt) -> Attempt | None:
        """Once no action is pending: the recommendation's outcome, and a note saying it."""
        s = a.s
        rec_id = s.get(ActionRow, s.get(OutboxRow, a.outbox_id).action_id).recommendation_id
        actions = s.exec(select(ActionRow).where(
            ActionRow.recommendation_id == rec_id).order_by(ActionRow.position)).all()
        if any(x.status == "pending" for x in actions):
            return None
        ok = [x for x in actions if x.status == "done"]
        systems = " and ".join(dict.fromkeys(system_label(x.system) for _, x in numbered(actions)))
        if len(ok) == len(actions):
            state, headline = RecState.EXECUTED, f":white_check_mark: Executed in {systems}."
        elif not ok:
            state, headline = RecState.FAILED, ":x: Execution failed; nothing was changed."
        else:
            state, headline = RecState.PARTIALLY_EXECUTED, (
                ":warning: Partially executed — finish the failed steps below by hand in their systems.")
        if not transition(s, rec_id, from_states=[RecState.EXECUTING], to_state=state,
                          actor=f"system:{self.worker}", reason=headline, now=self.clock()):
            return None
        lines = [headline] + [
            f"{n}. {system_label(x.system)}: {x.operation.replace('_', ' ')} via {x.connector or '—'} — *{x.status}*"
            + (f" ({x.detail})" if x.detail and x.status != "done" else "")
            for n, x in numbered(actions)]
        add_note(s, rec_id, f"finished:{rec_id}", "\n".join(lines))
        return a


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
