"""The store on SQLite and on a real PostgreSQL server: migrations, UTC, JSON, compare-and-set."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError, StatementError
from sqlmodel import select

from store.db import make_engine, session_scope
from store.migrate import (
    NotMigratedError,
    current_revision,
    ensure_migrated,
    head_revision,
    upgrade,
)
from store.tables import AuditEvent, DriftRow, RecommendationRow, RecState
from store.transitions import transition

EXPECTED_TABLES = {
    "drifts", "recommendations", "actions", "decisions", "executions", "outbox",
    "audit_events", "connector_runs", "connector_health", "quarantined_records", "slack_notes",
    "slack_inbox",
}


def _recommendation(**overrides) -> RecommendationRow:
    fields = dict(fingerprint="fp-1", kind="demand_change", summary="Move 120 units to DC-DAL",
                  severity="high", teams=["planning"], approvals_required={"planning": 1})
    fields.update(overrides)
    return RecommendationRow(**fields)


def test_migrations_from_empty_create_every_table_and_unlock_start(empty_db_url):
    engine = make_engine(empty_db_url)
    with pytest.raises(NotMigratedError, match="alignbot db upgrade"):
        ensure_migrated(engine)

    upgrade(empty_db_url)

    ensure_migrated(engine)  # no longer raises
    assert EXPECTED_TABLES <= set(inspect(engine).get_table_names())
    upgrade(empty_db_url)  # a second upgrade is a no-op, not an error
    assert current_revision(engine) == head_revision() == "0006"


def test_datetimes_round_trip_as_aware_utc(db_url):
    engine = make_engine(db_url)
    chicago = datetime(2026, 11, 20, 14, 0, tzinfo=ZoneInfo("America/Chicago"))
    with session_scope(engine) as s:
        s.add(DriftRow(fingerprint="fp", kind="disruption", severity="low",
                       first_seen=chicago, last_seen=chicago + timedelta(hours=1)))

    with session_scope(engine) as s:
        row = s.exec(select(DriftRow)).one()
    assert row.first_seen == chicago  # same instant
    assert row.first_seen.tzinfo == timezone.utc
    assert row.first_seen.hour == 20  # 14:00 CST is 20:00 UTC
    assert row.last_seen - row.first_seen == timedelta(hours=1)


def test_naive_datetimes_are_refused(db_url):
    engine = make_engine(db_url)
    with pytest.raises(StatementError, match="naive datetime"):
        with session_scope(engine) as s:
            s.add(DriftRow(fingerprint="fp", kind="x", severity="low",
                           first_seen=datetime(2026, 1, 1), last_seen=datetime(2026, 1, 1)))
            s.flush()


def test_json_columns_keep_nested_documents(db_url):
    engine = make_engine(db_url)
    evidence = {"plan": 1200.0, "actual": 1530.5, "lines": [{"sku": "SKU-10042", "qty": 12}],
                "note": "Spätlieferung — 配送"}
    with session_scope(engine) as s:
        s.add(DriftRow(fingerprint="fp", kind="demand_change", severity="high",
                       key={"sku": "SKU-10042", "location": "DC-DAL"}, evidence=evidence))
    with session_scope(engine) as s:
        row = s.exec(select(DriftRow)).one()
    assert row.evidence == evidence
    assert row.key["location"] == "DC-DAL"


def test_one_active_recommendation_per_fingerprint(db_url):
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        s.add(_recommendation())
    with pytest.raises(IntegrityError):
        with session_scope(engine) as s:
            s.add(_recommendation())
    # once the first is resolved, the fingerprint is free for a new recommendation
    with session_scope(engine) as s:
        first = s.exec(select(RecommendationRow)).one()
        assert transition(s, first.id, from_states=[RecState.OPEN], to_state=RecState.RESOLVED,
                          actor="system:test", reason="drift went away")
    with session_scope(engine) as s:
        s.add(_recommendation())
    with session_scope(engine) as s:
        states = sorted(r.state for r in s.exec(select(RecommendationRow)))
    assert states == ["open", "resolved"]


def test_compare_and_set_two_concurrent_writers_one_wins(db_url):
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        rec = _recommendation()
        s.add(rec)
    barrier = threading.Barrier(2)
    outcomes: dict[str, bool] = {}

    def decide(verdict: str, user: str) -> None:
        barrier.wait()
        with session_scope(engine) as s:
            outcomes[verdict] = transition(
                s, rec.id, from_states=[RecState.OPEN], to_state=verdict, actor=user)
            time.sleep(0.3)  # hold the transaction open so the writers truly overlap

    threads = [threading.Thread(target=decide, args=("approved", "U1")),
               threading.Thread(target=decide, args=("rejected", "U2"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)

    assert sorted(outcomes.values()) == [False, True]
    winner = next(v for v, won in outcomes.items() if won)
    with session_scope(engine) as s:
        row = s.get(RecommendationRow, rec.id)
        audit = s.exec(select(AuditEvent)).all()
    assert row.state == winner
    assert row.version == 2
    assert [(a.to_state, a.from_state) for a in audit] == [(winner, "open")]


def test_stale_version_loses_even_when_state_matches(db_url):
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        rec = _recommendation()
        s.add(rec)
    with session_scope(engine) as s:
        assert transition(s, rec.id, from_states=["open"], to_state="snoozed", actor="U1",
                          expected_version=1)
        assert transition(s, rec.id, from_states=["snoozed"], to_state="open", actor="system",
                          expected_version=2)
    with session_scope(engine) as s:
        # a writer that read version 1 must not win although the state is 'open' again
        assert not transition(s, rec.id, from_states=["open"], to_state="approved", actor="U2",
                              expected_version=1)
        assert s.get(RecommendationRow, rec.id).state == "open"


def test_a_reader_does_not_wait_for_a_writer_on_sqlite(tmp_path):
    """Slack handlers that only read (opening a modal, /drift, App Home) must not queue behind
    a long write such as a detection pass's drift upserts."""
    from store.db import read_scope

    url = f"sqlite:///{tmp_path / 'readers.db'}"
    upgrade(url)
    engine = make_engine(url)
    with session_scope(engine) as s:
        s.add(_recommendation())
    holding, release = threading.Event(), threading.Event()

    def long_writer() -> None:
        with session_scope(engine) as s:
            s.add(_recommendation(fingerprint="fp-2"))
            s.flush()
            holding.set()
            release.wait(10)

    writer = threading.Thread(target=long_writer)
    writer.start()
    holding.wait(5)
    try:
        started = time.monotonic()
        with read_scope(engine) as s:
            seen = s.exec(select(RecommendationRow)).all()
        waited = time.monotonic() - started
    finally:
        release.set()
        writer.join()
    assert [r.fingerprint for r in seen] == ["fp-1"]  # the writer's row is not visible yet
    assert seen[0].summary == "Move 120 units to DC-DAL"  # usable after the session closed
    assert waited < 2.0  # a writer-waiting reader would sit out the 10 s busy timeout
