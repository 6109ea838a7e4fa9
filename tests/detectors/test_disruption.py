"""Disruption: late ETA, exceptions, silent shipments, and what the destination loses."""

import pytest
from conftest import NEXT_WEEK, NOW, WEEK, table, ts

from detectors.disruption import detect_disruption
from detectors.projection import build
from detectors.settings import DetectorSettings


def network(on_hand=300.0):
    # DC1 sells 350 A a week → 50/day; 300 on hand, 100 safety → 4 days of cover above safety
    demand = table("demand", [
        {"sku": "A", "location": "DC1", "period": p, "planned_qty": 350, "latest_qty": 350, "unit_value": 10}
        for p in (WEEK, NEXT_WEEK, NEXT_WEEK.replace(day=7, month=12))
    ])
    inventory = table("inventory", [{"sku": "A", "location": "DC1", "on_hand": on_hand, "safety_stock": 100}])
    return demand, inventory


def ship(sid, **kw):
    row = {"shipment_id": sid, "origin": "PLANT", "destination": "DC1", "carrier": "ACME", "sku": "A",
           "qty": 400, "planned_ship": ts(24), "planned_arrival": ts(27), "status": "in_transit",
           "eta": ts(27), "last_event_at": ts(26, 6)}
    row.update(kw)
    return row


def run(shipments, on_hand=300.0, open_fps=frozenset()):
    settings = DetectorSettings()
    demand, inventory = network(on_hand)
    ships = table("shipments", shipments)
    return detect_disruption(ships, build(demand, inventory, ships, settings, NOW), settings, NOW, open_fps)


def test_eta_six_days_late_costs_what_the_projection_loses_at_the_destination():
    """Planned Nov 27 00:00 (day ⅔), ETA Dec 3 00:00 (day 6⅔); 300 on hand, 50 a day, 100 safety.
    On time: 300 + 400 − 50 × 14 = 0 at the end, below 100 from day 12: 2 days. Late: 100 left
    on day 4, −33.3 when the truck lands on day 6⅔ (2⅔ days below), 366.7 after it, 100 again on
    day 12: 4⅔ days below, 2⅔ more than on time; the lowest point, 133.3 below safety stock, is
    33.3 deeper than on time (100 below, at the end)."""
    out = run([ship("S1", eta=ts(3, month=12))])
    row = out.row(0, named=True)
    assert row["reasons"] == ["eta_slipped"]
    assert row["slip_hours"] == 144
    line = row["lines"][0]
    assert line["delay_days"] == 6.0
    assert line["days_below_safety"] == pytest.approx(8 / 3, abs=1e-3)
    assert line["units_short"] == pytest.approx(33.333, abs=1e-3)
    assert row["service_days_at_risk"] == pytest.approx(8 / 3, abs=1e-3)
    assert row["value_at_risk"] == pytest.approx(333.33, abs=0.01)  # 33.3 × 10
    assert row["day"] == "2026-11-24"


def test_the_day_of_a_shipment_is_its_origins_day():
    """Planned to leave Nov 24 00:00 UTC: still Nov 23 in Chicago."""
    chicago = DetectorSettings.model_validate({"timezones": {"PLANT": "America/Chicago"}})
    demand, inventory = network()
    ships = table("shipments", [ship("S1", eta=ts(3, month=12))])
    out = detect_disruption(ships, build(demand, inventory, ships, chicago, NOW), chicago, NOW)
    assert out.row(0, named=True)["day"] == "2026-11-23"


def test_slip_within_tolerance_delivered_and_on_time_are_not_drifts():
    out = run([
        ship("OK"),
        ship("TEN_HOURS", eta=ts(27, 10)),                       # 10 h < 12 h tolerance
        ship("DONE", status="delivered", eta=ts(5, month=12)),   # already delivered
    ])
    assert out.is_empty()


def test_exception_status_and_silence_are_drifts_without_a_slip():
    out = run([
        ship("EXC", status="in_transit", exception_code="SD"),
        ship("QUIET", last_event_at=ts(24, 8)),                  # silent 48 h > 24 h
    ])
    by_id = {r["shipment_id"]: r for r in out.iter_rows(named=True)}
    assert by_id["EXC"]["reasons"] == ["exception"]
    assert by_id["QUIET"]["reasons"] == ["stopped_reporting"]
    assert by_id["QUIET"]["service_days_at_risk"] == 0.0         # not overdue yet


def test_slip_hysteresis():
    settings_band = 0.2  # tolerance 12 h: opens above 12 h, closes at or below 9.6 h
    opened = run([ship("S1", eta=ts(27, 13))])
    fp = opened.get_column("fingerprint").item()
    assert run([ship("S1", eta=ts(27, 10))]).is_empty()
    assert run([ship("S1", eta=ts(27, 10))], open_fps=frozenset({fp})).height == 1
    assert run([ship("S1", eta=ts(27, 9))], open_fps=frozenset({fp})).is_empty()
    assert settings_band == DetectorSettings().hysteresis_band
