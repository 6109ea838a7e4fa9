"""Stockout risk: projected inventory from on hand, latest demand and inbound by ETA."""

import pytest
from conftest import NOW, table, ts
from test_disruption import network, ship

from detectors import stockout_risk
from detectors.settings import DetectorSettings


def run(shipments, on_hand):
    settings = DetectorSettings()  # 14-day horizon
    demand, inventory = network(on_hand)
    proj = stockout_risk.project(demand, inventory, table("shipments", shipments), settings, NOW)
    return proj, stockout_risk.detect_stockout_risk(proj, settings)


def test_on_time_inbound_keeps_safety_stock():
    # 14 days × 50 = 700 demand; 400 on hand + 400 inbound → ends at 100 = safety stock
    proj, out = run([ship("S1")], on_hand=400)
    assert proj.row(0, named=True)["daily_demand"] == pytest.approx(50)
    assert proj.row(0, named=True)["min_projected"] == pytest.approx(100)
    assert out.is_empty()


def test_late_inbound_dips_below_safety_before_it_arrives():
    # ETA Dec 3 00:00 = 6⅔ days away: 400 − 50 × 6⅔ = 66.7 just before it lands → 33.3 short
    _, out = run([ship("S1", eta=ts(3, month=12))], on_hand=400)
    row = out.row(0, named=True)
    assert row["min_projected"] == pytest.approx(66.667, abs=1e-3)
    assert row["units_short"] == pytest.approx(33.333, abs=1e-3)
    assert row["below_safety_in_days"] == pytest.approx(6.0)      # (400 − 100) / 50
    assert row["stockout_days"] == 0
    assert row["days_of_cover"] == 8 and row["safety_days"] == 2


def test_stockout_days_and_value():
    # 300 on hand: 300 − 50 × 6⅔ = −33.3 → out of stock for the last ⅔ day before the truck
    _, out = run([ship("S1", eta=ts(3, month=12))], on_hand=300)
    row = out.row(0, named=True)
    assert row["units_short"] == pytest.approx(133.333, abs=1e-3)
    assert row["value_at_risk"] == pytest.approx(1333.33, abs=1e-2)
    assert row["service_days_at_risk"] == pytest.approx(0.6667, abs=1e-4)


def test_inbound_beyond_the_horizon_does_not_help():
    _, out = run([ship("S1", eta=ts(20, month=12))], on_hand=400)
    # 400 − 700 = −300 at day 14 → 400 short of the 100 safety stock
    assert out.row(0, named=True)["units_short"] == pytest.approx(400)


def test_projection_is_the_same_when_the_first_seeds_collide(monkeypatch):
    """After a collision the hashes come from their own query, not from the feeds' first seeds."""
    from bench.detect import NOW as BENCH_NOW
    from bench.detect import generate

    snap = generate(0.02)
    settings = DetectorSettings()
    want = stockout_risk.project(snap.demand, snap.inventory, snap.shipments, settings, BENCH_NOW)
    real, calls = stockout_risk._check, []

    def first_collides(new, check):
        calls.append(1)
        if len(calls) == 1:
            raise stockout_risk._Collision
        real(new, check)

    monkeypatch.setattr(stockout_risk, "_check", first_collides)
    got = stockout_risk.project(snap.demand, snap.inventory, snap.shipments, settings, BENCH_NOW)
    assert len(calls) > 1 and got.equals(want)


def test_an_open_drift_exactly_at_safety_stock_is_no_longer_a_drift():
    """Hysteresis keeps an open drift while any shortfall is left, never at 0 units short (which
    once posted "drops 0 units below safety stock")."""
    from detectors._common import add_fingerprints

    proj, out = run([ship("S1")], on_hand=400)  # ends exactly at the 100 safety stock
    assert out.is_empty()
    fingerprints = frozenset(add_fingerprints(proj, stockout_risk.KIND, stockout_risk.KEY)
                             .get_column("fingerprint").to_list())
    assert stockout_risk.detect_stockout_risk(proj, DetectorSettings(), fingerprints).is_empty()
    # still half a unit short: below min_units_short, but an open drift stays open
    proj, _ = run([ship("S1")], on_hand=399.5)
    held = stockout_risk.detect_stockout_risk(proj, DetectorSettings(), fingerprints)
    assert held.get_column("units_short").to_list() == [pytest.approx(0.5)]
