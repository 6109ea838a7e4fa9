"""The recommendation message as the channel sees it: the decision in ten seconds, through its
whole lifecycle, for every kind the detectors produce."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.blocks import (
    decision_line,
    describe_action,
    render_details,
    render_note,
    render_recommendation,
)
from bot.decisions import decide
from bot.lifecycle import apply_detection
from canonical.model import Action, Impact
from store.db import make_engine, session_scope
from store.tables import RecState
from store.transitions import transition
from tests.slack_ui._scenarios import MONDAY, SCENARIOS
from tests.slack_ui._store import (
    BOTH_DECIDE,
    STATES,
    assert_within_slack_limits,
    detect,
    drive,
    rows,
    store_scenario,
    texts,
)
from tests.support.builders import (
    COORDINATORS,
    NOW,
    PLANNERS,
    config,
    demand_drift,
    recommendation_for,
)

# What a planner must never read: placeholders, missing values, and names only code uses.
_EMOJI = re.compile(r":[a-z0-9_+-]+:")
_GARBAGE = re.compile(r"\?|\bNone\b|\bnull\b|\bnan\b|\bNaN\b|\binf\b|\b[a-z]+(?:_[a-z]+)+\b"
                      r"|\(s\)")


def garbage(text: str) -> list[str]:
    return _GARBAGE.findall(_EMOJI.sub("", text))


def _render(s, rec_id, now=NOW, cfg=None):
    rec, actions, decisions, drifts = rows(s, rec_id)
    return render_recommendation(rec, actions, decisions, cfg or config(), drifts=drifts, now=now)


def _controls(blocks):
    return [b for b in blocks if b["type"] == "actions"]


def _buttons(blocks) -> dict[str, dict]:
    found = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    found += [b["accessory"] for b in blocks if b.get("accessory")]
    return {e["action_id"]: e for e in found}


def _sections(blocks) -> list[str]:
    """Every section's text, its fields as one text (a section is read as a whole)."""
    out = []
    for b in blocks:
        if b["type"] == "section":
            out.append(b["text"]["text"] if b.get("text") else "\n".join(
                f["text"] for f in b["fields"]))
        if b["type"] == "context":
            out.append("\n".join(e["text"] for e in b["elements"]))
    return out


def assert_collapsed(blocks: list[dict]) -> None:
    """What a planner takes in at a glance: 12 blocks at most, no section over 600 characters."""
    assert len(blocks) <= 12, len(blocks)
    assert all(len(text) <= 600 for text in _sections(blocks)), max(map(len, _sections(blocks)))
    assert_within_slack_limits(blocks)


# --- the message is the decision -----------------------------------------------------------------


