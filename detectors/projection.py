"""One time-phased projection per sku × location: the source of every figure alignbot shows.

Daily buckets from now to the horizon: stock starts at on hand, falls through each day at that
day's demand (each demand row's latest quantity spread evenly over the days of its period) and
steps up at each receipt (an open inbound line at its current ETA, else its planned arrival; a
transfer at ship date + transit days). Within a day stock falls in a straight line, so every
figure below is exact for that path and a planner can redo it with a calculator:

* units below safety stock — safety stock minus the lowest projected stock;
* units unserved — how far stock goes below zero at its lowest;
* days below safety stock, days out of stock — how long the path stays under each line;
* shortage unit-days — the area between safety stock and the path where it is below (what the
  shortage penalty is charged on).

Stock-out risk, the impact of a late shipment or a capacity cut, and every option's "if
approved" are this same projection with different receipts, so no two messages can disagree
about one sku × location.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from canonical.model import UTC
from detectors.settings import DetectorSettings

DAY_US = 86_400_000_000
_NOISE = 1e-6  # units: below this a shortfall is floating-point noise (400 − 50 × 6 is 100)


@dataclass(frozen=True)
class Receipts:
    """Units arriving at positions: ``pos`` (index), ``t`` (days from now), ``qty`` (may be
    negative: stock leaving, e.g. a transfer out), ``ref`` (shipment id or a label)."""

    pos: np.ndarray
    t: np.ndarray
    qty: np.ndarray
    ref: np.ndarray

    @classmethod
    def empty(cls) -> Receipts:
        return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, dtype=object))

    @classmethod
    def of(cls, rows: list[tuple[int, float, float, str]]) -> Receipts:
        if not rows:
            return cls.empty()
        pos, t, qty, ref = zip(*rows, strict=True)
        return cls(np.asarray(pos, np.int64), np.asarray(t, float), np.asarray(qty, float),
                   np.asarray(ref, dtype=object))

    def __add__(self, other: Receipts) -> Receipts:
        return Receipts(*(np.concatenate([a, b]) for a, b in zip(
            (self.pos, self.t, self.qty, self.ref), (other.pos, other.t, other.qty, other.ref),
            strict=True)))

    def take(self, keep: np.ndarray) -> Receipts:
        return Receipts(self.pos[keep], self.t[keep], self.qty[keep], self.ref[keep])


@dataclass(frozen=True)
class Figures:
    """Per position (arrays aligned with the projection's positions)."""

    min_level: np.ndarray
    end_level: np.ndarray
    below_safety: np.ndarray  # units
    unserved: np.ndarray  # units
    days_below_safety: np.ndarray
    days_out_of_stock: np.ndarray
    shortage_unit_days: np.ndarray
    first_below_safety: np.ndarray  # days from now; NaN: never
    last_below_safety: np.ndarray  # days from now the last stretch below safety ends; NaN: never


@dataclass(frozen=True)
class Projection:
    """The inputs of the projection, aligned by position, and its figures.

    ``keys``: sku, location per position; ``bounds``: day-bucket edges in days from now (0 …
    horizon); ``rate``: demand per day, per position and bucket.
    """

    keys: pl.DataFrame
    on_hand: np.ndarray
    safety: np.ndarray
    unit_value: np.ndarray
    rate: np.ndarray
    bounds: np.ndarray
    receipts: Receipts
    now: datetime
    figures: Figures = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "figures", simulate(self.on_hand, self.safety, self.rate, self.bounds,
                                                     self.receipts))

    @property
    def horizon(self) -> float:
        return float(self.bounds[-1])

    def index(self) -> dict[tuple[str, str], int]:
        """(sku, location) → position."""
        return {k: i for i, k in enumerate(zip(self.keys.get_column("sku").to_list(),
                                               self.keys.get_column("location").to_list(), strict=True))}

    def what_if(self, positions: np.ndarray, changes: Receipts | None = None) -> Figures:
        """Figures of copies of ``positions`` (one variant each, in order) with ``changes``
        (``pos`` = variant number) on top of each position's own receipts: how the impact of a
        late shipment and every option's "if approved" are computed, many at once."""
        positions = np.asarray(positions, np.int64)
        own = self._receipts_of(positions)
        receipts = own if changes is None else own + changes
        return simulate(self.on_hand[positions], self.safety[positions], self.rate[positions],
                        self.bounds, receipts)

    def _receipts_of(self, positions: np.ndarray) -> Receipts:
        """The receipts of each of ``positions``, numbered by their place in ``positions``."""
        order = self.receipt_order()
        sorted_pos = self.__dict__["_sorted_pos"]
        first = np.searchsorted(sorted_pos, positions, side="left")
        count = np.searchsorted(sorted_pos, positions, side="right") - first
        variant = np.repeat(np.arange(len(positions)), count)
        offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        picked = order[np.repeat(first, count) + offset]
        r = self.receipts
        return Receipts(variant, r.t[picked], r.qty[picked], r.ref[picked])

    def receipt_order(self) -> np.ndarray:
        """Indices of the receipts sorted by position (computed once)."""
        cached = self.__dict__.get("_order")
        if cached is None:
            cached = np.argsort(self.receipts.pos, kind="stable")
            object.__setattr__(self, "_order", cached)
            object.__setattr__(self, "_sorted_pos", self.receipts.pos[cached])
        return cached

    def days_from_now(self, when: datetime) -> float:
        return (when - self.now).total_seconds() / 86_400

    def lows_after(self, positions: np.ndarray, times: np.ndarray, changes: Receipts | None = None) -> np.ndarray:
        """The lowest projected stock of each copy of ``positions`` after its own time (days from
        now; inf when nothing is left of the horizon); copies as in ``what_if``."""
        positions = np.asarray(positions, np.int64)
        own = self._receipts_of(positions)
        seg = segments(self.on_hand[positions], self.rate[positions], self.bounds,
                       own if changes is None else own + changes)
        late = seg.start + seg.length > np.asarray(times, float)[seg.pos] + 1e-12
        out = np.full(len(positions), np.inf)
        np.minimum.at(out, seg.pos[late], (seg.level - seg.rate * seg.length)[late])
        return out

    def deficits_after(self, positions: np.ndarray, times: np.ndarray,
                       changes: Receipts | None = None) -> np.ndarray:
        """How far stock falls below safety stock after each copy's time (0 if it does not):
        what a receipt arriving then can still cover."""
        positions = np.asarray(positions, np.int64)
        return np.maximum(self.safety[positions] - self.lows_after(positions, times, changes), 0.0)


