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


# Keys are found by a 64-bit hash and confirmed by a second, independent one (as the stock
# projection matches positions): two distinct keys pass for one only if both collide, ≈ 2⁻¹²⁸.
# Two keys of one table sharing the first hash move the index to the next pair of seeds.
_SEEDS = ((0x5EED, 0xC0FFEE), (0x1CE5EED, 0xBEEF), (0x5EED5EED, 0xFACADE))


def _hash_expr(columns: list[str], seed: int) -> pl.Expr:
    combined = pl.col(columns[0]).hash(seed)
    for i, c in enumerate(columns[1:], start=1):
        combined = combined ^ pl.col(c).hash(seed + i)
    return combined


def _hashes(frame: pl.DataFrame, seed: int, check_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Every row's key hash under both seeds, in one query."""
    both = frame.select(_hash_expr(frame.columns, seed).alias("_h"),
                        _hash_expr(frame.columns, check_seed).alias("_c"))
    return both.get_column("_h").to_numpy(), both.get_column("_c").to_numpy()


_NEWEST = pl.CompatLevel.newest()


def _same_memory(a: pl.Series, b: pl.Series) -> bool:
    """True when ``a`` and ``b`` are views of the same Arrow buffers (so equal, as polars never
    writes into a buffer another series shares). False says nothing: compare the values."""
    if a.dtype != b.dtype or a.chunk_lengths() != b.chunk_lengths():
        return False
    try:
        ca, cb = a.to_arrow(compat_level=_NEWEST), b.to_arrow(compat_level=_NEWEST)
    except Exception:  # a type Arrow cannot take without a copy: compare the values
        return False

    def layout(arr) -> list:
        chunks = getattr(arr, "chunks", [arr])
        return [(c.type, c.offset, len(c), [None if buf is None else (buf.address, buf.size) for buf in c.buffers()])
                for c in chunks]

    return layout(ca) == layout(cb)


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` of small integer arrays by one sort (numpy's hashing path costs more here)."""
    values = np.sort(values)
    keep = np.ones(len(values), dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep]


class RowLookup:
    """Rows of one table grouped by a key: key → its row positions, in table order.

    ``keys``: the table's key columns, one row per table row. Rows with a null key part are
    left out, as a join leaves them out.
    """

    def __init__(self, keys: pl.DataFrame) -> None:
        self._schema = keys.schema
        cols = keys.columns
        keyed = keys.with_row_index("_row").drop_nulls(cols)
        rows = keyed.get_column("_row").to_numpy().astype(np.int64)
        keyed = keyed.select(cols)
        for seed, check_seed in _SEEDS:
            h, check = _hashes(keyed, seed, check_seed)
            order = np.argsort(h, kind="stable")  # equal keys keep table order
            h, check = h[order], check[order]
            first = np.ones(len(h), dtype=bool)
            first[1:] = h[1:] != h[:-1]
            if not np.any(~first[1:] & (check[1:] != check[:-1])):
                break
        else:
            raise RuntimeError("key hashes collide under every seed")
        self._seeds = (seed, check_seed)
        self._rows = rows[order]
        starts = np.flatnonzero(first)
        self._h, self._check = h[starts], check[starts]
        self._starts = np.append(starts, len(h))

    def __len__(self) -> int:
        return len(self._h)

    def rows(self, keys: pl.DataFrame | Iterable[Any]) -> np.ndarray:
        """Sorted row positions of every row whose key is one of ``keys``: a frame whose columns
        are the key parts in order (names aside), or values (one key column) or tuples (several)."""
        return rows_of([self], keys)[0]

    def _rows_of_hashes(self, qh: np.ndarray, qc: np.ndarray) -> np.ndarray:
        if not len(qh) or not len(self._h):
            return np.empty(0, dtype=np.int64)
        order = np.argsort(qh)  # sorted queries walk the table once (cache-friendly)
        qh, qc = qh[order], qc[order]
        g = np.minimum(np.searchsorted(self._h, qh), len(self._h) - 1)
        g = sorted_unique(g[(self._h[g] == qh) & (self._check[g] == qc)])
        starts, ends = self._starts[g], self._starts[g + 1]
        lengths = ends - starts
        # positions starts[i] .. ends[i] - 1 of every group, in one vector
        offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        return np.sort(self._rows[offsets + np.arange(int(lengths.sum()))])


def key_rows(lookup: RowLookup, keys: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Rows of each of ``keys`` (distinct, non-null values of a one-column lookup), grouped by key:
    row positions, and for each row the position of its key in ``keys``."""
    if keys.is_empty():
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    seed, check_seed = lookup._seeds
    hashed = keys.cast(lookup._schema.dtypes()[0]).to_frame("_k0").select(
        _hash_expr(["_k0"], seed).alias("h"), _hash_expr(["_k0"], check_seed).alias("c"))
    qh, qc = hashed.get_column("h").to_numpy(), hashed.get_column("c").to_numpy()
    if not len(lookup._h):
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    g = np.minimum(np.searchsorted(lookup._h, qh), len(lookup._h) - 1)
    hit = (lookup._h[g] == qh) & (lookup._check[g] == qc)
    g, key = g[hit], np.flatnonzero(hit)
    starts, lengths = lookup._starts[g], lookup._starts[g + 1] - lookup._starts[g]
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return lookup._rows[offsets + np.arange(int(lengths.sum()))], np.repeat(key, lengths)


def rows_of(lookups: Sequence[RowLookup], keys: pl.DataFrame | Iterable[Any]) -> list[np.ndarray]:
    """``[lookup.rows(keys) for lookup in lookups]`` for lookups whose keys have the same types
    in the same order (names aside): the keys are cast and hashed once, in one query."""
    dtypes = list(lookups[0]._schema.dtypes())
    names = [f"_k{i}" for i in range(len(dtypes))]
    if isinstance(keys, pl.DataFrame):
        frame = keys
    else:
        values = list(keys)
        frame = (pl.DataFrame(values, schema=dict(zip(names, dtypes, strict=True)), orient="row")
                 if len(dtypes) > 1 else pl.DataFrame({names[0]: pl.Series(values, dtype=dtypes[0])}))
    if frame.is_empty():
        return [np.empty(0, dtype=np.int64) for _ in lookups]
    seeds = list(dict.fromkeys(lookup._seeds for lookup in lookups))
    hashed = (
        frame.lazy()
        .select(pl.col(c).cast(t).alias(n) for c, t, n in zip(frame.columns, dtypes, names, strict=True))
        .drop_nulls()
        .select(e for i, (seed, check_seed) in enumerate(seeds)
                for e in (_hash_expr(names, seed).alias(f"h{i}"), _hash_expr(names, check_seed).alias(f"c{i}")))
        .collect(engine="in-memory")  # a few keys: the streaming engine's set-up would cost more
    )
    out = []
    for lookup in lookups:
        i = seeds.index(lookup._seeds)
        out.append(lookup._rows_of_hashes(hashed.get_column(f"h{i}").to_numpy(),
                                          hashed.get_column(f"c{i}").to_numpy()))
    return out


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
        """True when ``snapshot`` holds the same keys in the same rows as the indexed one.

        Key columns still in the very buffers the index was built from (a snapshot derived from
        the indexed one by changing other columns) are equal without reading them; the rest are
        compared value by value.
        """
        for t, keys in self._keys.items():
            frame = getattr(snapshot, t)
            if frame.height != keys.height:
                return False
            differ = [c for c in keys.columns if not _same_memory(frame.get_column(c), keys.get_column(c))]
            if differ and not frame.select(differ).equals(keys.select(differ)):
                return False
        return True

    def shipments_on(self, resources: Sequence[str]) -> np.ndarray:
        """Rows of the shipment lines that use any of ``resources`` (as carrier, site, dock or lane)."""
        return sorted_unique(np.concatenate(rows_of(self.by_resource, resources)))