def test_an_open_message_says_the_decision_its_money_and_the_actions_in_order(db_url):
    engine = make_engine(db_url)
    drifts, rec = SCENARIOS["demand up"]()
    with session_scope(engine) as s:
        rec_id = store_scenario(s, drifts, rec, MONDAY, config())
        text, blocks = _render(s, rec_id, now=MONDAY)

    decision = ("Set the forecast to the latest demand (+80 units over 2 periods); transfer 220 "
                "units of A to DC-A from DC-C (220) by Fri 4 Dec 10:00 CST — avoids $5,500 at "
                "risk, costs $220")
    assert [b["type"] for b in blocks] == ["header", "section", "section", "section", "section",
                                           "context", "actions"]
    assert blocks[0]["text"]["text"] == f":rotating_light: Critical · Demand change · #{rec_id}"
    assert blocks[1]["text"]["text"] == (
        f"*{decision}*\nDemand for A at DC-A is up 80 units over 2 periods")
    assert [f["text"] for f in blocks[2]["fields"]] == [
        "*If ignored*\n220 units below safety stock for 7.3 days\n"
        "120 units unserved, out of stock 4 days\n$5,500 at risk",
        "*If approved*\nNothing at risk",
        "*Cost*\n$220",
        "*Decide by*\n22:00 CST",  # the decision expires (routing: 4 h) before the actions would
    ]
    # planning first, in the order they execute; the numbers follow the order shown
    assert blocks[3]["text"]["text"] == (
        "*Planning*\n1. Update forecast of A at DC-A for 2026-11-30: 170 → 210\n"
        "2. Update forecast of A at DC-A for 2026-12-07: 170 → 210")
    assert blocks[4]["text"]["text"] == (
        "*Logistics*\n3. Transfer 220 units of A from DC-C to DC-A "
        "(via CARR-Z, ship 2026-11-30, arrive by 2026-12-02)")
    assert blocks[5]["elements"][0]["text"] == \
        ":hourglass_flowing_sand: approval needed: 1 from planning (<@U0PLAN1> <@U0PLAN2>)"
    assert text == (f"Critical · Demand change #{rec_id}: {decision} · for <@U0PLAN1> "
                    "<@U0PLAN2> (planning)")

    (controls,) = _controls(blocks)
    assert controls["block_id"] == f"rec_actions:{rec_id}"
    approve, reject, modify, snooze, details = controls["elements"]
    assert (approve["action_id"], approve["style"], approve["text"]["text"]) == \
        ("rec_approve", "primary", "Approve")
    assert (reject["action_id"], reject["style"], reject["text"]["text"]) == \
        ("rec_reject", "danger", "Reject")
    assert (modify["action_id"], modify["text"]["text"]) == ("rec_modify", "Modify")
    assert (details["action_id"], details["text"]["text"]) == ("rec_details", "Details")
    assert "style" not in modify and "style" not in details
    assert {e["value"] for e in (approve, reject, modify, details)} == {str(rec_id)}
    assert snooze["type"] == "static_select" and snooze["action_id"] == "rec_snooze"
    assert [(o["text"]["text"], o["value"]) for o in snooze["options"]] == [
        ("1 h", "1h"), ("4 h", "4h"), ("1 day", "1d"), ("1 week", "1w")]
    assert_collapsed(blocks)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_kind_in_every_state_is_readable_at_a_glance(db_url, name):
    """Demand up and down, late shipment, stock-out, capacity cut and spare: open, partly
    approved, executed, failed, rejected, superseded and the rest."""
    engine = make_engine(db_url)
    cfg = config(routing=BOTH_DECIDE)
    drifts, rec = SCENARIOS[name]()
    for state in STATES:
        if state == "partially executed" and len(rec.actions) < 2:
            continue
        with session_scope(engine) as s:
            rec_id = store_scenario(s, drifts, rec, MONDAY, cfg, tag=state)
            drive(s, rec_id, state, MONDAY)
        later = MONDAY + timedelta(hours=1)
        with session_scope(engine) as s:
            row, actions, decisions, found = rows(s, rec_id)
            text, blocks = render_recommendation(row, actions, decisions, cfg, drifts=found,
                                                 now=later)
            line = decision_line(row, cfg, now=later)
            _, details = render_details(row, actions, decisions, cfg, drifts=found, now=later)
        shown = texts(blocks)
        assert_collapsed(blocks)
        assert line in text, (state, text)  # the notification carries the decision
        assert not garbage(text + "\n" + shown), (state, garbage(text + shown))
        assert not garbage(texts(details)), (state, garbage(texts(details)))
        assert_within_slack_limits(details)
        buttons = _buttons(blocks)
        decidable = state in ("open", "partly approved")
        assert {"rec_approve", "rec_reject", "rec_modify"} <= set(buttons) if decidable \
            else not _controls(blocks), state
        assert buttons["rec_details"]["value"] == str(rec_id)  # the details are never lost
        assert ("approval needed" in shown) == (state == "open"), state
        assert ("still needed" in shown) == (state == "partly approved"), state
        assert ("Decide by" in shown) == (state in ("open", "partly approved", "snoozed")), state