def build(demand: pl.DataFrame, inventory: pl.DataFrame, shipments: pl.DataFrame,
          settings: DetectorSettings, now: datetime) -> Projection:
    """The projection of every sku × location with inventory or demand in the horizon."""
    now = now.astimezone(UTC)
    bounds, first_day = _buckets(settings.stockout.horizon_days, now)
    n_days = len(bounds) - 1
    period = settings.period_days
    dem = demand.lazy().select(
        "sku", "location", "latest_qty", "unit_value",
        ((pl.col("period") - pl.lit(first_day)).dt.total_days()).alias("first"),
    ).filter((pl.col("first") + period > 0) & (pl.col("first") < n_days)).collect()
    # positions: inventory's (one row per key), then demand's keys that have no inventory row
    keys = inventory.select("sku", "location").with_row_index("pos")
    dem = dem.join(keys, on=["sku", "location"], how="left")
    extra = (dem.filter(pl.col("pos").is_null()).select("sku", "location").unique(maintain_order=True)
             .with_row_index("extra"))
    if extra.height:
        keys = pl.concat([keys, extra.select(pl.col("extra") + keys.height, "sku", "location")
                         .rename({"extra": "pos"})])
        dem = dem.drop("pos").join(keys, on=["sku", "location"], how="left")
    n = keys.height
    on_hand = np.zeros(n)
    on_hand[:inventory.height] = inventory.get_column("on_hand").fill_null(0).to_numpy()
    safety = np.zeros(n)
    safety[:inventory.height] = inventory.get_column("safety_stock").fill_null(0).to_numpy()
    pos_dem = dem.get_column("pos").to_numpy().astype(np.int64)
    unit_value = np.zeros(n)
    np.maximum.at(unit_value, pos_dem, dem.get_column("unit_value").fill_null(0).to_numpy())
    # demand per day as a difference array: +rate from the period's first day, −rate after its last
    first = dem.get_column("first").to_numpy().astype(np.int64)
    daily = dem.get_column("latest_qty").fill_null(0).to_numpy() / period
    width = n_days + 1
    cells = np.concatenate([pos_dem * width + np.clip(first, 0, n_days),
                            pos_dem * width + np.clip(first + period, 0, n_days)])
    diff = np.bincount(cells, np.concatenate([daily, -daily]), minlength=n * width).reshape(n, width)
    rate = np.cumsum(diff, axis=1)[:, :n_days]
    return Projection(keys.drop("pos"), on_hand, safety, unit_value, rate, bounds,
                      inbound(shipments, keys, settings, now, float(bounds[-1])), now)


