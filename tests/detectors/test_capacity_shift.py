"""Capacity shift: overflow, spare capacity, reassignment onto other carriers, rephasing."""

from datetime import date

import pytest
from conftest import NEXT_WEEK, NOW, table, ts

from detectors import Snapshot, detect
from detectors.capacity_shift import detect_capacity_shift
from detectors.projection import build
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


def test_cut_and_spare_capacity_and_what_the_cut_does_at_the_destinations():
    s = snapshot()
    settings = DetectorSettings()
    out = detect_capacity_shift(s.capacity, s.shipments, build(s.demand, s.inventory, s.shipments, settings, NOW),
                                settings, NOW)
    rows = {r["resource_id"]: r for r in out.iter_rows(named=True)}
    assert set(rows) == {"ACME", "FAST"}
    acme = rows["ACME"]
    assert acme["direction"] == "cut" and acme["utilisation"] == 1.5 and acme["overflow"] == 30
    assert acme["slipping_shipments"] == ["S2"]  # planned to leave last, and it carries the 30
    # B at DC2 (no stock, 1 a week from Nov 30): on time S2 lands Dec 4 after 4 days of demand
    # (−4/7), late it does not land in the horizon (−1): 3/7 more below safety stock, at 40
    assert acme["units_short"] == pytest.approx(3 / 7, abs=1e-4)
    assert acme["value_at_risk"] == pytest.approx(40 * 3 / 7, abs=0.01)
    assert rows["FAST"]["direction"] == "spare" and rows["FAST"]["units_excess"] == 160


def test_a_cut_is_valued_by_the_stock_out_its_late_load_causes():
    """DC2 holds 20 B, safety 10, sells 5 a day; S2 (30 B, Dec 4 00:00) slips a week, past the
    horizon (Dec 10 08:00). On time the lowest point is the end, 20 + 30 − 5 × 14 = −20 (30 below
    safety stock); late it is 20 − 70 = −50 (60 below): 30 more, at 40 each."""
    s = snapshot()
    inventory = table("inventory", [{"sku": "B", "location": "DC2", "on_hand": 20, "safety_stock": 10}])
    demand = table("demand", [{"sku": "B", "location": "DC2", "period": p, "planned_qty": 35, "latest_qty": 35,
                               "unit_value": 40} for p in (NEXT_WEEK.replace(day=23), NEXT_WEEK, DEC7)])
    settings = DetectorSettings()
    proj = build(demand, inventory, s.shipments, settings, NOW)
    (acme,) = [r for r in detect_capacity_shift(s.capacity, s.shipments, proj, settings, NOW)
               .iter_rows(named=True) if r["resource_id"] == "ACME"]
    assert acme["units_short"] == pytest.approx(30)
    assert acme["value_at_risk"] == pytest.approx(1200)


def test_overflow_goes_to_other_carriers_only_when_that_is_cheaper_than_letting_it_slip():
    result = detect(snapshot(), DetectorSettings(), NOW)
    rec = next(r for r in result.recommendations if r.cause["resource"] == "ACME")
    options = {o.name: o for o in rec.options}
    # no other carrier runs PLANT>DC2: 5 (at 1.00) and 15 (at 2.00) of S1's load can move, but
    # the 10 left still make S2 (30, planned to leave last) slip — so paying 35 buys nothing
    assert options["Reassign carrier"].action_cost == 5 * 1.0 + 15 * 2.0
    assert options["Reassign carrier"].shortage_cost == options["Rephase"].shortage_cost
    assert rec.options[0].name == "Rephase" and rec.cost == 0
    (rephase,) = [a.params for a in rec.actions if a.operation == "rephase_plan"]
    assert (rephase["to_period"], rephase["qty"]) == ("2026-12-14", 30)  # Dec 7 has 5 of room only
    assert "Carrier ACME lost capacity: 30 units do not fit" in rec.summary
