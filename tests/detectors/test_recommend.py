"""Recommendations with figures a planner can check with a calculator.

Every case starts on a Monday at midnight, so each day bucket is a whole day, with the default
costs: shortage penalty 10 % of the unit value per unit-day below safety stock, re-sourcing
7 days at 1.00 a unit, expediting 1 day sooner at 2.00 a unit.
"""

from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import table

from detectors import DetectorSettings, Snapshot, detect
from detectors.grouping import group_drifts

MONDAY = datetime(2026, 11, 30, tzinfo=UTC)
WEEKS = [date(2026, 11, 30), date(2026, 12, 7)]
SETTINGS = DetectorSettings.model_validate({"demand": {"default": {"absolute_units": 30}}})


def _demand(sku, location, planned, latest, value=25.0):
    return [{"sku": sku, "location": location, "period": w, "planned_qty": planned, "latest_qty": latest,
             "unit_value": value} for w in WEEKS]


def _spike(lanes=()):
    """DC-A sells 210 a week (30 a day) where the plan said 170: 300 on hand against 100 safety
    stock falls to 300 − 14 × 30 = −120 — 220 below safety stock, 120 unserved, 220 × 25 = 5,500."""
    return Snapshot(
        demand=table("demand", _demand("A", "DC-A", 170, 210) + _demand("A", "DC-C", 100, 100)),
        inventory=table("inventory", [{"sku": "A", "location": "DC-A", "on_hand": 300, "safety_stock": 100},
                                      {"sku": "A", "location": "DC-C", "on_hand": 2000, "safety_stock": 100}]),
        lanes=table("lanes", list(lanes)))


def _only(result, kind):
    (rec,) = [r for r in result.recommendations if r.kind.value == kind]
    return rec


def test_a_demand_spike_shows_the_stock_out_it_causes_not_the_forecast_delta():
    rec = _only(detect(_spike(), SETTINGS, MONDAY), "demand_change")
    ignored = rec.impact_if_ignored
    assert (ignored.units_short, ignored.units_unserved, ignored.value_at_risk) == (220, 120, 5500)
    assert ignored.service_days_at_risk == pytest.approx(14 - 200 / 30, abs=1e-4)  # below 100 from day 6⅔
    assert len(rec.drift_fingerprints) == 3  # two weeks of demand change and the stock-out they cause
    # no lane: order 220 more, landing on day 7 (stock 90 then), which leaves day 6⅔–7 just under
    assert [(a.operation, a.params.get("qty")) for a in rec.actions] == [
        ("update_forecast", None), ("update_forecast", None), ("update_replenishment_plan", 220.0)]
    assert rec.actions[2].params["need_by"] == "2026-12-07"
    approved = rec.impact_if_approved
    assert approved.units_short == 10 and approved.service_days_at_risk == pytest.approx(1 / 3, abs=1e-4)
    assert rec.cost == 220
    # costs: 220 × 1.00 + a 10-unit, ⅓-day triangle × 10 % × 25; doing nothing: ∫(30t − 200) from 6⅔ to 14 × 2.5
    totals = {o.name: o.total_cost for o in rec.options}
    assert totals == {"Update forecast + Re-source": pytest.approx(220 + 10 / 3 / 2 * 2.5, abs=0.01),
                      "Update forecast": pytest.approx(806.67 * 2.5, abs=0.01),
                      "Do nothing": pytest.approx(806.67 * 2.5, abs=0.01)}
    assert rec.options[0].recommended and rec.options[0].impact == approved
    assert rec.summary.startswith("Demand for A at DC-A is up 80 units over 2 periods: ")


def test_a_transfer_that_lands_after_the_horizon_is_never_proposed():
    """The issue's lanes: DC-C has the stock, but both lanes take 20 days."""
    lanes = [{"origin": "DC-C", "destination": "DC-A", "carrier": "CARR-X", "cost_per_unit": 3, "capacity": 100,
              "transit_days": 20},
             {"origin": "DC-C", "destination": "DC-A", "carrier": "CARR-Y", "cost_per_unit": 5, "capacity": 500,
              "transit_days": 20}]
    rec = _only(detect(_spike(lanes), SETTINGS, MONDAY), "demand_change")
    assert not [a for a in rec.actions if a.operation == "create_transfer"]
    assert not [o for o in rec.options if "Transfer" in o.name]
    assert rec.impact_if_approved.units_short == 10  # re-sourced, as without lanes


