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
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import polars as pl
from pydantic import BaseModel, Field

from detectors import capacity_shift, demand_change, disruption, stockout_risk
from detectors._common import to_drifts
from detectors.grouping import group_drifts
from detectors.model import UTC, Drift, Recommendation
from detectors.recommend import Context, _assign_needs, recommend
from detectors.settings import DetectorSettings
from detectors.snapshot import ChangedKeys, Snapshot
from detectors.snapshot_index import SnapshotIndex, key_rows, rows_of, sorted_unique


class DetectionResult(BaseModel):
    drifts: list[Drift] = Field(default_factory=list)
    recommendations: list[Recommendation] = Field(default_factory=list)


_PAIR = {"sku": pl.Utf8, "location": pl.Utf8}


@lru_cache(maxsize=4)
def _pair_frame(pairs: frozenset[tuple[str, str]]) -> pl.DataFrame:
    """(sku, location) pairs as a frame, built once per pass (a frame is immutable: shared)."""
    return pl.DataFrame(list(pairs), schema=_PAIR, orient="row")


class Focus(NamedTuple):
    """What an incremental pass examines within its restricted snapshot."""

    pairs: pl.DataFrame  # the changed (sku, location): only their demand changes are reported
    shipments: pl.DataFrame  # lines of the changed shipments: only their disruptions are reported
    inbound: pl.DataFrame  # the lines that feed the snapshot's positions: all the projection reads