def test_the_state_line_drops_who_is_needed_once_they_approved(db_url):
    engine = make_engine(db_url)
    cfg = config(routing=BOTH_DECIDE)
    drifts, rec = SCENARIOS["demand up"]()
    with session_scope(engine) as s:
        rec_id = store_scenario(s, drifts, rec, MONDAY, cfg)
        shown = texts(_render(s, rec_id, MONDAY, cfg)[1])
    assert "approval needed: 1 from planning (<@U0PLAN1> <@U0PLAN2>) and 1 from logistics " \
           "(<!subteam^S0LOGISTICS>)" in shown

    with session_scope(engine) as s:
        assert decide(s, rec_id, PLANNERS[0], {"planning"}, "approve",
                      now=MONDAY + timedelta(minutes=5)).missing == {"logistics": 1}
    with session_scope(engine) as s:
        text, blocks = _render(s, rec_id, MONDAY, cfg)
    shown = texts(blocks)
    assert ":ballot_box_with_check: Approved by <@U0PLAN1> (planning) at 18:05 CST · still "\
           "needed: 1 from logistics (<!subteam^S0LOGISTICS>)" in shown
    assert "from planning" not in shown and "approval needed" not in shown
    assert len(_controls(blocks)) == 1  # logistics still has to decide

    with session_scope(engine) as s:
        decide(s, rec_id, COORDINATORS[0], {"logistics"}, "approve",
               now=MONDAY + timedelta(minutes=20))
    with session_scope(engine) as s:
        text, blocks = _render(s, rec_id, MONDAY, cfg)
    shown = texts(blocks)
    assert "still needed" not in shown and "approval needed" not in shown
    assert ":white_check_mark: Approved by <@U0PLAN1> (planning), <@U0LOG1> (logistics) at " \
           "18:20 CST — queued for execution" in shown
    assert not _controls(blocks) and _buttons(blocks)["rec_details"]
    assert text.endswith("— approved")  # no one is pinged any more


def test_executed_and_failed_say_what_each_system_did(db_url):
    engine = make_engine(db_url)
    drifts, rec = SCENARIOS["capacity spare"]()  # one planning and one logistics action
    cfg = config()
    ids = {}
    for state in ("executed", "failed", "partially executed", "executing"):
        with session_scope(engine) as s:
            ids[state] = store_scenario(s, drifts, rec, MONDAY, cfg, tag=state)
            drive(s, ids[state], state, MONDAY)
    with session_scope(engine) as s:
        shown = {state: texts(_render(s, i, MONDAY, cfg)[1]) for state, i in ids.items()}
    assert "Approved by <@U0LOG1> at 01:20 CET · Executed in Planning and Logistics" in shown["executed"]
    assert ":white_check_mark: 1. Set planned capacity of carrier FAST for 2026-11-30: 50 → 200 "\
           "— _done_" in shown["executed"]
    assert ":x: Approved by <@U0LOG1> at 01:20 CET · Execution failed — nothing was changed " \
           "(Planning failed, Logistics failed)" in shown["failed"]
    assert ":x: 2. Confirm 160 spare on carrier FAST for 2026-11-30 — _failed_: TMS refused: " \
           "lane closed" in shown["failed"]
    assert ":warning: Approved by <@U0LOG1> at 01:20 CET · Partially executed: Planning done, " \
           "Logistics failed — finish the failed steps by hand" in shown["partially executed"]
    assert "— executing: Planning done, Logistics pending" in shown["executing"]


def test_when_doing_nothing_is_cheaper_the_message_says_so(db_url):
    engine = make_engine(db_url)
    drifts, rec = SCENARIOS["late shipment"]()
    cheap = rec.model_copy(update={"options": [
        rec.options[0].model_copy(update={"total_cost": 400.31, "action_cost": 400.0}),
        *rec.options[1:]], "cost": 400.0})
    with session_scope(engine) as s:
        rec_id = store_scenario(s, drifts, cheap, MONDAY, config())
        _, blocks = _render(s, rec_id, MONDAY)
    assert "*Cost*\n$400\n_Doing nothing costs less in all: $7.81 against $400_" in texts(blocks)