def test_a_transfer_that_lands_in_time_is_cheapest():
    lanes = [{"origin": "DC-C", "destination": "DC-A", "carrier": "CARR-Z", "cost_per_unit": 1, "capacity": 500,
              "transit_days": 2}]
    rec = _only(detect(_spike(lanes), SETTINGS, MONDAY), "demand_change")
    (move,) = [a.params for a in rec.actions if a.operation == "create_transfer"]
    assert (move["from"], move["qty"], move["carrier"], move["arrive_by"]) == ("DC-C", 220.0, "CARR-Z", "2026-12-02")
    assert rec.cost == 220 and rec.impact_if_approved.units_short == 0  # lands on day 2, before day 6⅔
    assert rec.options[0].name == "Update forecast + Transfer"
    assert rec.options[1].name == "Update forecast + Re-source" and "4.17 more in all" in rec.options[1].why_not


def _dc_d(eta_hours_late=30.0):
    """DC-D: on hand 40, safety 20, 10 a day; 200 units due in 2 days."""
    return Snapshot(
        demand=table("demand", [{"sku": "A", "location": "DC-D", "period": w, "planned_qty": 70, "latest_qty": 70,
                                 "unit_value": 10} for w in WEEKS]),
        inventory=table("inventory", [{"sku": "A", "location": "DC-D", "on_hand": 40, "safety_stock": 20}]),
        shipments=table("shipments", [{
            "shipment_id": "S1", "origin": "PLANT", "destination": "DC-D", "carrier": "ACME", "sku": "A",
            "qty": 200, "planned_ship": MONDAY - timedelta(days=1), "planned_arrival": MONDAY + timedelta(days=2),
            "eta": MONDAY + timedelta(days=2, hours=eta_hours_late), "status": "in_transit",
            "last_event_at": MONDAY - timedelta(hours=2)}]))


def test_a_late_shipment_and_the_stock_out_it_causes_are_one_decision_with_one_set_of_figures():
    result = detect(_dc_d(), DetectorSettings(), MONDAY)
    (rec,) = result.recommendations
    assert rec.kind.value == "disruption" and len(rec.drift_fingerprints) == 2
    ignored = rec.impact_if_ignored
    assert (ignored.units_short, ignored.service_days_at_risk, ignored.value_at_risk) == (12.5, 1.25, 125)
    (late,) = [d for d in result.drifts if d.kind.value == "disruption"]
    assert late.impact.service_days_at_risk == 1.25  # what the delay adds: on time it never dips
    options = {o.name: o for o in rec.options}
    fast = options["Reschedule receipts + Expedite"]  # 1 day sooner: lands on day 2.25
    assert (fast.impact.units_short, fast.impact.service_days_at_risk) == (2.5, 0.25)
    assert fast.action_cost == 400 and fast.total_cost == pytest.approx(400 + 2.5 * 0.25 / 2 * 1.0, abs=0.01)
    # expediting 200 units costs more than the 7.81 the delay costs in shortage: only the plan moves
    assert rec.options[0].name == "Reschedule receipts" and rec.cost == 0
    assert rec.options[0].total_cost == pytest.approx(12.5 * 1.25 / 2 * 1.0, abs=0.01)
    assert [a.operation for a in rec.actions] == ["reschedule_receipt"]
    assert "covers the delay" not in " ".join(rec.alternatives + [rec.rationale])
    assert rec.decide_by is None  # moving a date in the plan has no lead time to beat


def test_expediting_wins_when_the_shortage_costs_more():
    costly = DetectorSettings.model_validate({"recommend": {"shortage_cost_per_unit_day": 50}})
    (rec,) = detect(_dc_d(), costly, MONDAY).recommendations
    assert rec.options[0].name == "Reschedule receipts + Expedite"
    assert [a.operation for a in rec.actions] == ["reschedule_receipt", "expedite_shipment"]
    assert rec.actions[1].params["target_arrival"] == (MONDAY + timedelta(days=2, hours=6)).isoformat()
    assert rec.impact_if_approved.service_days_at_risk == 0.25
    # below safety stock from day 2 (40 − 2 × 10 = 20); the expedited truck lands on day 2.25, so
    # it is already too late to stop the dip: decide now
    assert rec.decide_by == MONDAY


