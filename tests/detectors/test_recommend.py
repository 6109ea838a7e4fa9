"""Recommendations: both systems, transfers from spare cover, grouping by cause."""

import pytest
from conftest import NOW, WEEK, table, ts

from detectors import DetectorSettings, Snapshot, detect
from detectors.grouping import group_drifts

SETTINGS = DetectorSettings.model_validate({"stockout": {"horizon_days": 4}})


def demand_up_network(dc4_lane_capacity=150.0):
    # horizon Nov 26 – Nov 30 = 4 of the week's 7 days: DC1 needs 1400 × 4/7 = 800, has 500
    demand = table("demand", [
        {"sku": "A", "location": "DC1", "period": WEEK, "planned_qty": 700, "latest_qty": 1400, "unit_value": 10},
        {"sku": "A", "location": "DC2", "period": WEEK, "planned_qty": 700, "latest_qty": 700, "unit_value": 10},
    ])
    inventory = table("inventory", [
        {"sku": "A", "location": "DC1", "on_hand": 500, "safety_stock": 100},   # ends at −300: 400 short
        {"sku": "A", "location": "DC2", "on_hand": 1000, "safety_stock": 200},  # 1000 − 400 → 400 spare
        {"sku": "A", "location": "DC3", "on_hand": 300, "safety_stock": 100},   # no demand → 200 spare
        {"sku": "A", "location": "DC4", "on_hand": 1000, "safety_stock": 0},    # 1000 spare
    ])
    lanes = table("lanes", [
        {"origin": "DC2", "destination": "DC1", "carrier": "T", "cost_per_unit": 1.0, "capacity": 1000},
        {"origin": "DC3", "destination": "DC1", "carrier": "T", "cost_per_unit": 1.0, "capacity": 1000},
        {"origin": "DC4", "destination": "DC1", "carrier": "T", "cost_per_unit": 0.5,
         "capacity": dc4_lane_capacity},
    ])
    return Snapshot(demand=demand, inventory=inventory, lanes=lanes)


def test_demand_up_raises_forecast_and_transfers_cheapest_then_most_spare_cover():
    result = detect(demand_up_network(), SETTINGS, NOW)
    assert {d.kind.value for d in result.drifts} == {"demand_change", "stockout_risk"}
    assert len(result.recommendations) == 1  # the stockout is answered by the demand recommendation
    rec = result.recommendations[0]
    assert len(rec.drift_fingerprints) == 2
    ops = [(a.system, a.operation) for a in rec.actions]
    assert ("planning", "update_forecast") in ops and ("logistics", "create_transfer") in ops
    transfers = {a.params["from"]: a.params["qty"] for a in rec.actions if a.operation == "create_transfer"}
    # DC4 is cheapest but its lane takes 150; of the rest DC3 has endless cover, DC2 4 days
    assert transfers == {"DC4": 150, "DC3": 200, "DC2": 50}
    fc = next(a for a in rec.actions if a.operation == "update_forecast")
    assert fc.params == {"sku": "A", "location": "DC1", "period": "2026-11-23", "from_qty": 700.0, "to_qty": 1400.0}
    assert rec.impact_if_ignored.units_short == 700 and rec.impact_if_ignored.value_at_risk == 7000
    assert rec.impact_if_approved.units_short == 0
    assert rec.summary.startswith("Demand for A at DC1 is up 700 units")
    assert rec.alternatives and all(" — " in alt for alt in rec.alternatives)


def test_not_enough_spare_leaves_the_rest_unmet_and_says_so():
    snap = demand_up_network()
    snap = Snapshot(demand=snap.demand, inventory=snap.inventory.filter(snap.inventory["location"] != "DC4"),
                    lanes=snap.lanes)
    rec = detect(snap, SETTINGS, NOW).recommendations[0]
    moved = sum(a.params["qty"] for a in rec.actions if a.operation == "create_transfer")
    assert moved == 400  # DC3's 200 and 200 of DC2's 400 spare
    snap2 = Snapshot(demand=snap.demand, inventory=snap.inventory.filter(snap.inventory["location"] != "DC2"),
                     lanes=snap.lanes)
    rec2 = next(r for r in detect(snap2, SETTINGS, NOW).recommendations if r.kind.value == "demand_change")
    moved2 = sum(a.params["qty"] for a in rec2.actions if a.operation == "create_transfer")
    assert moved2 == 200
    assert rec2.impact_if_approved.units_short == 200  # 400 short − 200 moved
    assert any("only 200 of 400" in alt for alt in rec2.alternatives)


