"""The one entry point: ``detect(snapshot, settings, now)`` → drifts and recommendations.

Steps, each testable alone: project inventory → run the four detectors → group drifts by cause
→ recommend (one transfer LP and one reassignment LP for the whole pass).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import NamedTuple

import polars as pl
from pydantic import BaseModel, Field

from detectors import capacity_shift, demand_change, disruption, stockout_risk
from detectors._common import to_drifts
from detectors.grouping import Group, group_drifts
from detectors.model import UTC, Drift, Recommendation
from detectors.recommend import Context, _assign_needs, recommend
from detectors.settings import DetectorSettings
from detectors.snapshot import ChangedKeys, Snapshot


class DetectionResult(BaseModel):
    drifts: list[Drift] = Field(default_factory=list)
    recommendations: list[Recommendation] = Field(default_factory=list)


_PAIR = {"sku": pl.Utf8, "location": pl.Utf8}


class _Neighbourhood:
    """What an incremental pass reads of a snapshot, each full table scanned once.

    ``part`` is the snapshot restricted to the changed keys: changed sku × locations and the
    positions changed shipments feed (demand, inventory, inbound lines), changed shipments,
    changed resources' capacity rows and the shipments on them — rows in snapshot order.
    Transfer sources are not in it: ``with_sources`` adds them once the needs are known, from
    rows of the changed SKUs kept aside by the same scan.
    """

    def __init__(self, snapshot: Snapshot, changed: ChangedKeys) -> None:
        self.lanes = snapshot.lanes
        ship = snapshot.shipments.with_row_index("_row")
        ids = sorted(changed.shipment_ids)
        ship_changed = ship.filter(pl.col("shipment_id").is_in(ids)) if ids else ship.clear()
        pairs = pl.concat([
            pl.DataFrame({"sku": [k[0] for k in changed.sku_locations],
                          "location": [k[1] for k in changed.sku_locations]}, schema=_PAIR),
            ship_changed.select("sku", pl.col("destination").alias("location")),
        ]).unique()
        skus = pairs.get_column("sku").unique().implode()
        # every location of a changed SKU may source its transfers: keep those rows aside
        self._demand = snapshot.demand.filter(pl.col("sku").is_in(skus))
        self._inventory = snapshot.inventory.filter(pl.col("sku").is_in(skus))
        self._inbound = ship.filter(pl.col("sku").is_in(skus))
        res = sorted(changed.resources)
        capacity = snapshot.capacity.filter(pl.col("resource_id").is_in(res)) if res else snapshot.capacity.clear()
        demand, inventory, inbound = self._rows(pairs)
        rows = [ship_changed.get_column("_row"), inbound]
        if res:
            rows.append(ship.filter(
                pl.col("carrier").is_in(res) | pl.col("origin").is_in(res) | pl.col("destination").is_in(res)
                | pl.concat_str("origin", pl.lit(">"), "destination").is_in(res)).get_column("_row"))
        shipments = snapshot.shipments.gather(pl.concat(rows).unique().sort())
        self.part = Snapshot(demand=demand, shipments=shipments, capacity=capacity, inventory=inventory,
                             lanes=snapshot.lanes)

    def _rows(self, positions: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.Series]:
        """Demand and inventory of ``positions`` (sku, location), and the rows of their inbound lines."""
        return (
            self._demand.join(positions, on=["sku", "location"], how="semi", maintain_order="left"),
            self._inventory.join(positions, on=["sku", "location"], how="semi", maintain_order="left"),
            self._inbound.join(positions.rename({"location": "destination"}), on=["sku", "destination"],
                               how="semi").get_column("_row"),
        )

    def with_sources(self, projection: pl.DataFrame, groups: list[Group], settings: DetectorSettings,
                     now: datetime) -> pl.DataFrame:
        """``projection`` plus the positions that could send stock to a shortfall (by lane)."""
        needs, _ = _assign_needs(groups)
        sources = (
            needs.filter(pl.col("qty") > 0).select("sku", "location")
            .join(self.lanes.select(pl.col("destination").alias("location"), "origin"), on="location")
            .select("sku", pl.col("origin").alias("location")).unique()
            .join(projection.select("sku", "location"), on=["sku", "location"], how="anti")
        )
        if sources.is_empty():
            return projection
        demand, inventory, inbound = self._rows(sources)
        shipments = self._inbound.filter(pl.col("_row").is_in(inbound.implode())).drop("_row")
        more = stockout_risk.project(demand, inventory, shipments, settings, now)
        return pl.concat([projection, more])


def restrict(snapshot: Snapshot, changed: ChangedKeys) -> Snapshot:
    """The part of the snapshot an incremental pass detects on (transfer sources come later)."""
    return _Neighbourhood(snapshot, changed).part


_gc_lock = threading.Lock()
_gc_pauses = 0  # passes running with the cyclic collector paused
_gc_was_enabled = False


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for one pass.

    A pass creates tens of thousands of small objects (drifts, actions, dicts) and no cycles;
    with the collector on, its generation scans cost ~15 % of a 1M-row pass. Reference counting
    still frees everything; the collector resumes when the last concurrent pass ends.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def detect(
    snapshot: Snapshot,
    settings: DetectorSettings | None = None,
    now: datetime | None = None,
    open_fingerprints: frozenset[str] = frozenset(),
    changed: ChangedKeys | None = None,
) -> DetectionResult:
    """Run every detector over ``snapshot`` at time ``now`` and recommend one change per cause.

    ``open_fingerprints``: drifts currently open, which stay open until they fall below the
    closing threshold (hysteresis). ``changed``: when given, only those keys are examined —
    the incremental pass; drifts elsewhere are neither reported nor closed by it.
    """
    if now is None:
        raise ValueError("detect needs `now`: detectors never read the clock")
    if now.tzinfo is None:
        raise ValueError("`now` must carry a time zone, e.g. 2026-11-26T08:00:00Z")
    now = now.astimezone(UTC)
    settings = settings or DetectorSettings()
    with _gc_paused():
        return _detect(snapshot, settings, now, open_fingerprints, changed)


def _detect(snapshot: Snapshot, settings: DetectorSettings, now: datetime, open_fingerprints: frozenset[str],
            changed: ChangedKeys | None) -> DetectionResult:
    unit_values: Callable[[pl.Series], pl.DataFrame] | None = None
    near = None
    if changed is not None:
        full = snapshot
        near = _Neighbourhood(snapshot, changed)
        snapshot = near.part

        def unit_values(skus: pl.Series) -> pl.DataFrame:
            # the load on a changed resource carries SKUs the restricted snapshot has no demand for
            return stockout_risk.unit_values(full.demand, skus, settings, now)
    drifts, projection, loads = detect_frames(snapshot, settings, now, open_fingerprints, unit_values)
    if changed is not None:
        fed = _changed_destinations(snapshot, changed)
        drifts = [d for d in drifts if _concerns(d, changed, fed)]
    groups = group_drifts(drifts, settings.group_by)
    if near is not None:
        projection = near.with_sources(projection, groups, settings, now)
    ctx = Context(projection=projection, shipments=snapshot.shipments, capacity=snapshot.capacity,
                  lanes=snapshot.lanes, settings=settings, now=now, loads=loads)
    return DetectionResult(drifts=drifts, recommendations=recommend(groups, ctx))


def _concerns(d: Drift, changed: ChangedKeys, fed: set[tuple[str, str]]) -> bool:
    """In an incremental pass, report a drift only if a changed key feeds it (not mere sources)."""
    kind = d.kind.value
    if kind == "disruption":
        return d.key["shipment_id"] in changed.shipment_ids
    if kind == "capacity_shift":
        return d.key["resource_id"] in changed.resources
    pair = (d.key["sku"], d.key["location"])
    if pair in changed.sku_locations:
        return True
    if kind == "stockout_risk":  # fed by a changed inbound shipment
        return pair in fed
    return False


def _changed_destinations(snapshot: Snapshot, changed: ChangedKeys) -> set[tuple[str, str]]:
    if not changed.shipment_ids:
        return set()
    rows = snapshot.shipments.filter(
        pl.col("shipment_id").is_in(sorted(changed.shipment_ids))
    ).select("sku", "destination").unique()
    return set(rows.iter_rows())


class Frames(NamedTuple):
    """What detection hands on to recommendations."""

    drifts: list[Drift]  # every kind, in a stable order
    projection: pl.DataFrame  # the inventory projection the detectors used
    loads: pl.DataFrame  # resource_loads of the capacity drifts


def detect_frames(
    snapshot: Snapshot, settings: DetectorSettings, now: datetime, open_fingerprints: frozenset[str],
    unit_values: Callable[[pl.Series], pl.DataFrame] | None = None,
) -> Frames:
    """Drifts of every kind, in a stable order, the inventory projection and capacity loads they used.

    ``unit_values``: where capacity_shift values a SKU when ``snapshot`` is not the whole picture.
    """
    projection = stockout_risk.project(snapshot.demand, snapshot.inventory, snapshot.shipments, settings, now)
    if unit_values is None:
        unit_values = projection.group_by("sku").agg(pl.col("unit_value").max())  # 4× fewer rows than demand
    capacity, loads = capacity_shift.capacity_shift_with_loads(
        snapshot.capacity, snapshot.shipments, unit_values, settings, now, open_fingerprints)
    frames = [
        (demand_change, demand_change.detect_demand_change(snapshot.demand, settings, now, open_fingerprints)),
        (disruption, disruption.detect_disruption(snapshot.shipments, projection, settings, now, open_fingerprints)),
        (capacity_shift, capacity),
        (stockout_risk, stockout_risk.detect_stockout_risk(projection, settings, open_fingerprints)),
    ]
    drifts: list[Drift] = []
    for module, frame in frames:
        drifts += to_drifts(frame, module.KIND, module.KEY, module.EVIDENCE, module.CAUSE, now)
    return Frames(drifts, projection, loads)
