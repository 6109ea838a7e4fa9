"""Stockout risk: projected inventory per sku × location dips below safety stock within the horizon.

The projection starts from on hand, consumes the latest demand at a constant daily rate (the
horizon's demand spread evenly) and adds inbound shipment lines when they now arrive (ETA,
else planned arrival). Between arrivals inventory falls linearly, so its minimum is reached
just before an arrival or at the horizon's end.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from detectors._common import add_fingerprints, is_open, today, with_impact_and_severity
from detectors.model import DriftKind
from detectors.settings import DetectorSettings

KIND = DriftKind.STOCKOUT_RISK
KEY = ["sku", "location"]
EVIDENCE = [
    "on_hand", "safety_stock", "daily_demand", "inbound_qty", "min_projected",
    "days_of_cover", "safety_days", "below_safety_in_days", "stockout_days", "unit_value",
]
CAUSE = {"sku": "sku", "location": "location"}

_DAY_US = 86_400_000_000


def demand_rates(demand: pl.DataFrame, settings: DetectorSettings, now: datetime) -> pl.DataFrame:
    """Daily demand rate and unit value per sku × location over the stockout horizon."""
    horizon = settings.stockout.horizon_days
    start = today(now)
    end = start + timedelta(days=horizon)
    pd_ = timedelta(days=settings.period_days)
    overlap_start = pl.max_horizontal(pl.col("period"), pl.lit(start))
    overlap_end = pl.min_horizontal(pl.col("period") + pd_, pl.lit(end))
    overlap_days = (overlap_end - overlap_start).dt.total_days().clip(lower_bound=0)
    return (
        demand.lazy()
        .filter((pl.col("period") + pd_ > start) & (pl.col("period") < end))
        .group_by("sku", "location")
        .agg(
            (pl.col("latest_qty") * overlap_days / settings.period_days).sum().alias("horizon_demand"),
            pl.col("unit_value").max().alias("unit_value"),
        )
        .with_columns((pl.col("horizon_demand") / horizon).alias("daily_demand"))
        .collect()
    )


def inbound_arrivals(shipments: pl.DataFrame, settings: DetectorSettings, now: datetime) -> pl.DataFrame:
    """Open inbound lines as (sku, location, t days from now, qty) within the horizon."""
    now_us = pl.lit(now).cast(pl.Datetime("us", "UTC"))
    return (
        shipments.lazy()
        .filter(~pl.col("status").is_in(settings.disruption.done_statuses))
        .with_columns(pl.coalesce("eta", "planned_arrival").alias("arrival"))
        .filter(pl.col("arrival").is_not_null())
        .with_columns(
            ((pl.col("arrival") - now_us).dt.total_microseconds() / _DAY_US)
            .clip(lower_bound=0.0)
            .alias("t")
        )
        .filter(pl.col("t") < settings.stockout.horizon_days)
        .group_by(pl.col("sku"), pl.col("destination").alias("location"), "t")
        .agg(pl.col("qty").sum())
        .collect()
    )


def _segment_stats(level: pl.Expr, length: pl.Expr, t0: pl.Expr, rate: pl.Expr, safety: pl.Expr) -> list[pl.Expr]:
    """For a straight-line stretch of inventory: end level, days below zero, first day below safety."""
    end = level - rate * length
    below_zero = (
        pl.when(end >= 0).then(0.0)
        .when(level <= 0).then(length)
        .otherwise(length - level / rate)
    )
    cross = pl.when(end < safety).then(
        t0 + pl.when(rate > 0).then(((level - safety) / rate).clip(lower_bound=0)).otherwise(0.0)
    )
    return [end.alias("end_level"), below_zero.alias("below_zero"), cross.alias("cross_t")]


# joins on a 64-bit hash of (sku, location) are ~3× faster than on the two strings; every join
# re-checks the strings, so a hash collision can only drop a match, and positions fall back to
# the exact string join when one is seen
_KEY = pl.struct("sku", "location").hash(0x5EED).alias("_k")


def _full_join_positions(inv: pl.DataFrame, rates: pl.DataFrame) -> pl.DataFrame:
    """Inventory ⟗ demand rates per sku × location."""
    joined = inv.with_columns(_KEY).join(rates.with_columns(_KEY), on="_k", how="full", coalesce=True)
    both = pl.col("sku").is_not_null() & pl.col("sku_right").is_not_null()
    clash = joined.filter(
        both & ((pl.col("sku") != pl.col("sku_right")) | (pl.col("location") != pl.col("location_right")))
    )
    if clash.height or joined.height != joined.get_column("_k").n_unique():
        return inv.join(rates, on=["sku", "location"], how="full", coalesce=True).with_columns(_KEY)
    return joined.with_columns(
        pl.coalesce("sku", "sku_right").alias("sku"),
        pl.coalesce("location", "location_right").alias("location"),
    ).drop("sku_right", "location_right")


def project(
    demand: pl.DataFrame,
    inventory: pl.DataFrame,
    shipments: pl.DataFrame,
    settings: DetectorSettings,
    now: datetime,
) -> pl.DataFrame:
    """Per sku × location: rate, inbound, minimum projected inventory, spare above safety stock.

    Positions are numbered once so the per-arrival work runs on integer keys; positions with no
    inbound in the horizon are a single straight line and skip the segment step entirely.
    """
    horizon = float(settings.stockout.horizon_days)
    rate = pl.col("daily_demand")
    rates = demand_rates(demand, settings, now)
    arrivals = inbound_arrivals(shipments, settings, now)
    inv = inventory.group_by("sku", "location").agg(
        pl.col("on_hand").sum(), pl.col("safety_stock").max()
    )
    positions = _full_join_positions(inv, rates).with_columns(
        pl.col("on_hand").fill_null(0.0),
        pl.col("safety_stock").fill_null(0.0),
        pl.col("daily_demand").fill_null(0.0),
        pl.col("unit_value").fill_null(0.0),
        pl.col("horizon_demand").fill_null(0.0),
    ).with_row_index("pid")  # row order is irrelevant: pid only links segments back
    arr = (
        arrivals.with_columns(_KEY)
        .join(positions.select("_k", "sku", "location", "pid"), on="_k")
        .filter((pl.col("sku") == pl.col("sku_right")) & (pl.col("location") == pl.col("location_right")))
        .select("pid", "t", "qty")
    )
    with_inbound = arr.select("pid").unique()
    # one row per stretch between arrivals; sorted by (pid, t) so neighbours replace window ops
    ev = pl.concat([
        with_inbound.with_columns(pl.lit(0.0).alias("t"), pl.lit(0.0).alias("qty")),
        with_inbound.with_columns(pl.lit(horizon).alias("t"), pl.lit(0.0).alias("qty")),
        arr,
    ]).sort("pid", "t", "qty")
    pid = ev.get_column("pid")
    ev = ev.with_columns(
        positions.get_column("on_hand").gather(pid).alias("on_hand"),
        positions.get_column("daily_demand").gather(pid).alias("daily_demand"),
        positions.get_column("safety_stock").gather(pid).alias("safety_stock"),
    )
    first = pl.col("pid") != pl.col("pid").shift(1, fill_value=-1)
    same_next = pl.col("pid") == pl.col("pid").shift(-1)
    cs = pl.col("qty").cum_sum()
    segs = (
        ev.lazy()
        .with_columns(
            (cs - pl.when(first).then(cs - pl.col("qty")).otherwise(None).forward_fill()).alias("cum_in"),
            pl.when(same_next).then(pl.col("t").shift(-1)).alias("t_next"),
        )
        .filter(pl.col("t_next").is_not_null())
        .with_columns(
            (pl.col("on_hand") + pl.col("cum_in") - rate * pl.col("t")).alias("level"),
            (pl.col("t_next") - pl.col("t")).alias("len"),
        )
        .with_columns(_segment_stats(pl.col("level"), pl.col("len"), pl.col("t"), rate, pl.col("safety_stock")))
        .group_by("pid")
        .agg(
            pl.col("end_level").min().alias("min_projected"),
            pl.col("below_zero").sum().alias("stockout_days"),
            pl.col("cross_t").min().alias("below_safety_in_days"),
            pl.col("cum_in").max().alias("inbound_qty"),
        )
        .collect()
    )
    straight = _segment_stats(pl.col("on_hand"), pl.lit(horizon), pl.lit(0.0), rate, pl.col("safety_stock"))
    return (
        positions.join(segs, on="pid", how="left")
        .with_columns([e.alias("_" + e.meta.output_name()) for e in straight])
        .with_columns(
            pl.coalesce("min_projected", "_end_level").alias("min_projected"),
            pl.coalesce("stockout_days", "_below_zero").alias("stockout_days"),
            pl.when(pl.col("inbound_qty").is_null()).then(pl.col("_cross_t"))
            .otherwise(pl.col("below_safety_in_days")).alias("below_safety_in_days"),
            pl.col("inbound_qty").fill_null(0.0),
        )
        .drop("_end_level", "_below_zero", "_cross_t", "pid", "_k")
        .with_columns(
            pl.when(rate > 0).then(pl.col("on_hand") / rate).otherwise(float("inf")).alias("days_of_cover"),
            pl.when(rate > 0).then(pl.col("safety_stock") / rate).otherwise(0.0).alias("safety_days"),
            (pl.col("min_projected") - pl.col("safety_stock")).clip(lower_bound=0).alias("spare"),
        )
    )


def detect_stockout_risk(
    projection: pl.DataFrame,
    settings: DetectorSettings,
    open_fingerprints: frozenset[str] = frozenset(),
) -> pl.DataFrame:
    """Positions whose projected inventory falls below safety stock (hysteresis on the way out)."""
    band = settings.hysteresis_band
    min_units = max(settings.stockout.min_units_short, 1e-9)
    cand = projection.filter(
        (pl.col("min_projected") < pl.col("safety_stock") * (1 + band))
        & ((pl.col("safety_stock") > 0) | (pl.col("min_projected") < 0))
    )
    short = pl.col("safety_stock") - pl.col("min_projected")
    if not open_fingerprints:
        cand = cand.filter(short >= min_units)
    cand = add_fingerprints(cand, KIND, KEY)
    out = cand.filter((short >= min_units) | is_open(open_fingerprints)).with_columns(
        short.clip(lower_bound=0).alias("units_short"),
        pl.lit(0.0).alias("units_excess"),
        (short.clip(lower_bound=0) * pl.col("unit_value")).alias("value_at_risk"),
        pl.col("stockout_days").alias("service_days_at_risk"),
    )
    return with_impact_and_severity(out, settings).sort(KEY)
