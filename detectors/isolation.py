"""A pass that fails on one key group still answers for every other group.

Input is validated where it is read, so a failing pass means a bug or a value no validation
foresaw. Rather than let that one value stop detection for the whole network, the failing key
groups (a SKU with its demand, stock and shipment lines; a capacity resource; a lane) are found
by bisection and left out, and the pass runs on the rest. The caller quarantines what was left
out. A failure no single group explains still fails the pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from detectors.pipeline import DetectionResult
from detectors.snapshot import Snapshot

Group = tuple[str, str]  # ("sku", "SKU-1"), ("resource", "carrier:BLUEWAY"), ("lane", "A>B:CARR")


@dataclass(frozen=True)
class IsolatedGroup:
    group: Group
    error: str  # what detection raised on this group alone


def groups(snapshot: Snapshot) -> list[Group]:
    """Every key group of the snapshot, in a stable order."""
    skus = pl.concat([snapshot.demand.get_column("sku"), snapshot.inventory.get_column("sku"),
                      snapshot.shipments.get_column("sku")]).drop_nulls().unique().sort()
    resources = snapshot.capacity.select(_resource()).to_series().unique().sort()
    lanes = snapshot.lanes.select(_lane()).to_series().unique().sort()
    return ([("sku", s) for s in skus.to_list()] + [("resource", r) for r in resources.to_list()]
            + [("lane", lane) for lane in lanes.to_list()])


def only(snapshot: Snapshot, keep: list[Group]) -> Snapshot:
    """The snapshot restricted to the rows of ``keep``."""
    wanted = {kind: [key for k, key in keep if k == kind] for kind in ("sku", "resource", "lane")}
    sku = pl.col("sku").is_in(wanted["sku"])
    return Snapshot(
        demand=snapshot.demand.filter(sku), inventory=snapshot.inventory.filter(sku),
        shipments=snapshot.shipments.filter(sku),
        capacity=snapshot.capacity.filter(_resource().is_in(wanted["resource"])),
        lanes=snapshot.lanes.filter(_lane().is_in(wanted["lane"])))


def without(snapshot: Snapshot, drop: list[Group]) -> Snapshot:
    gone = set(drop)
    return only(snapshot, [g for g in groups(snapshot) if g not in gone])


def detect_isolating(snapshot: Snapshot, run: Callable[[Snapshot], DetectionResult]
                     ) -> tuple[DetectionResult, list[IsolatedGroup]]:
    """``run(snapshot)``; if it raises, ``run`` on the snapshot without the groups it fails on.

    Raises the original error when no group, alone, makes ``run`` fail.
    """
    try:
        return run(snapshot), []
    except Exception as first:
        bad = _failing(snapshot, groups(snapshot), run)
        if not bad:
            raise first
    return run(without(snapshot, [b.group for b in bad])), bad


def _failing(snapshot: Snapshot, candidates: list[Group],
             run: Callable[[Snapshot], DetectionResult]) -> list[IsolatedGroup]:
    """The groups that make ``run`` fail on their own, by halving ``candidates``."""
    if not candidates:
        return []
    try:
        run(only(snapshot, candidates))
        return []
    except Exception as exc:
        if len(candidates) == 1:
            return [IsolatedGroup(candidates[0], f"{type(exc).__name__}: {exc}"[:500])]
    middle = len(candidates) // 2
    return (_failing(snapshot, candidates[:middle], run)
            + _failing(snapshot, candidates[middle:], run))


def _resource() -> pl.Expr:
    return pl.concat_str([pl.col("resource_type"), pl.col("resource_id")], separator=":")


def _lane() -> pl.Expr:
    return pl.concat_str([pl.col("origin"), pl.lit(">"), pl.col("destination"), pl.lit(":"),
                          pl.col("carrier")])