def test_demand_down_lowers_forecast_and_trims_inbound_not_yet_shipped():
    snap = Snapshot(
        demand=table("demand", [{"sku": "B", "location": "DC1", "period": WEEK, "planned_qty": 700,
                                 "latest_qty": 210, "unit_value": 5}]),
        inventory=table("inventory", [{"sku": "B", "location": "DC1", "on_hand": 800, "safety_stock": 100}]),
        shipments=table("shipments", [
            {"shipment_id": "P1", "origin": "PLANT", "destination": "DC1", "carrier": "ACME", "sku": "B",
             "qty": 300, "planned_arrival": ts(28), "status": "planned"},
            {"shipment_id": "P2", "origin": "PLANT", "destination": "DC1", "carrier": "ACME", "sku": "B",
             "qty": 300, "planned_arrival": ts(29), "status": "planned"},
            {"shipment_id": "T1", "origin": "PLANT", "destination": "DC1", "carrier": "ACME", "sku": "B",
             "qty": 300, "planned_arrival": ts(29, 23), "eta": ts(29, 23), "status": "in_transit",
             "last_event_at": ts(26, 6)},  # already on the road: not trimmed
        ]),
    )
    rec = detect(snap, DetectorSettings(), NOW).recommendations[0]
    cuts = [(a.params["shipment_id"], a.params["reduce_by"]) for a in rec.actions if a.operation == "reduce_inbound"]
    assert cuts == [("P2", 300.0), ("P1", 190.0)]  # 490 excess, latest arrival first
    assert rec.impact_if_ignored.units_excess == 490 and rec.impact_if_approved.units_excess == 0
    assert {a.system for a in rec.actions} == {"planning", "logistics"}


def _late(sid, day, carrier="ACME", dest="DC1"):
    return {"shipment_id": sid, "origin": "PLANT", "destination": dest, "carrier": carrier, "sku": "A",
            "qty": 100, "planned_ship": ts(day), "planned_arrival": ts(day + 2), "eta": ts(day + 4),
            "status": "in_transit", "last_event_at": ts(26, 6)}


def test_disruptions_sharing_carrier_origin_and_day_become_one_recommendation():
    snap = Snapshot(shipments=table("shipments", [
        _late("S1", 24), _late("S2", 24, dest="DC2"), _late("S3", 25), _late("S4", 24, carrier="OTHER"),
    ]))
    result = detect(snap, DetectorSettings(), NOW)
    assert len(result.drifts) == 4
    recs = {tuple(sorted(a.params["shipment_id"] for a in r.actions if a.operation == "reschedule_receipt"))
            for r in result.recommendations}
    assert recs == {("S1", "S2"), ("S3",), ("S4",)}
    combined = next(r for r in result.recommendations if len(r.drift_fingerprints) == 2)
    assert combined.cause == {"carrier": "ACME", "origin": "PLANT", "day": "2026-11-24"}
    assert combined.impact_if_ignored.units_short == 200
    assert len(combined.affected) == 2