def _cut(lanes, carrier_cut=True):
    """ACME can carry 80 of its 100 planned in week 1: 20 do not fit. S2 (20 units to DC1) is
    planned to leave last; DC1 has 30 on hand, 10 safety stock, sells 10 a day, and needs S2."""
    shipments = [
        ("S1", "DC1", "A", 40, 1), ("S2", "DC1", "A", 20, 2), ("S3", "DC2", "B", 40, 1.5)]
    rtype, rid = ("carrier", "ACME") if carrier_cut else ("lane", "PLANT>DC1")
    return Snapshot(
        capacity=table("capacity", [
            {"resource_type": rtype, "resource_id": rid, "period": WEEKS[0], "planned_capacity": 100,
             "available_capacity": 80, "planned_load": 100},
            {"resource_type": rtype, "resource_id": rid, "period": WEEKS[1], "planned_capacity": 100,
             "available_capacity": 100, "planned_load": 50}]),
        shipments=table("shipments", [
            {"shipment_id": sid, "origin": "PLANT", "destination": dest, "carrier": "ACME", "sku": sku, "qty": qty,
             "planned_ship": MONDAY + timedelta(days=day), "planned_arrival": MONDAY + timedelta(days=day + 1),
             "status": "planned"} for sid, dest, sku, qty, day in shipments]),
        demand=table("demand", _demand("A", "DC1", 70, 70, value=10) + _demand("B", "DC2", 7, 7, value=10)),
        inventory=table("inventory", [{"sku": "A", "location": "DC1", "on_hand": 30, "safety_stock": 10},
                                      {"sku": "B", "location": "DC2", "on_hand": 500, "safety_stock": 10}]),
        lanes=table("lanes", lanes))


def test_a_carrier_cut_moves_the_overflow_where_it_is_cheapest_not_pro_rata():
    """Split pro rata, 12 of the 20 would leave PLANT>DC1 (at 1.00) and 8 PLANT>DC2 (at 3.00):
    36.00. All 20 on PLANT>DC1 cost 20.00."""
    lanes = [{"origin": "PLANT", "destination": "DC1", "carrier": "OTHER", "cost_per_unit": 1, "capacity": 100},
             {"origin": "PLANT", "destination": "DC2", "carrier": "OTHER", "cost_per_unit": 3, "capacity": 100},
             {"origin": "PLANT", "destination": "DC1", "carrier": "ACME", "cost_per_unit": 0.1, "capacity": 100}]
    rec = _only(detect(_cut(lanes), DetectorSettings(), MONDAY), "capacity_shift")
    (move,) = [a.params for a in rec.actions if a.operation == "reassign_carrier"]
    assert (move["from_carrier"], move["to_carrier"], move["destination"], move["qty"]) == ("ACME", "OTHER", "DC1", 20)
    assert move["shipments"] == ["S2"]  # the smallest shipment that carries the 20
    assert rec.cost == 20 and rec.options[0].name == "Reassign carrier"
    # left alone, S2 lands a week later at DC1, which then spends 2 more days out of stock
    assert rec.impact_if_ignored.days_out_of_stock == 2 and rec.impact_if_ignored.shortage_unit_days == 60
    assert rec.impact_if_approved.service_days_at_risk == 0 and rec.impact_if_approved.shortage_unit_days == 0
    assert "20 units do not fit" in rec.summary


def test_a_lane_cut_never_moves_load_onto_a_carrier_already_on_the_cut_lane():
    lanes = [{"origin": "PLANT", "destination": "DC1", "carrier": "ACME", "cost_per_unit": 0.1, "capacity": 100},
             {"origin": "PLANT", "destination": "DC1", "carrier": "OTHER", "cost_per_unit": 2, "capacity": 100}]
    rec = _only(detect(_cut(lanes, carrier_cut=False), DetectorSettings(), MONDAY), "capacity_shift")
    moves = [a.params for a in rec.actions if a.operation == "reassign_carrier"]
    assert moves and all(m["to_carrier"] == "OTHER" for m in moves)


