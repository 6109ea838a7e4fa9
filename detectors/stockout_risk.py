"""Stock-out risk: a sku × location whose projected stock falls below safety stock in the horizon.

The projection (``detectors.projection``) decides; this module turns its figures into a table
the other detectors and the recommendations read, and into drifts.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from canonical.model import DriftKind
from detectors._common import add_fingerprints, is_open, with_impact_and_severity
from detectors.projection import Projection
from detectors.settings import DetectorSettings

KIND = DriftKind.STOCKOUT_RISK
KEY = ["sku", "location"]
EVIDENCE = [
    "on_hand", "safety_stock", "daily_demand", "inbound_qty", "min_projected", "below_safety_in_days",
    "days_below_safety", "stockout_days", "unserved", "unit_value",
]
CAUSE = {"sku": "sku", "location": "location"}
_NOISE = 1e-6


def figures_frame(projection: Projection) -> pl.DataFrame:
    """One row per position: its inputs and the projection's figures (in position order)."""
    f = projection.figures
    n = len(projection.on_hand)
    days = np.diff(projection.bounds)
    inbound = np.bincount(projection.receipts.pos, np.maximum(projection.receipts.qty, 0), minlength=n)
    return projection.keys.hstack([
        pl.Series("on_hand", projection.on_hand),
        pl.Series("safety_stock", projection.safety),
        pl.Series("unit_value", projection.unit_value),
        pl.Series("daily_demand", projection.rate @ days / projection.horizon),
        pl.Series("inbound_qty", inbound),
        pl.Series("min_projected", f.min_level),
        pl.Series("units_short", f.below_safety),
        pl.Series("unserved", f.unserved),
        pl.Series("days_below_safety", f.days_below_safety),
        pl.Series("stockout_days", f.days_out_of_stock),
        pl.Series("below_safety_in_days", f.first_below_safety, nan_to_null=True),
        pl.Series("last_below_safety", f.last_below_safety, nan_to_null=True),
        pl.Series("shortage_unit_days", f.shortage_unit_days),
        pl.Series("spare", np.floor(np.maximum(f.min_level - projection.safety, 0.0) + 1e-9)),
    ])


def detect_stockout_risk(
    figures: pl.DataFrame,
    settings: DetectorSettings,
    open_fingerprints: frozenset[str] = frozenset(),
) -> pl.DataFrame:
    """Positions projected below safety stock. A projection exactly at safety stock is not a
    drift; a new drift needs ``min_units_short`` units short, an open one stays open while any
    shortfall is left (hysteresis on the way out)."""
    min_units = max(settings.stockout.min_units_short, _NOISE)
    short = pl.col("units_short")
    cand = figures.lazy().filter(short > _NOISE)
    if not open_fingerprints:
        cand = cand.filter(short >= min_units)
    cand = add_fingerprints(cand.collect(engine="in-memory"), KIND, KEY)
    out = cand.lazy().filter((short >= min_units) | is_open(open_fingerprints)).with_columns(
        pl.col("unserved").alias("units_unserved"),
        pl.lit(0.0).alias("units_excess"),
        (short * pl.col("unit_value")).alias("value_at_risk"),
        pl.col("days_below_safety").alias("service_days_at_risk"),
        pl.col("stockout_days").alias("days_out_of_stock"),
    )
    return with_impact_and_severity(out, settings, sort_by=KEY)
