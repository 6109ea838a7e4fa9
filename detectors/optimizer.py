"""Min-cost allocation solved with HiGHS: transfers between locations, overflow onto other carriers.

Both problems share one shape: needs (units to find) are met through arcs, each arc consumes
at most two capacities (a source's spare stock and a lane's free capacity); whatever cannot be
met is left unmet at a high penalty, so the model is always feasible.

Whole-unit problems have a unique optimum by a tie-break (``tie_break``), so the LP relaxation
is solved first and kept when integral, the MIP only otherwise: both give the same flows.
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


# The tie-break's scale, per unit. HiGHS takes reduced costs within its dual feasibility tolerance
# for zero; at 1e-10 (the least it accepts; costs here are at most ~1e3, where a double still
# resolves ~1e-13) two options' weights, 1e-6 apart on average, differ by less than that in
# ~1e-4 of ties, which then stay the solver's choice.
TIE_STEP = 1e-6
_DUAL_TOLERANCE = 1e-10
_INTEGRAL = 1e-6  # an LP value this close to a whole number is one (HiGHS's MIP feasibility tolerance)


def tie_break(n_arcs: int, n_needs: int) -> np.ndarray:
    """Per-unit cost added to each column (the arcs in their order, then each need's unmet column)
    so that options of equal cost are decided by fixed weights: the option whose units carry the
    smaller total weight wins. Column j weighs ``TIE_STEP * (1 + u_j)``, u_j the j-th draw in
    [0, 1) of a generator seeded 0: it depends on the column's place only, so the arc order the
    callers already make deterministic (sorted by need, origin, carrier, lane) decides. Random
    rather than rank-proportional weights: ranks would leave exchanges tied whose ranks sum alike
    (r1 + r4 = r2 + r3), and would need steps of TIE_STEP / N, below the solver's tolerance.

    Bound: every need row is an equality and every column is in exactly one need row, so every
    feasible solution puts exactly Q = Σ qty units on its columns and gets an added cost in
    [TIE_STEP·Q, 2·TIE_STEP·Q). Two solutions' added costs differ by less than TIE_STEP·Q, so a
    solution cheaper by at least TIE_STEP·Q (a cent for 10⁴ units) is still the cheaper one; only
    options closer than that may be decided by the tie-break. HiGHS's default MIP gap (1e-4 of
    the objective), which decided them before, was far looser.
    """
    return TIE_STEP * (1.0 + np.random.default_rng(0).random(n_arcs + n_needs))


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
    Returns ``arcs`` with ``flow`` > 0 only: up to ``mip_max_variables`` columns whole units, the
    optimum under ``tie_break`` (unique); beyond, the LP's flows (no tie-break, as before) floored.
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
    integer = n <= mip_max_variables
    lp = highspy.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = m + len(caps)
    cost = np.concatenate([arcs.get_column("cost").to_numpy().astype(np.float64), np.full(m, unmet_penalty)])
    lp.col_cost_ = cost + tie_break(n_arcs, m) if integer else cost
    lp.col_lower_ = np.zeros(n)
    lp.col_upper_ = np.full(n, highspy.kHighsInf)
    lp.row_lower_ = np.concatenate([qty, np.full(len(caps), -highspy.kHighsInf)])
    lp.row_upper_ = np.concatenate([qty, np.maximum(caps, 0.0)])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = start
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = value
    flows = _solve(lp, n_arcs, integer)
    return (arcs.lazy().with_columns(pl.Series("flow", flows, dtype=pl.Float64)).filter(pl.col("flow") > 0)
            .collect(engine="in-memory"))


def _solve(lp: highspy.HighsLp, n_arcs: int, integer: bool) -> np.ndarray:
    """Arc flows of ``lp``: for whole units, the LP relaxation when its optimum is integral (it is
    then the MIP's optimum, unique under the tie-break; on the bench data it always was, at ~1/6
    of the MIP's cost), else the MIP, to a zero gap and with the tolerances that let it see the
    tie-break (tests: same flows both ways on random instances)."""
    h = _new_highs()
    h.setOptionValue("threads", 1)
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("presolve", "off")  # transport LPs: presolve costs more than it saves (~2x on the bench)
    if integer:
        h.setOptionValue("dual_feasibility_tolerance", _DUAL_TOLERANCE)
    h.passModel(lp)
    flows = _run(h)[:n_arcs]
    if not integer:
        return np.floor(flows + 1e-6)
    if np.all(np.abs(flows - np.round(flows)) <= _INTEGRAL):
        return np.round(flows)
    n_unmet = lp.num_col_ - n_arcs
    lp.integrality_ = [highspy.HighsVarType.kInteger] * n_arcs + [highspy.HighsVarType.kContinuous] * n_unmet
    h.clearModel()  # presolve stays off: it drops columns dominated within its tolerance (> TIE_STEP)
    h.setOptionValue("mip_feasibility_tolerance", _DUAL_TOLERANCE)  # also how close objectives count as equal
    h.setOptionValue("small_matrix_value", 1e-12)  # the least: smaller values count as 0 in cuts and fixings
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", 0.0)
    h.passModel(lp)
    return np.round(_run(h)[:n_arcs])


def _run(h: highspy.Highs) -> np.ndarray:
    h.run()
    status = h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError(f"allocation solver ended with {h.modelStatusToString(status)}")
    return np.asarray(h.getSolution().col_value)


def floor_units(x: float) -> float:
    return float(math.floor(x + 1e-9))
