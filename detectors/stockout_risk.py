"""Stockout risk: projected inventory per sku × location dips below safety stock within the horizon.

The projection starts from on hand, consumes the latest demand at a constant daily rate (the
horizon's demand spread evenly) and adds inbound shipment lines when they now arrive (ETA,
else planned arrival). Between arrivals inventory falls linearly, so its minimum is reached
just before an arrival or at the horizon's end.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from detectors._common import (
    add_fingerprints,
    collect,
    collect_all,
    is_open,
    now_literal,
    today,
    with_impact_and_severity,
)
from detectors.model import DriftKind
from detectors.settings import DetectorSettings

KIND = DriftKind.STOCKOUT_RISK
KEY = ["sku", "location"]
EVIDENCE = [
    "on_hand", "safety_stock", "daily_demand", "inbound_qty", "min_projected",
    "days_of_cover", "safety_days", "below_safety_in_days", "stockout_days", "unit_value",
]
CAUSE = {"sku": "sku", "location": "location"}

_DAY_US = 86_400_000_000
_UNIT_NOISE = 1e-6  # below this a shortfall is floating-point noise: 400 − 50 × 6 is 100, not 99.99999
_EPOCH_DAY = date(1970, 1, 1)


def _feeds(demand: pl.DataFrame, inventory: pl.DataFrame, shipments: pl.DataFrame,
           settings: DetectorSettings, now: datetime) -> list[pl.DataFrame]:
    """The rows that feed positions, one frame per source, each with sku, location, t, a, b.

    Inventory: a = on hand, b = safety stock. Demand overlapping the horizon: a = its share of
    horizon demand, b = unit value. Open inbound lines arriving within the horizon: t = days from
    now (ETA, else planned arrival), a = qty; sorted by t.
    """
    horizon = settings.stockout.horizon_days
    start = today(now)
    end = start + timedelta(days=horizon)
    pd_ = timedelta(days=settings.period_days)
    overlap_start = pl.max_horizontal(pl.col("period"), pl.lit(start))
    overlap_end = pl.min_horizontal(pl.col("period") + pd_, pl.lit(end))
    overlap_days = (overlap_end - overlap_start).dt.total_days().clip(lower_bound=0)
    now_us = now_literal(now)
    inv = inventory.lazy().select(
        "sku", "location", pl.lit(0.0).alias("t"), pl.col("on_hand").fill_null(0.0).alias("a"),
        pl.col("safety_stock").alias("b"))
    dem = demand.lazy().filter(_in_horizon(settings, now)).select(
        "sku", "location", pl.lit(0.0).alias("t"),
        (pl.col("latest_qty") * overlap_days / settings.period_days).fill_null(0.0).alias("a"),
        pl.col("unit_value").alias("b"))
    arr = (
        shipments.lazy()
        .filter(~pl.col("status").is_in(settings.disruption.done_statuses))
        .with_columns(pl.coalesce("eta", "planned_arrival").alias("arrival"))
        .filter(pl.col("arrival").is_not_null())
        .select(
            "sku", pl.col("destination").alias("location"),
            ((pl.col("arrival") - now_us).dt.total_microseconds() / _DAY_US).clip(lower_bound=0.0).alias("t"),
            pl.col("qty").fill_null(0.0).alias("a"), pl.lit(None, dtype=pl.Float64).alias("b"))
        .filter(pl.col("t") < horizon)
        .sort("t", maintain_order=True)
    )
    # the first seeds' key hashes come with the rows (a query each saved); see _key_hashes
    hashes = _hash_exprs(*_SEEDS[0])
    return collect_all([q.with_columns(hashes) for q in (inv, dem, arr)],
                       inventory.height + demand.height + shipments.height)  # in parallel


def _in_horizon(settings: DetectorSettings, now: datetime) -> pl.Expr:
    """Demand periods overlapping the projection horizon."""
    start = today(now)
    end = start + timedelta(days=settings.stockout.horizon_days)
    return (pl.col("period") + timedelta(days=settings.period_days) > start) & (pl.col("period") < end)


def horizon_days(settings: DetectorSettings, now: datetime) -> tuple[int, int]:
    """``_in_horizon``'s start and end as days since 1970-01-01 (a Date's physical value)."""
    start = today(now)
    end = start + timedelta(days=settings.stockout.horizon_days)
    return (start - _EPOCH_DAY).days, (end - _EPOCH_DAY).days


def unit_values(demand: pl.DataFrame | pl.LazyFrame, skus: pl.Series, settings: DetectorSettings,
                now: datetime, only_these_skus: bool = False) -> pl.DataFrame:
    """(sku, unit_value) of ``skus`` straight from demand, as ``project`` values them.

    A projection's per-sku maximum is the largest unit value of that SKU's demand in the
    horizon, and 0 (here: missing, which its readers fill with 0) when it has none — for unit
    values ≥ 0, as the canonical model requires. ``only_these_skus``: ``demand`` holds no other
    SKU's rows (gathered by SKU), so they need no filtering.
    """
    if skus.is_empty():  # no capacity drift: no need to scan demand
        return pl.DataFrame(schema={"sku": pl.Utf8, "unit_value": pl.Float64})
    query = (
        demand.lazy().filter(_in_horizon(settings, now) if only_these_skus
                             else pl.col("sku").is_in(skus.implode()) & _in_horizon(settings, now))
        .group_by("sku").agg(pl.col("unit_value").max())
    )
    return collect(query, demand.height if isinstance(demand, pl.DataFrame) else 0)


# Rows are matched to positions by a 64-bit hash of (sku, location) and checked with a second,
# independent one: distinct keys pass only if both collide (≈ 2⁻¹²⁸ per pair); a detected
# collision moves on to the next pair of seeds.
_SEEDS = ((0x5EED, 0xC0FFEE), (0x1CE5EED, 0xBEEF), (0x5EED5EED, 0xFACADE))


class _Collision(Exception):
    pass


def _hash_exprs(seed: int, check_seed: int) -> list[pl.Expr]:
    return [(pl.col("sku").hash(s) ^ pl.col("location").hash(s + 1)).alias(name)
            for name, s in (("_h", seed), ("_c", check_seed))]


def _key_hashes(frame: pl.DataFrame, seed: int, check_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (sku, location) hash of every row under both seeds: as ``_feeds`` computed them for
    the first seeds, else in one query."""
    if (seed, check_seed) != _SEEDS[0]:
        frame = frame.select(_hash_exprs(seed, check_seed))
    return frame.get_column("_h").to_numpy(), frame.get_column("_c").to_numpy()