class _Neighbourhood:
    """What an incremental pass reads of a snapshot, gathered by the snapshot's index.

    ``part`` is the snapshot restricted to the changed keys: changed sku × locations and the
    positions changed shipments feed (demand, inventory, inbound lines), changed shipments,
    changed resources' capacity rows and the shipments on them — rows in snapshot order.
    Transfer sources are not in it: ``with_sources`` adds them once the needs are known.
    """

    def __init__(self, snapshot: Snapshot, changed: ChangedKeys, index: SnapshotIndex) -> None:
        self.snapshot, self.index = snapshot, index
        ship_rows = index.shipment_ids.rows(changed.shipment_ids)
        fed = (snapshot.shipments.lazy().select("sku", pl.col("destination").alias("location")).gather(ship_rows)
               .collect(engine="in-memory"))
        # (sku, destination) of every line of a changed shipment: the positions they feed
        self.fed: set[tuple[str, str]] = set(zip(fed.get_column("sku").to_list(),
                                                 fed.get_column("location").to_list(), strict=True))
        pairs = pl.concat([_pair_frame(changed.sku_locations), fed])
        demand, inventory, inbound = self._rows(pairs)
        resources = sorted(changed.resources)
        shipments = sorted_unique(np.concatenate([ship_rows, inbound, index.shipments_on(resources)]))
        parts = pl.collect_all([  # one query for the gathers
            snapshot.demand.lazy().gather(demand), snapshot.shipments.lazy().gather(shipments),
            snapshot.capacity.lazy().gather(index.capacity.rows(resources)),
            snapshot.inventory.lazy().gather(inventory),
            snapshot.shipments.lazy().gather(ship_rows), snapshot.shipments.lazy().gather(inbound),
        ], engine="in-memory")
        self.part = Snapshot(*parts[:2], capacity=parts[2], inventory=parts[3], lanes=snapshot.lanes)
        self.focus = Focus(_pair_frame(changed.sku_locations), parts[4], parts[5])

    def _rows(self, positions: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows of demand, inventory and inbound shipment lines of ``positions`` (sku, location)."""
        demand, inventory, inbound = rows_of([self.index.demand, self.index.inventory, self.index.inbound],
                                             positions)
        return demand, inventory, inbound

    def unit_values(self, skus: pl.Series, settings: DetectorSettings, now: datetime) -> pl.DataFrame:
        """``stockout_risk.unit_values`` of distinct ``skus`` (the load on a changed resource
        carries SKUs the restricted snapshot has no demand for), from their demand rows gathered
        by SKU.

        The maximum per SKU is taken on arrays (~25k rows at 1M: a string group_by cost ~2 ms);
        rows with a null or NaN take the query, whose null and NaN rules are polars' own.
        """
        skus = skus.drop_nulls()
        if skus.is_empty():  # no capacity drift: nothing to value, no rows to read
            return stockout_risk.unit_values(self.snapshot.demand, skus, settings, now)
        rows, which = key_rows(self.index.demand_skus, skus)
        demand = self.snapshot.demand
        value, period = demand.get_column("unit_value").gather(rows), demand.get_column("period").gather(rows)
        if value.null_count() or period.null_count() or value.is_nan().any():
            gathered = demand.lazy().select("sku", "period", "unit_value").gather(np.sort(rows))
            return stockout_risk.unit_values(gathered, skus, settings, now, only_these_skus=True)
        start, end = stockout_risk.horizon_days(settings, now)
        day = period.to_physical().to_numpy()
        inside = (day + settings.period_days > start) & (day < end)
        best = np.full(len(skus), -np.inf)
        np.maximum.at(best, which[inside], value.to_numpy()[inside])
        found = np.bincount(which[inside], minlength=len(skus)) > 0
        return pl.DataFrame({"sku": skus.filter(found), "unit_value": best[found]})

    def with_sources(self, projection: pl.DataFrame, needs: pl.DataFrame, settings: DetectorSettings,
                     now: datetime) -> pl.DataFrame:
        """``projection`` plus the positions that could send stock to ``needs`` (by lane)."""
        sources = (
            needs.lazy().filter(pl.col("qty") > 0).select("sku", "location")
            .join(self.snapshot.lanes.lazy().select(pl.col("destination").alias("location"), "origin"),
                  on="location")
            .select("sku", pl.col("origin").alias("location")).unique()
            .join(projection.lazy().select("sku", "location"), on=["sku", "location"], how="anti")
            .collect(engine="in-memory")  # one query
        )
        if sources.is_empty():
            return projection
        demand, inventory, inbound = self._rows(sources)
        snap = self.snapshot
        more = stockout_risk.project(snap.demand.gather(demand), snap.inventory.gather(inventory),
                                     snap.shipments.gather(inbound), settings, now)
        return pl.concat([projection, more])


def restrict(snapshot: Snapshot, changed: ChangedKeys, index: SnapshotIndex | None = None) -> Snapshot:
    """The part of the snapshot an incremental pass detects on (transfer sources come later)."""
    return _Neighbourhood(snapshot, changed, _fitting(index, snapshot)).part


def _fitting(index: SnapshotIndex | None, snapshot: Snapshot) -> SnapshotIndex:
    """``index`` when it describes ``snapshot``'s rows, else a new one (built here, at its cost)."""
    if index is not None and index.fits(snapshot):
        return index
    return SnapshotIndex(snapshot)


_gc_lock = threading.Lock()
_gc_pauses = 0  # passes running with the cyclic collector paused
_gc_was_enabled = False


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for one pass.

    A pass creates tens of thousands of small objects (drifts, actions, dicts) and no cycles;
    with the collector on, its generation scans cost ~15 % of a 1M-row pass. Reference counting
    still frees everything; the collector resumes when the last concurrent pass ends.

    The result outlives the pass, and the first young-generation scan after it would walk every
    object the pass kept (~50 ms at 1M rows) to find no garbage: so they are promoted to the
    oldest generation at once (``freeze`` + ``unfreeze``, two list splices), unless something
    else froze objects, which must stay frozen (see ``_promote_survivors``). Cycles another
    thread made meanwhile wait for the next full collection.
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
                _promote_survivors()
                gc.enable()


_frozen_elsewhere = False  # set for good once another part of the process has frozen objects


def _promote_survivors() -> None:
    """Move every object the collector watches to the oldest generation, unless objects are frozen.

    ``gc.get_freeze_count`` counts by walking every frozen object: in the bot, which freezes
    ~200k once warm, that was 7–10 ms per pass holding the interpreter, and 20–40 ms while
    Slack acks competed for it. So it is asked only until it first answers non-zero; from then
    on the process freezes for itself and passes leave their objects to the young generation.
    """
    global _frozen_elsewhere
    if _frozen_elsewhere:
        return
    if gc.get_freeze_count():
        _frozen_elsewhere = True
        return
    gc.freeze()
    gc.unfreeze()


def detect(
    snapshot: Snapshot,
    settings: DetectorSettings | None = None,
    now: datetime | None = None,
    open_fingerprints: frozenset[str] = frozenset(),
    changed: ChangedKeys | None = None,
    index: SnapshotIndex | None = None,
) -> DetectionResult:
    """Run every detector over ``snapshot`` at time ``now`` and recommend one change per cause.

    ``open_fingerprints``: drifts currently open, which stay open until they fall below the
    closing threshold (hysteresis). ``changed``: when given, only those keys are examined —
    the incremental pass; drifts elsewhere are neither reported nor closed by it. ``index``:
    the ``SnapshotIndex`` a caller keeps for this snapshot's layout (checked; built when
    missing or stale).
    """
    if now is None:
        raise ValueError("detect needs `now`: detectors never read the clock")
    if now.tzinfo is None:
        raise ValueError("`now` must carry a time zone, e.g. 2026-11-26T08:00:00Z")
    now = now.astimezone(UTC)
    settings = settings or DetectorSettings()
    with _gc_paused():
        return _detect(snapshot, settings, now, open_fingerprints, changed, index)


def _detect(snapshot: Snapshot, settings: DetectorSettings, now: datetime, open_fingerprints: frozenset[str],
            changed: ChangedKeys | None, index: SnapshotIndex | None) -> DetectionResult:
    unit_values: Callable[[pl.Series], pl.DataFrame] | None = None
    near = None
    if changed is not None:
        near = _Neighbourhood(snapshot, changed, _fitting(index, snapshot))
        snapshot = near.part

        def unit_values(skus: pl.Series) -> pl.DataFrame:
            return near.unit_values(skus, settings, now)
    drifts, projection, loads = detect_frames(snapshot, settings, now, open_fingerprints, unit_values,
                                              near.focus if near is not None else None)
    if changed is not None:
        drifts = [d for d in drifts if _concerns(d, changed, near.fed)]
    groups = group_drifts(drifts, settings.group_by)
    assigned = None
    if near is not None:
        assigned = _assign_needs(groups)  # recommend reads the same, before it changes the groups
        projection = near.with_sources(projection, assigned[0], settings, now)
    ctx = Context(projection=projection, shipments=snapshot.shipments, capacity=snapshot.capacity,
                  lanes=snapshot.lanes, settings=settings, now=now, loads=loads)
    return DetectionResult(drifts=drifts, recommendations=recommend(groups, ctx, assigned))


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


class Frames(NamedTuple):
    """What detection hands on to recommendations."""

    drifts: list[Drift]  # every kind, in a stable order
    projection: pl.DataFrame  # the inventory projection the detectors used
    loads: pl.DataFrame  # resource_loads of the capacity drifts


def detect_frames(
    snapshot: Snapshot, settings: DetectorSettings, now: datetime, open_fingerprints: frozenset[str],
    unit_values: Callable[[pl.Series], pl.DataFrame] | None = None, focus: Focus | None = None,
) -> Frames:
    """Drifts of every kind, in a stable order, the inventory projection and capacity loads they used.

    ``unit_values``: where capacity_shift values a SKU when ``snapshot`` is not the whole picture.
    ``focus``: an incremental pass reports disruptions of changed shipments and demand changes
    of changed positions only, so only those are examined and turned into drifts, and the
    projection reads only the lines feeding the snapshot's positions (the other shipments in
    ``snapshot`` are there for the capacity loads).
    """
    projection = stockout_risk.project(snapshot.demand, snapshot.inventory,
                                       snapshot.shipments if focus is None else focus.inbound, settings, now)
    if unit_values is None:
        def unit_values(skus: pl.Series) -> pl.DataFrame:
            # only the SKUs on a drifting resource's load, from the projection (4× fewer rows than demand)
            return (projection.filter(pl.col("sku").is_in(skus.implode()))
                    .group_by("sku").agg(pl.col("unit_value").max()))
    capacity, loads = capacity_shift.capacity_shift_with_loads(
        snapshot.capacity, snapshot.shipments, unit_values, settings, now, open_fingerprints)
    shipments = snapshot.shipments
    demand_drifts = demand_change.detect_demand_change(snapshot.demand, settings, now, open_fingerprints)
    if focus is not None:
        shipments = focus.shipments
        demand_drifts = demand_drifts.join(focus.pairs, on=["sku", "location"], how="semi", maintain_order="left")
    frames = [
        (demand_change, demand_drifts),
        (disruption, disruption.detect_disruption(shipments, projection, settings, now, open_fingerprints)),
        (capacity_shift, capacity),
        (stockout_risk, stockout_risk.detect_stockout_risk(projection, settings, open_fingerprints)),
    ]
    drifts: list[Drift] = []
    for module, frame in frames:
        drifts += to_drifts(frame, module.KIND, module.KEY, module.EVIDENCE, module.CAUSE, now)
    return Frames(drifts, projection, loads)
