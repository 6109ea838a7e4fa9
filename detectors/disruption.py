"""Disruption: a shipment's ETA slipped past planned arrival, it raised an exception, or it went quiet.

Impact lands on the receiving location: every line arrives late; service is at risk for the
days of delay the destination's stock above safety cannot cover.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from detectors._common import add_fingerprints, collect, is_open, now_literal, with_impact_and_severity
from detectors.model import DriftKind
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
    projection: pl.DataFrame,
    settings: DetectorSettings,
    now: datetime,
    open_fingerprints: frozenset[str] = frozenset(),
) -> pl.DataFrame:
    """One row per disrupted shipment, its lines' lateness and cover at the destination."""
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
            hours(now_us - pl.col("planned_arrival")).alias("overdue_hours"),
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
    # delay: the ETA slip, or for a silent overdue shipment how long past planned arrival it is
    delay_h = pl.max_horizontal(
        pl.col("slip_hours").fill_null(0.0),
        pl.when(pl.col("c_stale")).then(pl.col("overdue_hours")).otherwise(0.0).fill_null(0.0),
    ).clip(lower_bound=0)
    pos = projection.lazy().select(
        "sku", pl.col("location").alias("destination"), "on_hand", "safety_stock", "daily_demand",
        "unit_value",
    )
    # a few thousand lines against every position: cut the positions down first (a left join
    # would hash all of them)
    pos = pos.join(lines.lazy().select("sku", "destination"), on=["sku", "destination"], how="semi")
    rate = pl.col("daily_demand")
    lines = (
        lines.lazy().join(pos, on=["sku", "destination"], how="left")
        .with_columns(
            pl.col("on_hand").fill_null(0.0),
            pl.col("safety_stock").fill_null(0.0),
            pl.col("daily_demand").fill_null(0.0),
            pl.col("unit_value").fill_null(0.0),
            (delay_h / 24).alias("delay_days"),
        )
        .with_columns(
            pl.when(rate > 0)
            .then((pl.col("on_hand") - pl.col("safety_stock")).clip(lower_bound=0) / rate)
            .otherwise(float("inf"))
            .alias("cover_days"),
        )
        .with_columns(
            (pl.col("delay_days") - pl.col("cover_days")).clip(lower_bound=0).alias("service_days"),
        )
        .with_columns(
            (pl.col("service_days") * rate).alias("need_units"),
            (pl.col("qty") * pl.col("unit_value")).alias("line_value"),
        )
    )
    reasons = pl.concat_list(
        pl.when(pl.col("o_slip").any()).then(pl.lit("eta_slipped")),
        pl.when(pl.col("o_exc").any()).then(pl.lit("exception")),
        pl.when(pl.col("o_stale").any()).then(pl.lit("stopped_reporting")),
    ).list.drop_nulls()
    per_shipment = (
        lines.group_by("shipment_id")
        .agg(
            pl.col("origin", "destination", "carrier", "mode", "status", "exception_code",
                   "planned_ship", "planned_arrival", "eta", "slip_hours", "last_event_at",
                   "silent_hours").first(),
            reasons.alias("reasons"),
            (pl.col("c_slip") | pl.col("o_exc") | pl.col("c_stale")).any().alias("_any"),
            pl.struct(
                "sku", "qty", pl.col("delay_days").round(3), pl.col("cover_days").round(3),
                pl.col("service_days").round(3), pl.col("need_units").round(3),
            ).sort_by("sku").alias("lines"),
            pl.col("qty").sum().alias("units_short"),
            pl.col("line_value").sum().alias("value_at_risk"),
            pl.col("service_days").max().alias("service_days_at_risk"),
        )
        .with_columns(
            pl.coalesce(pl.col("planned_ship"), pl.col("planned_arrival")).dt.date().cast(pl.Utf8)
            .fill_null("").alias("day"),
            pl.lit(0.0).alias("units_excess"),
        )
    )
    if not open_fingerprints:
        per_shipment = per_shipment.filter(pl.col("reasons").list.len() > 0)
    # one query from the lines to the shipments, in-memory as the eager steps ran
    per_shipment = add_fingerprints(per_shipment.collect(engine="in-memory"), KIND, KEY)
    out = per_shipment.lazy().filter((pl.col("reasons").list.len() > 0) | is_open(open_fingerprints))
    return with_impact_and_severity(out, settings, sort_by=KEY)


def _empty() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"shipment_id": pl.Utf8, "fingerprint": pl.Utf8, **{c: pl.Utf8 for c in EVIDENCE},
                "day": pl.Utf8, "units_short": pl.Float64, "units_excess": pl.Float64,
                "value_at_risk": pl.Float64, "service_days_at_risk": pl.Float64}
    )
