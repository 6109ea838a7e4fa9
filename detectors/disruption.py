"""Disruption: a shipment's ETA slipped past planned arrival, it raised an exception, or it went quiet.

Its impact is what the delay does to the projection at each destination: the same projection
with the shipment's lines at their planned arrival instead of their ETA, and the difference in
units and days below safety stock. Stock used before the planned arrival counts: 40 on hand,
safety 20, 10 a day, 200 due in 2 days and 30 h late is 1.25 days below safety stock.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from canonical.model import DriftKind
from detectors._common import add_fingerprints, collect, is_open, now_literal, with_impact_and_severity
from detectors.projection import DAY_US, Projection, Receipts
from detectors.settings import DetectorSettings

KIND = DriftKind.DISRUPTION
KEY = ["shipment_id"]
EVIDENCE = [
    "reasons", "status", "exception_code", "origin", "destination", "carrier", "mode",
    "planned_arrival", "eta", "slip_hours", "last_event_at", "silent_hours", "lines",
]
CAUSE = {"carrier": "carrier", "origin": "origin", "day": "day", "destination": "destination"}

_HOUR_US = 3_600_000_000


def detect_disruption(
    shipments: pl.DataFrame,
    projection: Projection,
    settings: DetectorSettings,
    now: datetime,
    open_fingerprints: frozenset[str] = frozenset(),
) -> pl.DataFrame:
    """One row per disrupted shipment, with what its delay costs each destination."""
    cfg = settings.disruption
    band = settings.hysteresis_band
    now_us = now_literal(now)

    def hours(e: pl.Expr) -> pl.Expr:
        return e.dt.total_microseconds() / _HOUR_US

    lines = (
        shipments.lazy()
        .filter(~pl.col("status").is_in(cfg.done_statuses))
        .with_columns(
            hours(pl.col("eta") - pl.col("planned_arrival")).alias("slip_hours"),
            hours(now_us - pl.col("last_event_at")).alias("silent_hours"),
            pl.col("exception_code").fill_null("").str.strip_chars().alias("exception_code"),
        )
        .with_columns(
            (pl.col("slip_hours") > cfg.eta_tolerance_hours * (1 - band)).fill_null(False).alias("c_slip"),
            (pl.col("slip_hours") > cfg.eta_tolerance_hours).fill_null(False).alias("o_slip"),
            (pl.col("status").is_in(cfg.exception_statuses) | (pl.col("exception_code") != "")).alias("o_exc"),
            (
                pl.col("status").is_in(cfg.in_transit_statuses)
                & (pl.col("silent_hours").is_null()
                   | (pl.col("silent_hours") > cfg.stale_report_hours * (1 - band)))
            ).alias("c_stale"),
            (
                pl.col("status").is_in(cfg.in_transit_statuses)
                & (pl.col("silent_hours").is_null() | (pl.col("silent_hours") > cfg.stale_report_hours))
            ).alias("o_stale"),
        )
        .filter(pl.col("c_slip") | pl.col("o_exc") | pl.col("c_stale"))
    )
    lines = collect(lines, shipments.height)
    if lines.is_empty():
        return with_impact_and_severity(_empty(), settings)
    lines = lines.with_columns(_delay_impact(lines, projection, now))
    reasons = pl.concat_list(
        pl.when(pl.col("o_slip").any()).then(pl.lit("eta_slipped")),
        pl.when(pl.col("o_exc").any()).then(pl.lit("exception")),
        pl.when(pl.col("o_stale").any()).then(pl.lit("stopped_reporting")),
    ).list.drop_nulls()
    per_shipment = (
        lines.lazy().group_by("shipment_id")
        .agg(
            pl.col("origin", "destination", "carrier", "mode", "status", "exception_code",
                   "planned_ship", "planned_arrival", "eta", "slip_hours", "last_event_at",
                   "silent_hours").first(),
            reasons.alias("reasons"),
            pl.struct(
                "sku", "qty", pl.col("delay_days").round(4), pl.col("units_short").round(4),
                pl.col("days_below_safety").round(4),
            ).sort_by("sku").alias("lines"),
            pl.col("units_short").sum(),
            pl.col("units_unserved").sum(),
            pl.col("value_at_risk").sum(),
            pl.col("days_below_safety").max().alias("service_days_at_risk"),
            pl.col("days_out_of_stock").max(),
            pl.col("shortage_unit_days").sum(),
        )
        .with_columns(_ship_day(settings).alias("day"), pl.lit(0.0).alias("units_excess"))
    )
    if not open_fingerprints:
        per_shipment = per_shipment.filter(pl.col("reasons").list.len() > 0)
    per_shipment = add_fingerprints(per_shipment.collect(engine="in-memory"), KIND, KEY)
    out = per_shipment.lazy().filter((pl.col("reasons").list.len() > 0) | is_open(open_fingerprints))
    return with_impact_and_severity(out, settings, sort_by=KEY)


def _ship_day(settings: DetectorSettings) -> pl.Expr:
    """The day a shipment was planned to leave, in its origin's time zone (grouping key)."""
    when = pl.coalesce(pl.col("planned_ship"), pl.col("planned_arrival"))
    day = when.dt.convert_time_zone(settings.default_timezone).dt.date()
    for zone in sorted(set(settings.timezones.values()) - {settings.default_timezone}):
        places = sorted(loc for loc, z in settings.timezones.items() if z == zone)
        day = pl.when(pl.col("origin").is_in(places)).then(
            when.dt.convert_time_zone(zone).dt.date()).otherwise(day)
    return day.cast(pl.Utf8).fill_null("")