def _starts(h: np.ndarray) -> np.ndarray:
    """Mask of the rows that start a run of equal values."""
    new = np.ones(len(h), dtype=bool)
    new[1:] = h[1:] != h[:-1]
    return new


def _check(new: np.ndarray, check: np.ndarray) -> None:
    """Within a run of equal hashes the check hashes must agree too."""
    if np.any(~new[1:] & (check[1:] != check[:-1])):
        raise _Collision


def _positions(inv: pl.DataFrame, dem: pl.DataFrame, seed: int, check_seed: int) -> dict[str, Any]:
    """One entry per sku × location with inventory or demand in the horizon.

    Consecutive demand rows of one position (the usual layout of a plan) fold first; when the
    folded demand lists the same keys in the same order as inventory, positions are simply the
    inventory rows. Otherwise both are sorted by hash and grouped.
    """
    ih, ic = _key_hashes(inv, seed, check_seed)
    rh, rc = _key_hashes(dem, seed, check_seed)
    rnew = _starts(rh)
    _check(rnew, rc)
    run = np.cumsum(rnew) - 1
    n_run = int(run[-1]) + 1 if len(run) else 0
    firsts = np.flatnonzero(rnew)
    dh, dc = rh[firsts], rc[firsts]
    da = np.bincount(run, weights=dem.get_column("a").to_numpy(), minlength=n_run)
    db = _max_by(run, dem.get_column("b").to_numpy(), n_run)
    ia, ib = inv.get_column("a").to_numpy(), inv.get_column("b").to_numpy()
    if np.array_equal(ih, dh) and np.array_equal(ic, dc):
        by_hash = np.argsort(ih)
        if not np.any(ih[by_hash][1:] == ih[by_hash][:-1]):  # one inventory row per position
            return {"h": ih, "check": ic, "by_hash": by_hash, "on_hand": ia, "safety": ib,
                    "horizon_demand": da, "unit_value": db, "names": inv.select("sku", "location")}
    h = np.concatenate([ih, dh])
    order = np.argsort(h, kind="stable")
    hs = h[order]
    new = _starts(hs)
    _check(new, np.concatenate([ic, dc])[order])
    pos = np.cumsum(new) - 1
    n_pos = int(pos[-1]) + 1
    is_inv = order < len(ih)
    src = order - len(ih)  # index into the folded demand where not inventory
    return {
        "h": hs[new], "check": np.concatenate([ic, dc])[order][new], "by_hash": np.arange(n_pos),
        "on_hand": np.bincount(pos[is_inv], weights=ia[order[is_inv]], minlength=n_pos),
        "safety": _max_by(pos[is_inv], ib[order[is_inv]], n_pos),
        "horizon_demand": np.bincount(pos[~is_inv], weights=da[src[~is_inv]], minlength=n_pos),
        "unit_value": _max_by(pos[~is_inv], db[src[~is_inv]], n_pos),
        "names": pl.concat([inv.select("sku", "location"),
                            dem.select("sku", "location").gather(firsts)]).gather(order[new]),
    }


