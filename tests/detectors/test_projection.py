"""The time-phased projection: every figure a planner can redo with a calculator."""

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from conftest import table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.projection import Receipts, _buckets, build, simulate
from detectors.settings import DetectorSettings

MONDAY = datetime(2026, 11, 30, tzinfo=UTC)  # midnight: every day bucket is a whole day
WEEK = date(2026, 11, 30)


def one(on_hand: float, safety: float, rate: float, arrivals: list[tuple[float, float]], horizon: float = 14):
    bounds, _ = _buckets(horizon, MONDAY)
    figures = simulate(np.array([on_hand]), np.array([safety]), np.full((1, len(bounds) - 1), rate), bounds,
                       Receipts.of([(0, t, q, "S") for t, q in arrivals]))
    return {name: float(getattr(figures, name)[0]) for name in figures.__dataclass_fields__}


def test_a_late_shipment_counts_the_stock_used_before_it_was_due():
    """On hand 40, safety 20, 10 a day: stock reaches safety stock on day 2. 200 due on day 2
    arriving 30 h late (day 3.25) leaves it below safety stock for 1.25 days, down to
    40 − 10 × 3.25 = 7.5, i.e. 12.5 below safety stock; on time it never goes below."""
    on_time = one(40, 20, 10, [(2.0, 200)])
    late = one(40, 20, 10, [(2.0 + 30 / 24, 200)])
    assert on_time["days_below_safety"] == 0 and on_time["below_safety"] == 0 and on_time["min_level"] == 20
    assert late["days_below_safety"] == pytest.approx(1.25)
    assert late["min_level"] == pytest.approx(7.5) and late["below_safety"] == pytest.approx(12.5)
    assert late["first_below_safety"] == pytest.approx(2.0) and late["last_below_safety"] == pytest.approx(3.25)
    assert late["shortage_unit_days"] == pytest.approx(12.5 * 1.25 / 2)  # a triangle
    assert late["unserved"] == 0 and late["days_out_of_stock"] == 0


def test_out_of_stock_and_unserved_units():
    """100 on hand, 20 a day, nothing inbound for 14 days: zero on day 5, −180 at the end."""
    f = one(100, 40, 20, [])
    assert f["min_level"] == pytest.approx(-180) and f["unserved"] == pytest.approx(180)
    assert f["below_safety"] == pytest.approx(220)
    assert f["first_below_safety"] == pytest.approx(3) and f["days_below_safety"] == pytest.approx(11)
    assert f["days_out_of_stock"] == pytest.approx(9)


def test_demand_is_spread_day_by_day_from_its_period_buckets():
    """Week 1 needs 70 (10 a day), week 2 needs 210 (30 a day): 300 on hand lasts 7 + 230/30 days."""
    demand = table("demand", [
        {"sku": "A", "location": "DC", "period": WEEK, "planned_qty": 70, "latest_qty": 70, "unit_value": 5},
        {"sku": "A", "location": "DC", "period": WEEK + timedelta(weeks=1), "planned_qty": 210,
         "latest_qty": 210, "unit_value": 5}])
    inventory = table("inventory", [{"sku": "A", "location": "DC", "on_hand": 300, "safety_stock": 0}])
    p = build(demand, inventory, table("shipments", []), DetectorSettings(), MONDAY)
    assert p.rate[0].tolist() == [10.0] * 7 + [30.0] * 7
    assert p.figures.end_level[0] == pytest.approx(300 - 70 - 210) and p.figures.min_level[0] == pytest.approx(20)
    assert p.figures.days_below_safety[0] == 0


def test_an_inbound_line_lands_at_its_eta_and_a_delivered_one_not_at_all():
    demand = table("demand", [{"sku": "A", "location": "DC", "period": WEEK + timedelta(weeks=w),
                               "planned_qty": 70, "latest_qty": 70, "unit_value": 5} for w in range(2)])
    inventory = table("inventory", [{"sku": "A", "location": "DC", "on_hand": 50, "safety_stock": 20}])
    ship = {"origin": "P", "destination": "DC", "sku": "A", "qty": 100, "status": "in_transit"}
    shipments = table("shipments", [
        {**ship, "shipment_id": "S1", "planned_arrival": MONDAY + timedelta(days=2),
         "eta": MONDAY + timedelta(days=4)},
        {**ship, "shipment_id": "S2", "planned_arrival": MONDAY + timedelta(days=1), "status": "delivered"}])
    p = build(demand, inventory, shipments, DetectorSettings(), MONDAY)
    assert p.receipts.ref.tolist() == ["S1"] and p.receipts.t.tolist() == [4.0]
    assert p.figures.min_level[0] == pytest.approx(10)  # 50 − 4 × 10 just before S1 lands
    # below 20 from day 3 until S1 lands on day 4, and again from day 13 (110 − 9 × 10) to day 14
    assert p.figures.days_below_safety[0] == pytest.approx(2)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.floats(-50, 300), st.floats(0, 100), st.lists(st.floats(0, 30), min_size=15, max_size=15),
       st.lists(st.tuples(st.floats(0, 14), st.floats(-60, 200)), max_size=5),
       st.sampled_from([MONDAY, MONDAY + timedelta(hours=8, minutes=20)]))
def test_the_figures_equal_a_minute_by_minute_simulation(on_hand, safety, rates, arrivals, now):
    """The oracle walks the path in steps of a minute, as a spreadsheet would."""
    bounds, _ = _buckets(14, now)
    rate = np.asarray(rates[:len(bounds) - 1])[None, :]
    f = simulate(np.array([on_hand]), np.array([safety]), rate, bounds,
                 Receipts.of([(0, t, q, "S") for t, q in arrivals]))
    step = 1 / 1440
    t = (np.arange(int(14 / step)) + 0.5) * step
    day = np.searchsorted(bounds, t, side="right") - 1
    consumed = np.concatenate([[0], np.cumsum(rate[0] * np.diff(bounds))])
    level = on_hand - consumed[day] - rate[0][day] * (t - bounds[day])
    for at, q in arrivals:
        level += q * (t >= at)
    noise = 1e-6  # a shortfall smaller than this is rounding, not a shortfall
    assert f.days_below_safety[0] == pytest.approx((level < safety - noise).sum() * step, abs=5e-3)
    assert f.days_out_of_stock[0] == pytest.approx((level < -noise).sum() * step, abs=5e-3)
    assert f.shortage_unit_days[0] == pytest.approx(np.maximum(safety - level, 0).sum() * step, abs=0.2, rel=1e-2)
    assert f.min_level[0] == pytest.approx(min(level.min(), on_hand), abs=0.1)