def test_a_deadline_that_has_come_asks_to_act_now_only_when_something_is_at_risk(db_url):
    engine = make_engine(db_url)
    drifts, rec = SCENARIOS["late shipment"]()
    assert rec.decide_by is None  # moving a date in the plan has no lead time to beat
    rec = rec.model_copy(update={"decide_by": MONDAY})  # as if an expedite were recommended
    calm = rec.model_copy(update={"impact_if_ignored": Impact(), "impact_if_approved": Impact()})
    with session_scope(engine) as s:
        urgent = store_scenario(s, drifts, rec, MONDAY, config(), tag="urgent")
        quiet = store_scenario(s, drifts, calm, MONDAY, config(), tag="quiet")
        urgent_blocks, quiet_blocks = _render(s, urgent, MONDAY)[1], _render(s, quiet, MONDAY)[1]
    assert urgent_blocks[1]["text"]["text"].startswith("*Act now: move 1 planned receipt")
    assert "*Decide by*\nNow\n_expires 02:00 CET_" in texts(urgent_blocks)
    assert quiet_blocks[1]["text"]["text"].startswith("*Move 1 planned receipt to the new ETA — ")
    assert "*Decide by*\n02:00 CET" in texts(quiet_blocks)


# --- words, numbers, money and time ------------------------------------------------------------


def test_money_in_the_configured_currency(db_url):
    engine = make_engine(db_url)
    drifts, rec = SCENARIOS["demand up"]()
    cfg = config(currency="eur")
    assert cfg.currency == "EUR"
    with session_scope(engine) as s:
        rec_id = store_scenario(s, drifts, rec, MONDAY, cfg)
        row, actions, decisions, found = rows(s, rec_id)
        text, blocks = render_recommendation(row, actions, decisions, cfg, drifts=found,
                                             now=MONDAY)
        _, details = render_details(row, actions, decisions, cfg, drifts=found, now=MONDAY)
    shown = texts(blocks) + texts(details) + text
    assert "avoids €5,500 at risk, costs €220" in text
    assert "*Cost*\n€220" in shown and "€5,500 at risk" in shown
    assert "$224 in all" not in shown and "€224 in all (€220 actions + €4.17 shortage penalty)" \
        in shown
    assert "$" not in shown