def _locate(arr: pl.DataFrame, pos: dict[str, Any], seed: int, check_seed: int):
    """Inbound lines of known positions as (position, t, qty), ordered by position then t."""
    ah, ac = _key_hashes(arr, seed, check_seed)
    sorted_h = pos["h"][pos["by_hash"]]
    by_ah = np.argsort(ah)  # sorted queries: the search walks the table once (cache-friendly)
    i = np.empty(len(ah), dtype=np.int64)
    i[by_ah] = np.searchsorted(sorted_h, ah[by_ah])
    np.minimum(i, len(sorted_h) - 1, out=i)
    hit = sorted_h[i] == ah
    p = pos["by_hash"][i[hit]]
    if np.any(pos["check"][p] != ac[hit]):
        raise _Collision
    # lines come sorted by t: order by (position, line) — a stable sort by position, done as an
    # unstable sort of unique keys (faster)
    o = np.argsort(p.astype(np.int64) * len(p) + np.arange(len(p)))
    return p[o], arr.get_column("t").to_numpy()[hit][o], arr.get_column("a").to_numpy()[hit][o]


def _segment_stats(level, length, t0, rate, safety):
    """For a straight-line stretch of inventory: end level, days below zero, first day below
    safety stock (NaN: never)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        end = level - rate * length
        below_zero = np.where(end >= 0, 0.0, np.where(level <= 0, length, length - level / rate))
        to_safety = np.where(rate > 0, np.maximum((level - safety) / rate, 0.0), 0.0)
        cross = np.where(end < safety, t0 + to_safety, np.nan)
    return end, below_zero, cross


def project(
    demand: pl.DataFrame,
    inventory: pl.DataFrame,
    shipments: pl.DataFrame,
    settings: DetectorSettings,
    now: datetime,
) -> pl.DataFrame:
    """Per sku × location: rate, inbound, minimum projected inventory, spare above safety stock.

    A position is a sku × location with inventory or demand in the horizon. Its feeding rows are
    grouped by one sort (no joins on the string keys); the arithmetic then runs on arrays, and
    positions with no inbound in the horizon are a single straight line.
    """
    horizon = float(settings.stockout.horizon_days)
    inv, dem, arr = _feeds(demand, inventory, shipments, settings, now)
    if inv.height + dem.height == 0:
        return pl.DataFrame(schema=PROJECTION_SCHEMA)
    for seed, check_seed in _SEEDS:
        try:
            pos = _positions(inv, dem, seed, check_seed)
            arrivals = _locate(arr, pos, seed, check_seed)
            break
        except _Collision:
            continue
    else:
        raise RuntimeError("sku × location hashes collide under every seed")
    on_hand = pos["on_hand"]
    safety = np.nan_to_num(pos["safety"], nan=0.0)
    daily = pos["horizon_demand"] * (1.0 / settings.stockout.horizon_days)  # as polars divides by a scalar
    min_projected, stockout_days, cross, inbound = _straight(on_hand, daily, safety, horizon)
    if len(arrivals[0]):
        _with_inbound(*arrivals, on_hand, daily, safety, horizon, min_projected, stockout_days, cross, inbound)
    with np.errstate(divide="ignore", invalid="ignore"):
        days_of_cover = np.where(daily > 0, on_hand / daily, np.inf)
        safety_days = np.where(daily > 0, safety / daily, 0.0)
    return pos["names"].hstack([  # columns made here: appended without a query
        pl.Series("on_hand", on_hand),
        pl.Series("safety_stock", safety),
        pl.Series("horizon_demand", pos["horizon_demand"]),
        pl.Series("unit_value", np.nan_to_num(pos["unit_value"], nan=0.0)),
        pl.Series("daily_demand", daily),
        pl.Series("min_projected", min_projected),
        pl.Series("stockout_days", stockout_days),
        pl.Series("below_safety_in_days", cross, nan_to_null=True),
        pl.Series("inbound_qty", inbound),
        pl.Series("days_of_cover", days_of_cover),
        pl.Series("safety_days", safety_days),
        pl.Series("spare", np.maximum(min_projected - safety, 0.0)),
    ])


PROJECTION_SCHEMA = {
    "sku": pl.Utf8, "location": pl.Utf8, **{c: pl.Float64 for c in (
        "on_hand", "safety_stock", "horizon_demand", "unit_value", "daily_demand", "min_projected",
        "stockout_days", "below_safety_in_days", "inbound_qty", "days_of_cover", "safety_days", "spare")},
}


def _max_by(group: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Largest non-null value per group; 0 where a group has none (as a missing row would)."""
    out = np.full(n, -np.inf)
    ok = ~np.isnan(values)
    np.maximum.at(out, group[ok], values[ok])
    out[out == -np.inf] = 0.0
    return out


