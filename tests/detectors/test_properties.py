"""Properties that must hold for any network, checked with hypothesis."""

from collections import defaultdict
from datetime import date, timedelta

import polars as pl
from conftest import NOW, WEEK, table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors import DetectorSettings, Snapshot, detect
from detectors.projection import build
from detectors.stockout_risk import figures_frame

SKUS = st.sampled_from(["A", "B", "C"])
LOCS = st.sampled_from(["DC1", "DC2", "DC3", "DC4"])
QTY = st.integers(min_value=0, max_value=2000).map(float)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# what a recommendation's affected entry repeats from the projection
PROJECTED = ("on_hand", "safety_stock", "daily_demand", "min_projected", "units_short", "days_below_safety",
             "below_safety_in_days")


@st.composite
def networks(draw):
    keys = draw(st.lists(st.tuples(SKUS, LOCS), min_size=1, max_size=10, unique=True))
    demand = [
        {"sku": s, "location": loc, "period": WEEK + timedelta(days=7 * w), "planned_qty": draw(QTY),
         "latest_qty": draw(QTY), "unit_value": draw(st.integers(0, 50).map(float))}
        for s, loc in keys for w in range(draw(st.integers(1, 3)))
    ]
    inventory = [{"sku": s, "location": loc, "on_hand": draw(QTY), "safety_stock": draw(QTY) / 4}
                 for s, loc in keys]
    pairs = draw(st.lists(st.tuples(LOCS, LOCS).filter(lambda p: p[0] != p[1]), max_size=8, unique=True))
    lanes = [{"origin": o, "destination": d, "carrier": draw(st.sampled_from(["T1", "T2"])),
              "cost_per_unit": draw(st.integers(1, 5).map(float)), "capacity": draw(QTY),
              "transit_days": draw(st.sampled_from([1.0, 3.0, 9.0, 20.0]))} for o, d in pairs]
    shipments = [{"shipment_id": f"S{i}", "origin": "PLANT", "destination": loc, "sku": sku, "carrier": "T1",
                  "qty": draw(st.integers(1, 500).map(float)), "status": "in_transit",
                  "planned_ship": NOW - timedelta(days=1),
                  "planned_arrival": NOW + timedelta(hours=draw(st.integers(0, 200))),
                  "eta": NOW + timedelta(hours=draw(st.integers(0, 400))), "last_event_at": NOW}
                 for i, (sku, loc) in enumerate(draw(st.lists(st.tuples(SKUS, LOCS), max_size=5)))]
    return Snapshot(demand=table("demand", demand), inventory=table("inventory", inventory),
                    lanes=table("lanes", lanes), shipments=table("shipments", shipments))


@FAST
@given(networks())
def test_no_drift_when_execution_equals_the_plan(net):
    demand = net.demand.with_columns(pl.col("planned_qty").alias("latest_qty"))
    # enough stock that the plan itself is sound: on hand ≥ safety + all demand in the horizon
    inventory = net.inventory.with_columns((pl.col("safety_stock") + 10_000).alias("on_hand"))
    shipments = table("shipments", [
        {"shipment_id": f"S{i}", "origin": "PLANT", "destination": r["location"], "sku": r["sku"],
         "qty": 10.0, "planned_arrival": NOW + timedelta(days=i), "eta": NOW + timedelta(days=i),
         "status": "in_transit", "last_event_at": NOW - timedelta(hours=1)}
        for i, r in enumerate(demand.iter_rows(named=True))
    ])
    capacity = table("capacity", [
        {"resource_type": "carrier", "resource_id": "T1", "period": WEEK, "planned_capacity": 100,
         "available_capacity": 100, "planned_load": 80}])
    result = detect(Snapshot(demand=demand, inventory=inventory, shipments=shipments, capacity=capacity,
                             lanes=net.lanes), DetectorSettings(), NOW)
    assert result.drifts == [] and result.recommendations == []


