"""The decision loop in one place: poll → snapshot → detect → upsert → route; drain; sweep.

Each step is a method that can be called alone (the scheduler, the webhook endpoint and tests
all drive it the same way). Slack is not here: the loop writes state and notes, and the Slack
sync renders them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.config import AlignbotConfig
from bot.executor import Executor, RetryPolicy
from bot.lifecycle import (
    LifecycleReport,
    Situation,
    apply_recommendations,
    describe_change,
    is_material_change,
    open_fingerprints,
    upsert_drifts,
)
from bot.notes import add_note
from bot.snapshot_cache import SnapshotCache
from bot.sweeps import SweepReport, sweep
from bot.tracing import mark_failed, span
from connectors.base import Connector
from connectors.batch import split_duplicates
from detectors.isolation import IsolatedGroup, detect_isolating
from detectors.pipeline import DetectionResult, detect
from detectors.snapshot import Snapshot
from store.db import session_scope
from store.tables import (
    ConnectorHealth,
    ConnectorRun,
    QuarantinedRecord,
    RecommendationRow,
    RecState,
)
from store.types import utcnow

log = logging.getLogger(__name__)
DRIFT_CHUNK = 250


@dataclass
class PassOutcome:
    """How the last detection pass went, for /healthz."""

    ok: bool
    at: datetime
    isolated: list[str] = field(default_factory=list)  # key groups left out, with the error
    error: str = ""


@dataclass
class PollOutcome:
    connector: str
    ok: bool
    records: int = 0
    quarantined: int = 0
    changed: int = 0
    error: str = ""


class DecisionLoop:
    def __init__(self, config: AlignbotConfig, engine: Engine,
                 connectors: Mapping[str, Connector], *, worker: str = "main",
                 clock: Callable[[], datetime] = utcnow, retry: RetryPolicy = RetryPolicy(),
                 observe_poll: Callable[[str, float, bool], None] | None = None,
                 observe_detection: Callable[[str, int], None] | None = None,
                 lease: timedelta = timedelta(seconds=60)):
        self.config = config
        self.engine = engine
        self.connectors = dict(connectors)
        self.clock = clock
        self.cache = SnapshotCache()
        self.settings = config.detectors
        self.executor = Executor(engine, self.connectors, worker=worker,
                                 revalidate=self.revalidate, retry=retry, clock=clock,
                                 lease=lease)
        self._detect_lock = threading.Lock()
        # This process's read position per connector: its picture lives in memory, so its
        # cursor does too (the one in connector_health is for people; another replica's reads
        # must not move this one's). A connector is in here once read in full.
        self._cursors: dict[str, Any] = {}
        self._read_at: dict[str, datetime] = {}  # when this process's last good read began
        self._poll_locks = {name: threading.Lock() for name in self.connectors}
        self._observe_poll = observe_poll
        self._observe_detection = observe_detection or (lambda outcome, isolated: None)
        self.last_pass: PassOutcome | None = None

    # -- poll ------------------------------------------------------------------------------

    def poll(self, name: str) -> PollOutcome:
        """Read one connector incrementally into the picture; record the run and its health."""
        started, ok = time.perf_counter(), False
        try:
            with self._poll_locks[name], span("connector.poll", connector=name):  # re-validation polls too
                outcome = self._poll(name)
            ok = outcome.ok
            return outcome
        finally:
            if self._observe_poll:
                self._observe_poll(name, time.perf_counter() - started, ok)

    def _poll(self, name: str) -> PollOutcome:
        connector = self.connectors[name]
        now = self.clock()
        cursor = self._cursors.get(name)  # None: a full read (at start)
        with session_scope(self.engine) as s:
            run = ConnectorRun(connector=name, started_at=now)
            s.add(run)
            s.flush()
            run_id = run.id
        # a large file is read a chunk at a time when the connector can (never held whole);
        # a read that fails part-way saves no cursor, and reading its chunks again changes nothing
        chunked = getattr(connector, "read_chunks", None)
        records, quarantined, changed, new_cursor = 0, [], 0, cursor
        try:
            for result in chunked(cursor) if chunked else [connector.read(cursor)]:
                kept, duplicates = split_duplicates(result.records, source=name)  # one key, one record
                changed += self.cache.apply(kept)
                records += len(kept)
                quarantined += [*result.quarantined, *duplicates]
                new_cursor = result.cursor
        except Exception as exc:  # a source that is down degrades that source, never the bot
            return self._record_failure(name, run_id, f"{type(exc).__name__}: {exc}")
        finished = self.clock()
        with session_scope(self.engine) as s:
            run = s.get(ConnectorRun, run_id)
            run.finished_at, run.ok = finished, True
            run.records, run.quarantined = records, len(quarantined)
            for bad in quarantined:
                s.add(QuarantinedRecord(connector=name, run_id=run_id, source=bad.source,
                                        position=bad.position, reason=bad.reason,
                                        raw=bad.raw[:4000], at=finished))
            health = s.get(ConnectorHealth, name) or ConnectorHealth(connector=name)
            if health.stale:
                add_note(s, None, f"fresh:{name}:{finished.isoformat()}",
                         f":white_check_mark: Connector *{name}* is reading again.",
                         channel=self._notice_channel(), in_thread=False)
            health.cursor = new_cursor
            health.last_success_at = health.last_attempt_at = finished
            health.consecutive_failures, health.last_error = 0, ""
            health.stale = health.stale_notified = False
            s.add_all([run, health])
        self._cursors[name] = new_cursor
        self._read_at[name] = now
        return PollOutcome(name, True, records, len(quarantined), changed)

    def _record_failure(self, name: str, run_id: int, error: str) -> PollOutcome:
        now = self.clock()
        log.warning("connector %s failed: %s", name, error)
        mark_failed(error)
        stale_after = self.config.connector(name).stale_after
        with session_scope(self.engine) as s:
            run = s.get(ConnectorRun, run_id)
            run.finished_at, run.ok, run.error = now, False, error[:2000]
            health = s.get(ConnectorHealth, name) or ConnectorHealth(connector=name)
            health.last_attempt_at, health.last_error = now, error[:2000]
            health.consecutive_failures += 1
            since = health.last_success_at
            health.stale = since is None or now - since > stale_after \
                or health.consecutive_failures >= 3
            if health.stale and not health.stale_notified:
                add_note(s, None, f"stale:{name}:{since.isoformat() if since else 'never'}",
                         f":warning: Connector *{name}* is not answering ({error[:200]}). Its "
                         "data is marked stale; recommendations that depend on it wait.",
                         channel=self._notice_channel(), in_thread=False)
                health.stale_notified = True
            s.add_all([run, health])
        return PollOutcome(name, False, error=error)

    def _unread(self) -> set[str]:
        return set(self.connectors) - self._cursors.keys()

    def _notice_channel(self) -> str:
        return self.config.team(self.config.routing.default_team).channel

    # -- detect ----------------------------------------------------------------------------

    def detect(self) -> LifecycleReport:
        """One detection pass over the whole current picture.

        Not while an approved recommendation is executing: its systems are half changed. Before
        it runs, every system an execution changed since this process read it is read again,
        so the pass sees what was done and does not raise it again.
        """
        with self._detect_lock, span("detection.pass"):
            if self._executing():
                return LifecycleReport()  # the pass after the execution covers this one
            self.refresh()
            if self._unread():
                return LifecycleReport()  # half a picture would open and close drift wrongly
            now = self.clock()
            snapshot = self.cache.snapshot()
            with session_scope(self.engine) as s:
                open_now = open_fingerprints(s)
            # Detection is CPU work: no transaction (and on SQLite no write lock) is held.
            result = self._detect_isolating(snapshot, now, open_now)
            # Drifts go in in chunks, each its own short transaction: on SQLite one long write
            # (a burst of thousands) would keep a click's decision waiting past Slack's 3 s.
            seen: set[str] = set()
            for start in range(0, len(result.drifts), DRIFT_CHUNK):
                with session_scope(self.engine) as s:
                    seen |= upsert_drifts(s, result.drifts[start:start + DRIFT_CHUNK], now)
            with session_scope(self.engine) as s:
                scope = None if self._picture_complete(s) else set()
                return apply_recommendations(s, seen, result.recommendations, self.config, now,
                                             scope=scope)

    def _detect_isolating(self, snapshot: Snapshot, now: datetime,
                          open_now: frozenset[str]) -> DetectionResult:
        """``detect``; key groups it fails on are quarantined and the rest is still detected."""
        try:
            result, isolated = detect_isolating(
                snapshot, lambda snap: detect(snap, self.settings, now, open_now))
        except Exception as exc:
            self.last_pass = PassOutcome(False, now, error=f"{type(exc).__name__}: {exc}"[:500])
            self._observe_detection("failed", 0)
            raise
        if isolated:
            self._quarantine(isolated, now)
        self.last_pass = PassOutcome(True, now, [f"{g.group[0]} {g.group[1]}: {g.error}"
                                                 for g in isolated])
        self._observe_detection("isolated" if isolated else "ok", len(isolated))
        return result

    def _quarantine(self, isolated: list[IsolatedGroup], now: datetime) -> None:
        """Take the failing groups' records out of the picture, with the reason, until their
        source sends them again."""
        reasons = {g.group: g.error for g in isolated}
        taken = self.cache.drop(reasons)
        with session_scope(self.engine) as s:
            for group, error in reasons.items():
                rows = taken[group]
                log.error("detection failed on %s %s and left it out: %s", *group, error)
                s.add(QuarantinedRecord(
                    connector="detection", source=f"{group[0]} {group[1]}",
                    position=f"{len(rows)} record(s)",
                    reason=f"detection failed on this {group[0]} and left it out until its "
                           f"source sends it again: {error}",
                    raw="\n".join(rows)[:4000], at=now))

    def refresh(self) -> None:
        """Read every source not read yet, and again every system an execution changed since."""
        changed = self.changed_systems()
        for conn in self.config.connectors:
            if conn.name in self.connectors and (conn.name not in self._cursors
                                                 or conn.system in changed):
                self.poll(conn.name)

    def changed_systems(self) -> set[str]:
        """Systems an approved action changed after this process last read them."""
        with session_scope(self.engine) as s:
            written = s.exec(select(ConnectorHealth.connector, ConnectorHealth.written_at)
                             .where(ConnectorHealth.written_at.is_not(None))).all()
        return {self.config.connector(name).system for name, at in written
                if name in self._read_at and at >= self._read_at[name]}

    def _executing(self) -> bool:
        """An approved recommendation is part-way through its actions (within its lease)."""
        since = self.clock() - self.executor.lease
        with session_scope(self.engine) as s:
            return s.exec(select(RecommendationRow.id).where(
                RecommendationRow.state == RecState.EXECUTING,
                RecommendationRow.updated_at >= since)).first() is not None

    def _picture_complete(self, s: Session) -> bool:
        """Drifts may close only when every source has been read and none is stale."""
        if self._unread():
            return False
        return not s.exec(select(ConnectorHealth.connector).where(ConnectorHealth.stale)).first()

    def poll_and_detect(self, name: str) -> PollOutcome:
        outcome = self.poll(name)
        self.detect()
        return outcome

    def push(self, records: Iterable[object]) -> LifecycleReport:
        """Records pushed by a webhook: detect right now instead of at the next poll.

        The pass covers the whole picture, not only the pushed keys: a recommendation groups
        drifts by cause, and a pass over a few keys would see a fraction of a group, judge its
        value changed materially and supersede it.
        """
        for name in self._unread():
            self.poll(name)  # a replica that never polled needs the picture first
        self.cache.apply(records)
        return self.detect()

    # -- execute and sweep -----------------------------------------------------------------

    def drain(self, limit: int = 20) -> int:
        return self.executor.drain(limit)

    def sweep(self) -> SweepReport:
        with session_scope(self.engine) as s:
            return sweep(s, self.config, self.clock())

    def current_detection(self) -> DetectionResult:
        with session_scope(self.engine) as s:
            fps = open_fingerprints(s)
        return detect(self.cache.snapshot(), self.settings, self.clock(), fps)

    def revalidate(self, rec: RecommendationRow) -> str | None:
        """None if the drift still holds as recommended; otherwise why not to execute."""
        self.refresh()  # a replica that never polled reads the sources first
        if self._unread():
            return None  # a source is unreachable: its own execute call will fail and retry
        fresh = {r.fingerprint: r for r in self.current_detection().recommendations}
        now = fresh.get(rec.fingerprint)
        if now is None:
            return "the drift it answered is gone"
        # The situation, not the actions: a person may have modified the quantities.
        approved, current = Situation.stored(rec), Situation.of(now)
        return describe_change(approved, current) if is_material_change(approved, current) else None
