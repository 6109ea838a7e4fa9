"""Decisions on both backends: who may decide, once only, multi-team approval, snooze, expiry."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.decisions import DecisionError, decide
from bot.lifecycle import apply_detection
from bot.sweeps import sweep
from store.db import make_engine, session_scope
from store.tables import ActionRow, AuditEvent, DecisionRow, OutboxRow, RecommendationRow, SlackNote
from tests.support.builders import (
    COORDINATORS,
    NOW,
    OUTSIDER,
    PLANNERS,
    config,
    demand_drift,
    recommendation_for,
)


def _open(engine, latest=1400):
    drift = demand_drift(latest=latest)
    with session_scope(engine) as s:
        report = apply_detection(s, [drift], [recommendation_for(drift)], config(), NOW)
    return report.created[0]


def _decide(engine, rec_id, user, verdict="approve", teams=None, **kw):
    teams = teams if teams is not None else (
        {"planning"} if user in PLANNERS else {"logistics"} if user in COORDINATORS else set())
    with session_scope(engine) as s:
        return decide(s, rec_id, user, teams, verdict, now=NOW, **kw)


def _state(engine, rec_id):
    with session_scope(engine) as s:
        return s.get(RecommendationRow, rec_id).state


def _outbox(engine):
    with session_scope(engine) as s:
        return s.exec(select(OutboxRow)).all()


def test_owner_approval_fills_the_outbox_in_the_same_transaction(db_url):
    engine = make_engine(db_url)
    rec_id = _open(engine)
    result = _decide(engine, rec_id, PLANNERS[0])
    assert result.recorded and result.state == "approved"
    assert _state(engine, rec_id) == "approved"
    assert len(_outbox(engine)) == 2


def test_outsider_is_refused_and_nothing_is_recorded(db_url):
    engine = make_engine(db_url)
    rec_id = _open(engine)
    result = _decide(engine, rec_id, OUTSIDER)
    assert not result.recorded
    assert "Only members of planning" in result.message
    with session_scope(engine) as s:
        assert s.exec(select(DecisionRow)).all() == []
    assert _state(engine, rec_id) == "open" and _outbox(engine) == []


def test_double_click_records_one_decision(db_url):
    engine = make_engine(db_url)
    rec_id = _open(engine)
    first, second = _decide(engine, rec_id, PLANNERS[0]), _decide(engine, rec_id, PLANNERS[0])
    assert first.recorded and not second.recorded
    assert "Already approved" in second.message
    with session_scope(engine) as s:
        assert len(s.exec(select(DecisionRow)).all()) == 1
    assert len(_outbox(engine)) == 2


def test_cross_functional_change_waits_for_both_teams(db_url):
    engine = make_engine(db_url)
    rec_id = _open(engine, latest=4000)  # 75,000 at risk: planning and logistics must approve
    first = _decide(engine, rec_id, PLANNERS[0])
    assert first.recorded and first.state == "open"
    assert first.missing == {"logistics": 1}
    assert "1 more from logistics" in first.message
    assert _outbox(engine) == []
    again = _decide(engine, rec_id, PLANNERS[1])  # a second planner does not replace logistics
    assert again.missing == {"logistics": 1}
    final = _decide(engine, rec_id, COORDINATORS[0])
    assert final.state == "approved" and final.approvals == {
        "planning": PLANNERS, "logistics": [COORDINATORS[0]]}
    assert len(_outbox(engine)) == 2


def test_concurrent_final_approvals_enqueue_each_action_once(db_url):
    engine = make_engine(db_url)
    rec_id = _open(engine, latest=4000)
    barrier = threading.Barrier(4)

    def click(user):
        barrier.wait()
        _decide(engine, rec_id, user)

    threads = [threading.Thread(target=click, args=(u,)) for u in PLANNERS + COORDINATORS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert _state(engine, rec_id) == "approved"
    assert len(_outbox(engine)) == 2  # not 4, not 0


def test_requester_may_be_barred_from_approving(db_url):
    engine = make_engine(db_url)
    rec_id = _open(engine)
    with session_scope(engine) as s:
        rec = s.get(RecommendationRow, rec_id)
        rec.requester, rec.requester_may_approve = PLANNERS[0], False
        s.add(rec)
    refused = _decide(engine, rec_id, PLANNERS[0])
    assert not refused.recorded and "someone else" in refused.message
    assert _decide(engine, rec_id, PLANNERS[1]).state == "approved"


def test_reject_needs_a_reason_and_keeps_it(db_url):
    engine = make_engine(db_url)
    rec_id = _open(engine)
    with pytest.raises(DecisionError, match="reason"):
        _decide(engine, rec_id, PLANNERS[0], "reject", reason="  ")
    result = _decide(engine, rec_id, PLANNERS[0], "reject", reason="promo was cancelled")
    assert result.state == "rejected"
    with session_scope(engine) as s:
        audit = s.exec(select(AuditEvent).where(AuditEvent.to_state == "rejected")).one()
    assert (audit.actor, audit.reason) == (PLANNERS[0], "promo was cancelled")
    assert _outbox(engine) == []


def test_modify_changes_quantities_then_approves(db_url):
    engine = make_engine(db_url)
    rec_id = _open(engine)
    with pytest.raises(DecisionError, match="qty must be a number"):
        _decide(engine, rec_id, PLANNERS[0], "modify", changes={"0.qty": "lots"})
    result = _decide(engine, rec_id, PLANNERS[0], "modify", changes={"0.qty": "250"})
    assert result.state == "approved"
    with session_scope(engine) as s:
        transfer = s.exec(select(ActionRow).where(ActionRow.position == 0)).one()
        rec = s.get(RecommendationRow, rec_id)
    assert transfer.params["qty"] == 250.0
    assert rec.body["actions"][0]["params"]["qty"] == 250.0


def test_snooze_reopens_when_it_ends(db_url):
    engine = make_engine(db_url)
    rec_id = _open(engine)
    _decide(engine, rec_id, PLANNERS[0], "snooze", snooze_for=timedelta(hours=1))
    assert _state(engine, rec_id) == "snoozed"
    with session_scope(engine) as s:
        assert sweep(s, config(), NOW + timedelta(minutes=59)).reopened == []
    with session_scope(engine) as s:
        assert sweep(s, config(), NOW + timedelta(minutes=61)).reopened == [rec_id]
    assert _state(engine, rec_id) == "open"


def test_no_decision_before_the_deadline_expires_and_escalates(db_url):
    engine = make_engine(db_url)
    rec_id = _open(engine)  # default route: planning, 4 h deadline
    with session_scope(engine) as s:
        assert sweep(s, config(), NOW + timedelta(hours=3)).expired == []
    with session_scope(engine) as s:
        assert sweep(s, config(), NOW + timedelta(hours=4, seconds=1)).expired == [rec_id]
    assert _state(engine, rec_id) == "expired"
    with session_scope(engine) as s:
        note = s.exec(select(SlackNote).where(SlackNote.dedupe_key == f"expired:{rec_id}")).one()
    assert "<@U0HEADPLAN>" in note.text
    assert _decide(engine, rec_id, PLANNERS[0]).message.startswith("Already expired")
