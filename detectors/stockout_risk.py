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


def project(
    demand: pl.DataFrame,
    inventory: pl.DataFrame,
    shipments: pl.DataFrame,
    settings: DetectorSettings,
    now: datetime,
) -> pl.DataFrame:
    """Per sku × location: rate, inbound, minimum projected inventory, spare above safety stock."""
    horizon = float(settings.stockout.horizon_days)
    rates = demand_rates(demand, settings, now)
    arrivals = inbound_arrivals(shipments, settings, now)
    inv = inventory.group_by("sku", "location").agg(
        pl.col("on_hand").sum(), pl.col("safety_stock").max()
    )
    positions = (
        inv.join(rates, on=["sku", "location"], how="full", coalesce=True)
        .with_columns(
            pl.col("on_hand").fill_null(0.0),
            pl.col("safety_stock").fill_null(0.0),
            pl.col("daily_demand").fill_null(0.0),
            pl.col("unit_value").fill_null(0.0),
            pl.col("horizon_demand").fill_null(0.0),
        )
    )
    keys = positions.select("sku", "location")
    events = pl.concat(
        [
            keys.with_columns(pl.lit(0.0).alias("t"), pl.lit(0.0).alias("qty")),
            keys.with_columns(pl.lit(horizon).alias("t"), pl.lit(0.0).alias("qty")),
            arrivals.join(keys, on=["sku", "location"], how="semi").select("sku", "location", "t", "qty"),
        ]
    )
    segs = (
        events.lazy()
        .group_by("sku", "location", "t")
        .agg(pl.col("qty").sum())
        .join(positions.lazy().select("sku", "location", "on_hand", "daily_demand"),
              on=["sku", "location"])
        .sort("sku", "location", "t")
        .with_columns(
            pl.col("qty").cum_sum().over("sku", "location").alias("cum_in"),
            pl.col("t").shift(-1).over("sku", "location").alias("t_next"),
        )
        .filter(pl.col("t_next").is_not_null())
        .with_columns(
            (pl.col("on_hand") + pl.col("cum_in") - pl.col("daily_demand") * pl.col("t")).alias("level"),
            (pl.col("t_next") - pl.col("t")).alias("len"),
        )
        .with_columns((pl.col("level") - pl.col("daily_demand") * pl.col("len")).alias("end_level"))
    )
    rate = pl.col("daily_demand")
    below_zero = (
        pl.when(pl.col("end_level") >= 0).then(0.0)
        .when(pl.col("level") <= 0).then(pl.col("len"))
        .otherwise(pl.col("len") - pl.col("level") / rate)
    )
    summary = (
        segs.join(positions.lazy().select("sku", "location", "safety_stock"), on=["sku", "location"])
        .with_columns(
            below_zero.alias("below_zero"),
            pl.when(pl.col("end_level") < pl.col("safety_stock"))
            .then(
                pl.col("t")
                + pl.when(rate > 0)
                .then(((pl.col("level") - pl.col("safety_stock")) / rate).clip(lower_bound=0))
                .otherwise(0.0)
            )
            .alias("cross_t"),
        )
        .group_by("sku", "location")
        .agg(
            pl.col("end_level").min().alias("min_projected"),
            pl.col("below_zero").sum().alias("stockout_days"),
            pl.col("cross_t").min().alias("below_safety_in_days"),
            (pl.col("cum_in").max()).alias("inbound_qty"),
        )
        .collect()
    )
    return positions.join(summary, on=["sku", "location"], how="left").with_columns(
        pl.when(rate > 0).then(pl.col("on_hand") / rate).otherwise(float("inf")).alias("days_of_cover"),
        pl.when(rate > 0).then(pl.col("safety_stock") / rate).otherwise(0.0).alias("safety_days"),
        (pl.col("min_projected") - pl.col("safety_stock")).clip(lower_bound=0).alias("spare"),
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
    cand = add_fingerprints(cand, KIND, KEY)
    short = pl.col("safety_stock") - pl.col("min_projected")
    out = cand.filter((short >= min_units) | is_open(open_fingerprints)).with_columns(
        short.clip(lower_bound=0).alias("units_short"),
        pl.lit(0.0).alias("units_excess"),
        (short.clip(lower_bound=0) * pl.col("unit_value")).alias("value_at_risk"),
        pl.col("stockout_days").alias("service_days_at_risk"),
    )
    return with_impact_and_severity(out, settings).sort(KEY)
