"""Array-speed shortcuts must give exactly what the plain Python they replace gives."""

import gc
import math
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.detect import NOW, generate
from detectors import DetectorSettings, detect, pipeline
from detectors._common import round_like_python
from detectors.model import Action, Drift, Impact, Recommendation
from detectors.pipeline import detect_frames

FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


@settings(max_examples=500, deadline=None)
@given(st.lists(FLOATS, max_size=20), st.sampled_from([2, 3, 4]))
def test_round_like_python_equals_round(values, ndigits):
    got = round_like_python(np.array(values, dtype=np.float64), ndigits)
    assert all(_same(g, round(v, ndigits)) for g, v in zip(got, values, strict=True))


def test_round_like_python_on_ties_and_near_ties():
    rng = np.random.default_rng(0)
    k = rng.integers(-10**9, 10**9, 20_000)
    values = np.concatenate([
        (k + 0.5) / 1e4, (k + 0.5) / 1e2, np.nextafter((k + 0.5) / 1e4, np.inf),
        np.nextafter((k + 0.5) / 1e4, -np.inf), k / 1e4, rng.normal(0, 1e6, 20_000),
        [0.125, 2.675, 1.0005, -0.00005, 5e-5, 1e300, -1e300, 2.0**52 + 0.5, 1e16 / 3, 0.0, -0.0],
    ])
    for ndigits in (2, 4):
        got = round_like_python(values, ndigits)
        assert all(_same(g, round(float(v), ndigits)) for g, v in zip(got, values, strict=True))


def test_drifts_built_without_validation_equal_validated_ones():
    drifts = detect_frames(generate(0.01), DetectorSettings(), NOW, frozenset()).drifts
    assert {d.kind.value for d in drifts} >= {"demand_change", "disruption", "stockout_risk"}
    for d in drifts:
        checked = Drift.model_validate(d.model_dump())
        assert checked == d
        assert checked.model_dump_json() == d.model_dump_json()
        assert checked.model_fields_set == d.model_fields_set
        assert type(checked.impact.value_at_risk) is type(d.impact.value_at_risk) is float


def test_recommendations_built_without_validation_equal_validated_ones():
    result = detect(generate(0.01), DetectorSettings(), NOW)
    kinds = {r.kind.value for r in result.recommendations}
    assert kinds == {"demand_change", "disruption", "capacity_shift", "stockout_risk"}
    for r in result.recommendations:
        checked = Recommendation.model_validate(r.model_dump())
        assert checked == r
        assert checked.model_dump_json() == r.model_dump_json()
        assert checked.model_fields_set == r.model_fields_set
        for mine in r.actions:  # Action.unchecked: as if built by Action(system=, operation=, params=)
            validated = Action(system=mine.system, operation=mine.operation, params=mine.params)
            assert validated == mine and validated.model_fields_set == mine.model_fields_set
            assert validated.model_dump_json() == mine.model_dump_json()
        for impact in (r.impact_if_approved, r.impact_if_ignored):
            assert Impact.model_validate(impact.model_dump()) == impact
            assert all(type(v) is float for k, v in impact.model_dump().items() if k != "orders_at_risk")


def test_a_pass_leaves_the_collector_on_and_frozen_objects_frozen(monkeypatch):
    monkeypatch.setattr(pipeline, "_frozen_elsewhere", False)  # whatever tests before it froze
    snap = generate(0.01)
    gc.collect()
    detect(snap, DetectorSettings(), NOW)
    assert gc.isenabled() and gc.get_count()[0] < 1_000  # the pass's objects went to the oldest generation
    gc.freeze()  # an application that froze its start-up objects (pre-fork servers do)
    try:
        frozen = gc.get_freeze_count()
        detect(snap, DetectorSettings(), NOW)
        assert gc.isenabled() and 0.9 * frozen < gc.get_freeze_count() <= frozen  # not unfrozen
    finally:
        gc.unfreeze()
    gc.disable()  # a caller that runs without the collector keeps it off
    try:
        detect(snap, DetectorSettings(), NOW)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_frozen_objects_are_counted_once_not_by_every_pass(monkeypatch):
    """Counting frozen objects walks them all, holding the interpreter (a Slack ack waits)."""
    monkeypatch.setattr(pipeline, "_frozen_elsewhere", False)
    counted = []
    count = gc.get_freeze_count
    monkeypatch.setattr(gc, "get_freeze_count", lambda: counted.append(1) or count())
    snap = generate(0.01)
    kept = [[i] for i in range(1_000)]
    gc.freeze()
    try:
        for _ in range(3):
            detect(snap, DetectorSettings(), NOW)
        assert len(counted) == 1
        assert gc.isenabled() and count() >= len(kept)  # still frozen
    finally:
        gc.unfreeze()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), FLOATS), st.one_of(st.none(), FLOATS)), max_size=30))