@pytest.mark.parametrize("name, zone, states", [
    ("late shipment", "CET", ("open", "snoozed", "rejected", "executed")),  # logistics: Berlin
    ("demand up", "CST", ("open", "snoozed", "expired", "failed")),  # planning: Chicago
])
def test_every_time_in_one_zone_the_deciding_teams(db_url, name, zone, states):
    engine = make_engine(db_url)
    cfg = config()
    drifts, rec = SCENARIOS[name]()
    for state in states:
        with session_scope(engine) as s:
            rec_id = store_scenario(s, drifts, rec, MONDAY, cfg, tag=state)
            drive(s, rec_id, state, MONDAY)
        with session_scope(engine) as s:
            row, actions, decisions, found = rows(s, rec_id)
            text, blocks = render_recommendation(row, actions, decisions, cfg, drifts=found,
                                                 now=MONDAY + timedelta(days=1))
            _, details = render_details(row, actions, decisions, cfg, drifts=found,
                                        now=MONDAY + timedelta(days=1))
        shown = "\n".join([text, texts(blocks), texts(details)])
        zones = set(re.findall(r"\d{2}:\d{2} ([A-Z][A-Za-z]{1,4}|UTC[+-]\d+)\b", shown))
        assert zones == {zone}, (state, zones)
        assert not re.search(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", shown), state  # no raw stamps
        assert f"times in {zone} (" in shown


def test_kinds_and_severities_in_words(db_url):
    engine = make_engine(db_url)
    headers = {}
    with session_scope(engine) as s:
        for name, make in SCENARIOS.items():
            drifts, rec = make()
            rec_id = store_scenario(s, drifts, rec, MONDAY, config(), tag=name)
            headers[name] = _render(s, rec_id, MONDAY)[1][0]["text"]["text"].rsplit(" · #", 1)[0]
    assert headers == {
        "demand up": ":rotating_light: Critical · Demand change",
        "demand down": ":large_orange_circle: Medium · Demand change",
        "late shipment": ":large_orange_circle: Medium · Late shipment",
        "stock-out": ":rotating_light: Critical · Stock-out risk",
        "capacity cut": ":large_blue_circle: Low · Capacity change",  # 0.4 units for days: not urgent
        "capacity spare": ":large_blue_circle: Low · Capacity change",
    }


# --- older bodies, empty fields ----------------------------------------------------------------

OPERATIONS = {
    "create_transfer": ("sku", "from", "to", "qty", "carrier", "ship_date", "arrive_by"),
    "update_forecast": ("sku", "location", "period", "from_qty", "to_qty", "qty"),
    "reduce_inbound": ("shipment_id", "sku", "destination", "reduce_by", "from_qty"),
    "reschedule_receipt": ("shipment_id", "location", "from_date", "to_date", "lines"),
    "expedite_shipment": ("shipment_id", "carrier", "target_arrival", "qty", "sku"),
    "request_status": ("shipment_id", "carrier"),
    "update_replenishment_plan": ("sku", "location", "qty", "need_by"),
    "update_capacity_plan": ("resource_type", "resource_id", "period", "from_capacity",
                             "to_capacity"),
    "confirm_capacity": ("resource_type", "resource_id", "period", "qty"),
    "reassign_carrier": ("from_carrier", "to_carrier", "origin", "destination", "period", "qty",
                         "shipments"),
    "rephase_plan": ("resource_type", "resource_id", "from_period", "to_period", "qty", "note"),
    "hold_order": ("order_id", "hours"),  # one alignbot does not know
}
_EMPTY_VALUES = (None, "", float("nan"), [])


def _older(body: dict) -> dict:
    """A body as versions before options, costs and the projection stored it."""
    old_impact = ("units_short", "value_at_risk", "service_days_at_risk", "orders_at_risk")
    kept = {k: v for k, v in body.items() if k in (
        "fingerprint", "kind", "drift_fingerprints", "summary", "actions", "severity",
        "rationale", "alternatives", "cause")}
    for side in ("impact_if_ignored", "impact_if_approved"):
        kept[side] = {k: v for k, v in body[side].items() if k in old_impact}
    kept["affected"] = [{k: v for k, v in item.items() if k in ("sku", "location", "period",
                                                                "shipment_id", "resource_id")}
                        for item in body.get("affected") or []]
    return kept


def _emptied(body: dict, value) -> dict:
    """Every optional field of a body present but empty (or not a number)."""
    def empty(mapping: dict) -> dict:
        return {k: value for k in mapping}

    return {
        **body, "decide_by": value, "cost": value, "rationale": value, "alternatives": [value],
        "impact_if_ignored": empty(body["impact_if_ignored"]),
        "impact_if_approved": empty(body["impact_if_approved"]),
        "options": [{**empty(o), "recommended": i == 0, "impact": empty(o["impact"])}
                    for i, o in enumerate(body.get("options") or [])] + [{}],
        "affected": [empty(item) for item in body.get("affected") or []] + [{}],
        "cause": empty(body.get("cause") or {}),
    }


@pytest.mark.parametrize("state", ["open", "failed"])
def test_missing_or_empty_fields_never_show_as_placeholders(db_url, state):
    """Each kind with its body as detected, as older versions stored it, emptied, and with
    every action operation's params missing or empty: no ``?``, ``None``, ``nan`` or raw names."""
    engine = make_engine(db_url)
    cfg = config(routing=BOTH_DECIDE)
    with session_scope(engine) as s:
        stored = {}
        for name, make in SCENARIOS.items():
            drifts, rec = make()
            stored[name] = store_scenario(s, drifts, rec, MONDAY, cfg, tag=name)
            drive(s, stored[name], state, MONDAY)
    with session_scope(engine) as s:
        for name, rec_id in stored.items():
            row, actions, decisions, found = rows(s, rec_id)
            s.expunge_all()  # what follows is rendered, never written back
            variants = {"as detected": row.body, "older": _older(row.body),
                        "no body": {}, **{f"emptied {v!r}": _emptied(row.body, v)
                                          for v in _EMPTY_VALUES}}
            for variant, body in variants.items():
                row.body = body
                for drift_rows in (found, []):
                    for render in (render_recommendation, render_details):
                        text, blocks = render(row, actions, decisions, cfg, drifts=drift_rows,
                                              now=MONDAY)
                        shown = text + "\n" + texts(blocks)
                        assert not garbage(shown), (name, variant, render.__name__,
                                                    garbage(shown), shown)
            row.body = _older(row.body)
            for operation, keys in OPERATIONS.items():
                for params in [{}, *({k: v for k in keys} for v in _EMPTY_VALUES)]:
                    for a in actions:
                        a.operation, a.params, a.detail = operation, params, ""
                    text, blocks = render_recommendation(row, actions, decisions, cfg, now=MONDAY)
                    shown = text + "\n" + texts(blocks)
                    assert not garbage(shown), (operation, params, garbage(shown))
                    assert_collapsed(blocks)


def test_actions_in_words():
    assert describe_action("create_transfer", {
        "sku": "SKU-10042", "from": "DC-ATL", "to": "DC-DAL", "qty": 400.0, "carrier": "XPO",
        "ship_date": "2026-11-18", "arrive_by": "2026-11-20"}) == (
        "Transfer 400 units of SKU-10042 from DC-ATL to DC-DAL "
        "(via XPO, ship 2026-11-18, arrive by 2026-11-20)")
    assert describe_action("create_transfer", {"sku": "SKU-1", "qty": 1}) == \
        "Transfer 1 unit of SKU-1"
    assert describe_action("update_forecast", {
        "sku": "SKU-1", "location": "DC-DAL", "period": "2026-11-23", "from_qty": 1000,
        "to_qty": 1250.5}) == "Update forecast of SKU-1 at DC-DAL for 2026-11-23: 1,000 → 1,250.5"
    assert describe_action("reassign_carrier", {
        "from_carrier": "ACME", "to_carrier": "XPO", "origin": "DC-ATL",
        "destination": "DC-DAL", "period": "2026-11-23", "qty": 12, "shipments": ["S1"]}) == \
        "Move 12 units from ACME to XPO on DC-ATL → DC-DAL for 2026-11-23 (1 shipment: S1)"
    # the carrier that lost the load is not known: it is left out, never "?"
    assert describe_action("reassign_carrier", {
        "from_carrier": "", "to_carrier": "BLUEWAY", "qty": 1151.0}) == \
        "Move 1,151 units to BLUEWAY"
    # timestamps in the team's zone, plain dates left alone
    assert describe_action("reschedule_receipt", {
        "shipment_id": "SH-9", "location": "DC-DAL", "from_date": "2026-11-19T15:00:00+00:00",
        "to_date": "2026-11-22T15:00:00Z", "lines": [{"sku": "SKU-1", "qty": 500.0},
                                                     {"sku": "SKU-2", "qty": 12.5}]},
        ZoneInfo("America/Chicago")) == (
        "Reschedule receipt of SH-9 at DC-DAL from Thu 19 Nov 09:00 CST to Sun 22 Nov 09:00 CST "
        "(2 lines, 512.5 units)")
    assert describe_action("rephase_plan", {"resource_type": "carrier", "resource_id": "ACME",
                                            "from_period": "2026-11-30", "to_period": None,
                                            "qty": 30.0, "note": None}) == \
        "Rephase 30 units on carrier ACME from 2026-11-30 to a later period — none has room"
    assert describe_action("hold_order", {"order_id": "O-1", "hours": 6, "note": None}) == \
        "Hold order: hours 6, order id O-1"  # unknown keys alphabetically, as on PostgreSQL


# --- the lifecycle, on recommendations as older versions built them ---------------------------


def test_after_approval_no_decision_buttons_and_who_approved_when_in_team_time(db_url):
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
    assert _buttons(blocks)["rec_details"]["value"] == str(rec_id)
    assert ":white_check_mark: Approved by <@U0PLAN1> at 04:42 CST — queued for execution" \
        in shown
    # numbered as they run: planning first
    assert ":hourglass_flowing_sand: 1. Update forecast of SKU-10042 at DC-DAL for 2026-11-23: "\
           "1,400 — _pending_" in shown
    assert ":hourglass_flowing_sand: 2. Transfer 400 units of SKU-10042 from DC-ATL to DC-DAL "\
           "— _pending_" in shown
    assert "Decide by" not in shown
    assert text.endswith("— approved")

    with session_scope(engine) as s:
        transition(s, rec_id, from_states=["approved"], to_state="executing", actor="system:t",
                   now=approved_at)
    with session_scope(engine) as s:
        _, blocks = _render(s, rec_id, now=approved_at)
    assert ":white_check_mark: Approved by <@U0PLAN1> at 04:42 CST — executing: Planning " \
           "pending, Logistics pending" in texts(blocks)


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
    assert ":warning: Approved by <@U0PLAN1> at 03:00 CST · Partially executed: Planning done, " \
           "Logistics failed — finish the failed steps by hand" in shown
    assert (":x: 2. Transfer 400 units of SKU-10042 from DC-ATL to DC-DAL — _failed_: "
            "TMS refused: lane DC-ATL>DC-DAL closed") in shown
    assert ":white_check_mark: 1. Update forecast of SKU-10042 at DC-DAL for 2026-11-23: " \
        "1,400 — _done_" in shown
    assert not _controls(blocks)


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
    assert "*Logistics*\n2. Transfer 400 units of SKU-10042 from DC-ATL to DC-DAL" in shown
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


def test_two_hundred_affected_items_and_actions_stay_short_and_in_details(db_url):
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
        row, actions, decisions, drifts = rows(s, rec_id)
        details_text, details = render_details(row, actions, decisions, config(), drifts=drifts,
                                               now=NOW)
    assert_collapsed(blocks)
    sections = _sections(blocks)
    planning = next(t for t in sections if t.startswith("*Planning*"))
    assert planning.startswith("*Planning*\n1. Update forecast of SKU-00000 at DC-DAL")
    assert re.search(r"\n_\+\d+ more in Details_$", planning)
    logistics = next(t for t in sections if t.startswith("*Logistics*"))
    assert logistics.startswith("*Logistics*\n201. Transfer 10 units of SKU-00000")
    assert len(_controls(blocks)) == 1 and blocks[-1]["type"] == "actions"
    assert len(text) <= 1000

    assert_within_slack_limits(details)
    shown = _sections(details)
    evidence = next(t for t in shown if t.startswith("*Evidence*"))
    assert "• SKU-00000 at DC-DAL for 2026-11-23: plan 1,000 → latest 1,500 (+500)" in evidence
    listed = evidence.count("\n• ")  # 200 affected items + the drift none of them names
    assert 10 < listed < 201 and evidence.endswith(f"\n_+{201 - listed} more_")
    assert any(t.startswith("*Alternatives considered*") for t in shown)
    # the actions the message could not list are in the details
    assert any(t.startswith("*Logistics*\n201.") for t in shown)
    assert details_text.startswith(f"Details of #{rec_id}: ")


def test_render_note_splits_long_text_at_line_breaks():
    lines = [f"• step {i}: " + "done " * 20 for i in range(100)]
    blocks = render_note("\n".join(lines))
    assert len(blocks) >= 3
    assert all(b["type"] == "section" and len(b["text"]["text"]) <= 3000 for b in blocks)
    assert "\n".join(b["text"]["text"] for b in blocks) == "\n".join(lines)
    assert render_note("Executed.") == [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Executed."}}]
