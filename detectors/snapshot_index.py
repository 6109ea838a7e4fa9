"""Where each business key sits in a snapshot's tables, so an incremental pass gathers rows
instead of scanning every table.

Built once for a layout — which key is in which row — and reused for every later snapshot with
the same key columns row by row: the usual case between polls, when latest demand, ETAs or
available capacity change but no row is added, removed or moved. ``fits`` checks that exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import polars as pl

from detectors.snapshot import Snapshot

# the key columns an index reads, per table; a later snapshot fits when these are equal
KEY_COLUMNS: dict[str, list[str]] = {
    "demand": ["sku", "location"],
    "inventory": ["sku", "location"],
    "shipments": ["shipment_id", "sku", "origin", "destination", "carrier"],
    "capacity": ["resource_id"],
}


class RowLookup:
    """Rows of one table grouped by a key: key → its row positions, in table order.

    A key is a value (one column) or a tuple of values (several); rows with a null key part are
    left out, as a join leaves them out.
    """

    def __init__(self, keys: pl.DataFrame) -> None:
        cols = keys.columns
        grouped = (
            keys.with_row_index("_row").drop_nulls(cols)
            .group_by(cols).agg(pl.col("_row"))
        )
        lengths = grouped.get_column("_row").list.len().to_numpy().astype(np.int64)
        self._rows = grouped.get_column("_row").explode().to_numpy().astype(np.int64)
        self._starts = np.concatenate([[0], np.cumsum(lengths)])
        values = [grouped.get_column(c).to_list() for c in cols]
        names: Iterable[Any] = values[0] if len(cols) == 1 else zip(*values, strict=True)
        self._group = dict(zip(names, range(grouped.height), strict=True))

    def __len__(self) -> int:
        return len(self._group)

    def rows(self, keys: Iterable[Any]) -> np.ndarray:
        """Sorted row positions of every row whose key is one of ``keys``."""
        get = self._group.get
        groups = np.fromiter((g for g in map(get, keys) if g is not None), dtype=np.int64)
        if not len(groups):
            return np.empty(0, dtype=np.int64)
        starts, ends = self._starts[groups], self._starts[groups + 1]
        lengths = ends - starts
        # positions starts[i] .. ends[i] - 1 of every group, in one vector
        offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        return np.sort(self._rows[offsets + np.arange(int(lengths.sum()))])


class SnapshotIndex:
    """Row lookups an incremental pass needs: positions (sku × location) in demand and
    inventory, SKUs in demand, shipments by id, by (sku, destination) and by each resource they
    use (carrier, origin site, destination dock, lane), capacity rows by resource."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._keys = {t: getattr(snapshot, t).select(cols) for t, cols in KEY_COLUMNS.items()}
        demand, ship = self._keys["demand"], self._keys["shipments"]
        self.demand = RowLookup(demand)
        self.demand_skus = RowLookup(demand.select("sku"))
        self.inventory = RowLookup(self._keys["inventory"])
        self.shipment_ids = RowLookup(ship.select("shipment_id"))
        self.inbound = RowLookup(ship.select("sku", "destination"))
        self.by_resource = [
            RowLookup(ship.select(c)) for c in ("carrier", "origin", "destination")
        ] + [RowLookup(ship.select(pl.concat_str("origin", pl.lit(">"), "destination").alias("lane")))]
        self.capacity = RowLookup(self._keys["capacity"])

    @classmethod
    def build(cls, snapshot: Snapshot) -> SnapshotIndex:
        return cls(snapshot)

    def fits(self, snapshot: Snapshot) -> bool:
        """True when ``snapshot`` holds the same keys in the same rows as the indexed one."""
        return all(
            getattr(snapshot, t).height == keys.height and getattr(snapshot, t).select(keys.columns).equals(keys)
            for t, keys in self._keys.items()
        )

    def shipments_on(self, resources: Sequence[str]) -> np.ndarray:
        """Rows of the shipment lines that use any of ``resources`` (as carrier, site, dock or lane)."""
        return np.unique(np.concatenate([lookup.rows(resources) for lookup in self.by_resource]))
