"""The two allocation problems recommendations need, each one global model solved by HiGHS.

* transfers: cover shortfalls from other locations' stock above safety stock, within lane
  capacity, only with stock that arrives while it still helps;
* reassignment: move the load that no longer fits a cut carrier or lane onto other carriers
  running the same lanes, at least cost across every cut at once, never onto a cut carrier.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from detectors.optimizer import allocate
from detectors.projection import Projection
from detectors.settings import DetectorSettings

TRANSFER_SCHEMA = {
    "sku": pl.Utf8, "from": pl.Utf8, "to": pl.Utf8, "carrier": pl.Utf8, "qty": pl.Float64,
    "cost_per_unit": pl.Float64, "transit_days": pl.Float64, "source_spare": pl.Float64,
}
REASSIGN_SCHEMA = {
    "fingerprint": pl.Utf8, "origin": pl.Utf8, "destination": pl.Utf8, "from_carrier": pl.Utf8,
    "to_carrier": pl.Utf8, "qty": pl.Float64, "cost_per_unit": pl.Float64,
}


def plan_transfers(needs: pl.DataFrame, figures: pl.DataFrame, projection: Projection, lanes: pl.DataFrame,
                   settings: DetectorSettings) -> pl.DataFrame:
    """Min-cost transfers covering ``needs`` (sku, location, qty, pos, first_below), shipped now.

    A source gives at most its spare (projected low above safety stock, whole units) and is not
    short itself; a lane carries at most its free capacity over all SKUs. A transfer arriving
    after the shortfall began costs the shortage penalty for the days it is late, and one
    arriving after the last day it helps moves nothing: each lane's flow is capped at what is
    still short when it arrives.
    """
    rc = settings.recommend
    if needs.is_empty() or lanes.is_empty():
        return pl.DataFrame(schema=TRANSFER_SCHEMA)
    keyed = needs.filter(pl.col("qty") > 0).with_row_index("need_id").with_columns(pl.col("need_id").cast(pl.Int64))
    lane_idx = (lanes.with_row_index("lane_id").with_columns(pl.col("lane_id").cast(pl.Int64))
                .filter(pl.col("capacity").floor() >= 1))
    by_lane = keyed.join(lane_idx, left_on="location", right_on="destination")
    # only positions a lane links to a need can send it stock: cut the figures to those first
    reachable = by_lane.select("sku", "origin").unique()
    sources = (
        figures.lazy().select(
            "sku", pl.col("location").alias("origin"), "spare",
            pl.when(pl.col("daily_demand") > 0).then(pl.col("spare") / pl.col("daily_demand"))
            .otherwise(1e6).alias("spare_days"))
        .join(reachable.lazy(), on=["sku", "origin"], how="semi")
        .filter(pl.col("spare") >= 1)
        .join(keyed.lazy().select("sku", pl.col("location").alias("origin")), on=["sku", "origin"], how="anti")
        .collect()
    )
    arcs = (
        by_lane.join(sources, on=["sku", "origin"])
        .filter(pl.col("spare").rank("dense", descending=True).over("need_id") <= rc.max_sources_per_need)
    )
    if arcs.is_empty():
        return pl.DataFrame(schema=TRANSFER_SCHEMA)
    # what each lane's arrival can still cover at its need (once per need and transit time)
    when = arcs.select("pos", "transit_days").unique(maintain_order=True)
    still = projection.deficits_after(when.get_column("pos").to_numpy(), when.get_column("transit_days").to_numpy())
    cap = np.ceil(arcs.select("pos", "transit_days").join(
        when.with_columns(pl.Series("still", still)), on=["pos", "transit_days"], how="left", maintain_order="left")
        .get_column("still").to_numpy() - 1e-9)
    late_days = np.maximum(arcs.get_column("transit_days").to_numpy()
                           - arcs.get_column("first_below").fill_null(0.0).to_numpy(), 0.0)
    penalty = rc.shortage_cost_per_unit_day * projection.unit_value[arcs.get_column("pos").to_numpy()]
    arcs = arcs.with_columns(pl.Series("useful", cap), pl.Series("late_cost", late_days * penalty)).filter(
        pl.col("useful") >= 1)
    if arcs.is_empty():
        return pl.DataFrame(schema=TRANSFER_SCHEMA)
    src_keys = arcs.select("sku", "origin").unique(maintain_order=True).with_row_index("src_id").with_columns(
        pl.col("src_id").cast(pl.Int64))
    lanes_used = arcs.select("lane_id", "capacity").unique("lane_id").sort("lane_id").with_row_index("lane_res")
    n_src = src_keys.height
    arcs = (
        arcs.join(src_keys, on=["sku", "origin"])
        .join(lanes_used.select("lane_id", (pl.col("lane_res").cast(pl.Int64) + n_src).alias("res_b")), on="lane_id")
        .with_columns(
            (pl.col("cost_per_unit") + pl.col("late_cost") + 1e-3 / (1.0 + pl.col("spare_days"))).alias("cost"),
            pl.col("src_id").alias("res_a"))
        .sort("need_id", "origin", "carrier", "lane_id")
    )
    capacities = pl.concat([
        arcs.select(pl.col("src_id").alias("res_id"), pl.col("spare").alias("cap")).unique("res_id"),
        lanes_used.select((pl.col("lane_res").cast(pl.Int64) + n_src).alias("res_id"),
                          pl.col("capacity").floor().alias("cap")),
    ]).sort("res_id")
    flows = allocate(
        arcs.select("need_id", "cost", "res_a", "res_b", "sku", "origin", "location", "carrier",
                    "cost_per_unit", "transit_days", "spare", "useful"),
        keyed.select("need_id", "qty"), capacities,
        unmet_penalty=rc.unmet_penalty_per_unit, mip_max_variables=rc.mip_max_variables,
    )
    return flows.select(
        "sku", pl.col("origin").alias("from"), pl.col("location").alias("to"), "carrier",
        pl.min_horizontal("flow", "useful").alias("qty"), "cost_per_unit", "transit_days",
        pl.col("spare").alias("source_spare"),
    ).filter(pl.col("qty") >= 1).sort("to", "sku", "from", "carrier")


def plan_reassignment(items: pl.DataFrame, cuts: pl.DataFrame, lanes: pl.DataFrame,
                      settings: DetectorSettings) -> pl.DataFrame:
    """Min-cost moves of cut load onto other carriers, over all cuts at once.

    ``items``: the load on each cut by lane (fingerprint, origin, destination, carrier, qty);
    ``cuts``: fingerprint, overflow, and ``excluded`` — the carriers no move may go to (the cut
    carrier, or every carrier already on a cut lane). Which lanes give up load is the model's
    choice, not a share fixed beforehand: the cheapest alternatives are used first.
    """
    rc = settings.recommend
    if items.is_empty() or cuts.is_empty() or lanes.is_empty():
        return pl.DataFrame(schema=REASSIGN_SCHEMA)
    needs = cuts.select("fingerprint", pl.col("overflow").ceil().alias("qty")).with_row_index("need_id").with_columns(
        pl.col("need_id").cast(pl.Int64))
    items = items.with_row_index("item_id").with_columns(pl.col("item_id").cast(pl.Int64))
    lane_idx = (lanes.with_row_index("lane_id").with_columns(pl.col("lane_id").cast(pl.Int64))
                .filter(pl.col("capacity").floor() >= 1)
                .select("lane_id", "origin", "destination", pl.col("carrier").alias("to_carrier"),
                        "cost_per_unit", "capacity"))
    arcs = (
        items.join(needs.select("need_id", "fingerprint"), on="fingerprint")
        .join(lane_idx, on=["origin", "destination"])
        .join(cuts.select("fingerprint", "excluded"), on="fingerprint")
        .filter(~pl.col("to_carrier").is_in(pl.col("excluded")) & (pl.col("to_carrier") != pl.col("carrier")))
    )
    if arcs.is_empty():
        return pl.DataFrame(schema=REASSIGN_SCHEMA)
    n_items = items.height
    arcs = arcs.with_columns(pl.col("cost_per_unit").alias("cost"), pl.col("item_id").alias("res_a"),
                             (pl.col("lane_id") + n_items).alias("res_b")).sort("need_id", "item_id", "lane_id")
    capacities = pl.concat([
        items.select(pl.col("item_id").alias("res_id"), pl.col("qty").floor().alias("cap")),
        arcs.select((pl.col("lane_id") + n_items).alias("res_id"), pl.col("capacity").floor().alias("cap"))
        .unique("res_id"),
    ]).sort("res_id")
    flows = allocate(
        arcs.select("need_id", "cost", "res_a", "res_b", "fingerprint", "origin", "destination",
                    pl.col("carrier").alias("from_carrier"), "to_carrier", "cost_per_unit"),
        needs.select("need_id", "qty"), capacities,
        unmet_penalty=rc.unmet_penalty_per_unit, mip_max_variables=rc.mip_max_variables,
    )
    return flows.select("fingerprint", "origin", "destination", "from_carrier", "to_carrier",
                        pl.col("flow").alias("qty"), "cost_per_unit").sort(
        "fingerprint", "origin", "destination", "from_carrier", "to_carrier")
