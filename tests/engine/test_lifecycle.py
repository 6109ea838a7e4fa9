"""Recommendation lifecycle on both backends: one per fingerprint, supersede, resolve."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from bot.lifecycle import apply_detection
from store.db import make_engine, session_scope
from store.tables import ActionRow, AuditEvent, RecommendationRow, SlackNote
from tests.support.builders import NOW, config, demand_drift, recommendation_for


def _poll(engine, drifts, recs, now=NOW):
    with session_scope(engine) as s:
        return apply_detection(s, drifts, recs, config(), now)


def _recs(engine):
    with session_scope(engine) as s:
        return s.exec(select(RecommendationRow).order_by(RecommendationRow.id)).all()


def test_repeated_polls_keep_one_recommendation_per_fingerprint(db_url):
    engine = make_engine(db_url)
    drift = demand_drift()
    for minute in range(5):
        _poll(engine, [drift], [recommendation_for(drift)], NOW + timedelta(minutes=minute))
    recs = _recs(engine)
    assert len(recs) == 1
    assert recs[0].state == "open"
    assert recs[0].teams == ["planning"]
    assert recs[0].slack_channel == "C0PLANNING"
    with session_scope(engine) as s:
        actions = s.exec(select(ActionRow)).all()
    assert [(a.system, a.operation, a.connector) for a in actions] == [
        ("logistics", "create_transfer", "tms"), ("planning", "update_forecast", "plan")]
    assert len({a.idempotency_key for a in actions}) == 2


def test_small_change_edits_the_recommendation_in_place(db_url):
    engine = make_engine(db_url)
    _poll(engine, [demand_drift(latest=1400)], [recommendation_for(demand_drift(latest=1400))])
    _poll(engine, [demand_drift(latest=1420)], [recommendation_for(demand_drift(latest=1420))])
    (rec,) = _recs(engine)
    assert rec.state == "open"
    assert rec.version == 2  # bumped so the Slack message is edited with the new numbers
    assert rec.body["actions"][0]["params"]["qty"] == 420


def test_material_change_supersedes_and_links_the_new_recommendation(db_url):
    engine = make_engine(db_url)
    _poll(engine, [demand_drift(latest=1400)], [recommendation_for(demand_drift(latest=1400))])
    report = _poll(engine, [demand_drift(latest=3000)],
                   [recommendation_for(demand_drift(latest=3000))])
    old, new = _recs(engine)
    assert (old.state, new.state) == ("superseded", "open")
    assert old.superseded_by == new.id
    assert report.superseded == [(old.id, new.id)]
    with session_scope(engine) as s:
        note = s.exec(select(SlackNote).where(SlackNote.recommendation_id == old.id)).one()
    assert f"#{new.id}" in note.text and "10,000 to 50,000" in note.text


def test_drift_that_disappears_resolves_its_open_recommendation(db_url):
    engine = make_engine(db_url)
    drift = demand_drift()
    _poll(engine, [drift], [recommendation_for(drift)])
    report = _poll(engine, [], [], NOW + timedelta(minutes=5))
    (rec,) = _recs(engine)
    assert rec.state == "resolved"
    assert report.resolved == [rec.id]
    with session_scope(engine) as s:
        audit = s.exec(select(AuditEvent).where(AuditEvent.to_state == "resolved")).one()
    assert audit.actor == "system:detector" and "went away" in audit.reason


def test_partial_pass_only_closes_drifts_in_scope(db_url):
    engine = make_engine(db_url)
    dal, atl = demand_drift(location="DC-DAL"), demand_drift(location="DC-ATL")
    _poll(engine, [dal, atl], [recommendation_for(dal), recommendation_for(atl)])
    with session_scope(engine) as s:
        apply_detection(s, [], [], config(), NOW, scope={dal.fingerprint})
    states = {r.body["affected"][0]["location"]: r.state for r in _recs(engine)}
    assert states == {"DC-DAL": "resolved", "DC-ATL": "open"}


def test_an_unchanged_detection_leaves_the_recommendation_and_a_persons_edit_alone(db_url):
    """Re-detecting the same thing must not edit the message again, nor undo a Modify made by
    the first of two approving teams while the recommendation waits for the second."""
    from bot.decisions import apply_modifications

    engine = make_engine(db_url)
    drift = demand_drift()
    _poll(engine, [drift], [recommendation_for(drift)])
    with session_scope(engine) as s:
        (rec,) = s.exec(select(RecommendationRow)).all()
        apply_modifications(s, rec, {"0.qty": 300})
    report = _poll(engine, [drift], [recommendation_for(drift)], NOW + timedelta(minutes=5))
    (rec,) = _recs(engine)
    assert report.updated == [] and rec.version == 1
    assert rec.body["actions"][0]["params"]["qty"] == 300
    with session_scope(engine) as s:
        transfer = s.exec(select(ActionRow).where(ActionRow.position == 0)).one()
    assert transfer.params["qty"] == 300


def test_a_recommendation_stored_before_digests_is_adopted_without_an_edit(db_url):
    from sqlalchemy import update

    engine = make_engine(db_url)
    drift = demand_drift()
    _poll(engine, [drift], [recommendation_for(drift)])
    with session_scope(engine) as s:
        s.exec(update(RecommendationRow).values(detection_digest=None))
    report = _poll(engine, [drift], [recommendation_for(drift)], NOW + timedelta(minutes=5))
    (rec,) = _recs(engine)
    assert report.updated == [] and rec.version == 1  # the message is not edited for nothing
    assert rec.detection_digest is not None
    _poll(engine, [demand_drift(latest=1420)], [recommendation_for(demand_drift(latest=1420))])
    assert _recs(engine)[0].version == 2  # and a real change still edits it


def test_new_figures_after_an_approval_with_modifications_ask_everyone_to_decide_again(db_url):
    """The first approver's edit must not be overwritten in place while their approval still
    counts towards a second approver's click: the recommendation is superseded instead."""
    from sqlalchemy import update

    from bot.decisions import decide

    engine = make_engine(db_url)
    _poll(engine, [demand_drift(latest=1400)], [recommendation_for(demand_drift(latest=1400))])
    with session_scope(engine) as s:
        s.exec(update(RecommendationRow).values(approvals_required={"planning": 2}))
    with session_scope(engine) as s:
        (rec,) = s.exec(select(RecommendationRow)).all()
        result = decide(s, rec.id, "U0PLAN1", {"planning"}, "modify", now=NOW,
                        changes={"0.qty": 300})
    assert result.recorded and result.state == "open"  # one of two approvals

    report = _poll(engine, [demand_drift(latest=1420)],
                   [recommendation_for(demand_drift(latest=1420))], NOW + timedelta(minutes=5))
    old, new = _recs(engine)
    assert (old.state, new.state) == ("superseded", "open")
    assert report.superseded == [(old.id, new.id)] and report.updated == []
    assert new.body["actions"][0]["params"]["qty"] == 420  # the detectors' new figures
    with session_scope(engine) as s:
        note = s.exec(select(SlackNote).where(SlackNote.recommendation_id == old.id)).one()
    assert "<@U0PLAN1> approved it with modifications" in note.text


