"""The recommendation message as the channel sees it, through its whole lifecycle."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from bot.blocks import describe_action, render_note, render_recommendation
from bot.decisions import decide
from bot.lifecycle import apply_detection
from detectors.model import Action
from store.db import make_engine, session_scope
from store.tables import RecState
from store.transitions import transition
from tests.slack_ui._store import assert_within_slack_limits, detect, rows, texts
from tests.support.builders import (
    COORDINATORS,
    NOW,
    PLANNERS,
    config,
    demand_drift,
    recommendation_for,
)


def _render(s, rec_id, now=NOW):
    rec, actions, decisions, drifts = rows(s, rec_id)
    return render_recommendation(rec, actions, decisions, config(), drifts=drifts, now=now)


def _controls(blocks):
    return [b for b in blocks if b["type"] == "actions"]


def test_open_recommendation_shows_evidence_impact_actions_and_controls(db_url):
    engine = make_engine(db_url)
    drift = demand_drift(latest=4000)  # 3,000 units × 25 = 75,000: both teams must approve
    with session_scope(engine) as s:
        rec_id = detect(s, drift, recommendation_for(drift), NOW)
        text, blocks = _render(s, rec_id)

    shown = texts(blocks)
    assert blocks[0] == {"type": "header", "text": {
        "type": "plain_text", "text": ":red_circle: Demand change · HIGH", "emoji": True}}
    assert "*Move 3000 units of SKU-10042 to DC-DAL*" in shown
    assert "<@U0PLAN1> <@U0PLAN2> (planning) · <!subteam^S0LOGISTICS> (logistics)" in shown
    assert "approval needed: 1 from planning and 1 from logistics" in shown
    # evidence: plan vs actual as a planner reads it
    assert "plan 1,000 → latest 4,000 (+3,000)" in shown
    assert "cause: location DC-DAL" in shown
    assert "*If ignored*\n3,000 units short\n75,000 value at risk\n0 days of service at risk" \
        in shown
    assert "*If approved*\n0 value at risk" in shown
    assert "*Logistics*\n1. Transfer 3,000 × SKU-10042 DC-ATL → DC-DAL" in shown
    assert "*Planning*\n2. Update forecast of SKU-10042 at DC-DAL for 2026-11-23 to 4,000" \
        in shown
    # 09:00 UTC + 2 h deadline = 05:00 in Chicago (the first owning team), in November CST
    assert "decide by 05:00 CST" in shown
    assert text == (f"[HIGH] #{rec_id} Demand change: Move 3000 units of SKU-10042 to DC-DAL"
                    " · for <@U0PLAN1> <@U0PLAN2> (planning) · "
                    "<!subteam^S0LOGISTICS> (logistics)")

    (controls,) = _controls(blocks)
    assert controls["block_id"] == f"rec_actions:{rec_id}"
    approve, reject, modify, snooze = controls["elements"]
    assert (approve["action_id"], approve["style"], approve["text"]["text"]) == \
        ("rec_approve", "primary", "Approve")
    assert (reject["action_id"], reject["style"], reject["text"]["text"]) == \
        ("rec_reject", "danger", "Reject")
    assert (modify["action_id"], modify["text"]["text"]) == ("rec_modify", "Modify")
    assert "style" not in modify
    assert {e["value"] for e in (approve, reject, modify)} == {str(rec_id)}
    assert snooze["type"] == "static_select" and snooze["action_id"] == "rec_snooze"
    assert [(o["text"]["text"], o["value"]) for o in snooze["options"]] == [
        ("1 h", "1h"), ("4 h", "4h"), ("1 day", "1d"), ("1 week", "1w")]
    assert_within_slack_limits(blocks)


def test_after_approval_no_buttons_and_who_approved_when_in_team_time(db_url):
    engine = make_engine(db_url)
    drift = demand_drift()  # 10,000 at risk: planning alone decides
    with session_scope(engine) as s:
        rec_id = detect(s, drift, recommendation_for(drift), NOW)
    approved_at = NOW + timedelta(hours=1, minutes=42)  # 10:42 UTC = 04:42 CST
    with session_scope(engine) as s:
        assert decide(s, rec_id, PLANNERS[0], {"planning"}, "approve", now=approved_at).recorded
    with session_scope(engine) as s:
        text, blocks = _render(s, rec_id, now=approved_at)
    shown = texts(blocks)
    assert not _controls(blocks)
    assert ":white_check_mark: Approved by <@U0PLAN1> at 04:42 CST — queued for execution" \
        in shown
    assert ":hourglass_flowing_sand: 1. Transfer 400 × SKU-10042 DC-ATL → DC-DAL — _pending_" \
        in shown
    assert "decide by" not in shown
    assert text.endswith("— approved")

    with session_scope(engine) as s:
        transition(s, rec_id, from_states=["approved"], to_state="executing", actor="system:t",
                   now=approved_at)
    with session_scope(engine) as s:
        _, blocks = _render(s, rec_id, now=approved_at)
    assert ":white_check_mark: Approved by <@U0PLAN1> at 04:42 CST — executing" in texts(blocks)


def test_partial_execution_shows_each_action_status(db_url):
    engine = make_engine(db_url)
    drift = demand_drift()
    with session_scope(engine) as s:
        rec_id = detect(s, drift, recommendation_for(drift), NOW)
        decide(s, rec_id, PLANNERS[0], {"planning"}, "approve", now=NOW)
    with session_scope(engine) as s:
        _, actions, _, _ = rows(s, rec_id)
        actions[0].status, actions[0].detail = "failed", "TMS refused: lane DC-ATL>DC-DAL closed"
        actions[1].status = "done"
        s.add_all(actions)
        transition(s, rec_id, from_states=["approved"], to_state="executing", actor="t", now=NOW)
        transition(s, rec_id, from_states=["executing"], to_state="partially_executed",
                   actor="t", now=NOW)
    with session_scope(engine) as s:
        _, blocks = _render(s, rec_id)
    shown = texts(blocks)
    assert ":warning: Approved by <@U0PLAN1> at 03:00 CST · Partially executed" in shown
    assert (":x: 1. Transfer 400 × SKU-10042 DC-ATL → DC-DAL — _failed_: "
            "TMS refused: lane DC-ATL>DC-DAL closed") in shown
    assert ":white_check_mark: 2. Update forecast of SKU-10042 at DC-DAL for 2026-11-23 to " \
        "1,400 — _done_" in shown
    assert not _controls(blocks)


def test_multi_team_approval_shows_who_approved_and_who_is_still_needed(db_url):
    engine = make_engine(db_url)
    drift = demand_drift(latest=4000)
    with session_scope(engine) as s:
        rec_id = detect(s, drift, recommendation_for(drift), NOW)
        result = decide(s, rec_id, PLANNERS[0], {"planning"}, "approve", now=NOW)
        assert result.missing == {"logistics": 1}
    with session_scope(engine) as s:
        _, blocks = _render(s, rec_id)
    assert ":ballot_box_with_check: Approved by <@U0PLAN1> (planning) · still needed: " \
           "1 from logistics" in texts(blocks)
    assert len(_controls(blocks)) == 1  # logistics still has to decide

    with session_scope(engine) as s:
        decide(s, rec_id, COORDINATORS[0], {"logistics"}, "approve",
               now=NOW + timedelta(minutes=20))
    with session_scope(engine) as s:
        _, blocks = _render(s, rec_id)
    assert not _controls(blocks)
    assert ":white_check_mark: Approved by <@U0PLAN1> (planning), <@U0LOG1> (logistics) at " \
           "03:20 CST — queued for execution" in texts(blocks)


def test_rejected_shows_who_and_why(db_url):
    engine = make_engine(db_url)
    drift = demand_drift()
    with session_scope(engine) as s:
        rec_id = detect(s, drift, recommendation_for(drift), NOW)
        decide(s, rec_id, PLANNERS[1], {"planning"}, "reject", now=NOW + timedelta(minutes=5),
               reason="promo was cancelled")
    with session_scope(engine) as s:
        _, blocks = _render(s, rec_id)
    shown = texts(blocks)
    assert ":x: Rejected by <@U0PLAN2> at 03:05 CST: promo was cancelled" in shown
    assert not _controls(blocks)
    # what was proposed stays readable, without a "pending" that will never run
    assert "*Logistics*\n1. Transfer 400 × SKU-10042 DC-ATL → DC-DAL" in shown
    assert "_pending_" not in shown


def test_snoozed_says_when_it_returns_and_reopened_gets_buttons_back(db_url):
    engine = make_engine(db_url)
    drift = demand_drift()
    with session_scope(engine) as s:
        rec_id = detect(s, drift, recommendation_for(drift), NOW)
        decide(s, rec_id, PLANNERS[0], {"planning"}, "snooze", now=NOW,
               snooze_for=timedelta(hours=4))
    with session_scope(engine) as s:
        _, blocks = _render(s, rec_id)
    assert ":zzz: Snoozed by <@U0PLAN1> until 07:00 CST — it comes back for a decision then." \
        in texts(blocks)
    assert not _controls(blocks)

    with session_scope(engine) as s:  # the sweep wakes it up
        transition(s, rec_id, from_states=["snoozed"], to_state="open", actor="system:sweep",
                   changes={"snoozed_until": None}, now=NOW + timedelta(hours=4))
    with session_scope(engine) as s:
        _, blocks = _render(s, rec_id, now=NOW + timedelta(hours=4))
    assert ":alarm_clock: Snooze ended — this needs a decision again." in texts(blocks)
    assert len(_controls(blocks)) == 1


def test_superseded_points_to_its_replacement(db_url):
    engine = make_engine(db_url)
    first, worse = demand_drift(latest=1400), demand_drift(latest=3000)
    with session_scope(engine) as s:
        old_id = apply_detection(s, [first], [recommendation_for(first)], config(),
                                 NOW).created[0]
    with session_scope(engine) as s:
        report = apply_detection(s, [worse], [recommendation_for(worse)], config(),
                                 NOW + timedelta(hours=1))
        assert report.superseded == [(old_id, old_id + 1)]
    with session_scope(engine) as s:
        _, blocks = _render(s, old_id)
    assert f":arrows_counterclockwise: Superseded by #{old_id + 1} — decide there." \
        in texts(blocks)
    assert not _controls(blocks)


def test_two_hundred_affected_items_stay_within_slack_limits(db_url):
    engine = make_engine(db_url)
    drift = demand_drift(latest=4000)
    rec = recommendation_for(drift)
    rec = rec.model_copy(update={
        "affected": [{"sku": f"SKU-{i:05d}", "location": "DC-DAL", "period": "2026-11-23",
                      "planned_qty": 1000 + i, "latest_qty": 1500 + i} for i in range(200)],
        "actions": [Action(system="logistics", operation="create_transfer",
                           params={"sku": f"SKU-{i:05d}", "from": "DC-ATL", "to": "DC-DAL",
                                   "qty": 10 + i}) for i in range(200)]
        + [Action(system="planning", operation="update_forecast",
                  params={"sku": f"SKU-{i:05d}", "location": "DC-DAL", "period": "2026-11-23",
                          "from_qty": 1000, "to_qty": 1500}) for i in range(200)],
        "alternatives": [f"Option {i} — " + "x" * 200 for i in range(40)],
        "summary": "Move stock " + "very " * 800 + "urgently",
    })
    with session_scope(engine) as s:
        rec_id = detect(s, drift, rec, NOW)
        text, blocks = _render(s, rec_id)
    assert_within_slack_limits(blocks)
    shown = texts(blocks)
    assert "• SKU-00000 · DC-DAL · 2026-11-23: plan 1,000 → latest 1,500 (+500)" in shown
    assert "more_" in shown  # "+N more" instead of failing
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section" and b.get("text")]
    evidence = next(t for t in sections if t.startswith("*Evidence*"))
    listed = evidence.count("\n• ")  # 200 affected items + the drift's own evidence line
    assert 10 < listed < 201 and evidence.endswith(f"\n_+{201 - listed} more_")
    assert any(t.startswith("*Logistics*") and t.endswith("more_") for t in sections)
    assert len(_controls(blocks)) == 1 and blocks[-1]["type"] == "actions"
    assert len(text) <= 1000


def test_render_note_splits_long_text_at_line_breaks():
    lines = [f"• step {i}: " + "done " * 20 for i in range(100)]
    blocks = render_note("\n".join(lines))
    assert len(blocks) >= 3
    assert all(b["type"] == "section" and len(b["text"]["text"]) <= 3000 for b in blocks)
    assert "\n".join(b["text"]["text"] for b in blocks) == "\n".join(lines)
    assert render_note("Executed.") == [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Executed."}}]


def test_actions_in_words():
    assert describe_action("create_transfer", {
        "sku": "SKU-10042", "from": "DC-ATL", "to": "DC-DAL", "qty": 400.0, "carrier": "XPO",
        "ship_date": "2026-11-18", "arrive_by": "2026-11-20"}) == (
        "Transfer 400 × SKU-10042 DC-ATL → DC-DAL "
        "(via XPO, ship 2026-11-18, arrive by 2026-11-20)")
    assert describe_action("update_forecast", {
        "sku": "SKU-1", "location": "DC-DAL", "period": "2026-11-23", "from_qty": 1000,
        "to_qty": 1250.5}) == "Update forecast of SKU-1 at DC-DAL for 2026-11-23: 1,000 → 1,250.5"
    assert describe_action("reassign_carrier", {
        "from_carrier": "ACME", "to_carrier": "XPO", "origin": "DC-ATL",
        "destination": "DC-DAL", "period": "2026-11-23", "qty": 12}) == \
        "Move 12 from ACME to XPO on DC-ATL → DC-DAL for 2026-11-23"
    # timestamps in the team's zone, plain dates left alone
    assert describe_action("reschedule_receipt", {
        "shipment_id": "SH-9", "location": "DC-DAL", "from_date": "2026-11-19T15:00:00+00:00",
        "to_date": "2026-11-22T15:00:00Z", "lines": [{"sku": "SKU-1", "qty": 500.0}]},
        ZoneInfo("America/Chicago")) == (
        "Reschedule receipt of SH-9 at DC-DAL from Thu 19 Nov 09:00 CST to Sun 22 Nov 09:00 CST "
        "(1 line(s), 500 units)")
    assert describe_action("hold_order", {"order_id": "O-1", "hours": 6}) == \
        "Hold order: hours 6, order id O-1"  # unknown keys alphabetically, as on PostgreSQL


def test_expired_and_resolved_status(db_url):
    engine = make_engine(db_url)
    drift = demand_drift()
    with session_scope(engine) as s:
        rec_id = detect(s, drift, recommendation_for(drift), NOW)
        transition(s, rec_id, from_states=["open"], to_state=RecState.EXPIRED, actor="t",
                   changes={"decided_at": NOW + timedelta(hours=4)}, now=NOW)
    with session_scope(engine) as s:
        _, blocks = _render(s, rec_id)
    assert ":hourglass: Expired without a decision at 07:00 CST — escalated. Nothing was " \
           "changed in either system." in texts(blocks)
    assert not _controls(blocks)