def _straight(on_hand, rate, safety, horizon):
    """Every position as if nothing arrived: one stretch from now to the horizon."""
    end, below_zero, cross = _segment_stats(on_hand, horizon, 0.0, rate, safety)
    return end, below_zero, cross, np.zeros(len(on_hand))


def _with_inbound(arr_run, arr_t, arr_q, on_hand, rate, safety, horizon,
                  min_projected, stockout_days, cross, inbound) -> None:
    """Overwrite the straight-line figures of positions with inbound: inventory is a sawtooth
    whose stretches run between arrivals; its minimum is at a stretch's end.

    Events per position, in (t, qty) order: a zero event at 0 and the arrivals (sorted by
    (t, qty) within their position already); each event starts a stretch that ends at the next
    event, or at the horizon for the position's last one.
    """
    # merge arrivals of one position at the same t
    first = np.ones(len(arr_run), dtype=bool)
    first[1:] = (arr_run[1:] != arr_run[:-1]) | (arr_t[1:] != arr_t[:-1])
    group = np.cumsum(first) - 1
    ev_run, ev_t = arr_run[first], arr_t[first]
    ev_q = np.bincount(group, weights=arr_q)
    # block layout: per position [arrivals before the zero event] 0-event [the rest]
    pos_first = np.ones(len(ev_run), dtype=bool)
    pos_first[1:] = ev_run[1:] != ev_run[:-1]
    pos_idx = np.cumsum(pos_first) - 1
    n_pos = int(pos_idx[-1]) + 1
    counts = np.bincount(pos_idx, minlength=n_pos)
    before_zero = np.bincount(pos_idx, weights=(ev_t == 0) & (ev_q < 0), minlength=n_pos).astype(np.int64)
    size = counts + 1
    base = np.concatenate([[0], np.cumsum(size)[:-1]])
    rank = np.arange(len(ev_run)) - np.flatnonzero(pos_first)[pos_idx]
    total = int(size.sum())
    t = np.empty(total)
    q = np.empty(total)
    arrival_at = base[pos_idx] + rank + (rank >= before_zero[pos_idx])
    t[arrival_at], q[arrival_at] = ev_t, ev_q
    zero_at = base + before_zero
    t[zero_at], q[zero_at] = 0.0, 0.0
    runs = ev_run[pos_first]
    owner = np.repeat(runs, size)  # run id per event

    cs = np.cumsum(q)
    cum_in = cs - np.repeat(cs[base] - q[base], size)
    nxt = np.empty(total)
    nxt[:-1] = t[1:]
    nxt[base + counts] = horizon  # a position's last stretch runs to the horizon
    r = rate[owner]
    level = on_hand[owner] + cum_in - r * t
    end, below_zero, crossed = _segment_stats(level, nxt - t, t, r, safety[owner])
    min_projected[runs] = np.minimum.reduceat(end, base)
    stockout_days[runs] = np.bincount(np.repeat(np.arange(n_pos), size), weights=below_zero, minlength=n_pos)
    cross[runs] = np.fmin.reduceat(crossed, base)
    inbound[runs] = np.maximum.reduceat(cum_in, base)


def detect_stockout_risk(
    projection: pl.DataFrame,
    settings: DetectorSettings,
    open_fingerprints: frozenset[str] = frozenset(),
) -> pl.DataFrame:
    """Positions whose projected inventory falls below safety stock.

    A projection exactly at safety stock is not a drift. A new drift needs ``min_units_short``
    units short; an open one stays open while any shortfall is left (hysteresis on the way out).
    """
    min_units = max(settings.stockout.min_units_short, _UNIT_NOISE)
    short = pl.col("safety_stock") - pl.col("min_projected")
    cand = projection.lazy().filter(short > _UNIT_NOISE)
    if not open_fingerprints:
        cand = cand.filter(short >= min_units)
    cand = add_fingerprints(cand.collect(engine="in-memory"), KIND, KEY)  # in-memory, as eager steps ran
    out = cand.lazy().filter((short >= min_units) | is_open(open_fingerprints)).with_columns(
        short.alias("units_short"),
        pl.lit(0.0).alias("units_excess"),
        (short * pl.col("unit_value")).alias("value_at_risk"),
        pl.col("stockout_days").alias("service_days_at_risk"),
    )
    return with_impact_and_severity(out, settings, sort_by=KEY)