def test_demand_down_cuts_inbound_not_yet_shipped_only_as_far_as_stock_can_spare():
    """Demand falls from 70 to 21 a week (3 a day): 98 units too many over two weeks. 100 on
    hand, 50 safety stock; P1 (300, not shipped) lands on day 3, T1 (300, on the road) on day 4.
    After P1 lands stock never goes below 388 (before T1), so all 98 can come off P1."""
    snap = Snapshot(
        demand=table("demand", _demand("B", "DC1", 70, 21, value=5)),
        inventory=table("inventory", [{"sku": "B", "location": "DC1", "on_hand": 100, "safety_stock": 50}]),
        shipments=table("shipments", [
            {"shipment_id": "P1", "origin": "PLANT", "destination": "DC1", "sku": "B", "qty": 300,
             "planned_arrival": MONDAY + timedelta(days=3), "status": "planned"},
            {"shipment_id": "T1", "origin": "PLANT", "destination": "DC1", "sku": "B", "qty": 300,
             "planned_arrival": MONDAY + timedelta(days=4), "eta": MONDAY + timedelta(days=4),
             "status": "in_transit", "last_event_at": MONDAY - timedelta(hours=1)}]))
    rec = _only(detect(snap, SETTINGS, MONDAY), "demand_change")
    cuts = [(a.params["shipment_id"], a.params["reduce_by"]) for a in rec.actions if a.operation == "reduce_inbound"]
    assert cuts == [("P1", 98.0)]  # never T1, already on the road
    assert rec.impact_if_ignored.units_excess == 98 and rec.impact_if_approved.units_excess == 0
    assert rec.impact_if_ignored.value_at_risk == 98 * 5
    # carrying 98 units nobody needs costs 98 × 5 × 0.001 a day × 14 days
    (idle,) = [o for o in rec.options if o.name == "Do nothing"]
    assert idle.holding_cost == pytest.approx(6.86) and idle.impact.units_excess == 98


def test_demand_down_leaves_inbound_alone_when_stock_is_thin():
    snap = Snapshot(
        demand=table("demand", _demand("B", "DC1", 140, 70, value=5)),
        inventory=table("inventory", [{"sku": "B", "location": "DC1", "on_hand": 60, "safety_stock": 50}]),
        shipments=table("shipments", [
            {"shipment_id": "P1", "origin": "PLANT", "destination": "DC1", "sku": "B", "qty": 100,
             "planned_arrival": MONDAY + timedelta(days=10), "status": "planned"}]))
    rec = _only(detect(snap, SETTINGS, MONDAY), "demand_change")
    # 60 − 10 × 10 = −40 before P1 lands: cutting it would only deepen the shortfall after it
    assert not [a for a in rec.actions if a.operation == "reduce_inbound"]


def test_stockouts_at_one_site_are_one_recommendation_within_lane_capacity():
    """A: 300 on hand, 100 safety, 50 a day → −400 at day 14: 500 short. B: 150 on hand, 50
    safety, 25 a day → −200: 250 short. DC2→DC1 carries 600 in all, and lands on day 1."""
    snap = Snapshot(
        demand=table("demand", _demand("A", "DC1", 350, 350, value=2) + _demand("B", "DC1", 175, 175, value=4)),
        inventory=table("inventory", [
            {"sku": "A", "location": "DC1", "on_hand": 300, "safety_stock": 100},
            {"sku": "B", "location": "DC1", "on_hand": 150, "safety_stock": 50},
            {"sku": "A", "location": "DC2", "on_hand": 5000, "safety_stock": 0},
            {"sku": "B", "location": "DC2", "on_hand": 5000, "safety_stock": 0}]),
        lanes=table("lanes", [{"origin": "DC2", "destination": "DC1", "carrier": "T", "cost_per_unit": 1,
                               "capacity": 600}]))
    (rec,) = detect(snap, DetectorSettings(), MONDAY).recommendations
    assert rec.impact_if_ignored.units_short == 750 and rec.impact_if_ignored.value_at_risk == 500 * 2 + 250 * 4
    moved = {a.params["sku"]: a.params["qty"] for a in rec.actions if a.operation == "create_transfer"}
    assert sum(moved.values()) <= 600
    assert rec.summary.startswith("2 SKUs at DC1 drop 750 units below safety stock in 4 days: ")


def test_group_fingerprint_does_not_depend_on_drift_order():
    result = detect(_dc_d(), DetectorSettings(), MONDAY)
    a = group_drifts(result.drifts, DetectorSettings().group_by)
    b = group_drifts(list(reversed(result.drifts)), DetectorSettings().group_by)
    assert [g.fingerprint for g in a] == [g.fingerprint for g in b]


def test_now_must_be_given_and_aware():
    with pytest.raises(ValueError):
        detect(Snapshot(), DetectorSettings(), None)