# --- decision memory: a decided drift stays decided --------------------------------------------


def _decide(engine, verdict: str, now=NOW, reason: str = "Customer order cancelled"):
    from bot.decisions import decide

    with session_scope(engine) as s:
        (rec,) = [r for r in s.exec(select(RecommendationRow)).all() if r.state == "open"]
        decide(s, rec.id, "U0PLAN1", {"planning"}, verdict, now=now, reason=reason)
        return rec.id


def _mark(engine, rec_id: int, state: str):
    from sqlalchemy import update

    with session_scope(engine) as s:
        s.exec(update(RecommendationRow).where(RecommendationRow.id == rec_id).values(state=state))


def test_a_rejected_drift_is_not_raised_again_while_it_stays_the_same(db_url):
    engine = make_engine(db_url)
    drift = demand_drift()
    _poll(engine, [drift], [recommendation_for(drift)])
    rejected = _decide(engine, "reject", NOW + timedelta(minutes=1))
    for minute in (2, 30, 600):
        report = _poll(engine, [drift], [recommendation_for(drift)], NOW + timedelta(minutes=minute))
        assert report.created == [] and report.held == [rejected]
    assert [r.state for r in _recs(engine)] == ["rejected"]
    assert _recs(engine)[0].held_at == NOW + timedelta(minutes=2)  # held since the first pass


