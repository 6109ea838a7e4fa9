"""Demand change: the latest demand signal moved away from what the plan in execution assumed."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from canonical.model import DriftKind
from detectors._common import add_fingerprints, collect, is_open, period_window, with_impact_and_severity
from detectors.settings import DetectorSettings

KIND = DriftKind.DEMAND_CHANGE
KEY = ["sku", "location", "period"]
EVIDENCE = [
    "planned_qty", "latest_qty", "delta", "change_pct", "unit_value", "sku_class",
    "threshold_pct", "threshold_units",
]
CAUSE = {"sku": "sku", "location": "location", "direction": "direction"}


def _threshold(settings: DetectorSettings, field: str) -> pl.Expr:
    """Location (team) override, else SKU-class override, else the default."""
    levels: list[pl.Expr] = []
    for column, overrides in (
        ("location", settings.demand.by_location),
        ("sku_class", settings.demand.by_sku_class),
    ):
        values = {k: getattr(v, field) for k, v in overrides.items() if getattr(v, field) is not None}
        if values:
            levels.append(
                pl.col(column).replace_strict(
                    list(values), list(values.values()), default=None, return_dtype=pl.Float64
                )
            )
    levels.append(pl.lit(float(getattr(settings.demand.default, field))))
    return pl.coalesce(levels)


def detect_demand_change(
    demand: pl.DataFrame,
    settings: DetectorSettings,
    now: datetime,
    open_fingerprints: frozenset[str] = frozenset(),
) -> pl.DataFrame:
    """One row per sku × location × period whose change passes the thresholds (with hysteresis)."""
    band = settings.hysteresis_band
    delta = pl.col("latest_qty") - pl.col("planned_qty")
    change_pct = (
        pl.when(pl.col("planned_qty") > 0)
        .then(delta / pl.col("planned_qty") * 100.0)
        .when(delta > 0).then(float("inf"))
        .when(delta < 0).then(float("-inf"))
        .otherwise(0.0)
    )
    thr_pct = _threshold(settings, "relative_pct")
    thr_units = _threshold(settings, "absolute_units")
    # cheap test first, on the raw columns (multiplication, no division) — most rows stop here
    scored = (
        demand.lazy()
        .filter(
            period_window(settings, now, settings.planning_horizon_days)
            & (delta.abs() >= thr_units * (1 - band))
            & (delta.abs() * 100.0 >= thr_pct * (1 - band) * pl.col("planned_qty"))
            & (delta != 0)
        )
        .with_columns(
            delta.alias("delta"),
            change_pct.alias("change_pct"),
            thr_pct.alias("threshold_pct"),
            thr_units.alias("threshold_units"),
        )
    )
    opens = (pl.col("change_pct").abs() >= pl.col("threshold_pct")) & (
        pl.col("delta").abs() >= pl.col("threshold_units")
    )
    if not open_fingerprints:  # nothing open: the hysteresis zone cannot matter
        scored = scored.filter(opens)
    scored = add_fingerprints(collect(scored, demand.height), KIND, KEY)
    out = scored.lazy().filter(opens | is_open(open_fingerprints)).with_columns(
        pl.when(pl.col("delta") > 0).then(pl.lit("up")).otherwise(pl.lit("down")).alias("direction"),
        pl.col("delta").clip(lower_bound=0).alias("units_short"),
        (-pl.col("delta")).clip(lower_bound=0).alias("units_excess"),
        (pl.col("delta").abs() * pl.col("unit_value")).alias("value_at_risk"),
        pl.lit(0.0).alias("service_days_at_risk"),
    )
    return with_impact_and_severity(out, settings, sort_by=KEY)