def test_severity_column_equals_severity_expr(rows):
    """Bands applied with numpy rank like polars: nulls lowest, NaN above every band."""
    import polars as pl

    from detectors._common import severity_column, severity_expr

    s = DetectorSettings().severity
    edges = [s.value_medium, s.value_high, s.value_critical, s.service_days_medium, s.service_days_high]
    rows = rows + [(e, e) for e in edges] + [(float("nan"), None), (None, float("nan"))]
    frame = pl.DataFrame({"value_at_risk": [r[0] for r in rows], "service_days_at_risk": [r[1] for r in rows]},
                         schema={"value_at_risk": pl.Float64, "service_days_at_risk": pl.Float64})
    want = frame.select(severity_expr(s).alias("severity")).get_column("severity")
    assert severity_column(frame, s).to_list() == want.to_list()


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1),
                    timezones=st.sampled_from([timezone.utc, ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York")])))
def test_now_literal_equals_the_datetime_literal(now):
    """Detectors get ``now`` in UTC (detect converts it); polars' own zone rules may differ from
    Python's for other zones (e.g. Paris in 2100), so the literal is compared in UTC."""
    import polars as pl

    from detectors._common import now_literal

    frame = pl.DataFrame({"x": [0]})
    want = frame.select(pl.lit(now.astimezone(timezone.utc)).cast(pl.Datetime("us", "UTC")).alias("t"))
    assert frame.select(now_literal(now).alias("t")).equals(want)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "B", "C", "D"]), st.integers(-10, 35),
                          st.sampled_from([0.0, 1.5, 7.25, 40.0])),
                min_size=1, max_size=40),
       st.sampled_from([3.5, 7.0, 14.0, 30.0]), st.sampled_from(["clean", "clean", None, float("nan")]))
def test_incremental_unit_values_equal_the_query(rows, horizon, first_value):
    """The array path of an incremental pass's unit values (the query's on nulls or NaN) gives
    what stockout_risk.unit_values gives on the same rows: periods in and out of the horizon,
    fractional horizons, SKUs without rows or without rows in the horizon."""
    import polars as pl

    from detectors import ChangedKeys, Snapshot, stockout_risk
    from detectors.pipeline import _Neighbourhood
    from detectors.snapshot_index import SnapshotIndex

    demand = pl.DataFrame({
        "sku": [r[0] for r in rows], "location": [f"L{i}" for i in range(len(rows))],
        "period": [NOW.date() + timedelta(days=r[1]) for r in rows], "planned_qty": 1.0, "latest_qty": 1.0,
        "unit_value": pl.Series([r[2] if i or first_value == "clean" else first_value for i, r in enumerate(rows)],
                                dtype=pl.Float64), "sku_class": "A",
    })
    snap = Snapshot(demand=demand)
    s = DetectorSettings.model_validate({"stockout": {"horizon_days": horizon}})
    near = _Neighbourhood(snap, ChangedKeys(), SnapshotIndex(snap))
    skus = pl.Series("sku", ["A", "B", "C", "D", "E"])
    got = near.unit_values(skus, s, NOW).sort("sku")
    want = stockout_risk.unit_values(snap.demand, skus, s, NOW).sort("sku")
    assert got.schema == want.schema
    assert got.equals(want)