def test_a_rejected_drift_that_gets_materially_worse_is_raised_again(db_url):
    engine = make_engine(db_url)
    _poll(engine, [demand_drift(latest=1400)], [recommendation_for(demand_drift(latest=1400))])
    _decide(engine, "reject", NOW + timedelta(minutes=1))
    # +20 % value at risk: not material; +150 %: material
    small = _poll(engine, [demand_drift(latest=1480)], [recommendation_for(demand_drift(latest=1480))],
                  NOW + timedelta(minutes=2))
    assert small.created == []
    worse = _poll(engine, [demand_drift(latest=2000)], [recommendation_for(demand_drift(latest=2000))],
                  NOW + timedelta(minutes=3))
    assert len(worse.created) == 1 and worse.held == []
    assert [r.state for r in _recs(engine)] == ["rejected", "open"]
    assert _recs(engine)[0].held_at is None  # no longer held back


def test_a_better_situation_does_not_reraise_a_rejected_drift(db_url):
    engine = make_engine(db_url)
    _poll(engine, [demand_drift(latest=2000)], [recommendation_for(demand_drift(latest=2000))])
    _decide(engine, "reject", NOW + timedelta(minutes=1))
    report = _poll(engine, [demand_drift(latest=1300)], [recommendation_for(demand_drift(latest=1300))],
                   NOW + timedelta(minutes=2))
    assert report.created == [] and len(report.held) == 1


def test_a_rejected_drift_comes_back_after_its_reraise_time(db_url):
    engine = make_engine(db_url)
    drift = demand_drift()
    _poll(engine, [drift], [recommendation_for(drift)])
    decided = NOW + timedelta(minutes=1)
    _decide(engine, "reject", decided)
    held = _poll(engine, [drift], [recommendation_for(drift)], decided + timedelta(days=7) - timedelta(seconds=1))
    assert held.created == []
    back = _poll(engine, [drift], [recommendation_for(drift)], decided + timedelta(days=7))
    assert len(back.created) == 1  # the default: rejected decisions hold for 7 days


def test_reraise_after_is_configurable_per_decision_kind(db_url):
    engine = make_engine(db_url)
    cfg = config(lifecycle={"reraise_after": {"rejected": "1h", "executed": "2d"}})
    drift = demand_drift()

    def poll(at):
        with session_scope(engine) as s:
            return apply_detection(s, [drift], [recommendation_for(drift)], cfg, at)

    poll(NOW)
    rejected = _decide(engine, "reject", NOW)
    assert poll(NOW + timedelta(minutes=59)).created == []
    assert len(poll(NOW + timedelta(hours=1)).created) == 1
    _mark(engine, rejected + 1, "executed")
    from sqlalchemy import update
    with session_scope(engine) as s:
        s.exec(update(RecommendationRow).where(RecommendationRow.id == rejected + 1)
               .values(decided_at=NOW + timedelta(hours=1)))
    assert poll(NOW + timedelta(days=2)).created == []
    assert len(poll(NOW + timedelta(hours=49)).created) == 1


