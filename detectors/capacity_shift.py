"""Capacity shift: a lane, carrier, site or dock now has less room than its planned load — or far more.

Capacity and load are in the same unit (pallets, by default) as lane capacity in ``lanes``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import polars as pl

from detectors._common import add_fingerprints, collect, collect_all, is_open, period_window, with_impact_and_severity
from detectors.model import DriftKind
from detectors.settings import DetectorSettings

KIND = DriftKind.CAPACITY_SHIFT
KEY = ["resource_type", "resource_id", "period"]
EVIDENCE = [
    "planned_capacity", "available_capacity", "planned_load", "utilisation", "overflow",
    "spare_capacity", "unit_value",
]
CAUSE = {"resource_type": "resource_type", "resource": "resource_id", "direction": "direction",
         "period": "period"}


def resource_key(resource_type: str) -> pl.Expr:
    """Which shipment column identifies a resource of this type (for load value and overflow)."""
    return {
        "carrier": pl.col("carrier"),
        "lane": pl.concat_str("origin", pl.lit(">"), "destination"),
        "site": pl.col("origin"),
        "dock": pl.col("destination"),
    }[resource_type]


def resource_loads(
    drifts: pl.DataFrame, shipments: pl.DataFrame, settings: DetectorSettings
) -> pl.DataFrame:
    """Shipment lines planned to ship on each drifting resource within its period.

    Only the columns readers use: origin, destination, carrier, sku, qty and the resource key.
    """
    pd_ = timedelta(days=settings.period_days)
    lines = shipments.lazy().select("origin", "destination", "carrier", "sku", "qty", "planned_ship")
    parts = []
    by_type = drifts.partition_by("resource_type", as_dict=True)
    for rtype in ("carrier", "lane", "site", "dock"):
        sub = by_type.get((rtype,))
        if sub is None or sub.is_empty():
            continue
        parts.append(
            lines.with_columns(resource_key(rtype).alias("resource_id"))
            .filter(pl.col("resource_id").is_in(sub.get_column("resource_id").unique().implode()))
            .with_columns(pl.col("planned_ship").dt.date().alias("ship_day"))
            .join(sub.lazy().select("resource_type", "resource_id", "period"), on="resource_id")
            .filter((pl.col("ship_day") >= pl.col("period")) & (pl.col("ship_day") < pl.col("period") + pd_))
        )
    parts = collect_all(parts, shipments.height)  # in parallel
    if not parts:
        return collect(lines.clear(), 0).with_columns(
            pl.lit(None, pl.Utf8).alias("resource_id"), pl.lit(None, pl.Date).alias("ship_day"),
            pl.lit(None, pl.Utf8).alias("resource_type"), pl.lit(None, pl.Date).alias("period"),
        )
    return pl.concat(parts, how="diagonal_relaxed")


def detect_capacity_shift(
    capacity: pl.DataFrame,
    shipments: pl.DataFrame,
    unit_values: pl.DataFrame | Callable[[pl.Series], pl.DataFrame],
    settings: DetectorSettings,
    now: datetime,
    open_fingerprints: frozenset[str] = frozenset(),
) -> pl.DataFrame:
    """One row per resource × period over the utilisation threshold, or well under it with grown capacity.

    ``unit_values``: (sku, unit_value) used to value the load that cannot move, or a function
    giving them for the SKUs on that load (an incremental pass, whose snapshot lacks most SKUs).
    """
    return capacity_shift_with_loads(capacity, shipments, unit_values, settings, now, open_fingerprints)[0]


def capacity_shift_with_loads(
    capacity: pl.DataFrame,
    shipments: pl.DataFrame,
    unit_values: pl.DataFrame | Callable[[pl.Series], pl.DataFrame],
    settings: DetectorSettings,
    now: datetime,
    open_fingerprints: frozenset[str] = frozenset(),
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``detect_capacity_shift`` and the ``resource_loads`` of its drifts (reassignment reads them)."""
    cfg = settings.capacity
    band = settings.hysteresis_band
    load, avail = pl.col("planned_load"), pl.col("available_capacity")
    util = (
        pl.when(avail > 0).then(load / avail)
        .when(load > 0).then(float("inf"))
        .otherwise(0.0)
    )
    cut_close = (pl.col("utilisation") > cfg.utilisation_threshold * (1 - band)) & (load > 0)
    spare_close = (pl.col("utilisation") < cfg.well_above_utilisation * (1 + band)) & (
        avail > pl.col("planned_capacity")
    )
    cand = (
        capacity.lazy()
        .filter(period_window(settings, now, settings.planning_horizon_days))
        .with_columns(util.alias("utilisation"))
        .filter(cut_close | spare_close)
        .with_columns(
            pl.when(cut_close).then(pl.lit("cut")).otherwise(pl.lit("spare")).alias("direction")
        )
    )
    opens = pl.when(pl.col("direction") == "cut").then(
        pl.col("utilisation") > cfg.utilisation_threshold
    ).otherwise(
        (pl.col("utilisation") < cfg.well_above_utilisation) & (avail > pl.col("planned_capacity"))
    )
    if not open_fingerprints:
        cand = cand.filter(opens)
    cand = add_fingerprints(collect(cand, capacity.height), KIND, KEY)
    out = cand.lazy().filter(opens | is_open(open_fingerprints)).with_columns(
        (load - avail).clip(lower_bound=0).alias("overflow"),
        (avail - load).clip(lower_bound=0).alias("spare_capacity"),
    ).collect(engine="in-memory")  # output-sized
    # value of the load: quantity-weighted unit value of the lines planned on that resource
    loads = resource_loads(out, shipments, settings)
    if callable(unit_values):
        unit_values = unit_values(loads.get_column("sku").unique())
    value = (
        loads.lazy().join(unit_values.lazy(), on="sku", how="left")
        .group_by("resource_type", "resource_id", "period")
        .agg(((pl.col("qty") * pl.col("unit_value").fill_null(0.0)).sum()
              / pl.col("qty").sum()).alias("unit_value"))
    )
    out = (
        out.lazy().join(value, on=["resource_type", "resource_id", "period"], how="left")
        .with_columns(pl.col("unit_value").fill_nan(None).fill_null(cfg.default_unit_value))
        .with_columns(
            pl.col("overflow").alias("units_short"),
            pl.col("spare_capacity").alias("units_excess"),
            (pl.col("overflow") * pl.col("unit_value")).alias("value_at_risk"),
            pl.when(load > 0).then(pl.col("overflow") / (load / settings.period_days))
            .otherwise(0.0).alias("service_days_at_risk"),
        )
    )
    return with_impact_and_severity(out, settings, sort_by=KEY), loads