def inbound(shipments: pl.DataFrame, keys: pl.DataFrame, settings: DetectorSettings,
            now: datetime, horizon: float) -> Receipts:
    """Open inbound lines of known positions arriving within the horizon (ETA, else planned)."""
    now_us = int((now - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
    lines = (
        shipments.lazy()
        .filter(~pl.col("status").is_in(settings.disruption.done_statuses))
        .with_columns(pl.coalesce("eta", "planned_arrival").alias("arrival"))
        .filter(pl.col("arrival").is_not_null())
        .select("shipment_id", "sku", pl.col("destination").alias("location"), "qty",
                ((pl.col("arrival").dt.epoch("us") - now_us) / DAY_US).clip(lower_bound=0.0).alias("t"))
        .filter(pl.col("t") < horizon)
        .join(keys.lazy(), on=["sku", "location"], how="inner")
        .collect()
    )
    return Receipts(lines.get_column("pos").to_numpy().astype(np.int64), lines.get_column("t").to_numpy(),
                    lines.get_column("qty").fill_null(0).to_numpy(),
                    lines.get_column("shipment_id").to_numpy().astype(object))


def _buckets(horizon_days: float, now: datetime) -> tuple[np.ndarray, object]:
    """Bucket edges in days from now: now, each following midnight (UTC), the horizon's end."""
    start = now.date()
    since_midnight = (now - datetime(start.year, start.month, start.day, tzinfo=UTC)).total_seconds() / 86_400
    edges = [0.0] + [k - since_midnight for k in range(1, int(np.ceil(horizon_days + since_midnight)) + 1)]
    edges = [e for e in edges if e < horizon_days - 1e-12] + [float(horizon_days)]
    return np.asarray(edges), start


@dataclass(frozen=True)
class Segments:
    """Straight stretches of projected stock: position, start, length, level at start, rate."""

    pos: np.ndarray
    start: np.ndarray
    length: np.ndarray
    level: np.ndarray
    rate: np.ndarray


def _edge_levels(on_hand: np.ndarray, rate: np.ndarray, bounds: np.ndarray, receipts: Receipts
                 ) -> tuple[np.ndarray, Segments | None]:
    """Stock at every day edge (after the receipts before it), and the stretches of the days
    receipts split (None when there are no receipts)."""
    n, n_days = rate.shape
    width = n_days + 1
    consumed = np.zeros((n, width))
    np.cumsum(rate * np.diff(bounds), axis=1, out=consumed[:, 1:])
    if not len(receipts.t):
        return on_hand[:, None] - consumed, None
    day = _day_of(receipts, bounds)
    arrived = np.bincount(receipts.pos * width + day + 1, receipts.qty, minlength=n * width).reshape(n, width)
    levels = on_hand[:, None] + np.cumsum(arrived, axis=1) - consumed
    return levels, _split_days(receipts, day, bounds, levels[receipts.pos, day], rate)


def _day_of(receipts: Receipts, bounds: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(bounds, receipts.t, side="right") - 1, 0, len(bounds) - 2)


def _lowest_at_edges(on_hand: np.ndarray, rate: np.ndarray, bounds: np.ndarray, receipts: Receipts
                     ) -> tuple[np.ndarray, np.ndarray, Segments | None]:
    """``_edge_levels`` for many positions in one pass over the days, keeping only what the
    figures need: the lowest stock at a day edge, the stock at the end, and the split days."""
    level = on_hand.astype(float)
    lowest = level.copy()
    lengths = np.diff(bounds)
    day = _day_of(receipts, bounds)
    by_day = np.argsort(day, kind="stable")
    cuts = np.searchsorted(day[by_day], np.arange(len(lengths) + 1))
    day_start = np.empty(len(receipts.t))
    for d, length in enumerate(lengths):
        landing = by_day[cuts[d]:cuts[d + 1]]
        day_start[landing] = level[receipts.pos[landing]]
        level -= rate[:, d] * length
        np.add.at(level, receipts.pos[landing], receipts.qty[landing])
        np.minimum(lowest, level, out=lowest)
    split = _split_days(receipts, day, bounds, day_start, rate) if len(receipts.t) else None
    return lowest, level, split


def segments(on_hand: np.ndarray, rate: np.ndarray, bounds: np.ndarray, receipts: Receipts) -> Segments:
    """Every day bucket is one stretch, split at the receipts that land in it."""
    n, n_days = rate.shape
    levels, split = _edge_levels(on_hand, rate, bounds, receipts)
    whole = np.ones((n, n_days), bool)
    if split is not None:
        whole[receipts.pos, _day_of(receipts, bounds)] = False
    whole_p, whole_d = np.nonzero(whole)
    lengths = np.diff(bounds)
    parts = [Segments(whole_p, bounds[whole_d], lengths[whole_d], levels[whole_p, whole_d],
                      rate[whole_p, whole_d])]
    if split is not None:
        parts.append(split)
    return Segments(*(np.concatenate([getattr(p, f) for p in parts])
                      for f in ("pos", "start", "length", "level", "rate")))


def _split_days(receipts: Receipts, day: np.ndarray, bounds: np.ndarray, day_start: np.ndarray,
                rate: np.ndarray) -> Segments:
    """The stretches of the day buckets receipts land in: up to each receipt, then to the day's
    end. ``day_start``: per receipt, the stock at the start of its day."""
    order = np.lexsort((receipts.t, day, receipts.pos))
    pos, d, q = receipts.pos[order], day[order], receipts.qty[order]
    opening = day_start[order]
    t = np.maximum(receipts.t[order], bounds[d])
    new_cell = np.ones(len(pos), bool)
    new_cell[1:] = (pos[1:] != pos[:-1]) | (d[1:] != d[:-1])
    cell_start = np.flatnonzero(new_cell)
    cell_of = np.cumsum(new_cell) - 1
    prev_t = np.where(new_cell, bounds[d], np.roll(t, 1))
    received = np.cumsum(q)
    before = received - q - (received - q)[cell_start][cell_of]  # received earlier in the same day
    r = rate[pos, d]
    start_level = opening + before - r * (prev_t - bounds[d])
    last = np.append(cell_start[1:], len(pos)) - 1  # each cell's last receipt
    tail_level = opening[last] + (before[last] + q[last]) - r[last] * (t[last] - bounds[d[last]])
    return Segments(
        np.concatenate([pos, pos[last]]),
        np.concatenate([prev_t, t[last]]),
        np.concatenate([t - prev_t, bounds[d[last] + 1] - t[last]]),
        np.concatenate([start_level, tail_level]),
        np.concatenate([r, r[last]]),
    )


def simulate(on_hand: np.ndarray, safety: np.ndarray, rate: np.ndarray, bounds: np.ndarray,
             receipts: Receipts) -> Figures:
    """The figures of every position's projected stock path.

    The lowest point is read off the day edges for every position at once; the stretches are
    walked only for positions that go below safety stock somewhere.
    """
    n = len(on_hand)
    min_level, end_level, split = _lowest_at_edges(on_hand, rate, bounds, receipts)
    if split is not None:
        held = split.length > 1e-12  # between two receipts at the same moment stock is never held
        np.minimum.at(min_level, split.pos[held], split.level[held])
        np.minimum.at(min_level, split.pos[held], (split.level - split.rate * split.length)[held])
    short = np.flatnonzero(min_level < safety - _NOISE)
    below = np.maximum(safety - min_level, 0.0)
    below[below < _NOISE] = 0.0
    unserved = np.maximum(-min_level, 0.0)
    unserved[unserved < _NOISE] = 0.0
    zeros, never = np.zeros(n), np.full(n, np.nan)
    figures = Figures(min_level, end_level, below, unserved, zeros, zeros.copy(), zeros.copy(), never,
                      never.copy())
    if len(short):
        _walk(short, on_hand, safety, rate, bounds, receipts, figures)
    return figures


def _walk(short: np.ndarray, on_hand: np.ndarray, safety: np.ndarray, rate: np.ndarray,
          bounds: np.ndarray, receipts: Receipts, figures: Figures) -> None:
    """Fill the time-below figures of the ``short`` positions, stretch by stretch."""
    renumber = np.full(len(on_hand), -1, np.int64)
    renumber[short] = np.arange(len(short))
    mine = receipts.take(renumber[receipts.pos] >= 0)
    seg = segments(on_hand[short], rate[short], bounds, replace(mine, pos=renumber[mine.pos]))
    k = len(short)
    end = seg.level - seg.rate * seg.length
    under_s, area, first_s = _below(seg, end, safety[short][seg.pos])
    under_0, _, _ = _below(seg, end, np.zeros(len(seg.pos)))
    first = np.full(k, np.inf)
    np.minimum.at(first, seg.pos, first_s)
    last = np.full(k, -np.inf)
    np.maximum.at(last, seg.pos, np.where(under_s > _NOISE, seg.start + seg.length, -np.inf))
    figures.days_below_safety[short] = np.bincount(seg.pos, under_s, minlength=k)
    figures.days_out_of_stock[short] = np.bincount(seg.pos, under_0, minlength=k)
    figures.shortage_unit_days[short] = np.bincount(seg.pos, area, minlength=k)
    figures.first_below_safety[short] = np.where(np.isfinite(first), first, np.nan)
    figures.last_below_safety[short] = np.where(np.isfinite(last), last, np.nan)


def _below(seg: Segments, end: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per stretch: time below ``line``, the area between line and stock there, and when stock
    first goes below it (inf: it does not)."""
    a, r, length = seg.level, seg.rate, seg.length
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        cross = np.where(a > line, (a - line) / r, 0.0)  # time until stock reaches the line
    under = np.where(end >= line - _NOISE, 0.0, np.where(a <= line, length, length - cross))
    area = np.where(a <= line, length * (line - a) + r * length ** 2 / 2, r * under ** 2 / 2)
    area = np.where(under > 0, area, 0.0)
    first = np.where(under > 0, seg.start + length - under, np.inf)
    return under, area, first
