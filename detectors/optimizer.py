"""Min-cost allocation solved with HiGHS: transfers between locations, overflow onto other carriers.

Both problems share one shape: needs (units to find) are met through arcs, each arc consumes
at most two capacities (a source's spare stock and a lane's free capacity); whatever cannot be
met is left unmet at a high penalty, so the model is always feasible.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading

import highspy
import numpy as np
import polars as pl

_banner_lock = threading.Lock()
_banner_done = False


def _new_highs() -> highspy.Highs:
    """A silent solver. HiGHS prints a banner to C stdout on its first construction in a
    process; that would corrupt ``--json`` output, so the first one is built with fd 1 muted."""
    global _banner_done
    with _banner_lock:
        if _banner_done:
            h = highspy.Highs()
        else:
            libc = ctypes.CDLL(None)
            libc.fflush(None)
            saved = os.dup(1)
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, 1)
                h = highspy.Highs()
                libc.fflush(None)
            finally:
                os.dup2(saved, 1)
                os.close(saved)
                os.close(devnull)
            _banner_done = True
    h.setOptionValue("output_flag", False)
    return h


def allocate(
    arcs: pl.DataFrame,
    needs: pl.DataFrame,
    capacities: pl.DataFrame,
    *,
    unmet_penalty: float,
    mip_max_variables: int,
) -> pl.DataFrame:
    """Solve min Σ cost·x + penalty·unmet s.t. need rows met, capacity rows respected.

    ``arcs``: need_id, cost, res_a, res_b (res_b may be null) — ids index ``capacities``.
    ``needs``: need_id, qty. ``capacities``: res_id, cap.
    Returns ``arcs`` with ``flow`` (whole units when solved as a MIP, else floored) > 0 only.
    """
    if arcs.is_empty() or needs.is_empty():
        return arcs.with_columns(pl.lit(0.0).alias("flow")).clear()
    need_ids = needs.get_column("need_id").to_numpy()
    by_id = np.argsort(need_ids, kind="stable")
    m = len(need_ids)
    res_ids = capacities.get_column("res_id").to_numpy()
    res_row = np.full(int(res_ids.max()) + 1 if len(res_ids) else 1, -1, dtype=np.int64)
    res_row[res_ids] = m + np.arange(len(res_ids))
    n_arcs = arcs.height
    n = n_arcs + m

    arc_need = arcs.get_column("need_id").to_numpy()
    a_need = by_id[np.minimum(np.searchsorted(need_ids[by_id], arc_need), m - 1)]  # row of its need
    if not np.array_equal(need_ids[a_need], arc_need):
        raise KeyError("an arc refers to a need_id missing from needs")
    a_res = res_row[arcs.get_column("res_a").to_numpy().astype(np.int64)]
    b = arcs.get_column("res_b").fill_null(-1).to_numpy().astype(np.int64)
    b_res = np.where(b >= 0, res_row[np.maximum(b, 0)], -1)

    # column-wise matrix: every arc has 2 or 3 nonzeros, every unmet column 1
    counts = np.concatenate([2 + (b_res >= 0), np.ones(m, dtype=np.int64)])
    start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    index = np.empty(start[-1], dtype=np.int32)
    arc_start = start[:n_arcs]
    index[arc_start] = a_need
    index[arc_start + 1] = a_res
    has_b = b_res >= 0
    index[arc_start[has_b] + 2] = b_res[has_b]
    index[start[n_arcs:n]] = np.arange(m)
    value = np.ones(start[-1], dtype=np.float64)

    qty = needs.get_column("qty").to_numpy().astype(np.float64)
    caps = capacities.get_column("cap").to_numpy().astype(np.float64)
    lp = highspy.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = m + len(caps)
    lp.col_cost_ = np.concatenate([arcs.get_column("cost").to_numpy().astype(np.float64),
                                   np.full(m, unmet_penalty)])
    lp.col_lower_ = np.zeros(n)
    lp.col_upper_ = np.full(n, highspy.kHighsInf)
    lp.row_lower_ = np.concatenate([qty, np.full(len(caps), -highspy.kHighsInf)])
    lp.row_upper_ = np.concatenate([qty, np.maximum(caps, 0.0)])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = start
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = value
    integer = n <= mip_max_variables
    if integer:
        lp.integrality_ = [highspy.HighsVarType.kInteger] * n_arcs + [highspy.HighsVarType.kContinuous] * m

    h = _new_highs()
    h.setOptionValue("threads", 1)
    if not integer:  # transport LPs: presolve costs more than it saves (measured ~2× on the bench)
        h.setOptionValue("presolve", "off")
    h.setOptionValue("random_seed", 0)
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError(f"allocation solver ended with {h.modelStatusToString(status)}")
    flows = np.asarray(h.getSolution().col_value[:n_arcs])
    flows = np.round(flows) if integer else np.floor(flows + 1e-6)
    return (arcs.lazy().with_columns(pl.Series("flow", flows, dtype=pl.Float64)).filter(pl.col("flow") > 0)
            .collect(engine="in-memory"))


def floor_units(x: float) -> float:
    return float(math.floor(x + 1e-9))
