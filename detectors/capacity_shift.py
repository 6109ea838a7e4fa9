"""Capacity shift: a lane, carrier, site or dock now has less room than its planned load — or far more.

Capacity and load are in the same unit (pallets, by default) as lane capacity in ``lanes``. The
impact of a cut is what it does to the projection: the load that does not fit (the shipments
planned to leave last in the period) leaves a period later, and its destinations' stock falls
below safety stock by so much, for so long.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from canonical.model import DriftKind
from detectors._common import add_fingerprints, collect, collect_all, is_open, period_window, with_impact_and_severity
from detectors.projection import DAY_US, Projection, Receipts
from detectors.settings import DetectorSettings

KIND = DriftKind.CAPACITY_SHIFT
KEY = ["resource_type", "resource_id", "period"]
EVIDENCE = [
    "planned_capacity", "available_capacity", "planned_load", "utilisation", "overflow",
    "spare_capacity", "slipping_shipments",
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
    lines = shipments.lazy().select("shipment_id", "origin", "destination", "carrier", "sku", "qty",
                                    "planned_ship", pl.coalesce("eta", "planned_arrival").alias("arrival"))
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
    projection: Projection,
    settings: DetectorSettings,
    now: datetime,
    open_fingerprints: frozenset[str] = frozenset(),
) -> pl.DataFrame:
    """One row per resource × period over the utilisation threshold, or well under it with grown capacity."""
    return capacity_shift_with_loads(capacity, shipments, projection, settings, now, open_fingerprints)[0]


def capacity_shift_with_loads(
    capacity: pl.DataFrame,
    shipments: pl.DataFrame,
    projection: Projection,
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
    loads = resource_loads(out, shipments, settings)
    slip = slipping(out, loads)
    impact = slip_impact(slip, next_period_with_room(out.filter(pl.col("overflow") > 0), capacity),
                         projection, now)
    out = (
        out.lazy()
        .join(slip.lazy().group_by("fingerprint").agg(pl.col("shipment_id").unique().sort()
                                                      .alias("slipping_shipments")),
              on="fingerprint", how="left")
        .join(impact.lazy(), on="fingerprint", how="left")
        .with_columns(pl.col("slipping_shipments").fill_null([]),
                      *(pl.col(c).fill_null(0.0) for c in impact.columns if c != "fingerprint"),
                      pl.col("spare_capacity").alias("units_excess"))
    )
    return with_impact_and_severity(out, settings, sort_by=KEY), loads


def slipping(drifts: pl.DataFrame, loads: pl.DataFrame) -> pl.DataFrame:
    """The shipment lines that do not fit a cut: whole shipments, those planned to leave last
    first, until they carry the overflow. Columns: fingerprint and the load's columns."""
    cuts = drifts.filter(pl.col("overflow") > 0).select("resource_type", "resource_id", "period",
                                                        "fingerprint", "overflow")
    per_shipment = (
        loads.join(cuts, on=["resource_type", "resource_id", "period"])
        .group_by("fingerprint", "shipment_id")
        .agg(pl.col("qty").sum().alias("shipment_qty"), pl.col("planned_ship").max(), pl.col("overflow").first())
        .sort(["fingerprint", "planned_ship", "shipment_id"], descending=[False, True, False])
        .with_columns(pl.col("shipment_qty").cum_sum().over("fingerprint").alias("carried"))
        .filter(pl.col("carried") - pl.col("shipment_qty") < pl.col("overflow"))
    )
    return loads.join(cuts.select("resource_type", "resource_id", "period", "fingerprint"),
                      on=["resource_type", "resource_id", "period"]).join(
        per_shipment.select("fingerprint", "shipment_id"), on=["fingerprint", "shipment_id"])


def next_period_with_room(cuts: pl.DataFrame, capacity: pl.DataFrame) -> dict[str, date]:
    """Per cut (fingerprint): the first later period of its resource with room for its overflow;
    where the load that does not fit goes (absent: none within the capacity plan)."""
    if cuts.is_empty():
        return {}
    room = (capacity.join(cuts.select("resource_type", "resource_id", "fingerprint", "overflow",
                                      pl.col("period").alias("cut_period")), on=["resource_type", "resource_id"])
            .filter((pl.col("period") > pl.col("cut_period"))
                    & (pl.col("available_capacity") - pl.col("planned_load") >= pl.col("overflow") - 1e-9))
            .group_by("fingerprint").agg(pl.col("period").min()))
    return dict(room.iter_rows())


def slip_impact(slip: pl.DataFrame, room: dict[str, date], projection: Projection, now: datetime) -> pl.DataFrame:
    """Per cut (fingerprint): what its slipping lines, leaving in the next period with room (or
    past the horizon when there is none), do below safety stock."""
    columns = ("units_short", "units_unserved", "value_at_risk", "service_days_at_risk",
               "days_out_of_stock", "shortage_unit_days")
    keys = projection.keys.with_row_index("pos")
    lines = slip.join(keys, left_on=["sku", "destination"], right_on=["sku", "location"], how="inner")
    if lines.is_empty():
        return pl.DataFrame(schema={"fingerprint": pl.Utf8, **{c: pl.Float64 for c in columns}})
    now_us = int((now - datetime(1970, 1, 1, tzinfo=now.tzinfo)).total_seconds() * 1_000_000)
    arrival = np.maximum((lines.get_column("arrival").dt.epoch("us").to_numpy().astype(float) - now_us)
                         / DAY_US, 0.0)
    arrival = np.nan_to_num(arrival, nan=np.inf)
    delay = np.array([(room[fp] - period).days if fp in room else np.inf
                      for fp, period in zip(lines.get_column("fingerprint").to_list(),
                                            lines.get_column("period").to_list(), strict=True)])
    qty = lines.get_column("qty").to_numpy()
    pos = lines.get_column("pos").to_numpy().astype(np.int64)
    variant = np.arange(len(pos))
    was, now_at = arrival < projection.horizon, arrival + delay < projection.horizon
    changes = Receipts(np.concatenate([variant[was], variant[now_at]]),
                       np.concatenate([arrival[was], (arrival + delay)[now_at]]),
                       np.concatenate([-qty[was], qty[now_at]]),
                       np.full(was.sum() + now_at.sum(), "slipped", dtype=object))
    base, slipped = projection.figures, projection.what_if(pos, changes)
    short = np.maximum(slipped.below_safety - base.below_safety[pos], 0.0)
    per_line = pl.DataFrame({
        "fingerprint": lines.get_column("fingerprint"),
        "units_short": short,
        "units_unserved": np.maximum(slipped.unserved - base.unserved[pos], 0.0),
        "value_at_risk": short * projection.unit_value[pos],
        "service_days_at_risk": np.maximum(slipped.days_below_safety - base.days_below_safety[pos], 0.0),
        "days_out_of_stock": np.maximum(slipped.days_out_of_stock - base.days_out_of_stock[pos], 0.0),
        "shortage_unit_days": np.maximum(slipped.shortage_unit_days - base.shortage_unit_days[pos], 0.0),
    })
    return per_line.group_by("fingerprint").agg(
        pl.col("units_short", "units_unserved", "value_at_risk", "shortage_unit_days").sum(),
        pl.col("service_days_at_risk", "days_out_of_stock").max())
