"""Properties that must hold for any network, checked with hypothesis."""

from datetime import timedelta

import polars as pl
import pytest
from conftest import NOW, WEEK, table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors import DetectorSettings, Snapshot, detect
from detectors.stockout_risk import project
from detectors.transfers import plan_transfers

SKUS = st.sampled_from(["A", "B", "C"])
LOCS = st.sampled_from(["DC1", "DC2", "DC3", "DC4"])
QTY = st.integers(min_value=0, max_value=2000).map(float)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


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
              "cost_per_unit": draw(st.integers(1, 5).map(float)), "capacity": draw(QTY)} for o, d in pairs]
    return Snapshot(demand=table("demand", demand), inventory=table("inventory", inventory),
                    lanes=table("lanes", lanes))


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
def test_transfers_never_exceed_spare_stock_or_lane_capacity(net):
    s = DetectorSettings()
    proj = project(net.demand, net.inventory, net.shipments, s, NOW)
    needs = proj.filter(pl.col("min_projected") < pl.col("safety_stock")).select(
        "sku", "location", (pl.col("safety_stock") - pl.col("min_projected")).ceil().alias("qty"))
    moves = plan_transfers(needs, proj, net.lanes, s)
    spare = {(r["sku"], r["location"]): r["spare"] for r in proj.iter_rows(named=True)}
    for sku, src, out in moves.group_by("sku", "from").agg(pl.col("qty").sum()).iter_rows():
        assert out <= spare[(sku, src)] + 1e-9
    for o, d, c, used in moves.group_by("from", "to", "carrier").agg(pl.col("qty").sum()).iter_rows():
        cap = net.lanes.filter((pl.col("origin") == o) & (pl.col("destination") == d) & (pl.col("carrier") == c))
        assert used <= cap.get_column("capacity").sum() + 1e-9
    need = {(r["sku"], r["location"]): r["qty"] for r in needs.iter_rows(named=True)}
    for sku, dst, got in moves.group_by("sku", "to").agg(pl.col("qty").sum()).iter_rows():
        assert got <= need[(sku, dst)] + 1e-9
    assert (moves.get_column("qty") == moves.get_column("qty").round()).all()  # whole units


@FAST
@given(networks(), st.randoms(use_true_random=False))
def test_same_business_keys_same_fingerprints_whatever_the_row_order(net, rnd):
    def shuffled(frame):
        idx = list(range(frame.height))
        rnd.shuffle(idx)
        return frame[idx]

    a = detect(net, DetectorSettings(), NOW)
    b = detect(Snapshot(demand=shuffled(net.demand), inventory=shuffled(net.inventory),
                        lanes=shuffled(net.lanes)), DetectorSettings(), NOW)
    assert sorted(d.fingerprint for d in a.drifts) == sorted(d.fingerprint for d in b.drifts)
    assert sorted(r.fingerprint for r in a.recommendations) == sorted(r.fingerprint for r in b.recommendations)
    def key(r):
        return r.fingerprint
    for ra, rb in zip(sorted(a.recommendations, key=key), sorted(b.recommendations, key=key), strict=True):
        assert ra.drift_fingerprints == rb.drift_fingerprints
        qa = sum(x.params.get("qty", 0) for x in ra.actions if x.operation == "create_transfer")
        qb = sum(x.params.get("qty", 0) for x in rb.actions if x.operation == "create_transfer")
        assert qa == qb  # the optimum is unique in total even if ties could split differently


def _simulated(demand, inventory, shipments, s):
    """The projection a planner would compute by hand, position by position (the oracle)."""
    horizon = s.stockout.horizon_days
    start, end = NOW.date(), NOW.date() + timedelta(days=horizon)
    pos: dict[tuple[str, str], dict] = {}
    for r in inventory.iter_rows(named=True):
        p = pos.setdefault((r["sku"], r["location"]), {"on_hand": 0.0, "safety": 0.0, "demand": 0.0})
        p["on_hand"] += r["on_hand"]
        p["safety"] = max(p["safety"], r["safety_stock"])
    for r in demand.iter_rows(named=True):
        lo, hi = max(r["period"], start), min(r["period"] + timedelta(days=7), end)
        if r["period"] + timedelta(days=7) > start and r["period"] < end:
            p = pos.setdefault((r["sku"], r["location"]), {"on_hand": 0.0, "safety": 0.0, "demand": 0.0})
            p["demand"] += r["latest_qty"] * max(0, (hi - lo).days) / 7
    out = {}
    for key, p in pos.items():
        rate = p["demand"] / horizon
        arrivals: dict[float, float] = {}
        for r in shipments.iter_rows(named=True):
            at = r["eta"] or r["planned_arrival"]
            if (r["sku"], r["destination"]) != key or r["status"] in ("delivered", "cancelled") or at is None:
                continue
            t = max(0.0, (at - NOW).total_seconds() / 86400)
            if t < horizon:
                arrivals[t] = arrivals.get(t, 0.0) + r["qty"]
        level, t0, lows = p["on_hand"], 0.0, []
        for t in [*sorted(arrivals), horizon]:
            lows.append(level - rate * (t - t0))  # just before the next arrival (or the horizon)
            level, t0 = lows[-1] + arrivals.get(t, 0.0), t
        out[key] = {"min_projected": min(lows), "inbound_qty": sum(arrivals.values()),
                    "daily_demand": rate, "on_hand": p["on_hand"], "safety_stock": p["safety"]}
    return out


@FAST
@given(networks(), st.lists(st.tuples(SKUS, LOCS, st.integers(-48, 400), st.integers(1, 300),
                                      st.sampled_from(["planned", "in_transit", "delivered"])), max_size=12),
       st.randoms(use_true_random=False))
def test_projection_equals_a_position_by_position_simulation(net, lines, rnd):
    ships = table("shipments", [
        {"shipment_id": f"S{i}", "origin": "PLANT", "destination": loc, "sku": sku, "qty": float(q),
         "planned_arrival": NOW + timedelta(hours=h), "status": status}
        for i, (sku, loc, h, q, status) in enumerate(lines)])
    # unordered rows and a position split over two inventory rows: the general grouping path
    inventory = pl.concat([net.inventory, net.inventory.head(1).with_columns(pl.lit(5.0).alias("on_hand"))])
    idx = list(range(net.demand.height))
    rnd.shuffle(idx)
    demand = net.demand[idx]
    s = DetectorSettings()
    for inv, dem in ((net.inventory, net.demand), (inventory, demand)):
        proj = project(dem, inv, ships, s, NOW)
        want = _simulated(dem, inv, ships, s)
        assert sorted(proj.select("sku", "location").iter_rows()) == sorted(want)
        for row in proj.iter_rows(named=True):
            for col, value in want[(row["sku"], row["location"])].items():
                assert row[col] == pytest.approx(value, rel=1e-9, abs=1e-9), col
