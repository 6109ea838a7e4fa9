"""Array-speed shortcuts must give exactly what the plain Python they replace gives."""

import math
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.detect import NOW, generate
from canonical.model import Action, Drift, Impact, Recommendation
from detectors import DetectorSettings, detect
from detectors._common import round_like_python
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


UNITS = st.floats(min_value=0, max_value=1e9, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(UNITS, UNITS, UNITS), max_size=30))
def test_severity_column_equals_severity_of(rows):
    """The column form ranks each row as severity_of ranks one impact, on the band edges too."""
    import polars as pl

    from detectors._common import severity_column, severity_of

    s = DetectorSettings().severity
    edges = [s.value_medium, s.value_high, s.value_critical, s.service_days_medium, s.service_days_high,
             s.service_days_min_units]
    rows = rows + [(e, e, e) for e in edges] + [(0.5, 1e6, 3.0), (1.0, 0.0, 9.0)]
    frame = pl.DataFrame([{"units_short": u, "value_at_risk": v, "service_days_at_risk": d} for u, v, d in rows],
                         schema={"units_short": pl.Float64, "value_at_risk": pl.Float64,
                                 "service_days_at_risk": pl.Float64})
    want = [severity_of(Impact(units_short=u, value_at_risk=v, service_days_at_risk=d), s).value
            for u, v, d in rows]
    assert severity_column(frame, s).to_list() == want


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