def _delay_impact(lines: pl.DataFrame, projection: Projection, now: datetime) -> list[pl.Series]:
    """Per line: delay in days, and what the delay adds at its destination below safety stock
    (the projection as it is, against the same projection with the line on time)."""
    now_us = int((now - datetime(1970, 1, 1, tzinfo=now.tzinfo)).total_seconds() * 1_000_000)

    def days(column: str) -> np.ndarray:
        values = lines.get_column(column).dt.epoch("us").to_numpy().astype(float)
        return np.maximum((values - now_us) / DAY_US, 0.0)

    keys = projection.keys.with_row_index("pos")
    pos = (lines.select("sku", pl.col("destination").alias("location"))
           .join(keys, on=["sku", "location"], how="left").get_column("pos").to_numpy())
    eta = days("eta")
    planned = days("planned_arrival")
    arriving = np.where(np.isnan(eta), planned, eta)
    delay = np.nan_to_num(np.maximum(arriving - planned, 0.0))
    qty = lines.get_column("qty").fill_null(0).to_numpy()
    known = ~np.isnan(pos.astype(float)) & (delay > 0) & ~np.isnan(planned)
    n = len(qty)
    out = {c: np.zeros(n) for c in ("units_short", "units_unserved", "value_at_risk", "days_below_safety",
                                    "days_out_of_stock", "shortage_unit_days")}
    rows = np.flatnonzero(known)
    if len(rows):
        horizon = projection.horizon
        p = pos[rows].astype(np.int64)
        variant = np.arange(len(rows))
        late = arriving[rows] < horizon  # on the projection as it is
        on_time = planned[rows] < horizon
        changes = Receipts(
            np.concatenate([variant[late], variant[on_time]]),
            np.concatenate([arriving[rows][late], planned[rows][on_time]]),
            np.concatenate([-qty[rows][late], qty[rows][on_time]]),
            np.full(late.sum() + on_time.sum(), "on time", dtype=object))
        base, fixed = projection.figures, projection.what_if(p, changes)
        uv = projection.unit_value[p]
        gap = {
            "units_short": base.below_safety[p] - fixed.below_safety,
            "units_unserved": base.unserved[p] - fixed.unserved,
            "days_below_safety": base.days_below_safety[p] - fixed.days_below_safety,
            "days_out_of_stock": base.days_out_of_stock[p] - fixed.days_out_of_stock,
            "shortage_unit_days": base.shortage_unit_days[p] - fixed.shortage_unit_days,
        }
        for column, values in gap.items():
            out[column][rows] = np.maximum(values, 0.0)
        out["value_at_risk"][rows] = out["units_short"][rows] * uv
    return [pl.Series("delay_days", delay), *(pl.Series(c, v) for c, v in out.items())]


def _empty() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"shipment_id": pl.Utf8, "fingerprint": pl.Utf8, **{c: pl.Utf8 for c in EVIDENCE},
                "day": pl.Utf8, "units_short": pl.Float64, "units_excess": pl.Float64,
                "value_at_risk": pl.Float64, "service_days_at_risk": pl.Float64}
    )