def test_an_executed_drift_stays_decided_until_it_changes_materially(db_url):
    """Execution changed the systems, but until their next read the picture can still show the
    drift: it must not come back as a new recommendation with live buttons, however long."""
    engine = make_engine(db_url)
    drift = demand_drift()
    _poll(engine, [drift], [recommendation_for(drift)])
    approved = _decide(engine, "approve", NOW + timedelta(minutes=1))
    _mark(engine, approved, "executed")
    for days in (1, 30, 365):
        assert _poll(engine, [drift], [recommendation_for(drift)], NOW + timedelta(days=days)).created == []
    worse = _poll(engine, [demand_drift(latest=3000)], [recommendation_for(demand_drift(latest=3000))],
                  NOW + timedelta(days=366))
    assert len(worse.created) == 1


def test_a_decided_drift_that_went_away_and_came_back_is_a_new_decision(db_url):
    engine = make_engine(db_url)
    drift = demand_drift()
    _poll(engine, [drift], [recommendation_for(drift)])
    approved = _decide(engine, "approve", NOW + timedelta(minutes=1))
    _mark(engine, approved, "executed")
    _poll(engine, [], [], NOW + timedelta(minutes=5))  # the plan follows: drift closed
    back = _poll(engine, [drift], [recommendation_for(drift)], NOW + timedelta(days=3))
    assert len(back.created) == 1


def test_an_expired_drift_is_held_for_a_day_by_default(db_url):
    from bot.sweeps import sweep

    engine = make_engine(db_url)
    drift = demand_drift()
    _poll(engine, [drift], [recommendation_for(drift)])
    expired_at = NOW + timedelta(hours=5)  # past the 4 h default deadline
    with session_scope(engine) as s:
        assert sweep(s, config(), expired_at).expired
    assert _poll(engine, [drift], [recommendation_for(drift)], expired_at + timedelta(hours=23)).created == []
    assert len(_poll(engine, [drift], [recommendation_for(drift)], expired_at + timedelta(days=1)).created) == 1


def test_a_failed_execution_is_raised_again_at_once(db_url):
    """Nothing changed in either system: the drift still needs someone to act."""
    engine = make_engine(db_url)
    drift = demand_drift()
    _poll(engine, [drift], [recommendation_for(drift)])
    approved = _decide(engine, "approve", NOW + timedelta(minutes=1))
    _mark(engine, approved, "failed")
    assert len(_poll(engine, [drift], [recommendation_for(drift)], NOW + timedelta(minutes=2)).created) == 1


def _empty(drift):
    from canonical.model import Impact

    return recommendation_for(drift).model_copy(update={
        "actions": [], "impact_if_ignored": Impact(), "impact_if_approved": Impact()})


def test_a_recommendation_with_nothing_in_it_is_never_posted(db_url):
    engine = make_engine(db_url)
    drift = demand_drift()
    report = _poll(engine, [drift], [_empty(drift)])
    assert report.created == [] and _recs(engine) == []


def test_an_open_recommendation_that_empties_is_resolved(db_url):
    engine = make_engine(db_url)
    drift = demand_drift()
    _poll(engine, [drift], [recommendation_for(drift)])
    report = _poll(engine, [drift], [_empty(drift)], NOW + timedelta(minutes=5))
    (rec,) = _recs(engine)
    assert rec.state == "resolved" and report.resolved == [rec.id]


def test_figures_that_move_a_little_do_not_edit_the_message_on_every_pass(db_url):
    """As the clock moves, a shortfall a few hours nearer changes the figures slightly: the
    message is edited when what people decide on changes, not on every pass."""
    engine = make_engine(db_url)
    drift = demand_drift(latest=1400)
    _poll(engine, [drift], [recommendation_for(drift, value=10_000)])
    report = _poll(engine, [drift], [recommendation_for(drift, value=10_040)], NOW + timedelta(minutes=5))
    (rec,) = _recs(engine)
    assert report.updated == [] and rec.version == 1
    report = _poll(engine, [drift], [recommendation_for(drift, value=12_000)], NOW + timedelta(minutes=10))
    assert report.updated == [rec.id]  # 12,000 is another figure to decide on
