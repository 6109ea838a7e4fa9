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
    # one query for needs and arcs (in-memory, as eager steps ran: join order decides source ids)
    needs_q = needs.lazy().filter(pl.col("qty") > 0).with_row_index("need_id").with_columns(
        pl.col("need_id").cast(pl.Int64)
    )
    lane_idx = (
        lanes.lazy().with_row_index("lane_id").with_columns(pl.col("lane_id").cast(pl.Int64))
        .filter(pl.col("capacity").floor() >= 1)
    )
    by_lane = needs_q.join(lane_idx, left_on="location", right_on="destination")
    # only positions a lane links to a need can source it: cut the projection to those first
    reachable = by_lane.select("sku", pl.col("origin").alias("location")).unique()
    sources = (
        projection.lazy().join(reachable, on=["sku", "location"], how="semi")
        .select(
            "sku", pl.col("location").alias("origin"), pl.col("spare").floor().alias("spare"),
            pl.when(pl.col("daily_demand") > 0).then(pl.col("spare") / pl.col("daily_demand"))
            .otherwise(1e6).alias("spare_days"),
        )
        .filter(pl.col("spare") >= 1)
        .join(needs_q.select("sku", pl.col("location").alias("origin")), on=["sku", "origin"], how="anti")
    )
    arcs = (
        by_lane
        .join(sources, on=["sku", "origin"])
        .filter(pl.col("spare").rank("dense", descending=True).over("need_id") <= rc.max_sources_per_need)
    )
    if needs.is_empty() or lanes.is_empty():
        return pl.DataFrame(schema=TRANSFER_SCHEMA)
    needs, arcs = pl.collect_all([needs_q, arcs], engine="in-memory")
    if needs.is_empty() or arcs.is_empty():
        return pl.DataFrame(schema=TRANSFER_SCHEMA)
    src_keys, lanes_used = pl.collect_all([
        arcs.lazy().select("sku", "origin").unique(maintain_order=True).with_row_index("src_id")
        .with_columns(pl.col("src_id").cast(pl.Int64)),
        arcs.lazy().select("lane_id", "capacity").unique("lane_id").sort("lane_id").with_row_index("lane_res"),
    ], engine="in-memory")
    n_src = src_keys.height
    arcs_q = (
        arcs.lazy().join(src_keys.lazy(), on=["sku", "origin"])
        .join(lanes_used.lazy().select("lane_id", pl.col("lane_res").cast(pl.Int64) + n_src), on="lane_id")
    )
    capacities = pl.concat([
        arcs_q.select(pl.col("src_id").alias("res_id"), pl.col("spare").alias("cap")).unique("res_id"),
        lanes_used.lazy().select((pl.col("lane_res").cast(pl.Int64) + n_src).alias("res_id"),
                                 pl.col("capacity").floor().alias("cap")),
    ]).sort("res_id")
    arcs_q = arcs_q.with_columns(
        (pl.col("cost_per_unit") + 1e-3 / (1.0 + pl.col("spare_days"))).alias("cost"),
        pl.col("src_id").alias("res_a"),
        pl.col("lane_res").alias("res_b"),
    ).sort("need_id", "origin", "carrier", "lane_id")
    arcs, capacities = pl.collect_all([arcs_q, capacities], engine="in-memory")
    flows = allocate(
        arcs.select("need_id", "cost", "res_a", "res_b", "sku", "origin", "location", "carrier",
                    "cost_per_unit", "transit_days", "spare"),
        needs.select("need_id", "qty"),
        capacities,
        unmet_penalty=rc.unmet_penalty_per_unit,
        mip_max_variables=rc.mip_max_variables,
    )
    return flows.lazy().select(
        "sku", pl.col("origin").alias("from"), pl.col("location").alias("to"), "carrier",
        pl.col("flow").alias("qty"), "cost_per_unit", "transit_days",
        pl.col("spare").alias("source_spare"),
    ).sort("to", "sku", "from", "carrier").collect(engine="in-memory")


def plan_reassignment(
    overflow: pl.DataFrame, lanes: pl.DataFrame, settings: DetectorSettings
) -> pl.DataFrame:
    """Min-cost reassignment of ``overflow`` (item_id, origin, destination, exclude_carrier, qty)
    onto lanes with the same origin and destination run by another carrier with free capacity."""
    rc = settings.recommend
    if overflow.is_empty() or lanes.is_empty():
        return pl.DataFrame(schema=REASSIGN_SCHEMA)
    lane_idx = (
        lanes.lazy().with_row_index("lane_id").with_columns(pl.col("lane_id").cast(pl.Int64))
        .filter(pl.col("capacity").floor() >= 1)
    )
    arcs = (
        overflow.lazy().rename({"item_id": "need_id"})
        .join(lane_idx, on=["origin", "destination"])
        .filter(pl.col("carrier") != pl.col("exclude_carrier"))
        .with_columns(
            pl.col("cost_per_unit").alias("cost"),
            pl.col("lane_id").alias("res_a"),
            pl.lit(None, dtype=pl.Int64).alias("res_b"),
        )
        .sort("need_id", "carrier", "lane_id")
    )
    capacities = (arcs.select(pl.col("lane_id").alias("res_id"), pl.col("capacity").floor().alias("cap"))
                  .unique("res_id").sort("res_id"))
    arcs, capacities, needs = pl.collect_all([  # one query, in-memory as the eager steps ran
        arcs.select("need_id", "cost", "res_a", "res_b", "origin", "destination", "carrier", "cost_per_unit"),
        capacities,
        overflow.lazy().select(pl.col("item_id").alias("need_id"), pl.col("qty").floor()),
    ], engine="in-memory")
    if arcs.is_empty():
        return pl.DataFrame(schema=REASSIGN_SCHEMA)
    flows = allocate(
        arcs, needs, capacities,
        unmet_penalty=rc.unmet_penalty_per_unit,
        mip_max_variables=rc.mip_max_variables,
    )
    return flows.lazy().select(
        pl.col("need_id").alias("item_id"), "origin", "destination", "carrier",
        pl.col("flow").alias("qty"), "cost_per_unit",
    ).sort("item_id", "carrier").collect(engine="in-memory")
