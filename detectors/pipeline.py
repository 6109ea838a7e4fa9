"""The one entry point: ``detect(snapshot, settings, now)`` → drifts and recommendations.

Steps, each testable alone: build the projection → run the four detectors on it → group drifts
by cause → recommend (options evaluated on the same projection; one transfer model and one
reassignment model for the whole pass).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import polars as pl
from pydantic import BaseModel, Field

from canonical.model import UTC, Drift, Recommendation
from detectors import capacity_shift, demand_change, disruption, stockout_risk
from detectors._common import to_drifts
from detectors.grouping import group_drifts
from detectors.projection import Projection, build
from detectors.recommend import Context, recommend
from detectors.settings import DetectorSettings
from detectors.snapshot import Snapshot


class DetectionResult(BaseModel):
    drifts: list[Drift] = Field(default_factory=list)
    recommendations: list[Recommendation] = Field(default_factory=list)


def detect(
    snapshot: Snapshot,
    settings: DetectorSettings | None = None,
    now: datetime | None = None,
    open_fingerprints: frozenset[str] = frozenset(),
) -> DetectionResult:
    """Run every detector over ``snapshot`` at time ``now`` and recommend one change per cause.

    ``open_fingerprints``: drifts currently open, which stay open until they fall below the
    closing threshold (hysteresis).
    """
    if now is None:
        raise ValueError("detect needs `now`: detectors never read the clock")
    if now.tzinfo is None:
        raise ValueError("`now` must carry a time zone, e.g. 2026-11-26T08:00:00Z")
    now = now.astimezone(UTC)
    settings = settings or DetectorSettings()
    frames = detect_frames(snapshot, settings, now, open_fingerprints)
    groups = group_drifts(frames.drifts, settings.group_by)
    ctx = Context(projection=frames.projection, figures=frames.figures, shipments=snapshot.shipments,
                  capacity=snapshot.capacity, lanes=snapshot.lanes, settings=settings, now=now,
                  loads=frames.loads)
    return DetectionResult(drifts=frames.drifts, recommendations=recommend(groups, ctx))


class Frames(NamedTuple):
    """What detection hands on to recommendations."""

    drifts: list[Drift]  # every kind, in a stable order
    projection: Projection  # the one projection every figure comes from
    figures: pl.DataFrame  # its figures, one row per sku × location
    loads: pl.DataFrame  # resource_loads of the capacity drifts


def detect_frames(snapshot: Snapshot, settings: DetectorSettings, now: datetime,
                  open_fingerprints: frozenset[str]) -> Frames:
    """Drifts of every kind, in a stable order, with the projection they were read from."""
    projection = build(snapshot.demand, snapshot.inventory, snapshot.shipments, settings, now)
    figures = stockout_risk.figures_frame(projection)
    capacity, loads = capacity_shift.capacity_shift_with_loads(
        snapshot.capacity, snapshot.shipments, projection, settings, now, open_fingerprints)
    frames = [
        (demand_change, demand_change.detect_demand_change(snapshot.demand, settings, now, open_fingerprints)),
        (disruption, disruption.detect_disruption(snapshot.shipments, projection, settings, now, open_fingerprints)),
        (capacity_shift, capacity),
        (stockout_risk, stockout_risk.detect_stockout_risk(figures, settings, open_fingerprints)),
    ]
    drifts: list[Drift] = []
    for module, frame in frames:
        drifts += to_drifts(frame, module.KIND, module.KEY, module.EVIDENCE, module.CAUSE, now)
    return Frames(drifts, projection, figures, loads)
