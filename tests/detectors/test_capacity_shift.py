"""Capacity shift: overflow, spare capacity, reassignment onto other carriers, rephasing."""

from datetime import date

import pytest
from conftest import NEXT_WEEK, NOW, table, ts

from detectors import Snapshot, detect
from detectors.capacity_shift import detect_capacity_shift
from detectors.settings import DetectorSettings

DEC7, DEC14 = date(2026, 12, 7), date(2026, 12, 14)


def cap(rid, period, planned, available, load, rtype="carrier"):
    return {"resource_type": rtype, "resource_id": rid, "period": period, "planned_capacity": planned,
            "available_capacity": available, "planned_load": load}


def snapshot():
    capacity = table("capacity", [
        cap("ACME", NEXT_WEEK, 100, 60, 90),     # cut: 90 planned on 60 available → 30 overflow
        cap("ACME", DEC7, 100, 100, 95),         # 5 of room
        cap("ACME", DEC14, 100, 100, 0),         # plenty of room
        cap("FAST", NEXT_WEEK, 50, 200, 40),     # grew to 200 for 40 of load: 20 % utilised
        cap("SLOW", NEXT_WEEK, 50, 50, 20),      # 40 % utilised but as planned: no drift
    ])
    shipments = table("shipments", [
        {"shipment_id": "S1", "origin": "PLANT", "destination": "DC1", "carrier": "ACME", "sku": "A",
         "qty": 60, "planned_ship": ts(1, month=12), "planned_arrival": ts(3, month=12)},
        {"shipment_id": "S2", "origin": "PLANT", "destination": "DC2", "carrier": "ACME", "sku": "B",
         "qty": 30, "planned_ship": ts(2, month=12), "planned_arrival": ts(4, month=12)},
    ])
    lanes = table("lanes", [
        {"origin": "PLANT", "destination": "DC1", "carrier": "OTHER", "cost_per_unit": 2.0, "capacity": 15},
        {"origin": "PLANT", "destination": "DC1", "carrier": "CHEAP", "cost_per_unit": 1.0, "capacity": 5},
        {"origin": "PLANT", "destination": "DC1", "carrier": "ACME", "cost_per_unit": 0.1, "capacity": 99},
    ])
    demand = table("demand", [
        {"sku": "A", "location": "DC1", "period": NEXT_WEEK, "planned_qty": 1, "latest_qty": 1, "unit_value": 10},
        {"sku": "B", "location": "DC2", "period": NEXT_WEEK, "planned_qty": 1, "latest_qty": 1, "unit_value": 40},
    ])
    return Snapshot(capacity=capacity, shipments=shipments, lanes=lanes, demand=demand)


def test_cut_and_spare_capacity_with_value_of_the_load():
    s = snapshot()
    unit_values = s.demand.group_by("sku").agg("unit_value")
    unit_values = s.demand.select("sku", "unit_value")
    out = detect_capacity_shift(s.capacity, s.shipments, unit_values, DetectorSettings(), NOW)
    rows = {r["resource_id"]: r for r in out.iter_rows(named=True)}
    assert set(rows) == {"ACME", "FAST"}
    acme = rows["ACME"]
    assert acme["direction"] == "cut" and acme["utilisation"] == 1.5 and acme["overflow"] == 30
    assert acme["unit_value"] == 20          # (60 × 10 + 30 × 40) / 90
    assert acme["value_at_risk"] == 600      # 30 × 20
    assert acme["service_days_at_risk"] == pytest.approx(30 / (90 / 7))  # 2.33 days of load
    assert rows["FAST"]["direction"] == "spare" and rows["FAST"]["units_excess"] == 160


def test_overflow_goes_to_other_carriers_by_cost_then_rephased_to_periods_with_room():
    result = detect(snapshot(), DetectorSettings(), NOW)
    rec = next(r for r in result.recommendations if r.cause["resource"] == "ACME")
    moves = [(a.params["to_carrier"], a.params["destination"], a.params["qty"])
             for a in rec.actions if a.operation == "reassign_carrier"]
    # 30 overflow split by load: 20 on PLANT>DC1, 10 on PLANT>DC2 (no other carrier there)
    assert sorted(moves) == [("CHEAP", "DC1", 5.0), ("OTHER", "DC1", 15.0)]
    rephase = [(a.params["to_period"], a.params["qty"]) for a in rec.actions if a.operation == "rephase_plan"]
    assert rephase == [("2026-12-07", 5.0), ("2026-12-14", 5.0)]
    assert {a.system for a in rec.actions} == {"planning", "logistics"}
    assert rec.impact_if_ignored.units_short == 30 and rec.impact_if_approved.units_short == 0
    assert "ACME" in rec.summary