def test_late_shipment_into_thin_stock_is_resourced_by_transfer():
    # DC1 sells 50/day, 150 on hand, 100 safety: 1 day of cover; the truck is 2 days late → 1 day at risk
    snap = Snapshot(
        demand=table("demand", [{"sku": "A", "location": "DC1", "period": WEEK, "planned_qty": 350,
                                 "latest_qty": 350, "unit_value": 10}]),
        inventory=table("inventory", [{"sku": "A", "location": "DC1", "on_hand": 150, "safety_stock": 100},
                                      {"sku": "A", "location": "DC2", "on_hand": 500, "safety_stock": 0}]),
        shipments=table("shipments", [_late("S1", 26)]),  # planned Nov 28, ETA Nov 30
        lanes=table("lanes", [{"origin": "DC2", "destination": "DC1", "carrier": "T", "cost_per_unit": 1,
                               "capacity": 1000}]),
    )
    result = detect(snap, SETTINGS, NOW)
    assert {d.kind.value for d in result.drifts} == {"disruption", "stockout_risk"}
    (rec,) = result.recommendations  # the stockout the delay causes is part of the same answer
    assert rec.kind.value == "disruption" and len(rec.drift_fingerprints) == 2
    assert rec.impact_if_ignored.service_days_at_risk == 1.0
    # before the truck lands (3⅔ days) DC1 drops to 150 − 183.3 = −33.3: 133.3 below safety → 134 moved
    transfers = [(a.params["from"], a.params["qty"]) for a in rec.actions if a.operation == "create_transfer"]
    assert transfers == [("DC2", 134.0)]
    assert ("planning", "reschedule_receipt") in {(a.system, a.operation) for a in rec.actions}
    assert rec.impact_if_approved.service_days_at_risk == 0.0


def test_group_fingerprint_does_not_depend_on_drift_order():
    result = detect(Snapshot(shipments=table("shipments", [_late("S1", 24), _late("S2", 24)])),
                    DetectorSettings(), NOW)
    a = group_drifts(result.drifts, DetectorSettings().group_by)
    b = group_drifts(list(reversed(result.drifts)), DetectorSettings().group_by)
    assert [g.fingerprint for g in a] == [g.fingerprint for g in b]
    assert [d.fingerprint for d in a[0].drifts] == [d.fingerprint for d in b[0].drifts]


def test_now_must_be_given_and_aware():
    with pytest.raises(ValueError):
        detect(Snapshot(), DetectorSettings(), None)


def test_stockouts_at_one_site_become_one_recommendation_within_lane_capacity():
    # 4-day horizon: A sells 100/day (300 on hand, 100 safety → ends at −100: 200 short),
    # B sells 50/day (150 on hand, 50 safety → ends at −50: 100 short); DC2→DC1 carries 250
    snap = Snapshot(
        demand=table("demand", [
            {"sku": "A", "location": "DC1", "period": WEEK, "planned_qty": 700, "latest_qty": 700, "unit_value": 2},
            {"sku": "B", "location": "DC1", "period": WEEK, "planned_qty": 350, "latest_qty": 350, "unit_value": 4},
        ]),
        inventory=table("inventory", [
            {"sku": "A", "location": "DC1", "on_hand": 300, "safety_stock": 100},
            {"sku": "B", "location": "DC1", "on_hand": 150, "safety_stock": 50},
            {"sku": "A", "location": "DC2", "on_hand": 1000, "safety_stock": 0},
            {"sku": "B", "location": "DC2", "on_hand": 1000, "safety_stock": 0},
        ]),
        lanes=table("lanes", [{"origin": "DC2", "destination": "DC1", "carrier": "T", "cost_per_unit": 1,
                               "capacity": 250}]),
    )
    (rec,) = detect(snap, SETTINGS, NOW).recommendations
    assert rec.summary == "2 SKUs at DC1 drop 300 units below safety stock within 2 day(s): transfer 250 units"
    moved = {a.params["sku"]: a.params["qty"] for a in rec.actions if a.operation == "create_transfer"}
    assert sum(moved.values()) == 250 and moved.get("A", 0) <= 200 and moved.get("B", 0) <= 100
    assert rec.impact_if_ignored.units_short == 300 and rec.impact_if_ignored.value_at_risk == 800  # 200×2 + 100×4
    assert rec.impact_if_approved.units_short == 50
    replan = [a for a in rec.actions if a.operation == "update_replenishment_plan"]
    assert sum(a.params["qty"] for a in replan) == 50 and all(a.system == "planning" for a in replan)
