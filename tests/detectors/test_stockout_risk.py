"""Stockout risk: positions whose projected stock dips below safety stock, from the projection."""

import pytest
from conftest import NOW, table, ts
from test_disruption import network, ship

from detectors import stockout_risk
from detectors._common import add_fingerprints
from detectors.projection import build
from detectors.settings import DetectorSettings


def run(shipments, on_hand, open_fps=frozenset()):
    settings = DetectorSettings()  # 14-day horizon
    demand, inventory = network(on_hand)
    figures = stockout_risk.figures_frame(build(demand, inventory, table("shipments", shipments), settings, NOW))
    return figures, stockout_risk.detect_stockout_risk(figures, settings, open_fps)


def test_on_time_inbound_keeps_safety_stock():
    # 50 a day; 400 on hand + 400 on Nov 27 → 800 − 50 × 14 = 100 at the end = safety stock
    figures, out = run([ship("S1")], on_hand=400)
    row = figures.row(0, named=True)
    assert row["daily_demand"] == pytest.approx(50) and row["min_projected"] == pytest.approx(100)
    assert out.is_empty()  # exactly at safety stock is not a drift


def test_late_inbound_dips_below_safety_before_it_arrives():
    # ETA Dec 3 00:00 = 6⅔ days away: 400 − 50 × 6⅔ = 66.7 just before it lands → 33.3 short,
    # below 100 from day 6 (400 − 300) until the truck lands
    _, out = run([ship("S1", eta=ts(3, month=12))], on_hand=400)
    row = out.row(0, named=True)
    assert row["min_projected"] == pytest.approx(66.667, abs=1e-3)
    assert row["units_short"] == pytest.approx(33.333, abs=1e-3)
    assert row["below_safety_in_days"] == pytest.approx(6.0)
    assert row["days_below_safety"] == pytest.approx(2 / 3)
    assert row["service_days_at_risk"] == pytest.approx(2 / 3) and row["stockout_days"] == 0


def test_stockout_days_unserved_and_value():
    # 300 on hand: 300 − 50 × 6⅔ = −33.3 → out of stock for the last ⅔ day before the truck
    _, out = run([ship("S1", eta=ts(3, month=12))], on_hand=300)
    row = out.row(0, named=True)
    assert row["units_short"] == pytest.approx(133.333, abs=1e-3)
    assert row["units_unserved"] == pytest.approx(33.333, abs=1e-3)
    assert row["value_at_risk"] == pytest.approx(1333.33, abs=1e-2)
    assert row["days_out_of_stock"] == pytest.approx(2 / 3, abs=1e-4)


def test_inbound_beyond_the_horizon_does_not_help():
    _, out = run([ship("S1", eta=ts(20, month=12))], on_hand=400)
    # 400 − 700 = −300 at day 14 → 400 short of the 100 safety stock
    assert out.row(0, named=True)["units_short"] == pytest.approx(400)


def test_an_open_drift_exactly_at_safety_stock_is_no_longer_a_drift():
    """Hysteresis keeps an open drift while any shortfall is left, never at 0 units short (which
    once posted "drops 0 units below safety stock")."""
    figures, out = run([ship("S1")], on_hand=400)  # ends exactly at the 100 safety stock
    fingerprints = frozenset(add_fingerprints(figures, stockout_risk.KIND, stockout_risk.KEY)
                             .get_column("fingerprint").to_list())
    assert run([ship("S1")], on_hand=400, open_fps=fingerprints)[1].is_empty()
    # half a unit short: below min_units_short, but an open drift stays open
    held = run([ship("S1")], on_hand=399.5, open_fps=fingerprints)[1]
    assert held.get_column("units_short").to_list() == [pytest.approx(0.5)]
    assert run([ship("S1")], on_hand=399.5)[1].is_empty()



def test_a_fraction_of_a_unit_below_safety_is_not_urgent_however_long_it_lasts():
    """Severity counts days below safety stock only from a whole unit below it: half a unit
    short for 6 days is low (it was once critical); 33 units short for ⅔ of a day is medium."""
    from canonical.model import Impact
    from detectors._common import severity_of

    bands = DetectorSettings().severity
    assert severity_of(Impact(units_short=0.5, service_days_at_risk=6, value_at_risk=15), bands).value == "low"
    assert severity_of(Impact(units_short=1, service_days_at_risk=6, value_at_risk=15), bands).value == "critical"
    late = run([ship("S1", eta=ts(3, month=12))], on_hand=400)[1].row(0, named=True)
    assert late["severity"] == "medium"
