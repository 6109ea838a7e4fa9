"""Disruption: late ETA, exceptions, silent shipments, and what the destination loses."""

from conftest import NEXT_WEEK, NOW, WEEK, table, ts

from detectors import stockout_risk
from detectors.disruption import detect_disruption
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
    proj = stockout_risk.project(demand, inventory, ships, settings, NOW)
    return detect_disruption(ships, proj, settings, NOW, open_fps)


def test_eta_six_days_late_costs_two_service_days_at_the_destination():
    out = run([ship("S1", eta=ts(3, month=12))])  # planned Nov 27 00:00 → ETA Dec 3 00:00
    row = out.row(0, named=True)
    assert row["reasons"] == ["eta_slipped"]
    assert row["slip_hours"] == 144
    line = row["lines"][0]
    assert line["cover_days"] == 4.0          # (300 − 100) / 50
    assert line["service_days"] == 2.0        # 6 days late − 4 days covered
    assert line["need_units"] == 100.0        # 2 days × 50 a day
    assert row["units_short"] == 400 and row["value_at_risk"] == 4000
    assert row["service_days_at_risk"] == 2.0 and row["severity"] == "high"
    assert row["day"] == "2026-11-24"


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