@FAST
@given(networks())
def test_recommended_options_never_leave_more_than_doing_nothing(net):
    for rec in detect(net, DetectorSettings(), NOW).recommendations:
        ignored, approved = rec.impact_if_ignored, rec.impact_if_approved
        assert approved.units_short <= ignored.units_short + 1e-6, rec.summary
        assert approved.units_unserved <= ignored.units_unserved + 1e-6, rec.summary
        assert approved.value_at_risk <= ignored.value_at_risk + 1e-2, rec.summary
        assert approved.service_days_at_risk <= ignored.service_days_at_risk + 1e-6, rec.summary
        assert rec.options[0].recommended and rec.options[0].impact == approved
        assert rec.cost == rec.options[0].action_cost


@FAST
@given(networks())
def test_no_transfer_lands_after_the_last_day_it_helps(net):
    s = DetectorSettings()
    figures = {(r["sku"], r["location"]): r for r in figures_frame(build(
        net.demand, net.inventory, net.shipments, s, NOW)).iter_rows(named=True)}
    for rec in detect(net, s, NOW).recommendations:
        for a in rec.actions:
            if a.operation != "create_transfer":
                continue
            p = a.params
            lands = (date.fromisoformat(p["arrive_by"]) - date.fromisoformat(p["ship_date"])).days
            need = figures[(p["sku"], p["to"])]
            assert need["last_below_safety"] is not None and lands < need["last_below_safety"] + 1, p
            assert p["qty"] <= figures[(p["sku"], p["from"])]["spare"]


@FAST
@given(networks())
def test_transfers_stay_within_spare_stock_and_lane_capacity(net):
    s = DetectorSettings()
    spare = {(r["sku"], r["location"]): r["spare"] for r in figures_frame(build(
        net.demand, net.inventory, net.shipments, s, NOW)).iter_rows(named=True)}
    moves = [a.params for r in detect(net, s, NOW).recommendations for a in r.actions
             if a.operation == "create_transfer"]
    out, lane = defaultdict(float), defaultdict(float)
    for m in moves:
        out[(m["sku"], m["from"])] += m["qty"]
        lane[(m["from"], m["to"], m["carrier"])] += m["qty"]
        assert m["qty"] == round(m["qty"]) and m["qty"] > 0  # whole units
    for key, qty in out.items():
        assert qty <= spare[key] + 1e-9
    for (o, d, c), used in lane.items():
        cap = net.lanes.filter((pl.col("origin") == o) & (pl.col("destination") == d) & (pl.col("carrier") == c))
        assert used <= cap.get_column("capacity").sum() + 1e-9


@FAST
@given(networks())
def test_two_recommendations_never_disagree_about_one_sku_and_location(net):
    result = detect(net, DetectorSettings(), NOW)
    seen: dict[tuple[str, str], dict] = {}
    for rec in result.recommendations:
        for item in rec.affected:
            if "min_projected" in item:
                figures = {k: item[k] for k in PROJECTED}
                assert seen.setdefault((item["sku"], item["location"]), figures) == figures
    # every drift, a stock-out included, is answered by exactly one recommendation
    answered = [fp for rec in result.recommendations for fp in rec.drift_fingerprints]
    assert sorted(answered) == sorted(d.fingerprint for d in result.drifts)


@FAST
@given(networks(), st.randoms(use_true_random=False))
def test_same_business_keys_same_fingerprints_whatever_the_row_order(net, rnd):
    def shuffled(frame):
        idx = list(range(frame.height))
        rnd.shuffle(idx)
        return frame[idx]

    a = detect(net, DetectorSettings(), NOW)
    b = detect(Snapshot(demand=shuffled(net.demand), inventory=shuffled(net.inventory),
                        lanes=shuffled(net.lanes), shipments=shuffled(net.shipments)), DetectorSettings(), NOW)
    assert sorted(d.fingerprint for d in a.drifts) == sorted(d.fingerprint for d in b.drifts)
    assert sorted(r.fingerprint for r in a.recommendations) == sorted(r.fingerprint for r in b.recommendations)

    def key(r):
        return r.fingerprint

    for ra, rb in zip(sorted(a.recommendations, key=key), sorted(b.recommendations, key=key), strict=True):
        assert ra.drift_fingerprints == rb.drift_fingerprints
        assert ra.impact_if_ignored == rb.impact_if_ignored and ra.cost == rb.cost
