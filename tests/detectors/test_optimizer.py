"""The allocation's tie-break and its LP-first solve (detectors/optimizer.py)."""

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors import optimizer
from detectors.optimizer import TIE_STEP, allocate, tie_break


def _problem(arcs: list[tuple[int, float, int, int | None]], needs: list[float], caps: list[float]):
    return (
        pl.DataFrame(arcs, schema={"need_id": pl.Int64, "cost": pl.Float64, "res_a": pl.Int64, "res_b": pl.Int64},
                     orient="row").with_row_index("arc"),
        pl.DataFrame({"need_id": list(range(len(needs))), "qty": needs}),
        pl.DataFrame({"res_id": list(range(len(caps))), "cap": caps}),
    )


def _flows(arcs, needs, caps) -> dict[int, float]:
    out = allocate(arcs, needs, caps, unmet_penalty=1000.0, mip_max_variables=5000)
    return dict(zip(out.get_column("arc").to_list(), out.get_column("flow").to_list(), strict=True))


def test_equal_cost_arcs_the_lighter_one_is_used():
    # one need of 10, two sources with 10 each, same cost: either alone is an optimum
    arcs, needs, caps = _problem([(0, 1.5, 0, None), (0, 1.5, 1, None)], [10.0], [10.0, 10.0])
    w = tie_break(2, 1)
    assert w[0] != w[1]
    lighter = int(np.argmin(w[:2]))
    assert _flows(arcs, needs, caps) == {lighter: 10.0}
    assert _flows(arcs.reverse(), needs, caps) == {1 - lighter: 10.0}  # the place decides, not the source


def test_stock_short_the_need_with_the_lighter_unmet_column_goes_short():
    arcs, needs, caps = _problem([(0, 1.0, 0, None), (1, 1.0, 0, None)], [6.0, 6.0], [6.0])
    w = tie_break(2, 2)  # need 0 met: arc 0 and unmet 1 vs need 1 met: arc 1 and unmet 0
    expected = {0: 6.0} if w[0] + w[3] < w[1] + w[2] else {1: 6.0}
    assert _flows(arcs, needs, caps) == expected


def test_equal_rank_sums_are_still_decided():
    # two needs, two sources, four arcs of one cost: 0 + 3 vs 1 + 2
    arcs, needs, caps = _problem([(0, 1.0, 0, None), (0, 1.0, 1, None), (1, 1.0, 0, None), (1, 1.0, 1, None)],
                                 [5.0, 5.0], [5.0, 5.0])
    w = tie_break(4, 2)
    expected = {0: 5.0, 3: 5.0} if w[0] + w[3] < w[1] + w[2] else {1: 5.0, 2: 5.0}
    assert _flows(arcs, needs, caps) == expected


def test_tie_break_is_small_fixed_and_placed():
    w = tie_break(300, 40)
    assert w.min() >= TIE_STEP and w.max() < 2 * TIE_STEP and len(np.unique(w)) == len(w)
    assert np.array_equal(w, tie_break(300, 40))
    assert np.array_equal(w[:300], tie_break(300, 0))  # a column's weight depends on its place only


def test_a_cheaper_option_beats_the_tie_break():
    # 10 units; arc 1 cheaper by 1.1 * TIE_STEP per unit, more than the weights can differ by
    w = tie_break(2, 1)
    heavy = 0 if w[0] > w[1] else 1
    costs = [1.0, 1.0]
    costs[heavy] -= 1.1 * TIE_STEP
    arcs, needs, caps = _problem([(0, costs[0], 0, None), (0, costs[1], 1, None)], [10.0], [10.0, 10.0])
    assert _flows(arcs, needs, caps) == {heavy: 10.0}


@st.composite
def instances(draw):
    # as in transfers: res_a a source, res_b (if any) a lane; few distinct costs, so many ties
    n_needs, n_src, n_lane = draw(st.integers(1, 6)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    arcs = [(draw(st.integers(0, n_needs - 1)), draw(st.sampled_from([1.0, 1.5, 2.0, 1000.0])),
             draw(st.integers(0, n_src - 1)), draw(st.none() | st.integers(n_src, n_src + n_lane - 1)))
            for _ in range(draw(st.integers(1, 14)))]
    needs = [float(draw(st.integers(1, 30))) for _ in range(n_needs)]
    caps = [float(draw(st.integers(0, 30))) for _ in range(n_src + n_lane)]
    return _problem(arcs, needs, caps)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_lp_first_gives_the_flows_of_the_mip(instance):
    arcs, needs, caps = instance
    lp_first = _flows(arcs, needs, caps)
    saved = optimizer._INTEGRAL
    optimizer._INTEGRAL = -1.0  # no LP optimum counts as integral: always the MIP
    try:
        mip = _flows(arcs, needs, caps)
    finally:
        optimizer._INTEGRAL = saved
    assert lp_first == mip
