"""The two allocation problems recommendations need, both solved by ``optimizer.allocate``.

* transfers: cover shortfalls from other locations' stock above safety, within lane capacity;
* reassignment: move capacity overflow onto other carriers with room on the same lane.
"""

from __future__ import annotations

import polars as pl

from detectors.optimizer import allocate
from detectors.settings import DetectorSettings

TRANSFER_SCHEMA = {
    "sku": pl.Utf8, "from": pl.Utf8, "to": pl.Utf8, "carrier": pl.Utf8, "qty": pl.Float64,
    "cost_per_unit": pl.Float64, "transit_days": pl.Float64, "source_spare": pl.Float64,
}
REASSIGN_SCHEMA = {
    "item_id": pl.Int64, "origin": pl.Utf8, "destination": pl.Utf8, "carrier": pl.Utf8,
    "qty": pl.Float64, "cost_per_unit": pl.Float64,
}


def plan_transfers(
    needs: pl.DataFrame, projection: pl.DataFrame, lanes: pl.DataFrame, settings: DetectorSettings
) -> pl.DataFrame:
    """Min-cost transfers covering ``needs`` (sku, location, qty).

    A source gives at most its spare (projected minimum above safety stock, whole units); a lane
    carries at most its free capacity summed over SKUs. Among equal-cost lanes the source with
    more days of spare cover wins. Locations that need a SKU never source it.
    """
    rc = settings.recommend
    needs = needs.filter(pl.col("qty") > 0).with_row_index("need_id").with_columns(
        pl.col("need_id").cast(pl.Int64)
    )
    if needs.is_empty() or lanes.is_empty():
        return pl.DataFrame(schema=TRANSFER_SCHEMA)
    lane_idx = (
        lanes.with_row_index("lane_id").with_columns(pl.col("lane_id").cast(pl.Int64))
        .filter(pl.col("capacity").floor() >= 1)
    )
    by_lane = needs.join(lane_idx, left_on="location", right_on="destination")
    # only positions a lane links to a need can source it: cut the projection to those first
    reachable = by_lane.select("sku", pl.col("origin").alias("location")).unique()
    sources = (
        projection.join(reachable, on=["sku", "location"], how="semi")
        .select(
            "sku", pl.col("location").alias("origin"), pl.col("spare").floor().alias("spare"),
            pl.when(pl.col("daily_demand") > 0).then(pl.col("spare") / pl.col("daily_demand"))
            .otherwise(1e6).alias("spare_days"),
        )
        .filter(pl.col("spare") >= 1)
        .join(needs.select("sku", pl.col("location").alias("origin")), on=["sku", "origin"], how="anti")
    )
    arcs = (
        by_lane
        .join(sources, on=["sku", "origin"])
        .filter(pl.col("spare").rank("dense", descending=True).over("need_id") <= rc.max_sources_per_need)
    )
    if arcs.is_empty():
        return pl.DataFrame(schema=TRANSFER_SCHEMA)
    src_keys = arcs.select("sku", "origin").unique(maintain_order=True).with_row_index("src_id")
    n_src = src_keys.height
    arcs = arcs.join(src_keys.with_columns(pl.col("src_id").cast(pl.Int64)), on=["sku", "origin"])
    lanes_used = arcs.select("lane_id", "capacity").unique("lane_id").sort("lane_id").with_row_index("lane_res")
    arcs = arcs.join(lanes_used.select("lane_id", pl.col("lane_res").cast(pl.Int64) + n_src), on="lane_id")
    capacities = pl.concat([
        arcs.select(pl.col("src_id").alias("res_id"), pl.col("spare").alias("cap")).unique("res_id"),
        lanes_used.select((pl.col("lane_res").cast(pl.Int64) + n_src).alias("res_id"),
                          pl.col("capacity").floor().alias("cap")),
    ]).sort("res_id")
    arcs = arcs.with_columns(
        (pl.col("cost_per_unit") + 1e-3 / (1.0 + pl.col("spare_days"))).alias("cost"),
        pl.col("src_id").alias("res_a"),
        pl.col("lane_res").alias("res_b"),
    ).sort("need_id", "origin", "carrier", "lane_id")
    flows = allocate(
        arcs.select("need_id", "cost", "res_a", "res_b", "sku", "origin", "location", "carrier",
                    "cost_per_unit", "transit_days", "spare"),
        needs.select("need_id", "qty"),
        capacities,
        unmet_penalty=rc.unmet_penalty_per_unit,
        mip_max_variables=rc.mip_max_variables,
    )
    return flows.select(
        "sku", pl.col("origin").alias("from"), pl.col("location").alias("to"), "carrier",
        pl.col("flow").alias("qty"), "cost_per_unit", "transit_days",
        pl.col("spare").alias("source_spare"),
    ).sort("to", "sku", "from", "carrier")


def plan_reassignment(
    overflow: pl.DataFrame, lanes: pl.DataFrame, settings: DetectorSettings
) -> pl.DataFrame:
    """Min-cost reassignment of ``overflow`` (item_id, origin, destination, exclude_carrier, qty)
    onto lanes with the same origin and destination run by another carrier with free capacity."""
    rc = settings.recommend
    if overflow.is_empty() or lanes.is_empty():
        return pl.DataFrame(schema=REASSIGN_SCHEMA)
    lane_idx = (
        lanes.with_row_index("lane_id").with_columns(pl.col("lane_id").cast(pl.Int64))
        .filter(pl.col("capacity").floor() >= 1)
    )
    arcs = (
        overflow.rename({"item_id": "need_id"})
        .join(lane_idx, on=["origin", "destination"])
        .filter(pl.col("carrier") != pl.col("exclude_carrier"))
        .with_columns(
            pl.col("cost_per_unit").alias("cost"),
            pl.col("lane_id").alias("res_a"),
            pl.lit(None, dtype=pl.Int64).alias("res_b"),
        )
        .sort("need_id", "carrier", "lane_id")
    )
    if arcs.is_empty():
        return pl.DataFrame(schema=REASSIGN_SCHEMA)
    capacities = (arcs.select(pl.col("lane_id").alias("res_id"), pl.col("capacity").floor().alias("cap"))
                  .unique("res_id").sort("res_id"))
    flows = allocate(
        arcs.select("need_id", "cost", "res_a", "res_b", "origin", "destination", "carrier", "cost_per_unit"),
        overflow.select(pl.col("item_id").alias("need_id"), pl.col("qty").floor()),
        capacities,
        unmet_penalty=rc.unmet_penalty_per_unit,
        mip_max_variables=rc.mip_max_variables,
    )
    return flows.select(
        pl.col("need_id").alias("item_id"), "origin", "destination", "carrier",
        pl.col("flow").alias("qty"), "cost_per_unit",
    ).sort("item_id", "carrier")
